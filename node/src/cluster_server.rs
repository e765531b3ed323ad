//! The cluster server process: the chunk store and its HTTP API ([`crate::cluster`]) plus the
//! coordination around them: registration in `cluster_servers/`, learning new epochs from
//! ZooKeeper (so a deposed leader is refused even before the new one calls), and heartbeats
//! with usage to the leader head.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use zookeeper_client::Client;

use crate::chunk::{ChunkStore, ScrubConfig, StoreConfig};
use crate::cluster::{self, ApiOptions, EpochFence};
use crate::config::ClusterConfig;
use crate::http::{self, Readiness};
use crate::metrics::{self, ZkMetrics};
use crate::zk::records::{self, ClusterRecord, EpochRecord, LeaderRecord};
use crate::zk::{self, Layout, SessionEnd, SessionRole, ZkError};
use filegrid_proto::head::{Heartbeat, HeartbeatAnswer};

/// Runs a cluster server until SIGTERM/SIGINT.
pub async fn run(cfg: ClusterConfig) -> anyhow::Result<()> {
    let (store, report) = ChunkStore::open(StoreConfig {
        data_dir: cfg.data_dir.clone(),
        capacity: cfg.capacity,
    })
    .await
    .map_err(|e| anyhow::anyhow!("setting `data_dir` ({}): {e}", cfg.data_dir.display()))?;
    tracing::info!(server_id = %cfg.server_id, chunks = report.chunks, bytes = report.bytes,
        temp_files_removed = report.temp_files_removed, quarantined = report.quarantined.len(),
        data_dir = %cfg.data_dir.display(), "opened chunk store");

    let registry = metrics::new_registry();
    let (serve_options, outgoing) = http::process_options(&cfg.common)?;
    let zk_metrics = ZkMetrics::new(&registry);
    let listener = http::bind("listen", cfg.listen).await?;
    let port = listener.local_addr().context("listen address")?.port();
    let metrics_listener = match cfg.metrics_listen {
        Some(a) => Some(http::bind("metrics_listen", a).await?),
        None => None,
    };
    let fence = EpochFence::new(0);
    let ready = Readiness::default();
    let stop = CancellationToken::new();
    tokio::spawn(crate::signals::cancel_on_signal(stop.clone()));

    let mut options = ApiOptions::new(format!("{}:{port}", cfg.advertise_host));
    options.readiness = ready.clone();
    options.listener = serve_options.clone();
    options.tls = outgoing.clone();
    let directory = cluster::Directory::default();
    let signer = match &cfg.common.security.cluster_secret_file {
        Some(path) => {
            let secret = crate::auth::ClusterSecret::load(path)?;
            options.peer = Some(cluster::PeerAuth {
                verifier: crate::auth::PeerVerifier::new(
                    secret.clone(),
                    cfg.common.security.signature_window,
                ),
                signer: crate::auth::PeerSigner::new(cfg.server_id.as_str(), secret.clone()),
                directory: directory.clone(),
                // The largest replication factor a head accepts, less this server.
                max_pipeline: 4,
            });
            Some(crate::auth::PeerSigner::new(cfg.server_id.as_str(), secret))
        }
        None => None,
    };
    options.scrub = Some(ScrubConfig {
        rate_bytes_per_sec: cfg.scrub_rate,
        pause_between_passes: cfg.scrub_interval,
    });
    let api_server = tokio::spawn(cluster::serve(
        listener,
        store.clone(),
        fence.clone(),
        registry.clone(),
        options,
        stop.clone().cancelled_owned(),
    ));
    if let Some(l) = metrics_listener {
        tokio::spawn(http::serve(
            l,
            http::ops_router(registry.clone(), ready.clone()),
            serve_options.clone(),
            stop.clone().cancelled_owned(),
        ));
    }
    let server = Arc::new(ClusterServer {
        cfg,
        port,
        tls: serve_options.tls.is_some(),
        store,
        fence,
        zk: zk_metrics,
        ready,
        directory,
        signer,
        http: outgoing
            .apply(reqwest::Client::builder())
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .context("building the heartbeat HTTP client")?,
        past_sessions: zk::PastSessions::default(),
    });
    let coordination = tokio::spawn(server.clone().coordinate(stop.clone()));
    let served = api_server.await;
    stop.cancel();
    let coordinated = coordination.await;
    if let Ok(Err(e)) = coordinated {
        return Err(anyhow::Error::new(e));
    }
    match served {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(anyhow::Error::new(e).context("chunk API")),
        Err(e) => tracing::error!(error = %e, "chunk API task failed"),
    }
    tracing::info!(server_id = %server.cfg.server_id, "cluster server stopped");
    Ok(())
}

