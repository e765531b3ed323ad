//! The leader's background work on chunks: re-replication after a server died, draining
//! decommissioned servers, read repair of bad copies, and collecting orphaned chunks.
//!
//! A pass walks every manifest (the leader's view of where chunks live, rebuilt from ZooKeeper
//! each pass) and compares it with the live servers (registrations and heartbeats). A new
//! leader waits [`WARM_UP`] before its first pass so that it has heard from every server:
//! a failover alone never triggers copies. Copies are rate limited (`repair_rate`).
//!
//! Walking every manifest costs ZooKeeper work in proportion to the number of files, so a
//! pass runs only when something may need it: the servers' states changed (one went silent,
//! was declared dead, came back, or is draining), a repair was asked for (a bad copy read, a
//! chunk acknowledged short of replicas), files were deleted or replaced or an upload failed
//! (orphans to collect), an orphan's grace ran out, the last pass left work (copies made,
//! chunks still short) or failed, and otherwise every [`IDLE_PASS`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::manifest::ChunkRef;
use super::{DataPlane, namespace, placement};
use crate::cluster::{EPOCH_HEADER, PutResponse};
use crate::election::Role;
use crate::fencing::FencedOp;
use crate::ids::ServerId;
use crate::leadership::Leadership;
use crate::zk::records::{self, ClusterStateRecord, DrainState};

/// Time a new leader waits for heartbeats before it repairs anything.
pub const WARM_UP: Duration = Duration::from_secs(5);

/// Longest time between passes when nothing asks for one (finds chunks no file references
/// that no event announced, e.g. left by a crashed leader's upload).
pub const IDLE_PASS: Duration = Duration::from_secs(60);

/// Requests for the repair loop, and a way to wake it early.
#[derive(Default)]
pub struct Queue {
    reads: Mutex<Vec<ReadRepair>>,
    /// Something happened that a pass should look at.
    needed: AtomicBool,
    wake: Notify,
}

#[derive(Clone, Debug)]
struct ReadRepair {
    chunk: String,
    good: ServerId,
    bad: Vec<ServerId>,
}

impl Queue {
    /// A chunk was acknowledged with fewer replicas than wanted.
    pub fn under_replicated(&self, _path: &str, _file_id: &str, _chunk: &str) {
        self.wake();
    }

    /// `bad` served a bad or missing copy of `chunk`; `good` has a verified one.
    pub fn read_repair(&self, chunk: &str, good: &ServerId, bad: &[ServerId]) {
        if let Ok(mut r) = self.reads.lock() {
            r.push(ReadRepair {
                chunk: chunk.into(),
                good: good.clone(),
                bad: bad.to_vec(),
            });
        }
        self.wake();
    }

    /// A file was deleted or replaced, or an upload failed: chunks may have lost their file
    /// and are collected after the grace.
    pub fn orphaned(&self) {
        self.look_again();
    }

    /// Asks for a pass now (e.g. after a decommission request).
    pub fn wake(&self) {
        self.look_again();
        self.wake.notify_one();
    }

    /// The last pass left work: look again at the next check.
    fn look_again(&self) {
        self.needed.store(true, Ordering::Relaxed);
    }

    fn take_needed(&self) -> bool {
        self.needed.swap(false, Ordering::Relaxed)
    }
}

/// The servers' states as a pass sees them (up, dead, draining); a pass is due when they
/// change. The flag says whether servers that manifests name but that never registered with
/// this leader count as lost (once it has led for `dead_after`).
#[derive(Debug, PartialEq, Eq)]
struct ServerStates {
    servers: Vec<(ServerId, bool, bool, bool)>,
    unregistered_lost: bool,
}

impl ServerStates {
    fn now(dp: &DataPlane, leader_age: Duration) -> Self {
        let dead_after = dp.config.dead_after;
        let mut servers: Vec<_> = dp
            .membership
            .all()
            .into_iter()
            .map(|s| {
                let (up, dead) = (s.is_up(), s.is_dead(dead_after));
                (s.id, up, dead, s.drain.is_some())
            })
            .collect();
        servers.sort();
        Self {
            servers,
            unregistered_lost: leader_age >= dead_after,
        }
    }
}

