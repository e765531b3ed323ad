//! Directories the leader knows exist, with their node versions, so that storing a new file
//! under them is one ZooKeeper transaction instead of a read followed by a transaction.
//!
//! Only the leader changes the namespace, and only through fenced writes, so within one
//! leadership epoch this map can only be outdated by this process's own removals, which
//! forget what they delete. A commit learns only if nothing was forgotten since it read (the
//! generation), so a slow commit cannot bring back a directory a removal just deleted. The
//! transaction still checks every version it relies on: a wrong entry costs a retry through
//! the read path.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the map starts over (a bound on memory, not a tuning knob).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
pub struct KnownDirs {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The leadership epoch the entries were learned in.
    epoch: u64,
    /// Bumped by every forget and clear.
    generation: u64,
    versions: HashMap<String, i32>,
}

impl KnownDirs {
    /// The node versions of all of `dirs`, if every one is known in `epoch`.
    pub fn versions(&self, epoch: u64, dirs: &[&str]) -> Option<Vec<i32>> {
        if dirs.is_empty() {
            return Some(Vec::new());
        }
        let inner = self.inner.lock().ok()?;
        if inner.epoch != epoch {
            return None;
        }
        dirs.iter()
            .map(|d| inner.versions.get(*d).copied())
            .collect()
    }

    /// The generation to pass to [`KnownDirs::learn`]: take it before reading ZooKeeper.
    pub fn generation(&self) -> u64 {
        self.inner.lock().map_or(0, |i| i.generation)
    }

    /// Records that `dir` exists at `version` (as seen by a transaction of `epoch` that read
    /// ZooKeeper at `generation`); ignored if anything was forgotten since.
    pub fn learn(&self, epoch: u64, generation: u64, dir: &str, version: i32) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.generation != generation {
            return;
        }
        if inner.epoch != epoch || inner.versions.len() >= MAX_ENTRIES {
            inner.epoch = epoch;
            inner.versions.clear();
        }
        inner.versions.insert(dir.to_string(), version);
    }

    /// Forgets `dir` (it was deleted).
    pub fn forget(&self, dir: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.versions.remove(dir);
            inner.generation += 1;
        }
    }

    /// Forgets everything (a transaction found the map wrong).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.versions.clear();
            inner.generation += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_only_within_the_epoch_they_were_learned_in() {
        let k = KnownDirs::default();
        assert_eq!(
            k.versions(1, &[]),
            Some(vec![]),
            "top-level files need no directory"
        );
        assert_eq!(k.versions(1, &["a"]), None);
        k.learn(1, 0, "a", 0);
        k.learn(1, 0, "a/b", 2);
        assert_eq!(k.versions(1, &["a", "a/b"]), Some(vec![0, 2]));
        assert_eq!(k.versions(1, &["a", "a/c"]), None);
        assert_eq!(k.versions(2, &["a"]), None, "another epoch knows nothing");
        k.learn(2, 0, "x", 0);
        assert_eq!(k.versions(1, &["a"]), None, "a new epoch starts over");
        assert_eq!(k.versions(2, &["x"]), Some(vec![0]));
        k.forget("x");
        assert_eq!(k.versions(2, &["x"]), None);
        k.learn(2, 1, "y", 0);
        k.clear();
        assert_eq!(k.versions(2, &["y"]), None);
    }

    #[test]
    fn a_commit_that_read_before_a_removal_learns_nothing() {
        let k = KnownDirs::default();
        let read_at = k.generation();
        k.forget("d"); // a removal deletes d meanwhile
        k.learn(1, read_at, "d", 0);
        assert_eq!(k.versions(1, &["d"]), None);
        k.learn(1, k.generation(), "d", 0);
        assert_eq!(k.versions(1, &["d"]), Some(vec![0]));
    }
}
