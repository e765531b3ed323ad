//! Uploads this head is storing chunks for: the orphan collector keeps their chunks.
//!
//! An upload registers its file id before it stores its first chunk and stays registered
//! until [`super::write::store`] returns (or is dropped). Chunk ids are `<file_id>-<index>`,
//! so the collector recognises a live upload's chunks by their file id ([`file_id_of`]).
//!
//! Only the leader's own uploads are here, and that is enough: an upload admitted under
//! another leadership (a deposed leader's, or this head's under an earlier epoch) commits
//! through the fenced write with that leadership's token, which fails once the epoch moved
//! on, so its chunks can never become part of a file and are true orphans.
//!
//! Once an upload is no longer registered its chunks get a whole `orphan_grace` before they
//! may be deleted, counted from the first pass that sees them unregistered and
//! unreferenced: the commit that follows `store` has that long to happen.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The file ids of uploads in progress on this head.
#[derive(Debug, Default)]
pub struct LiveUploads {
    ids: Mutex<HashMap<String, usize>>,
}

impl LiveUploads {
    /// Registers the upload of `file_id` until the answer is dropped.
    pub fn register(&self, file_id: &str) -> Registration<'_> {
        if let Ok(mut ids) = self.ids.lock() {
            *ids.entry(file_id.to_string()).or_default() += 1;
        }
        Registration {
            live: self,
            file_id: file_id.to_string(),
        }
    }

    /// The file ids of uploads in progress now.
    pub fn snapshot(&self) -> HashSet<String> {
        self.ids
            .lock()
            .map(|ids| ids.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn unregister(&self, file_id: &str) {
        if let Ok(mut ids) = self.ids.lock()
            && let Some(n) = ids.get_mut(file_id)
        {
            *n -= 1;
            if *n == 0 {
                ids.remove(file_id);
            }
        }
    }
}

/// An upload in progress; unregisters it when dropped.
#[derive(Debug)]
pub struct Registration<'a> {
    live: &'a LiveUploads,
    file_id: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.live.unregister(&self.file_id);
    }
}

/// The file id a chunk id belongs to (`<file_id>-<index>`), if it has that form.
pub fn file_id_of(chunk: &str) -> Option<&str> {
    let (file_id, index) = chunk.rsplit_once('-')?;
    (!file_id.is_empty() && !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
        .then_some(file_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_lasts_until_dropped() {
        let live = LiveUploads::default();
        let a = live.register("f1");
        let b = live.register("f1");
        assert_eq!(live.snapshot(), HashSet::from(["f1".to_string()]));
        drop(a);
        assert_eq!(live.snapshot(), HashSet::from(["f1".to_string()]));
        drop(b);
        assert!(live.snapshot().is_empty());
    }

    #[test]
    fn chunk_ids_name_their_upload() {
        assert_eq!(file_id_of("0123abcd-0"), Some("0123abcd"));
        assert_eq!(file_id_of("0123abcd-17"), Some("0123abcd"));
        assert_eq!(file_id_of("0123abcd"), None);
        assert_eq!(file_id_of("-3"), None);
        assert_eq!(file_id_of("abc-"), None);
        assert_eq!(file_id_of("abc-x1"), None);
    }
}
