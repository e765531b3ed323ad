//! Streamed chunk writes: temp file, checksum while writing, fsync, rename, fsync of the directory.
//!
//! Incoming pieces are gathered into aligned blocks of [`BLOCK`] bytes; each whole block is
//! written by a blocking task while the next one fills (one write in flight, two buffers that
//! take turns). Whole blocks go to the disk with `O_DIRECT`: a chunk is written once and read
//! rarely, so copying it into the page cache only costs CPU and leaves gigabytes of dirty
//! pages for one big flush at fsync time. Where the file system refuses `O_DIRECT`, blocks go
//! through the page cache and their writeback is started at once (`sync_file_range`). The
//! tail (the last partial block and the trailer), the fsync, the rename and the directory
//! sync run as one blocking task.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::OFlags;
use tokio::task::JoinHandle;

use super::blocks::{BLOCK, Block, new_block};
use super::checksum::{Checksum, Hasher};
use super::dir::ChunkDir;
use super::error::StoreError;
use super::format::{TRAILER_LEN, Trailer};
use super::id::ChunkId;
use super::meta::ChunkMeta;

/// Space is reserved in steps of this size when the length is not known up front.
const RESERVE_STEP: u64 = 1024 * 1024;
/// What a block task hands back: its buffer for reuse, whether the file is now in
/// `O_DIRECT` mode, and how the write went.
type BlockDone = (Block, bool, io::Result<()>);

/// A chunk write in progress. Feed it with [`ChunkWriter::write`] and make it durable with
/// [`ChunkWriter::finish`]; dropping it unfinished removes the temp file, so an aborted
/// write never leaves a visible or partial chunk.
#[derive(Debug)]
pub struct ChunkWriter {
    store: Arc<dyn ChunkDir>,
    id: ChunkId,
    temp_path: PathBuf,
    /// The temp file; `None` for a small chunk until `finish` creates it.
    file: Option<Arc<File>>,
    hasher: Hasher,
    /// Bytes accepted so far (in `block`, in flight or on disk).
    written: u64,
    /// Bytes handed to block writes so far: the file offset of `block`.
    handed: u64,
    block: Block,
    /// The other buffer, back from the last block write.
    spare: Option<Block>,
    in_flight: Option<JoinHandle<BlockDone>>,
    /// The file's `O_DIRECT` flag is set.
    direct: bool,
    reserved: u64,
    expected_len: Option<u64>,
    /// `finish` has passed the temp file and the reservation to its blocking task.
    handed_off: bool,
}

