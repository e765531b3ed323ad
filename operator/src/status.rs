//! Status and conditions computed from what the reconciler observed (pure, so testable).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use filegrid_proto::head::RepairReport;

use crate::crd::{CapacityStatus, FileGridStatus, RepairStatus, ServerStatus};
use crate::head_api::{ClusterServer, Leader};

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// Whether the `filegrid.io/paused` annotation stops the operator from reconciling the grid.
pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";
/// Whether writes go on through the loss of any one pod of the grid.
pub const RESILIENT: &str = "Resilient";
/// `Progressing` reason of a rollout that holds because no leader head answers.
pub const ROLLOUT_HELD: &str = "RolloutHeld";

/// What one reconcile saw of the grid's workloads and its leader.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub generation: Option<i64>,
    pub desired_heads: i32,
    pub ready_heads: i32,
    pub desired_cluster: i32,
    pub ready_cluster: i32,
    pub min_write_replicas: i32,
    /// Every workload runs its current template with all replicas updated.
    pub rolled_out: bool,
    pub leader: Option<Leader>,
    pub decommissioning: Vec<String>,
    /// The cluster servers as the leader lists them (`None`: not asked or no answer).
    pub servers: Option<Vec<ClusterServer>>,
    /// The leader's last repair pass (`None`: not asked or no answer).
    pub repair: Option<RepairReport>,
    /// What a rollout under way waits for ([`crate::rollout::describe`]).
    pub rollout: Option<String>,
    /// The rollout is held because no leader head answers.
    pub rollout_held: bool,
    /// When this was observed (Unix ms), the base of the leader's `eta_seconds`; `None`: now.
    pub now_ms: Option<i64>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `1.2GiB`: one decimal in the largest binary unit below the value.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

/// Used and total space of the servers that count (not drained), `None` without any.
pub fn capacity(servers: &[ClusterServer]) -> Option<CapacityStatus> {
    let counted = servers
        .iter()
        .filter(|s| s.state != crate::head_api::ServerState::Drained);
    let (used, total) = counted.fold((0u64, 0u64), |(u, t), s| {
        (
            u.saturating_add(s.used_bytes),
            t.saturating_add(s.capacity_bytes),
        )
    });
    if total == 0 {
        return None;
    }
    let percent = (used as f64 * 100.0 / total as f64).round() as u64;
    Some(CapacityStatus {
        used_bytes: to_i64(used),
        total_bytes: to_i64(total),
        used: format!("{}/{} ({percent}%)", bytes(used), bytes(total)),
    })
}

fn rfc3339_ms(ms: u64) -> Option<String> {
    let ms = i64::try_from(ms).ok()?;
    Timestamp::from_millisecond(ms).ok().map(|t| t.to_string())
}

fn parse_ms(t: &str) -> Option<i64> {
    t.parse::<Timestamp>().ok().map(|t| t.as_millisecond())
}

/// When the repair should end, from two passes: the count of under-replicated chunks
/// `before` at `before_ms` and `now` at `now_ms` (Unix ms). Only while chunks are short and
/// their count falls; the same pass seen twice keeps the earlier estimate.
pub fn estimate_completion(
    before: Option<(i64, i64)>,
    now: (i64, i64),
    earlier_estimate: Option<&String>,
) -> Option<String> {
    let (now_count, now_ms) = now;
    if now_count <= 0 {
        return None;
    }
    let (before_count, before_ms) = before?;
    if before_ms == now_ms {
        return earlier_estimate.cloned();
    }
    let elapsed = now_ms.checked_sub(before_ms).filter(|d| *d > 0)?;
    let fixed = before_count.checked_sub(now_count).filter(|d| *d > 0)?;
    // ms per chunk, times the chunks left.
    let left_ms = (elapsed as f64 / fixed as f64 * now_count as f64).min(i64::MAX as f64 / 2.0);
    let at = now_ms.checked_add(left_ms as i64)?;
    Timestamp::from_millisecond(at).ok().map(|t| t.to_string())
}

/// When the repair should end by the leader's own estimate: `eta_seconds` (the bytes left at
/// the rate it measures) from `now_ms`, while it has copies left; to the second.
pub fn leader_estimate(report: &RepairReport, now_ms: i64) -> Option<String> {
    let eta = report.eta_seconds?;
    if report.chunks_left == 0 && report.bytes_left == 0 {
        return None;
    }
    let eta_ms = i64::try_from(eta).ok()?.checked_mul(1000)?;
    let at = (now_ms / 1000).checked_mul(1000)?.checked_add(eta_ms)?;
    Timestamp::from_millisecond(at).ok().map(|t| t.to_string())
}

