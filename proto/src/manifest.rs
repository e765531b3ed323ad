//! File manifests as FileGrid stores them in ZooKeeper: a file's znode under `files/` holds an
//! [`Entry`]; a chunk list too large for it lives in numbered [`Part`]s under
//! `manifests/<file_id>/` (see `docs/zookeeper.md`).

use serde::{Deserialize, Serialize};

use crate::ids::ServerId;

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