/// When the last pass ran, and what it saw.
struct LastPass {
    epoch: u64,
    at: Instant,
    states: ServerStates,
}

/// What the last pass found (served at `GET /v1/repair`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassReport {
    pub files: u64,
    pub chunks: u64,
    pub under_replicated: u64,
    pub copies_made: u64,
    pub orphans_deleted: u64,
    pub finished_at: u64,
}

/// Runs repair passes while this head leads, until `stop`.
pub async fn run(dp: Arc<DataPlane>, stop: CancellationToken, report: Arc<Mutex<PassReport>>) {
    let mut status = dp.election.status();
    let mut leading_since: Option<(u64, Instant)> = None;
    let mut orphans: HashMap<(ServerId, String), Instant> = HashMap::new();
    let mut last_pass: Option<LastPass> = None;
    let pass_every =
        (dp.config.dead_after / 3).clamp(Duration::from_millis(500), Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pass_every) => {}
            _ = dp.repairs.wake.notified() => {}
            _ = status.changed() => {}
        }
        let (role, epoch) = {
            let s = status.borrow();
            (s.role, s.epoch)
        };
        if role != Role::Leader {
            leading_since = None;
            orphans.clear();
            continue;
        }
        let since = match leading_since {
            Some((e, t)) if e == epoch => t,
            _ => {
                let now = Instant::now();
                leading_since = Some((epoch, now));
                now
            }
        };
        if since.elapsed() < WARM_UP {
            continue;
        }
        let states = ServerStates::now(&dp, since.elapsed());
        let orphan_due = orphans
            .values()
            .any(|first| first.elapsed() >= dp.config.orphan_grace);
        let due = dp.repairs.take_needed()
            || orphan_due
            || last_pass.as_ref().is_none_or(|last| {
                last.epoch != epoch || last.at.elapsed() >= IDLE_PASS || last.states != states
            });
        if !due {
            continue;
        }
        last_pass = Some(LastPass {
            epoch,
            at: Instant::now(),
            states,
        });
        match pass(&dp, since.elapsed(), &mut orphans).await {
            Ok(r) => {
                // Work left over: look again at the next tick.
                let draining = dp.membership.all().iter().any(|s| s.drain.is_some());
                if r.copies_made > 0 || r.under_replicated > 0 || draining {
                    dp.repairs.look_again();
                }
                if let Ok(mut rep) = report.lock() {
                    *rep = r;
                }
            }
            Err(e) => {
                dp.repairs.look_again();
                tracing::warn!(error = %e, "repair pass failed; will retry");
            }
        }
    }
}

