//! Carries a [`Plan`](super::plan::Plan) out: copies through the cluster servers (throttled to
//! `repair_rate`), new replica lists through fenced manifest writes, drain marks through
//! [`drain`], orphan deletions through [`collect`]. The HTTP calls to cluster servers are the
//! small functions at the end of this file and [`collect`]'s, through the chunk client. Every
//! write is fenced with the pass's one [`Leadership`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::collect;
use super::drain;
use super::plan::{Action, ChunkCopy, ChunkRepair, CopyReason, FileRepair, Held};
use super::progress::Tracker;
use crate::cluster::ChunkCallError;
use crate::files::DataPlane;
use crate::files::namespace::{self, NsError};
use crate::files::servers::ServerInfo;
use crate::files::write::keep_verified;
use crate::ids::ServerId;
use crate::leadership::Leadership;
use filegrid_proto::chunk::{ListEntry, PutResponse, ReplicateRequest};

/// What carrying a plan out achieved, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub copies_made: u64,
    pub orphans_deleted: u64,
}

/// Does `actions` in order, orphan deletions last and together ([`collect`]). A failed copy,
/// drain mark or deletion is logged and skipped (the next pass plans it again); a failed
/// manifest write ends the pass.
pub async fn run(
    dp: &Arc<DataPlane>,
    lead: &Leadership,
    actions: Vec<Action>,
    unreferenced: &mut HashMap<Held, Instant>,
    progress: &mut Tracker<'_>,
    part_of: &(dyn Fn(&str, &str) -> Option<u32> + Sync),
) -> Result<Outcome, NsError> {
    let mut out = Outcome::default();
    let epoch = lead.epoch();
    let mut pacer = Pacer::new(dp.config.repair_rate, Instant::now());
    let mut orphans = Vec::new();
    for action in actions {
        match action {
            Action::Rewrite {
                chunk,
                checksum,
                from,
                to,
            } => rewrite(dp, epoch, &chunk, &checksum, &from, &to).await,
            Action::RepairFile(file) => {
                out.copies_made +=
                    repair_file(dp, lead, file, progress, &mut pacer, part_of).await?
            }
            Action::MarkDrained(id) => {
                if let Err(e) = drain::mark_drained(dp, lead, &id).await {
                    tracing::warn!(server_id = %id, error = %e, "cannot mark server drained");
                }
            }
            Action::DeleteOrphan(held) => orphans.push(held),
        }
    }
    for held in collect::delete(dp, epoch, orphans).await {
        out.orphans_deleted += 1;
        unreferenced.remove(&held);
    }
    Ok(out)
}

/// Read repair: rewrites the bad copies from the good one.
async fn rewrite(
    dp: &DataPlane,
    epoch: u64,
    chunk: &str,
    checksum: &str,
    from: &ServerId,
    to: &[ServerId],
) {
    let to: Vec<(ServerId, String)> = to
        .iter()
        .filter_map(|b| dp.addr_of(b).map(|a| (b.clone(), a)))
        .collect();
    let targets: Vec<String> = to.iter().map(|(_, a)| a.clone()).collect();
    let (Some(src), false) = (dp.addr_of(from), targets.is_empty()) else {
        return;
    };
    match replicate(dp, epoch, &src, chunk, checksum, &to).await {
        Ok(r) => {
            let (stored, failed) = rewrite_outcome(&targets, &r);
            dp.metrics
                .repairs
                .with_label_values(&[CopyReason::Read.label()])
                .inc_by(stored.len() as u64);
            if !stored.is_empty() {
                tracing::info!(chunk = %chunk, rewritten = ?stored, "read repair: rewrote bad copies from a good one");
            }
            if !failed.is_empty() {
                tracing::warn!(chunk = %chunk, failed = ?failed, "read repair failed on some servers; the next pass tries again");
            }
        }
        Err(e) => tracing::warn!(chunk = %chunk, error = %e, "read repair failed"),
    }
}

/// Which of `targets` a replicate answer says stored the chunk, and which did not (with
/// why): a target missing from `stored` failed, whether or not the answer lists it.
fn rewrite_outcome(targets: &[String], r: &PutResponse) -> (Vec<String>, Vec<String>) {
    let (stored, failed): (Vec<&String>, Vec<&String>) =
        targets.iter().partition(|t| r.stored.contains(t));
    let failed = failed
        .into_iter()
        .map(|t| match r.failed.iter().find(|f| &f.addr == t) {
            Some(f) => format!("{t}: {}", f.error),
            None => format!("{t}: not stored"),
        })
        .collect();
    (stored.into_iter().cloned().collect(), failed)
}

