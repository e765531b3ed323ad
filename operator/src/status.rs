//! Status and conditions computed from what the reconciler observed (pure, so testable).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::FileGridStatus;
use crate::head_api::Leader;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// Whether the `filegrid.io/paused` annotation stops the operator from reconciling the grid.
pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";
/// Whether writes go on through the loss of any one pod of the grid.
pub const RESILIENT: &str = "Resilient";

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
    } else if !o.rolled_out
        || o.ready_heads < o.desired_heads
        || o.ready_cluster < o.desired_cluster
    {
        (
            true,
            "RollingOut",
            format!(
                "{}/{} heads and {}/{} cluster servers ready",
                o.ready_heads, o.desired_heads, o.ready_cluster, o.desired_cluster
            ),
        )
    } else {
        (
            false,
            "Reconciled",
            "all servers run the current configuration".to_string(),
        )
    };
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