impl ChunkWriter {
    pub(crate) async fn create(
        store: Arc<dyn ChunkDir>,
        id: ChunkId,
        expected_len: Option<u64>,
    ) -> Result<Self, StoreError> {
        let reserved = match expected_len {
            Some(len) => len + TRAILER_LEN,
            None => RESERVE_STEP,
        };
        store.space().reserve(reserved)?;
        let temp_path = store.temp_path(&id);
        // A small chunk of known length fits in one buffer and reaches the disk only in
        // `finish`, which then creates the file too: one hand-off to a blocking thread, not two.
        let small = expected_len.is_some_and(|n| n + TRAILER_LEN < BLOCK as u64);
        let file = if small {
            None
        } else {
            let open_path = temp_path.clone();
            let opened = tokio::task::spawn_blocking(move || create_temp(&open_path))
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join)));
            match opened {
                Ok(f) => Some(Arc::new(f)),
                Err(e) => {
                    store.space().release(reserved);
                    return Err(StoreError::io(
                        format!("creating {}", temp_path.display()),
                        e,
                    ));
                }
            }
        };
        let block = match expected_len {
            Some(n) if small => new_block((n + TRAILER_LEN) as usize),
            _ => store.blocks().take(),
        };
        Ok(Self {
            store,
            id,
            temp_path,
            file,
            hasher: Hasher::default(),
            written: 0,
            handed: 0,
            block,
            spare: None,
            in_flight: None,
            direct: false,
            reserved,
            expected_len,
            handed_off: false,
        })
    }

    /// The chunk being written.
    pub fn id(&self) -> &ChunkId {
        &self.id
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `data` to the chunk.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        let new_len = self.written + data.len() as u64;
        if let Some(expected) = self.expected_len
            && new_len > expected
        {
            return Err(StoreError::LengthMismatch {
                expected,
                actual: new_len,
            });
        }
        self.ensure_reserved(new_len + TRAILER_LEN)?;
        self.hasher.update(data);
        self.written = new_len;
        while !data.is_empty() {
            let take = data.len().min(BLOCK - self.block.len());
            let (now, rest) = data.split_at(take);
            self.block.extend_from_slice(now);
            data = rest;
            if self.block.len() == BLOCK {
                self.hand_block().await?;
            }
        }
        Ok(())
    }

    /// Waits for the block write in flight, then starts writing the full block.
    async fn hand_block(&mut self) -> Result<(), StoreError> {
        self.wait_in_flight().await?;
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| self.store.blocks().take());
        let block = std::mem::replace(&mut self.block, next);
        let offset = self.handed;
        self.handed += block.len() as u64;
        let (file, store, direct) = (self.file.clone(), self.store.clone(), self.direct);
        let path = self.temp_path.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            // Only small chunks start without a file, and they never fill a whole block.
            let Some(file) = file else {
                let e = io::Error::other(format!("no temp file {}", path.display()));
                return (block, direct, Err(e));
            };
            let (direct, result) = write_whole_block(&file, &*store, direct, offset, &block);
            (block, direct, result)
        }));
        Ok(())
    }

    async fn wait_in_flight(&mut self) -> Result<(), StoreError> {
        if let Some(task) = self.in_flight.take() {
            let (block, direct, result) = task
                .await
                .map_err(|join| self.io_error(io::Error::other(join)))?;
            self.direct = direct;
            let mut block = block;
            block.clear();
            self.spare = Some(block);
            result.map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    fn ensure_reserved(&mut self, total: u64) -> Result<(), StoreError> {
        if total > self.reserved {
            let more = (total - self.reserved).max(RESERVE_STEP);
            self.store.space().reserve(more)?;
            self.reserved += more;
        }
        Ok(())
    }

    fn io_context(&self) -> String {
        format!("writing chunk {}", self.id)
    }

    fn io_error(&self, e: io::Error) -> StoreError {
        StoreError::io(self.io_context(), e)
    }

    /// Checks length and (if given) the expected checksum, then makes the chunk durable:
    /// trailer, fsync, rename into place, fsync of the directory. Returns once all of that
    /// is done; on any error nothing becomes visible.
    pub async fn finish(mut self, expected: Option<Checksum>) -> Result<ChunkMeta, StoreError> {
        if let Some(expected) = self.expected_len
            && self.written != expected
        {
            return Err(StoreError::LengthMismatch {
                expected,
                actual: self.written,
            });
        }
        let checksum = self.hasher.finish();
        if let Some(expected) = expected
            && expected != checksum
        {
            return Err(StoreError::ChecksumMismatch {
                expected,
                actual: checksum,
            });
        }
        self.ensure_reserved(self.written + TRAILER_LEN)?;
        let trailer = Trailer {
            len: self.written,
            checksum,
        };
        self.wait_in_flight().await?;
        let mut tail = std::mem::replace(&mut self.block, new_block(0));
        tail.extend_from_slice(&trailer.encode());
        if let Some(spare) = self.spare.take() {
            self.store.blocks().give(spare);
        }
        let (file, offset, direct) = (self.file.clone(), self.handed, self.direct);
        let store = self.store.clone();
        let temp = self.temp_path.clone();
        let reserved = self.reserved;
        let meta = ChunkMeta {
            id: self.id.clone(),
            len: self.written,
            checksum,
        };
        let installed_meta = meta.clone();
        let context = self.io_context();
        // From here the blocking task owns the temp file and the reservation: if this future
        // is dropped, the task still either installs the chunk or cleans up after itself.
        self.handed_off = true;
        let id = self.id.clone();
        tokio::task::spawn_blocking(move || {
            let durable = match file {
                Some(f) => Ok(f),
                None => create_temp(&temp).map(Arc::new),
            }
            .and_then(|f| write_tail(&f, direct, offset, &tail).and_then(|()| f.sync_all()));
            store.blocks().give(tail);
            let installed = match durable {
                Err(e) => Err(StoreError::io(context, e)),
                Ok(()) => store.install(&temp, &installed_meta, reserved),
            };
            match installed {
                // The chunk is visible now; the directory fsync makes the rename durable.
                Ok(()) => store.sync_dir_blocking(),
                Err(e) => {
                    abandon(&*store, &temp, reserved);
                    Err(e)
                }
            }
        })
        .await
        .unwrap_or_else(|join| {
            tracing::error!(chunk = %id, error = %join, "the chunk install task failed");
            Err(StoreError::io("installing a chunk", io::Error::other(join)))
        })?;
        Ok(meta)
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if self.handed_off {
            return;
        }
        let block = std::mem::replace(&mut self.block, new_block(0));
        self.store.blocks().give(block);
        if let Some(spare) = self.spare.take() {
            self.store.blocks().give(spare);
        }
        // A block write still in flight lands in the unlinked file, which is freed on close.
        abandon(&*self.store, &self.temp_path, self.reserved);
    }
}

/// Gives up an unfinished chunk: its reservation and its temp file.
fn abandon(store: &dyn ChunkDir, temp: &Path, reserved: u64) {
    store.space().release(reserved);
    match std::fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %temp.display(), error = %e, "could not remove temp file")
        }
    }
}

