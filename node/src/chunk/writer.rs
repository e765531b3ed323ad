//! Streamed chunk writes: temp file, checksum while writing, fsync, rename, fsync of the directory.
//!
//! Incoming pieces are gathered into blocks of [`BLOCK`] bytes; each block is written by a
//! blocking task while the next one fills (one write in flight), and its writeback to the disk
//! is started at once (`sync_file_range`), so the fsync at the end finds little left to do
//! instead of flushing the whole chunk in one go. The last block, fsync, rename and directory
//! sync run as one blocking task, not one hand-off per step.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use super::checksum::{Checksum, Hasher};
use super::error::StoreError;
use super::format::{TRAILER_LEN, Trailer};
use super::id::ChunkId;
use super::store::{ChunkMeta, ChunkStore};

/// Space is reserved in steps of this size when the length is not known up front.
const RESERVE_STEP: u64 = 1024 * 1024;
/// Bytes gathered before they are handed to the disk in one write.
const BLOCK: usize = 1024 * 1024;

/// A chunk write in progress. Feed it with [`ChunkWriter::write`] and make it durable with
/// [`ChunkWriter::finish`]; dropping it unfinished removes the temp file, so an aborted
/// write never leaves a visible or partial chunk.
#[derive(Debug)]
pub struct ChunkWriter {
    store: Arc<ChunkStore>,
    id: ChunkId,
    temp_path: PathBuf,
    file: Arc<File>,
    hasher: Hasher,
    /// Bytes accepted so far (in `block`, in flight or on disk).
    written: u64,
    /// Bytes handed to a block write so far: the file offset of `block`.
    handed: u64,
    block: BytesMut,
    in_flight: Option<JoinHandle<io::Result<()>>>,
    reserved: u64,
    expected_len: Option<u64>,
    /// `finish` has passed the temp file and the reservation to its blocking task.
    handed_off: bool,
}

impl ChunkWriter {
    pub(crate) async fn create(
        store: Arc<ChunkStore>,
        id: ChunkId,
        expected_len: Option<u64>,
    ) -> Result<Self, StoreError> {
        let reserved = match expected_len {
            Some(len) => len + TRAILER_LEN,
            None => RESERVE_STEP,
        };
        store.space().reserve(reserved)?;
        let temp_path = store.temp_path(&id);
        let open_path = temp_path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&open_path)
        })
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)));
        let file = match opened {
            Ok(f) => Arc::new(f),
            Err(e) => {
                store.space().release(reserved);
                return Err(StoreError::io(
                    format!("creating {}", temp_path.display()),
                    e,
                ));
            }
        };
        let capacity = expected_len.map_or(BLOCK, |n| (n as usize).min(BLOCK));
        Ok(Self {
            store,
            id,
            temp_path,
            file,
            hasher: Hasher::default(),
            written: 0,
            handed: 0,
            block: BytesMut::with_capacity(capacity),
            in_flight: None,
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
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
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
        self.block.extend_from_slice(data);
        self.written = new_len;
        if self.block.len() >= BLOCK {
            self.hand_block().await?;
        }
        Ok(())
    }

    /// Waits for the block write in flight, then starts writing the gathered block.
    async fn hand_block(&mut self) -> Result<(), StoreError> {
        self.wait_in_flight().await?;
        if self.block.is_empty() {
            return Ok(());
        }
        let block = self.block.split().freeze();
        if self.block.capacity() < BLOCK {
            self.block.reserve(BLOCK);
        }
        let offset = self.handed;
        self.handed += block.len() as u64;
        let file = self.file.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            write_block(&file, offset, &block, true)
        }));
        Ok(())
    }

    async fn wait_in_flight(&mut self) -> Result<(), StoreError> {
        if let Some(task) = self.in_flight.take() {
            task.await
                .unwrap_or_else(|join| Err(io::Error::other(join)))
                .map_err(|e| self.io_error(e))?;
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

    fn io_error(&self, e: io::Error) -> StoreError {
        StoreError::io(format!("writing chunk {}", self.id), e)
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
        self.block.extend_from_slice(&trailer.encode());
        self.wait_in_flight().await?;
        let block = self.block.split().freeze();
        let (file, offset) = (self.file.clone(), self.handed);
        let store = self.store.clone();
        let temp = self.temp_path.clone();
        let reserved = self.reserved;
        let meta = ChunkMeta {
            id: self.id.clone(),
            len: self.written,
            checksum,
        };
        let installed_meta = meta.clone();
        let context = format!("writing chunk {}", self.id);
        // From here the blocking task owns the temp file and the reservation: if this future
        // is dropped, the task still either installs the chunk or cleans up after itself.
        self.handed_off = true;
        let id = self.id.clone();
        tokio::task::spawn_blocking(move || {
            let durable = write_block(&file, offset, &block, false).and_then(|()| file.sync_all());
            let installed = match durable {
                Err(e) => Err(StoreError::io(context, e)),
                Ok(()) => store.install(&temp, &installed_meta, reserved),
            };
            match installed {
                // The chunk is visible now; the directory fsync makes the rename durable.
                Ok(()) => store.sync_dir_blocking(),
                Err(e) => {
                    abandon(&store, &temp, reserved);
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
        // A block write still in flight lands in the unlinked file, which is freed on close.
        abandon(&self.store, &self.temp_path, self.reserved);
    }
}

/// Gives up an unfinished chunk: its reservation and its temp file.
fn abandon(store: &ChunkStore, temp: &Path, reserved: u64) {
    store.space().release(reserved);
    match std::fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(file = %temp.display(), error = %e, "could not remove temp file")
        }
    }
}

/// Writes `block` at `offset` and, with `writeback`, starts its writeback to the disk
/// without waiting for it.
fn write_block(file: &File, offset: u64, block: &Bytes, writeback: bool) -> io::Result<()> {
    (&*file).write_all(block)?;
    if !writeback || block.is_empty() {
        return Ok(());
    }
    // Only a hint: the fsync in `finish` is what makes the chunk durable, so a file system
    // without `sync_file_range` costs nothing but the early start. (Neither nix nor rustix
    // wraps this call.)
    // SAFETY: the descriptor is borrowed from a `File` that outlives the call; the call
    // reads no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            block.len() as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        tracing::debug!(error = %e, "sync_file_range failed; the fsync will do all the work");
    }
    Ok(())
}