/// The repair part of the status from the leader's report and the previous status. The
/// estimate is the leader's (`eta_seconds`) when it gives one, else extrapolated from the fall
/// between two passes.
fn repair_status(
    report: &RepairReport,
    previous: Option<&FileGridStatus>,
    now_ms: i64,
) -> (Option<i64>, Option<RepairStatus>) {
    if report.finished_at == 0 {
        // No pass yet: nothing to say.
        return (None, None);
    }
    let under = to_i64(report.under_replicated);
    let finished_ms = to_i64(report.finished_at);
    let prev_repair = previous.and_then(|p| p.repair.as_ref());
    let before = previous.and_then(|p| {
        let count = p.under_replicated_chunks?;
        let at = parse_ms(p.repair.as_ref()?.last_pass_time.as_deref()?)?;
        Some((count, at))
    });
    let estimate = leader_estimate(report, now_ms).or_else(|| {
        estimate_completion(
            before,
            (under, finished_ms),
            prev_repair.and_then(|r| r.estimated_completion_time.as_ref()),
        )
    });
    (
        Some(under),
        Some(RepairStatus {
            last_pass_time: rfc3339_ms(report.finished_at),
            chunks: to_i64(report.chunks),
            copies_made: to_i64(report.copies_made),
            estimated_completion_time: estimate,
        }),
    )
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// Keep the previous transition time when a condition's status did not change, so an
/// unchanged grid produces an identical status (and no watch event).
fn merge(previous: Option<&FileGridStatus>, mut conditions: Vec<Condition>) -> Vec<Condition> {
    for c in &mut conditions {
        if let Some(old) = previous.and_then(|p| p.conditions.iter().find(|o| o.type_ == c.type_))
            && old.status == c.status
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    conditions
}

/// Whether the spec keeps writes available while any one pod is down (restarted, evicted,
/// its node lost): `(true, reason, message)` if so, else why not. Writes need a leader head
/// and `minWriteReplicas` cluster servers.
pub fn pod_loss_tolerance(
    heads: i32,
    cluster_servers: i32,
    min_write_replicas: i32,
) -> (bool, &'static str, String) {
    if heads < 2 {
        (
            false,
            "SingleHead",
            "with one head server, writes stop while its pod restarts; run heads.replicas: 2 or more"
                .to_string(),
        )
    } else if cluster_servers - 1 < min_write_replicas {
        (
            false,
            "NoSpareClusterServer",
            format!(
                "writes need {min_write_replicas} cluster servers and there are {cluster_servers}: \
                 writes stop while one cluster pod is down; lower minWriteReplicas or add a \
                 cluster server"
            ),
        )
    } else {
        (
            true,
            "SurvivesOnePodLoss",
            format!(
                "writes go on with any one pod down ({heads} heads, {cluster_servers} cluster \
                 servers, writes need {min_write_replicas})"
            ),
        )
    }
}

/// Status of a grid whose children were applied.
pub fn reconciled(observed: &Observed, previous: Option<&FileGridStatus>) -> FileGridStatus {
    let o = observed;
    let (available, reason, message) = match &o.leader {
        None => (false, "NoLeader", "no head server leads yet".to_string()),
        Some(_) if o.ready_cluster < o.min_write_replicas => (
            false,
            "NotEnoughClusterServers",
            format!(
                "{} cluster servers ready, writes need {}",
                o.ready_cluster, o.min_write_replicas
            ),
        ),
        Some(l) => (
            true,
            "LeaderElected",
            format!("{} leads (epoch {})", l.server_id, l.epoch),
        ),
    };
    let (progressing, p_reason, p_message) = if !o.decommissioning.is_empty() {
        (
            true,
            "Decommissioning",
            format!(
                "draining {} before scaling down",
                o.decommissioning.join(", ")
            ),
        )
    } else if o.rollout.is_some()
        || !o.rolled_out
        || o.ready_heads < o.desired_heads
        || o.ready_cluster < o.desired_cluster
    {
        let ready = format!(
            "{}/{} heads and {}/{} cluster servers ready",
            o.ready_heads, o.desired_heads, o.ready_cluster, o.desired_cluster
        );
        let reason = if o.rollout_held {
            ROLLOUT_HELD
        } else {
            "RollingOut"
        };
        match &o.rollout {
            Some(what) => (true, reason, format!("{what} ({ready})")),
            None => (true, reason, ready),
        }
    } else {
        (
            false,
            "Reconciled",
            "all servers run the current configuration".to_string(),
        )
    };
    let rollout = (p_reason == "RollingOut" || p_reason == ROLLOUT_HELD).then(|| p_message.clone());
    let (resilient, r_reason, r_message) =
        pod_loss_tolerance(o.desired_heads, o.desired_cluster, o.min_write_replicas);
    let conditions = vec![
        condition(AVAILABLE, available, reason, message, o.generation),
        condition(PROGRESSING, progressing, p_reason, p_message, o.generation),
        condition(
            DEGRADED,
            false,
            "Reconciled",
            "spec applied".to_string(),
            o.generation,
        ),
        condition(RESILIENT, resilient, r_reason, r_message, o.generation),
        not_paused(o.generation),
    ];
    let servers = match &o.servers {
        Some(list) => list
            .iter()
            .map(|s| ServerStatus {
                id: s.id.to_string(),
                state: s.state.as_str().to_string(),
                used_bytes: to_i64(s.used_bytes),
                capacity_bytes: to_i64(s.capacity_bytes),
                chunks: to_i64(s.chunks),
            })
            .collect(),
        None => previous.map(|p| p.servers.clone()).unwrap_or_default(),
    };
    let capacity = match &o.servers {
        Some(list) => capacity(list),
        None => previous.and_then(|p| p.capacity.clone()),
    };
    let (under_replicated_chunks, repair) = match &o.repair {
        Some(r) => repair_status(
            r,
            previous,
            o.now_ms
                .unwrap_or_else(|| Timestamp::now().as_millisecond()),
        ),
        None => (
            previous.and_then(|p| p.under_replicated_chunks),
            previous.and_then(|p| p.repair.clone()),
        ),
    };
    FileGridStatus {
        observed_generation: o.generation,
        conditions: merge(previous, conditions),
        ready_heads: o.ready_heads,
        ready_cluster_servers: o.ready_cluster,
        leader: o.leader.as_ref().map(|l| l.server_id.to_string()),
        epoch: o
            .leader
            .as_ref()
            .map(|l| i64::try_from(l.epoch).unwrap_or(i64::MAX)),
        decommissioning: o.decommissioning.clone(),
        capacity,
        under_replicated_chunks,
        repair,
        servers,
        rollout,
    }
}

fn not_paused(generation: Option<i64>) -> Condition {
    condition(
        RECONCILIATION_PAUSED,
        false,
        "Reconciling",
        "the grid is reconciled".to_string(),
        generation,
    )
}

/// Whether `status` says reconciliation is paused.
pub fn is_paused(status: Option<&FileGridStatus>) -> bool {
    status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == RECONCILIATION_PAUSED && c.status == "True")
    })
}