/// Creates a new temp file (never an existing one).
fn create_temp(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Sets or clears the file's `O_DIRECT` flag.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(file, flags)?;
    Ok(())
}

/// Writes one whole, aligned block at `offset` (a multiple of [`BLOCK`]): with `O_DIRECT`
/// while the store allows it, else through the page cache with early writeback. Returns
/// whether the file is in `O_DIRECT` mode afterwards.
fn write_whole_block(
    file: &File,
    store: &dyn ChunkDir,
    mut direct: bool,
    offset: u64,
    block: &[u8],
) -> (bool, io::Result<()>) {
    if !direct && store.direct_io() {
        match set_direct(file, true) {
            Ok(()) => direct = true,
            Err(e) => store.disable_direct_io(&e),
        }
    }
    if direct {
        match file.write_all_at(block, offset) {
            Ok(()) => return (true, Ok(())),
            // Refused (EINVAL: the file system does not do direct I/O after all): nothing
            // was written; fall back to the page cache for good.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                store.disable_direct_io(&e);
                if let Err(e) = set_direct(file, false) {
                    return (true, Err(e));
                }
                direct = false;
            }
            Err(e) => return (true, Err(e)),
        }
    }
    let result = file.write_all_at(block, offset);
    if result.is_ok() {
        start_writeback(file, offset, block.len());
    }
    (direct, result)
}

/// Writes the tail (last partial block and trailer) through the page cache: its length is
/// not aligned, and the fsync that follows flushes it at once.
fn write_tail(file: &File, direct: bool, offset: u64, tail: &[u8]) -> io::Result<()> {
    if direct {
        set_direct(file, false)?;
    }
    file.write_all_at(tail, offset)
}

/// Starts writeback of a range written through the page cache, without waiting for it, so
/// the final fsync finds little left to do.
fn start_writeback(file: &File, offset: u64, len: usize) {
    // Only a hint: the fsync in `finish` is what makes the chunk durable, so a file system
    // without `sync_file_range` costs nothing but the early start. (Neither nix nor rustix
    // wraps this call.)
    // SAFETY: the descriptor is borrowed from a `File` that outlives the call; the call
    // reads no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        tracing::debug!(error = %e, "sync_file_range failed; the fsync will do all the work");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkStore;
    use crate::chunk::StoreConfig;

    /// Pieces of awkward sizes, so blocks fill across piece boundaries.
    async fn write_in_pieces(w: &mut ChunkWriter, data: &[u8]) {
        for piece in data.chunks(100_003) {
            w.write(piece).await.unwrap();
        }
    }

    async fn round_trip(store: &Arc<ChunkStore>, name: &str, len: usize) -> bool {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let id = ChunkId::new(name).unwrap();
        let mut w = store.writer(id.clone(), None).await.unwrap();
        write_in_pieces(&mut w, &data).await;
        w.wait_in_flight().await.unwrap();
        let direct = w.direct;
        let meta = w.finish(Some(Checksum::of(&data))).await.unwrap();
        assert_eq!(meta.len, len as u64);
        let got = store
            .read(&id, None)
            .await
            .unwrap()
            .into_bytes()
            .await
            .unwrap();
        assert!(got[..] == data[..], "{name}: read back differs");
        direct
    }

    #[tokio::test]
    async fn whole_blocks_go_direct_where_allowed_and_through_the_cache_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(StoreConfig {
            data_dir: dir.path().to_path_buf(),
            capacity: None,
        })
        .await
        .unwrap();
        // Lengths around the block size and the alignment, and a small one.
        for (i, len) in [BLOCK * 3 + 4097, BLOCK, BLOCK - 1, 10]
            .into_iter()
            .enumerate()
        {
            let direct = round_trip(&store, &format!("d-{i}-0"), len).await;
            assert_eq!(direct, len >= BLOCK && store.direct_io(), "length {len}");
        }
        store.disable_direct_io(&io::Error::other("test"));
        for (i, len) in [BLOCK * 2 + 5, 4096].into_iter().enumerate() {
            assert!(!round_trip(&store, &format!("p-{i}-0"), len).await);
        }
        assert_eq!(store.list().len(), 6);
    }
}
