//! What identifies a stored chunk's content: its id, length and checksum.

use super::checksum::Checksum;
use super::id::ChunkId;

/// Length and checksum of one stored chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// The chunk.
    pub id: ChunkId,
    /// Length of the chunk data in bytes.
    pub len: u64,
    /// Checksum of the chunk data.
    pub checksum: Checksum,
}
