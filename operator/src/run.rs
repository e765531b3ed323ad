//! `filegrid-operator run`: HTTP endpoints, Lease-based leader election, the controller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
use crate::crd_upgrade;
use crate::head_api::HttpHeadApi;
use crate::install::LEASE_NAME;
use crate::leadership;
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
    /// Apply the operator's own CRD once leading, before reconciling (`--apply-crd`).
    pub apply_crd: bool,
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
        .with_duration(leadership::LEASE_DURATION.as_secs())
        .with_grace(leadership::LEASE_GRACE.as_secs())
        .build()
        .await?;
    let (mut leading, lease_task) = lease.watch().await;
    let mut terminate = Box::pin(terminated());
    info!(identity = %opts.identity, "waiting for the leader lease");
    while !*leading.borrow_and_update() {
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    return Err(RunError::LostLease);
                }
            }
            () = &mut terminate => {
                info!("terminating before leading");
                server.abort();
                drop(leading);
                let _ = tokio::time::timeout(RELEASE_LIMIT, lease_task).await;
                return Ok(());
            }
        }
    }
    info!("holding the leader lease; reconciling");
    metrics.is_leader.set(1);
    if opts.apply_crd {
        // Only the leader applies, so an old replica of a rolling upgrade that is still
        // waiting for the Lease does not. A failure is logged, not fatal: the CRD the chart
        // installed still serves, and RBAC may have been left without the CRD rule.
        let crds = Api::all(client.clone());
        if let Err(e) = crd_upgrade::ensure(&crds, crd_upgrade::OPERATOR_VERSION).await {
            error!(error = %e, "could not apply the FileGrid CRD; reconciling with the one installed");
        }
    }

    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(HttpHeadApi::new()?),
        metrics.clone(),
    ));
    let children = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}"));
    // Why the controller stops: the lease manager saw the Lease go, the guard could not
    // confirm it in time, or SIGTERM.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let mut lost = leading.clone();
    let lost_tx = stop_tx.clone();
    let watch_lost = tokio::spawn(async move {
        while *lost.borrow_and_update() {
            if lost.changed().await.is_err() {
                break;
            }
        }
        let _ = lost_tx.send(Some(Stop::Lost("the lease manager lost the Lease".into())));
    });
    let guard_tx = stop_tx.clone();
    let guard = tokio::spawn(leadership::guard(
        Api::namespaced(client.clone(), &opts.namespace),
        LEASE_NAME.to_string(),
        opts.identity.clone(),
    ));
    let watch_guard = tokio::spawn(async move {
        if let Ok(why) = guard.await {
            let _ = guard_tx.send(Some(Stop::Lost(format!("{why:?}"))));
        }
    });
    let term_tx = stop_tx;
    let watch_term = tokio::spawn(async move {
        terminate.await;
        let _ = term_tx.send(Some(Stop::Terminate));
    });
    let mut stopping = stop_rx.clone();
    let shutdown = async move {
        let _ = stopping.wait_for(Option::is_some).await;
    };
    let controller = Controller::new(
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
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|res| async move {
        match res {
            Ok((obj, _)) => info!(grid = %obj, "reconciled"),
            Err(e) => warn!(error = %e, "reconcile error"),
        }
    });
    let mut controller = Box::pin(controller);
    let mut stopped = stop_rx.clone();
    // The controller waits for running reconciles; a hung one must not outlive the Lease.
    let deadline = async move {
        let _ = stopped.wait_for(Option::is_some).await;
        tokio::time::sleep(leadership::STEP_DOWN_MARGIN.saturating_sub(Duration::from_secs(1)))
            .await;
    };
    tokio::select! {
        () = &mut controller => {}
        () = deadline => warn!("reconciles still running at the deadline; stopping them"),
    }
    drop(controller);
    metrics.is_leader.set(0);
    for task in [watch_lost, watch_guard, watch_term] {
        task.abort();
    }
    server.abort();
    let why = stop_rx.borrow().clone();
    match why {
        Some(Stop::Terminate) => {
            // Hand the Lease over now instead of letting a successor wait out the term.
            drop(leading);
            match tokio::time::timeout(RELEASE_LIMIT, lease_task).await {
                Ok(Ok(Ok(_))) => info!("released the leader lease"),
                Ok(Ok(Err(e))) => error!(error = %e, "could not release the leader lease"),
                Ok(Err(e)) => error!(error = %e, "lease manager failed"),
                Err(_) => error!("releasing the leader lease timed out"),
            }
            Ok(())
        }
        other => {
            if let Some(Stop::Lost(why)) = other {
                error!(%why, "stepping down");
            }
            lease_task.abort();
            Err(RunError::LostLease)
        }
    }
}

/// Why the controller stops.
#[derive(Clone, Debug)]
enum Stop {
    Lost(String),
    Terminate,
}

/// How long releasing the Lease at exit may take.
const RELEASE_LIMIT: Duration = Duration::from_secs(5);

/// SIGTERM or Ctrl-C. If the handler cannot be installed, never.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot watch SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
