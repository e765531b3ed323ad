//! Downloads: chunks are fetched from one replica at a time (a second one is asked as well
//! when the first has not answered for [`HEDGE_AFTER`]) and verified before a byte is passed
//! on (a whole chunk here, against the manifest's checksum; the part of a chunk a `Range`
//! covers by the cluster server, which checks the whole chunk before it ends its answer), and
//! a failing replica (error, timeout, missing chunk, checksum mismatch) is skipped for the next
//! one. A replica that served bad data is rewritten from a good copy (read repair). Two chunks
//! are in memory per download at most (and a second copy of one while two replicas race).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use super::manifest::{ChunkRef, FileMeta};
use super::{DataError, DataPlane};
use crate::chunk::Checksum;
use crate::ids::ServerId;

/// Chunks fetched ahead of the one being sent.
const PREFETCH: usize = 2;

/// A byte range `start..end` (end exclusive) of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Parses a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`; one range) for a file of
/// `size` bytes. `Ok(None)` means no header.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<ByteRange>, DataError> {
    let Some(h) = header else { return Ok(None) };
    match crate::http::range::parse(h, size) {
        Ok(r) => Ok(Some(ByteRange {
            start: r.start,
            end: r.end,
        })),
        Err(crate::http::range::RangeError::Malformed(m)) if m.contains("single") => Err(
            DataError::BadRange(format!("multiple ranges are not supported: {h:?}")),
        ),
        Err(_) => Err(DataError::BadRange(format!(
            "unsupported or malformed Range {h:?} (file is {size} bytes)"
        ))),
    }
}

/// Streams `range` of the file (all of it when `None`). The first chunk is fetched before
/// this returns, so a file none of whose replicas can be read fails with an error status
/// instead of a `200` with no body; a later chunk that cannot be read aborts the answer (the
/// connection breaks before the promised length), so no client takes a short body for the file.
pub async fn download(
    dp: Arc<DataPlane>,
    meta: FileMeta,
    range: Option<ByteRange>,
) -> Result<Body, DataError> {
    let range = range.unwrap_or(ByteRange {
        start: 0,
        end: meta.size,
    });
    // Offsets come from the chunks' own lengths: a multipart object's chunks are not all of
    // `chunk_size` (each part ends with a short one).
    let mut wanted = chunk_offsets(&meta.chunks)
        .filter(|(offset, c)| *offset < range.end && offset + c.len > range.start)
        .map(|(offset, c)| (offset, c.clone()))
        .collect::<Vec<_>>()
        .into_iter();
    let fetch = move |dp: Arc<DataPlane>, (offset, chunk): (u64, ChunkRef)| async move {
        // The part of this chunk the range covers.
        let from = range.start.saturating_sub(offset).min(chunk.len);
        let to = (range.end - offset).min(chunk.len);
        let part = fetch_part(&dp, &chunk, from..to).await?;
        dp.metrics.bytes_out.inc_by(part.len() as u64);
        Ok::<Bytes, std::io::Error>(part)
    };
    let Some(head) = wanted.next() else {
        return Ok(Body::empty());
    };
    let head = fetch(dp.clone(), head)
        .await
        .map_err(|e| DataError::Unavailable(format!("cannot read {}: {e}", meta.file_id)))?;
    let rest: Vec<(u64, ChunkRef)> = wanted.collect();
    let stream = futures::stream::iter(rest)
        .map(move |item| fetch(dp.clone(), item))
        .buffered(PREFETCH);
    Ok(Body::from_stream(
        futures::stream::once(async move { Ok(head) }).chain(stream),
    ))
}

/// Each chunk with the offset of its first byte in the file.
fn chunk_offsets(chunks: &[ChunkRef]) -> impl Iterator<Item = (u64, &ChunkRef)> {
    chunks.iter().scan(0u64, |offset, c| {
        let at = *offset;
        *offset += c.len;
        Some((at, c))
    })
}

