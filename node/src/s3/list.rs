//! Listing a bucket in S3's order (keys by their UTF-8 bytes), with a prefix, a delimiter
//! and a position to start after.
//!
//! The walk goes depth first over the bucket's native directories. Within a directory the
//! children are ordered by the key they stand for, a directory as its key with `/` added:
//! since every key below a directory starts with that, the depth-first walk yields keys in
//! byte order. With the delimiter `/` a directory is one common prefix and is not entered.
//!
//! A directory's names come from the head's [`DirIndex`] in native byte order, a batch at a
//! time, and only their entries are read, so a page costs about its own size however large
//! the directory. Native order is key order for names stored as they are, except that a
//! directory sorts as its key with `/` added; every name read so far is at or before the
//! last, and every later name's key at or after it, so a child is handed on once its key is
//! at or before the last name read ([`Frame`]). Escaped names (`%…`, see `keys`) sort
//! elsewhere natively and are few: a directory's are read at once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use zookeeper_client::Client;

use super::keys;
use crate::files::dir_index::{DirIndex, NamesQuery};
use crate::files::listing::ListError;
use crate::files::manifest::{Entry, EntryKind, FileMeta};
use crate::files::namespace;
use crate::zk::Layout;

/// Names asked of the index (and entries read) at most at once.
const BATCH: usize = 1000;

/// One row of a listing.
#[derive(Debug)]
pub enum Found {
    Object { key: String, meta: Box<FileMeta> },
    Prefix(String),
}

impl Found {
    /// The key or common prefix, which is also where the next page starts after.
    pub fn name(&self) -> &str {
        match self {
            Found::Object { key, .. } => key,
            Found::Prefix(p) => p,
        }
    }
}

/// One page.
#[derive(Debug, Default)]
pub struct Page {
    pub found: Vec<Found>,
    /// More rows follow the last one.
    pub truncated: bool,
}

/// What to list.
pub struct Query<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Rows at or before this key (or common prefix) are left out.
    pub after: &'a str,
    pub max: usize,
}

/// A child of a directory, ordered by the key it stands for.
struct Child {
    /// The key, or for a directory the key with `/` added.
    order: String,
    native: String,
    entry: Entry,
}

impl PartialEq for Child {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}
impl Eq for Child {}
impl PartialOrd for Child {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Child {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order.cmp(&other.order)
    }
}

/// Whether everything below a directory whose keys all start with `dir_key` comes at or
/// before `after` (pure).
fn all_before(dir_key: &str, after: &str) -> bool {
    dir_key < after && !after.starts_with(dir_key)
}

/// The common prefix `key` rolls up into, if any (pure).
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let d = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    rest.find(d).map(|i| &key[..prefix.len() + i + d.len()])
}

/// Whether a child whose order (relative to its directory) is `order` may hold rows after
/// `after` (relative too; empty for none) (pure).
fn wanted(order: &str, is_dir: bool, after: &str) -> bool {
    if after.is_empty() {
        return true;
    }
    if is_dir {
        !all_before(order, after)
    } else {
        order > after
    }
}

/// The names a directory walk must look up by themselves before its range (pure): with
/// `after` in the directory (relative), its first segment, and each shorter prefix of that
/// which is followed by a byte below `/`, since such a name as a directory sorts after
/// names that continue it with that byte.
fn probes(after: &str, prefix: &str) -> Vec<String> {
    let first = after.split('/').next().unwrap_or_default();
    if first.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = first
        .bytes()
        .enumerate()
        .filter(|&(i, b)| i > 0 && b < b'/' && first.is_char_boundary(i))
        .map(|(i, _)| first[..i].to_string())
        .collect();
    out.push(first.to_string());
    out.retain(|n| n.starts_with(prefix) && !n.starts_with('%'));
    out
}

/// Where a directory's walk stands.
struct Frame {
    /// The native directory.
    native: String,
    /// What every key below it starts with.
    base: String,
    /// Keys (relative to `base`) must start with this; only in the prefix's directory.
    prefix: String,
    /// Rows at or before this (relative to `base`) are left out; empty for none.
    after: String,
    /// The last plain name read, and whether there are no more.
    last: Option<String>,
    done: bool,
    started: bool,
    /// Children read, not yet handed on, smallest first.
    ready: BinaryHeap<Reverse<Child>>,
}

