//! Routes and handlers of the chunk API.

use filegrid_proto::ErrorCode;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, BodyDataStream};
use axum::extract::Extension;
use axum::extract::rejection::JsonRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;

use super::client::ChunkClient;
use super::error::ApiError;
use super::fence::EpochFence;
use super::metrics::ClusterMetrics;
use super::pipeline::{self, Downstream, Failure, PutResponse};
use super::{ApiOptions, CHECKSUM_HEADER, EPOCH_HEADER, PIPELINE_HEADER};
use crate::chunk::{Checksum, ChunkId, ChunkMeta, ChunkStore, ScrubHandle, StoreError};
use crate::http::range::{self, RangeError};
use filegrid_proto::chunk::{
    DeleteFailure, DeleteRequest, DeleteResponse, ListEntry, ListResponse, MAX_DELETE_BATCH,
    ReplicateRequest,
};
use filegrid_proto::headers::HOP_PROGRESS;

/// State shared by all requests.
#[derive(Debug)]
pub(super) struct Inner {
    pub store: Arc<ChunkStore>,
    pub fence: EpochFence,
    pub metrics: ClusterMetrics,
    pub client: ChunkClient,
    pub options: ApiOptions,
    /// The process's metrics, served at `/metrics`.
    pub registry: prometheus::Registry,
    pub scrub: Option<ScrubHandle>,
}

impl Inner {
    pub fn refresh_metrics(&self) {
        let progress = self.scrub.as_ref().map(ScrubHandle::progress);
        self.metrics.refresh(&self.store, progress);
    }
}

type Shared = State<Arc<Inner>>;

pub(super) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route(
            "/v1/chunks/{id}",
            get(get_chunk)
                .head(head_chunk)
                .put(put_chunk)
                .delete(delete_chunk),
        )
        .route("/v1/chunks", get(list_chunks))
        .route("/v1/chunks/{id}/replicate", post(replicate_chunk))
        .route("/v1/chunk-deletions", post(delete_chunks))
        .route_layer(middleware::from_fn_with_state(inner.clone(), verify_peer))
        .with_state(inner.clone())
        .merge(crate::http::ops_router(
            inner.registry.clone(),
            readiness(&inner),
        ))
        .route_layer(middleware::from_fn_with_state(inner, track))
}

/// Counts every request by operation and status, and times it to the response head.
async fn track(State(s): Shared, req: Request, next: Next) -> Response {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
    let op = match (req.method(), path) {
        (&Method::PUT, Some("/v1/chunks/{id}")) => "put",
        (&Method::GET, Some("/v1/chunks/{id}")) => "get",
        (&Method::HEAD, Some("/v1/chunks/{id}")) => "head",
        (&Method::DELETE, Some("/v1/chunks/{id}")) => "delete",
        (_, Some("/v1/chunks")) => "list",
        (_, Some("/v1/chunks/{id}/replicate")) => "replicate",
        (_, Some("/v1/chunk-deletions")) => "delete_batch",
        (_, Some("/health")) => "health",
        (_, Some("/ready")) => "ready",
        _ => "other",
    };
    let started = Instant::now();
    let resp = next.run(req).await;
    s.metrics
        .request_seconds
        .with_label_values(&[op])
        .observe(started.elapsed().as_secs_f64());
    s.metrics
        .requests_total
        .with_label_values(&[op, resp.status().as_str()])
        .inc();
    resp
}

/// The verified signer of a chunk API request (absent when running insecure).
#[derive(Clone, Debug)]
pub(super) struct Signer(pub String);

/// Largest body read whole to check its signature (replicate orders).
const SIGNED_BODY_LIMIT: usize = 64 * 1024;