/// Makes the copies of one file (or of one slice of it, see [`super::schedule`]), then
/// records the new replica lists, rewriting only the manifest parts they change (see
/// [`namespace::update_chunks`]). Returns the number of copies made.
async fn repair_file(
    dp: &DataPlane,
    lead: &Leadership,
    file: FileRepair,
    progress: &mut Tracker<'_>,
    pacer: &mut Pacer,
    part_of: &(dyn Fn(&str, &str) -> Option<u32> + Sync),
) -> Result<u64, NsError> {
    let epoch = lead.epoch();
    let mut made = 0;
    let mut changes: BTreeMap<String, Vec<ServerId>> = BTreeMap::new();
    for step in file.chunks {
        match step {
            ChunkRepair::NoSource { chunk } => {
                tracing::error!(chunk = %chunk, path = %file.path, "no live replica left to copy from");
            }
            ChunkRepair::SetReplicas { chunk, replicas } => {
                changes.insert(chunk, replicas);
            }
            ChunkRepair::Copy(copy) => {
                // A failed copy leaves the chunk's replica list as it is.
                let copied = copy_chunk(dp, epoch, &copy, pacer).await;
                let n = copied.as_ref().map_or(0, |c| c.len() as u64);
                progress.copy_ended(copy.len, copy.to.len() as u64, n);
                let Some(copied) = copied else {
                    continue;
                };
                made += copied.len() as u64;
                if let Some(next) = copy.replicas.after(&copied) {
                    changes.insert(copy.chunk, next);
                }
            }
        }
    }
    if changes.is_empty() {
        return Ok(made);
    }
    let this_file = |chunk: &str| part_of(&file.file_id, chunk);
    let applied =
        match namespace::update_chunks(lead, &file.path, &file.file_id, &changes, &this_file).await
        {
            Ok(applied) => applied,
            // Logged where it was found; the other files' repairs go on.
            Err(NsError::TooLarge { .. }) => false,
            Err(e) => return Err(e),
        };
    if applied {
        tracing::info!(path = %file.path, chunks = changes.len(), "updated replica locations");
    }
    Ok(made)
}

/// Copies one chunk to its new servers; the servers that stored it, or `None` if the copy
/// failed.
async fn copy_chunk(
    dp: &DataPlane,
    epoch: u64,
    copy: &ChunkCopy,
    pacer: &mut Pacer,
) -> Option<Vec<ServerId>> {
    let src = dp.addr_of(&copy.from)?;
    let targets: Vec<(ServerId, String)> = copy
        .to
        .iter()
        .filter_map(|t| dp.addr_of(t).map(|a| (t.clone(), a)))
        .collect();
    if targets.is_empty() {
        return None;
    }
    match replicate(dp, epoch, &src, &copy.chunk, &copy.checksum, &targets).await {
        Ok(resp) => {
            let copied: Vec<ServerId> = targets
                .into_iter()
                .filter(|(_, a)| resp.stored.contains(a))
                .map(|(id, _)| id)
                .collect();
            dp.metrics
                .repairs
                .with_label_values(&[copy.reason.label()])
                .inc_by(copied.len() as u64);
            pacer.copied(copy.len * copied.len() as u64).await;
            Some(copied)
        }
        Err(e) => {
            tracing::warn!(chunk = %copy.chunk, error = %e, "re-replication copy failed");
            None
        }
    }
}

/// What every up server holds, and which of those chunks it marks corrupt; a server that
/// does not answer is left out.
pub async fn list_held(
    dp: &DataPlane,
    servers: &[ServerInfo],
) -> (BTreeMap<ServerId, Vec<String>>, HashSet<Held>) {
    let mut held = BTreeMap::new();
    let mut corrupt = HashSet::new();
    for s in servers.iter().filter(|s| s.is_up()) {
        match list_chunks(dp, &s.addr()).await {
            Ok(chunks) => {
                let mut ids = Vec::with_capacity(chunks.len());
                for c in chunks {
                    if c.corrupt {
                        corrupt.insert(Held {
                            server: s.id.clone(),
                            chunk: c.id.clone(),
                        });
                    }
                    ids.push(c.id);
                }
                held.insert(s.id.clone(), ids);
            }
            Err(e) => {
                tracing::warn!(server_id = %s.id, error = %e, "cannot read a server's block report")
            }
        }
    }
    (held, corrupt)
}

/// Keeps a pass's copies under `repair_rate` bytes per second. The budget is counted over a
/// window rather than per copy: a copy of a small chunk is due a pause far shorter than the
/// timer's millisecond, which per copy would round up and make the copies of a file of many
/// small chunks take many times longer than the rate allows.
struct Pacer {
    rate: u64,
    window_start: Instant,
    window_bytes: u64,
}

