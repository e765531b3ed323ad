//! The processes of one round: three heads and (from some point on) a monitor under a fresh
//! `--zk-root`, and the checks that say the grid is in a steady state.

use filegrid_proto::head::{Role, StatusView};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use filegrid_node::zk::Layout;
use filegrid_node::zk::records::{HealthReport, HealthStatus, LeaderRecord};
use filegrid_testkit::{Proc, free_port};
use zookeeper_client::Client;

use super::{Context, FailoverOptions};
use crate::error::BenchError;
use crate::zk_watch::{self, LeaderSeen, WatchError};

pub const HEAD_IDS: [&str; 3] = ["head_server_1", "head_server_2", "head_server_3"];
pub const MONITOR_ID: &str = "bench_monitor";

/// How long a steady state may take to reach (restarts wait out old sessions).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

pub struct Head {
    pub port: u16,
    pub proc: Proc,
    started: Instant,
    started_ms: u64,
}

pub struct RoundGrid<'a> {
    ctx: &'a Context,
    pub layout: Layout,
    dir: PathBuf,
    heads: BTreeMap<String, Head>,
    /// Incarnations per id, so a restarted head gets its own log file.
    spawned: BTreeMap<String, u32>,
    pub monitor: Option<Proc>,
}

impl<'a> RoundGrid<'a> {
    pub fn new(ctx: &'a Context, round: u32) -> Result<Self, BenchError> {
        let dir = ctx.logs.join(format!("round_{round}"));
        std::fs::create_dir_all(&dir).map_err(BenchError::TempDir)?;
        Ok(Self {
            ctx,
            layout: Layout::new(format!("/filegrid_bench_round_{round}")),
            dir,
            heads: BTreeMap::new(),
            spawned: BTreeMap::new(),
            monitor: None,
        })
    }

    fn options(&self) -> &FailoverOptions {
        &self.ctx.options
    }

    pub fn logs(&self) -> String {
        self.dir.display().to_string()
    }

    pub fn head_mut(&mut self, id: &str) -> Result<&mut Head, BenchError> {
        let logs = self.logs();
        self.heads
            .get_mut(id)
            .ok_or_else(|| BenchError::Unexpected {
                what: format!("{id} leads but is not one of this round's heads"),
                logs,
            })
    }

    pub fn head(&self, id: &str) -> Option<&Head> {
        self.heads.get(id)
    }

    fn spawn(&mut self, id: &str, program: &std::path::Path, args: &[String]) -> Proc {
        let n = self.spawned.entry(id.to_string()).or_insert(0);
        *n += 1;
        let name = format!("{id}.{n}");
        // Info-level logs: what an operator would run, without debug output to slow it down.
        Proc::spawn_with(
            &name,
            program,
            args,
            &self.dir,
            &[("RUST_LOG", "info")],
            Stdio::null(),
        )
    }

    /// Starts (or restarts, on a new port) head `id`.
    pub fn spawn_head(&mut self, id: &str) {
        let port = free_port();
        let o = self.options();
        let args: Vec<String> = vec![
            "head".into(),
            "--insecure".into(),
            "--server-id".into(),
            id.into(),
            "--zk-hosts".into(),
            self.ctx.zk_hosts.clone(),
            "--zk-root".into(),
            self.layout.root().into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--session-timeout".into(),
            fmt_duration(o.session_timeout),
            "--startup-grace".into(),
            fmt_duration(o.startup_grace),
        ];
        let proc = self.spawn(id, &self.ctx.bins.node.clone(), &args);
        self.heads.insert(
            id.to_string(),
            Head {
                port,
                proc,
                started: Instant::now(),
                started_ms: unix_ms(),
            },
        );
    }

    /// Replaces head `id` (stopped, killed or exited) with a fresh process.
    pub fn restart_head(&mut self, id: &str) {
        self.heads.remove(id);
        self.spawn_head(id);
    }