/// Fetches `part` of a chunk (all of it, or a `Range`), trying its replicas in turn (live
/// ones first). A whole chunk is checked here against the manifest's checksum. Only a part
/// travels for a range: the cluster server verifies the whole chunk before it ends the
/// answer cleanly, and its checksum header must be the manifest's, so the part comes from
/// the very chunk the manifest names.
async fn fetch_part(
    dp: &Arc<DataPlane>,
    chunk: &ChunkRef,
    part: Range<u64>,
) -> Result<Bytes, std::io::Error> {
    let whole = part.start == 0 && part.end == chunk.len;
    if let Some(cached) = dp.cache.get(chunk).and_then(|data| slice(&data, &part)) {
        return Ok(cached);
    }
    let expected: Option<Checksum> = chunk.checksum.parse().ok();
    let mut replicas = chunk.replicas.clone();
    // Registered servers that heartbeat first, then silent ones; the others may still answer
    // (e.g. just restarted).
    let silent = dp.membership.silent(&replicas);
    replicas.sort_by_key(|r| {
        let up = dp.membership.get(r).is_some_and(|s| s.is_up());
        (!up, silent.contains(r))
    });
    let mut untried = replicas.into_iter();
    let mut running = FuturesUnordered::new();
    let mut bad: Vec<ServerId> = Vec::new();
    let mut errors = Vec::new();
    loop {
        // The next replica is asked when none is being read from, or as a hedge when the one
        // being read from has not answered for HEDGE_AFTER.
        let may_hedge =
            running.len() < HEDGED && untried.len() > 0 && !running.iter().any(Attempt::answered);
        let hedge_at = running
            .iter()
            .map(Attempt::hedge_at)
            .min()
            .filter(|_| may_hedge);
        let hedge_due = hedge_at.is_some_and(|at| at <= tokio::time::Instant::now());
        if running.is_empty() || hedge_due {
            let Some(r) = untried.next() else { break };
            match dp.addr_of(&r) {
                Some(addr) => {
                    if hedge_due {
                        dp.metrics.read_hedges.inc();
                        tracing::debug!(chunk = %chunk.id, server = %r, "no answer yet from a replica; asking another as well");
                    }
                    running.push(Attempt::start(dp, r, addr, chunk, whole, &part, &silent));
                }
                None => errors.push(format!("{r}: unknown server")),
            }
            continue;
        }
        let (r, read) = tokio::select! {
            Some(done) = running.next() => done,
            _ = sleep_until_some(hedge_at) => continue,
        };
        match read {
            Ok((data, served_sum)) => {
                let ok_len = data.len() as u64 == part.end - part.start;
                let ok_sum = match (expected, whole) {
                    (None, _) => true,
                    (Some(e), true) => Checksum::of(&data) == e,
                    (Some(e), false) => served_sum.is_some_and(|s| s == e),
                };
                if ok_len && ok_sum {
                    if !bad.is_empty() {
                        dp.repairs.read_repair(chunk, &r, &bad);
                    }
                    if let (true, Some(sum)) = (whole, expected) {
                        // Read into a buffer of the pool's size for its length.
                        let held = crate::buffers::footprint(data.len());
                        dp.cache.keep(&chunk.id, sum, &data, held);
                    }
                    return Ok(data);
                }
                dp.metrics
                    .replica_failures
                    .with_label_values(&["read"])
                    .inc();
                tracing::warn!(chunk = %chunk.id, server = %r, "replica returned bad data; trying another");
                errors.push(format!("{r}: checksum or length mismatch"));
                bad.push(r);
            }
            Err((e, corrupt)) => {
                dp.metrics
                    .replica_failures
                    .with_label_values(&["read"])
                    .inc();
                tracing::warn!(chunk = %chunk.id, server = %r, error = %e, "replica read failed; trying another");
                errors.push(format!("{r}: {e}"));
                if corrupt {
                    bad.push(r);
                }
            }
        }
    }
    Err(std::io::Error::other(format!(
        "no replica of chunk {} could be read: {}",
        chunk.id,
        errors.join("; ")
    )))
}

/// `part` of `data`, or `None` when it does not lie within.
fn slice(data: &Bytes, part: &Range<u64>) -> Option<Bytes> {
    let start = usize::try_from(part.start).ok()?;
    let end = usize::try_from(part.end).ok()?;
    (start <= end && end <= data.len()).then(|| data.slice(start..end))
}

/// Replicas read from at once at most: the first, and one hedge.
const HEDGED: usize = 2;

/// How long a replica may go without answering (no response yet) before the next replica is
/// asked as well. A stopped or stuck server then delays a read by this much, not by its
/// session timeout or the read's own timeout (a standby, which takes no heartbeats, cannot
/// tell such a server is silent); whichever copy arrives verified first is used, the other
/// read is dropped.
pub const HEDGE_AFTER: Duration = Duration::from_secs(1);

