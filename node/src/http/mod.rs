//! HTTP pieces every role shares: `/health`, `/ready`, `/metrics`, request metrics, JSON errors
//! and serving with TLS, listener limits and graceful shutdown ([`serve`], [`tls`]).

pub mod peer;
pub mod range;
pub mod serve;
pub mod tcp;
pub mod tls;
pub mod unread;

pub use peer::PeerClient;
pub use serve::ServeOptions;
pub use tls::{Outgoing, ServerTls, TlsError};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use filegrid_proto::{ErrorBody, ErrorCode};
use tokio::net::TcpListener;

use crate::metrics::HttpMetrics;

/// A check that must pass for the role to be ready (e.g. its data directory is usable).
type ReadyCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Readiness shared between the role's logic and its `/ready` endpoint (starts not ready):
/// a flag the role sets, and optionally a check run on every `/ready`.
#[derive(Clone, Default)]
pub struct Readiness {
    flag: Arc<AtomicBool>,
    check: Option<ReadyCheck>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("ready", &self.get())
            .field("check", &self.check.is_some())
            .finish()
    }
}

impl Readiness {
    /// A flag starting at `ready`.
    pub fn new(ready: bool) -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(ready)),
            check: None,
        }
    }

    /// The same flag, with `check` run on every `/ready` once the flag is set.
    pub fn with_check(
        &self,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            flag: self.flag.clone(),
            check: Some(Arc::new(check)),
        }
    }

    pub fn set(&self, ready: bool) {
        self.flag.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Whether the role can do its job now, and if not why.
    fn status(&self) -> Result<(), String> {
        if !self.get() {
            return Err("not ready yet".into());
        }
        match &self.check {
            Some(check) => check(),
            None => Ok(()),
        }
    }
}

#[derive(Clone)]
struct OpsState {
    registry: prometheus::Registry,
    ready: Readiness,
}

/// `/health` (the process answers), `/ready` (it can do its job) and `/metrics`.
pub fn ops_router(registry: prometheus::Registry, ready: Readiness) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(OpsState { registry, ready })
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn ready_handler(State(s): State<OpsState>) -> Response {
    match s.ready.status() {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(why) => ApiError::new(ErrorCode::NotReady, why).into_response(),
    }
}

async fn metrics_handler(State(s): State<OpsState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&s.registry),
    )
        .into_response()
}

/// Records request counts, latency and bytes per route.
pub async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    if let Some(n) = content_length(req.headers()) {
        m.bytes_in.inc_by(n);
    }
    let start = Instant::now();
    let resp = next.run(req).await;
    m.seconds
        .with_label_values(&[&route])
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[&route, &method, resp.status().as_str()])
        .inc();
    if let Some(n) = content_length(resp.headers()) {
        m.bytes_out.inc_by(n);
    }
    resp
}

fn content_length(h: &axum::http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The error answer of every FileGrid HTTP API: a JSON [`ErrorBody`] with its HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    /// An error answered with the code's usual status ([`ErrorCode::status`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::with_status(status, code, message)
    }

    /// An error answered with another status than the code's usual one.
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.body.code
    }

    pub fn message(&self) -> &str {
        &self.body.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self.body)).into_response()
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests.
/// Every role serves its HTTP this way, with the process's TLS and listener limits
/// (`options`; see [`serve`] for what each limit does).
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    serve_as_is(listener, with_json_fallbacks(router), options, shutdown).await
}

/// [`serve`] for a router that answers every request itself (the S3 API, whose errors are
/// XML), without the JSON fallbacks.
pub async fn serve_as_is<F>(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    serve::serve_router(
        listener,
        router.layer(axum::middleware::from_fn(unread::close_if_unread)),
        options,
        shutdown,
    )
    .await
}

/// The listeners' options and the outgoing TLS of a process with `common` settings: loads the
/// TLS files (failing with the setting's name) and starts watching them for changes.
pub fn process_options(
    common: &crate::config::CommonConfig,
) -> Result<(ServeOptions, Outgoing), TlsError> {
    let (server, outgoing) = tls::for_process(&common.security)?;
    Ok((
        ServeOptions {
            limits: common.limits,
            tls: server,
        },
        outgoing,
    ))
}

/// Unknown routes (404) and methods a route does not take (405) answer the JSON error body
/// too, so a client never meets an empty error.
pub fn with_json_fallbacks(router: Router) -> Router {
    router
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
}

async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route {}", uri.path()))
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not take {method}", uri.path()),
    )
}

/// Binds a listener, naming the setting on failure.
pub async fn bind(setting: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("setting `{setting}`: cannot listen on {addr}: {e}"))
}
