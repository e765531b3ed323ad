//! Routes and handlers of the chunk API.

use filegrid_proto::ErrorCode;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, BodyDataStream};
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
use filegrid_proto::chunk::{ListEntry, ListResponse, ReplicateRequest};

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
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PutResponse>), ApiError> {
    let mut frames = body.into_data_stream();
    let result = receive_chunk(&s, id, &headers, &mut frames).await;
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
    headers: &HeaderMap,
    frames: &mut BodyDataStream,
) -> Result<(StatusCode, Json<PutResponse>), ApiError> {
    let id = ChunkId::new(id)?;
    let epoch = epoch_header(headers)?;
    s.fence.check(epoch)?;
    let expected = checksum_header(headers)?;
    let len = content_length(headers)?;
    let max = s.options.max_chunk_bytes;
    if len.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let hops = pipeline::parse_pipeline(header_str(headers, PIPELINE_HEADER)?.unwrap_or(""))
        .map_err(|e| ApiError::new(ErrorCode::BadPipeline, e))?;

    let mut writer = s.store.writer(id.clone(), len).await?;
    let mut downstream = hops.split_first().map(|(hop, rest)| {
        let upload = pipeline::Upload {
            id: &id,
            epoch,
            hop,
            rest,
            len,
            checksum: expected,
        };
        Downstream::start(&s.client, s.options.downstream_timeout, upload)
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
    let response = pipeline::merge(&s.options.advertise, &meta, outcome);
    s.refresh_metrics();
    tracing::debug!(chunk = %id, len = meta.len, stored = ?response.stored, failed = ?response.failed, "chunk stored");
    Ok((StatusCode::CREATED, Json(response)))
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
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = ChunkId::new(id)?;
    s.fence.check(epoch_header(&headers)?)?;
    s.store.delete(&id).await?;
    s.refresh_metrics();
    Ok(StatusCode::NO_CONTENT)
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
    body: Result<Json<ReplicateRequest>, JsonRejection>,
) -> Result<Json<PutResponse>, ApiError> {
    let id = ChunkId::new(id)?;
    let Json(req) = body.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    s.fence.check(req.epoch)?;
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
    let mut meta = s.store.meta(&id)?;
    let mut stored: Vec<String> = Vec::new();
    let mut last_error: Vec<Failure> = Vec::new();
    while let Some((hop, rest)) = pending.split_first() {
        let (hop, rest) = (hop.clone(), rest.to_vec());
        let (read_meta, outcome) = copy_once(&s, &id, req.epoch, &hop, &rest).await?;
        meta = read_meta;
        stored.extend(outcome.stored);
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
