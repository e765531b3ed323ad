//! HTTP routes of the data path on a head: the file API, heartbeats from cluster servers, the
//! cluster view and decommissioning. File reads (GET, HEAD, listing) are served by any head
//! through the [`ReadView`] its read gate hands them; every other route is leader-only: the
//! head puts them behind its leader-only gate, which hands each request the [`Leadership`]
//! it runs under (a standby redirects to the leader or forwards the call there).

use filegrid_proto::ErrorCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use serde::Deserialize;

use super::listing::{self, ListError};
use super::path::FilePath;
use super::precondition::{self, Precondition};
use super::repair::{PassReport, drain};
use super::{DataError, DataPlane, namespace, read, write};
use crate::http::ApiError;
use crate::ids::ServerId;
use crate::leadership::{Leadership, ReadView};
use filegrid_proto::head::{
    DecommissionAnswer, DeleteAnswer, Heartbeat, HeartbeatAnswer, ListPage, PutAnswer,
};

#[derive(Clone)]
pub struct FilesState {
    pub dp: Arc<DataPlane>,
    pub report: Arc<Mutex<PassReport>>,
}

/// The routes any head serves itself: reads of files and listings.
pub fn read_routes(state: FilesState) -> Router {
    Router::new()
        .route("/v1/files/{*path}", get(get_file).head(head_file))
        .route("/v1/files", get(list_files))
        .with_state(state)
}

/// The routes a standby may forward to the leader: file writes, the cluster view,
/// decommission and the repair report.
pub fn forwardable_routes(state: FilesState) -> Router {
    Router::new()
        .route("/v1/files/{*path}", put(put_file).delete(delete_file))
        .route("/v1/cluster", get(cluster))
        .route("/v1/cluster/{id}/decommission", post(decommission))
        .route("/v1/cluster/{id}/recommission", post(recommission))
        .route("/v1/repair", get(repair_report))
        .with_state(state)
}

/// Heartbeats: leader-only, never forwarded (a cluster server must learn who leads).
pub fn heartbeat_routes(state: FilesState) -> Router {
    Router::new()
        .route("/v1/heartbeat", post(heartbeat))
        .with_state(state)
}

fn parse_path(raw: &str) -> Result<FilePath, ApiError> {
    FilePath::parse(raw)
        .map_err(|e| ApiError::new(ErrorCode::BadPath, format!("bad path {raw:?}: {e}")))
}

fn fail(e: DataError) -> Response {
    ApiError::from(e).into_response()
}

async fn put_file(
    State(s): State<FilesState>,
    Extension(lead): Extension<Leadership>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = match parse_path(&raw) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let content_length = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                return ApiError::new(ErrorCode::BadRequest, "unreadable Content-Length")
                    .into_response();
            }
        },
    };
    let pre = match conditions(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // A write that cannot pass is refused before its body is stored.
    if let Err(e) = namespace::judge_now(&lead, &path, &pre).await {
        return fail(refused_as_412(e.into(), &pre));
    }
    // Each upload holds at most a few chunk buffers; the cap bounds what all of them hold.
    let Ok(_permit) = s.dp.uploads.clone().try_acquire_owned() else {
        let mut resp = ApiError::new(
            ErrorCode::TooManyUploads,
            format!(
                "{} uploads are in progress, the most this head takes; retry shortly",
                s.dp.config.max_uploads
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    match write::upload(&s.dp, &lead, path.clone(), body, content_length, &pre).await {
        Ok(meta) => (
            StatusCode::CREATED,
            axum::Json(PutAnswer {
                path: path.as_str().to_string(),
                size: meta.size,
                checksum: meta.checksum,
                chunks: meta.chunk_count,
                mtime: meta.mtime,
                epoch: meta.epoch,
                etag: format!("\"{}\"", meta.file_id),
            }),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "upload failed");
            fail(refused_as_412(e, &pre))
        }
    }
}

/// Headers describing a file (HEAD and GET).
fn describe(meta: &super::manifest::FileMeta) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("x-filegrid-checksum", meta.checksum.clone());
    put("x-filegrid-chunks", meta.chunk_count.to_string());
    put("x-filegrid-mtime", meta.mtime.to_string());
    put("etag", format!("\"{}\"", meta.file_id));
    put("accept-ranges", "bytes".into());
    put(
        "last-modified",
        httpdate::fmt_http_date(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(meta.mtime),
        ),
    );
    h
}

async fn lookup(view: &ReadView, path: &FilePath) -> Result<super::manifest::FileMeta, Response> {
    namespace::lookup(view.client(), view.layout(), path)
        .await
        .map(|(m, _)| m)
        .map_err(|e| fail(e.into()))
}

async fn head_file(Extension(view): Extension<ReadView>, Path(raw): Path<String>) -> Response {
    let path = match parse_path(&raw) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match lookup(&view, &path).await {
        Ok(meta) => {
            let mut h = describe(&meta);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
            (StatusCode::OK, h).into_response()
        }
        Err(r) => r,
    }
}

async fn get_file(
    State(s): State<FilesState>,
    Extension(view): Extension<ReadView>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = match parse_path(&raw) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let meta = match lookup(&view, &path).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match read::parse_range(range_header, meta.size) {
        Ok(r) => r,
        Err(e) => {
            let mut resp = fail(e);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", meta.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let mut h = describe(&meta);
    let status = match range {
        Some(r) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, meta.size))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
            StatusCode::OK
        }
    };
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    match read::download(s.dp.clone(), meta, range).await {
        Ok(body) => (status, h, body).into_response(),
        Err(e) => {
            tracing::warn!(path = %path, error = %e, "download failed before its first byte");
            fail(e)
        }
    }
}

