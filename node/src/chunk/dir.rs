//! What chunk writers and readers need of the directory they work in. The store implements
//! it, so `writer` and `reader` depend on this contract rather than on `store`, and the
//! modules of the chunk store form no import cycle (store -> writer/reader -> dir).

use std::io;
use std::path::{Path, PathBuf};

use super::blocks::BlockPool;
use super::error::StoreError;
use super::id::ChunkId;
use super::meta::ChunkMeta;
use super::space::Space;

pub(crate) trait ChunkDir: Send + Sync + std::fmt::Debug + 'static {
    /// Space accounting: writers reserve before they write.
    fn space(&self) -> &Space;
    /// Idle block buffers shared by chunk writers.
    fn blocks(&self) -> &BlockPool;
    /// Whether chunk writers should try `O_DIRECT` for whole blocks.
    fn direct_io(&self) -> bool;
    /// The file system refused `O_DIRECT`: write through the page cache from now on.
    fn disable_direct_io(&self, why: &io::Error);
    /// A fresh temp file path for a write of `id`, in the chunk directory.
    fn temp_path(&self, id: &ChunkId) -> PathBuf;
    /// Moves a finished, fsynced temp file into place and indexes it.
    fn install(&self, temp: &Path, meta: &ChunkMeta, reserved: u64) -> Result<(), StoreError>;
    /// Makes renames and removals in the chunk directory durable.
    fn sync_dir_blocking(&self) -> Result<(), StoreError>;
    /// Records that chunk `id` failed verification and tells subscribers.
    fn report_bad(&self, id: &ChunkId, reason: String);
}