    pub fn spawn_monitor(&mut self) {
        let o = self.options();
        let args: Vec<String> = vec![
            "--zk-hosts".into(),
            self.ctx.zk_hosts.clone(),
            "--zk-root".into(),
            self.layout.root().into(),
            "--session-timeout".into(),
            fmt_duration(o.session_timeout),
            "--interval".into(),
            fmt_duration(o.interval),
            "--timeout".into(),
            fmt_duration(o.check_timeout),
            "--failure-threshold".into(),
            o.failure_threshold.to_string(),
            "--monitor-id".into(),
            MONITOR_ID.into(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", free_port()),
        ];
        let proc = self.spawn(MONITOR_ID, &self.ctx.bins.monitor.clone(), &args);
        self.monitor = Some(proc);
    }

    /// Waits for a leader node that `accept` takes, watching ZooKeeper directly.
    pub async fn wait_leader(
        &self,
        timeout: Duration,
        what: &str,
        accept: impl Fn(&LeaderRecord) -> bool,
    ) -> Result<LeaderSeen, BenchError> {
        zk_watch::wait_for_leader(&self.ctx.zk, &self.layout.leader(), timeout, accept)
            .await
            .map_err(|e| match e {
                WatchError::Timeout => BenchError::Timeout {
                    what: what.into(),
                    timeout,
                    logs: self.logs(),
                },
                WatchError::Zk(e) => BenchError::Zk(e),
            })
    }

    /// Whether a monitor has excluded head `id`.
    pub async fn is_excluded(&self, id: &str) -> Result<bool, BenchError> {
        let path = format!("{}/{id}", self.layout.excluded_dir());
        Ok(self.ctx.zk.check_stat(&path).await?.is_some())
    }

    /// Waits until every head agrees on one leader, each has been up at least the startup
    /// grace, and a running monitor has a fresh healthy report of each and excludes none.
    /// Returns that leader.
    pub async fn settle(&self) -> Result<LeaderRecord, BenchError> {
        let start = Instant::now();
        loop {
            if let Some(leader) = self.steady_leader().await? {
                return Ok(leader);
            }
            if start.elapsed() > SETTLE_TIMEOUT {
                return Err(BenchError::Timeout {
                    what: "three healthy heads agreeing on one leader".into(),
                    timeout: SETTLE_TIMEOUT,
                    logs: self.logs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn steady_leader(&self) -> Result<Option<LeaderRecord>, BenchError> {
        let zk = &self.ctx.zk;
        let Some(leader) = zk_watch::current_leader(zk, &self.layout.leader()).await? else {
            return Ok(None);
        };
        for (id, head) in &self.heads {
            if head.started.elapsed() < self.options().startup_grace {
                return Ok(None);
            }
            let want = if *id == leader.server_id.as_str() {
                Role::Leader
            } else {
                Role::Standby
            };
            let Some(status) = self.head_status(head.port).await else {
                return Ok(None);
            };
            if status.status.role != want
                || status.status.leader.as_ref().map(|l| &l.server_id) != Some(&leader.server_id)
            {
                return Ok(None);
            }
        }
        if self.monitor.is_some() {
            if !zk
                .list_children(&self.layout.excluded_dir())
                .await?
                .is_empty()
            {
                return Ok(None);
            }
            for (id, head) in &self.heads {
                if !fresh_healthy_report(zk, &self.layout, id, head.started_ms).await? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(leader))
    }

    async fn head_status(&self, port: u16) -> Option<StatusView> {
        let url = format!("http://127.0.0.1:{port}/v1/status");
        let response = self.ctx.http.get(url).send().await.ok()?;
        response.json().await.ok()
    }
}

/// Whether this benchmark's monitor reported head `id` healthy since it started.
async fn fresh_healthy_report(
    zk: &Client,
    layout: &Layout,
    id: &str,
    since_ms: u64,
) -> Result<bool, BenchError> {
    let path = format!("{}/{id}", layout.health_reports_dir());
    let data = match zk.get_data(&path).await {
        Ok((data, _)) => data,
        Err(zookeeper_client::Error::NoNode) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(
        serde_json::from_slice::<HealthReport>(&data).is_ok_and(|r| {
            r.status == HealthStatus::Healthy
                && r.reporter == MONITOR_ID
                && r.checked_at >= since_ms
        }),
    )
}

/// A duration as the node's settings take it (`200ms`, `2s`).
fn fmt_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
