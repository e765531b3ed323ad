//! The one client for the chunk API: every call a head or a cluster server makes to a cluster
//! server goes through [`ChunkClient`] (uploads through a pipeline, range reads, replication,
//! block reports, deletes). Each call answers a typed [`ChunkCallError`] whose
//! [`ErrorCode`] the caller acts on, and records its latency and errors per operation and
//! server (`filegrid_chunk_client_seconds`, `filegrid_chunk_client_errors_total`).

use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;
use filegrid_proto::chunk::{
    DeleteRequest, DeleteResponse, ListResponse, PutResponse, ReplicateRequest,
};
use filegrid_proto::{ErrorBody, ErrorCode, headers};
use futures::Stream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::auth::PeerSigner;
use crate::auth::peer::{Signed, body_digest};
use crate::chunk::Checksum;
use crate::http::{Outgoing, PeerClient};

/// Characters escaped in a URL path segment: everything but unreserved ones (RFC 3986).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `http://{addr}/v1/chunks/{id}{suffix}`, the id escaped as a path segment.
pub fn chunk_url(addr: &str, id: &str, suffix: &str) -> String {
    format!("http://{addr}{}", chunk_path(id, suffix))
}

/// `/v1/chunks/{id}{suffix}`, as [`chunk_url`] sends it (and as signatures cover it).
pub fn chunk_path(id: &str, suffix: &str) -> String {
    format!("/v1/chunks/{}{suffix}", utf8_percent_encode(id, SEGMENT))
}

/// Why a chunk API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkCallError {
    /// No answer: connection refused or broken, timeout.
    #[error("{addr}: {message}")]
    Unreachable { addr: String, message: String },
    /// The server answered with an error.
    #[error("{addr}: HTTP {status}: {body}")]
    Refused {
        addr: String,
        status: u16,
        body: ErrorBody,
    },
    /// The server answered something this build cannot read.
    #[error("{addr}: bad answer: {message}")]
    BadAnswer { addr: String, message: String },
}

impl ChunkCallError {
    /// The error code: the server's, or [`ErrorCode::Unavailable`] when it gave none.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused { body, .. } => body.code,
            Self::Unreachable { .. } | Self::BadAnswer { .. } => ErrorCode::Unavailable,
        }
    }

    /// The HTTP status the server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The message without the address.
    pub fn detail(&self) -> String {
        match self {
            Self::Unreachable { message, .. } | Self::BadAnswer { message, .. } => message.clone(),
            Self::Refused { status, body, .. } => format!("HTTP {status}: {body}"),
        }
    }
}

/// The metrics of a [`ChunkClient`].
#[derive(Clone, Debug)]
struct ClientMetrics {
    seconds: HistogramVec,
    errors: IntCounterVec,
}

impl ClientMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            seconds: HistogramVec::new(
                HistogramOpts::new(
                    "filegrid_chunk_client_seconds",
                    "Chunk API calls made by this process, until the answer's head (for PUT: the whole answer)",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
                &["op", "server"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "filegrid_chunk_client_errors_total",
                    "Chunk API calls made by this process that failed, by error code",
                ),
                &["op", "server", "code"],
            )?,
        };
        registry.register(Box::new(m.seconds.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        Ok(m)
    }
}

/// Timeouts and TLS of a [`ChunkClient`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// Longest silence while reading an answer; `None` leaves it to the caller.
    pub read_timeout: Option<Duration>,
    pub pool_max_idle_per_host: usize,
    /// TLS of the calls; with [`Outgoing::https`] every call uses `https://`.
    pub tls: Outgoing,
}

/// What a chunk `PUT` carries besides its body.
#[derive(Clone, Copy, Debug)]
pub struct PutChunk<'a> {
    pub id: &'a str,
    /// Epoch of the leader the write runs under.
    pub epoch: u64,
    /// The hops after the first, which each store and forward.
    pub pipeline: &'a [String],
    /// Length, when known (sent as Content-Length so the hop can check it).
    pub len: Option<u64>,
    /// Checksum, when known (the hop refuses data that does not match).
    pub checksum: Option<Checksum>,
    /// The hop progress timeout the pipeline's hops apply (see
    /// [`super::pipeline::stall_limit`]); `None` leaves them to their fixed wait.
    pub progress: Option<Duration>,
}

/// A chunk read's answer: the checksum the server has for the whole chunk and the body.
pub struct ChunkRead {
    pub checksum: Option<Checksum>,
    pub body: reqwest::Response,
}

