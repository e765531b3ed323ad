//! Rolling upgrades that drop nothing.
//!
//! A new image or configuration reaches the pods one at a time, and only when the grid can
//! spare the pod:
//!
//! - **Cluster servers**: the StatefulSet's `RollingUpdate` holds every pod below its
//!   `partition`. The operator lowers the partition by one only when every pod is Ready, the
//!   pods at or above it run the new revision, and the leader head reports no under-replicated
//!   chunks in a repair pass that ran after the last restarted pod came back. Without a leader
//!   it holds. [`next_partition`] decides; the reconciler reads and applies.
//! - **Heads**: the StatefulSet is `OnDelete`; the operator deletes the pods on an old revision
//!   itself, standbys first, the leader last, one at a time, each only when every head is Ready
//!   ([`next_head_step`]). Deleting the leader's pod is the handover: on SIGTERM a head gives up
//!   its leadership before it stops serving, and a standby claims it at once.
//!
//! Everything here is pure; the reconciler does the reading, applying and deleting.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use sha2::{Digest, Sha256};

use filegrid_proto::head::RepairReport;

/// StatefulSet annotation: the SHA-256 of the pod template the operator applied, so a new
/// template is known before the StatefulSet controller has seen it.
pub const TEMPLATE_ANNOTATION: &str = "filegrid.io/template-sha256";
/// The label the StatefulSet controller gives each pod: the revision it runs.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The head StatefulSet's update strategy: pods are replaced only when the operator deletes them.
pub const ON_DELETE: &str = "OnDelete";

/// SHA-256 (hex) of a StatefulSet's pod template as the operator builds it.
pub fn template_sha256(sts: &StatefulSet) -> String {
    let bytes = serde_json::to_vec(&sts.spec.template).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records [`template_sha256`] on the StatefulSet (metadata, not the template: it rolls nothing).
pub fn stamp_template(sts: &mut StatefulSet) {
    let sha = template_sha256(sts);
    sts.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(TEMPLATE_ANNOTATION.to_string(), sha);
}

/// Sets the `RollingUpdate` partition of a StatefulSet the operator is about to apply.
pub fn set_partition(sts: &mut StatefulSet, partition: i32) {
    if let Some(strategy) = sts.spec.update_strategy.as_mut() {
        strategy.rolling_update = Some(RollingUpdateStatefulSetStrategy {
            partition: Some(partition.max(0)),
            ..RollingUpdateStatefulSetStrategy::default()
        });
    }
}

/// What the API shows of a StatefulSet, as far as rollouts go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetView {
    pub replicas: i32,
    pub strategy: Option<String>,
    pub partition: Option<i32>,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    pub updated_replicas: i32,
    /// [`TEMPLATE_ANNOTATION`].
    pub template_sha256: Option<String>,
}

impl SetView {
    pub fn of(sts: &StatefulSet) -> Self {
        let strategy = sts.spec.update_strategy.as_ref();
        let status = sts.status.as_ref();
        Self {
            replicas: sts.spec.replicas.unwrap_or(1),
            strategy: strategy.and_then(|s| s.type_.clone()),
            partition: strategy
                .and_then(|s| s.rolling_update.as_ref())
                .and_then(|r| r.partition),
            generation: sts.metadata.generation,
            observed_generation: status.and_then(|s| s.observed_generation),
            current_revision: status.and_then(|s| s.current_revision.clone()),
            update_revision: status.and_then(|s| s.update_revision.clone()),
            updated_replicas: status.and_then(|s| s.updated_replicas).unwrap_or(0),
            template_sha256: sts
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(TEMPLATE_ANNOTATION).cloned()),
        }
    }

    /// The controller has seen the latest spec, and says which revision is the new one.
    fn status_current(&self) -> Option<&str> {
        let seen = match (self.observed_generation, self.generation) {
            (Some(o), Some(g)) => o >= g,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if seen {
            self.update_revision.as_deref()
        } else {
            None
        }
    }
}

/// One pod of a StatefulSet, as far as rollouts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub uid: Option<String>,
    pub ordinal: i32,
    pub revision: Option<String>,
    pub ready: bool,
    pub terminating: bool,
}

impl PodView {
    /// A pod of StatefulSet `set` (its name is `<set>-<ordinal>`); `None` for any other pod.
    pub fn of(pod: &Pod, set: &str) -> Option<Self> {
        let name = pod.metadata.name.clone()?;
        let ordinal = name
            .strip_prefix(set)?
            .strip_prefix('-')?
            .parse::<i32>()
            .ok()
            .filter(|o| *o >= 0)?;
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Some(Self {
            uid: pod.metadata.uid.clone(),
            ordinal,
            revision: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL).cloned()),
            ready,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            name,
        })
    }

    fn on(&self, revision: &str) -> bool {
        !self.terminating && self.revision.as_deref() == Some(revision)
    }
}

