//! Forwarding chunks to other cluster servers: the replica pipeline and replication.
//!
//! A chunk is sent to one server together with the list of the servers after it; each hop
//! stores its copy while forwarding the stream to the next, so every hop carries the
//! bytes once. Each hop answers with who stored the chunk and who failed, which the
//! sender merges into its own answer.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use axum::http::uri::Authority;
use bytes::Bytes;
use filegrid_proto::ErrorCode;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::{ChunkClient, PutChunk};

/// Pieces of data buffered towards a downstream hop before the upload waits for it.
const DOWNSTREAM_QUEUE: usize = 8;
use crate::chunk::{Checksum, ChunkId, ChunkMeta};

pub use filegrid_proto::chunk::{Failure, PutResponse};

/// Who got a chunk sent down a pipeline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Addresses that stored it.
    pub stored: Vec<String>,
    /// Addresses that did not.
    pub failed: Vec<Failure>,
    /// The checksum the first hop computed, when it stored the chunk.
    pub checksum: Option<String>,
    /// Signed acknowledgements of the servers that stored it.
    pub acks: Vec<filegrid_proto::chunk::Ack>,
}

/// Shortest and longest hop progress timeout a request may ask for.
const PROGRESS_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));

/// How long a sender waits on its next hop, which has `hops_after` hops after it, while that
/// hop takes no byte or, once it has every byte, gives no answer. A hung hop deeper in the
/// pipeline stalls every hop before it at about the same moment (back-pressure); the hop
/// just before it, with the shortest limit, gives it up first and goes on without it, so
/// the hops before see progress again before their longer limits run out, and only the hung
/// hop is ruled out.
pub fn stall_limit(progress: Duration, hops_after: usize) -> Duration {
    progress.saturating_mul(u32::try_from(hops_after + 1).unwrap_or(u32::MAX))
}

/// The hop progress timeout a request asks for (`x-filegrid-hop-progress-ms`), held within
/// sane bounds; `None` when absent or not a number.
pub fn parse_progress(value: Option<&str>) -> Option<Duration> {
    let ms: u64 = value?.trim().parse().ok()?;
    Some(Duration::from_millis(ms).clamp(PROGRESS_BOUNDS.0, PROGRESS_BOUNDS.1))
}

/// Checks a pipeline hop: `host:port`, nothing else.
pub fn parse_hop(hop: &str) -> Result<String, String> {
    let hop = hop.trim();
    match Authority::from_str(hop) {
        Ok(a) if a.port_u16().is_some() && !hop.contains('@') => Ok(hop.to_string()),
        _ => Err(format!("pipeline hop {hop:?} is not host:port")),
    }
}

/// Parses a comma-separated pipeline list (empty means no downstream).
pub fn parse_pipeline(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_hop)
        .collect()
}

/// What to send to the next hop.
pub struct Upload<'a> {
    /// The chunk.
    pub id: &'a ChunkId,
    /// Epoch to stamp the request with.
    pub epoch: u64,
    /// The hop to send to.
    pub hop: &'a str,
    /// The hops after it.
    pub rest: &'a [String],
    /// Length, when known (sent as Content-Length so the hop can check it).
    pub len: Option<u64>,
    /// Checksum, when known (the hop refuses data that does not match).
    pub checksum: Option<Checksum>,
    /// The hop progress timeout to pass on, when the request had one.
    pub progress: Option<Duration>,
}

