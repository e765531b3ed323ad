//! Errors of the chunk store.

use std::io;

use super::checksum::Checksum;
use super::id::ChunkId;

/// Everything a chunk store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No chunk with this id is stored.
    #[error("chunk {0} not found")]
    NotFound(ChunkId),
    /// The write would exceed the configured capacity or the free space of the disk.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The data received does not have the length the writer announced.
    #[error("chunk length mismatch: expected {expected} bytes, got {actual}")]
    LengthMismatch {
        /// Announced length.
        expected: u64,
        /// Bytes actually received (so far).
        actual: u64,
    },
    /// The data received does not match the checksum the writer announced.
    #[error("checksum mismatch: expected {expected}, computed {actual}")]
    ChecksumMismatch {
        /// Announced checksum.
        expected: Checksum,
        /// Checksum of the received data.
        actual: Checksum,
    },
    /// The requested byte range is not inside the chunk.
    #[error("range {start}..{end} is outside chunk {id} of {len} bytes")]
    RangeNotSatisfiable {
        /// The chunk.
        id: ChunkId,
        /// Requested start.
        start: u64,
        /// Requested end (exclusive).
        end: u64,
        /// Length of the chunk.
        len: u64,
    },
    /// A stored chunk failed verification: its bytes are not what was written.
    #[error("chunk {id} is corrupt: {reason}")]
    Corrupt {
        /// The damaged chunk.
        id: ChunkId,
        /// What verification found.
        reason: String,
    },
    /// An I/O error other than running out of space.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Wraps an I/O error, turning "no space left on device" and "disk quota exceeded"
    /// into [`StoreError::StorageFull`] so callers need to handle one case only.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                Self::StorageFull(format!("{context}: {source}"))
            }
            _ => Self::Io { context, source },
        }
    }
}
