//! One round: a cold start, then each failure mode of the leader in turn, each from three
//! healthy heads with a known leader.

use std::time::{Duration, Instant};

use filegrid_node::zk::records::LeaderRecord;

use super::Context;
use super::grid::{HEAD_IDS, RoundGrid};
use crate::error::BenchError;
use crate::zk_watch::LeaderSeen;

/// Deadlines for things that normally take well under a second.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What one round measured.
pub struct RoundResult {
    /// Processes started → `leader` node exists.
    pub cold_start: Duration,
    /// SIGTERM of the leader → a new leader node.
    pub graceful: Duration,
    /// kill -9 of the leader, no monitor running → a new leader node (session expiry).
    pub crash: Duration,
    /// kill -9 of the leader with the monitor running → a new leader node.
    pub crash_monitored: Duration,
    /// Whether the monitor (rather than session expiry) ended the crashed leadership.
    pub crash_monitored_forced: bool,
    /// SIGSTOP of the leader → a new leader node.
    pub hang: Duration,
    pub monitor_rss: u64,
    pub head_rss: u64,
    /// Anything unexpected that did not stop the round.
    pub notes: Vec<String>,
}

pub async fn run(ctx: &Context, round: u32) -> Result<RoundResult, BenchError> {
    let mut g = RoundGrid::new(ctx, round)?;
    let mut notes = Vec::new();

    // Cold start: three heads at once under a fresh root.
    let started = Instant::now();
    for id in HEAD_IDS {
        g.spawn_head(id);
    }
    let first = g
        .wait_leader(START_TIMEOUT, "a first leader", |_| true)
        .await?;
    let cold_start = first.at - started;
    if first.server_id != HEAD_IDS[0] {
        notes.push(format!(
            "cold start elected {} rather than {}",
            first.server_id, HEAD_IDS[0]
        ));
    }

    // Graceful: SIGTERM releases leadership before exiting.
    let leader = g.settle().await?;
    let sent = Instant::now();
    g.head_mut(leader.server_id.as_str())?.proc.terminate();
    let graceful = next_leader(&g, &leader, EXIT_TIMEOUT, "SIGTERM").await?.at - sent;
    let head = g.head_mut(leader.server_id.as_str())?;
    match head.proc.wait_exit(EXIT_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => notes.push(format!(
            "{} exited with {status} after SIGTERM",
            leader.server_id
        )),
        None => notes.push(format!(
            "{} did not exit within {EXIT_TIMEOUT:?} of SIGTERM",
            leader.server_id
        )),
    }
    g.restart_head(leader.server_id.as_str());

    // Crash without a monitor: only the session timeout ends the leadership.
    let leader = g.settle().await?;
    stagger(ctx, round, heartbeat_period(ctx)).await;
    let crash_deadline = ctx.options.session_timeout + Duration::from_secs(10);
    let sent = Instant::now();
    g.head_mut(leader.server_id.as_str())?.proc.kill9();
    let crash = next_leader(&g, &leader, crash_deadline, "kill -9")
        .await?
        .at
        - sent;
    g.restart_head(leader.server_id.as_str());

    // From here on a monitor watches the heads.
    g.spawn_monitor();

    // Crash with the monitor running: whichever of the monitor and session expiry acts first.
    let leader = g.settle().await?;
    stagger(ctx, round, ctx.options.interval).await;
    let sent = Instant::now();
    g.head_mut(leader.server_id.as_str())?.proc.kill9();
    let crash_monitored = next_leader(&g, &leader, crash_deadline, "kill -9 with a monitor")
        .await?
        .at
        - sent;
    let crash_monitored_forced = g.is_excluded(leader.server_id.as_str()).await?;
    g.restart_head(leader.server_id.as_str());

    // Hang: the process is stopped, its session lives on; the monitor must end it.
    let leader = g.settle().await?;
    stagger(ctx, round, ctx.options.interval).await;
    let hung = leader.server_id.to_string();
    let sent = Instant::now();
    g.head_mut(&hung)?.proc.pause();
    let hang_deadline = ctx.options.session_timeout + Duration::from_secs(10);
    let next = next_leader(&g, &leader, hang_deadline, "SIGSTOP").await;
    let hang_forced = g.is_excluded(&hung).await;
    // Resident memory after the monitor has done its work, of the monitor and the new leader.
    let monitor_rss = g.monitor.as_ref().and_then(|m| m.rss_bytes());
    let head_rss = next
        .as_ref()
        .ok()
        .and_then(|n| g.head(&n.server_id))
        .and_then(|h| h.proc.rss_bytes());
    g.head_mut(&hung)?.proc.resume();
    let hang = next?.at - sent;
    if !hang_forced? {
        notes.push(format!(
            "the hang of {hung} ended without an exclusion (session expiry, not the monitor)"
        ));
    }
    let (Some(monitor_rss), Some(head_rss)) = (monitor_rss, head_rss) else {
        return Err(BenchError::Unexpected {
            what: "cannot read VmRSS of the monitor or the new leader".into(),
            logs: g.logs(),
        });
    };
    Ok(RoundResult {
        cold_start,
        graceful,
        crash,
        crash_monitored,
        crash_monitored_forced,
        hang,
        monitor_rss,
        head_rss,
        notes,
    })
}

/// The first leader newer than `old`.
async fn next_leader(
    g: &RoundGrid<'_>,
    old: &LeaderRecord,
    timeout: Duration,
    after: &str,
) -> Result<LeaderSeen, BenchError> {
    let old_epoch = old.epoch;
    g.wait_leader(timeout, &format!("a new leader after {after}"), |l| {
        l.epoch > old_epoch
    })
    .await
}

/// Waits a different fraction of `period` in each round before a failure, spreading the
/// failures evenly over it.
///
/// Without this every round would fail at the same point of a periodic process and measure
/// one case only. A steady state is usually reached right after one of the monitor's check
/// cycles (that is what writes the reports and lifts exclusions), so the period is the
/// monitor's interval for failures the monitor sees; for a crash without a monitor it is the
/// leader's heartbeat period, since ZooKeeper counts the session timeout from the last time it
/// heard from the client.
async fn stagger(ctx: &Context, round: u32, period: Duration) {
    let fraction = (f64::from(round) - 0.5) / f64::from(ctx.options.rounds);
    tokio::time::sleep(period.mul_f64(fraction)).await;
}

/// Longest time between two messages of an idle ZooKeeper client (zookeeper-client pings once
/// idle for 3/20 of the session timeout, checking every 1/20).
fn heartbeat_period(ctx: &Context) -> Duration {
    ctx.options.session_timeout / 5
}
