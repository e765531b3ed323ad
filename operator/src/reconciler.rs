//! The reconcile loop: validate, apply every child with server-side apply, scale the
//! cluster down only through decommissioning, prune what no longer belongs, report status.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{info, warn};

use crate::builders::{self, FIELD_MANAGER, names};
use crate::config::{HEAD_API_PORT, Role};
use crate::crd::{FileGrid, FileGridStatus};
use crate::head_api::{HeadAccess, HeadApi, HeadApiError, Leader, ServerState};
use crate::metrics::Metrics;
use crate::rollout::{self, ClusterInput, HeadInput, HeadStep, PodView, RepairSeen, SetView};
use crate::scaling;
use crate::security::{self, SecurityError};
use crate::status::{self, Observed};
use crate::validate::{ValidGrid, validate};
use crate::warnings::Warnings;
use crate::zone;
use filegrid_proto::head::RepairReport;

/// How often a healthy grid is looked at again (leader and epoch change without a Kubernetes event).
pub const STEADY_REQUEUE: Duration = Duration::from_secs(30);
/// How often a grid that is converging (rolling out, draining) is looked at again.
pub const BUSY_REQUEUE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("head API: {0}")]
    HeadApi(#[from] HeadApiError),
    #[error("encoding an object: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("secrets: {0}")]
    Security(#[from] SecurityError),
}

impl Error {
    /// Label of the failure metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::HeadApi(_) => "head_api",
            Error::Encode(_) => "encode",
            Error::Security(SecurityError::Kube(_)) => "kube",
            Error::Security(_) => "security",
        }
    }
}

/// Shared state of the controller.
pub struct Context {
    pub client: Client,
    pub head_api: Arc<dyn HeadApi>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// The last failure per grid, for the error backoff.
    failures: Mutex<HashMap<String, Failure>>,
    /// Warning Events already published, so each is published once per change of cause.
    pub warnings: Arc<Mutex<Warnings>>,
    /// Per grid, the repair pass the cluster rollout's next step must come after. Kept in
    /// memory only: an operator that restarts waits for one more pass, never for fewer.
    pub marks: Arc<Mutex<HashMap<String, rollout::Mark>>>,
}

impl Context {
    pub fn new(client: Client, head_api: Arc<dyn HeadApi>, metrics: Arc<Metrics>) -> Self {
        let recorder = Recorder::new(client.clone(), FIELD_MANAGER.into());
        Self {
            client,
            head_api,
            recorder,
            metrics,
            failures: Mutex::default(),
            warnings: Arc::default(),
            marks: Arc::default(),
        }
    }

    fn mark_of(&self, key: &str) -> Option<rollout::Mark> {
        self.marks.lock().ok().and_then(|m| m.get(key).cloned())
    }

    fn set_mark(&self, key: &str, mark: Option<rollout::Mark>) {
        if let Ok(mut m) = self.marks.lock() {
            match mark {
                Some(mark) => m.insert(key.to_string(), mark),
                None => m.remove(key),
            };
        }
    }

    /// Publish the warnings of `reason` (by subject) that are new or changed since the last
    /// reconcile of this grid; forget those that went away.
    async fn warn_changed(
        &self,
        fg: &FileGrid,
        reason: &str,
        current: std::collections::BTreeMap<String, String>,
    ) {
        let new = match self.warnings.lock() {
            Ok(mut w) => w.changed(&key(fg), reason, current),
            Err(_) => return,
        };
        for (_, note) in new {
            warn!(grid = %key(fg), %reason, %note);
            publish(self, fg, EventType::Warning, reason, &note).await;
        }
    }

    fn failure_of(&self, key: &str) -> Option<Failure> {
        self.failures.lock().ok().and_then(|m| m.get(key).copied())
    }

    fn set_failure(&self, key: &str, f: Option<Failure>) {
        if let Ok(mut m) = self.failures.lock() {
            match f {
                Some(f) => m.insert(key.to_string(), f),
                None => m.remove(key),
            };
        }
    }
}

/// `https://<grid>-head.<namespace>.svc:9669` (`http` for an insecure grid).
pub fn client_service_url(grid: &ValidGrid) -> String {
    let scheme = if grid.secured { "https" } else { "http" };
    format!(
        "{scheme}://{}.{}.svc:{HEAD_API_PORT}",
        names::head(grid),
        grid.namespace
    )
}

