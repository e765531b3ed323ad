//! Deleting the orphans a plan found: per server in batches of
//! [`MAX_DELETE_BATCH`](filegrid_proto::chunk::MAX_DELETE_BATCH), one `POST
//! /v1/chunk-deletions` and one directory sync each, a few servers at a time. Overwrites
//! and deletes orphan three copies of every chunk they replace; one call and one sync per
//! copy could not keep up with a busy grid, and its disks would fill with orphans.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::plan::Held;
use crate::cluster::ChunkCallError;
use crate::files::DataPlane;
use crate::ids::ServerId;
use filegrid_proto::ErrorCode;
use filegrid_proto::chunk::MAX_DELETE_BATCH;

/// Servers whose orphans are deleted at the same time.
const PARALLEL_SERVERS: usize = 8;

/// `orphans` by server, each server's cut into batches of at most `max` chunk ids (at
/// least one), each chunk once.
pub fn batches(orphans: Vec<Held>, max: usize) -> BTreeMap<ServerId, Vec<Vec<String>>> {
    let mut by_server: BTreeMap<ServerId, Vec<String>> = BTreeMap::new();
    for h in orphans {
        by_server.entry(h.server).or_default().push(h.chunk);
    }
    by_server
        .into_iter()
        .map(|(server, mut chunks)| {
            chunks.sort_unstable();
            chunks.dedup();
            let cut = chunks.chunks(max.max(1)).map(<[String]>::to_vec).collect();
            (server, cut)
        })
        .collect()
}

/// Deletes `orphans` under `epoch`; returns those now gone (deleted, or not there any more).
/// A failure is logged and the chunk left for the next pass.
pub async fn delete(dp: &DataPlane, epoch: u64, orphans: Vec<Held>) -> Vec<Held> {
    let work = batches(orphans, MAX_DELETE_BATCH);
    let gone: Vec<Vec<Held>> = futures::stream::iter(work)
        .map(|(server, batches)| on_server(dp, epoch, server, batches))
        .buffer_unordered(PARALLEL_SERVERS)
        .collect()
        .await;
    let gone: Vec<Held> = gone.into_iter().flatten().collect();
    dp.metrics.orphans_deleted.inc_by(gone.len() as u64);
    gone
}

/// One server's batches, one after the other.
async fn on_server(
    dp: &DataPlane,
    epoch: u64,
    server: ServerId,
    batches: Vec<Vec<String>>,
) -> Vec<Held> {
    let Some(addr) = dp.addr_of(&server) else {
        return Vec::new();
    };
    let mut gone = Vec::new();
    let mut one_by_one = false;
    for batch in batches {
        if !one_by_one {
            match dp.chunks.delete_many(&addr, &batch, epoch).await {
                Ok(r) => {
                    if let Some(f) = r.failed.first() {
                        tracing::warn!(server_id = %server, failed = r.failed.len(), chunk = %f.id, error = %f.error, "cannot delete some orphaned chunks; the next pass tries again");
                    }
                    tracing::info!(
                        server_id = %server,
                        deleted = r.deleted.len(),
                        missing = r.missing.len(),
                        failed = r.failed.len(),
                        "deleted orphaned chunks"
                    );
                    gone.extend(r.deleted.into_iter().chain(r.missing).map(|chunk| Held {
                        server: server.clone(),
                        chunk,
                    }));
                    continue;
                }
                Err(e) if older_server(&e) => {
                    tracing::info!(server_id = %server, "the server has no batch deletion; deleting its orphans one by one");
                    one_by_one = true;
                }
                Err(e) => {
                    tracing::warn!(server_id = %server, error = %e, "cannot delete orphaned chunks; the next pass tries again");
                    return gone;
                }
            }
        }
        for chunk in batch {
            match dp.chunks.delete(&addr, &chunk, epoch).await {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::NotFound => {}
                Err(e) => {
                    tracing::warn!(server_id = %server, chunk = %chunk, error = %e, "cannot delete orphaned chunk; the next pass tries again");
                    return gone;
                }
            }
            gone.push(Held {
                server: server.clone(),
                chunk,
            });
        }
    }
    gone
}

/// Whether a batch call failed because the server predates it (a grid being upgraded).
fn older_server(e: &ChunkCallError) -> bool {
    matches!(e.code(), ErrorCode::NotFound | ErrorCode::MethodNotAllowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(server: &str, chunk: &str) -> Held {
        Held {
            server: ServerId::new(server).expect("valid id"),
            chunk: chunk.into(),
        }
    }

    #[test]
    fn orphans_go_by_server_in_batches_of_at_most_the_limit_each_once() {
        let mut orphans: Vec<Held> = (0..7).map(|i| held("a", &format!("c-{i}"))).collect();
        orphans.push(held("b", "x-0"));
        orphans.push(held("a", "c-3"));
        let b = batches(orphans, 3);
        let a = &b[&ServerId::new("a").expect("valid id")];
        assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
        let all: Vec<&String> = a.iter().flatten().collect();
        assert_eq!(all.len(), 7, "c-3 is named once");
        assert_eq!(
            b[&ServerId::new("b").expect("valid id")],
            [vec!["x-0".to_string()]]
        );
        assert!(batches(Vec::new(), 3).is_empty());
        // A limit of 0 still makes progress.
        assert_eq!(batches(vec![held("a", "c-0")], 0).len(), 1);
    }
}
