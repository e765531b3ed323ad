//! `filegrid-operator run`: HTTP endpoints, Lease-based leader election, the controller.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Router, extract::State, routing::get};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use tracing::{error, info, warn};

use crate::builders::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use crate::crd::FileGrid;
use crate::head_api::HttpHeadApi;
use crate::install::LEASE_NAME;
use crate::metrics::Metrics;
use crate::reconciler::{Context, error_policy, reconcile};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("serving {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("lost the leader lease; exiting so a fresh replica can compete again")]
    LostLease,
}

/// Settings of `run`.
pub struct RunOptions {
    pub listen: SocketAddr,
    /// Lease namespace (the operator's own).
    pub namespace: String,
    /// This replica's identity in the Lease (its pod name).
    pub identity: String,
}

/// `/health` answers while the process runs; `/metrics` in Prometheus text format.
pub fn http_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.render() }),
        )
        .with_state(metrics)
}

pub async fn run(opts: RunOptions) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new()?);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| RunError::Serve {
            addr: opts.listen,
            source,
        })?;
    info!(addr = %opts.listen, "serving /health and /metrics");
    let router = http_router(metrics.clone());
    let addr = opts.listen;
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .map_err(|source| RunError::Serve { addr, source })
    });

    let client = Client::try_default().await?;
    let lease = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(opts.namespace.clone())
        .with_identity(opts.identity.clone())
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leading, lease_task) = lease.watch().await;
    info!(identity = %opts.identity, "waiting for the leader lease");
    while !*leading.borrow_and_update() {
        if leading.changed().await.is_err() {
            return Err(RunError::LostLease);
        }
    }
    info!("holding the leader lease; reconciling");
    metrics.is_leader.set(1);

    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(HttpHeadApi::new()?),
        metrics.clone(),
    ));
    let children = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    let mut lost = leading.clone();
    let lost_lease = async move {
        while *lost.borrow_and_update() {
            if lost.changed().await.is_err() {
                break;
            }
        }
    };
    Controller::new(
        Api::<FileGrid>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ConfigMap>::all(client.clone()), children.clone())
    .owns(Api::<Service>::all(client.clone()), children.clone())
    .owns(Api::<StatefulSet>::all(client.clone()), children.clone())
    .owns(Api::<Deployment>::all(client.clone()), children.clone())
    .owns(
        Api::<PodDisruptionBudget>::all(client.clone()),
        children.clone(),
    )
    // A deleted Secret is made again (a new one: its material is gone).
    .owns(Api::<Secret>::all(client.clone()), children.clone())
    .owns(Api::<NetworkPolicy>::all(client.clone()), children.clone())
    // Pods are not owned by the grid; a scheduled cluster pod may need its zone.
    .watches(Api::<Pod>::all(client.clone()), children, |pod| {
        let grid = pod.labels().get(LABEL_INSTANCE)?.clone();
        Some(ObjectRef::<FileGrid>::new(&grid).within(&pod.namespace()?))
    })
    .graceful_shutdown_on(lost_lease)
    .run(reconcile, error_policy, ctx)
    .for_each(|res| async move {
        match res {
            Ok((obj, _)) => info!(grid = %obj, "reconciled"),
            Err(e) => warn!(error = %e, "reconcile error"),
        }
    })
    .await;
    metrics.is_leader.set(0);
    server.abort();
    drop(leading);
    if let Ok(Err(e)) = lease_task.await {
        error!(error = %e, "lease manager stopped");
    }
    Err(RunError::LostLease)
}