/// The client of the chunk API, shared by every caller in a process.
#[derive(Clone, Debug)]
pub struct ChunkClient {
    http: PeerClient,
    /// The same without a read timeout or a TCP user timeout, for uploads watched for
    /// progress instead ([`ChunkClient::put_watched`], pipeline forwarding).
    uploads: PeerClient,
    metrics: ClientMetrics,
    /// Signs every request, on grids with a cluster secret.
    signer: Option<PeerSigner>,
}

impl ChunkClient {
    /// Builds the client and registers its metrics into `registry`.
    pub fn new(options: ClientOptions, registry: &Registry) -> Result<Self, ClientError> {
        let builder = || {
            options
                .tls
                .apply(reqwest::Client::builder())
                .no_proxy()
                .connect_timeout(options.connect_timeout)
                .pool_max_idle_per_host(options.pool_max_idle_per_host)
        };
        let http = match options.read_timeout {
            Some(t) => builder().read_timeout(t).build()?,
            None => builder().build()?,
        };
        // Uploads watched for progress have no read timeout and no TCP user timeout (HTTP
        // libraries set 30 s by default): the watch bounds their silence, so a
        // `hop_progress_timeout` over 30 s is kept rather than cut short by the kernel.
        let uploads = builder().tcp_user_timeout(None).build()?;
        Ok(Self {
            uploads: PeerClient::new(uploads, options.tls.https()),
            http: PeerClient::new(http, options.tls.https()),
            metrics: ClientMetrics::register(registry)?,
            signer: None,
        })
    }

    /// The same client, signing every request as `signer`.
    pub fn with_signer(mut self, signer: Option<PeerSigner>) -> Self {
        self.signer = signer;
        self
    }

    /// Adds the peer signature over `signed`, when this client signs.
    fn sign(&self, req: reqwest::RequestBuilder, signed: Signed<'_>) -> reqwest::RequestBuilder {
        match &self.signer {
            Some(signer) => req.header(headers::PEER_AUTH, signer.header(&signed)),
            None => req,
        }
    }

    /// Streams a chunk to `hop`, which stores it and forwards it down `put.pipeline`;
    /// answers who stored it. Dropping the future mid-body aborts the connection, so the
    /// hop stores nothing.
    pub async fn put<S>(
        &self,
        hop: &str,
        put: PutChunk<'_>,
        body: S,
    ) -> Result<PutResponse, ChunkCallError>
    where
        S: Into<reqwest::Body>,
    {
        self.put_on(&self.http, hop, put, body).await
    }

    /// Sends `data` to `hop` as [`ChunkClient::put`] does, but gives the hop up when it
    /// takes no byte, or gives no answer after the last one, for
    /// [`stall_limit`](super::pipeline::stall_limit)`(progress, hops after it)`, however
    /// long the whole transfer takes: a slow but moving pipeline is waited for, a hung one
    /// is not.
    pub async fn put_watched(
        &self,
        hop: &str,
        put: PutChunk<'_>,
        data: Bytes,
        progress: Duration,
    ) -> Result<PutResponse, ChunkCallError> {
        let put = PutChunk {
            progress: Some(progress),
            ..put
        };
        let limit = super::pipeline::stall_limit(progress, put.pipeline.len());
        let watch = super::progress::Watch::new();
        let body = reqwest::Body::wrap_stream(watch.stream(data));
        tokio::select! {
            answer = self.put_on(&self.uploads, hop, put, body) => answer,
            idle = watch.stalled(limit) => Err(ChunkCallError::Unreachable {
                addr: hop.to_string(),
                message: format!("no progress for {idle:?} (hop progress timeout)"),
            }),
        }
    }

    async fn put_on<S>(
        &self,
        http: &PeerClient,
        hop: &str,
        put: PutChunk<'_>,
        body: S,
    ) -> Result<PutResponse, ChunkCallError>
    where
        S: Into<reqwest::Body>,
    {
        let path = chunk_path(put.id, "");
        let mut req = http
            .put(format!("http://{hop}{path}"))
            .header(headers::EPOCH, put.epoch);
        if let Some(p) = put.progress {
            req = req.header(headers::HOP_PROGRESS, p.as_millis().to_string());
        }
        let pipeline = put.pipeline.join(",");
        if !put.pipeline.is_empty() {
            req = req.header(headers::PIPELINE, &pipeline);
        }
        if let Some(len) = put.len {
            req = req.header(reqwest::header::CONTENT_LENGTH, len);
        }
        let checksum = put.checksum.map(|c| c.to_string());
        if let Some(c) = &checksum {
            req = req.header(headers::CHECKSUM, c);
        }
        let req = self.sign(
            req,
            Signed {
                method: "PUT",
                path_and_query: &path,
                epoch: Some(put.epoch),
                checksum: checksum.as_deref(),
                pipeline: (!pipeline.is_empty()).then_some(pipeline.as_str()),
                content_length: put.len,
                body_digest: None,
            },
        );
        self.timed("put", hop, async {
            let resp = send(hop, req.body(body)).await?;
            json(hop, expect(hop, resp, reqwest::StatusCode::CREATED).await?).await
        })
        .await
    }