/// Middleware: on grids with a cluster secret, every chunk API call must carry a valid peer
/// signature; the signer is handed to the handler, which decides what it may do.
async fn verify_peer(State(s): Shared, req: Request, next: Next) -> Response {
    let Some(peer) = &s.options.peer else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    // Bodies sent whole (replicate orders) are covered by their digest; chunk data by the
    // checksum the signature covers and the replica's signed acknowledgement.
    let (body, digest) = if parts.method == Method::POST {
        match axum::body::to_bytes(body, SIGNED_BODY_LIMIT).await {
            Ok(bytes) => {
                let digest = crate::auth::peer::body_digest(&bytes);
                (Body::from(bytes), Some(digest))
            }
            Err(_) => {
                return ApiError::new(ErrorCode::TooLarge, "signed request body too large")
                    .into_response();
            }
        }
    } else {
        (body, None)
    };
    let h = &parts.headers;
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let signed = crate::auth::peer::Signed {
        method: parts.method.as_str(),
        path_and_query: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        epoch: text(EPOCH_HEADER).and_then(|v| v.trim().parse().ok()),
        checksum: text(CHECKSUM_HEADER),
        pipeline: text(PIPELINE_HEADER),
        // A body read whole is covered by its digest instead of its length.
        content_length: match digest {
            Some(_) => None,
            None => text(header::CONTENT_LENGTH.as_str()).and_then(|v| v.trim().parse().ok()),
        },
        body_digest: digest.as_deref(),
    };
    match peer
        .verifier
        .verify(text(filegrid_proto::headers::PEER_AUTH), &signed)
    {
        Ok(signer) => {
            let mut req = Request::from_parts(parts, body);
            req.extensions_mut().insert(Signer(signer));
            next.run(req).await
        }
        Err(e) => {
            tracing::info!(method = %parts.method, path = %parts.uri.path(), error = %e, "refused an unsigned or badly signed chunk request");
            ApiError::new(ErrorCode::BadSignature, e.to_string()).into_response()
        }
    }
}

/// Checks that the request's signer may do `act` at `epoch`, when signatures are on; a
/// leadership newer than the one this server has read is waited for up to `epoch_wait`.
async fn permit(
    s: &Inner,
    signer: Option<&Signer>,
    act: super::authority::Act,
    epoch: Option<u64>,
) -> Result<(), ApiError> {
    match (&s.options.peer, signer) {
        (None, _) => Ok(()),
        (Some(peer), Some(Signer(id))) => {
            peer.directory
                .permit_waiting(id, act, epoch, s.options.epoch_wait)
                .await
        }
        (Some(_), None) => Err(ApiError::new(ErrorCode::BadSignature, "not signed")),
    }
}

/// Admits a request stamped with `epoch` that does `act`: the epoch fence first (stale or
/// unconfirmed epochs are refused), then the signer's permission at that epoch.
async fn admit(
    s: &Inner,
    signer: Option<&Signer>,
    act: super::authority::Act,
    epoch: u64,
) -> Result<(), ApiError> {
    s.fence.admit(epoch, s.options.epoch_wait).await?;
    permit(s, signer, act, Some(epoch)).await
}

/// Checks pipeline or replication targets against the registered servers, when
/// signatures are on (without them, only repeats are refused).
fn check_targets(s: &Inner, hops: &[String]) -> Result<(), ApiError> {
    match &s.options.peer {
        Some(peer) => super::authority::check_pipeline(
            &peer.directory.view(),
            &s.options.advertise,
            hops,
            peer.max_pipeline,
        ),
        None => {
            for (i, hop) in hops.iter().enumerate() {
                if *hop == s.options.advertise || hops[..i].contains(hop) {
                    return Err(ApiError::new(
                        ErrorCode::BadPipeline,
                        format!("{hop} appears twice in the pipeline"),
                    ));
                }
            }
            Ok(())
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::new(ErrorCode::BadHeader, format!("{name} is not ASCII")))
        })
        .transpose()
}

