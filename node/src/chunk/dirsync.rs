//! Group commit for directory fsyncs. Every chunk write and delete must make its rename or
//! unlink durable with an fsync of the chunk directory; one fsync covers every entry change made
//! before it started, so concurrent writers share one instead of queueing for their own.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

use super::error::StoreError;

#[derive(Debug)]
pub(crate) struct DirSync {
    dir: PathBuf,
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Tickets handed out: one per change that needs to become durable.
    requested: u64,
    /// Every ticket up to this one is durable.
    completed: u64,
    running: bool,
    /// The last failed sync: tickets up to `.0` it was meant to cover, and why it failed.
    failed: Option<(u64, String)>,
}

impl DirSync {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            state: Mutex::new(State::default()),
            done: Condvar::new(),
        }
    }

    /// Makes every change made to the directory before this call durable. Blocking.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.requested += 1;
        let ticket = s.requested;
        loop {
            if s.completed >= ticket {
                return Ok(());
            }
            if let Some((upto, message)) = &s.failed
                && *upto >= ticket
            {
                return Err(StoreError::io(
                    format!("fsync of directory {}", self.dir.display()),
                    std::io::Error::other(message.clone()),
                ));
            }
            if s.running {
                s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Become the syncer for every ticket handed out so far.
            s.running = true;
            let target = s.requested;
            drop(s);
            let result = std::fs::File::open(&self.dir).and_then(|d| d.sync_all());
            s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.running = false;
            match result {
                Ok(()) => s.completed = s.completed.max(target),
                Err(e) => s.failed = Some((target, e.to_string())),
            }
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_all_return_and_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Arc::new(DirSync::new(dir.path().to_path_buf()));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let ds = ds.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        ds.sync().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = ds.state.lock().unwrap();
        assert_eq!(s.requested, 320);
        assert_eq!(s.completed, 320);
    }

    #[test]
    fn a_failed_sync_is_reported() {
        let ds = DirSync::new(PathBuf::from("/nonexistent/filegrid-dir"));
        assert!(ds.sync().is_err());
    }
}
