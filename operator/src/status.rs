//! Status and conditions computed from what the reconciler observed (pure, so testable).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::crd::FileGridStatus;
use crate::head_api::Leader;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

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

/// Status of a grid the operator refuses or failed to reconcile: Degraded, the rest kept.
pub fn degraded(
    generation: Option<i64>,
    previous: Option<&FileGridStatus>,
    reason: &str,
    message: &str,
) -> FileGridStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let mut conditions: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| c.type_ != DEGRADED && c.type_ != PROGRESSING)
        .cloned()
        .collect();
    if !conditions.iter().any(|c| c.type_ == AVAILABLE) {
        conditions.push(condition(
            AVAILABLE,
            false,
            reason,
            "not reconciled".to_string(),
            generation,
        ));
    }
    conditions.push(condition(
        PROGRESSING,
        false,
        reason,
        "waiting for the spec to change".to_string(),
        generation,
    ));
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