/// One pass over every manifest.
async fn pass(
    dp: &Arc<DataPlane>,
    leader_age: Duration,
    orphans: &mut HashMap<(ServerId, String), Instant>,
) -> Result<PassReport, String> {
    let lead = Leadership::current(&dp.election).ok_or("no longer leader")?;
    let client = lead.client().clone();
    let token = lead.token().clone();
    let layout = lead.layout().clone();
    let mut report = PassReport::default();

    // Read repairs first: they are cheap and were asked for.
    let reads: Vec<ReadRepair> = dp
        .repairs
        .reads
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    for rr in reads {
        let targets: Vec<String> = rr.bad.iter().filter_map(|b| dp.addr_of(b)).collect();
        if let (Some(src), false) = (dp.addr_of(&rr.good), targets.is_empty()) {
            match replicate(dp, token.epoch, &src, &rr.chunk, &targets).await {
                Ok(r) => {
                    dp.metrics
                        .repairs
                        .with_label_values(&["read"])
                        .inc_by(r.stored.len() as u64);
                    tracing::info!(chunk = %rr.chunk, rewritten = ?r.stored, "read repair: rewrote bad copies from a good one");
                }
                Err(e) => tracing::warn!(chunk = %rr.chunk, error = %e, "read repair failed"),
            }
        }
    }

    let files = namespace::walk(&client, &layout)
        .await
        .map_err(|e| e.to_string())?;
    report.files = files.len() as u64;
    dp.metrics.files.set(files.len() as i64);
    let rf = dp.config.replication_factor as usize;
    let dead_after = dp.config.dead_after;
    let membership = dp.membership.clone();
    let is_up = |r: &ServerId| membership.get(r).is_some_and(|s| s.is_up());
    let is_lost = |r: &ServerId| match membership.get(r) {
        Some(s) => s.is_dead(dead_after),
        None => leader_age >= dead_after,
    };
    let is_draining = |r: &ServerId| membership.get(r).is_some_and(|s| s.drain.is_some());
    let mut referenced: HashSet<(ServerId, String)> = HashSet::new();
    let mut under = 0u64;

    for (path, meta) in &files {
        let mut changes: BTreeMap<String, Vec<ServerId>> = BTreeMap::new();
        for c in &meta.chunks {
            report.chunks += 1;
            for r in &c.replicas {
                referenced.insert((r.clone(), c.id.clone()));
            }
            let good: Vec<ServerId> = c
                .replicas
                .iter()
                .filter(|r| is_up(r) && !is_draining(r))
                .cloned()
                .collect();
            let draining: Vec<ServerId> = c
                .replicas
                .iter()
                .filter(|r| is_up(r) && is_draining(r))
                .cloned()
                .collect();
            let waiting: Vec<ServerId> = c
                .replicas
                .iter()
                .filter(|r| !is_up(r) && !is_lost(r))
                .cloned()
                .collect();
            let lost: Vec<ServerId> = c.replicas.iter().filter(|r| is_lost(r)).cloned().collect();
            if good.len() < rf {
                under += 1;
            }
            let missing = rf.saturating_sub(good.len() + waiting.len());
            let mut new_replicas = Vec::new();
            if missing > 0 {
                let Some(src) = good
                    .iter()
                    .chain(draining.iter())
                    .find_map(|r| dp.addr_of(r))
                else {
                    if !lost.is_empty() {
                        tracing::error!(chunk = %c.id, path = %path, "no live replica left to copy from");
                    }
                    continue;
                };
                let exclude: Vec<ServerId> = c.replicas.clone();
                let targets = placement::choose(
                    &dp.membership.placement_candidates(),
                    missing,
                    &exclude,
                    c.len,
                    &mut rand::rng(),
                );
                let addrs: Vec<(ServerId, String)> = targets
                    .iter()
                    .filter_map(|t| dp.addr_of(t).map(|a| (t.clone(), a)))
                    .collect();
                if addrs.is_empty() {
                    continue;
                }
                let list: Vec<String> = addrs.iter().map(|(_, a)| a.clone()).collect();
                match replicate(dp, token.epoch, &src, &c.id, &list).await {
                    Ok(resp) => {
                        for (id, a) in &addrs {
                            if resp.stored.contains(a) {
                                new_replicas.push(id.clone());
                            }
                        }
                        let reason = if !draining.is_empty() {
                            "decommission"
                        } else if !lost.is_empty() {
                            "dead"
                        } else {
                            "under"
                        };
                        dp.metrics
                            .repairs
                            .with_label_values(&[reason])
                            .inc_by(new_replicas.len() as u64);
                        report.copies_made += new_replicas.len() as u64;
                        throttle(dp, c.len * new_replicas.len() as u64).await;
                    }
                    Err(e) => {
                        tracing::warn!(chunk = %c.id, error = %e, "re-replication copy failed");
                        continue;
                    }
                }
            }
            // The new replica list: drop lost copies, and draining ones once enough others exist.
            let mut next: Vec<ServerId> = good.clone();
            next.extend(new_replicas);
            next.extend(waiting.iter().cloned());
            if next.len() < rf {
                next.extend(draining.iter().cloned());
            }
            if next != c.replicas {
                changes.insert(c.id.clone(), next);
            }
        }
        if !changes.is_empty() {
            let applied = namespace::update_chunks(
                &lead,
                path,
                &meta.file_id,
                |chunks: &mut Vec<ChunkRef>| {
                    for ch in chunks.iter_mut() {
                        if let Some(r) = changes.get(&ch.id) {
                            ch.replicas = r.clone();
                        }
                    }
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            if applied {
                tracing::info!(path = %path, chunks = changes.len(), "updated replica locations");
                for (id, reps) in &changes {
                    for r in reps {
                        referenced.insert((r.clone(), id.clone()));
                    }
                }
            }
        }
    }
    report.under_replicated = under;
    dp.metrics.under_replicated.set(under as i64);

    // Draining servers no manifest points to any more are drained.
    for s in dp.membership.all() {
        if s.drain == Some(DrainState::Draining) && !referenced.iter().any(|(r, _)| *r == s.id) {
            let rec = ClusterStateRecord {
                v: 1,
                state: DrainState::Drained,
                since: records::now_ms(),
            };
            let path = layout.cluster_state(&s.id);
            let ops = [FencedOp::SetData {
                path,
                data: records::encode(&rec),
                version: None,
            }];
            match lead.write(&ops).await {
                Ok(_) => {
                    dp.membership.set_drain(&s.id, Some(DrainState::Drained));
                    tracing::info!(server_id = %s.id, "cluster server drained: no chunk needs it any more");
                }
                Err(e) => {
                    tracing::warn!(server_id = %s.id, error = %e, "cannot mark server drained")
                }
            }
        }
    }

    report.orphans_deleted = collect_orphans(dp, token.epoch, &referenced, orphans).await;
    report.finished_at = records::now_ms();
    Ok(report)
}

/// Deletes chunks that no manifest lists on the server holding them, once they have been
/// unreferenced for `orphan_grace` (longer than any upload, which stores chunks before its
/// manifest is committed).
async fn collect_orphans(
    dp: &Arc<DataPlane>,
    epoch: u64,
    referenced: &HashSet<(ServerId, String)>,
    orphans: &mut HashMap<(ServerId, String), Instant>,
) -> u64 {
    let mut deleted = 0;
    let mut seen = HashSet::new();
    for s in dp.membership.all().into_iter().filter(|s| s.is_up()) {
        let url = format!("http://{}/v1/chunks", s.addr());
        let Ok(resp) = dp.http.get(&url).send().await else {
            continue;
        };
        let Ok(list) = resp.json::<serde_json::Value>().await else {
            continue;
        };
        let Some(items) = list.get("chunks").and_then(|c| c.as_array()) else {
            continue;
        };
        for item in items {
            let Some(id) = item.get("id").and_then(|i| i.as_str()) else {
                continue;
            };
            let key = (s.id.clone(), id.to_string());
            if referenced.contains(&key) {
                continue;
            }
            seen.insert(key.clone());
            let first = *orphans.entry(key.clone()).or_insert_with(Instant::now);
            if first.elapsed() < dp.config.orphan_grace {
                continue;
            }
            let del = dp
                .http
                .delete(format!("http://{}/v1/chunks/{id}", s.addr()))
                .header(EPOCH_HEADER, epoch.to_string())
                .send()
                .await;
            if del.is_ok_and(|r| {
                r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND
            }) {
                deleted += 1;
                orphans.remove(&key);
                tracing::info!(server_id = %s.id, chunk = id, "deleted orphaned chunk");
            }
        }
    }
    orphans.retain(|k, _| seen.contains(k));
    deleted
}

/// Asks `source` to copy `chunk` to `targets`.
async fn replicate(
    dp: &DataPlane,
    epoch: u64,
    source: &str,
    chunk: &str,
    targets: &[String],
) -> Result<PutResponse, String> {
    let resp = dp
        .http
        .post(format!("http://{source}/v1/chunks/{chunk}/replicate"))
        .json(&serde_json::json!({"targets": targets, "epoch": epoch}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            resp.text().await.unwrap_or_default()
        ));
    }
    resp.json::<PutResponse>().await.map_err(|e| e.to_string())
}

/// Sleeps long enough that copies stay under `repair_rate` bytes per second.
async fn throttle(dp: &DataPlane, bytes: u64) {
    let rate = dp.config.repair_rate.max(1);
    tokio::time::sleep(Duration::from_secs_f64(bytes as f64 / rate as f64)).await;
}