/// Status of a paused grid: everything observed before is kept, `ReconciliationPaused=True`.
pub fn paused(generation: Option<i64>, previous: Option<&FileGridStatus>) -> FileGridStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let mut conditions: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| c.type_ != RECONCILIATION_PAUSED)
        .cloned()
        .collect();
    conditions.push(condition(
        RECONCILIATION_PAUSED,
        true,
        "PausedByAnnotation",
        "filegrid.io/paused is \"true\": nothing is applied, repaired or deleted until it is removed"
            .to_string(),
        generation,
    ));
    status.conditions = merge(previous, conditions);
    status
}

/// Reason of a spec the operator refuses.
pub const INVALID_SPEC: &str = "InvalidSpec";

/// Status of a grid the operator refuses or failed to reconcile: Degraded, the rest kept.
/// Only a refused spec (`InvalidSpec`) waits for the spec to change; after any other failure
/// the previous `Progressing` stays (it is retried), or is `Unknown` if there was none.
pub fn degraded(
    generation: Option<i64>,
    previous: Option<&FileGridStatus>,
    reason: &str,
    message: &str,
) -> FileGridStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let refused = reason == INVALID_SPEC;
    let old_progressing = status
        .conditions
        .iter()
        .find(|c| c.type_ == PROGRESSING)
        .cloned();
    let mut conditions: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| {
            c.type_ != DEGRADED && c.type_ != PROGRESSING && c.type_ != RECONCILIATION_PAUSED
        })
        .cloned()
        .collect();
    conditions.push(not_paused(generation));
    if !conditions.iter().any(|c| c.type_ == AVAILABLE) {
        conditions.push(condition(
            AVAILABLE,
            false,
            reason,
            "not reconciled".to_string(),
            generation,
        ));
    }
    match old_progressing {
        Some(old) if !refused => conditions.push(old),
        _ if refused => conditions.push(condition(
            PROGRESSING,
            false,
            reason,
            "waiting for the spec to change".to_string(),
            generation,
        )),
        _ => {
            let mut c = condition(
                PROGRESSING,
                false,
                reason,
                "not known until a reconcile succeeds; retrying".to_string(),
                generation,
            );
            c.status = "Unknown".to_string();
            conditions.push(c);
        }
    }
    conditions.push(condition(
        DEGRADED,
        true,
        reason,
        message.to_string(),
        generation,
    ));
    status.conditions = merge(previous, conditions);
    status.observed_generation = generation;
    status
}

