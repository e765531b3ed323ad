//! The chunk API's bodies (cluster servers, `/v1/chunks`). The reference is `docs/storage.md`.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;

/// A server of a pipeline that did not store the chunk, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The server's `host:port`.
    pub addr: String,
    /// Why, as a code the sender can act on (`storage_full`, `stale_epoch`, ...);
    /// [`ErrorCode::Unavailable`] when the hop could not be reached or gave no answer.
    #[serde(default = "unavailable")]
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub error: String,
}

fn unavailable() -> ErrorCode {
    ErrorCode::Unavailable
}

/// Answer to a chunk `PUT` and to a replicate request: who holds the chunk durably now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    /// The chunk.
    pub id: String,
    /// Its length in bytes.
    pub len: u64,
    /// Its checksum, `crc32c:<hex>`.
    pub checksum: String,
    /// Addresses of the servers that stored the chunk durably.
    pub stored: Vec<String>,
    /// Servers of the pipeline that did not store it.
    pub failed: Vec<Failure>,
    /// Each storing server's signed acknowledgement (on grids with a cluster secret); the
    /// head counts a replica only with an acknowledgement it can verify.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acks: Vec<Ack>,
}

/// A server's signature over (server id, chunk, checksum, length, epoch) of a copy it stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The server's `host:port`, as in `stored`.
    pub addr: String,
    /// The server's id.
    pub server: String,
    /// Hex HMAC-SHA256 under the server's key.
    pub sig: String,
}

/// One chunk in a block report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub id: String,
    pub len: u64,
    pub checksum: String,
    /// The scrubber or a read found it does not match its checksum.
    pub corrupt: bool,
}

/// Space figures of a cluster server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes taken by stored chunk files (data plus trailers).
    pub used_bytes: u64,
    /// The configured capacity limit, or the disk size when none is configured.
    pub capacity_bytes: u64,
    /// Bytes still writable: the smaller of what the capacity limit and the disk allow.
    pub free_bytes: u64,
    /// Number of stored chunks.
    pub chunks: u64,
}

/// `GET /v1/chunks`: every chunk with its length (the block report) and the space figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    pub chunks: Vec<ListEntry>,
    pub usage: Usage,
}

/// Body of `POST /v1/chunks/{id}/replicate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicateRequest {
    /// `host:port` of each server to copy to, in pipeline order.
    pub targets: Vec<String>,
    pub epoch: u64,
}

/// Most chunks one `POST /v1/chunk-deletions` may name: its body stays well under the
/// 64 KiB a signed body may have (ids are at most 128 bytes; the head's are about 40).
pub const MAX_DELETE_BATCH: usize = 256;

/// Body of `POST /v1/chunk-deletions`: chunks to delete at once, fenced like a single delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub epoch: u64,
    /// At most [`MAX_DELETE_BATCH`] chunk ids, each at most once.
    pub chunks: Vec<String>,
}

/// Answer to `POST /v1/chunk-deletions`: what became of each chunk named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResponse {
    /// Deleted, durably.
    pub deleted: Vec<String>,
    /// Not held here (nothing to delete).
    pub missing: Vec<String>,
    /// Not deleted, and why (the chunk may still be there).
    pub failed: Vec<DeleteFailure>,
}

/// A chunk a batch could not delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFailure {
    pub id: String,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_without_a_code_is_an_unreachable_hop() {
        let f: Failure = serde_json::from_str(r#"{"addr":"h:1","error":"gone"}"#).unwrap();
        assert_eq!(f.code, ErrorCode::Unavailable);
    }
}
