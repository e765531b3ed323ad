//! The head server monitor (`zk_head_server_monitor`).
//!
//! It discovers heads by watching `head_servers/` (no polling), checks each one every interval
//! (TCP connect + HTTP `/health` within a timeout), writes `health_reports/<id>`, and when the
//! leader fails `failure_threshold` checks in a row it excludes it and deletes `leader` in one
//! transaction, forcing a new election. The transaction also checks the epoch, so when several
//! monitors see the same hang only one failover happens. An excluded head is let back once it
//! passes as many checks in a row. See `docs/monitor.md`.

pub mod check;
pub mod failover;
pub mod interactive;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{Client, Error as ZkClientError};

use crate::config::MonitorConfig;
use crate::http::{self, Readiness};
use crate::ids::ServerId;
use crate::metrics::{self, MonitorMetrics};
use crate::zk::records::{self, HeadRecord, HealthReport, HealthStatus, MonitorRecord};
use crate::zk::{self, Layout, SessionEnd, SessionRole, ZkError};

/// What this monitor knows about one head.
#[derive(Clone, Debug)]
pub struct HeadHealth {
    pub record: HeadRecord,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub last: Option<check::CheckOutcome>,
}

pub struct Monitor {
    cfg: MonitorConfig,
    layout: Layout,
    metrics: MonitorMetrics,
    heads: Mutex<BTreeMap<ServerId, HeadHealth>>,
    client: watch::Sender<Option<Client>>,
    ready: Readiness,
    /// TLS of this process's calls (health checks of heads that speak TLS).
    outgoing: http::Outgoing,
    tls: tokio_rustls::TlsConnector,
    /// Sessions this process lost: their registration is removed, not waited out.
    past_sessions: zk::PastSessions,
}

/// Runs the monitor (and the interactive prompt with `-i`) until a signal, `quit` or EOF.
pub async fn run(cfg: MonitorConfig) -> anyhow::Result<()> {
    let registry = metrics::new_registry();
    let monitor_metrics = MonitorMetrics::new(&registry);
    let (serve_options, outgoing) = http::process_options(&cfg.common)?;
    let listener = http::bind("metrics_listen", cfg.metrics_listen).await?;
    let ready = Readiness::default();
    let stop = CancellationToken::new();
    let stop_http = CancellationToken::new();
    let server = tokio::spawn(http::serve(
        listener,
        http::ops_router(registry, ready.clone()),
        serve_options,
        stop_http.clone().cancelled_owned(),
    ));
    tokio::spawn(crate::signals::cancel_on_signal(stop.clone()));
    tracing::info!(monitor_id = %cfg.monitor_id, zk_hosts = %cfg.common.zk_hosts, zk_root = %cfg.common.zk_root,
        interval = %humantime::format_duration(cfg.interval), timeout = %humantime::format_duration(cfg.timeout),
        failure_threshold = cfg.failure_threshold, "starting monitor");
    let interactive = cfg.interactive;
    let monitor = Arc::new(Monitor {
        layout: Layout::for_config(&cfg.common),
        cfg,
        metrics: monitor_metrics,
        heads: Mutex::new(BTreeMap::new()),
        client: watch::channel(None).0,
        ready,
        tls: outgoing.connector(),
        outgoing,
        past_sessions: zk::PastSessions::default(),
    });
    let background = tokio::spawn(monitor.clone().run_sessions(stop.clone()));
    if interactive {
        interactive::run(monitor.clone(), stop.clone()).await;
        stop.cancel();
    }
    let sessions = background.await;
    stop_http.cancel();
    let _ = server.await;
    if let Ok(Err(e)) = sessions {
        return Err(anyhow::Error::new(e));
    }
    Ok(())
}

impl Monitor {
    /// TLS of this process's calls.
    pub fn outgoing(&self) -> &http::Outgoing {
        &self.outgoing
    }

    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    /// Waits up to `timeout` for a ZooKeeper session (interactive commands at start-up).
    pub async fn wait_client(&self, timeout: std::time::Duration) -> Option<Client> {
        let mut rx = self.client.subscribe();
        let got = tokio::time::timeout(timeout, rx.wait_for(|c| c.is_some())).await;
        match got {
            Ok(Ok(c)) => c.clone(),
            _ => None,
        }
    }