/// The cluster server process: its chunk store, epoch fence and coordination state.
struct ClusterServer {
    cfg: ClusterConfig,
    port: u16,
    /// The chunk API speaks TLS.
    tls: bool,
    store: Arc<ChunkStore>,
    fence: EpochFence,
    zk: ZkMetrics,
    ready: Readiness,
    /// The leader and the registered servers, for checking signed requests.
    directory: cluster::Directory,
    /// Signs heartbeats, on grids with a cluster secret.
    signer: Option<crate::auth::PeerSigner>,
    http: reqwest::Client,
    /// Sessions this process lost: their registration is removed, not waited out.
    past_sessions: zk::PastSessions,
}

impl ClusterServer {
    fn layout(&self) -> Layout {
        Layout::for_config(&self.cfg.common)
    }

    /// Registration, epoch watch and heartbeats, session after session. If this server may
    /// not use the grid's root, stops the process (`stop`) and returns why.
    async fn coordinate(self: Arc<Self>, stop: CancellationToken) -> Result<(), ZkError> {
        let common = &self.cfg.common;
        let ended = zk::run_sessions(
            &common.zk_hosts,
            &self.layout(),
            common.session_timeout,
            &self.zk,
            &stop,
            &*self,
        )
        .await;
        if ended.is_err() {
            stop.cancel();
        }
        ended
    }

    async fn serve_session(&self, client: &Client) -> ZkError {
        if let Err(e) = zk::register_until_done("cluster server", || self.register(client)).await {
            return e;
        }
        // Know the current epoch before taking any request, so a deposed leader is refused
        // from the first request on.
        if let Ok(Some((e, _))) = zk::read::<EpochRecord>(client, &self.layout().epoch()).await {
            self.fence.observe(e.epoch);
        }
        self.ready.set(true);
        tokio::select! {
            e = self.follow_epoch(client) => e,
            e = self.follow_leader(client) => e,
            e = self.follow_servers(client) => e,
            e = self.heartbeats(client) => e,
        }
    }

    async fn register(&self, client: &Client) -> Result<(), ZkError> {
        let layout = self.layout();
        zk::ensure_layout(client, &layout).await?;
        let usage = self.store.usage().ok();
        let record = ClusterRecord {
            v: records::RECORD_VERSION,
            id: self.cfg.server_id.clone(),
            host: self.cfg.advertise_host.clone(),
            port: self.port,
            zone: self.cfg.zone.clone(),
            capacity_bytes: usage.map(|u| u.capacity_bytes).unwrap_or(0),
            used_bytes: usage.map(|u| u.used_bytes).unwrap_or(0),
            started_at: records::now_ms(),
            tls: self.tls,
        };
        let path = layout.cluster_server(&self.cfg.server_id);
        let data = records::encode(&record);
        zk::register_ephemeral(
            client,
            &layout,
            &path,
            &data,
            self.cfg.common.session_timeout * 2,
            |owner| self.past_sessions.contains(owner),
        )
        .await?;
        tracing::info!(server_id = %self.cfg.server_id, zone = self.cfg.zone.as_deref(), "registered cluster server");
        Ok(())
    }

