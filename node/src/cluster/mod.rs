//! The cluster server's chunk API over HTTP, on the cluster server's listen port.
//!
//! Routes (see `docs/storage.md` for the full reference):
//! `PUT|GET|HEAD|DELETE /v1/chunks/{id}`, `GET /v1/chunks`, `POST /v1/chunks/{id}/replicate`,
//! `GET /health`, `GET /ready`. Writes and deletes carry the leader's epoch and are
//! refused by the [`EpochFence`] when it is stale. This module knows nothing about
//! ZooKeeper: the caller feeds the fence and the readiness flag.

mod api;
pub mod authority;
pub mod client;
mod error;
mod fence;
pub mod metrics;
pub mod pipeline;
pub mod progress;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::net::TcpListener;

use crate::chunk::{ChunkStore, ScrubConfig, ScrubHandle};
pub use authority::{Directory, PeerAuth};
pub use error::ApiError;
pub use fence::{EpochError, EpochFence, StaleEpoch};
pub use metrics::ClusterMetrics;
pub use pipeline::{Failure, PutResponse};

pub use client::{ChunkCallError, ChunkClient, ClientOptions};

/// Request header carrying the leader epoch of a write or delete.
pub const EPOCH_HEADER: &str = filegrid_proto::headers::EPOCH;
/// Request header listing the downstream replicas, `host:port,host:port`.
pub const PIPELINE_HEADER: &str = filegrid_proto::headers::PIPELINE;
/// Request header with the expected checksum of a write; response header with the stored one.
pub const CHECKSUM_HEADER: &str = filegrid_proto::headers::CHECKSUM;

pub use crate::http::Readiness;

/// Settings of the chunk API.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// This server's `host:port` as other servers reach it; listed in `stored` answers.
    pub advertise: String,
    /// Longest wait for a downstream hop to take the next piece of data or to answer.
    pub downstream_timeout: Duration,
    /// Largest chunk accepted, in bytes; larger writes get 413.
    pub max_chunk_bytes: u64,
    /// Background scrubbing, or `None` to not scrub.
    pub scrub: Option<ScrubConfig>,
    /// The `/ready` flag.
    pub readiness: Readiness,
    /// How often the storage gauges are refreshed.
    pub metrics_interval: Duration,
    /// How long a request stamped with an epoch newer than ZooKeeper's waits for ZooKeeper
    /// to confirm it.
    pub epoch_wait: Duration,
    /// Signature checks and signing, on grids with a cluster secret; `None` when insecure.
    pub peer: Option<PeerAuth>,
    /// TLS and limits of the chunk API's listener.
    pub listener: crate::http::ServeOptions,
    /// TLS of the calls to other cluster servers (pipeline hops, replication).
    pub tls: crate::http::Outgoing,
}

impl ApiOptions {
    /// Defaults for a server reachable at `advertise`: 30 s downstream timeout, 1 GiB
    /// largest chunk, no scrubbing, ready, gauges refreshed every 5 s, plain HTTP with the
    /// default listener limits.
    pub fn new(advertise: impl Into<String>) -> Self {
        Self {
            advertise: advertise.into(),
            downstream_timeout: Duration::from_secs(30),
            max_chunk_bytes: 1 << 30,
            scrub: None,
            readiness: Readiness::new(true),
            metrics_interval: Duration::from_secs(5),
            epoch_wait: Duration::from_secs(3),
            peer: None,
            listener: Default::default(),
            tls: Default::default(),
        }
    }
}

/// Why the chunk API could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Metrics could not be registered (e.g. registered twice in one registry).
    #[error("registering chunk metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The chunk client for pipeline hops could not be built.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// Serving failed.
    #[error("serving the chunk API: {0}")]
    Io(#[from] std::io::Error),
}

/// The chunk API of one cluster server: state shared by all requests, the scrubber and
/// the metrics. Build the [`axum::Router`] with [`ClusterApi::router`].
#[derive(Clone, Debug)]
pub struct ClusterApi {
    inner: Arc<api::Inner>,
}

impl ClusterApi {
    /// Registers the metrics into `registry` and starts the scrubber if configured.
    /// Must be called inside a Tokio runtime.
    pub fn new(
        store: Arc<ChunkStore>,
        fence: EpochFence,
        registry: &Registry,
        options: ApiOptions,
    ) -> Result<Self, ServeError> {
        let metrics = ClusterMetrics::register(registry)?;
        // No read timeout: a downstream hop's silence is bounded by `downstream_timeout`.
        let client = ChunkClient::new(
            ClientOptions {
                connect_timeout: Duration::from_secs(5),
                read_timeout: None,
                pool_max_idle_per_host: 16,
                tls: options.tls.clone(),
            },
            registry,
        )?
        .with_signer(options.peer.as_ref().map(|p| p.signer.clone()));
        let scrub = options
            .scrub
            .map(|config| ScrubHandle::spawn(store.clone(), config));
        let inner = api::Inner {
            store,
            fence,
            metrics,
            client,
            options,
            scrub,
            registry: registry.clone(),
        };
        inner.refresh_metrics();
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The HTTP routes.
    pub fn router(&self) -> axum::Router {
        api::router(self.inner.clone())
    }

    /// The metrics.
    pub fn metrics(&self) -> &ClusterMetrics {
        &self.inner.metrics
    }

    /// Brings the storage gauges up to date now.
    pub fn refresh_metrics(&self) {
        self.inner.refresh_metrics();
    }

    /// The scrubber's progress, if scrubbing is on.
    pub fn scrub_progress(&self) -> Option<crate::chunk::ScrubProgress> {
        self.inner.scrub.as_ref().map(ScrubHandle::progress)
    }
}

/// Serves the chunk API on `listener` until `shutdown` completes, then finishes the
/// requests in flight. The cluster server process and the chunk API tests both run this. Keeps the storage gauges fresh and runs the scrubber meanwhile.
/// The metrics are registered into `registry` (a clone shares the process's registry).
pub async fn serve<F>(
    listener: TcpListener,
    store: Arc<ChunkStore>,
    fence: EpochFence,
    registry: Registry,
    options: ApiOptions,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let interval = options.metrics_interval;
    let listening = options.listener.clone();
    let api = ClusterApi::new(store, fence, &registry, options)?;
    let refresher = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                api.refresh_metrics();
            }
        })
    };
    tracing::info!(addr = ?listener.local_addr().ok(), "chunk API listening");
    let result = crate::http::serve(listener, api.router(), listening, shutdown).await;
    refresher.abort();
    result.map_err(ServeError::Io)
}