/// Seconds since the Unix epoch, for certificate validity.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, for the repair estimate.
fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn key(fg: &FileGrid) -> String {
    format!("{}/{}", fg.namespace().unwrap_or_default(), fg.name_any())
}

/// The last failed reconcile of a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Failures in a row.
    pub count: u32,
    pub at: Instant,
    /// [`trigger_hash`] of the grid that failed.
    pub trigger: Option<u64>,
}

/// How long a reconcile started at `now` must still wait after `failure`: the rest of the
/// failure's backoff, unless the grid changed since (its spec, annotations or deletion).
/// Other events, such as the operator's own status write or a child's status, do not cut
/// the backoff short.
pub fn hold_back(failure: Option<Failure>, trigger: Option<u64>, now: Instant) -> Option<Duration> {
    let f = failure?;
    if f.trigger != trigger {
        return None;
    }
    let due = f.at + backoff(f.count);
    (due > now).then(|| due - now)
}

/// Entry point for the controller: times and counts the reconcile.
pub async fn reconcile(fg: Arc<FileGrid>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(wait) = hold_back(ctx.failure_of(&key(&fg)), trigger_hash(&fg), Instant::now()) {
        return Ok(Action::requeue(wait));
    }
    ctx.metrics.reconciliations.inc();
    let timer = ctx.metrics.duration.start_timer();
    let result = reconcile_grid(&fg, &ctx).await;
    timer.observe_duration();
    match &result {
        Ok(_) => ctx.set_failure(&key(&fg), None),
        Err(e) => {
            ctx.metrics.failures.with_label_values(&[e.kind()]).inc();
            // Best effort: the error itself is what the controller retries on.
            let message = e.to_string();
            if let Err(patch_err) = patch_degraded(&fg, &ctx, "ReconcileError", &message).await {
                warn!(grid = %key(&fg), error = %patch_err, "could not record the failure in status");
            }
        }
    }
    result
}

