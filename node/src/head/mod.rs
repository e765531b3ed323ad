//! The head server process: election, coordination API, and (with the data path) the file API.

pub mod api;
pub mod leader_only;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ChunkClient, ClientOptions};
use crate::config::HeadConfig;
use crate::election::{Election, HeadIdentity, Role};
use crate::files::{self, DataConfig, DataPlane, repair::PassReport};
use crate::http::{self, Readiness};
use crate::metrics::{self, DataMetrics, HeadMetrics, HttpMetrics};
use crate::zk::Layout;

/// Runs a head until SIGTERM/SIGINT; leadership is released before the API stops.
pub async fn run(cfg: HeadConfig) -> anyhow::Result<()> {
    let registry = metrics::new_registry();
    let head_metrics = HeadMetrics::new(&registry);
    let (serve_options, outgoing) = http::process_options(&cfg.common)?;
    let http_metrics = HttpMetrics::new(&registry);
    let api_listener = http::bind("listen", cfg.listen).await?;
    let api_port = api_listener.local_addr().context("listen address")?.port();
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(http::bind("metrics_listen", addr).await?),
        None => None,
    };
    let s3_listener = match cfg.s3.listen {
        Some(addr) => Some(http::bind("s3_listen", addr).await?),
        None => None,
    };
    let s3_port = match &s3_listener {
        Some(l) => Some(l.local_addr().context("s3 listen address")?.port()),
        None => None,
    };
    let metrics_port = match &metrics_listener {
        Some(l) => Some(l.local_addr().context("metrics listen address")?.port()),
        None => None,
    };
    let election = Election::new(
        HeadIdentity {
            server_id: cfg.server_id.clone(),
            host: cfg.advertise_host.clone(),
            api_port,
            metrics_port,
            tls: serve_options.tls.is_some(),
            s3_port,
        },
        Layout::for_config(&cfg.common),
        cfg.common.zk_hosts.clone(),
        cfg.common.session_timeout,
        cfg.preempt,
        cfg.startup_grace,
        head_metrics,
    );
    tracing::info!(server_id = %cfg.server_id, listen = %cfg.listen, advertise_host = %cfg.advertise_host,
        zk_hosts = %cfg.common.zk_hosts, zk_root = %cfg.common.zk_root, preempt = cfg.preempt, standby_proxy = cfg.standby_proxy, "starting head");

    // On grids with a cluster secret, this head signs its chunk calls and checks the cluster
    // servers' signatures.
    let peer = match &cfg.common.security.cluster_secret_file {
        Some(path) => {
            let secret = crate::auth::ClusterSecret::load(path)?;
            Some((
                crate::auth::PeerSigner::new(cfg.server_id.as_str(), secret.clone()),
                crate::auth::PeerVerifier::new(secret, cfg.common.security.signature_window),
            ))
        }
        None => None,
    };
    let data_plane = DataPlane::new(
        election.clone(),
        DataConfig {
            replication_factor: cfg.replication_factor,
            min_write_replicas: cfg.min_write_replicas,
            chunk_size: cfg.chunk_size,
            dead_after: cfg.dead_after,
            orphan_grace: cfg.orphan_grace,
            repair_rate: cfg.repair_rate,
            hop_progress_timeout: cfg.hop_progress_timeout,
            max_file_size: cfg.max_file_size,
            max_uploads: cfg.max_uploads,
            read_cache_size: cfg
                .read_cache_size
                .unwrap_or_else(|| crate::files::cache::auto_size(crate::memory::limit())),
            read_cache_max_chunk: cfg.read_cache_max_chunk,
        },
        DataMetrics::new(&registry),
        ChunkClient::new(
            ClientOptions {
                connect_timeout: std::time::Duration::from_secs(3),
                read_timeout: Some(cfg.chunk_timeout),
                pool_max_idle_per_host: 16,
                tls: outgoing.clone(),
            },
            &registry,
        )
        .context("building the chunk API client")?
        .with_signer(peer.as_ref().map(|(signer, _)| signer.clone())),
        peer.as_ref().map(|(_, verifier)| verifier.clone()),
    );
    let repair_report = Arc::new(std::sync::Mutex::new(PassReport::default()));
    let proxy = if cfg.standby_proxy {
        // No overall timeout: a forwarded upload or download lasts as long as the transfer.
        Some(
            outgoing
                .apply(reqwest::Client::builder())
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(3))
                .build()
                .context("building the standby proxy's HTTP client")?,
        )
    } else {
        None
    };
    let api_state = api::ApiState {
        election: election.clone(),
        server_id: cfg.server_id.clone(),
        proxy,
        membership: data_plane.membership.clone(),
    };

    let credentials = match &cfg.credentials_file {
        Some(path) => Some(
            crate::auth::credentials::LiveCredentials::watch(
                path.clone(),
                std::time::Duration::from_secs(5),
            )
            .map_err(anyhow::Error::new)?,
        ),
        None => None,
    };
    let client_gate = crate::auth::gate::ClientGate {
        credentials: credentials.clone(),
        anonymous_read: cfg.anonymous_read,
    };
    let s3_app = match &s3_listener {
        Some(_) => Some(
            crate::s3::router(
                data_plane.clone(),
                crate::s3::S3Options {
                    credentials,
                    anonymous_read: cfg.anonymous_read,
                    domain: cfg.s3.domain.clone(),
                    region: cfg.s3.region.clone(),
                    server_id: cfg.server_id.to_string(),
                    forward: crate::s3::forward::Forwarder {
                        tls: outgoing.connector(),
                    },
                },
            )?
            .layer(axum::middleware::from_fn_with_state(
                http_metrics.clone(),
                http::track,
            )),
        ),
        None => None,
    };
    let ready = Readiness::default();
    let ops = http::ops_router(registry.clone(), ready.clone());
    let files_state = files::api::FilesState {
        dp: data_plane.clone(),
        report: repair_report.clone(),
    };
    let app = Router::new()
        .merge(api::router(api_state.clone()))
        .merge(leader_only::readable(
            files::api::read_routes(files_state.clone()),
            api_state.clone(),
        ))
        .merge(leader_only::forwardable(
            files::api::forwardable_routes(files_state.clone()),
            api_state.clone(),
        ))
        .merge(leader_only::redirected(
            files::api::heartbeat_routes(files_state),
            api_state,
        ))
        .merge(ops.clone())
        .layer(axum::middleware::from_fn_with_state(
            client_gate,
            crate::auth::gate::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            http::track,
        ));

    let stop_election = CancellationToken::new();
    let stop_http = CancellationToken::new();
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(http::serve(
        api_listener,
        app,
        serve_options.clone(),
        stop_http.clone().cancelled_owned(),
    ));
    if let (Some(l), Some(app)) = (s3_listener, s3_app) {
        servers.spawn(http::serve_as_is(
            l,
            app,
            serve_options.clone(),
            stop_http.clone().cancelled_owned(),
        ));
    }
    if let Some(l) = metrics_listener {
        servers.spawn(http::serve(
            l,
            ops,
            serve_options,
            stop_http.clone().cancelled_owned(),
        ));
    }
    tokio::spawn(track_readiness(election.clone(), ready));
    tokio::spawn(watch_cluster(data_plane.clone(), stop_http.clone()));
    tokio::spawn(cluster_gauges(data_plane.clone(), stop_http.clone()));
    tokio::spawn(files::repair::run(
        data_plane.clone(),
        stop_http.clone(),
        repair_report,
    ));
    if cfg.s3.listen.is_some() {
        tokio::spawn(crate::s3::collect_uploads(
            data_plane.clone(),
            cfg.s3.multipart_max_age,
            stop_http.clone(),
        ));
    }
    let signalled = CancellationToken::new();
    tokio::spawn(crate::signals::cancel_on_signal(signalled.clone()));
    tokio::spawn(hand_over(
        signalled,
        election.clone(),
        stop_election.clone(),
    ));

    let elections = election.run(stop_election).await;
    stop_http.cancel();
    while let Some(r) = servers.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "HTTP server ended with an error");
        }
    }
    tracing::info!(server_id = %cfg.server_id, "head stopped");
    elections?;
    Ok(())
}