/// Whether `status` already reports this exact Degraded reason and message for this generation.
pub fn already_degraded(
    status: Option<&FileGridStatus>,
    generation: Option<i64>,
    message: &str,
) -> bool {
    status.is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == DEGRADED && c.status == "True" && c.message == message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head_api::ServerState;
    use filegrid_proto::ServerId;

    fn srv(id: &str, state: ServerState, used: u64, cap: u64) -> ClusterServer {
        ClusterServer {
            id: ServerId::new(id).unwrap(),
            host: "h".into(),
            port: 1,
            zone: None,
            capacity_bytes: cap,
            used_bytes: used,
            state,
            chunks: 7,
        }
    }

    #[test]
    fn capacity_adds_up_the_servers_that_count() {
        let gib = 1u64 << 30;
        let c = capacity(&[
            srv("a", ServerState::Live, gib, 2 * gib),
            srv("b", ServerState::Dead, gib / 2, 2 * gib),
            srv("c", ServerState::Drained, gib, 2 * gib),
        ])
        .unwrap();
        assert_eq!(c.used_bytes, (gib + gib / 2) as i64);
        assert_eq!(c.total_bytes, (4 * gib) as i64);
        assert_eq!(c.used, "1.5GiB/4.0GiB (38%)");
        assert_eq!(capacity(&[]), None);
        assert_eq!(bytes(512), "512B");
        // Hostile figures do not overflow.
        let c = capacity(&[
            srv("a", ServerState::Live, u64::MAX, u64::MAX),
            srv("b", ServerState::Live, u64::MAX, u64::MAX),
        ])
        .unwrap();
        assert_eq!(c.total_bytes, i64::MAX);
    }

    #[test]
    fn repair_completion_is_estimated_from_the_fall_between_two_passes() {
        let t0 = 1_767_225_600_000i64;
        // 100 short, then 80 a minute later: 20 a minute, 80 left, 4 minutes.
        let eta = estimate_completion(Some((100, t0)), (80, t0 + 60_000), None).unwrap();
        assert_eq!(parse_ms(&eta), Some(t0 + 60_000 + 4 * 60_000));
        // Nothing short, no fall, no earlier pass, time going backwards: no estimate.
        assert_eq!(
            estimate_completion(Some((100, t0)), (0, t0 + 1), None),
            None
        );
        assert_eq!(
            estimate_completion(Some((80, t0)), (80, t0 + 60_000), None),
            None
        );
        assert_eq!(
            estimate_completion(Some((90, t0)), (95, t0 + 60_000), None),
            None
        );
        assert_eq!(estimate_completion(None, (80, t0), None), None);
        assert_eq!(
            estimate_completion(Some((100, t0)), (80, t0 - 1), None),
            None
        );
        // The same pass again keeps the estimate.
        let kept = "2026-01-01T00:10:00Z".to_string();
        assert_eq!(
            estimate_completion(Some((100, t0)), (100, t0), Some(&kept)),
            Some(kept)
        );
    }

    #[test]
    fn the_leaders_own_estimate_wins_while_it_has_copies_left() {
        let t0 = 1_767_225_600_000i64;
        let report = |eta: Option<u64>, left: u64| RepairReport {
            under_replicated: 10,
            finished_at: t0 as u64,
            chunks_left: left,
            bytes_left: left * 1024,
            eta_seconds: eta,
            ..Default::default()
        };
        // 90 s from now (to the second), whatever the trend between passes says.
        assert_eq!(
            leader_estimate(&report(Some(90), 5), t0 + 1_500).as_deref(),
            Some("2026-01-01T00:01:31Z")
        );
        assert_eq!(leader_estimate(&report(None, 5), t0), None);
        assert_eq!(leader_estimate(&report(Some(90), 0), t0), None);
        assert_eq!(leader_estimate(&report(Some(u64::MAX), 5), t0), None);
        let previous = FileGridStatus {
            under_replicated_chunks: Some(20),
            repair: Some(RepairStatus {
                last_pass_time: rfc3339_ms((t0 - 60_000) as u64),
                ..RepairStatus::default()
            }),
            ..FileGridStatus::default()
        };
        let (_, r) = repair_status(&report(Some(90), 5), Some(&previous), t0);
        assert_eq!(
            r.unwrap().estimated_completion_time.as_deref(),
            Some("2026-01-01T00:01:30Z")
        );
        // Without it, the trend: 10 fixed a minute, 10 left.
        let (_, r) = repair_status(&report(None, 5), Some(&previous), t0);
        assert_eq!(
            r.unwrap().estimated_completion_time.as_deref(),
            Some("2026-01-01T00:01:00Z")
        );
    }

    #[test]
    fn a_rollout_says_what_it_waits_for_and_when_it_is_held() {
        let o = Observed {
            desired_heads: 2,
            ready_heads: 2,
            desired_cluster: 4,
            ready_cluster: 4,
            min_write_replicas: 2,
            rolled_out: false,
            leader: None,
            rollout: Some("cluster 2/4 updated, waiting for 17 under-replicated chunks".into()),
            ..Observed::default()
        };
        let s = reconciled(&o, None);
        let p = find(&s, PROGRESSING);
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("True", "RollingOut")
        );
        assert_eq!(
            s.rollout.as_deref(),
            Some(
                "cluster 2/4 updated, waiting for 17 under-replicated chunks (2/2 heads and \
                 4/4 cluster servers ready)"
            )
        );
        let held = Observed {
            rollout: Some("cluster 2/4 updated, held: no leader head answers".into()),
            rollout_held: true,
            ..o
        };
        let s = reconciled(&held, None);
        assert_eq!(find(&s, PROGRESSING).reason, ROLLOUT_HELD);
        assert!(s.rollout.unwrap().contains("held: no leader"));
    }

    #[test]
    fn status_shows_servers_capacity_repair_and_rollout() {
        let o = Observed {
            desired_heads: 2,
            ready_heads: 1,
            desired_cluster: 3,
            ready_cluster: 3,
            min_write_replicas: 2,
            servers: Some(vec![srv("demo-cluster-0", ServerState::Live, 10, 100)]),
            repair: Some(RepairReport {
                files: 1,
                chunks: 50,
                under_replicated: 10,
                copies_made: 4,
                orphans_deleted: 0,
                finished_at: 1_767_225_600_000,
                ..Default::default()
            }),
            ..Observed::default()
        };
        let s = reconciled(&o, None);
        assert_eq!(s.servers[0].state, "live");
        assert_eq!(s.servers[0].chunks, 7);
        assert_eq!(s.capacity.as_ref().unwrap().used, "10B/100B (10%)");
        assert_eq!(s.under_replicated_chunks, Some(10));
        let r = s.repair.as_ref().unwrap();
        assert_eq!(r.last_pass_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!((r.chunks, r.copies_made), (50, 4));
        assert_eq!(r.estimated_completion_time, None, "one pass: no trend yet");
        assert!(s.rollout.as_deref().unwrap().contains("1/2 heads"));
        // No answer from the leader this time: what was known stays.
        let later = reconciled(
            &Observed {
                servers: None,
                repair: None,
                ready_heads: 2,
                rolled_out: true,
                ..o.clone()
            },
            Some(&s),
        );
        assert_eq!(later.capacity, s.capacity);
        assert_eq!(later.under_replicated_chunks, Some(10));
        assert_eq!(later.rollout, None);
        // A second pass that fixed 5 chunks in a minute: done in two more.
        let mut next = o.clone();
        next.repair = Some(RepairReport {
            under_replicated: 5,
            finished_at: 1_767_225_660_000,
            ..o.repair.clone().unwrap()
        });
        let s2 = reconciled(&next, Some(&s));
        assert_eq!(
            s2.repair.unwrap().estimated_completion_time.as_deref(),
            Some("2026-01-01T00:02:00Z")
        );
    }

    #[test]
    fn pausing_keeps_what_was_observed_and_resuming_clears_it() {
        let o = Observed {
            desired_heads: 2,
            desired_cluster: 3,
            ready_cluster: 3,
            min_write_replicas: 2,
            ..Observed::default()
        };
        let running = reconciled(&o, None);
        assert!(!is_paused(Some(&running)));
        let p = paused(Some(1), Some(&running));
        assert!(is_paused(Some(&p)));
        assert_eq!(find(&p, RECONCILIATION_PAUSED).reason, "PausedByAnnotation");
        assert_eq!(find(&p, AVAILABLE), find(&running, AVAILABLE));
        assert_eq!(p.ready_cluster_servers, 3);
        // Paused again: the same status, so no write.
        assert_eq!(paused(Some(1), Some(&p)), p);
        assert!(!is_paused(Some(&reconciled(&o, Some(&p)))));
        assert!(!is_paused(Some(&degraded(
            Some(2),
            Some(&p),
            INVALID_SPEC,
            "x"
        ))));
    }

    fn find<'a>(s: &'a FileGridStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn one_pod_loss_tolerance() {
        // The minimal grid with the default minWriteReplicas (2): survives.
        assert_eq!(pod_loss_tolerance(2, 3, 2).1, "SurvivesOnePodLoss");
        assert!(pod_loss_tolerance(2, 3, 2).0);
        // Every server needed for a write: one restart stops writes.
        let (ok, reason, message) = pod_loss_tolerance(2, 3, 3);
        assert!(!ok);
        assert_eq!(reason, "NoSpareClusterServer");
        assert!(message.contains("writes need 3"), "{message}");
        // A spare server makes room for minWriteReplicas = replicationFactor.
        assert!(pod_loss_tolerance(2, 4, 3).0);
        assert_eq!(pod_loss_tolerance(1, 6, 2).1, "SingleHead");
        assert_eq!(pod_loss_tolerance(3, 1, 1).1, "NoSpareClusterServer");
    }

    #[test]
    fn reconciled_reports_resilience() {
        let o = Observed {
            desired_heads: 2,
            desired_cluster: 3,
            min_write_replicas: 3,
            ..Observed::default()
        };
        let s = reconciled(&o, None);
        assert_eq!(find(&s, RESILIENT).status, "False");
        assert_eq!(find(&s, RESILIENT).reason, "NoSpareClusterServer");
        let o = Observed {
            min_write_replicas: 2,
            ..o
        };
        assert_eq!(find(&reconciled(&o, None), RESILIENT).status, "True");
    }

    #[test]
    fn a_transient_error_keeps_progressing_and_never_waits_for_a_spec_change() {
        let o = Observed {
            desired_heads: 2,
            desired_cluster: 3,
            min_write_replicas: 2,
            rolled_out: false,
            ..Observed::default()
        };
        let before = reconciled(&o, None);
        let after = degraded(Some(1), Some(&before), "ReconcileError", "etcd unavailable");
        assert_eq!(find(&after, PROGRESSING), find(&before, PROGRESSING));
        assert_eq!(find(&after, DEGRADED).status, "True");
        assert_eq!(find(&after, DEGRADED).message, "etcd unavailable");
        assert_eq!(find(&after, RESILIENT), find(&before, RESILIENT));

        // No earlier status: Progressing is unknown, not "waiting for the spec to change".
        let first = degraded(Some(1), None, "ReconcileError", "etcd unavailable");
        assert_eq!(find(&first, PROGRESSING).status, "Unknown");
        assert!(!find(&first, PROGRESSING).message.contains("spec"));

        // A refused spec does wait for the spec to change.
        let refused = degraded(Some(2), Some(&before), INVALID_SPEC, "spec.x: bad");
        assert_eq!(find(&refused, PROGRESSING).status, "False");
        assert_eq!(
            find(&refused, PROGRESSING).message,
            "waiting for the spec to change"
        );
    }
}