async fn delete_file(
    State(s): State<FilesState>,
    Extension(lead): Extension<Leadership>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = match parse_path(&raw) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let pre = match conditions(&headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match namespace::remove(&lead, &s.dp.known_dirs, &path, &pre).await {
        Ok(_) => {
            s.dp.repairs.orphaned();
            tracing::info!(path = %path, "deleted file");
            axum::Json(DeleteAnswer {
                path: path.as_str().to_string(),
                deleted: true,
            })
            .into_response()
        }
        Err(e) => fail(refused_as_412(e.into(), &pre)),
    }
}

/// The `If-Match` / `If-None-Match` condition of a write or delete.
fn conditions(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let text = |name: header::HeaderName| match headers.get(&name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::new(ErrorCode::BadHeader, format!("{name} is not ASCII"))),
    };
    precondition::from_http(text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?)
        .map_err(|e| ApiError::new(ErrorCode::BadHeader, e))
}

/// A missing file under `If-Match` is a failed condition (RFC 9110: `412`), not a `404`.
fn refused_as_412(e: DataError, pre: &Precondition) -> DataError {
    match e {
        DataError::NotFound(m) if !pre.allows_absent() => {
            DataError::Precondition(format!("If-Match: {m}"))
        }
        e => e,
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_files(
    State(s): State<FilesState>,
    Extension(view): Extension<ReadView>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return ApiError::new(
            ErrorCode::BadRequest,
            "bad query: expected prefix, limit, cursor",
        )
        .into_response();
    };
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > 10_000 {
        return ApiError::new(ErrorCode::BadRequest, "limit must be between 1 and 10000")
            .into_response();
    }
    let prefix = q.prefix.trim_start_matches('/');
    if let Err(e) = FilePath::check_prefix(prefix) {
        return ApiError::new(ErrorCode::BadRequest, format!("bad prefix {prefix:?}: {e}"))
            .into_response();
    }
    // A cursor is a path a previous page ended at: anything else is refused before it can
    // send the walk through made-up directories.
    let cursor = match q.cursor.as_deref().map(FilePath::parse) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            return ApiError::new(ErrorCode::BadRequest, format!("bad cursor: {e}"))
                .into_response();
        }
    };
    match listing::list(
        &s.dp.index,
        view.client(),
        view.layout(),
        prefix,
        limit,
        cursor.as_ref().map(FilePath::as_str),
    )
    .await
    {
        Ok((files, next)) => axum::Json(ListPage {
            files,
            next_cursor: next,
        })
        .into_response(),
        Err(ListError::Ns(e)) => fail(e.into()),
        Err(ListError::Index(e)) => {
            ApiError::new(ErrorCode::ZkUnavailable, format!("cannot list now: {e}")).into_response()
        }
    }
}