/// The pod at `ordinal`, preferring one that is not being deleted.
fn at(pods: &[PodView], ordinal: i32) -> Option<&PodView> {
    let mut found = pods.iter().filter(|p| p.ordinal == ordinal);
    let first = found.next()?;
    if first.terminating {
        Some(found.find(|p| !p.terminating).unwrap_or(first))
    } else {
        Some(first)
    }
}

/// What the leader's `GET /v1/repair` answered, and the epoch of the leader that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairSeen {
    pub epoch: u64,
    pub report: RepairReport,
}

/// The leader's latest repair pass when the pods of a rollout step were first seen updated and
/// Ready: the next step waits for a pass after it, which has seen the restarted pod back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub revision: String,
    pub partition: i32,
    pub epoch: u64,
    pub finished_at: u64,
}

/// Why a pod holds a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodWait {
    /// Not yet replaced by a pod on the new revision.
    Updating,
    /// Not Ready (or not there).
    NotReady,
}

/// What a cluster rollout waits for before it restarts the next pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterWait {
    /// A pod is restarting or not Ready.
    Pod { name: String, why: PodWait },
    /// No leader head answered with a repair report: the rollout never proceeds blind.
    NoLeader,
    /// The leader's repair pass is making copies now.
    RepairRunning,
    /// The leader's last pass found chunks short of their replicas.
    UnderReplicated(u64),
    /// A repair pass that ran after `name` came back.
    RepairPass { name: String },
}

/// A cluster rollout under way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRollout {
    /// Pods on the new revision, of `replicas`.
    pub updated: i32,
    pub replicas: i32,
    /// `None`: the partition was lowered now and `restarting` goes next.
    pub wait: Option<ClusterWait>,
    pub restarting: Option<String>,
}

/// The partition to apply and what the rollout waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPlan {
    pub partition: i32,
    /// `None` when no rollout is under way (or none is known yet).
    pub rollout: Option<ClusterRollout>,
    /// What to remember for the next reconcile.
    pub mark: Option<Mark>,
}

/// Everything [`next_partition`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct ClusterInput<'a> {
    /// The cluster StatefulSet as stored (`None`: it is about to be created).
    pub existing: Option<&'a SetView>,
    /// [`template_sha256`] of the StatefulSet about to be applied.
    pub desired_sha256: &'a str,
    /// The `replicas` about to be applied.
    pub replicas: i32,
    /// The cluster pods (only needed while [`cluster_rolling`]).
    pub pods: &'a [PodView],
    /// The leader's repair report (`None`: no leader answered).
    pub repair: Option<&'a RepairSeen>,
    /// What the last reconcile remembered.
    pub mark: Option<&'a Mark>,
}

/// Whether a cluster rollout is under way, so that the pods and the leader's report are needed.
pub fn cluster_rolling(existing: Option<&SetView>, desired_sha256: &str) -> bool {
    let Some(set) = existing else { return false };
    if set.template_sha256.as_deref() != Some(desired_sha256) {
        return false;
    }
    match set.status_current() {
        Some(update) => !done(set, update),
        None => false,
    }
}

fn done(set: &SetView, update: &str) -> bool {
    set.current_revision.as_deref() == Some(update) && set.updated_replicas >= set.replicas
}