    /// Streams a chunk body to `hop` from `stream` (the pipeline's forwarding).
    pub async fn put_stream<S>(
        &self,
        hop: &str,
        put: PutChunk<'_>,
        stream: S,
    ) -> Result<PutResponse, ChunkCallError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        // Forwarding is always watched (the hop's stall limit), so it goes without a TCP
        // user timeout too.
        self.put_on(&self.uploads, hop, put, reqwest::Body::wrap_stream(stream))
            .await
    }

    /// Reads a chunk, or `range` of it, from `addr`. Answers once the head arrived; the
    /// caller reads the body (a server that finds corruption mid-stream aborts it).
    pub async fn get(
        &self,
        addr: &str,
        id: &str,
        range: Option<Range<u64>>,
        timeout: Duration,
    ) -> Result<ChunkRead, ChunkCallError> {
        let path = chunk_path(id, "");
        let mut req = self.sign(
            self.http
                .get(format!("http://{addr}{path}"))
                .timeout(timeout),
            Signed {
                method: "GET",
                path_and_query: &path,
                ..Signed::default()
            },
        );
        let wanted = match &range {
            Some(r) => {
                req = req.header(
                    reqwest::header::RANGE,
                    format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
                );
                reqwest::StatusCode::PARTIAL_CONTENT
            }
            None => reqwest::StatusCode::OK,
        };
        self.timed("get", addr, async {
            let resp = expect(addr, send(addr, req).await?, wanted).await?;
            let checksum = resp
                .headers()
                .get(headers::CHECKSUM)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            Ok(ChunkRead {
                checksum,
                body: resp,
            })
        })
        .await
    }

    /// Asks `source` to copy its verified copy of `id` to `request.targets`.
    pub async fn replicate(
        &self,
        source: &str,
        id: &str,
        request: &ReplicateRequest,
    ) -> Result<PutResponse, ChunkCallError> {
        let path = chunk_path(id, "/replicate");
        self.post_json("replicate", source, &path, request).await
    }

    /// The block report of `addr`: every chunk it holds and its space figures.
    pub async fn list(&self, addr: &str) -> Result<ListResponse, ChunkCallError> {
        let req = self.sign(
            self.http.get(format!("http://{addr}/v1/chunks")),
            Signed {
                method: "GET",
                path_and_query: "/v1/chunks",
                ..Signed::default()
            },
        );
        self.timed("list", addr, async {
            let resp = send(addr, req).await?;
            json(addr, expect(addr, resp, reqwest::StatusCode::OK).await?).await
        })
        .await
    }

    /// Deletes `id` on `addr` under `epoch`.
    pub async fn delete(&self, addr: &str, id: &str, epoch: u64) -> Result<(), ChunkCallError> {
        let path = chunk_path(id, "");
        let req = self.sign(
            self.http
                .delete(format!("http://{addr}{path}"))
                .header(headers::EPOCH, epoch),
            Signed {
                method: "DELETE",
                path_and_query: &path,
                epoch: Some(epoch),
                ..Signed::default()
            },
        );
        self.timed("delete", addr, async {
            let resp = send(addr, req).await?;
            expect(addr, resp, reqwest::StatusCode::NO_CONTENT)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Deletes `ids` (at most [`filegrid_proto::chunk::MAX_DELETE_BATCH`]) on `addr` under `epoch` with one call.
    pub async fn delete_many(
        &self,
        addr: &str,
        ids: &[String],
        epoch: u64,
    ) -> Result<DeleteResponse, ChunkCallError> {
        let request = DeleteRequest {
            epoch,
            chunks: ids.to_vec(),
        };
        self.post_json("delete_batch", addr, "/v1/chunk-deletions", &request)
            .await
    }

    /// A signed `POST` of a JSON order to `addr`, answered `200` with JSON. The epoch is in
    /// the body, which the signature covers through its digest.
    async fn post_json<B, T>(
        &self,
        op: &str,
        addr: &str,
        path: &str,
        request: &B,
    ) -> Result<T, ChunkCallError>
    where
        B: serde::Serialize,
        T: serde::de::DeserializeOwned,
    {
        let body = serde_json::to_vec(request).map_err(|e| ChunkCallError::BadAnswer {
            addr: addr.to_string(),
            message: format!("cannot encode the request: {e}"),
        })?;
        let digest = body_digest(&body);
        let req = self.sign(
            self.http
                .post(format!("http://{addr}{path}"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
            Signed {
                method: "POST",
                path_and_query: path,
                body_digest: Some(&digest),
                ..Signed::default()
            },
        );
        self.timed(op, addr, async {
            let resp = send(addr, req).await?;
            json(addr, expect(addr, resp, reqwest::StatusCode::OK).await?).await
        })
        .await
    }

    async fn timed<T>(
        &self,
        op: &str,
        server: &str,
        call: impl Future<Output = Result<T, ChunkCallError>>,
    ) -> Result<T, ChunkCallError> {
        let start = Instant::now();
        let result = call.await;
        self.metrics
            .seconds
            .with_label_values(&[op, server])
            .observe(start.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics
                .errors
                .with_label_values(&[op, server, e.code().as_str()])
                .inc();
        }
        result
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("building the chunk API client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("registering the chunk client's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

async fn send(
    addr: &str,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ChunkCallError> {
    req.send().await.map_err(|e| ChunkCallError::Unreachable {
        addr: addr.to_string(),
        message: describe(&e),
    })
}

/// The answer if it has `wanted` status; otherwise the server's error body.
async fn expect(
    addr: &str,
    resp: reqwest::Response,
    wanted: reqwest::StatusCode,
) -> Result<reqwest::Response, ChunkCallError> {
    let status = resp.status();
    if status == wanted {
        return Ok(resp);
    }
    if status.is_success() {
        return Err(ChunkCallError::BadAnswer {
            addr: addr.to_string(),
            message: format!("HTTP {status} where {wanted} was expected"),
        });
    }
    let text = error_text(resp).await;
    let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| {
        let code = match status.as_u16() {
            404 => ErrorCode::NotFound,
            507 => ErrorCode::StorageFull,
            _ => ErrorCode::Unknown,
        };
        ErrorBody::new(code, text.chars().take(300).collect::<String>())
    });
    Err(ChunkCallError::Refused {
        addr: addr.to_string(),
        status: status.as_u16(),
        body,
    })
}

/// Longest error body read from a server: ours are a few hundred bytes, and a server that
/// sends more must not make the caller buffer it.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The start of an error answer's body, at most [`MAX_ERROR_BODY`] bytes; the rest is not read.
async fn error_text(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < MAX_ERROR_BODY {
        match resp.chunk().await {
            Ok(Some(piece)) => {
                let room = MAX_ERROR_BODY - buf.len();
                buf.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn json<T: serde::de::DeserializeOwned>(
    addr: &str,
    resp: reqwest::Response,
) -> Result<T, ChunkCallError> {
    resp.json::<T>()
        .await
        .map_err(|e| ChunkCallError::BadAnswer {
            addr: addr.to_string(),
            message: describe(&e),
        })
}

/// The error with its causes, since reqwest's top-level message alone is vague.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ids_are_escaped_as_one_path_segment() {
        assert_eq!(chunk_url("h:1", "ab-0", ""), "http://h:1/v1/chunks/ab-0");
        assert_eq!(
            chunk_url("h:1", "a/../b c", "/replicate"),
            "http://h:1/v1/chunks/a%2F..%2Fb%20c/replicate"
        );
    }

    #[test]
    fn an_error_without_a_body_keeps_its_meaning() {
        let e = ChunkCallError::Refused {
            addr: "h:1".into(),
            status: 507,
            body: ErrorBody::new(ErrorCode::StorageFull, "full"),
        };
        assert_eq!(e.code(), ErrorCode::StorageFull);
        assert_eq!(e.status(), Some(507));
        let u = ChunkCallError::Unreachable {
            addr: "h:1".into(),
            message: "refused".into(),
        };
        assert_eq!(u.code(), ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn a_huge_error_body_is_not_read_to_its_end() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A peer that promises a 1 GiB error body, sends 256 KiB of it and then stalls.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4096];
            let _ = sock.read(&mut req).await;
            let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 1073741824\r\n\r\n";
            sock.write_all(head.as_bytes()).await.unwrap();
            sock.write_all(&vec![b'x'; 256 * 1024]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(2),
            read_timeout: None,
            pool_max_idle_per_host: 1,
            tls: Default::default(),
        };
        let client = ChunkClient::new(options, &Registry::new()).unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), client.list(&addr))
            .await
            .expect("the call returns without waiting for the rest of the body");
        match answer {
            Err(ChunkCallError::Refused { status, body, .. }) => {
                assert_eq!(status, 500);
                assert_eq!(body.code, ErrorCode::Unknown);
                assert!(body.message.len() <= 300, "{}", body.message.len());
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
