//! File manifests: what a file is made of and where its chunks live.
//!
//! A file's manifest is the data of its znode under `files/`. A manifest too large for one
//! znode keeps its chunk list in numbered parts under `manifests/<file_id>/`, written in the
//! same fenced transaction as the file node, so a reader sees all of it or none. The types
//! are in [`filegrid_proto::manifest`] (standby heads and tools read them too); how a list is
//! split, which part holds a chunk, and how writes are grouped into requests ZooKeeper
//! accepts are decided here.
//!
//! Every write of a manifest stays under [`REQUEST_LIMIT`]: a commit creates each part in a
//! request of its own, a repair rewrites only the parts whose chunks changed (each in its own
//! request), and a delete removes the parts in batches.

/// Largest serialized chunk list kept inline in the file node; beyond this it is split into
/// parts. Well under ZooKeeper's 1 MB znode limit, leaving room for the rest of a transaction.
pub const INLINE_LIMIT: usize = 256 * 1024;
/// Largest serialized part at commit. A quarter of [`REQUEST_LIMIT`]: a repair may lengthen
/// the replica lists of a part's chunks (server ids of up to 64 characters where shorter ones
/// were), and the rewritten part must still fit in one request.
pub const PART_LIMIT: usize = 256 * 1024;

/// Largest request FileGrid sends to ZooKeeper, below ZooKeeper's own default limit
/// (`jute.maxbuffer`, 1 MiB - 1): ZooKeeper drops the connection of a client whose request
/// is larger, which would cost the leader its connection, not just the write.
pub const REQUEST_LIMIT: usize = 1_000_000;

/// What one operation of a multi-op adds to a request beyond its path and data: the
/// operation header, lengths, version, ACL and flags (generously rounded up).
pub const OP_OVERHEAD: usize = 256;

use std::collections::{BTreeMap, HashSet};

use crate::ids::ServerId;

pub use filegrid_proto::manifest::{ChunkRef, Entry, EntryKind, FileMeta, ObjectAttrs, Part};

/// Splits `chunks` so that each part serializes under `limit` bytes.
pub fn split(chunks: &[ChunkRef], limit: usize) -> Vec<Vec<ChunkRef>> {
    let mut parts = Vec::new();
    let mut cur: Vec<ChunkRef> = Vec::new();
    let mut size = 32;
    for c in chunks {
        let n = serde_json::to_vec(c).map(|v| v.len() + 1).unwrap_or(256);
        if !cur.is_empty() && size + n > limit {
            parts.push(std::mem::take(&mut cur));
            size = 32;
        }
        size += n;
        cur.push(c.clone());
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

/// Groups operations of the given sizes (in order) into consecutive batches, each totalling
/// at most `limit` bytes once `reserved` (what every request carries anyway: the fence's
/// checks) is counted. An operation larger than that on its own gets a batch of its own
/// (ZooKeeper will refuse it; the caller checks sizes it can control before).
pub fn batches(sizes: &[usize], reserved: usize, limit: usize) -> Vec<std::ops::Range<usize>> {
    let room = limit.saturating_sub(reserved);
    let mut out = Vec::new();
    let mut start = 0;
    let mut total = 0usize;
    for (i, &n) in sizes.iter().enumerate() {
        if i > start && total.saturating_add(n) > room {
            out.push(start..i);
            start = i;
            total = 0;
        }
        total = total.saturating_add(n);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// Sets the replica lists `changes` gives (by chunk id) on the chunks of `chunks` it names,
/// and adds their ids to `found`. Whether any list changed.
pub fn set_replicas(
    chunks: &mut [ChunkRef],
    changes: &BTreeMap<String, Vec<ServerId>>,
    found: &mut HashSet<String>,
) -> bool {
    let mut changed = false;
    for c in chunks.iter_mut() {
        if let Some(r) = changes.get(&c.id) {
            found.insert(c.id.clone());
            if c.replicas != *r {
                c.replicas = r.clone();
                changed = true;
            }
        }
    }
    changed
}

/// Serialized size of a chunk list.
pub fn list_size(chunks: &[ChunkRef]) -> usize {
    serde_json::to_vec(chunks)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(i: usize) -> ChunkRef {
        ChunkRef {
            id: format!("f00d-{i}"),
            len: 8 << 20,
            checksum: "crc32c:01234567".into(),
            replicas: vec![
                ServerId::new("cluster_server_1").unwrap(),
                ServerId::new("cluster_server_2").unwrap(),
                ServerId::new("cluster_server_3").unwrap(),
            ],
        }
    }

    #[test]
    fn batches_stay_under_the_limit_and_keep_order() {
        let sizes = [400, 300, 300, 100, 900, 50];
        let b = batches(&sizes, 100, 1000);
        assert_eq!(b, vec![0..2, 2..4, 4..5, 5..6]);
        for r in &b {
            assert!(100 + sizes[r.clone()].iter().sum::<usize>() <= 1000);
        }
        // Every operation is in exactly one batch, in order.
        let flat: Vec<usize> = b.into_iter().flatten().collect();
        assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
    }

    #[test]
    fn an_operation_too_large_alone_gets_its_own_batch() {
        assert_eq!(batches(&[10, 5000, 10], 0, 1000), vec![0..1, 1..2, 2..3]);
        assert_eq!(batches(&[], 0, 1000), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches(&[1; 5], 0, 1000), vec![0..5]);
    }

    #[test]
    fn a_part_of_a_200_000_chunk_manifest_fits_a_request_even_with_longer_replica_ids() {
        let chunks: Vec<_> = (0..200_000).map(chunk).collect();
        let parts = split(&chunks, PART_LIMIT);
        assert!(
            list_size(&chunks) > REQUEST_LIMIT,
            "the whole list would not fit"
        );
        for p in &parts {
            // Every replica id as long as ids may be after a repair: the part still fits.
            let longer: Vec<ChunkRef> = p
                .iter()
                .map(|c| ChunkRef {
                    replicas: (0..3)
                        .map(|i| ServerId::new(format!("{i}").repeat(64)).unwrap())
                        .collect(),
                    ..c.clone()
                })
                .collect();
            assert!(list_size(&longer) + OP_OVERHEAD * 4 < REQUEST_LIMIT);
        }
    }

    #[test]
    fn replica_lists_are_set_only_on_the_chunks_named() {
        let mut chunks: Vec<_> = (0..4).map(chunk).collect();
        let new = vec![ServerId::new("cluster_server_9").unwrap()];
        let changes = BTreeMap::from([
            ("f00d-1".to_string(), new.clone()),
            ("f00d-7".to_string(), new.clone()),
        ]);
        let mut found = HashSet::new();
        assert!(set_replicas(&mut chunks, &changes, &mut found));
        assert_eq!(chunks[1].replicas, new);
        assert_eq!(chunks[0], chunk(0));
        assert_eq!(chunks[2], chunk(2));
        assert_eq!(found, HashSet::from(["f00d-1".to_string()]));
        // Setting the same lists again changes nothing.
        assert!(!set_replicas(&mut chunks, &changes, &mut found));
    }

    #[test]
    fn split_keeps_order_and_limits() {
        let chunks: Vec<_> = (0..5000).map(chunk).collect();
        let parts = split(&chunks, 64 * 1024);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(list_size(p) < 64 * 1024);
        }
        let joined: Vec<_> = parts.concat();
        assert_eq!(joined, chunks);
    }
}