/// The cluster StatefulSet's next `partition`: lowered by one only when the grid can spare
/// the next pod, else held.
///
/// - A new StatefulSet gets 0 and pods above the current size are never held (they hold no
///   data): the partition never exceeds the stored `replicas`.
/// - A new template (its hash differs from the stored one) holds every existing pod
///   (partition = size) until the controller has seen it, so no pod restarts unchecked.
/// - While a rollout is under way, the partition goes from `p` to `p - 1` when every pod is
///   Ready, those at or above `p` run the new revision, the leader's last pass is finished
///   and found nothing under-replicated, and (unless no pod has restarted yet) that pass
///   finished after the restarted pods were first seen Ready ([`Mark`]).
/// - With every pod updated, the partition goes back to the size, ready for the next change.
pub fn next_partition(input: &ClusterInput) -> ClusterPlan {
    let Some(set) = input.existing else {
        return ClusterPlan {
            partition: 0,
            rollout: None,
            mark: None,
        };
    };
    let size = set.replicas.max(0);
    let hold_all = input.replicas.clamp(0, size);
    let quiet = |partition| ClusterPlan {
        partition,
        rollout: None,
        mark: None,
    };
    if set.template_sha256.as_deref() != Some(input.desired_sha256) {
        return quiet(hold_all);
    }
    let current = set.partition.unwrap_or(0).clamp(0, size);
    let Some(update) = set.status_current() else {
        return ClusterPlan {
            partition: current.min(hold_all),
            rollout: None,
            mark: input.mark.cloned(),
        };
    };
    if done(set, update) {
        return quiet(hold_all);
    }
    let n = input.replicas.clamp(0, size);
    let p = current.min(n);
    let updated = (0..n)
        .filter(|o| at(input.pods, *o).is_some_and(|pod| pod.on(update)))
        .count() as i32;
    let name = |o: i32| {
        at(input.pods, o)
            .map(|pod| pod.name.clone())
            .unwrap_or_else(|| format!("ordinal {o}"))
    };
    let hold = |wait: ClusterWait, mark: Option<Mark>| ClusterPlan {
        partition: p,
        rollout: Some(ClusterRollout {
            updated,
            replicas: n,
            wait: Some(wait),
            restarting: None,
        }),
        mark,
    };
    // The pods at or above the partition: on the new revision and Ready (highest first, the
    // order the controller replaces them in). Then every other pod Ready: one down at a time.
    for o in (p..n).rev() {
        match at(input.pods, o) {
            Some(pod) if !pod.on(update) => {
                let why = PodWait::Updating;
                return hold(ClusterWait::Pod { name: name(o), why }, None);
            }
            Some(pod) if pod.ready => {}
            _ => {
                let why = PodWait::NotReady;
                return hold(ClusterWait::Pod { name: name(o), why }, None);
            }
        }
    }
    for o in 0..p {
        if !at(input.pods, o).is_some_and(|pod| pod.ready && !pod.terminating) {
            let why = PodWait::NotReady;
            return hold(ClusterWait::Pod { name: name(o), why }, None);
        }
    }
    if p == 0 {
        // Every pod runs the new revision: the controller records it as current next.
        return quiet(hold_all);
    }
    let Some(seen) = input.repair else {
        return hold(ClusterWait::NoLeader, None);
    };
    let report = &seen.report;
    if report.in_progress {
        return hold(ClusterWait::RepairRunning, None);
    }
    if report.under_replicated > 0 {
        return hold(ClusterWait::UnderReplicated(report.under_replicated), None);
    }
    if report.finished_at == 0 {
        return hold(ClusterWait::RepairPass { name: name(p) }, None);
    }
    if p < n {
        // A pod of this rollout restarted: only a pass after it was seen back counts.
        let fresh = match input.mark {
            Some(m) if m.revision == update && m.partition == p => {
                (seen.epoch != m.epoch || report.finished_at > m.finished_at).then_some(())
            }
            _ => None,
        };
        if fresh.is_none() {
            let mark = match input.mark {
                Some(m) if m.revision == update && m.partition == p => m.clone(),
                _ => Mark {
                    revision: update.to_string(),
                    partition: p,
                    epoch: seen.epoch,
                    finished_at: report.finished_at,
                },
            };
            return hold(ClusterWait::RepairPass { name: name(p) }, Some(mark));
        }
    }
    ClusterPlan {
        partition: p - 1,
        rollout: Some(ClusterRollout {
            updated,
            replicas: n,
            wait: None,
            restarting: Some(name(p - 1)),
        }),
        mark: None,
    }
}

/// Whether the head StatefulSet must first be switched to `OnDelete` with a patch that also
/// removes its `rollingUpdate` (which the API server defaults and which `OnDelete` refuses).
pub fn needs_on_delete_switch(existing: &SetView) -> bool {
    existing.strategy.as_deref() != Some(ON_DELETE)
}

/// Whether some head pod may still run an old revision (or the controller has not yet caught up).
pub fn heads_rolling(set: &SetView) -> bool {
    match set.status_current() {
        Some(_) => set.updated_replicas < set.replicas,
        None => true,
    }
}

/// What a head rollout waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadWait {
    /// The StatefulSet controller has not yet seen the new template.
    Controller,
    /// The cluster servers roll first.
    Cluster,
    /// A head is restarting or not Ready.
    Pod { name: String, why: PodWait },
    /// No leader is known, so no head can be told apart from the leader.
    NoLeader,
}

/// The next step of a head rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadStep {
    /// Every head runs the new revision.
    Done,
    Wait(HeadWait),
    /// Delete this pod (it comes back on the new revision): a standby, or the leader once it
    /// is the only head left on an old revision.
    Delete {
        name: String,
        uid: Option<String>,
        leader: bool,
    },
}

