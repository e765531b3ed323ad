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
//!
//! A pass is split so that its rules can be tested without servers or ZooKeeper: it gathers
//! what it needs (read-repair requests, manifests, each up server's chunk list), [`plan`]
//! decides the work as a pure function of that, and [`execute`] carries it out (orphans in
//! batches per server, [`collect`]). Draining is owned by [`drain`].

pub mod collect;
pub mod drain;
pub mod execute;
pub mod plan;
pub mod progress;
pub mod schedule;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::DataPlane;
use super::manifest::ChunkRef;
use super::namespace::{self, NsError};
use crate::election::Role;
use crate::ids::ServerId;
use crate::leadership::Leadership;
use crate::zk::records;
use plan::{Held, ReadRepair};

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

impl Queue {
    /// A chunk was acknowledged with fewer replicas than wanted.
    pub fn under_replicated(&self, _path: &str, _file_id: &str, _chunk: &str) {
        self.wake();
    }

    /// `bad` served a bad or missing copy of `chunk`; `good` has a verified one.
    pub fn read_repair(&self, chunk: &ChunkRef, good: &ServerId, bad: &[ServerId]) {
        if let Ok(mut r) = self.reads.lock() {
            r.push(ReadRepair {
                chunk: chunk.id.clone(),
                checksum: chunk.checksum.clone(),
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

    fn take_reads(&self) -> Vec<ReadRepair> {
        self.reads
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    /// Puts back requests a failed pass did not get to.
    fn requeue(&self, reads: Vec<ReadRepair>) {
        if let Ok(mut r) = self.reads.lock() {
            r.extend(reads);
        }
        self.look_again();
    }
}

/// Why a pass failed (it is retried at the next check).
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("no longer leader (or not connected to ZooKeeper)")]
    NotLeader,
    #[error(transparent)]
    Namespace(#[from] NsError),
}

/// The servers' states as a pass sees them (up, dead, draining, and when the registered
/// process started, so a restart between two looks counts); a pass is due when they change. The flag says whether servers that manifests name but that never registered with
/// this leader count as lost (once it has led for `dead_after`).
#[derive(Debug, PartialEq, Eq)]
struct ServerStates {
    servers: Vec<(ServerId, bool, bool, bool, u64)>,
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
                (s.id, up, dead, s.drain.is_some(), s.lifecycle.started_at)
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

impl LastPass {
    /// Whether a pass is due even if nothing asked for one: leadership changed hands, the
    /// servers' states changed, or [`IDLE_PASS`] went by.
    fn stale(&self, epoch: u64, states: &ServerStates, now: Instant) -> bool {
        self.epoch != epoch
            || now.saturating_duration_since(self.at) >= IDLE_PASS
            || self.states != *states
    }
}

/// Whether a leader since `since` has waited [`WARM_UP`] for every server's heartbeat.
fn warmed_up(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) >= WARM_UP
}

/// Whether some orphan's grace has run out.
fn orphan_due(unreferenced: &HashMap<Held, Instant>, now: Instant, grace: Duration) -> bool {
    unreferenced
        .values()
        .any(|first| now.saturating_duration_since(*first) >= grace)
}

/// What the last pass found (served at `GET /v1/repair`).
pub type PassReport = filegrid_proto::head::RepairReport;

/// Runs repair passes while this head leads, until `stop`.
pub async fn run(dp: Arc<DataPlane>, stop: CancellationToken, report: Arc<Mutex<PassReport>>) {
    let mut status = dp.election.status();
    let mut leading_since: Option<(u64, Instant)> = None;
    let mut unreferenced: HashMap<Held, Instant> = HashMap::new();
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
            unreferenced.clear();
            // Bad copies a standby's reads found: only a leader repairs, and the leader's
            // own reads, block reports and scrubbers find them too.
            drop(dp.repairs.take_reads());
            continue;
        }
        let now = Instant::now();
        let since = match leading_since {
            Some((e, t)) if e == epoch => t,
            _ => {
                leading_since = Some((epoch, now));
                now
            }
        };
        if !warmed_up(since, now) {
            continue;
        }
        let states = ServerStates::now(&dp, now.saturating_duration_since(since));
        let due = dp.repairs.take_needed()
            || orphan_due(&unreferenced, now, dp.config.orphan_grace)
            || last_pass
                .as_ref()
                .is_none_or(|last| last.stale(epoch, &states, now));
        if !due {
            continue;
        }
        last_pass = Some(LastPass {
            epoch,
            at: now,
            states,
        });
        match pass(&dp, since, &mut unreferenced, &report).await {
            Ok(r) => {
                // Work left over: look again at the next tick.
                if r.copies_made > 0
                    || r.under_replicated > 0
                    || drain::work_left(&dp.membership.all())
                {
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

/// One pass: gathers what the plan needs, plans, carries the plan out.
async fn pass(
    dp: &Arc<DataPlane>,
    leading_since: Instant,
    unreferenced: &mut HashMap<Held, Instant>,
    report: &Mutex<PassReport>,
) -> Result<PassReport, PassError> {
    let lead = Leadership::current(&dp.election).ok_or(PassError::NotLeader)?;
    let reads = dp.repairs.take_reads();
    let walked = match namespace::walk(lead.client(), lead.layout()).await {
        Ok(w) => w,
        Err(e) => {
            dp.repairs.requeue(reads);
            return Err(e.into());
        }
    };
    let files = &walked.files;
    dp.metrics.files.set(files.len() as i64);
    let pinned = match super::uploads::pinned(lead.client(), lead.layout()).await {
        Ok(p) => p,
        Err(e) => {
            dp.repairs.requeue(reads);
            return Err(NsError::from(e).into());
        }
    };
    // Drained servers that left are forgotten, and drained ids back with a new, empty
    // process are live again, before the plan looks at them.
    let servers = drain::settle_all(dp, &lead, Instant::now()).await;
    let (held, corrupt) = execute::list_held(dp, &servers).await;
    // After the listing: a listed chunk whose upload is not live any more had finished
    // storing (its upload registers before its first chunk is stored).
    let live_uploads = dp.live_uploads.snapshot();
    let plan = plan::plan(
        &plan::Input {
            files,
            servers: &servers,
            reads: &reads,
            held: &held,
            corrupt: &corrupt,
            first_seen: unreferenced,
            pinned: &pinned,
            live_uploads: &live_uploads,
            now: Instant::now(),
            leading_since,
            config: &dp.config,
        },
        &mut rand::rng(),
    );
    *unreferenced = plan.unreferenced;
    // Which manifest part holds each chunk of a split list, so that a repair rewrites only
    // the parts it changed, and each file's work goes in slices taken in turns.
    let parts = part_index(&walked, &plan.actions);
    let part_of = |file_id: &str, chunk: &str| parts.get(file_id)?.get(chunk).copied();
    let actions = schedule::interleave(
        plan.actions,
        &part_of,
        schedule::SLICE_CHUNKS,
        schedule::SLICE_BYTES,
    );
    let rate = dp.config.repair_rate;
    let mut progress = progress::Tracker::start(&actions, report, &dp.metrics, rate);
    let done = execute::run(dp, &lead, actions, unreferenced, &mut progress, &part_of).await;
    let left = progress.finish();
    let done = done?;
    dp.metrics
        .under_replicated
        .set(plan.counts.under_replicated as i64);
    let mut r = PassReport {
        files: plan.counts.files,
        chunks: plan.counts.chunks,
        under_replicated: plan.counts.under_replicated,
        copies_made: done.copies_made,
        orphans_deleted: done.orphans_deleted,
        finished_at: records::now_ms(),
        ..PassReport::default()
    };
    left.apply(&mut r, rate);
    Ok(r)
}

/// The manifest part of every chunk of the split manifests that `actions` repair, by file id
/// (a copied object's chunks are in two files' manifests, not in the same places).
fn part_index<'a>(
    walked: &'a namespace::Walk,
    actions: &[plan::Action],
) -> HashMap<&'a str, HashMap<&'a str, u32>> {
    let repairing: std::collections::HashSet<&str> = actions
        .iter()
        .filter_map(|a| match a {
            plan::Action::RepairFile(f) => Some(f.file_id.as_str()),
            _ => None,
        })
        .collect();
    let mut index = HashMap::new();
    for (_, meta) in &walked.files {
        let Some(lens) = walked.part_lens.get(&meta.file_id) else {
            continue;
        };
        if !repairing.contains(meta.file_id.as_str()) {
            continue;
        }
        let mut of_file = HashMap::with_capacity(meta.chunks.len());
        let mut chunks = meta.chunks.iter();
        for (i, len) in lens.iter().enumerate() {
            let Ok(part) = u32::try_from(i) else { break };
            for c in chunks.by_ref().take(*len) {
                of_file.insert(c.id.as_str(), part);
            }
        }
        index.insert(meta.file_id.as_str(), of_file);
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(lost: bool) -> ServerStates {
        ServerStates {
            servers: Vec::new(),
            unregistered_lost: lost,
        }
    }

    fn meta(file_id: &str, chunks: usize) -> super::super::manifest::FileMeta {
        super::super::manifest::FileMeta {
            file_id: file_id.into(),
            size: chunks as u64,
            checksum: "crc32c:00000000".into(),
            chunk_size: 1,
            chunk_count: chunks as u64,
            mtime: 0,
            epoch: 1,
            chunks: (0..chunks)
                .map(|i| ChunkRef {
                    id: format!("{file_id}-{i}"),
                    len: 1,
                    checksum: "crc32c:00000000".into(),
                    replicas: Vec::new(),
                })
                .collect(),
            parts: 0,
            attrs: Default::default(),
        }
    }

    #[test]
    fn chunks_of_split_manifests_being_repaired_are_placed_in_their_parts() {
        let walked = namespace::Walk {
            files: vec![
                ("big".into(), meta("big", 5)),
                ("other".into(), meta("other", 3)),
                ("inline".into(), meta("inline", 2)),
            ],
            part_lens: HashMap::from([
                ("big".to_string(), vec![2, 3]),
                ("other".to_string(), vec![3]),
            ]),
        };
        let repair = |file_id: &str| {
            plan::Action::RepairFile(plan::FileRepair {
                path: file_id.into(),
                file_id: file_id.into(),
                chunks: Vec::new(),
            })
        };
        // "other" is split but has nothing to repair; "inline" has no parts.
        let index = part_index(&walked, &[repair("big"), repair("inline")]);
        assert_eq!(index.len(), 1);
        let mut got: Vec<(&str, u32)> = index["big"].iter().map(|(c, p)| (*c, *p)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("big-0", 0),
                ("big-1", 0),
                ("big-2", 1),
                ("big-3", 1),
                ("big-4", 1)
            ]
        );
    }

    #[test]
    fn a_new_leader_waits_the_warm_up() {
        let t0 = Instant::now();
        assert!(!warmed_up(t0, t0));
        assert!(!warmed_up(t0, t0 + WARM_UP - Duration::from_millis(1)));
        assert!(warmed_up(t0, t0 + WARM_UP));
    }

    #[test]
    fn an_idle_pass_is_due_on_a_new_epoch_changed_states_or_after_idle_pass() {
        let t0 = Instant::now();
        let last = LastPass {
            epoch: 3,
            at: t0,
            states: states(false),
        };
        let soon = t0 + Duration::from_secs(1);
        assert!(!last.stale(3, &states(false), soon));
        assert!(last.stale(4, &states(false), soon));
        assert!(last.stale(3, &states(true), soon));
        assert!(last.stale(3, &states(false), t0 + IDLE_PASS));
    }

    #[test]
    fn an_orphan_is_due_once_its_grace_ran_out() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(60);
        let held = HashMap::from([(
            Held {
                server: ServerId::new("a").unwrap(),
                chunk: "c".into(),
            },
            t0,
        )]);
        assert!(!orphan_due(
            &held,
            t0 + grace - Duration::from_secs(1),
            grace
        ));
        assert!(orphan_due(&held, t0 + grace, grace));
        assert!(!orphan_due(&HashMap::new(), t0 + grace, grace));
    }
}
