//! Streamed chunk writes: temp file, checksum while writing, fsync, rename, fsync of the directory.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::checksum::{Checksum, Hasher};
use super::error::StoreError;
use super::format::{TRAILER_LEN, Trailer};
use super::id::ChunkId;
use super::store::{ChunkMeta, ChunkStore};

/// Space is reserved in steps of this size when the length is not known up front.
const RESERVE_STEP: u64 = 1024 * 1024;

/// A chunk write in progress. Feed it with [`ChunkWriter::write`] and make it durable with
/// [`ChunkWriter::finish`]; dropping it unfinished removes the temp file, so an aborted
/// write never leaves a visible or partial chunk.
#[derive(Debug)]
pub struct ChunkWriter {
    store: Arc<ChunkStore>,
    id: ChunkId,
    temp_path: PathBuf,
    file: tokio::fs::File,
    hasher: Hasher,
    written: u64,
    reserved: u64,
    expected_len: Option<u64>,
    installed: bool,
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
        let file = match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                store.space().release(reserved);
                return Err(StoreError::io(
                    format!("creating {}", temp_path.display()),
                    e,
                ));
            }
        };
        Ok(Self {
            store,
            id,
            temp_path,
            file,
            hasher: Hasher::default(),
            written: 0,
            reserved,
            expected_len,
            installed: false,
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
        self.file
            .write_all(data)
            .await
            .map_err(|e| self.io_error(e))?;
        self.written = new_len;
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
        self.file
            .write_all(&trailer.encode())
            .await
            .map_err(|e| self.io_error(e))?;
        self.file.flush().await.map_err(|e| self.io_error(e))?;
        self.file.sync_all().await.map_err(|e| self.io_error(e))?;

        let meta = ChunkMeta {
            id: self.id.clone(),
            len: self.written,
            checksum,
        };
        let store = self.store.clone();
        let temp = self.temp_path.clone();
        let reserved = self.reserved;
        let installed_meta = meta.clone();
        // Returns whether the rename happened, and the overall result.
        let (installed, result) = tokio::task::spawn_blocking(move || {
            if let Err(e) = store.install(&temp, &installed_meta, reserved) {
                return (false, Err(e));
            }
            // The chunk is visible now; the directory fsync makes the rename durable.
            (true, store.sync_dir_blocking())
        })
        .await
        .unwrap_or_else(|join| {
            let e = StoreError::io("installing a chunk", io::Error::other(join));
            (false, Err(e))
        });
        self.installed = installed;
        result.map(|()| meta)
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if self.installed {
            return;
        }
        self.store.space().release(self.reserved);
        match std::fs::remove_file(&self.temp_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %self.temp_path.display(), error = %e, "could not remove temp file")
            }
        }
    }
}