    pub fn session_timeout(&self) -> std::time::Duration {
        self.cfg.common.session_timeout
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn id(&self) -> &ServerId {
        &self.cfg.monitor_id
    }

    /// A snapshot of what this monitor knows about each head.
    pub fn heads(&self) -> BTreeMap<ServerId, HeadHealth> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Session after session; if this monitor may not use the grid's root, stops the
    /// process (`stop`, which also ends the interactive prompt) and returns why.
    async fn run_sessions(self: Arc<Self>, stop: CancellationToken) -> Result<(), ZkError> {
        let common = &self.cfg.common;
        let ended = zk::run_sessions(
            &common.zk_hosts,
            &self.layout,
            common.session_timeout,
            &self.metrics.zk,
            &stop,
            &*self,
        )
        .await;
        if ended.is_err() {
            stop.cancel();
        }
        ended
    }

    /// Works within one session until it is lost; returns why.
    async fn serve_session(&self, client: &Client) -> ZkError {
        if let Err(e) = zk::register_until_done("monitor", || self.register(client)).await {
            return e;
        }
        self.ready.set(true);
        let mut states = client.state_watcher();
        let track_state = async {
            loop {
                let s = states.changed().await;
                let connected = matches!(
                    s,
                    zookeeper_client::SessionState::SyncConnected
                        | zookeeper_client::SessionState::ConnectedReadOnly
                );
                self.metrics.zk.connected.set(i64::from(connected));
                if s == zookeeper_client::SessionState::Disconnected {
                    self.metrics.zk.connection_losses.inc();
                }
                if s.is_terminated() {
                    return ZkError::Zk(ZkClientError::SessionExpired);
                }
            }
        };
        tokio::select! {
            e = self.discover(client) => e,
            e = self.check_loop(client) => e,
            e = track_state => e,
        }
    }

    async fn register(&self, client: &Client) -> Result<(), ZkError> {
        zk::ensure_layout(client, &self.layout).await?;
        let record = MonitorRecord {
            v: records::RECORD_VERSION,
            id: self.cfg.monitor_id.clone(),
            host: crate::config::default_advertise_host(&([0, 0, 0, 0], 0).into()),
            started_at: records::now_ms(),
            interval_ms: self.cfg.interval.as_millis() as u64,
            failure_threshold: self.cfg.failure_threshold,
        };
        let path = self.layout.monitor(&self.cfg.monitor_id);
        zk::register_ephemeral(
            client,
            &self.layout,
            &path,
            &records::encode(&record),
            self.cfg.common.session_timeout * 2,
            |owner| self.past_sessions.contains(owner),
        )
        .await?;
        tracing::info!(monitor_id = %self.cfg.monitor_id, session = %client.session_id(), "registered monitor");
        Ok(())
    }

    /// Keeps the set of heads in step with `head_servers/`, woken by a child watch.
    async fn discover(&self, client: &Client) -> ZkError {
        loop {
            let (names, _, watch) = match client
                .get_and_watch_children(&self.layout.head_servers())
                .await
            {
                Ok(r) => r,
                Err(e) if ZkError::from(e.clone()).is_session_lost() => return e.into(),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list heads; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut found = BTreeMap::new();
            for name in names {
                let Ok(id) = ServerId::new(name) else {
                    continue;
                };
                match zk::read::<HeadRecord>(client, &self.layout.head(&id)).await {
                    Ok(Some((rec, _))) => {
                        found.insert(id, rec);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(server_id = %id, error = %e, "cannot read head registration")
                    }
                }
            }
            self.merge_heads(found);
            let _ = watch.changed().await;
        }
    }

    fn merge_heads(&self, found: BTreeMap<ServerId, HeadRecord>) {
        let Ok(mut heads) = self.heads.lock() else {
            return;
        };
        heads.retain(|id, _| found.contains_key(id));
        for (id, rec) in found {
            match heads.get_mut(&id) {
                Some(h) if h.record.host == rec.host && h.record.api_port == rec.api_port => {
                    h.record = rec;
                }
                _ => {
                    tracing::info!(server_id = %id, host = %rec.host, api_port = rec.api_port, "discovered head");
                    self.metrics
                        .check_failures
                        .with_label_values(&[id.as_str()]);
                    heads.insert(
                        id,
                        HeadHealth {
                            record: rec,
                            consecutive_failures: 0,
                            consecutive_successes: 0,
                            last: None,
                        },
                    );
                }
            }
        }
        self.metrics.heads_known.set(heads.len() as i64);
    }

    /// Checks every known head each interval, reports, and acts on the results.
    async fn check_loop(&self, client: &Client) -> ZkError {
        let mut tick = tokio::time::interval(self.cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let targets: Vec<(ServerId, String, u16, bool)> = self
                .heads()
                .into_iter()
                .map(|(id, h)| (id, h.record.host, h.record.api_port, h.record.tls))
                .collect();
            let timeout = self.cfg.timeout;
            let outcomes = futures::future::join_all(targets.into_iter().map(
                |(id, host, port, tls)| async move {
                    let tls = tls.then_some(&self.tls);
                    (id, check::check(&host, port, tls, timeout).await)
                },
            ))
            .await;
            let mut healthy = 0;
            for (id, outcome) in outcomes {
                if outcome.healthy() {
                    healthy += 1;
                }
                let Some(state) = self.record_outcome(&id, outcome) else {
                    continue;
                };
                if let Err(e) = self.act_on(client, &id, &state).await {
                    if e.is_session_lost() {
                        return e;
                    }
                    tracing::warn!(server_id = %id, error = %e, "cannot write health report");
                }
            }
            self.metrics.heads_healthy.set(healthy);
        }
    }

    /// Updates the counters of one head; returns its new state.
    fn record_outcome(&self, id: &ServerId, outcome: check::CheckOutcome) -> Option<HeadHealth> {
        self.metrics
            .check_seconds
            .with_label_values(&[id.as_str()])
            .observe(outcome.latency.as_secs_f64());
        let mut heads = self.heads.lock().ok()?;
        let h = heads.get_mut(id)?;
        if let Some(err) = &outcome.error {
            self.metrics
                .check_failures
                .with_label_values(&[id.as_str()])
                .inc();
            h.consecutive_failures += 1;
            h.consecutive_successes = 0;
            tracing::debug!(server_id = %id, failures = h.consecutive_failures, error = %err, "health check failed");
        } else {
            h.consecutive_successes += 1;
            h.consecutive_failures = 0;
        }
        h.last = Some(outcome);
        Some(h.clone())
    }

    async fn act_on(&self, client: &Client, id: &ServerId, h: &HeadHealth) -> Result<(), ZkError> {
        let Some(last) = &h.last else { return Ok(()) };
        let report = HealthReport {
            v: records::RECORD_VERSION,
            status: if last.healthy() {
                HealthStatus::Healthy
            } else {
                HealthStatus::Unhealthy
            },
            checked_at: records::now_ms(),
            latency_ms: last.latency.as_millis() as u64,
            consecutive_failures: h.consecutive_failures,
            reporter: self.cfg.monitor_id.to_string(),
            error: last.error.clone(),
        };
        zk::upsert(
            client,
            &self.layout,
            &self.layout.health_report(id),
            &report,
        )
        .await?;
        if h.consecutive_failures >= self.cfg.failure_threshold {
            failover::force_if_leader(
                client,
                &self.layout,
                id,
                h.consecutive_failures,
                &self.cfg.monitor_id,
                &self.metrics,
            )
            .await?;
        } else if h.consecutive_successes >= self.cfg.failure_threshold {
            failover::lift_exclusion(
                client,
                &self.layout,
                id,
                h.consecutive_successes,
                &self.metrics,
            )
            .await?;
        }
        Ok(())
    }
}

/// The monitor's part in each ZooKeeper session; [`zk::run_sessions`] does the reconnecting.
impl SessionRole for Monitor {
    async fn serve(&self, client: &Client, stop: &CancellationToken) -> SessionEnd {
        self.client.send_replace(Some(client.clone()));
        zk::until_stopped(stop, self.serve_session(client)).await
    }

    async fn stop(&self, client: &Client) {
        // Out of service from here on; probes and the gauge say so during the cleanup.
        self.ready.set(false);
        self.metrics.zk.connected.set(0);
        // Bounded: with ZooKeeper gone, session expiry removes the node anyway.
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            client.delete(&self.layout.monitor(&self.cfg.monitor_id), None),
        )
        .await;
        self.client.send_replace(None);
        tracing::info!(monitor_id = %self.cfg.monitor_id, "monitor stopped");
    }

    fn lost(&self, client: &Client, error: &ZkError) {
        self.ready.set(false);
        self.past_sessions.remember(client.session_id().0);
        tracing::warn!(monitor_id = %self.cfg.monitor_id, error = %error,
            "ZooKeeper session lost; reconnecting with a new session");
        self.client.send_replace(None);
    }
}
