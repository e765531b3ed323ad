//! Durable, checksummed chunk storage on a local data directory.
//!
//! A chunk is an opaque blob named by a [`ChunkId`]. Each chunk is one file holding the
//! data followed by a fixed-size trailer with its length and CRC32C (see [`format`]), so
//! data and checksum become visible together with a single `rename`. Writes stream into a
//! temp file, are fsynced, renamed into place and the directory is fsynced before they are
//! reported as stored. Every read verifies the checksum; a background [`scrub`] pass
//! re-verifies everything at a configured rate.

mod blocks;
mod checksum;
mod dir;
mod dirsync;
mod error;
pub mod format;
mod id;
mod meta;
mod reader;
pub mod scrub;
mod space;
mod store;
mod writer;

pub use checksum::{Checksum, ChecksumParseError, Hasher};
pub use error::StoreError;
pub use id::{ChunkId, InvalidChunkId};
pub use reader::ChunkRead;
pub use scrub::{ScrubConfig, ScrubHandle, ScrubProgress};
pub use store::{BadChunk, ChunkEntry, ChunkMeta, ChunkStore, OpenReport, StoreConfig, Usage};
pub use writer::ChunkWriter;