/// Longest a stopping head waits for the writes it admitted before it ends its election.
/// Within Kubernetes' default 30 s grace, after the head pods' 5 s `preStop`.
const HANDOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// On a stop signal, lets the client writes this head admitted as leader finish (up to
/// [`HANDOVER_WAIT`]) before ending its election: a leader that released leadership at once
/// would fail every upload it was still receiving at its commit. It admits no new write
/// meanwhile (`503 no_leader`: the client retries and finds the next leader), or a steady
/// load would hold it for the whole wait; reads go on. A standby admits no write of its own
/// and stops at once.
async fn hand_over(signalled: CancellationToken, election: Arc<Election>, stop: CancellationToken) {
    signalled.cancelled().await;
    election.begin_handover();
    let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
    let mut left = election.writes_in_flight();
    if left > 0 {
        tracing::info!(
            writes = left,
            "stopping: letting the writes in progress finish before leadership is released"
        );
    }
    while left > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = election.writes_in_flight();
    }
    if left > 0 {
        tracing::warn!(
            writes = left,
            "stopping with writes still in progress; they fail and their clients must retry"
        );
    }
    stop.cancel();
}

/// Ready while connected and registered (leading, standing by, or waiting for an election).
async fn track_readiness(election: Arc<Election>, ready: Readiness) {
    let mut status = election.status();
    loop {
        let r = {
            let s = status.borrow_and_update();
            s.zk_connected && matches!(s.role, Role::Leader | Role::Standby | Role::Candidate)
        };
        ready.set(r);
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Keeps the data plane's view of cluster servers current, across ZooKeeper sessions.
async fn watch_cluster(dp: Arc<DataPlane>, stop: CancellationToken) {
    loop {
        let client = loop {
            if let Some(c) = dp.election.client() {
                break c;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        };
        let layout = dp.election.layout().clone();
        tokio::select! {
            _ = stop.cancelled() => return,
            e = files::servers::watch_registrations(client, layout, dp.membership.clone()) => {
                tracing::debug!(error = %e, "cluster membership watch ended; restarting");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Keeps `filegrid_cluster_servers_live` and `heartbeat_active_connections` current.
async fn cluster_gauges(dp: Arc<DataPlane>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let (up, beating) = dp.membership.counts(dp.config.dead_after);
                dp.metrics.servers_live.set(up as i64);
                dp.metrics.heartbeat_active.set(beating as i64);
            }
        }
    }
}