struct Ctx<'a> {
    index: &'a DirIndex,
    client: &'a Client,
    layout: &'a Layout,
}

impl Frame {
    fn new(native: String, base: String, prefix: String, after: String) -> Self {
        Self {
            native,
            base,
            prefix,
            after,
            last: None,
            done: false,
            started: false,
            ready: BinaryHeap::new(),
        }
    }

    /// A frame with nothing in it.
    fn empty() -> Self {
        let mut f = Self::new(String::new(), String::new(), String::new(), String::new());
        f.started = true;
        f.done = true;
        f
    }

    /// The next child in key order, reading `want` names at a time.
    async fn next(&mut self, ctx: &Ctx<'_>, want: usize) -> Result<Option<Child>, ListError> {
        if !self.started {
            self.started = true;
            let mut names = escaped_names(ctx.index, &self.native).await?;
            for p in probes(&self.after, &self.prefix) {
                let found = ctx.index.names(self.query(None, p.clone(), 1)).await?;
                if found.first() == Some(&p) {
                    names.push(p);
                }
            }
            self.last = self
                .after
                .split('/')
                .next()
                .filter(|s| !s.is_empty())
                .map(String::from);
            self.add(ctx, names).await?;
        }
        loop {
            if let Some(Reverse(min)) = self.ready.peek() {
                // Every child's order starts with `base`: compare what follows it.
                let rel = min.order.get(self.base.len()..).unwrap_or_default();
                if self.done || self.last.as_deref().is_some_and(|l| rel <= l) {
                    return Ok(self.ready.pop().map(|Reverse(c)| c));
                }
            } else if self.done {
                return Ok(None);
            }
            let max = want.clamp(1, BATCH);
            let names = ctx
                .index
                .names(self.query(self.last.clone(), self.prefix.clone(), max))
                .await?;
            self.done = names.len() < max;
            if let Some(l) = names.last() {
                self.last = Some(l.clone());
            }
            let plain = names.into_iter().filter(|n| !n.starts_with('%')).collect();
            self.add(ctx, plain).await?;
        }
    }

    fn query(&self, after: Option<String>, starts_with: String, max: usize) -> NamesQuery {
        NamesQuery {
            dir: self.native.clone(),
            after,
            starts_with,
            max,
            fresh: false,
        }
    }

    /// Reads the entries of `names` (native names in this directory) and keeps the children
    /// that may hold rows.
    async fn add(&mut self, ctx: &Ctx<'_>, names: Vec<String>) -> Result<(), ListError> {
        let mut keyed = Vec::with_capacity(names.len());
        for n in names {
            let Some(key) = keys::decode_segment(&n) else {
                continue;
            };
            if key.starts_with(self.prefix.as_str()) {
                keyed.push((format!("{}/{n}", self.native), key));
            }
        }
        let paths: Vec<String> = keyed.iter().map(|(p, _)| p.clone()).collect();
        let entries = namespace::read_entries(ctx.client, ctx.layout, &paths).await?;
        for ((native, key), entry) in keyed.into_iter().zip(entries) {
            let Some(entry) = entry else { continue };
            let is_dir = entry.kind == EntryKind::Dir;
            let rel = if is_dir { format!("{key}/") } else { key };
            if wanted(&rel, is_dir, &self.after) {
                self.ready.push(Reverse(Child {
                    order: format!("{}{rel}", self.base),
                    native,
                    entry,
                }));
            }
        }
        Ok(())
    }
}

/// Every escaped name of a directory (they sort apart from the keys they stand for).
async fn escaped_names(index: &DirIndex, native: &str) -> Result<Vec<String>, ListError> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let batch = index
            .names(NamesQuery {
                dir: native.to_string(),
                after: out.last().cloned(),
                starts_with: "%".into(),
                max: BATCH,
                fresh: false,
            })
            .await?;
        let more = batch.len() == BATCH;
        out.extend(batch);
        if !more {
            return Ok(out);
        }
    }
}