/// Everything [`next_head_step`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct HeadInput<'a> {
    /// The head StatefulSet as applied.
    pub set: &'a SetView,
    pub pods: &'a [PodView],
    /// The leader's server id (its pod name), if one answered.
    pub leader: Option<&'a str>,
    /// A cluster rollout is under way.
    pub cluster_rolling: bool,
}

/// Standbys first, the leader last, one head at a time, each only when every head is Ready.
pub fn next_head_step(input: &HeadInput) -> HeadStep {
    let set = input.set;
    let Some(update) = set.status_current() else {
        return HeadStep::Wait(HeadWait::Controller);
    };
    let n = set.replicas.max(0);
    let old: Vec<i32> = (0..n)
        .filter(|o| !at(input.pods, *o).is_some_and(|pod| pod.on(update)))
        .collect();
    if old.is_empty() {
        return HeadStep::Done;
    }
    if input.cluster_rolling {
        return HeadStep::Wait(HeadWait::Cluster);
    }
    for o in 0..n {
        match at(input.pods, o) {
            Some(pod) if pod.ready && !pod.terminating => {}
            Some(pod) => {
                let why = if pod.terminating {
                    PodWait::Updating
                } else {
                    PodWait::NotReady
                };
                let name = pod.name.clone();
                return HeadStep::Wait(HeadWait::Pod { name, why });
            }
            None => {
                let name = format!("ordinal {o}");
                let why = PodWait::Updating;
                return HeadStep::Wait(HeadWait::Pod { name, why });
            }
        }
    }
    let Some(leader) = input.leader else {
        return HeadStep::Wait(HeadWait::NoLeader);
    };
    let old_pods: Vec<&PodView> = old.iter().filter_map(|o| at(input.pods, *o)).collect();
    let next = old_pods
        .iter()
        .rev()
        .find(|pod| pod.name != leader)
        .or_else(|| old_pods.first());
    match next {
        Some(pod) => HeadStep::Delete {
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            leader: pod.name == leader,
        },
        None => HeadStep::Done,
    }
}

/// The rollout line of the status: what the cluster and the heads wait for. `None` when
/// neither is rolling.
pub fn describe(cluster: Option<&ClusterRollout>, heads: Option<&HeadStep>) -> Option<String> {
    let mut parts = vec![];
    if let Some(c) = cluster {
        let what = match (&c.wait, &c.restarting) {
            (Some(w), _) => cluster_wait(w),
            (None, Some(name)) => format!("restarting {name}"),
            (None, None) => "restarting the next pod".to_string(),
        };
        parts.push(format!(
            "cluster {}/{} updated, {what}",
            c.updated, c.replicas
        ));
    }
    match heads {
        None | Some(HeadStep::Done) => {}
        Some(HeadStep::Wait(w)) => parts.push(format!("heads: {} (leader last)", head_wait(w))),
        Some(HeadStep::Delete {
            name, leader: true, ..
        }) => parts.push(format!(
            "heads: leader last, restarting the leader {name} (a standby takes over)"
        )),
        Some(HeadStep::Delete { name, .. }) => {
            parts.push(format!("heads: restarting standby {name} (leader last)"))
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Whether the rollout is held because no leader answered.
pub fn held_without_leader(cluster: Option<&ClusterRollout>, heads: Option<&HeadStep>) -> bool {
    cluster.is_some_and(|c| c.wait == Some(ClusterWait::NoLeader))
        || heads == Some(&HeadStep::Wait(HeadWait::NoLeader))
}

fn pod_wait(name: &str, why: &PodWait) -> String {
    match why {
        PodWait::Updating => format!("waiting for {name} to restart on the new revision"),
        PodWait::NotReady => format!("waiting for {name} to be Ready"),
    }
}

fn cluster_wait(w: &ClusterWait) -> String {
    match w {
        ClusterWait::Pod { name, why } => pod_wait(name, why),
        ClusterWait::NoLeader => "held: no leader head answers with its repair report".to_string(),
        ClusterWait::RepairRunning => "waiting for the repair pass in progress".to_string(),
        ClusterWait::UnderReplicated(n) => format!("waiting for {n} under-replicated chunks"),
        ClusterWait::RepairPass { name } => {
            format!("waiting for a repair pass that sees {name} back")
        }
    }
}

fn head_wait(w: &HeadWait) -> String {
    match w {
        HeadWait::Controller => "waiting for the StatefulSet controller".to_string(),
        HeadWait::Cluster => "waiting for the cluster servers to finish".to_string(),
        HeadWait::Pod { name, why } => pod_wait(name, why),
        HeadWait::NoLeader => "held: no leader head answers".to_string(),
    }
}
