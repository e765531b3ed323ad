//! Space accounting: a configured capacity limit and the real free space of the disk.
//!
//! Writers reserve space before they write; a reservation that would exceed either
//! limit fails with [`StoreError::StorageFull`] before any byte lands on disk. The free
//! space check is a best effort (other processes share the disk), so an `ENOSPC` during
//! the write is still mapped to the same error by [`StoreError::io`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::StoreError;

/// Current space figures of a store, in bytes (a wire type: the block report carries it).
pub use filegrid_proto::chunk::Usage;

#[derive(Debug, Default)]
struct Counters {
    used: u64,
    reserved: u64,
    chunks: u64,
}

/// Used, reserved and free space of one data directory.
#[derive(Debug)]
pub(crate) struct Space {
    dir: PathBuf,
    capacity: Option<u64>,
    counters: Mutex<Counters>,
}

/// Free and total bytes of the filesystem holding `dir`, as an unprivileged user sees them.
fn disk_space(dir: &Path) -> Result<(u64, u64), StoreError> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| StoreError::io(format!("statvfs {}", dir.display()), e.into()))?;
    let avail = st.f_bavail.saturating_mul(st.f_frsize);
    let total = st.f_blocks.saturating_mul(st.f_frsize);
    Ok((avail, total))
}

impl Space {
    pub(crate) fn new(dir: PathBuf, capacity: Option<u64>) -> Self {
        Self {
            dir,
            capacity,
            counters: Mutex::new(Counters::default()),
        }
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        // The counters stay consistent even if a holder panicked: every update is one step.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `bytes` for a write in progress.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<(), StoreError> {
        let (disk_free, _) = disk_space(&self.dir)?;
        let mut c = self.counters();
        if let Some(cap) = self.capacity {
            let committed = c.used + c.reserved;
            if committed.saturating_add(bytes) > cap {
                return Err(StoreError::StorageFull(format!(
                    "{bytes} more bytes would exceed the capacity limit of {cap} bytes \
                     ({committed} used or reserved)"
                )));
            }
        }
        if bytes > disk_free {
            return Err(StoreError::StorageFull(format!(
                "{bytes} more bytes exceed the {disk_free} bytes free on the disk"
            )));
        }
        c.reserved += bytes;
        Ok(())
    }

    /// Gives back a reservation that was not (or no longer) needed.
    pub(crate) fn release(&self, bytes: u64) {
        let mut c = self.counters();
        c.reserved = c.reserved.saturating_sub(bytes);
    }

    /// Turns a reservation into a stored chunk file of `file_len` bytes, replacing an
    /// older file of `replaced` bytes when the chunk was rewritten.
    pub(crate) fn commit(&self, reserved: u64, file_len: u64, replaced: Option<u64>) {
        let mut c = self.counters();
        c.reserved = c.reserved.saturating_sub(reserved);
        c.used += file_len;
        c.chunks += 1;
        if let Some(old) = replaced {
            c.used = c.used.saturating_sub(old);
            c.chunks = c.chunks.saturating_sub(1);
        }
    }

    /// Counts a chunk found on disk at open.
    pub(crate) fn add_existing(&self, file_len: u64) {
        let mut c = self.counters();
        c.used += file_len;
        c.chunks += 1;
    }

    /// Forgets a deleted chunk file of `file_len` bytes.
    pub(crate) fn remove(&self, file_len: u64) {
        let mut c = self.counters();
        c.used = c.used.saturating_sub(file_len);
        c.chunks = c.chunks.saturating_sub(1);
    }

    /// Current figures; asks the disk for its free space.
    pub(crate) fn usage(&self) -> Result<Usage, StoreError> {
        let (disk_free, disk_total) = disk_space(&self.dir)?;
        let c = self.counters();
        let (capacity_bytes, cap_free) = match self.capacity {
            Some(cap) => (cap, cap.saturating_sub(c.used + c.reserved)),
            None => (disk_total, u64::MAX),
        };
        Ok(Usage {
            used_bytes: c.used,
            capacity_bytes,
            free_bytes: cap_free.min(disk_free),
            chunks: c.chunks,
        })
    }
}