/// Lists one page of `q.bucket` (which must exist).
pub async fn list(
    index: &DirIndex,
    client: &Client,
    layout: &Layout,
    q: &Query<'_>,
) -> Result<Page, ListError> {
    let ctx = Ctx {
        index,
        client,
        layout,
    };
    let (dirs, _) = keys::split_prefix(q.prefix);
    let mut native = q.bucket.to_string();
    for d in &dirs {
        native.push('/');
        native.push_str(d);
    }
    let base = match q.prefix.rfind('/') {
        Some(i) => &q.prefix[..=i],
        None => "",
    };
    // One `sync` for the whole page: the first question to the index is a fresh one.
    index
        .names(NamesQuery {
            dir: native.clone(),
            after: None,
            starts_with: String::new(),
            max: 0,
            fresh: true,
        })
        .await?;
    let top = match q.after.strip_prefix(base) {
        Some(after) => Frame::new(
            native,
            base.into(),
            q.prefix[base.len()..].into(),
            after.into(),
        ),
        None if q.after > base => Frame::empty(),
        None => Frame::new(
            native,
            base.into(),
            q.prefix[base.len()..].into(),
            String::new(),
        ),
    };
    let mut page = Page::default();
    let mut frames = vec![top];
    let mut last_prefix: Option<String> = None;
    while let Some(frame) = frames.last_mut() {
        let want = (q.max + 1).saturating_sub(page.found.len());
        let Some(child) = frame.next(&ctx, want).await? else {
            frames.pop();
            continue;
        };
        let row = match child.entry.kind {
            EntryKind::Dir => {
                let dir_key = &child.order;
                if !(dir_key.starts_with(q.prefix) || q.prefix.starts_with(dir_key.as_str()))
                    || all_before(dir_key, q.after)
                {
                    continue;
                }
                if q.delimiter == Some("/") && dir_key.len() > q.prefix.len() {
                    // Every key below rolls up into this directory's common prefix.
                    if dir_key.as_str() <= q.after {
                        continue;
                    }
                    Found::Prefix(child.order)
                } else {
                    let after = q.after.strip_prefix(dir_key.as_str()).unwrap_or_default();
                    frames.push(Frame::new(
                        child.native,
                        child.order.clone(),
                        String::new(),
                        after.into(),
                    ));
                    continue;
                }
            }
            EntryKind::File => {
                let key = child.order;
                if !key.starts_with(q.prefix) {
                    continue;
                }
                match common_prefix(&key, q.prefix, q.delimiter) {
                    Some(cp) => {
                        if cp <= q.after || last_prefix.as_deref() == Some(cp) {
                            continue;
                        }
                        Found::Prefix(cp.to_string())
                    }
                    None => {
                        if key.as_str() <= q.after {
                            continue;
                        }
                        let Some(meta) = child.entry.file else {
                            continue;
                        };
                        Found::Object {
                            key,
                            meta: Box::new(meta),
                        }
                    }
                }
            }
        };
        if page.found.len() == q.max {
            page.truncated = true;
            return Ok(page);
        }
        if let Found::Prefix(p) = &row {
            last_prefix = Some(p.clone());
        }
        page.found.push(row);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_wholly_before_the_start_are_skipped() {
        assert!(all_before("a/", "b"));
        assert!(!all_before("a/", "a/x"));
        assert!(!all_before("b/", "a"));
        // `a-` sorts before `a/`, so `a/` is not wholly before it.
        assert!(!all_before("a/", "a-"));
    }

    #[test]
    fn a_walk_after_a_key_looks_up_the_directories_that_sort_after_it() {
        // `a` as a directory (`a/`) sorts after `a-x`, though `a` is before it natively.
        assert_eq!(probes("a-x", ""), vec!["a".to_string(), "a-x".to_string()]);
        assert_eq!(probes("dir/deeper", ""), vec!["dir".to_string()]);
        assert_eq!(
            probes("file-1.txt", "file"),
            vec![
                "file".to_string(),
                "file-1".to_string(),
                "file-1.txt".to_string()
            ]
        );
        assert_eq!(probes("zz", "a"), Vec::<String>::new());
        assert_eq!(probes("", ""), Vec::<String>::new());
    }

    #[test]
    fn children_after_the_start_are_wanted() {
        assert!(wanted("b", false, ""));
        assert!(!wanted("a", false, "a"));
        assert!(wanted("a-1", false, "a"));
        // A directory holding the start is entered; one before it is not.
        assert!(wanted("a/", true, "a/x"));
        assert!(wanted("a/", true, "a-x"));
        assert!(!wanted("a/", true, "b"));
    }

    #[test]
    fn common_prefixes_end_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("x-1-2", "x", Some("-")), Some("x-"));
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(common_prefix("a/b", "", Some("")), None);
    }
}