fn epoch_header(headers: &HeaderMap) -> Result<u64, ApiError> {
    let value = header_str(headers, EPOCH_HEADER)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingEpoch,
            format!("the {EPOCH_HEADER} header is required"),
        )
    })?;
    value.trim().parse().map_err(|_| {
        ApiError::new(
            ErrorCode::BadEpoch,
            format!("{EPOCH_HEADER} {value:?} is not a number"),
        )
    })
}

fn checksum_header(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    header_str(headers, CHECKSUM_HEADER)?
        .map(|v| {
            v.parse()
                .map_err(|e| ApiError::new(ErrorCode::BadChecksum, format!("{e}")))
        })
        .transpose()
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    header_str(headers, header::CONTENT_LENGTH.as_str())?
        .map(|v| {
            v.trim().parse().map_err(|_| {
                ApiError::new(ErrorCode::BadContentLength, format!("Content-Length {v:?}"))
            })
        })
        .transpose()
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::ChunkTooLarge,
        format!("chunks are limited to {max} bytes"),
    )
}

/// `PUT /v1/chunks/{id}`: store the streamed body and forward it down the pipeline.
async fn put_chunk(
    State(s): Shared,
    Path(id): Path<String>,
    signer: Option<Extension<Signer>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PutResponse>), ApiError> {
    let mut frames = body.into_data_stream();
    let signer = signer.map(|Extension(s)| s);
    let result = receive_chunk(&s, id, signer.as_ref(), &headers, &mut frames).await;
    if let Err(e) = &result
        && e.code() != ErrorCode::TruncatedBody
    {
        // Read the rest of a refused upload before answering: a server that answers and
        // closes while the client is still sending makes the client see a broken pipe
        // instead of the answer (e.g. 507, which tells the head to place the chunk elsewhere).
        drain(
            &mut frames,
            s.options.max_chunk_bytes,
            s.options.downstream_timeout,
        )
        .await;
    }
    result
}

