//! Directories the leader knows exist, with their node versions, so that storing a new file
//! under them is one ZooKeeper transaction instead of a read followed by a transaction; and
//! files it knows exist, so that overwriting one skips that transaction, which would fail.
//!
//! Only the leader changes the namespace, and only through fenced writes, so within one
//! leadership epoch this map can only be outdated by this process's own removals, which
//! forget what they delete. A commit learns only if nothing was forgotten since it read (the
//! generation), so a slow commit cannot bring back a directory a removal just deleted. The
//! transaction still checks every version it relies on: a wrong entry costs a retry through
//! the read path. A file wrongly thought to exist costs nothing more than the read path
//! either, which finds it absent and creates it, so files need no generation.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Entries kept before the maps start over (a bound on memory, not a tuning knob).
const MAX_ENTRIES: usize = 100_000;

/// Bytes of paths kept before the maps start over: paths may be 4 KiB long, so the count
/// alone would let a writer make the leader hold 400 MiB of them.
const MAX_PATH_BYTES: usize = 16 << 20;

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
    /// Files committed or found existing in `epoch`.
    files: HashSet<String>,
    /// The length of every path in `versions` and `files`.
    path_bytes: usize,
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
        let adding = if inner.versions.contains_key(dir) {
            0
        } else {
            dir.len()
        };
        inner.start_over_unless(epoch, adding);
        if inner.versions.insert(dir.to_string(), version).is_none() {
            inner.path_bytes += dir.len();
        }
    }

    /// Whether `file` is known to exist in `epoch`: an overwrite then reads first.
    pub fn holds_file(&self, epoch: u64, file: &str) -> bool {
        self.inner
            .lock()
            .is_ok_and(|i| i.epoch == epoch && i.files.contains(file))
    }

    /// Records that `file` exists, committed (or found) by a transaction of `epoch`.
    pub fn learn_file(&self, epoch: u64, file: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            let adding = if inner.files.contains(file) {
                0
            } else {
                file.len()
            };
            inner.start_over_unless(epoch, adding);
            if inner.files.insert(file.to_string()) {
                inner.path_bytes += file.len();
            }
        }
    }

    /// Forgets `file` (it was deleted).
    pub fn forget_file(&self, file: &str) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.files.remove(file)
        {
            inner.path_bytes = inner.path_bytes.saturating_sub(file.len());
        }
    }

    /// Forgets `dir` (it was deleted).
    pub fn forget(&self, dir: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            if inner.versions.remove(dir).is_some() {
                inner.path_bytes = inner.path_bytes.saturating_sub(dir.len());
            }
            inner.generation += 1;
        }
    }

    /// Forgets every directory (a transaction found the map wrong).
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            let dir_bytes: usize = inner.versions.keys().map(String::len).sum();
            inner.path_bytes = inner.path_bytes.saturating_sub(dir_bytes);
            inner.versions.clear();
            inner.generation += 1;
        }
    }
}

impl Inner {
    /// Empties the maps when they were learned in another epoch, or when a path of `adding`
    /// bytes more would take them past a bound.
    fn start_over_unless(&mut self, epoch: u64, adding: usize) {
        if self.epoch != epoch
            || self.versions.len() + self.files.len() >= MAX_ENTRIES
            || self.path_bytes + adding > MAX_PATH_BYTES
        {
            self.epoch = epoch;
            self.versions.clear();
            self.files.clear();
            self.path_bytes = 0;
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
    fn files_are_known_within_their_epoch_until_forgotten() {
        let k = KnownDirs::default();
        assert!(!k.holds_file(1, "a/f"));
        k.learn(1, 0, "a", 0);
        k.learn_file(1, "a/f");
        assert!(k.holds_file(1, "a/f"));
        assert!(!k.holds_file(1, "a/g"));
        assert!(!k.holds_file(2, "a/f"), "another epoch knows nothing");
        k.clear();
        assert!(
            k.holds_file(1, "a/f"),
            "a wrong directory says nothing of files"
        );
        k.forget_file("a/f");
        assert!(!k.holds_file(1, "a/f"));
        k.learn_file(1, "a/f");
        k.learn_file(2, "b/f");
        assert!(!k.holds_file(2, "a/f"), "a new epoch starts over");
        assert!(k.holds_file(2, "b/f"));
    }

    #[test]
    fn long_paths_start_the_maps_over_by_their_bytes() {
        let k = KnownDirs::default();
        let long = |i: usize| format!("{i:04}/{}", "x".repeat(4000));
        // `fit` files and one directory fill the bytes but for less than a long path.
        let fit = MAX_PATH_BYTES / long(0).len() - 1;
        for i in 0..fit {
            k.learn_file(1, &long(i));
        }
        k.learn(1, 0, &long(fit), 0);
        assert!(k.holds_file(1, &long(0)), "{fit} files and a directory fit");
        assert_eq!(k.versions(1, &[&long(fit)]), Some(vec![0]));
        // Forgetting and learning again the same paths keeps the count right.
        k.forget_file(&long(0));
        k.learn_file(1, &long(0));
        k.forget(&long(fit));
        k.learn(1, k.generation(), &long(fit), 1);
        k.learn(1, k.generation(), &long(fit), 2);
        assert!(k.holds_file(1, &long(1)));
        k.learn_file(1, "one more");
        assert!(k.holds_file(1, "one more"), "a short path still fits");
        k.learn_file(1, &long(fit + 1));
        assert!(!k.holds_file(1, &long(1)), "started over past the bytes");
        assert!(k.holds_file(1, &long(fit + 1)));
    }

    #[test]
    fn the_bound_counts_files_and_directories() {
        let k = KnownDirs::default();
        for i in 0..MAX_ENTRIES {
            k.learn_file(1, &format!("f{i}"));
        }
        assert!(k.holds_file(1, "f1"));
        k.learn_file(1, "one more");
        assert!(!k.holds_file(1, "f1"), "started over at the bound");
        assert!(k.holds_file(1, "one more"));
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
