//! Listing files: a depth-first walk in [`namespace::path_cmp`] order over the names the
//! [`DirIndex`] holds, reading from ZooKeeper only the entries of the names a page needs.
//! A page therefore costs about its own size, however large the directories it walks.

use std::collections::VecDeque;
use std::time::Instant;

use zookeeper_client::Client;

use super::dir_index::{DirIndex, IndexError, NamesQuery};
use super::manifest::{Entry, EntryKind};
use super::namespace::{self, ListItem, NsError};
use crate::zk::Layout;

/// Names asked of the index (and entries read from ZooKeeper) at most at once.
const BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Ns(#[from] NsError),
}

/// One directory of the walk: where it stands, and entries read but not yet walked.
struct Frame {
    dir: String,
    after: Option<String>,
    starts_with: String,
    read: VecDeque<(String, Option<Entry>)>,
    exhausted: bool,
}

impl Frame {
    fn new(dir: String, after: Option<String>, starts_with: String) -> Self {
        Self {
            dir,
            after,
            starts_with,
            read: VecDeque::new(),
            exhausted: false,
        }
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The frames that continue a walk of `prefix` after `cursor` (pure): the directory that
/// holds every match at the bottom, and one frame per directory of the cursor's path above
/// it, deepest on top. `None` when nothing can follow the cursor.
fn start(prefix: &str, cursor: Option<&str>) -> Option<Vec<Frame>> {
    let (dir, starts_with) = match prefix.rfind('/') {
        Some(i) => (&prefix[..i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    let Some(cursor) = cursor else {
        return Some(vec![Frame::new(dir.into(), None, starts_with.into())]);
    };
    let inside = if dir.is_empty() {
        Some(cursor)
    } else {
        cursor.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
    };
    let Some(rel) = inside else {
        // The cursor is outside the directory: everything in it comes after, or nothing.
        return (namespace::path_cmp(cursor, dir) != std::cmp::Ordering::Greater)
            .then(|| vec![Frame::new(dir.into(), None, starts_with.into())]);
    };
    let segments: Vec<&str> = rel.split('/').collect();
    let mut frames = vec![Frame::new(
        dir.into(),
        Some(segments[0].into()),
        starts_with.into(),
    )];
    if !segments[0].starts_with(starts_with) {
        // The cursor lies before or after the prefix's names: nothing below it matters.
        return Some(frames);
    }
    let mut path = join(dir, segments[0]);
    for s in &segments[1..] {
        frames.push(Frame::new(path.clone(), Some((*s).into()), String::new()));
        path = join(&path, s);
    }
    Some(frames)
}

/// Files whose path starts with `prefix`, after `cursor`, at most `limit`, in `path_cmp`
/// order; and the cursor to continue from when there are more.
pub async fn list(
    index: &DirIndex,
    client: &Client,
    layout: &Layout,
    prefix: &str,
    limit: usize,
    cursor: Option<&str>,
) -> Result<(Vec<ListItem>, Option<String>), ListError> {
    let started = Instant::now();
    let Some(mut frames) = start(prefix, cursor) else {
        return Ok((Vec::new(), None));
    };
    // One more than the page, to know whether another page follows.
    let want = limit.saturating_add(1);
    let mut out: Vec<ListItem> = Vec::new();
    let mut fresh = true;
    let mut reads = 0usize;
    while out.len() < want {
        let Some(frame) = frames.last_mut() else {
            break;
        };
        let Some((path, entry)) = frame.read.pop_front() else {
            if frame.exhausted {
                frames.pop();
                continue;
            }
            let max = (want - out.len()).clamp(1, BATCH);
            let names = index
                .names(NamesQuery {
                    dir: frame.dir.clone(),
                    after: frame.after.clone(),
                    starts_with: frame.starts_with.clone(),
                    max,
                    fresh,
                })
                .await?;
            fresh = false;
            frame.exhausted = names.len() < max;
            frame.after = names.last().cloned().or(frame.after.take());
            let paths: Vec<String> = names.iter().map(|n| join(&frame.dir, n)).collect();
            let entries = namespace::read_entries(client, layout, &paths).await?;
            reads += paths.len();
            frame.read = paths.into_iter().zip(entries).collect();
            continue;
        };
        // Gone since the index named it, or not an entry of ours.
        let Some(entry) = entry else { continue };
        match entry.kind {
            EntryKind::Dir => frames.push(Frame::new(path, None, String::new())),
            EntryKind::File => {
                if let Some(f) = entry.file {
                    out.push(ListItem {
                        path,
                        size: f.size,
                        mtime: f.mtime,
                        checksum: f.checksum,
                    });
                }
            }
        }
    }
    let next = if out.len() == want {
        out.pop();
        out.last().map(|i| i.path.clone())
    } else {
        None
    };
    tracing::debug!(
        prefix,
        files = out.len(),
        entries_read = reads,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "listed"
    );
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(frames: &[Frame]) -> Vec<(String, Option<String>, String)> {
        frames
            .iter()
            .map(|f| (f.dir.clone(), f.after.clone(), f.starts_with.clone()))
            .collect()
    }

    fn f(dir: &str, after: Option<&str>, sw: &str) -> (String, Option<String>, String) {
        (dir.into(), after.map(Into::into), sw.into())
    }

    #[test]
    fn a_first_page_starts_in_the_prefix_directory() {
        assert_eq!(shape(&start("", None).unwrap()), vec![f("", None, "")]);
        assert_eq!(
            shape(&start("a/b/", None).unwrap()),
            vec![f("a/b", None, "")]
        );
        assert_eq!(
            shape(&start("a/b/ph", None).unwrap()),
            vec![f("a/b", None, "ph")]
        );
        assert_eq!(shape(&start("ph", None).unwrap()), vec![f("", None, "ph")]);
    }

    #[test]
    fn a_cursor_continues_in_every_directory_of_its_path() {
        assert_eq!(
            shape(&start("a/", Some("a/x/y/z.txt")).unwrap()),
            vec![
                f("a", Some("x"), ""),
                f("a/x", Some("y"), ""),
                f("a/x/y", Some("z.txt"), "")
            ]
        );
        assert_eq!(
            shape(&start("ph", Some("photos/1.jpg")).unwrap()),
            vec![f("", Some("photos"), "ph"), f("photos", Some("1.jpg"), "")]
        );
    }

    #[test]
    fn a_cursor_outside_the_prefix_directory_lists_all_of_it_or_nothing() {
        assert_eq!(
            shape(&start("m/", Some("a/z")).unwrap()),
            vec![f("m", None, "")]
        );
        assert!(start("m/", Some("z")).is_none());
        // Before the prefix within its directory: start at the prefix, not below the cursor.
        assert_eq!(
            shape(&start("m/ph", Some("m/a/deep")).unwrap()),
            vec![f("m", Some("a"), "ph")]
        );
    }
}
