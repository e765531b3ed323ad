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
//! While the grid's trust changes (a replaced CA, security switched on or off: some pod runs
//! with another CA than the template's), pods on either side cannot call each other, the
//! leader's report says nothing useful and the old heads may not answer at all. Waiting for it
//! would wait forever, so such a rollout goes by readiness alone, still one pod at a time.
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
    /// The pod's `filegrid.io/ca-sha256`: the CA it was started with (`None`: no TLS).
    pub ca: Option<String>,
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
            ca: pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(crate::builders::CA_ANNOTATION).cloned()),
            name,
        })
    }

    fn on(&self, revision: &str) -> bool {
        !self.terminating && self.revision.as_deref() == Some(revision)
    }
}

/// Whether some pod was started with another CA than `desired` (the grid's now; `None`
/// for a grid without TLS): the grid's trust is changing.
pub fn trust_changing(pods: &[PodView], desired: Option<&str>) -> bool {
    pods.iter()
        .any(|p| !p.terminating && p.ca.as_deref() != desired)
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
    /// The grid's trust is changing: steps go by readiness alone.
    pub unchecked: bool,
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
    /// [`trust_changing`]: the repair report is not waited for.
    pub trust_changing: bool,
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
            unchecked: input.trust_changing,
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
    let lower = ClusterPlan {
        partition: p - 1,
        rollout: Some(ClusterRollout {
            updated,
            replicas: n,
            wait: None,
            restarting: Some(name(p - 1)),
            unchecked: input.trust_changing,
        }),
        mark: None,
    };
    if input.trust_changing {
        return lower;
    }
    // The pass that was the latest when the pods were first seen back (kept while this step
    // waits): only a later one has seen the restarted pod. Before the first step no pod of
    // this rollout has restarted, and any pass counts.
    let kept = input
        .mark
        .filter(|m| m.revision == update && m.partition == p)
        .cloned();
    let mark = if p < n {
        kept.clone().or_else(|| {
            input.repair.map(|seen| Mark {
                revision: update.to_string(),
                partition: p,
                epoch: seen.epoch,
                finished_at: seen.report.finished_at,
            })
        })
    } else {
        None
    };
    let Some(seen) = input.repair else {
        return hold(ClusterWait::NoLeader, mark);
    };
    let report = &seen.report;
    if report.in_progress {
        return hold(ClusterWait::RepairRunning, mark);
    }
    if report.under_replicated > 0 {
        let short = ClusterWait::UnderReplicated(report.under_replicated);
        return hold(short, mark);
    }
    let after_mark = match (&kept, p < n) {
        (_, false) => true,
        (Some(m), true) => seen.epoch != m.epoch || report.finished_at > m.finished_at,
        (None, true) => false,
    };
    if report.finished_at == 0 || !after_mark {
        return hold(ClusterWait::RepairPass { name: name(p) }, mark);
    }
    lower
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
    /// [`trust_changing`]: without a leader, heads go highest ordinal first.
    pub trust_changing: bool,
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
    let leader = match input.leader {
        Some(l) => l,
        // Heads on the old trust may answer nobody: one at a time by readiness alone.
        None if input.trust_changing => "",
        None => return HeadStep::Wait(HeadWait::NoLeader),
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
        let unchecked = if c.unchecked {
            " (the grid's CA or security changes: by readiness alone)"
        } else {
            ""
        };
        parts.push(format!(
            "cluster {}/{} updated, {what}{unchecked}",
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

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "r2";
    const OLD: &str = "r1";
    const SHA: &str = "abc";

    fn set(partition: i32, updated: i32) -> SetView {
        SetView {
            replicas: 3,
            strategy: Some("RollingUpdate".into()),
            partition: Some(partition),
            generation: Some(2),
            observed_generation: Some(2),
            current_revision: Some(OLD.into()),
            update_revision: Some(NEW.into()),
            updated_replicas: updated,
            template_sha256: Some(SHA.into()),
        }
    }

    fn pod(ordinal: i32, revision: &str, ready: bool) -> PodView {
        PodView {
            name: format!("g-cluster-{ordinal}"),
            uid: Some(format!("uid-{ordinal}")),
            ordinal,
            revision: Some(revision.into()),
            ready,
            terminating: false,
            ca: Some("ca".into()),
        }
    }

    /// Pods 0..3, those at or above `from` on the new revision, all Ready.
    fn pods_from(from: i32) -> Vec<PodView> {
        (0..3)
            .map(|o| pod(o, if o >= from { NEW } else { OLD }, true))
            .collect()
    }

    fn seen(under: u64, finished_at: u64) -> RepairSeen {
        RepairSeen {
            epoch: 7,
            report: RepairReport {
                under_replicated: under,
                finished_at,
                ..RepairReport::default()
            },
        }
    }

    fn input<'a>(
        existing: Option<&'a SetView>,
        pods: &'a [PodView],
        repair: Option<&'a RepairSeen>,
        mark: Option<&'a Mark>,
    ) -> ClusterInput<'a> {
        ClusterInput {
            existing,
            desired_sha256: SHA,
            replicas: 3,
            pods,
            repair,
            mark,
            trust_changing: false,
        }
    }

    #[test]
    fn a_new_stateful_set_and_new_pods_are_never_held() {
        let plan = next_partition(&input(None, &[], None, None));
        assert_eq!(plan.partition, 0);
        assert_eq!(plan.rollout, None);
        // A scale-up from 3 to 5 with nothing rolling: pods 3 and 4 start on the template.
        let done = SetView {
            current_revision: Some(NEW.into()),
            updated_replicas: 3,
            ..set(3, 3)
        };
        let plan = next_partition(&ClusterInput {
            replicas: 5,
            ..input(Some(&done), &[], None, None)
        });
        assert_eq!(plan.partition, 3);
    }

    #[test]
    fn a_new_template_holds_every_existing_pod_until_the_controller_has_seen_it() {
        // Steady state with partition 0 (a StatefulSet of an earlier operator, or after the
        // last step): the new template comes with partition = size.
        let old = SetView {
            template_sha256: Some("old".into()),
            partition: Some(0),
            ..set(0, 3)
        };
        let plan = next_partition(&input(Some(&old), &[], None, None));
        assert_eq!(plan.partition, 3);
        assert!(!cluster_rolling(Some(&old), SHA));
        // Applied, but the controller has not seen it yet: held where it is.
        let stale = SetView {
            observed_generation: Some(1),
            ..set(3, 0)
        };
        assert!(!cluster_rolling(Some(&stale), SHA));
        assert_eq!(
            next_partition(&input(Some(&stale), &[], None, None)).partition,
            3
        );
    }

    #[test]
    fn the_first_step_needs_ready_pods_and_nothing_under_replicated() {
        let s = set(3, 0);
        assert!(cluster_rolling(Some(&s), SHA));
        let pods = pods_from(3);
        let ok = seen(0, 1_000);
        let plan = next_partition(&input(Some(&s), &pods, Some(&ok), None));
        assert_eq!(plan.partition, 2);
        assert_eq!(
            plan.rollout.as_ref().and_then(|r| r.restarting.as_deref()),
            Some("g-cluster-2")
        );
        // Chunks short: held.
        let short = seen(17, 1_000);
        let plan = next_partition(&input(Some(&s), &pods, Some(&short), None));
        assert_eq!(plan.partition, 3);
        assert_eq!(
            plan.rollout.unwrap().wait,
            Some(ClusterWait::UnderReplicated(17))
        );
        // A pass making copies: held.
        let mut running = seen(0, 1_000);
        running.report.in_progress = true;
        let plan = next_partition(&input(Some(&s), &pods, Some(&running), None));
        assert_eq!(plan.partition, 3);
        assert_eq!(plan.rollout.unwrap().wait, Some(ClusterWait::RepairRunning));
        // No leader: held, never blind.
        let plan = next_partition(&input(Some(&s), &pods, None, None));
        assert_eq!(plan.partition, 3);
        assert_eq!(plan.rollout.unwrap().wait, Some(ClusterWait::NoLeader));
        // Another pod not Ready: held (one pod down at a time).
        let mut one_down = pods.clone();
        one_down[0].ready = false;
        let plan = next_partition(&input(Some(&s), &one_down, Some(&ok), None));
        assert_eq!(plan.partition, 3);
        assert_eq!(
            plan.rollout.unwrap().wait,
            Some(ClusterWait::Pod {
                name: "g-cluster-0".into(),
                why: PodWait::NotReady
            })
        );
    }

    #[test]
    fn the_next_step_waits_for_the_restarted_pod_and_a_repair_pass_after_it() {
        let s = set(2, 1);
        // Pod 2 still on the old revision (being replaced), or back but not Ready: held.
        for pods in [pods_from(3), {
            let mut p = pods_from(2);
            p[2].ready = false;
            p
        }] {
            let plan = next_partition(&input(Some(&s), &pods, Some(&seen(0, 1_000)), None));
            assert_eq!(plan.partition, 2);
            assert!(matches!(
                plan.rollout.unwrap().wait,
                Some(ClusterWait::Pod { .. })
            ));
            assert_eq!(plan.mark, None);
        }
        // Back and Ready: the latest pass may predate its return, so it is only marked.
        let pods = pods_from(2);
        let plan = next_partition(&input(Some(&s), &pods, Some(&seen(0, 1_000)), None));
        assert_eq!(plan.partition, 2);
        let mark = plan.mark.clone().unwrap();
        assert_eq!(
            mark,
            Mark {
                revision: NEW.into(),
                partition: 2,
                epoch: 7,
                finished_at: 1_000
            }
        );
        assert_eq!(
            plan.rollout.unwrap().wait,
            Some(ClusterWait::RepairPass {
                name: "g-cluster-2".into()
            })
        );
        // The same pass again: still held, the mark kept.
        let plan = next_partition(&input(Some(&s), &pods, Some(&seen(0, 1_000)), Some(&mark)));
        assert_eq!((plan.partition, plan.mark.as_ref()), (2, Some(&mark)));
        // A later pass that found chunks short (the restarted server's): held, the mark kept.
        let plan = next_partition(&input(Some(&s), &pods, Some(&seen(4, 2_000)), Some(&mark)));
        assert_eq!((plan.partition, plan.mark.as_ref()), (2, Some(&mark)));
        // Chunks short when the pod is first seen back: marked all the same.
        let plan = next_partition(&input(Some(&s), &pods, Some(&seen(4, 1_000)), None));
        assert_eq!((plan.partition, plan.mark.as_ref()), (2, Some(&mark)));
        // A later pass with nothing short: the next pod.
        let plan = next_partition(&input(Some(&s), &pods, Some(&seen(0, 2_000)), Some(&mark)));
        assert_eq!(plan.partition, 1);
        assert_eq!(plan.mark, None);
        // A new leader's pass counts too (its clock is its own).
        let mut other = seen(0, 500);
        other.epoch = 8;
        let plan = next_partition(&input(Some(&s), &pods, Some(&other), Some(&mark)));
        assert_eq!(plan.partition, 1);
        // A mark of another step or revision does not count.
        let stale = Mark {
            partition: 3,
            ..mark.clone()
        };
        let plan = next_partition(&input(Some(&s), &pods, Some(&seen(0, 2_000)), Some(&stale)));
        assert_eq!(plan.partition, 2);
        assert_eq!(plan.mark.unwrap().finished_at, 2_000);
    }

    #[test]
    fn a_changing_trust_rolls_by_readiness_alone() {
        let s = set(2, 1);
        let mut pods = pods_from(2);
        assert!(!trust_changing(&pods, Some("ca")));
        // The restarted pod has the new CA, the others the old one.
        pods[2].ca = Some("new".into());
        assert!(trust_changing(&pods, Some("new")));
        assert!(trust_changing(&pods, None), "security switched off");
        let plan = next_partition(&ClusterInput {
            trust_changing: true,
            ..input(Some(&s), &pods, None, None)
        });
        assert_eq!(plan.partition, 1);
        assert!(plan.rollout.unwrap().unchecked);
        // Readiness still holds it.
        pods[2].ready = false;
        let plan = next_partition(&ClusterInput {
            trust_changing: true,
            ..input(Some(&s), &pods, None, None)
        });
        assert_eq!(plan.partition, 2);
    }

    #[test]
    fn every_pod_updated_sets_the_partition_back_to_the_size() {
        let s = set(0, 3);
        let plan = next_partition(&input(Some(&s), &pods_from(0), None, None));
        assert_eq!((plan.partition, plan.rollout), (3, None));
        // The controller recorded it: steady.
        let done = SetView {
            current_revision: Some(NEW.into()),
            ..set(0, 3)
        };
        assert!(!cluster_rolling(Some(&done), SHA));
        assert_eq!(
            next_partition(&input(Some(&done), &[], None, None)).partition,
            3
        );
    }

    fn heads(updated: i32) -> SetView {
        SetView {
            replicas: 3,
            strategy: Some(ON_DELETE.into()),
            partition: None,
            updated_replicas: updated,
            template_sha256: None,
            ..set(0, 0)
        }
    }

    fn head(ordinal: i32, revision: &str, ready: bool) -> PodView {
        PodView {
            name: format!("g-head-{ordinal}"),
            ..pod(ordinal, revision, ready)
        }
    }

    fn step(set: &SetView, pods: &[PodView], leader: Option<&str>) -> HeadStep {
        next_head_step(&HeadInput {
            set,
            pods,
            leader,
            cluster_rolling: false,
            trust_changing: false,
        })
    }

    #[test]
    fn heads_roll_standbys_first_highest_ordinal_first_and_the_leader_last() {
        let s = heads(0);
        let old = [head(0, OLD, true), head(1, OLD, true), head(2, OLD, true)];
        let delete = |name: &str, leader: bool| HeadStep::Delete {
            name: name.into(),
            uid: Some(format!("uid-{}", &name[name.len() - 1..])),
            leader,
        };
        assert_eq!(step(&s, &old, Some("g-head-0")), delete("g-head-2", false));
        // The leader is the highest ordinal after a failover: still last.
        assert_eq!(step(&s, &old, Some("g-head-2")), delete("g-head-1", false));
        let one_left = [head(0, OLD, true), head(1, NEW, true), head(2, NEW, true)];
        assert_eq!(
            step(&heads(2), &one_left, Some("g-head-0")),
            delete("g-head-0", true)
        );
        let all = [head(0, NEW, true), head(1, NEW, true), head(2, NEW, true)];
        assert_eq!(step(&heads(3), &all, Some("g-head-1")), HeadStep::Done);
        assert!(!heads_rolling(&heads(3)));
        assert!(heads_rolling(&heads(2)));
    }

    #[test]
    fn heads_wait_for_every_head_ready_a_leader_and_the_cluster() {
        let s = heads(1);
        let restarting = [head(0, OLD, true), head(1, OLD, true), head(2, NEW, false)];
        assert_eq!(
            step(&s, &restarting, Some("g-head-0")),
            HeadStep::Wait(HeadWait::Pod {
                name: "g-head-2".into(),
                why: PodWait::NotReady
            })
        );
        let mut gone = vec![head(0, OLD, true), head(1, OLD, true)];
        assert!(matches!(
            step(&s, &gone, Some("g-head-0")),
            HeadStep::Wait(HeadWait::Pod { .. })
        ));
        gone.push(PodView {
            terminating: true,
            ..head(2, OLD, true)
        });
        assert!(matches!(
            step(&s, &gone, Some("g-head-0")),
            HeadStep::Wait(HeadWait::Pod {
                why: PodWait::Updating,
                ..
            })
        ));
        let old = [head(0, OLD, true), head(1, OLD, true), head(2, OLD, true)];
        assert_eq!(step(&s, &old, None), HeadStep::Wait(HeadWait::NoLeader));
        let cluster_first = next_head_step(&HeadInput {
            set: &s,
            pods: &old,
            leader: Some("g-head-0"),
            cluster_rolling: true,
            trust_changing: false,
        });
        // The grid's trust changes (old heads may answer nobody): by readiness alone.
        let blind = next_head_step(&HeadInput {
            set: &s,
            pods: &old,
            leader: None,
            cluster_rolling: false,
            trust_changing: true,
        });
        assert!(matches!(blind, HeadStep::Delete { ref name, .. } if name == "g-head-2"));
        assert_eq!(cluster_first, HeadStep::Wait(HeadWait::Cluster));
        let stale = SetView {
            observed_generation: Some(1),
            ..s
        };
        assert_eq!(
            step(&stale, &old, Some("g-head-0")),
            HeadStep::Wait(HeadWait::Controller)
        );
    }

    #[test]
    fn the_status_line_says_what_the_rollout_waits_for() {
        let c = ClusterRollout {
            updated: 2,
            replicas: 4,
            wait: Some(ClusterWait::UnderReplicated(17)),
            restarting: None,
            unchecked: false,
        };
        assert_eq!(
            describe(Some(&c), None).as_deref(),
            Some("cluster 2/4 updated, waiting for 17 under-replicated chunks")
        );
        let h = HeadStep::Wait(HeadWait::Cluster);
        assert_eq!(
            describe(Some(&c), Some(&h)).as_deref(),
            Some(
                "cluster 2/4 updated, waiting for 17 under-replicated chunks; heads: waiting \
                 for the cluster servers to finish (leader last)"
            )
        );
        assert_eq!(describe(None, Some(&HeadStep::Done)), None);
        let held = ClusterRollout {
            wait: Some(ClusterWait::NoLeader),
            ..c
        };
        assert!(held_without_leader(Some(&held), None));
        assert!(held_without_leader(
            None,
            Some(&HeadStep::Wait(HeadWait::NoLeader))
        ));
        assert!(!held_without_leader(None, Some(&h)));
    }

    #[test]
    fn pods_are_read_by_ordinal_revision_and_readiness() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "g-cluster-12", "uid": "u", "labels": {REVISION_LABEL: "r2"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap();
        let v = PodView::of(&p, "g-cluster").unwrap();
        assert_eq!(
            (v.ordinal, v.ready, v.revision.as_deref()),
            (12, true, Some("r2"))
        );
        assert_eq!(PodView::of(&p, "g-head"), None);
        assert_eq!(PodView::of(&p, "g-cluster-1"), None);
    }

    #[test]
    fn the_template_hash_changes_with_the_template_only() {
        let mut a = StatefulSet::default();
        let h = template_sha256(&a);
        a.metadata.annotations = Some(BTreeMap::from([("x".into(), "y".into())]));
        assert_eq!(template_sha256(&a), h);
        a.spec.template.metadata = Some(Default::default());
        a.spec.template.metadata.as_mut().unwrap().labels =
            Some(BTreeMap::from([("x".into(), "y".into())]));
        assert_ne!(template_sha256(&a), h);
        stamp_template(&mut a);
        assert_eq!(
            SetView::of(&a).template_sha256.as_deref(),
            Some(template_sha256(&a).as_str())
        );
    }
}