/// Transient errors back off exponentially per grid: 5s, 10s, ... up to 5 minutes.
pub fn error_policy(fg: Arc<FileGrid>, error: &Error, ctx: Arc<Context>) -> Action {
    let k = key(&fg);
    let n = ctx.failure_of(&k).map_or(0, |f| f.count).saturating_add(1);
    ctx.set_failure(
        &k,
        Some(Failure {
            count: n,
            at: Instant::now(),
            trigger: trigger_hash(&fg),
        }),
    );
    let delay = backoff(n);
    warn!(grid = %k, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Delay before retry number `n` (1-based).
pub fn backoff(n: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << n.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

/// Annotation that pauses reconciliation of a grid while its value is `"true"`.
pub const PAUSED_ANNOTATION: &str = "filegrid.io/paused";

/// Whether the grid carries `filegrid.io/paused: "true"`.
pub fn is_paused(fg: &FileGrid) -> bool {
    fg.annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// What of a FileGrid, when it changes, ends a failure's backoff at once: its generation (the
/// spec), its annotations (pausing) and whether it is being deleted. The operator's own status
/// writes change none of these.
pub fn trigger_hash(fg: &FileGrid) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    fg.metadata.generation.hash(&mut h);
    fg.annotations().hash(&mut h);
    fg.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// Whether nothing may be created in a namespace: it is gone or being deleted.
pub fn namespace_terminating(ns: Option<&Namespace>) -> bool {
    ns.is_none_or(|ns| {
        ns.metadata.deletion_timestamp.is_some()
            || ns
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Terminating")
    })
}

async fn reconcile_grid(fg: &FileGrid, ctx: &Context) -> Result<Action, Error> {
    if fg.metadata.deletion_timestamp.is_some() {
        // Being deleted: garbage collection removes the children; apply nothing.
        info!(grid = %key(fg), "being deleted; nothing to do");
        if let Ok(mut w) = ctx.warnings.lock() {
            w.forget(&key(fg));
        }
        ctx.set_mark(&key(fg), None);
        return Ok(Action::await_change());
    }
    let paused = is_paused(fg);
    ctx.metrics
        .paused
        .with_label_values(&[
            fg.namespace().unwrap_or_default().as_str(),
            fg.name_any().as_str(),
        ])
        .set(i64::from(paused));
    if paused {
        return pause(fg, ctx).await;
    }
    if status::is_paused(fg.status.as_ref()) {
        info!(grid = %key(fg), "reconciliation resumed");
        publish(
            ctx,
            fg,
            EventType::Normal,
            "ReconciliationResumed",
            &format!("{PAUSED_ANNOTATION} was removed: reconciling again"),
        )
        .await;
    }
    let mut grid = match validate(fg) {
        Ok(g) => g,
        Err(invalid) => return refuse(fg, ctx, &invalid.to_string()).await,
    };
    let client = &ctx.client;
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(&grid.namespace)
        .await?;
    if namespace_terminating(namespace.as_ref()) {
        info!(grid = %key(fg), "namespace is being deleted; nothing to apply");
        return Ok(Action::await_change());
    }

    // Secrets first: the pods mount them. A new CA restarts the pods (see ValidGrid::ca_sha256).
    let access = security::ensure(client, &grid, unix_now()).await?;
    grid.ca_sha256 = access.ca_pem.as_deref().map(security::generate::ca_sha256);
    let grid = grid;
    let ns = grid.namespace.as_str();
    apply(client, ns, &builders::config_map(&grid)).await?;
    apply(client, ns, &builders::head_headless_service(&grid)).await?;
    apply(client, ns, &builders::head_client_service(&grid)).await?;
    apply(client, ns, &builders::cluster_headless_service(&grid)).await?;
    if grid.spec.monitor.enabled {
        apply(client, ns, &builders::monitor_service(&grid)).await?;
    }
    let sets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    switch_heads_to_on_delete(&sets, &names::head(&grid)).await?;
    let heads = apply(client, ns, &builders::head_stateful_set(&grid)).await?;

    let base = client_service_url(&grid);
    let mut leader = None;
    // Whether the leader was asked already in this reconcile (it is asked at most once).
    let mut leader_asked = false;
    let existing_cluster = sets.get_opt(&names::cluster(&grid)).await?;
    let seen = scaling::Seen::of(existing_cluster.as_ref());
    if seen.scaled_by_hand() {
        info!(grid = %grid.name, by_hand = ?seen.replicas, size = ?seen.size(),
            "cluster StatefulSet scaled by hand; restoring the grid's size (change spec.cluster.replicas to scale)");
    }
    let desired = grid.spec.cluster.replicas;
    let mut decommissioning = vec![];
    // The grid's size is what the operator applied, not a `kubectl scale` by hand.
    let replicas = match seen.size() {
        Some(current) if desired < current => {
            leader_asked = true;
            let l = ctx.head_api.leader(&access, &base).await?;
            decommissioning = drain(&grid, ctx, &access, &l, desired, current).await?;
            leader = Some(l);
            if decommissioning.is_empty() {
                desired
            } else {
                current
            }
        }
        _ => desired,
    };
    // A scale-down undone before it finished: the servers it was draining stay.
    let previous = fg
        .status
        .as_ref()
        .map(|s| s.decommissioning.clone())
        .unwrap_or_default();
    let keep = scaling::to_recommission(&grid.name, &previous, replicas);
    if !keep.is_empty() {
        let l = match leader.take() {
            Some(l) => l,
            None => ctx.head_api.leader(&access, &base).await?,
        };
        for id in &keep {
            info!(grid = %grid.name, server = %id, "scale-down undone: recommissioning");
            ctx.head_api.recommission(&access, &l, id).await?;
        }
        leader = Some(l);
    }
    let mut claims_below = seen.claims_below(replicas);
    if claims_below > replicas {
        let l = match leader.take() {
            Some(l) => Ok(l),
            None => ctx.head_api.leader(&access, &base).await,
        };
        match l {
            Ok(l) => {
                let left = release_claims(&grid, ctx, &access, &l, replicas).await?;
                decommissioning.extend(left.iter().cloned());
                if left.is_empty() {
                    claims_below = replicas;
                }
                leader = Some(l);
            }
            // Claims stay until a leader says their servers are drained.
            Err(e) => {
                info!(grid = %grid.name, error = %e, "no leader to ask; volumes of removed servers kept")
            }
        }
    }
    let mut cluster_sts = builders::cluster_stateful_set(&grid, replicas);
    // A cluster rollout under way: the pods and the leader's repair report decide the next
    // step (the report is kept for the status).
    let existing_view = existing_cluster.as_ref().map(SetView::of);
    let desired_sha = rollout::template_sha256(&cluster_sts);
    let mut repair_report: Option<Option<RepairReport>> = None;
    let mut cluster_pods = vec![];
    if rollout::cluster_rolling(existing_view.as_ref(), &desired_sha) {
        cluster_pods = pods_of(client, &grid, Role::Cluster, &names::cluster(&grid)).await?;
        if leader.is_none() && !leader_asked {
            leader_asked = true;
            leader = ask_leader(ctx, &grid, &access, &base).await;
        }
        if let Some(l) = &leader {
            repair_report = Some(ask_repair(ctx, &grid, &access, l).await);
        }
    }
    let repair_seen = match (&leader, &repair_report) {
        (Some(l), Some(Some(report))) => Some(RepairSeen {
            epoch: l.epoch,
            report: report.clone(),
        }),
        _ => None,
    };
    let grid_key = key(fg);
    let mark = ctx.mark_of(&grid_key);
    let plan = rollout::next_partition(&ClusterInput {
        existing: existing_view.as_ref(),
        desired_sha256: &desired_sha,
        replicas,
        pods: &cluster_pods,
        repair: repair_seen.as_ref(),
        mark: mark.as_ref(),
        trust_changing: rollout::trust_changing(&cluster_pods, grid.ca_sha256.as_deref()),
    });
    ctx.set_mark(&grid_key, plan.mark.clone());
    if let Some(r) = &plan.rollout {
        info!(grid = %grid.name, partition = plan.partition, rollout = ?r, "cluster rollout");
    }
    rollout::set_partition(&mut cluster_sts, plan.partition);
    scaling::annotate(&mut cluster_sts, replicas, claims_below);
    let cluster = apply(client, ns, &cluster_sts).await?;

    // Heads: standbys first, the leader last, after the cluster servers.
    let head_view = SetView::of(&heads);
    let head_step = if rollout::heads_rolling(&head_view) {
        let pods = pods_of(client, &grid, Role::Head, &names::head(&grid)).await?;
        if leader.is_none() && !leader_asked {
            leader_asked = true;
            leader = ask_leader(ctx, &grid, &access, &base).await;
        }
        let step = rollout::next_head_step(&HeadInput {
            set: &head_view,
            pods: &pods,
            leader: leader.as_ref().map(|l| l.server_id.as_str()),
            cluster_rolling: plan.rollout.is_some() || !rolled_out(&cluster),
            trust_changing: rollout::trust_changing(&pods, grid.ca_sha256.as_deref()),
        });
        if let HeadStep::Delete { name, uid, leader } = &step {
            info!(grid = %grid.name, pod = %name, leader = *leader,
                "head rollout: deleting a head pod on an old revision (standbys first, the leader last)");
            delete_pod(client, ns, name, uid.clone()).await?;
        }
        Some(step)
    } else {
        None
    };
    let monitor = if grid.spec.monitor.enabled {
        Some(apply(client, ns, &builders::monitor_deployment(&grid)).await?)
    } else {
        None
    };
    apply(client, ns, &builders::head_pdb(&grid)).await?;
    apply(client, ns, &builders::cluster_pdb(&grid)).await?;
    if grid.spec.security.network_policy.enabled {
        apply(client, ns, &builders::network_policy(&grid)).await?;
    }
    let service_monitors = service_monitor_api(client, ns).await?;
    if let Some(api) = &service_monitors
        && grid.spec.metrics.service_monitor.enabled
    {
        let sm = builders::service_monitor(&grid);
        api.patch(
            &grid.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&sm),
        )
        .await?;
    }
    let mut unavailable = std::collections::BTreeMap::new();
    if service_monitors.is_none() && grid.spec.metrics.service_monitor.enabled {
        unavailable.insert(
            String::new(),
            "the ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed".to_string(),
        );
    }
    ctx.warn_changed(fg, "ServiceMonitorUnavailable", unavailable)
        .await;
    let without_zone = match &grid.spec.zone_topology_key {
        Some(key) => zone::annotate_pods(client, &grid, key).await?,
        None => Default::default(),
    };
    ctx.warn_changed(fg, "NodeWithoutZone", without_zone).await;
    prune(client, &grid, service_monitors.as_ref()).await?;

    let leader = match leader {
        Some(l) => Some(l),
        None if leader_asked => None,
        None => ask_leader(ctx, &grid, &access, &base).await,
    };
    // What the leader says of the servers and the repair, for the status; a head that does
    // not answer leaves the last known figures in place.
    let (servers, repair) = match &leader {
        Some(l) => {
            let servers = match ctx.head_api.cluster_servers(&access, l).await {
                Ok(s) => Some(s),
                Err(e) => {
                    info!(grid = %grid.name, error = %e, "the leader did not report its servers");
                    None
                }
            };
            let repair = match repair_report {
                Some(r) => r,
                None => ask_repair(ctx, &grid, &access, l).await,
            };
            (servers, repair)
        }
        None => (None, None),
    };
    let rollout_note = rollout::describe(plan.rollout.as_ref(), head_step.as_ref());
    let rollout_held = rollout::held_without_leader(plan.rollout.as_ref(), head_step.as_ref());
    let observed = Observed {
        generation: grid.generation,
        desired_heads: grid.spec.heads.replicas,
        ready_heads: ready(&heads),
        desired_cluster: desired,
        ready_cluster: ready(&cluster),
        min_write_replicas: grid.min_write_replicas,
        rolled_out: !rollout::heads_rolling(&head_view)
            && rolled_out(&cluster)
            && monitor.as_ref().is_none_or(deployment_rolled_out),
        leader,
        decommissioning,
        servers,
        repair,
        rollout: rollout_note,
        rollout_held,
        now_ms: Some(unix_now_ms()),
    };
    let new_status = status::reconciled(&observed, fg.status.as_ref());
    // Converging or unavailable grids are looked at often: leader changes raise no Kubernetes event.
    let busy = !new_status.decommissioning.is_empty()
        || new_status.conditions.iter().any(|c| {
            (c.type_ == status::PROGRESSING && c.status == "True")
                || (c.type_ == status::AVAILABLE && c.status != "True")
        });
    patch_status(fg, ctx, &new_status).await?;
    Ok(Action::requeue(if busy {
        BUSY_REQUEUE
    } else {
        STEADY_REQUEUE
    }))
}

/// The leader, or `None` (logged) when no head names one.
async fn ask_leader(
    ctx: &Context,
    grid: &ValidGrid,
    access: &HeadAccess,
    base: &str,
) -> Option<Leader> {
    match ctx.head_api.leader(access, base).await {
        Ok(l) => Some(l),
        Err(e) => {
            info!(grid = %grid.name, error = %e, "leader not known");
            None
        }
    }
}

/// The leader's repair report, or `None` (logged) when it does not answer.
async fn ask_repair(
    ctx: &Context,
    grid: &ValidGrid,
    access: &HeadAccess,
    leader: &Leader,
) -> Option<RepairReport> {
    match ctx.head_api.repair(access, leader).await {
        Ok(r) => Some(r),
        Err(e) => {
            info!(grid = %grid.name, error = %e, "the leader did not report its repair");
            None
        }
    }
}

/// `key=value,...` selecting one role's pods of the grid.
fn role_selector(grid: &ValidGrid, role: Role) -> String {
    builders::selector_labels(grid, role)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pods of StatefulSet `set` (one role of the grid).
async fn pods_of(
    client: &Client,
    grid: &ValidGrid,
    role: Role,
    set: &str,
) -> Result<Vec<PodView>, Error> {
    let api = Api::<Pod>::namespaced(client.clone(), &grid.namespace);
    let pods = api
        .list(&ListParams::default().labels(&role_selector(grid, role)))
        .await?;
    Ok(pods
        .items
        .iter()
        .filter_map(|p| PodView::of(p, set))
        .collect())
}

/// Deletes a pod, only the one seen (by uid): a pod already gone or replaced is no error.
async fn delete_pod(
    client: &Client,
    ns: &str,
    name: &str,
    uid: Option<String>,
) -> Result<(), Error> {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let params = DeleteParams {
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            info!(pod = %name, code = e.code, "pod already gone or replaced");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Heads are replaced by the operator (`OnDelete`). A StatefulSet made by an earlier version
/// has `RollingUpdate` with the `rollingUpdate` the API server defaulted, which `OnDelete`
/// refuses and server-side apply cannot remove (no manager owns it): one merge patch switches
/// the type and removes it, then the apply owns the type again.
async fn switch_heads_to_on_delete(sets: &Api<StatefulSet>, name: &str) -> Result<(), Error> {
    let Some(existing) = sets.get_opt(name).await? else {
        return Ok(());
    };
    if !rollout::needs_on_delete_switch(&SetView::of(&existing)) {
        return Ok(());
    }
    info!(statefulset = %name, "switching the head StatefulSet to OnDelete (the operator rolls the heads)");
    let patch =
        json!({"spec": {"updateStrategy": {"type": rollout::ON_DELETE, "rollingUpdate": null}}});
    sets.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Ask the leader to decommission every server above the new size; returns those not yet drained.
async fn drain(
    grid: &ValidGrid,
    ctx: &Context,
    access: &HeadAccess,
    leader: &Leader,
    desired: i32,
    current: i32,
) -> Result<Vec<String>, Error> {
    let servers = ctx.head_api.cluster_servers(access, leader).await?;
    let mut waiting = vec![];
    for ordinal in desired..current {
        let id = names::cluster_pod(grid, ordinal);
        let state = servers
            .iter()
            .find(|s| s.id.as_str() == id)
            .map(|s| s.state);
        match state {
            Some(ServerState::Drained) => continue,
            Some(ServerState::Draining) => {}
            _ => {
                info!(grid = %grid.name, server = %id, "decommissioning before scale-down");
                ctx.head_api.decommission(access, leader, &id).await?;
            }
        }
        waiting.push(id);
    }
    Ok(waiting)
}

/// Deletes the volume claims of cluster ordinals at or above `replicas` whose servers are
/// drained or unknown to the leader; asks the leader to drain those it still counts. Answers
/// the servers whose claims are left (their drain goes on).
async fn release_claims(
    grid: &ValidGrid,
    ctx: &Context,
    access: &HeadAccess,
    leader: &Leader,
    replicas: i32,
) -> Result<Vec<String>, Error> {
    let api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &grid.namespace);
    let selector = role_selector(grid, Role::Cluster);
    let claims = api.list(&ListParams::default().labels(&selector)).await?;
    let mut above: Vec<(i32, String)> = claims
        .items
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| {
            let name = c.metadata.name.clone()?;
            let ordinal = scaling::claim_ordinal(&grid.name, &name)?;
            (ordinal >= replicas).then_some((ordinal, name))
        })
        .collect();
    above.sort();
    if above.is_empty() {
        return Ok(vec![]);
    }
    let servers = ctx.head_api.cluster_servers(access, leader).await?;
    let mut left = vec![];
    for (ordinal, claim) in above {
        let id = names::cluster_pod(grid, ordinal);
        let state = servers
            .iter()
            .find(|s| s.id.as_str() == id)
            .map(|s| s.state);
        match scaling::claim(state) {
            scaling::Claim::Delete => {
                info!(grid = %grid.name, %claim, server = %id, "deleting the volume of a drained server");
                match api.delete(&claim, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            scaling::Claim::Decommission => {
                info!(grid = %grid.name, server = %id, "decommissioning a server above the grid's size before deleting its volume");
                ctx.head_api.decommission(access, leader, &id).await?;
                left.push(id);
            }
            scaling::Claim::Wait => left.push(id),
        }
    }
    Ok(left)
}

fn ready(s: &StatefulSet) -> i32 {
    s.status
        .as_ref()
        .and_then(|st| st.ready_replicas)
        .unwrap_or(0)
}

fn rolled_out(s: &StatefulSet) -> bool {
    let Some(st) = &s.status else { return false };
    let want = s.spec.replicas.unwrap_or(1);
    st.observed_generation >= s.metadata.generation
        && st.updated_replicas.unwrap_or(0) >= want
        && st.current_revision == st.update_revision
}

fn deployment_rolled_out(d: &Deployment) -> bool {
    let Some(st) = &d.status else { return false };
    st.observed_generation >= d.metadata.generation
        && st.updated_replicas.unwrap_or(0) >= d.spec.replicas.unwrap_or(1)
}

/// Server-side apply under the operator's field manager; returns the object as stored.
async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?)
}

/// The ServiceMonitor API when prometheus-operator's CRD is installed.
async fn service_monitor_api(
    client: &Client,
    ns: &str,
) -> Result<Option<Api<DynamicObject>>, Error> {
    match client
        .list_api_group_resources(builders::SERVICE_MONITOR_API_VERSION)
        .await
    {
        Ok(list) if list.resources.iter().any(|r| r.kind == "ServiceMonitor") => Ok(Some(
            Api::namespaced_with(client.clone(), ns, &builders::service_monitor_resource()),
        )),
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Delete children of this grid (by label and owner) whose names the spec no longer produces.
async fn prune(
    client: &Client,
    grid: &ValidGrid,
    service_monitors: Option<&Api<DynamicObject>>,
) -> Result<(), Error> {
    let ns = grid.namespace.as_str();
    let mut services = BTreeSet::from([
        names::head_headless(grid),
        names::head(grid),
        names::cluster_headless(grid),
    ]);
    let mut deployments = BTreeSet::new();
    if grid.spec.monitor.enabled {
        services.insert(names::monitor(grid));
        deployments.insert(names::monitor(grid));
    }
    prune_kind(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        grid,
        &BTreeSet::from([names::config_map(grid)]),
    )
    .await?;
    prune_kind(
        &Api::<Service>::namespaced(client.clone(), ns),
        grid,
        &services,
    )
    .await?;
    prune_kind(
        &Api::<StatefulSet>::namespaced(client.clone(), ns),
        grid,
        &BTreeSet::from([names::head(grid), names::cluster(grid)]),
    )
    .await?;
    prune_kind(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        grid,
        &deployments,
    )
    .await?;
    prune_kind(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        grid,
        &BTreeSet::from([names::head(grid), names::cluster(grid)]),
    )
    .await?;
    let policies = if grid.spec.security.network_policy.enabled {
        BTreeSet::from([names::network_policy(grid)])
    } else {
        BTreeSet::new()
    };
    prune_kind(
        &Api::<NetworkPolicy>::namespaced(client.clone(), ns),
        grid,
        &policies,
    )
    .await?;
    if let Some(api) = service_monitors {
        let keep = if grid.spec.metrics.service_monitor.enabled {
            BTreeSet::from([grid.name.clone()])
        } else {
            BTreeSet::new()
        };
        prune_kind(api, grid, &keep).await?;
    }
    Ok(())
}

async fn prune_kind<K>(api: &Api<K>, grid: &ValidGrid, keep: &BTreeSet<String>) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list(&ListParams::default().labels(&builders::instance_selector(grid)))
        .await?;
    for obj in list {
        let owned = obj.owner_references().iter().any(|o| o.uid == grid.uid);
        if owned && !keep.contains(&obj.name_any()) {
            info!(grid = %grid.name, child = %obj.name_any(), "deleting child that no longer belongs");
            api.delete(&obj.name_any(), &DeleteParams::background())
                .await?;
        }
    }
    Ok(())
}

/// A paused grid: nothing is applied or deleted. Reported by the `ReconciliationPaused`
/// condition and, when it starts, an Event. Removing the annotation resumes.
async fn pause(fg: &FileGrid, ctx: &Context) -> Result<Action, Error> {
    let was_paused = status::is_paused(fg.status.as_ref());
    if !was_paused {
        info!(grid = %key(fg), "reconciliation paused");
        publish(
            ctx,
            fg,
            EventType::Normal,
            status::RECONCILIATION_PAUSED,
            &format!("{PAUSED_ANNOTATION} is \"true\": nothing is applied until it is removed"),
        )
        .await;
    }
    let s = status::paused(fg.metadata.generation, fg.status.as_ref());
    patch_status(fg, ctx, &s).await?;
    Ok(Action::await_change())
}

/// An invalid spec: report it once per generation and wait for the user to change it.
async fn refuse(fg: &FileGrid, ctx: &Context, message: &str) -> Result<Action, Error> {
    let generation = fg.metadata.generation;
    if !status::already_degraded(fg.status.as_ref(), generation, message) {
        warn!(grid = %key(fg), %message, "invalid FileGrid");
        publish(ctx, fg, EventType::Warning, status::INVALID_SPEC, message).await;
        patch_degraded(fg, ctx, status::INVALID_SPEC, message).await?;
    }
    Ok(Action::await_change())
}

async fn patch_degraded(
    fg: &FileGrid,
    ctx: &Context,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let s = status::degraded(fg.metadata.generation, fg.status.as_ref(), reason, message);
    patch_status(fg, ctx, &s).await
}

async fn patch_status(fg: &FileGrid, ctx: &Context, status: &FileGridStatus) -> Result<(), Error> {
    if fg.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<FileGrid> =
        Api::namespaced(ctx.client.clone(), &fg.namespace().unwrap_or_default());
    let body = json!({"apiVersion": "filegrid.io/v1alpha1", "kind": "FileGrid", "status": status});
    api.patch_status(
        &fg.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}

/// Events are best effort: a failure to record one must not fail the reconcile.
async fn publish(ctx: &Context, fg: &FileGrid, type_: EventType, reason: &str, note: &str) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.to_string()),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &fg.object_ref(&())).await {
        warn!(grid = %key(fg), error = %e, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(yaml_meta: &str) -> FileGrid {
        serde_yaml::from_str(&format!(
            "apiVersion: filegrid.io/v1alpha1\nkind: FileGrid\nmetadata: {yaml_meta}\nspec: {{zookeeper: {{connect: 'zk:2181'}}}}"
        ))
        .unwrap()
    }

    #[test]
    fn a_failure_is_retried_after_its_backoff_unless_the_grid_changed() {
        let fg = grid("{name: g, namespace: ns, generation: 3}");
        let t0 = Instant::now();
        let failure = Failure {
            count: 1,
            at: t0,
            trigger: trigger_hash(&fg),
        };
        // The status write right after the failure, or a child's event: wait the rest.
        assert_eq!(
            hold_back(
                Some(failure),
                trigger_hash(&fg),
                t0 + Duration::from_secs(1)
            ),
            Some(Duration::from_secs(4))
        );
        let second = Failure {
            count: 2,
            ..failure
        };
        assert_eq!(
            hold_back(Some(second), trigger_hash(&fg), t0),
            Some(Duration::from_secs(10))
        );
        // Due: go.
        assert_eq!(
            hold_back(
                Some(failure),
                trigger_hash(&fg),
                t0 + Duration::from_secs(5)
            ),
            None
        );
        assert_eq!(hold_back(None, trigger_hash(&fg), t0), None);
        // A new spec, a new annotation or a deletion: go at once.
        for changed in [
            "{name: g, namespace: ns, generation: 4}",
            "{name: g, namespace: ns, generation: 3, annotations: {filegrid.io/paused: 'true'}}",
            "{name: g, namespace: ns, generation: 3, deletionTimestamp: '2026-01-01T00:00:00Z'}",
        ] {
            assert_eq!(
                hold_back(Some(failure), trigger_hash(&grid(changed)), t0),
                None
            );
        }
        // Status and labels are not triggers.
        let mut with_status = fg.clone();
        with_status.status = Some(FileGridStatus {
            ready_heads: 2,
            ..FileGridStatus::default()
        });
        assert_eq!(trigger_hash(&with_status), trigger_hash(&fg));
    }

    #[test]
    fn paused_only_by_true() {
        assert!(!is_paused(&grid("{name: g}")));
        assert!(is_paused(&grid(
            "{name: g, annotations: {filegrid.io/paused: 'true'}}"
        )));
        assert!(is_paused(&grid(
            "{name: g, annotations: {filegrid.io/paused: 'True'}}"
        )));
        assert!(!is_paused(&grid(
            "{name: g, annotations: {filegrid.io/paused: 'false'}}"
        )));
        assert!(!is_paused(&grid(
            "{name: g, annotations: {filegrid.io/paused: ''}}"
        )));
    }

    #[test]
    fn terminating_namespaces() {
        let ns = |json: serde_json::Value| -> Namespace { serde_json::from_value(json).unwrap() };
        assert!(namespace_terminating(None));
        assert!(!namespace_terminating(Some(&ns(
            serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Active"}})
        ))));
        assert!(namespace_terminating(Some(&ns(
            serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}})
        ))));
        assert!(namespace_terminating(Some(&ns(
            serde_json::json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}})
        ))));
    }
}