/// Pauses shorter than this are carried over to the next copy instead of slept.
const MIN_PAUSE: Duration = Duration::from_millis(5);
/// Unused budget kept from a slow stretch (failed copies, a slow server): no more than this,
/// so the copies after it do not burst far above the rate.
const MAX_CREDIT: Duration = Duration::from_secs(1);

/// What a pacer does after a copy: pause this long, or start a new window.
#[derive(Debug, PartialEq, Eq)]
enum Pace {
    Go,
    Pause(Duration),
    NewWindow,
}

/// The pause due once `bytes` were copied in a window open for `elapsed`, at `rate` bytes
/// per second.
fn pace(bytes: u64, rate: u64, elapsed: Duration) -> Pace {
    let due = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
    if due >= elapsed + MIN_PAUSE {
        Pace::Pause(due - elapsed)
    } else if elapsed > due + MAX_CREDIT {
        Pace::NewWindow
    } else {
        Pace::Go
    }
}

impl Pacer {
    fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate,
            window_start: now,
            window_bytes: 0,
        }
    }

    /// Counts `bytes` copied and sleeps as long as the rate requires.
    async fn copied(&mut self, bytes: u64) {
        self.window_bytes = self.window_bytes.saturating_add(bytes);
        let now = Instant::now();
        match pace(
            self.window_bytes,
            self.rate,
            now.saturating_duration_since(self.window_start),
        ) {
            Pace::Go => {}
            Pace::Pause(d) => tokio::time::sleep(d).await,
            Pace::NewWindow => *self = Self::new(self.rate, now),
        }
    }
}

// Calls to cluster servers, through the one chunk client.

/// Asks `source` to copy `chunk` to `targets` (`POST /v1/chunks/{id}/replicate`). With peer
/// signatures on, a target counts as stored only with its own valid acknowledgement of
/// `checksum` (what the manifest records), as for an upload: neither the source nor a
/// target can claim copies that were not made.
async fn replicate(
    dp: &DataPlane,
    epoch: u64,
    source: &str,
    chunk: &str,
    checksum: &str,
    targets: &[(ServerId, String)],
) -> Result<PutResponse, ChunkCallError> {
    let request = ReplicateRequest {
        targets: targets.iter().map(|(_, a)| a.clone()).collect(),
        epoch,
    };
    let resp = dp.chunks.replicate(source, chunk, &request).await?;
    Ok(match &dp.peers {
        Some(peers) => keep_verified(peers, targets, resp, checksum, epoch),
        None => resp,
    })
}

/// The chunks `addr` holds (`GET /v1/chunks`).
async fn list_chunks(dp: &DataPlane, addr: &str) -> Result<Vec<ListEntry>, ChunkCallError> {
    Ok(dp.chunks.list(addr).await?.chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegrid_proto::ErrorCode;
    use filegrid_proto::chunk::Failure;

    #[test]
    fn copies_pause_only_once_the_budget_is_a_few_milliseconds_ahead() {
        let rate = 64 << 20;
        // One 4 KiB copy is due 61 µs: no pause of its own.
        assert_eq!(pace(4096, rate, Duration::ZERO), Pace::Go);
        // 1 MiB copied at once is due about 15.6 ms.
        match pace(1 << 20, rate, Duration::from_millis(1)) {
            Pace::Pause(d) => {
                assert!(d > Duration::from_millis(14) && d < Duration::from_millis(15))
            }
            other => panic!("expected a pause, got {other:?}"),
        }
        // Behind the rate by less than the credit: go on.
        assert_eq!(pace(1 << 20, rate, Duration::from_millis(500)), Pace::Go);
        // Far behind (a slow stretch): the window starts again rather than allowing a burst.
        assert_eq!(pace(1 << 20, rate, Duration::from_secs(5)), Pace::NewWindow);
        // A zero rate is treated as one byte per second, not a division by zero.
        assert!(matches!(pace(10, 0, Duration::ZERO), Pace::Pause(_)));
    }

    #[test]
    fn a_rewrite_counts_only_the_targets_that_stored_it() {
        let targets = vec!["a:1".to_string(), "b:1".to_string(), "c:1".to_string()];
        let r = PutResponse {
            id: "x-0".into(),
            len: 1,
            checksum: "crc32c:00000000".into(),
            stored: vec!["a:1".into()],
            failed: vec![Failure {
                addr: "b:1".into(),
                code: ErrorCode::IoError,
                error: "is a directory".into(),
            }],
            acks: Vec::new(),
        };
        let (stored, failed) = rewrite_outcome(&targets, &r);
        assert_eq!(stored, ["a:1"]);
        assert_eq!(failed, ["b:1: is a directory", "c:1: not stored"]);
    }
}
