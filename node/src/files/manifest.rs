//! File manifests: what a file is made of and where its chunks live.
//!
//! A file's manifest is the data of its znode under `files/`. A manifest too large for one
//! znode keeps its chunk list in numbered parts under `manifests/<file_id>/`, written in the
//! same fenced transaction as the file node, so a reader sees all of it or none.

use serde::{Deserialize, Serialize};

use crate::ids::ServerId;

/// Largest serialized chunk list kept inline in the file node; beyond this it is split into
/// parts. Well under ZooKeeper's 1 MB znode limit, leaving room for the rest of a transaction.
pub const INLINE_LIMIT: usize = 256 * 1024;
/// Largest serialized part.
pub const PART_LIMIT: usize = 512 * 1024;

/// One chunk of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk id on the cluster servers: `<file_id>-<index>`.
    pub id: String,
    pub len: u64,
    /// `crc32c:<hex>`.
    pub checksum: String,
    /// Cluster servers holding a copy.
    pub replicas: Vec<ServerId>,
}

/// The data of a file node (or of a directory node, with `kind = dir`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default = "v1")]
    pub v: u32,
    pub kind: EntryKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileMeta>,
}

fn v1() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Dir,
    File,
}

/// What a file is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Unique per write: an overwrite gets a new id, hence new chunks.
    pub file_id: String,
    pub size: u64,
    /// CRC32C of the whole content, `crc32c:<hex>`.
    pub checksum: String,
    pub chunk_size: u64,
    pub chunk_count: u64,
    /// Unix milliseconds of the write.
    pub mtime: u64,
    /// Epoch of the leader that committed it.
    pub epoch: u64,
    /// The chunk list, when small enough to keep inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
    /// Number of parts under `manifests/<file_id>/` when the list is not inline.
    #[serde(default)]
    pub parts: u32,
}

impl Entry {
    pub fn dir() -> Self {
        Self {
            v: 1,
            kind: EntryKind::Dir,
            file: None,
        }
    }

    pub fn file(meta: FileMeta) -> Self {
        Self {
            v: 1,
            kind: EntryKind::File,
            file: Some(meta),
        }
    }
}

/// A part of a split chunk list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    #[serde(default = "v1")]
    pub v: u32,
    pub chunks: Vec<ChunkRef>,
}

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
