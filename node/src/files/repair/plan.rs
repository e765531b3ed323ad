//! The rules of a repair pass as one pure function: what the leader knows goes in (manifests,
//! servers, read-repair requests, what each server holds, the time), the work to do comes out.
//! No I/O and no clock, so every rule is tested with plain values; [`super::execute`] carries
//! the result out.
//!
//! Per chunk, each replica is *healthy* (up, not draining), *draining* (up, its server being
//! drained), *waiting* (down, but not for `dead_after` yet: it may come back) or *lost*. A
//! replica is also lost when it is *damaged*: its server's block report marks it corrupt (its
//! scrubber or a read found it so) or does not list it at all (its file is gone from disk). A
//! chunk short of `replication_factor` healthy-or-waiting copies is copied from a healthy (else
//! a draining) replica to servers chosen by [`placement::choose`], which may pick a damaged
//! replica's own server (the good copy then replaces the bad one in place); its new replica
//! list keeps the healthy, new and waiting copies, and the draining ones only while those are
//! too few.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use rand::Rng;

use super::drain;
use crate::files::DataConfig;
use crate::files::manifest::{ChunkRef, FileMeta};
use crate::files::placement::{self, Candidate};
use crate::files::servers::{self, ServerInfo};
use crate::ids::ServerId;

/// A bad or missing copy found by a read: the `bad` servers served it wrong, `good` served a
/// verified copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRepair {
    pub chunk: String,
    /// The checksum the manifest records: a rewritten copy counts only when its server
    /// acknowledges storing exactly this.
    pub checksum: String,
    pub good: ServerId,
    pub bad: Vec<ServerId>,
}

/// A chunk as one server holds it (what orphan collection looks at).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Held {
    pub server: ServerId,
    pub chunk: String,
}

/// Everything a pass decides on.
pub struct Input<'a> {
    /// Every file and its manifest, as walked from ZooKeeper.
    pub files: &'a [(String, FileMeta)],
    /// Every server this leader knows, registered or not.
    pub servers: &'a [ServerInfo],
    pub reads: &'a [ReadRepair],
    /// The chunk ids each up server reported; a server whose listing failed is absent.
    pub held: &'a BTreeMap<ServerId, Vec<String>>,
    /// The chunks the servers' block reports mark corrupt.
    pub corrupt: &'a HashSet<Held>,
    /// When each unreferenced chunk was first seen (the previous plan's `unreferenced`).
    pub first_seen: &'a HashMap<Held, Instant>,
    /// Chunks that parts of multipart uploads in progress hold: never orphans, on any server.
    pub pinned: &'a HashSet<String>,
    /// File ids of the uploads this leader is storing now (chunk ids are
    /// `<file_id>-<index>`): their chunks are never orphans, whatever their age. Taken after
    /// `held`, so a listed chunk whose upload is not here had finished storing.
    pub live_uploads: &'a HashSet<String>,
    pub now: Instant,
    /// When this head became leader: servers that manifests name but that never registered
    /// with it count as lost only once it has led for `dead_after`.
    pub leading_since: Instant,
    pub config: &'a DataConfig,
}

/// The work of one pass, in the order it is to be done.
#[derive(Debug)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub counts: Counts,
    /// Chunks held but referenced by no manifest on their server, with when each was first
    /// seen: the next pass's `first_seen`.
    pub unreferenced: HashMap<Held, Instant>,
}

/// What a pass found, for the report and the gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub files: u64,
    pub chunks: u64,
    /// Chunks with fewer healthy copies than `replication_factor`.
    pub under_replicated: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Read repair: rewrite the bad copies on `to` from `from`. The manifest keeps listing
    /// them, since they hold a good copy again once rewritten.
    Rewrite {
        chunk: String,
        checksum: String,
        from: ServerId,
        to: Vec<ServerId>,
    },
    /// Copies and new replica lists for the chunks of one file, then one fenced write.
    RepairFile(FileRepair),
    /// A draining server no manifest lists any more.
    MarkDrained(ServerId),
    /// An orphan past its grace.
    DeleteOrphan(Held),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileRepair {
    pub path: String,
    /// The manifest the plan saw: its update is skipped if the file was replaced meanwhile.
    pub file_id: String,
    pub chunks: Vec<ChunkRepair>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ChunkRepair {
    /// Copy the chunk to new servers, then record [`NextReplicas::after`] the copies made.
    Copy(ChunkCopy),
    /// Record a new replica list without copying (lost or no longer needed draining copies
    /// dropped).
    SetReplicas {
        chunk: String,
        replicas: Vec<ServerId>,
    },
    /// Short of copies, some lost, and no live replica left to copy from.
    NoSource { chunk: String },
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChunkCopy {
    pub chunk: String,
    pub len: u64,
    /// The checksum the manifest records: a copy counts only when its server acknowledges
    /// storing exactly this.
    pub checksum: String,
    pub from: ServerId,
    /// Servers that do not hold the chunk yet.
    pub to: Vec<ServerId>,
    pub reason: CopyReason,
    pub replicas: NextReplicas,
}

/// Why copies were made: the `reason` label of the repairs metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyReason {
    Dead,
    /// A replica its server found damaged or missing.
    Damaged,
    Decommission,
    Read,
    Under,
}

impl CopyReason {
    pub fn label(self) -> &'static str {
        match self {
            CopyReason::Dead => "dead",
            CopyReason::Damaged => "damaged",
            CopyReason::Decommission => "decommission",
            CopyReason::Read => "read",
            CopyReason::Under => "under",
        }
    }
}

