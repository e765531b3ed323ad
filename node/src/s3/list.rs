//! Listing a bucket in S3's order (keys by their UTF-8 bytes), with a prefix, a delimiter
//! and a position to start after.
//!
//! The walk goes depth first over the bucket's native directories. Within a directory the
//! children are ordered by the key they stand for, a directory as its key with `/` added:
//! since every key below a directory starts with that, the depth-first walk yields keys in
//! byte order. With the delimiter `/` a directory is one common prefix and is not entered.

use zookeeper_client::{Client, Error as ZkClientError};

use super::keys;
use crate::files::manifest::{Entry, EntryKind, FileMeta};
use crate::files::namespace::{self, NsError};
use crate::zk::Layout;

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

/// Lists one page of `q.bucket` (which must exist).
pub async fn list(client: &Client, layout: &Layout, q: &Query<'_>) -> Result<Page, NsError> {
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
    let mut page = Page::default();
    let mut frames = vec![read_children(client, layout, &native, base, q).await?];
    let mut last_prefix: Option<String> = None;
    while let Some(frame) = frames.last_mut() {
        let Some(child) = frame.pop() else {
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
                    let below =
                        read_children(client, layout, &child.native, &child.order, q).await?;
                    frames.push(below);
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

/// The children of the native directory `native` (whose keys start with `base`) that may
/// hold rows of `q`, read, in reverse key order (so `pop` yields the next).
async fn read_children(
    client: &Client,
    layout: &Layout,
    native: &str,
    base: &str,
    q: &Query<'_>,
) -> Result<Vec<Child>, NsError> {
    let names = match client.list_children(&layout.file(native)).await {
        Ok(n) => n,
        Err(ZkClientError::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut wanted: Vec<(String, String)> = names
        .into_iter()
        .filter_map(|n| {
            let key = format!("{base}{}", keys::decode_segment(&n)?);
            let as_dir = format!("{key}/");
            let relevant = key.starts_with(q.prefix) || q.prefix.starts_with(&as_dir);
            (relevant && !all_before(&as_dir, q.after)).then(|| (format!("{native}/{n}"), key))
        })
        .collect();
    wanted.sort_by(|a, b| a.1.cmp(&b.1));
    let paths: Vec<String> = wanted.iter().map(|(p, _)| p.clone()).collect();
    let entries = namespace::read_entries(client, layout, &paths).await?;
    let mut out: Vec<Child> = wanted
        .into_iter()
        .zip(entries)
        .filter_map(|((native, key), e)| {
            let e = e?;
            let order = match e.kind {
                EntryKind::Dir => format!("{key}/"),
                EntryKind::File => key,
            };
            Some(Child {
                order,
                native,
                entry: e,
            })
        })
        .collect();
    out.sort_by(|a, b| b.order.cmp(&a.order));
    Ok(out)
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
    fn common_prefixes_end_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("x-1-2", "x", Some("-")), Some("x-"));
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(common_prefix("a/b", "", Some("")), None);
    }
}
