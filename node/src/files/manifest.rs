//! File manifests: what a file is made of and where its chunks live.
//!
//! A file's manifest is the data of its znode under `files/`. A manifest too large for one
//! znode keeps its chunk list in numbered parts under `manifests/<file_id>/`, written in the
//! same fenced transaction as the file node, so a reader sees all of it or none. The types
//! are in [`filegrid_proto::manifest`] (standby heads and tools read them too); how a list is
//! split is decided here.

/// Largest serialized chunk list kept inline in the file node; beyond this it is split into
/// parts. Well under ZooKeeper's 1 MB znode limit, leaving room for the rest of a transaction.
pub const INLINE_LIMIT: usize = 256 * 1024;
/// Largest serialized part.
pub const PART_LIMIT: usize = 512 * 1024;

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

/// Serialized size of a chunk list.
pub fn list_size(chunks: &[ChunkRef]) -> usize {
    serde_json::to_vec(chunks)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ServerId;

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