/// How a chunk's replica list is rebuilt once its copies are made; which copies succeed is
/// only known then.
#[derive(Clone, Debug, PartialEq)]
pub struct NextReplicas {
    current: Vec<ServerId>,
    healthy: Vec<ServerId>,
    waiting: Vec<ServerId>,
    draining: Vec<ServerId>,
    replication_factor: usize,
}

impl NextReplicas {
    /// A list nothing changes, for tests of code that only carries copies around.
    #[cfg(test)]
    pub(crate) fn unchanged_for_tests() -> Self {
        Self {
            current: Vec::new(),
            healthy: Vec::new(),
            waiting: Vec::new(),
            draining: Vec::new(),
            replication_factor: 0,
        }
    }

    /// The replica list once `copied` hold a new copy: healthy, new and waiting copies, and
    /// draining ones while those are fewer than the replication factor. `None` if unchanged.
    pub fn after(&self, copied: &[ServerId]) -> Option<Vec<ServerId>> {
        let mut next = self.healthy.clone();
        next.extend(copied.iter().cloned());
        next.extend(self.waiting.iter().cloned());
        if next.len() < self.replication_factor {
            next.extend(self.draining.iter().cloned());
        }
        (next != self.current).then_some(next)
    }
}

/// Where one replica of a chunk stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Healthy,
    Draining,
    Waiting,
    Lost,
}

/// Decides the work of one pass. `rng` only spreads new copies (see [`placement::choose`]).
pub fn plan(input: &Input<'_>, rng: &mut impl Rng) -> Plan {
    let by_id: HashMap<&ServerId, &ServerInfo> = input.servers.iter().map(|s| (&s.id, s)).collect();
    let mut actions = Vec::new();
    let damaged = Damage::new(input.held, input.corrupt);

    // Read repairs first: they are cheap and were asked for. A copy the block reports show
    // damaged is left to the chunk's repair below, which replaces it.
    for rr in input.reads {
        let to: Vec<ServerId> = rr
            .bad
            .iter()
            .filter(|b| by_id.contains_key(b) && !damaged.of(b, &rr.chunk))
            .cloned()
            .collect();
        if by_id.contains_key(&rr.good) && !to.is_empty() {
            actions.push(Action::Rewrite {
                chunk: rr.chunk.clone(),
                checksum: rr.checksum.clone(),
                from: rr.good.clone(),
                to,
            });
        }
    }

    let standing = |id: &ServerId| -> Standing {
        let dead_after = input.config.dead_after;
        match by_id.get(id) {
            Some(s) if s.is_up() && drain::moves_off(s.drain) => Standing::Draining,
            Some(s) if s.is_up() => Standing::Healthy,
            Some(s) if s.is_dead_at(input.now, dead_after) => Standing::Lost,
            Some(_) => Standing::Waiting,
            None if input.now.saturating_duration_since(input.leading_since) >= dead_after => {
                Standing::Lost
            }
            None => Standing::Waiting,
        }
    };

    let mut candidates =
        servers::candidates(input.servers, input.config.replication_factor as usize);
    let mut counts = Counts {
        files: input.files.len() as u64,
        ..Counts::default()
    };
    // (server, chunk) pairs a manifest lists or this plan copies to: never orphans.
    let mut referenced: HashSet<(&ServerId, &str)> = HashSet::new();
    let mut copy_targets: HashSet<Held> = HashSet::new();
    for (path, meta) in input.files {
        let mut steps = Vec::new();
        for c in &meta.chunks {
            counts.chunks += 1;
            for r in &c.replicas {
                referenced.insert((r, c.id.as_str()));
            }
            let (step, under) = repair_chunk(
                c,
                &standing,
                &|r: &ServerId| damaged.of(r, &c.id),
                &mut candidates,
                input.config.replication_factor as usize,
                rng,
            );
            counts.under_replicated += u64::from(under);
            if let Some(step) = step {
                if let ChunkRepair::Copy(copy) = &step {
                    copy_targets.extend(copy.to.iter().map(|t| Held {
                        server: t.clone(),
                        chunk: c.id.clone(),
                    }));
                }
                steps.push(step);
            }
        }
        if !steps.is_empty() {
            actions.push(Action::RepairFile(FileRepair {
                path: path.clone(),
                file_id: meta.file_id.clone(),
                chunks: steps,
            }));
        }
    }

    // Draining ends when no manifest lists the server any more.
    let listed: HashSet<&ServerId> = referenced.iter().map(|(s, _)| *s).collect();
    for s in input.servers {
        if drain::ends(s.drain, listed.contains(&s.id)) {
            actions.push(Action::MarkDrained(s.id.clone()));
        }
    }

    // Orphans: held where no manifest places them, deleted once unreferenced for the grace
    // (longer than any upload, which stores chunks before its manifest is committed).
    let mut unreferenced = HashMap::new();
    for (server, chunks) in input.held {
        for chunk in chunks {
            if referenced.contains(&(server, chunk.as_str()))
                || input.pinned.contains(chunk)
                || uploading(input.live_uploads, chunk)
            {
                continue;
            }
            let key = Held {
                server: server.clone(),
                chunk: chunk.clone(),
            };
            if copy_targets.contains(&key) {
                continue;
            }
            let first = input.first_seen.get(&key).copied().unwrap_or(input.now);
            if input.now.saturating_duration_since(first) >= input.config.orphan_grace {
                actions.push(Action::DeleteOrphan(key.clone()));
            }
            unreferenced.insert(key, first);
        }
    }

    Plan {
        actions,
        counts,
        unreferenced,
    }
}