    /// Raises the fence to every new epoch as soon as ZooKeeper has it.
    async fn follow_epoch(&self, client: &Client) -> ZkError {
        let path = self.layout().epoch();
        loop {
            match client.get_and_watch_data(&path).await {
                Ok((data, _, watch)) => {
                    if let Ok(e) = records::decode::<EpochRecord>(&path, &data) {
                        let before = self.fence.current();
                        self.fence.observe(e.epoch);
                        if e.epoch > before {
                            tracing::info!(server_id = %self.cfg.server_id, epoch = e.epoch, "new leader epoch");
                        }
                    }
                    let _ = watch.changed().await;
                }
                Err(e) => {
                    let e = ZkError::from(e);
                    if e.is_session_lost() {
                        return e;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Keeps the directory's leader (id and epoch) as ZooKeeper's `leader` node says.
    async fn follow_leader(&self, client: &Client) -> ZkError {
        let path = self.layout().leader();
        loop {
            let watch = match client.check_and_watch_stat(&path).await {
                Ok((_, watch)) => watch,
                Err(e) => {
                    let e = ZkError::from(e);
                    if e.is_session_lost() {
                        return e;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            match zk::read::<LeaderRecord>(client, &path).await {
                Ok(Some((l, _))) => {
                    // The epoch node is raised before the leader node is written.
                    self.fence.observe(l.epoch);
                    self.directory
                        .set_leader(Some((l.server_id.to_string(), l.epoch)));
                }
                Ok(None) => self.directory.set_leader(None),
                Err(e) if e.is_session_lost() => return e,
                Err(e) => tracing::warn!(error = %e, "unreadable leader record"),
            }
            let _ = watch.changed().await;
        }
    }

    /// Keeps the directory's registered cluster servers as `cluster_servers/` says.
    async fn follow_servers(&self, client: &Client) -> ZkError {
        let layout = self.layout();
        loop {
            let (names, _, watch) = match client
                .get_and_watch_children(&layout.cluster_servers())
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    let e = ZkError::from(e);
                    if e.is_session_lost() {
                        return e;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let servers = zk::cluster_registrations(client, &layout, names)
                .await
                .into_iter()
                .map(|r| (format!("{}:{}", r.host, r.port), r.id.to_string()))
                .collect();
            self.directory.set_servers(servers);
            let _ = watch.changed().await;
        }
    }

    /// Tells the leader head this server's usage every `heartbeat_interval`.
    async fn heartbeats(&self, client: &Client) -> ZkError {
        let layout = self.layout();
        let mut tick = tokio::time::interval(self.cfg.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut bad = self.store.subscribe_bad();
        loop {
            // A chunk found damaged or missing is told at once, not at the next tick.
            tokio::select! {
                _ = tick.tick() => {}
                found = bad.recv() => {
                    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
                    if let Err(RecvError::Closed) = found {
                        tick.tick().await;
                    }
                    // Many found at once make one heartbeat.
                    while !matches!(bad.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
                }
            }
            let leader = match zk::read::<LeaderRecord>(client, &layout.leader()).await {
                Ok(Some((l, _))) => l,
                Ok(None) => continue,
                Err(e) if e.is_session_lost() => return e,
                Err(_) => continue,
            };
            let Ok(usage) = self.store.usage() else {
                continue;
            };
            let hb = Heartbeat {
                id: self.cfg.server_id.clone(),
                host: self.cfg.advertise_host.clone(),
                port: self.port,
                zone: self.cfg.zone.clone(),
                capacity_bytes: usage.capacity_bytes,
                used_bytes: usage.used_bytes,
                free_bytes: usage.free_bytes,
                chunks: usage.chunks,
                bad_chunks_found: self.store.checksum_failures(),
                interval_ms: u64::try_from(self.cfg.heartbeat_interval.as_millis()).ok(),
            };
            let scheme = http::Outgoing::scheme(leader.tls);
            let url = format!(
                "{scheme}://{}:{}/v1/heartbeat",
                leader.host, leader.api_port
            );
            let Ok(body) = serde_json::to_vec(&hb) else {
                continue;
            };
            let mut req = self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(signer) = &self.signer {
                let digest = crate::auth::peer::body_digest(&body);
                req = req.header(
                    filegrid_proto::headers::PEER_AUTH,
                    signer.header(&crate::auth::peer::Signed {
                        method: "POST",
                        path_and_query: "/v1/heartbeat",
                        body_digest: Some(&digest),
                        ..Default::default()
                    }),
                );
            }
            match req.body(body).send().await {
                // The answer's epoch is not taken: epochs come from ZooKeeper only.
                Ok(r) if r.status().is_success() => {
                    let _ = r.json::<HeartbeatAnswer>().await;
                }
                Ok(r) => {
                    tracing::debug!(status = %r.status(), leader = %leader.server_id, "heartbeat refused")
                }
                Err(e) => {
                    tracing::debug!(error = %e, leader = %leader.server_id, "heartbeat failed")
                }
            }
        }
    }
}

/// The cluster server's part in each ZooKeeper session; [`zk::run_sessions`] does the
/// reconnecting.
impl SessionRole for ClusterServer {
    async fn serve(&self, client: &Client, stop: &CancellationToken) -> SessionEnd {
        zk::until_stopped(stop, self.serve_session(client)).await
    }

    async fn stop(&self, client: &Client) {
        // Out of service from here on; probes and the gauge say so during the cleanup.
        self.ready.set(false);
        self.zk.connected.set(0);
        // Bounded: with ZooKeeper gone, session expiry removes the node anyway.
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            client.delete(&self.layout().cluster_server(&self.cfg.server_id), None),
        )
        .await;
    }

    fn lost(&self, client: &Client, error: &ZkError) {
        self.ready.set(false);
        self.past_sessions.remember(client.session_id().0);
        tracing::warn!(server_id = %self.cfg.server_id, error = %error, "ZooKeeper session lost; registering again");
    }
}
