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
    /// A directory kept when its last file goes: an S3 bucket (made by CreateBucket).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bucket: bool,
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
    /// What the S3 API stores beside the bytes (ETag, content headers, user metadata);
    /// empty for files written through the native API.
    #[serde(default, skip_serializing_if = "ObjectAttrs::is_empty")]
    pub attrs: ObjectAttrs,
}

/// Attributes of an object written through the S3 API, returned on its reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    /// The S3 ETag without quotes: the MD5 of the content (hex) for a single-part upload,
    /// `<md5 of the parts' MD5s>-<parts>` for a multipart one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-*` headers, names lower-case without the prefix.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub user: std::collections::BTreeMap<String, String>,
    /// A checksum the client sent (`x-amz-checksum-<algorithm>`), verified on upload:
    /// the algorithm (`crc32`, `crc32c`, `crc64nvme`, `sha1`, `sha256`) and its base64 value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(String, String)>,
    /// A multipart object's part sizes, in order, as runs of equal sizes (`[size, count]`):
    /// what `partNumber` reads cut it by. Empty for an object not uploaded in parts (and for
    /// multipart objects completed before the sizes were kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_runs: Vec<(u64, u32)>,
}

impl ObjectAttrs {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Entry {
    pub fn dir() -> Self {
        Self {
            v: 1,
            kind: EntryKind::Dir,
            file: None,
            bucket: false,
        }
    }

    /// The directory of an S3 bucket.
    pub fn bucket() -> Self {
        Self {
            bucket: true,
            ..Self::dir()
        }
    }

    pub fn file(meta: FileMeta) -> Self {
        Self {
            v: 1,
            kind: EntryKind::File,
            file: Some(meta),
            bucket: false,
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

/// `uploads/<upload_id>`: a multipart upload in progress (S3 API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub bucket: String,
    pub key: String,
    /// Unix milliseconds.
    pub created: u64,
    /// What the completed object will carry (its ETag is set on completion).
    #[serde(default, skip_serializing_if = "ObjectAttrs::is_empty")]
    pub attrs: ObjectAttrs,
}

/// `uploads/<upload_id>/<part>`: one stored part; its chunks become the object's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub size: u64,
    /// MD5 of the part (hex), its S3 ETag.
    pub md5: String,
    /// CRC32C of the part, combined into the object's checksum on completion.
    pub crc32c: u32,
    /// Unix milliseconds.
    pub mtime: u64,
    pub chunks: Vec<ChunkRef>,
}