/// Discards up to `limit` bytes of a request body, for at most `timeout`.
async fn drain(frames: &mut BodyDataStream, limit: u64, timeout: Duration) {
    let discard = async {
        let mut seen = 0u64;
        while let Some(Ok(data)) = frames.next().await {
            seen += data.len() as u64;
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, discard).await;
}

async fn receive_chunk(
    s: &Inner,
    id: String,
    signer: Option<&Signer>,
    headers: &HeaderMap,
    frames: &mut BodyDataStream,
) -> Result<(StatusCode, Json<PutResponse>), ApiError> {
    let id = ChunkId::new(id)?;
    let epoch = epoch_header(headers)?;
    admit(s, signer, super::authority::Act::Write, epoch).await?;
    let expected = checksum_header(headers)?;
    let len = content_length(headers)?;
    let max = s.options.max_chunk_bytes;
    if len.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let hops = pipeline::parse_pipeline(header_str(headers, PIPELINE_HEADER)?.unwrap_or(""))
        .map_err(|e| ApiError::new(ErrorCode::BadPipeline, e))?;
    check_targets(s, &hops)?;
    let progress = pipeline::parse_progress(header_str(headers, HOP_PROGRESS)?);

    let mut writer = s.store.writer(id.clone(), len).await?;
    let mut downstream = hops.split_first().map(|(hop, rest)| {
        let upload = pipeline::Upload {
            id: &id,
            epoch,
            hop,
            rest,
            len,
            checksum: expected,
            progress,
        };
        // Without a progress timeout from the sender, the fixed wait of older senders.
        let wait = progress.map_or(s.options.downstream_timeout, |p| {
            pipeline::stall_limit(p, rest.len())
        });
        Downstream::start(&s.client, wait, upload)
    });
    while let Some(frame) = frames.next().await {
        let data = match frame {
            Ok(data) => data,
            Err(e) => {
                // Dropping the downstream request and the writer leaves nothing stored anywhere.
                tracing::info!(chunk = %id, error = %e, "chunk upload broke off");
                return Err(ApiError::new(
                    ErrorCode::TruncatedBody,
                    format!(
                        "the request body broke off after {} bytes: {e}",
                        writer.written()
                    ),
                ));
            }
        };
        s.metrics.bytes_in_total.inc_by(data.len() as u64);
        if writer.written() + data.len() as u64 > max {
            return Err(too_large(max));
        }
        if let Some(d) = downstream.as_mut() {
            d.send(data.clone()).await;
        }
        writer.write(&data).await?;
    }

    let finish_downstream = async {
        match downstream {
            Some(d) => Some(d.finish().await),
            None => None,
        }
    };
    let (local, outcome) = tokio::join!(writer.finish(expected), finish_downstream);
    let meta = local?;
    let response = pipeline::merge(
        &s.options.advertise,
        &meta,
        outcome,
        own_ack(s, &meta, epoch),
    );
    s.refresh_metrics();
    tracing::debug!(chunk = %id, len = meta.len, stored = ?response.stored, failed = ?response.failed, "chunk stored");
    Ok((StatusCode::CREATED, Json(response)))
}

/// This server's signed acknowledgement of `meta`, when it signs.
fn own_ack(s: &Inner, meta: &ChunkMeta, epoch: u64) -> Option<filegrid_proto::chunk::Ack> {
    let peer = s.options.peer.as_ref()?;
    Some(filegrid_proto::chunk::Ack {
        addr: s.options.advertise.clone(),
        server: peer.signer.id().to_string(),
        sig: peer.signer.ack(
            meta.id.as_str(),
            &meta.checksum.to_string(),
            meta.len,
            epoch,
        ),
    })
}

/// `GET /v1/chunks/{id}`: the chunk or a `Range` of it, verified while streaming.
async fn get_chunk(
    State(s): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = ChunkId::new(id)?;
    let meta = s.store.meta(&id)?;
    let range = match header_str(&headers, header::RANGE.as_str())? {
        None => None,
        Some(value) => match range::parse(value, meta.len) {
            Ok(r) => Some(r),
            Err(RangeError::Malformed(m)) => {
                return Err(ApiError::with_status(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadRange,
                    m,
                ));
            }
            Err(RangeError::Unsatisfiable) => {
                let err = ApiError::new(
                    ErrorCode::RangeNotSatisfiable,
                    format!("range {value:?} is outside the chunk of {} bytes", meta.len),
                );
                let content_range = format!("bytes */{}", meta.len);
                return Ok(([(header::CONTENT_RANGE, content_range)], err).into_response());
            }
        },
    };
    let partial = range.is_some();
    let read = s.store.read(&id, range).await?;
    let bytes_out = s.metrics.bytes_out_total.clone();
    let body = read.body.map(move |item| match item {
        Ok(bytes) => {
            bytes_out.inc_by(bytes.len() as u64);
            Ok(bytes)
        }
        // An error item aborts the response, so the client never takes wrong bytes as whole.
        Err(e) => Err(io::Error::other(e)),
    });
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    chunk_headers(h, &read.meta);
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(read.range.end - read.range.start),
    );
    if partial {
        let value = format!(
            "bytes {}-{}/{}",
            read.range.start,
            read.range.end - 1,
            read.meta.len
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

fn chunk_headers(h: &mut HeaderMap, meta: &ChunkMeta) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&meta.checksum.to_string()) {
        h.insert(CHECKSUM_HEADER, v);
    }
}

/// `HEAD /v1/chunks/{id}`: length and checksum without the data.
async fn head_chunk(State(s): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = ChunkId::new(id)?;
    let entry = s.store.entry(&id)?;
    if entry.corrupt {
        return Err(StoreError::Corrupt {
            id,
            reason: "failed verification earlier".into(),
        }
        .into());
    }
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    chunk_headers(h, &entry.meta);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.meta.len));
    Ok(resp)
}