/// Whether `chunk` belongs to an upload still storing its chunks. Such a chunk is not
/// tracked as unreferenced at all, so once its upload ends (and commits, or fails) it gets a
/// whole grace from the next pass that sees it.
fn uploading(live_uploads: &HashSet<String>, chunk: &str) -> bool {
    crate::files::live::file_id_of(chunk).is_some_and(|f| live_uploads.contains(f))
}

/// Which replicas the servers' block reports show damaged: marked corrupt, or not listed
/// by a server whose listing was read (its file is gone). A server whose listing failed
/// tells nothing.
struct Damage<'a> {
    listed: HashMap<&'a ServerId, HashSet<&'a str>>,
    corrupt: &'a HashSet<Held>,
}

impl<'a> Damage<'a> {
    fn new(held: &'a BTreeMap<ServerId, Vec<String>>, corrupt: &'a HashSet<Held>) -> Self {
        let listed = held
            .iter()
            .map(|(s, chunks)| (s, chunks.iter().map(String::as_str).collect()))
            .collect();
        Self { listed, corrupt }
    }

    /// Whether `server`'s replica of `chunk` is damaged.
    fn of(&self, server: &ServerId, chunk: &str) -> bool {
        let gone = self
            .listed
            .get(server)
            .is_some_and(|chunks| !chunks.contains(chunk));
        gone || (!self.corrupt.is_empty()
            && self.corrupt.contains(&Held {
                server: server.clone(),
                chunk: chunk.into(),
            }))
    }
}

