//! The background scrubber: re-verifies every chunk, paced to a configured rate.
//!
//! Bit rot is found before a reader needs the chunk, while other replicas still hold good
//! copies. Bad chunks are reported through [`ChunkStore::subscribe_bad`] like failed reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::JoinHandle;

use super::error::StoreError;
use super::store::ChunkStore;

/// Settings of the scrubber.
#[derive(Clone, Copy, Debug)]
pub struct ScrubConfig {
    /// Most bytes per second to read; must be above zero.
    pub rate_bytes_per_sec: u64,
    /// Pause after a full pass before the next one starts.
    pub pause_between_passes: Duration,
}

/// A snapshot of the scrubber's progress.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScrubProgress {
    /// Completed passes over all chunks.
    pub passes_completed: u64,
    /// Bytes verified since start, over all passes.
    pub bytes_verified_total: u64,
    /// Bytes verified in the current pass.
    pub pass_bytes_done: u64,
    /// Bytes the current pass has to verify (the store's size when it started).
    pub pass_bytes_total: u64,
    /// Bad chunks found since start.
    pub bad_chunks_found: u64,
}

impl ScrubProgress {
    /// Fraction of the current pass done, from 0 to 1 (1 for an empty store).
    pub fn ratio(&self) -> f64 {
        if self.pass_bytes_total == 0 {
            1.0
        } else {
            (self.pass_bytes_done as f64 / self.pass_bytes_total as f64).min(1.0)
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    passes_completed: AtomicU64,
    bytes_verified_total: AtomicU64,
    pass_bytes_done: AtomicU64,
    pass_bytes_total: AtomicU64,
    bad_chunks_found: AtomicU64,
}

/// The running scrubber; stops when dropped.
#[derive(Debug)]
pub struct ScrubHandle {
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl ScrubHandle {
    /// Starts scrubbing `store` in the background.
    pub fn spawn(store: Arc<ChunkStore>, config: ScrubConfig) -> Self {
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(store, config, counters.clone()));
        Self { counters, task }
    }

    /// Current progress.
    pub fn progress(&self) -> ScrubProgress {
        let c = &self.counters;
        ScrubProgress {
            passes_completed: c.passes_completed.load(Ordering::Relaxed),
            bytes_verified_total: c.bytes_verified_total.load(Ordering::Relaxed),
            pass_bytes_done: c.pass_bytes_done.load(Ordering::Relaxed),
            pass_bytes_total: c.pass_bytes_total.load(Ordering::Relaxed),
            bad_chunks_found: c.bad_chunks_found.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ScrubHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(store: Arc<ChunkStore>, config: ScrubConfig, counters: Arc<Counters>) {
    let rate = config.rate_bytes_per_sec.max(1) as f64;
    loop {
        let chunks = store.list();
        let total: u64 = chunks.iter().map(|c| c.meta.len).sum();
        counters.pass_bytes_done.store(0, Ordering::Relaxed);
        counters.pass_bytes_total.store(total, Ordering::Relaxed);
        let started = Instant::now();
        let mut done = 0u64;
        for chunk in chunks {
            // Already found bad and reported: re-reading it would only report it again
            // (waking the leader's repair each pass) until it is rewritten or deleted.
            if chunk.corrupt {
                continue;
            }
            let id = &chunk.meta.id;
            let read = match store.open_read(id, None, false).await {
                Ok(read) => read,
                // Deleted since the listing: nothing to check.
                Err(StoreError::NotFound(_)) => continue,
                Err(StoreError::Corrupt { .. }) => {
                    counters.bad_chunks_found.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(chunk = %id, error = %e, "scrubber could not open chunk");
                    continue;
                }
            };
            let mut body = read.body;
            while let Some(item) = body.next().await {
                match item {
                    Ok(bytes) => {
                        let n = bytes.len() as u64;
                        done += n;
                        counters.pass_bytes_done.fetch_add(n, Ordering::Relaxed);
                        counters
                            .bytes_verified_total
                            .fetch_add(n, Ordering::Relaxed);
                        // Pace: never get ahead of `rate` since the pass started.
                        let due = Duration::from_secs_f64(done as f64 / rate);
                        let elapsed = started.elapsed();
                        if due > elapsed {
                            tokio::time::sleep(due - elapsed).await;
                        }
                    }
                    Err(_) => {
                        // Already reported by the read path.
                        counters.bad_chunks_found.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        counters
            .pass_bytes_done
            .store(total.max(done), Ordering::Relaxed);
        counters.passes_completed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(bytes = done, elapsed = ?started.elapsed(), "scrub pass complete");
        tokio::time::sleep(config.pause_between_passes).await;
    }
}
