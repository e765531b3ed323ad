//! HTTP pieces every role shares: `/health`, `/ready`, `/metrics`, request metrics, JSON errors
//! and serving with graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::HttpMetrics;

/// Readiness shared between the role's logic and its `/ready` endpoint (starts not ready).
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag starting at `ready`.
    pub fn new(ready: bool) -> Self {
        Self(Arc::new(AtomicBool::new(ready)))
    }

    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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

/// Just `/metrics`, for servers whose own router already has `/health` and `/ready`.
pub fn metrics_router(registry: prometheus::Registry) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(OpsState {
            registry,
            ready: Readiness::default(),
        })
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn ready_handler(State(s): State<OpsState>) -> Response {
    if s.ready.get() {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "not ready yet",
        )
        .into_response()
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

/// A JSON error body `{"code": ..., "message": ...}` with its HTTP status.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // No Nagle: answers are written as head then body, and waiting for the peer's delayed
    // ACK between them costs 40 ms per small request.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds a listener, naming the setting on failure.
pub async fn bind(setting: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("setting `{setting}`: cannot listen on {addr}: {e}"))
}