/// Sleeps until `at`, or for ever when there is no time to wake at.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One replica being read: its answer, and whether its server has answered yet.
struct Attempt {
    started: tokio::time::Instant,
    answered: Arc<AtomicBool>,
    read: futures::future::BoxFuture<'static, (ServerId, ReadResult)>,
}

type ReadResult = Result<(Bytes, Option<Checksum>), (String, bool)>;

impl Attempt {
    fn start(
        dp: &Arc<DataPlane>,
        r: ServerId,
        addr: String,
        chunk: &ChunkRef,
        whole: bool,
        part: &Range<u64>,
        silent: &[ServerId],
    ) -> Self {
        let answered = Arc::new(AtomicBool::new(false));
        let (dp, id, len) = (dp.clone(), chunk.id.clone(), chunk.len);
        let asked = (!whole).then(|| part.clone());
        let (flag, silent) = (answered.clone(), silent.to_vec());
        let read = async move {
            // A replica whose server leaves the grid or falls silent while it is read from
            // is given up for the next one at once: a stopped server would hold the read
            // until its timeout.
            let ids = std::slice::from_ref(&r);
            let read = tokio::select! {
                read = get_chunk(&dp, &addr, &id, len, asked, &flag) => read,
                _ = dp.membership.until_gone(ids, &silent) => {
                    Err(("left the grid or fell silent during the read".to_string(), false))
                }
            };
            (r, read)
        }
        .boxed();
        Attempt {
            started: tokio::time::Instant::now(),
            answered,
            read,
        }
    }

    fn answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    fn hedge_at(&self) -> tokio::time::Instant {
        self.started + HEDGE_AFTER
    }
}

impl std::future::Future for Attempt {
    type Output = (ServerId, ReadResult);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.read.as_mut().poll(cx)
    }
}

/// GETs a chunk, or `range` of it, with the checksum the server has for the whole chunk; the
/// error's flag says whether the failure means the copy is bad or missing (worth rewriting)
/// rather than the server being unreachable.
async fn get_chunk(
    dp: &DataPlane,
    addr: &str,
    id: &str,
    len: u64,
    range: Option<Range<u64>>,
    answered: &AtomicBool,
) -> ReadResult {
    if range.as_ref().is_some_and(|r| r.is_empty()) {
        return Ok((Bytes::new(), None));
    }
    let len = range.as_ref().map_or(len, |r| r.end - r.start);
    let read = dp
        .chunks
        .get(addr, id, range, Duration::from_secs(30))
        .await
        .map_err(|e| {
            // A missing, mismatching or unreadable copy is worth rewriting; a server that
            // did not answer is not.
            let bad_copy = matches!(e.status(), Some(404 | 422 | 500));
            (e.detail(), bad_copy)
        })?;
    answered.store(true, Ordering::Relaxed);
    let served_sum = read.checksum;
    let resp = read.body;
    // Into one buffer of the expected size (no doubling as it grows), reused from earlier
    // chunks. A server that detects corruption mid-stream aborts the body.
    let mut buf = dp.buffers.take(usize::try_from(len).unwrap_or(usize::MAX));
    let mut body = resp.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| (e.to_string(), true))?;
        if (buf.len() + piece.len()) as u64 > len {
            return Err(("longer than the manifest says".into(), true));
        }
        buf.extend_from_slice(&piece);
    }
    Ok((buf.freeze(), served_sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |h: &str| parse_range(Some(h), 100);
        assert_eq!(
            r("bytes=0-9").unwrap(),
            Some(ByteRange { start: 0, end: 10 })
        );
        assert_eq!(
            r("bytes=90-").unwrap(),
            Some(ByteRange {
                start: 90,
                end: 100
            })
        );
        assert_eq!(
            r("bytes=-5").unwrap(),
            Some(ByteRange {
                start: 95,
                end: 100
            })
        );
        assert_eq!(
            r("bytes=50-500").unwrap(),
            Some(ByteRange {
                start: 50,
                end: 100
            })
        );
        assert!(r("bytes=100-").is_err());
        assert!(r("bytes=9-3").is_err());
        assert!(r("bytes=a-b").is_err());
        assert!(r("items=0-1").is_err());
        assert!(r("bytes=0-1,4-5").is_err());
        assert_eq!(parse_range(None, 100).unwrap(), None);
    }
}