/// `DELETE /v1/chunks/{id}` (epoch-fenced).
async fn delete_chunk(
    State(s): Shared,
    Path(id): Path<String>,
    signer: Option<Extension<Signer>>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = ChunkId::new(id)?;
    let epoch = epoch_header(&headers)?;
    let signer = signer.map(|Extension(s)| s);
    admit(
        &s,
        signer.as_ref(),
        super::authority::Act::LeaderOnly,
        epoch,
    )
    .await?;
    s.store.delete(&id).await?;
    s.refresh_metrics();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/chunk-deletions`: deletes many chunks with one request and one directory sync
/// (the leader's orphan collection), fenced and permitted as a single delete is.
async fn delete_chunks(
    State(s): Shared,
    signer: Option<Extension<Signer>>,
    body: Result<Json<DeleteRequest>, JsonRejection>,
) -> Result<Json<DeleteResponse>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let ids = deletion_batch(&req.chunks)?;
    let signer = signer.map(|Extension(s)| s);
    admit(
        &s,
        signer.as_ref(),
        super::authority::Act::LeaderOnly,
        req.epoch,
    )
    .await?;
    let done = s.store.delete_many(ids).await?;
    s.refresh_metrics();
    let mut resp = DeleteResponse::default();
    for (id, r) in done {
        match r {
            Ok(_) => resp.deleted.push(id.to_string()),
            Err(StoreError::NotFound(_)) => resp.missing.push(id.to_string()),
            Err(e) => resp.failed.push(DeleteFailure {
                id: id.to_string(),
                error: e.to_string(),
            }),
        }
    }
    // One line per batch, not per chunk: a failing disk fails them all.
    if let Some(first) = resp.failed.first() {
        tracing::warn!(failed = resp.failed.len(), chunk = %first.id, error = %first.error, "cannot delete some chunks of a batch");
    }
    Ok(Json(resp))
}

/// The chunk ids of a deletion batch, if every one is valid, named once, and there are at
/// most [`MAX_DELETE_BATCH`]: a batch is taken whole or refused whole.
fn deletion_batch(chunks: &[String]) -> Result<Vec<ChunkId>, ApiError> {
    if chunks.len() > MAX_DELETE_BATCH {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "{} chunks named; at most {MAX_DELETE_BATCH} per request",
                chunks.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(chunks.len());
    chunks
        .iter()
        .map(|c| {
            let id = ChunkId::new(c.as_str())?;
            if !seen.insert(c.as_str()) {
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("chunk {id} is named twice"),
                ));
            }
            Ok(id)
        })
        .collect()
}

/// `GET /v1/chunks`: every chunk with its length (the block report) and the space figures.
async fn list_chunks(State(s): Shared) -> Result<Json<ListResponse>, ApiError> {
    let chunks = s
        .store
        .list()
        .into_iter()
        .map(|e| ListEntry {
            id: e.meta.id.to_string(),
            len: e.meta.len,
            checksum: e.meta.checksum.to_string(),
            corrupt: e.corrupt,
        })
        .collect();
    Ok(Json(ListResponse {
        chunks,
        usage: s.store.usage()?,
    }))
}

/// `POST /v1/chunks/{id}/replicate`: copy a stored chunk to other servers.
///
/// The targets form a pipeline; when a hop fails, the targets it did not reach are tried
/// again as a shorter pipeline, so one dead target does not cost the others their copy.
async fn replicate_chunk(
    State(s): Shared,
    Path(id): Path<String>,
    signer: Option<Extension<Signer>>,
    body: Result<Json<ReplicateRequest>, JsonRejection>,
) -> Result<Json<PutResponse>, ApiError> {
    let id = ChunkId::new(id)?;
    let Json(req) = body.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let signer = signer.map(|Extension(s)| s);
    admit(
        &s,
        signer.as_ref(),
        super::authority::Act::LeaderOnly,
        req.epoch,
    )
    .await?;
    let mut pending = Vec::new();
    for t in &req.targets {
        let hop = pipeline::parse_hop(t).map_err(|e| ApiError::new(ErrorCode::BadTarget, e))?;
        if !pending.contains(&hop) {
            pending.push(hop);
        }
    }
    if pending.is_empty() {
        return Err(ApiError::new(ErrorCode::BadTarget, "no targets given"));
    }
    check_targets(&s, &pending).map_err(|e| ApiError::new(ErrorCode::BadTarget, e.message()))?;
    let mut meta = s.store.meta(&id)?;
    let mut stored: Vec<String> = Vec::new();
    let mut acks = Vec::new();
    let mut last_error: Vec<Failure> = Vec::new();
    while let Some((hop, rest)) = pending.split_first() {
        let (hop, rest) = (hop.clone(), rest.to_vec());
        let (read_meta, outcome) = copy_once(&s, &id, req.epoch, &hop, &rest).await?;
        meta = read_meta;
        stored.extend(outcome.stored);
        acks.extend(outcome.acks);
        last_error.retain(|f| !outcome.failed.iter().any(|g| g.addr == f.addr));
        last_error.extend(outcome.failed);
        // The hop itself was tried; the ones it did not store are retried without it.
        pending = rest.into_iter().filter(|t| !stored.contains(t)).collect();
    }
    last_error.retain(|f| !stored.contains(&f.addr));
    Ok(Json(PutResponse {
        id: id.to_string(),
        len: meta.len,
        checksum: meta.checksum.to_string(),
        stored,
        failed: last_error,
        acks,
    }))
}

/// Streams the local copy of `id`, verified as it is read, down the pipeline `hop, rest`.
/// A local copy that fails verification aborts the upload, so no target keeps it.
async fn copy_once(
    s: &Inner,
    id: &ChunkId,
    epoch: u64,
    hop: &str,
    rest: &[String],
) -> Result<(ChunkMeta, pipeline::Outcome), StoreError> {
    let read = s.store.read(id, None).await?;
    let upload = pipeline::Upload {
        id,
        epoch,
        hop,
        rest,
        len: Some(read.meta.len),
        checksum: Some(read.meta.checksum),
        progress: None,
    };
    let mut downstream = Downstream::start(&s.client, s.options.downstream_timeout, upload);
    let mut body = read.body;
    while let Some(item) = body.next().await {
        downstream.send(item?).await;
    }
    Ok((read.meta, downstream.finish().await))
}

/// Ready when the role says so and the data directory answers.
fn readiness(inner: &Arc<Inner>) -> crate::http::Readiness {
    let store = inner.store.clone();
    inner.options.readiness.with_check(move || {
        store
            .usage()
            .map(|_| ())
            .map_err(|e| format!("data directory unusable: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("f-{i}")).collect()
    }

    fn code(r: Result<Vec<ChunkId>, ApiError>) -> ErrorCode {
        match r {
            Ok(ids) => panic!("accepted {} ids", ids.len()),
            Err(e) => e.body.code,
        }
    }

    #[test]
    fn a_deletion_batch_is_taken_whole_or_refused_whole() {
        let ok = deletion_batch(&ids(MAX_DELETE_BATCH)).map(|v| v.len());
        assert_eq!(ok.ok(), Some(MAX_DELETE_BATCH));
        assert_eq!(deletion_batch(&[]).map(|v| v.len()).ok(), Some(0));
        assert_eq!(
            code(deletion_batch(&ids(MAX_DELETE_BATCH + 1))),
            ErrorCode::TooLarge
        );
        let mut twice = ids(3);
        twice.push("f-1".into());
        assert_eq!(code(deletion_batch(&twice)), ErrorCode::BadRequest);
        let mut bad = ids(3);
        bad.push("../etc/passwd".into());
        assert_eq!(code(deletion_batch(&bad)), ErrorCode::BadChunkId);
    }
}