async fn heartbeat(
    State(s): State<FilesState>,
    Extension(lead): Extension<Leadership>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let start = Instant::now();
    let m = &s.dp.metrics;
    m.heartbeat_received.inc();
    let Ok(hb) = serde_json::from_slice::<Heartbeat>(&body) else {
        m.heartbeat_errors.inc();
        return ApiError::new(ErrorCode::BadRequest, "malformed heartbeat").into_response();
    };
    // On grids with a cluster secret a heartbeat must be signed by the server it describes.
    if let Some(peers) = &s.dp.peers {
        let digest = crate::auth::peer::body_digest(&body);
        let signed = crate::auth::peer::Signed {
            method: "POST",
            path_and_query: "/v1/heartbeat",
            body_digest: Some(&digest),
            ..Default::default()
        };
        let header = headers
            .get(filegrid_proto::headers::PEER_AUTH)
            .and_then(|v| v.to_str().ok());
        match peers.verify(header, &signed) {
            Ok(signer) if signer == hb.id.as_str() => {}
            Ok(signer) => {
                m.heartbeat_errors.inc();
                return ApiError::new(
                    ErrorCode::Forbidden,
                    format!("{signer} may not send {}'s heartbeat", hb.id),
                )
                .into_response();
            }
            Err(e) => {
                m.heartbeat_errors.inc();
                return ApiError::new(ErrorCode::BadSignature, e.to_string()).into_response();
            }
        }
    }
    let seen = s.dp.membership.heartbeat(&hb);
    m.heartbeat_seconds.observe(start.elapsed().as_secs_f64());
    if seen == Some(true) {
        // The server found damaged or missing chunks: a pass finds which in its block report.
        tracing::info!(server_id = %hb.id, bad_chunks_found = hb.bad_chunks_found, "cluster server reports damaged chunks; repairing");
        s.dp.repairs.wake();
    }
    if seen.is_none() {
        m.heartbeat_errors.inc();
        return ApiError::new(
            ErrorCode::NotRegistered,
            format!("{} is not registered in ZooKeeper", hb.id),
        )
        .into_response();
    }
    axum::Json(HeartbeatAnswer {
        epoch: lead.epoch(),
    })
    .into_response()
}

async fn cluster(State(s): State<FilesState>) -> Response {
    axum::Json(s.dp.membership.views(s.dp.config.dead_after)).into_response()
}

/// The cluster server a decommission or recommission names: 400 for a bad id, 404 when
/// the leader does not know it.
fn known_server(
    s: &FilesState,
    raw: String,
) -> Result<(ServerId, super::servers::ServerInfo), ApiError> {
    let id = ServerId::new(raw.clone())
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, format!("bad server id {raw:?}")))?;
    let server =
        s.dp.membership
            .get(&id)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no cluster server {id}")))?;
    Ok((id, server))
}

async fn recommission(
    State(s): State<FilesState>,
    Extension(lead): Extension<Leadership>,
    Path(id): Path<String>,
) -> Response {
    let (id, server) = match known_server(&s, id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    match drain::recommission(&s.dp, &lead, &server).await {
        Ok(was) => axum::Json(filegrid_proto::head::RecommissionAnswer { id, was }).into_response(),
        Err(e) => fail(DataError::Unavailable(format!(
            "cannot record recommission: {e}"
        ))),
    }
}

async fn decommission(
    State(s): State<FilesState>,
    Extension(lead): Extension<Leadership>,
    Path(id): Path<String>,
) -> Response {
    let (id, server) = match known_server(&s, id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let state = match drain::request(&s.dp, &lead, &server).await {
        Ok(state) => state,
        Err(e) => {
            return fail(DataError::Unavailable(format!(
                "cannot record decommission: {e}"
            )));
        }
    };
    (
        StatusCode::ACCEPTED,
        axum::Json(DecommissionAnswer { id, state }),
    )
        .into_response()
}

async fn repair_report(State(s): State<FilesState>) -> Response {
    let rep = s.report.lock().map(|r| r.clone()).unwrap_or_default();
    axum::Json(rep).into_response()
}