/// The step for one chunk, if any, and whether it is short of healthy copies.
fn repair_chunk(
    c: &ChunkRef,
    standing: &impl Fn(&ServerId) -> Standing,
    damaged: &dyn Fn(&ServerId) -> bool,
    candidates: &mut [Candidate],
    rf: usize,
    rng: &mut impl Rng,
) -> (Option<ChunkRepair>, bool) {
    let bad: Vec<&ServerId> = c.replicas.iter().filter(|r| damaged(r)).collect();
    let of = |want: Standing| -> Vec<ServerId> {
        c.replicas
            .iter()
            .filter(|r| !bad.contains(r) && standing(r) == want)
            .cloned()
            .collect()
    };
    let next = NextReplicas {
        current: c.replicas.clone(),
        healthy: of(Standing::Healthy),
        waiting: of(Standing::Waiting),
        draining: of(Standing::Draining),
        replication_factor: rf,
    };
    let lost = of(Standing::Lost);
    let under = next.healthy.len() < rf;
    let missing = rf.saturating_sub(next.healthy.len() + next.waiting.len());
    if missing == 0 {
        let step = next.after(&[]).map(|replicas| ChunkRepair::SetReplicas {
            chunk: c.id.clone(),
            replicas,
        });
        return (step, under);
    }
    let Some(from) = next.healthy.first().or(next.draining.first()).cloned() else {
        let step = (!lost.is_empty() || !bad.is_empty()).then(|| ChunkRepair::NoSource {
            chunk: c.id.clone(),
        });
        return (step, under);
    };
    // Placement never picks a server listed for the chunk, whatever its standing, except
    // one whose copy is damaged: a good copy may replace it there.
    let keep: Vec<ServerId> = c
        .replicas
        .iter()
        .filter(|r| !bad.contains(r))
        .cloned()
        .collect();
    let to = placement::choose(candidates, missing, &keep, c.len, rng);
    if to.is_empty() {
        return (None, under);
    }
    // Later chunks of this pass see the space these copies take.
    for cand in candidates.iter_mut().filter(|cand| to.contains(&cand.id)) {
        cand.free_bytes = cand.free_bytes.saturating_sub(c.len);
    }
    let reason = if !bad.is_empty() {
        CopyReason::Damaged
    } else if !next.draining.is_empty() {
        CopyReason::Decommission
    } else if !lost.is_empty() {
        CopyReason::Dead
    } else {
        CopyReason::Under
    };
    let copy = ChunkCopy {
        chunk: c.id.clone(),
        len: c.len,
        checksum: c.checksum.clone(),
        from,
        to,
        reason,
        replicas: next,
    };
    (Some(ChunkRepair::Copy(copy)), under)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::zk::records::DrainState;

    const DEAD_AFTER: Duration = Duration::from_secs(10);
    const GRACE: Duration = Duration::from_secs(60);

    fn sid(s: &str) -> ServerId {
        ServerId::new(s).unwrap()
    }

    fn sids(s: &[&str]) -> Vec<ServerId> {
        s.iter().map(|s| sid(s)).collect()
    }

    /// A test world: a clock, servers, manifests, listings.
    struct World {
        t0: Instant,
        now: Instant,
        leading_since: Instant,
        servers: Vec<ServerInfo>,
        files: Vec<(String, FileMeta)>,
        reads: Vec<ReadRepair>,
        held: BTreeMap<ServerId, Vec<String>>,
        corrupt: HashSet<Held>,
        first_seen: HashMap<Held, Instant>,
        pinned: HashSet<String>,
        live_uploads: HashSet<String>,
        config: DataConfig,
    }

    impl World {
        /// Up servers with plenty of room, a leader of long standing, replication factor 3.
        fn new(up: &[&str]) -> Self {
            let t0 = Instant::now();
            let now = t0 + Duration::from_secs(3600);
            let mut w = Self {
                t0,
                now,
                leading_since: t0,
                servers: Vec::new(),
                files: Vec::new(),
                reads: Vec::new(),
                held: BTreeMap::new(),
                corrupt: HashSet::new(),
                first_seen: HashMap::new(),
                pinned: HashSet::new(),
                live_uploads: HashSet::new(),
                config: DataConfig {
                    replication_factor: 3,
                    min_write_replicas: 2,
                    chunk_size: 1 << 20,
                    dead_after: DEAD_AFTER,
                    orphan_grace: GRACE,
                    repair_rate: 1 << 30,
                    hop_progress_timeout: Duration::from_secs(10),
                    max_file_size: 1 << 40,
                    max_uploads: 64,
                    read_cache_size: 0,
                    read_cache_max_chunk: 1 << 20,
                },
            };
            for id in up {
                w.servers.push(server(id));
            }
            w
        }

        fn server_mut(&mut self, id: &str) -> &mut ServerInfo {
            let id = sid(id);
            self.servers.iter_mut().find(|s| s.id == id).unwrap()
        }

        /// `id` lost its registration `ago` before now.
        fn gone(&mut self, id: &str, ago: Duration) -> &mut Self {
            let now = self.now;
            if !self.servers.iter().any(|s| s.id.as_str() == id) {
                self.servers.push(server(id));
            }
            let s = self.server_mut(id);
            s.registered = false;
            s.gone_since = Some(now - ago);
            self
        }

        fn drain(&mut self, id: &str, state: DrainState) -> &mut Self {
            self.server_mut(id).drain = Some(state);
            self
        }

        /// A file of one chunk per replica list; chunk ids are `<path>-<index>`.
        fn file(&mut self, path: &str, chunks: &[&[&str]]) -> &mut Self {
            let file_id = format!("{path}-id");
            let chunks = chunks
                .iter()
                .enumerate()
                .map(|(i, reps)| ChunkRef {
                    id: format!("{path}-{i}"),
                    len: 1000,
                    checksum: "crc32c:00000000".into(),
                    replicas: sids(reps),
                })
                .collect();
            self.files.push((
                path.into(),
                FileMeta {
                    file_id,
                    size: 1000,
                    checksum: "crc32c:00000000".into(),
                    chunk_size: 1000,
                    chunk_count: 1,
                    mtime: 0,
                    epoch: 1,
                    chunks,
                    parts: 0,
                    attrs: Default::default(),
                },
            ));
            self
        }

        fn holds(&mut self, server: &str, chunks: &[&str]) -> &mut Self {
            self.held
                .entry(sid(server))
                .or_default()
                .extend(chunks.iter().map(|c| c.to_string()));
            self
        }

        fn plan_seeded(&self, seed: u64) -> Plan {
            let input = Input {
                files: &self.files,
                servers: &self.servers,
                reads: &self.reads,
                held: &self.held,
                corrupt: &self.corrupt,
                first_seen: &self.first_seen,
                pinned: &self.pinned,
                live_uploads: &self.live_uploads,
                now: self.now,
                leading_since: self.leading_since,
                config: &self.config,
            };
            plan(&input, &mut StdRng::seed_from_u64(seed))
        }

        fn plan(&self) -> Plan {
            self.plan_seeded(7)
        }
    }

    fn server(id: &str) -> ServerInfo {
        ServerInfo::for_tests(sid(id))
    }

    fn file_steps(p: &Plan) -> Vec<&ChunkRepair> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::RepairFile(f) => Some(f),
                _ => None,
            })
            .flat_map(|f| f.chunks.iter())
            .collect()
    }

    fn copies(p: &Plan) -> Vec<&ChunkCopy> {
        file_steps(p)
            .into_iter()
            .filter_map(|s| match s {
                ChunkRepair::Copy(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn set_replicas(p: &Plan) -> Vec<(&str, &[ServerId])> {
        file_steps(p)
            .into_iter()
            .filter_map(|s| match s {
                ChunkRepair::SetReplicas { chunk, replicas } => {
                    Some((chunk.as_str(), replicas.as_slice()))
                }
                _ => None,
            })
            .collect()
    }

    fn drained(p: &Plan) -> Vec<&ServerId> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::MarkDrained(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn deleted(p: &Plan) -> Vec<&Held> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::DeleteOrphan(h) => Some(h),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_dead_servers_chunks_are_copied_from_a_live_replica_to_a_new_server() {
        let mut w = World::new(&["a", "b", "c", "d", "e"]);
        w.gone("f", DEAD_AFTER).file("x", &[&["a", "f", "b"]]);
        for seed in 0..50 {
            let p = w.plan_seeded(seed);
            let cs = copies(&p);
            assert_eq!(cs.len(), 1, "{p:?}");
            let c = cs[0];
            assert!(
                c.from == sid("a") || c.from == sid("b"),
                "source {:?}",
                c.from
            );
            assert_eq!(c.to.len(), 1, "one copy makes three again");
            assert!(
                ["c", "d", "e"].contains(&c.to[0].as_str()),
                "target {:?} already holds it or is dead",
                c.to
            );
            assert_eq!(c.reason, CopyReason::Dead);
            // The dead copy is dropped once the new one exists.
            let mut want = sids(&["a", "b"]);
            want.push(c.to[0].clone());
            assert_eq!(c.replicas.after(&c.to), Some(want));
            // A copy that reached nobody still drops the dead replica.
            assert_eq!(c.replicas.after(&[]), Some(sids(&["a", "b"])));
        }
        assert_eq!(w.plan().counts.under_replicated, 1);
    }

    #[test]
    fn copies_respect_the_replication_factor_and_never_target_a_holder() {
        let mut w = World::new(&["a", "b", "c", "d", "e"]);
        w.file("full", &[&["a", "b", "c"]])
            .file("one", &[&["a"]])
            .file("over", &[&["a", "b", "c", "d"]]);
        for seed in 0..50 {
            let p = w.plan_seeded(seed);
            let cs = copies(&p);
            assert_eq!(cs.len(), 1, "only the single copy is short: {p:?}");
            let c = cs[0];
            assert_eq!(c.chunk, "one-0");
            assert_eq!(c.from, sid("a"));
            assert_eq!(c.reason, CopyReason::Under);
            assert_eq!(c.to.len(), 2);
            assert_ne!(c.to[0], c.to[1]);
            assert!(!c.to.contains(&sid("a")));
            assert!(set_replicas(&p).is_empty(), "extra copies are left alone");
        }
        // With every live server holding a copy already, there is nowhere to copy to.
        let mut w = World::new(&["a", "b"]);
        w.gone("f", DEAD_AFTER * 2).file("x", &[&["a", "b", "f"]]);
        let p = w.plan();
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.counts.under_replicated, 1);
    }

    #[test]
    fn a_silent_server_is_waited_for_until_dead_after() {
        let mut w = World::new(&["a", "b", "c", "d"]);
        w.gone("f", DEAD_AFTER - Duration::from_secs(1))
            .file("x", &[&["a", "b", "f"]]);
        let p = w.plan();
        assert!(p.actions.is_empty(), "nothing copied yet: {p:?}");
        assert_eq!(p.counts.under_replicated, 1, "but counted as short");
        w.gone("f", DEAD_AFTER);
        let p = w.plan();
        let cs = copies(&p);
        assert_eq!(cs.len(), 1);
        assert!(cs[0].to == sids(&["c"]) || cs[0].to == sids(&["d"]));
    }

    #[test]
    fn servers_never_seen_count_as_lost_only_after_dead_after_of_leadership() {
        let mut w = World::new(&["a", "b", "c", "d"]);
        w.file("x", &[&["a", "b", "ghost"]]);
        w.leading_since = w.now - (DEAD_AFTER - Duration::from_secs(1));
        let p = w.plan();
        assert!(
            p.actions.is_empty(),
            "a new leader has not heard from every server yet: {p:?}"
        );
        w.leading_since = w.now - DEAD_AFTER;
        let p = w.plan();
        let cs = copies(&p);
        assert_eq!(cs.len(), 1, "{p:?}");
        assert_eq!(cs[0].reason, CopyReason::Dead);
        assert!(!cs[0].to.contains(&sid("ghost")));
    }

    #[test]
    fn a_silent_replica_counts_towards_the_factor_but_is_not_a_source() {
        let mut w = World::new(&["c", "d"]);
        w.gone("a", Duration::from_secs(1))
            .gone("b", Duration::from_secs(1))
            .gone("f", DEAD_AFTER)
            .file("x", &[&["a", "b", "f"]]);
        let p = w.plan();
        let cs = copies(&p);
        assert!(cs.is_empty(), "no live source: {p:?}");
        assert_eq!(
            file_steps(&p),
            [&ChunkRepair::NoSource {
                chunk: "x-0".into()
            }],
            "a lost copy with no source is reported"
        );
        // Without a lost copy it is only waiting, and nothing is reported.
        let mut w = World::new(&["c", "d"]);
        w.gone("a", Duration::from_secs(1)).file("x", &[&["a"]]);
        assert!(w.plan().actions.is_empty());
    }

    #[test]
    fn bad_copies_found_by_reads_are_rewritten_from_the_good_one() {
        let mut w = World::new(&["a", "b", "c"]);
        w.file("x", &[&["a", "b", "c"]]);
        w.reads = vec![
            ReadRepair {
                chunk: "x-0".into(),
                checksum: "crc32c:00000000".into(),
                good: sid("c"),
                bad: sids(&["a", "unknown", "b"]),
            },
            // A good copy on a server this leader does not know cannot be copied from.
            ReadRepair {
                chunk: "x-0".into(),
                checksum: "crc32c:00000000".into(),
                good: sid("unknown"),
                bad: sids(&["a"]),
            },
        ];
        let p = w.plan();
        assert_eq!(
            p.actions,
            [Action::Rewrite {
                chunk: "x-0".into(),
                checksum: "crc32c:00000000".into(),
                from: sid("c"),
                to: sids(&["a", "b"]),
            }],
            "rewritten in place from the verified copy; the manifest is unchanged"
        );
        // A bad copy whose server is lost is dropped, and replaced from the good copy.
        w.servers.push(server("d"));
        w.gone("a", DEAD_AFTER);
        w.reads.truncate(1);
        let p = w.plan();
        let cs = copies(&p);
        assert_eq!(cs.len(), 1);
        assert!(cs[0].from == sid("b") || cs[0].from == sid("c"));
        assert_eq!(cs[0].to, sids(&["d"]));
        assert_eq!(
            cs[0].replicas.after(&cs[0].to),
            Some(sids(&["b", "c", "d"]))
        );
    }

    #[test]
    fn a_replica_reported_corrupt_or_missing_is_replaced_from_a_good_copy() {
        // Corrupt on b: the block report marks it.
        let mut w = World::new(&["a", "b", "c", "d"]);
        w.file("x", &[&["a", "b", "c"]])
            .holds("a", &["x-0"])
            .holds("b", &["x-0"])
            .holds("c", &["x-0"]);
        w.corrupt.insert(Held {
            server: sid("b"),
            chunk: "x-0".into(),
        });
        for seed in 0..50 {
            let p = w.plan_seeded(seed);
            let cs = copies(&p);
            assert_eq!(cs.len(), 1, "{p:?}");
            let c = cs[0];
            assert_eq!(c.reason, CopyReason::Damaged);
            assert!(c.from == sid("a") || c.from == sid("c"), "never from b");
            assert_eq!(c.to.len(), 1);
            // The bad copy's server may take the good copy in place, or another server.
            assert!(c.to == sids(&["b"]) || c.to == sids(&["d"]), "{:?}", c.to);
            let mut want = sids(&["a", "c"]);
            want.push(c.to[0].clone());
            assert_eq!(
                c.replicas.after(&c.to),
                Some(want),
                "the bad copy is dropped"
            );
            assert_eq!(p.counts.under_replicated, 1);
        }
        // Missing on c: c's listing was read and does not hold it.
        let mut w = World::new(&["a", "b", "c"]);
        w.file("x", &[&["a", "b", "c"]])
            .holds("a", &["x-0"])
            .holds("b", &["x-0"])
            .holds("c", &["other-0"]);
        let p = w.plan();
        let cs = copies(&p);
        assert_eq!(cs.len(), 1, "{p:?}");
        assert_eq!(cs[0].to, sids(&["c"]), "rewritten where it went missing");
        assert_eq!(cs[0].reason, CopyReason::Damaged);
        assert_eq!(cs[0].replicas.after(&[]), Some(sids(&["a", "b"])));
        // A server whose listing failed tells nothing: no copy.
        w.held.remove(&sid("c"));
        assert!(w.plan().actions.is_empty());
        // Every copy damaged: nothing to copy from, and it is said.
        let mut w = World::new(&["a", "b", "c"]);
        w.file("x", &[&["a", "b"]]).holds("a", &[]).holds("b", &[]);
        assert_eq!(
            file_steps(&w.plan()),
            [&ChunkRepair::NoSource {
                chunk: "x-0".into()
            }]
        );
    }

    #[test]
    fn a_read_repair_of_a_copy_the_block_report_shows_damaged_is_left_to_the_copy() {
        let mut w = World::new(&["a", "b", "c"]);
        w.file("x", &[&["a", "b", "c"]])
            .holds("a", &["x-0"])
            .holds("b", &[])
            .holds("c", &["x-0"]);
        w.reads = vec![ReadRepair {
            chunk: "x-0".into(),
            checksum: "crc32c:00000000".into(),
            good: sid("a"),
            bad: sids(&["b"]),
        }];
        let p = w.plan();
        assert!(
            !p.actions
                .iter()
                .any(|a| matches!(a, Action::Rewrite { .. })),
            "{p:?}"
        );
        assert_eq!(copies(&p).len(), 1);
    }

    #[test]
    fn draining_moves_copies_off_and_ends_only_when_nothing_depends_on_the_server() {
        let mut w = World::new(&["a", "b", "c", "d", "e"]);
        w.drain("c", DrainState::Draining)
            .file("x", &[&["a", "b", "c"], &["a", "b", "d"]])
            .file("y", &[&["c", "e", "d"]]);
        for seed in 0..50 {
            let p = w.plan_seeded(seed);
            assert!(drained(&p).is_empty(), "c is still listed: {p:?}");
            let cs = copies(&p);
            assert_eq!(cs.len(), 2, "{p:?}");
            for c in &cs {
                assert_eq!(c.reason, CopyReason::Decommission);
                assert!(!c.to.contains(&sid("c")), "no copies to a draining server");
                assert_eq!(c.to.len(), 1);
            }
            // A healthy replica is preferred as the source.
            assert_eq!(cs[0].from, sid("a"));
            assert_ne!(cs[1].from, sid("c"));
            // c is dropped once its replacement exists, kept while it does not.
            let x = cs[0];
            let mut want = sids(&["a", "b"]);
            want.push(x.to[0].clone());
            assert_eq!(x.replicas.after(&x.to), Some(want));
            assert_eq!(x.replicas.after(&[]), None, "kept: the only third copy");
        }
        // The only live copy on a draining server is still copied from.
        let mut w = World::new(&["a", "b", "c"]);
        w.drain("c", DrainState::Draining)
            .gone("f", DEAD_AFTER)
            .file("x", &[&["c", "f"]]);
        let cs = copies(&w.plan()).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].from, sid("c"));
        assert_eq!(cs[0].to.len(), 2);
        // Enough copies elsewhere: the draining one is dropped without copying.
        let mut w = World::new(&["a", "b", "c", "d"]);
        w.drain("d", DrainState::Draining)
            .file("x", &[&["a", "d", "b", "c"]]);
        let p = w.plan();
        assert!(copies(&p).is_empty());
        assert_eq!(
            set_replicas(&p),
            [("x-0", sids(&["a", "b", "c"]).as_slice())]
        );
        assert!(
            drained(&p).is_empty(),
            "the manifest still lists d this pass"
        );
        // Once no manifest lists it, it is drained; a drained server is not marked again.
        let mut w = World::new(&["a", "b", "c", "d", "e"]);
        w.drain("d", DrainState::Draining)
            .drain("e", DrainState::Drained)
            .file("x", &[&["a", "b", "c"]]);
        let p = w.plan();
        assert_eq!(drained(&p), [&sid("d")]);
        assert_eq!(p.actions.len(), 1, "{p:?}");
    }

    #[test]
    fn orphans_are_deleted_after_their_grace_and_never_when_referenced() {
        let mut w = World::new(&["a", "b", "c", "d"]);
        w.file("x", &[&["a", "b", "c"]])
            .holds("a", &["x-0", "old-0"])
            .holds("d", &["x-0"]);
        let orphan_a = Held {
            server: sid("a"),
            chunk: "old-0".into(),
        };
        // On d, x-0 is an orphan too: no manifest places it there.
        let orphan_d = Held {
            server: sid("d"),
            chunk: "x-0".into(),
        };
        // First seen now: tracked, not deleted.
        let p = w.plan();
        assert!(deleted(&p).is_empty(), "{p:?}");
        assert_eq!(p.unreferenced.get(&orphan_a), Some(&w.now));
        assert_eq!(p.unreferenced.get(&orphan_d), Some(&w.now));
        assert_eq!(p.unreferenced.len(), 2, "x-0 on a is referenced");
        // Just short of the grace: kept, and its first sighting is remembered.
        let almost = w.now - (GRACE - Duration::from_secs(1));
        w.first_seen = HashMap::from([(orphan_a.clone(), almost), (orphan_d.clone(), almost)]);
        let p = w.plan();
        assert!(deleted(&p).is_empty());
        assert_eq!(p.unreferenced.get(&orphan_a), Some(&almost));
        // After the grace: deleted.
        w.first_seen = HashMap::from([(orphan_a.clone(), w.t0), (orphan_d.clone(), w.t0)]);
        let p = w.plan();
        assert_eq!(deleted(&p), [&orphan_a, &orphan_d]);
        // A referenced chunk is never deleted, however long it was tracked.
        w.first_seen.insert(
            Held {
                server: sid("a"),
                chunk: "x-0".into(),
            },
            w.t0,
        );
        let p = w.plan();
        assert!(
            !deleted(&p)
                .iter()
                .any(|h| h.server == sid("a") && h.chunk == "x-0")
        );
        // A server that did not answer its listing keeps nothing tracked.
        w.held.remove(&sid("a"));
        let p = w.plan();
        assert!(!p.unreferenced.contains_key(&orphan_a));
    }

    #[test]
    fn chunks_of_multipart_uploads_in_progress_are_never_orphans() {
        let mut w = World::new(&["a", "b", "c"]);
        w.holds("a", &["part-0", "gone-0"]).holds("b", &["part-0"]);
        w.first_seen = HashMap::from([
            (
                Held {
                    server: sid("a"),
                    chunk: "part-0".into(),
                },
                w.t0,
            ),
            (
                Held {
                    server: sid("b"),
                    chunk: "part-0".into(),
                },
                w.t0,
            ),
            (
                Held {
                    server: sid("a"),
                    chunk: "gone-0".into(),
                },
                w.t0,
            ),
        ]);
        w.pinned = HashSet::from(["part-0".to_string()]);
        let p = w.plan();
        let gone: Vec<&str> = deleted(&p).iter().map(|h| h.chunk.as_str()).collect();
        assert_eq!(gone, ["gone-0"], "{p:?}");
        assert!(p.unreferenced.keys().all(|h| h.chunk != "part-0"));
    }

    #[test]
    fn chunks_of_uploads_in_progress_are_never_orphans_and_get_a_grace_after() {
        let mut w = World::new(&["a", "b", "c"]);
        // "slow" has been uploading for far longer than the grace; "done" finished.
        w.holds("a", &["slow-0", "slow-1", "done-0"])
            .holds("b", &["slow-0"]);
        let seen_long_ago = |server: &str, chunk: &str| {
            (
                Held {
                    server: sid(server),
                    chunk: chunk.into(),
                },
                w.t0,
            )
        };
        w.first_seen = HashMap::from([seen_long_ago("a", "slow-0"), seen_long_ago("a", "done-0")]);
        w.live_uploads = HashSet::from(["slow".to_string()]);
        let p = w.plan();
        let gone: Vec<&str> = deleted(&p).iter().map(|h| h.chunk.as_str()).collect();
        assert_eq!(gone, ["done-0"], "{p:?}");
        assert!(
            p.unreferenced.keys().all(|h| !h.chunk.starts_with("slow-")),
            "a live upload's chunks are not tracked: {p:?}"
        );
        // Its upload ended without a commit: the chunks are orphans from now on, deleted only
        // once a whole grace has passed.
        w.held.get_mut(&sid("a")).unwrap().retain(|c| c != "done-0");
        w.live_uploads.clear();
        w.first_seen = p.unreferenced;
        let p = w.plan();
        assert!(deleted(&p).is_empty(), "{p:?}");
        assert_eq!(p.unreferenced.len(), 3);
        w.first_seen = p.unreferenced;
        w.now += GRACE;
        let p = w.plan();
        assert_eq!(deleted(&p).len(), 3, "{p:?}");
    }

    #[test]
    fn a_stale_copy_on_a_server_chosen_for_a_new_copy_is_not_deleted() {
        let mut w = World::new(&["a", "b", "c"]);
        w.gone("f", DEAD_AFTER)
            .file("x", &[&["a", "b", "f"]])
            .holds("c", &["x-0"]);
        w.first_seen = HashMap::from([(
            Held {
                server: sid("c"),
                chunk: "x-0".into(),
            },
            w.t0,
        )]);
        let p = w.plan();
        assert_eq!(copies(&p)[0].to, sids(&["c"]));
        assert!(deleted(&p).is_empty(), "{p:?}");
    }

    #[test]
    fn new_copies_account_for_the_space_they_take() {
        let mut w = World::new(&["a", "b", "c", "d"]);
        for id in ["c", "d"] {
            w.server_mut(id).free_bytes = 1500;
        }
        w.file("x", &[&["a", "b"], &["a", "b"], &["a", "b"]]);
        let p = w.plan();
        let cs = copies(&p);
        assert_eq!(cs.len(), 2, "room for one 1000-byte copy on each: {p:?}");
        assert_ne!(cs[0].to, cs[1].to);
        assert_eq!(p.counts.under_replicated, 3);
    }

    #[test]
    fn counts_files_and_chunks() {
        let mut w = World::new(&["a", "b", "c"]);
        w.file("x", &[&["a", "b", "c"], &["a", "b", "c"]])
            .file("y", &[&["a", "b"]]);
        let p = w.plan();
        assert_eq!(
            p.counts,
            Counts {
                files: 2,
                chunks: 3,
                under_replicated: 1
            }
        );
    }
}