/// Streams `body` to `upload.hop` and returns who stored it. Never fails: a hop that cannot
/// be reached or refuses the chunk is reported in `failed`, as are the hops after it.
/// Dropping the returned future mid-body aborts the connection, so the hop stores nothing.
pub async fn forward<S>(client: &ChunkClient, upload: Upload<'_>, body: S) -> Outcome
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
{
    let put = PutChunk {
        id: upload.id.as_str(),
        epoch: upload.epoch,
        pipeline: upload.rest,
        len: upload.len,
        checksum: upload.checksum,
        progress: upload.progress,
    };
    match client.put_stream(upload.hop, put, body).await {
        Ok(resp) => Outcome {
            stored: resp.stored,
            failed: resp.failed,
            checksum: Some(resp.checksum),
            acks: resp.acks,
        },
        Err(e) => {
            let error = e.detail();
            tracing::warn!(hop = upload.hop, chunk = %upload.id, %error, "pipeline hop failed");
            not_reached(upload.hop, upload.rest, e.code(), error)
        }
    }
}

/// `hop` failed with `code`; the hops after it were never reached.
fn not_reached(hop: &str, rest: &[String], code: ErrorCode, error: String) -> Outcome {
    let mut failed = vec![Failure {
        addr: hop.to_string(),
        code,
        error,
    }];
    failed.extend(rest.iter().map(|addr| Failure {
        addr: addr.clone(),
        code: ErrorCode::NotReached,
        error: format!("not reached: upstream {hop} failed"),
    }));
    Outcome {
        stored: Vec::new(),
        failed,
        checksum: None,
        acks: Vec::new(),
    }
}

/// Our own copy plus what the downstream hops reported, dropping any hop whose copy does
/// not have our checksum.
pub(super) fn merge(
    advertise: &str,
    meta: &ChunkMeta,
    downstream: Option<Outcome>,
    own_ack: Option<filegrid_proto::chunk::Ack>,
) -> PutResponse {
    let checksum = meta.checksum.to_string();
    let mut stored = vec![advertise.to_string()];
    let mut failed = Vec::new();
    let mut acks: Vec<_> = own_ack.into_iter().collect();
    if let Some(outcome) = downstream {
        match outcome.checksum {
            Some(theirs) if theirs != checksum => {
                failed.extend(outcome.stored.into_iter().map(|addr| Failure {
                    addr,
                    code: ErrorCode::ChecksumMismatch,
                    error: format!("stored checksum {theirs}, expected {checksum}"),
                }));
            }
            _ => {
                acks.extend(
                    outcome
                        .acks
                        .into_iter()
                        .filter(|a| outcome.stored.contains(&a.addr)),
                );
                stored.extend(outcome.stored);
            }
        }
        failed.extend(outcome.failed);
    }
    PutResponse {
        id: meta.id.to_string(),
        len: meta.len,
        checksum,
        stored,
        failed,
        acks,
    }
}

/// The next hop of a pipeline write: a request streaming from a bounded queue.
pub(super) struct Downstream {
    hop: String,
    rest: Vec<String>,
    tx: Option<mpsc::Sender<Result<Bytes, io::Error>>>,
    task: JoinHandle<Outcome>,
    timeout: Duration,
    error: Option<String>,
}

impl Downstream {
    /// Starts streaming to `upload.hop`; feed it with [`Downstream::send`].
    pub(super) fn start(client: &ChunkClient, timeout: Duration, upload: Upload<'_>) -> Self {
        let (tx, rx) = mpsc::channel(DOWNSTREAM_QUEUE);
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let client = client.clone();
        let (id, hop, rest) = (
            upload.id.clone(),
            upload.hop.to_string(),
            upload.rest.to_vec(),
        );
        let (epoch, len, checksum, progress) =
            (upload.epoch, upload.len, upload.checksum, upload.progress);
        let task = {
            let (hop, rest) = (hop.clone(), rest.clone());
            tokio::spawn(async move {
                let upload = Upload {
                    id: &id,
                    epoch,
                    hop: &hop,
                    rest: &rest,
                    len,
                    checksum,
                    progress,
                };
                forward(&client, upload, body).await
            })
        };
        Self {
            hop,
            rest,
            tx: Some(tx),
            task,
            timeout,
            error: None,
        }
    }

    /// Queues `data` for the hop; a hop that stopped taking data is given up, not waited for.
    pub(super) async fn send(&mut self, data: Bytes) {
        let Some(tx) = &self.tx else { return };
        match tokio::time::timeout(self.timeout, tx.send(Ok(data))).await {
            Ok(Ok(())) => {}
            // The request ended early; its outcome says why.
            Ok(Err(_)) => self.tx = None,
            Err(_) => {
                self.tx = None;
                self.task.abort();
                self.error = Some(format!("took no data for {:?}", self.timeout));
                tracing::warn!(hop = %self.hop, timeout = ?self.timeout, "pipeline hop took no data; going on without it");
            }
        }
    }

    /// Ends the stream cleanly and waits for the hop's answer.
    pub(super) async fn finish(mut self) -> Outcome {
        drop(self.tx.take());
        if let Some(error) = self.error.take() {
            return self.failed(error);
        }
        match tokio::time::timeout(self.timeout, &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => self.failed(format!("forwarding task failed: {e}")),
            Err(_) => {
                self.task.abort();
                tracing::warn!(hop = %self.hop, timeout = ?self.timeout, "pipeline hop gave no answer; going on without it");
                self.failed(format!("no answer within {:?}", self.timeout))
            }
        }
    }

    fn failed(&self, error: String) -> Outcome {
        not_reached(&self.hop, &self.rest, ErrorCode::Unavailable, error)
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        // An upload that is dropped before `finish` was aborted: break the hop's connection
        // so it stores nothing. After `finish` the task is done and this is a no-op.
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_before_a_hung_one_gives_up_first() {
        let t = Duration::from_secs(2);
        // The head before a pipeline of three, then each hop in turn.
        assert_eq!(stall_limit(t, 2), Duration::from_secs(6));
        assert_eq!(stall_limit(t, 1), Duration::from_secs(4));
        assert_eq!(stall_limit(t, 0), Duration::from_secs(2));
        // Every hop's limit is a whole progress timeout longer than the next one's.
        for k in 0..5 {
            assert_eq!(stall_limit(t, k + 1) - stall_limit(t, k), t);
        }
    }

    #[test]
    fn a_progress_timeout_from_a_request_is_bounded() {
        assert_eq!(parse_progress(None), None);
        assert_eq!(parse_progress(Some("soon")), None);
        assert_eq!(parse_progress(Some("-5")), None);
        assert_eq!(
            parse_progress(Some(" 1500 ")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_progress(Some("0")), Some(Duration::from_millis(100)));
        assert_eq!(
            parse_progress(Some("18446744073709551615")),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn pipeline_lists() {
        assert_eq!(parse_pipeline(""), Ok(vec![]));
        assert_eq!(
            parse_pipeline("127.0.0.1:9700, cluster-2.grid:9700"),
            Ok(vec!["127.0.0.1:9700".into(), "cluster-2.grid:9700".into()])
        );
        for bad in ["host", "http://h:1", "h:1/x", "u@h:1", "h:port"] {
            assert!(parse_pipeline(bad).is_err(), "{bad:?} accepted");
        }
    }
}
