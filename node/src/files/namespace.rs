//! The file namespace in ZooKeeper: `files/<path>` nodes for files and directories.
//!
//! Reads go straight to ZooKeeper; every change goes through the leader's fenced write, so a
//! deposed leader cannot change the namespace. A file's node is replaced in one transaction,
//! so a reader sees the old file or the new one, never a mix.

use std::cmp::Ordering;

use zookeeper_client::{Client, Error as ZkClientError, MultiReadResult};

use super::known_dirs::KnownDirs;
use super::manifest::{self, ChunkRef, Entry, EntryKind, FileMeta, Part};
use super::path::FilePath;
use crate::fencing::{FenceError, FencedOp};
use crate::leadership::Leadership;
use crate::zk::{self, Layout, ZkError, records};

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A create-only commit found a file already there.
    #[error("{0} exists already")]
    Exists(String),
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error(transparent)]
    Zk(#[from] ZkError),
}

impl From<ZkClientError> for NsError {
    fn from(e: ZkClientError) -> Self {
        NsError::Zk(e.into())
    }
}

pub use filegrid_proto::head::ListItem;

/// Reads a file's manifest with its full chunk list, and the node version.
pub async fn lookup(
    client: &Client,
    layout: &Layout,
    path: &FilePath,
) -> Result<(FileMeta, i32), NsError> {
    let node = layout.file(path.as_str());
    let Some((entry, stat)) = zk::read::<Entry>(client, &node).await? else {
        return Err(NsError::NotFound(path.to_string()));
    };
    let Some(mut meta) = entry.file.filter(|_| entry.kind == EntryKind::File) else {
        return Err(NsError::NotFound(format!("{path} (a directory)")));
    };
    if meta.parts > 0 {
        let mut chunks = Vec::with_capacity(meta.chunk_count as usize);
        for i in 0..meta.parts {
            let part_path = layout.manifest_part(&meta.file_id, i);
            let Some((part, _)) = zk::read::<Part>(client, &part_path).await? else {
                return Err(NsError::Zk(ZkError::BadRecord {
                    path: part_path,
                    message: "manifest part missing".into(),
                }));
            };
            chunks.extend(part.chunks);
        }
        meta.chunks = chunks;
    }
    Ok((meta, stat.version))
}

/// Makes `meta` the content of `path` (creating parent directories), returning the file it
/// replaced. Large chunk lists are written as parts first; they become visible only with the
/// file node, in the final transaction.
pub async fn commit(
    lead: &Leadership,
    known: &KnownDirs,
    path: &FilePath,
    meta: FileMeta,
) -> Result<Option<FileMeta>, NsError> {
    commit_with(lead, known, path, meta, false).await
}

/// [`commit`]; with `must_be_new`, only where no file is yet ([`NsError::Exists`]
/// otherwise), decided in the same transaction that creates it.
pub async fn commit_with(
    lead: &Leadership,
    known: &KnownDirs,
    path: &FilePath,
    mut meta: FileMeta,
    must_be_new: bool,
) -> Result<Option<FileMeta>, NsError> {
    let client = lead.client();
    let layout = lead.layout();
    if manifest::list_size(&meta.chunks) > manifest::INLINE_LIMIT {
        let parts = manifest::split(&meta.chunks, manifest::PART_LIMIT);
        lead.write(&[FencedOp::Create {
            path: layout.manifest_dir(&meta.file_id),
            data: Vec::new(),
            options: layout.persistent(),
        }])
        .await?;
        for (i, chunks) in parts.iter().enumerate() {
            let part = Part {
                v: 1,
                chunks: chunks.clone(),
            };
            lead.write(&[FencedOp::Create {
                path: layout.manifest_part(&meta.file_id, i as u32),
                data: records::encode(&part),
                options: layout.persistent(),
            }])
            .await?;
        }
        meta.parts = parts.len() as u32;
        meta.chunks.clear();
    }
    let data = records::encode(&Entry::file(meta));
    let epoch = lead.epoch();
    let ancestors = path.ancestors();
    // A new file under directories known to exist: one transaction, no read first.
    if let Some(versions) = known.versions(epoch, &ancestors) {
        let mut ops: Vec<FencedOp> = ancestors
            .iter()
            .zip(versions)
            .map(|(dir, version)| FencedOp::Check {
                path: layout.file(dir),
                version,
            })
            .collect();
        ops.push(FencedOp::Create {
            path: layout.file(path.as_str()),
            data: data.clone(),
            options: layout.persistent(),
        });
        match lead.write(&ops).await {
            Ok(_) => return Ok(None),
            // The file exists already, or the map was wrong: take the read path.
            Err(FenceError::Operation {
                source:
                    ZkClientError::NodeExists | ZkClientError::BadVersion | ZkClientError::NoNode,
                ..
            }) => known.clear(),
            Err(e) => return Err(e.into()),
        }
    }
    // Retry when a concurrent change to the same path or its parents wins the race.
    for _ in 0..8 {
        // The parents and the file itself, read in one round trip.
        let generation = known.generation();
        let mut nodes: Vec<String> = ancestors.iter().map(|d| layout.file(d)).collect();
        nodes.push(layout.file(path.as_str()));
        let mut read = read_with_stats(client, &nodes).await?;
        let current = read.pop().flatten();
        let mut ops = Vec::new();
        // What the parents' versions will be once the transaction has gone through.
        let mut dirs = Vec::new();
        for (dir, entry) in ancestors.iter().zip(read) {
            match entry {
                None => {
                    ops.push(FencedOp::Create {
                        path: layout.file(dir),
                        data: records::encode(&Entry::dir()),
                        options: layout.persistent(),
                    });
                    dirs.push((*dir, 0));
                }
                Some((e, version)) if e.kind == EntryKind::Dir => {
                    ops.push(FencedOp::Check {
                        path: layout.file(dir),
                        version,
                    });
                    dirs.push((*dir, version));
                }
                Some(_) => {
                    return Err(NsError::Conflict(format!(
                        "{dir} is a file, so {path} cannot be created under it"
                    )));
                }
            }
        }
        let node = layout.file(path.as_str());
        let previous = match current {
            None => {
                ops.push(FencedOp::Create {
                    path: node,
                    data: data.clone(),
                    options: layout.persistent(),
                });
                None
            }
            Some((e, _)) if e.kind == EntryKind::File && must_be_new => {
                return Err(NsError::Exists(path.to_string()));
            }
            Some((e, version)) if e.kind == EntryKind::File => {
                ops.push(FencedOp::SetData {
                    path: node,
                    data: data.clone(),
                    version: Some(version),
                });
                e.file
            }
            Some(_) => {
                return Err(NsError::Conflict(format!("{path} is a directory")));
            }
        };
        match lead.write(&ops).await {
            Ok(_) => {
                for (dir, version) in dirs {
                    known.learn(epoch, generation, dir, version);
                }
                if let Some(prev) = &previous {
                    drop_parts(lead, prev).await;
                }
                return Ok(previous);
            }
            Err(FenceError::Operation {
                source:
                    ZkClientError::NodeExists | ZkClientError::BadVersion | ZkClientError::NoNode,
                ..
            }) => {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(NsError::Conflict(format!(
        "{path} is being changed concurrently; retry"
    )))
}

/// Deletes the file at `path` (and directories it leaves empty); returns what was deleted.
pub async fn remove(
    lead: &Leadership,
    known: &KnownDirs,
    path: &FilePath,
) -> Result<FileMeta, NsError> {
    let client = lead.client();
    let layout = lead.layout();
    for _ in 0..8 {
        let node = layout.file(path.as_str());
        let Some((e, stat)) = zk::read::<Entry>(client, &node).await? else {
            return Err(NsError::NotFound(path.to_string()));
        };
        let Some(meta) = e.file.filter(|_| e.kind == EntryKind::File) else {
            return Err(NsError::Conflict(format!("{path} is a directory")));
        };
        let mut ops = vec![FencedOp::Delete {
            path: node,
            version: Some(stat.version),
        }];
        // Parent directories that only held this file go with it, but for a bucket.
        let mut deleted = Vec::new();
        for dir in path.ancestors().into_iter().rev() {
            match client.check_stat(&layout.file(dir)).await? {
                Some(s) if s.num_children == 1 && !is_bucket(client, layout, dir).await? => {
                    ops.push(FencedOp::Delete {
                        path: layout.file(dir),
                        version: Some(s.version),
                    });
                    deleted.push(dir);
                }
                _ => break,
            }
        }
        // Forgotten before the write: a file stored meanwhile must not rely on them.
        for dir in &deleted {
            known.forget(dir);
        }
        match lead.write(&ops).await {
            Ok(_) => {
                // A sibling deleted at the same time saw this file still there and kept the
                // parent; whichever delete ends last removes what is left empty.
                let kept: Vec<&str> = path
                    .ancestors()
                    .into_iter()
                    .rev()
                    .filter(|d| !deleted.contains(d))
                    .collect();
                prune_empty(lead, known, &kept).await;
                drop_parts(lead, &meta).await;
                return Ok(meta);
            }
            Err(FenceError::Operation {
                source: ZkClientError::NotEmpty | ZkClientError::BadVersion | ZkClientError::NoNode,
                ..
            }) => {
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(NsError::Conflict(format!(
        "{path} is being changed concurrently; retry"
    )))
}

/// Deletes the directories of `dirs` (deepest first) that are empty, up to the first that is
/// not (or is a bucket). Best effort: a directory left empty is harmless, only untidy.
async fn prune_empty(lead: &Leadership, known: &KnownDirs, dirs: &[&str]) {
    let client = lead.client();
    let layout = lead.layout();
    for dir in dirs {
        let node = layout.file(dir);
        let Ok(Some(stat)) = client.check_stat(&node).await else {
            return;
        };
        if stat.num_children > 0 || !matches!(is_bucket(client, layout, dir).await, Ok(false)) {
            return;
        }
        known.forget(dir);
        if lead
            .write(&[FencedOp::Delete {
                path: node,
                version: Some(stat.version),
            }])
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Whether `dir` is an S3 bucket (kept when empty); only top-level directories can be.
async fn is_bucket(client: &Client, layout: &Layout, dir: &str) -> Result<bool, NsError> {
    if dir.contains('/') {
        return Ok(false);
    }
    Ok(zk::read::<Entry>(client, &layout.file(dir))
        .await?
        .is_some_and(|(e, _)| e.bucket))
}

/// Removes the manifest parts of a replaced or deleted file (best effort: leftovers are
/// collected with orphaned chunks).
async fn drop_parts(lead: &Leadership, meta: &FileMeta) {
    if meta.parts == 0 {
        return;
    }
    let layout = lead.layout();
    let mut ops: Vec<FencedOp> = (0..meta.parts)
        .map(|i| FencedOp::Delete {
            path: layout.manifest_part(&meta.file_id, i),
            version: None,
        })
        .collect();
    ops.push(FencedOp::Delete {
        path: layout.manifest_dir(&meta.file_id),
        version: None,
    });
    if let Err(e) = lead.write(&ops).await {
        tracing::warn!(file_id = %meta.file_id, error = %e, "could not remove manifest parts");
    }
}

/// Replaces the chunk list of the file at `path` if it still is the write `file_id` (used by
/// repairs). `Ok(false)` when the file changed meanwhile.
pub async fn update_chunks(
    lead: &Leadership,
    path: &str,
    file_id: &str,
    update: impl Fn(&mut Vec<ChunkRef>),
) -> Result<bool, NsError> {
    let client = lead.client();
    let Ok(fp) = FilePath::parse(path) else {
        return Ok(false);
    };
    let (mut meta, version) = match lookup(client, lead.layout(), &fp).await {
        Ok(r) => r,
        Err(NsError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    if meta.file_id != file_id {
        return Ok(false);
    }
    update(&mut meta.chunks);
    let layout = lead.layout();
    let ops = if meta.parts > 0 {
        // Rewrite the parts in place; the file node's version is checked so a concurrent
        // overwrite (which uses a new file_id and new parts) is not disturbed.
        let parts = manifest::split(&meta.chunks, manifest::PART_LIMIT);
        if parts.len() as u32 != meta.parts {
            return Ok(false);
        }
        let mut ops = vec![FencedOp::Check {
            path: layout.file(path),
            version,
        }];
        for (i, chunks) in parts.into_iter().enumerate() {
            ops.push(FencedOp::SetData {
                path: layout.manifest_part(file_id, i as u32),
                data: records::encode(&Part { v: 1, chunks }),
                version: None,
            });
        }
        ops
    } else {
        vec![FencedOp::SetData {
            path: layout.file(path),
            data: records::encode(&Entry::file(meta)),
            version: Some(version),
        }]
    };
    match lead.write(&ops).await {
        Ok(_) => Ok(true),
        Err(FenceError::Operation { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Orders paths segment by segment (the order of a depth-first walk with sorted children).
pub fn path_cmp(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Files whose path starts with `prefix`, after `cursor`, at most `limit`, in `path_cmp`
/// order; and the cursor to continue from when there are more.
pub async fn list(
    client: &Client,
    layout: &Layout,
    prefix: &str,
    limit: usize,
    cursor: Option<&str>,
) -> Result<(Vec<ListItem>, Option<String>), NsError> {
    // Start at the deepest directory that certainly contains every match.
    let start = prefix
        .rfind('/')
        .map(|i| prefix[..i].to_string())
        .unwrap_or_default();
    let mut out = Vec::new();
    // A depth-first walk with children in order: each frame holds a directory's remaining
    // children (already read) in reverse, so `pop` yields the next one.
    let mut frames: Vec<Vec<(String, Entry)>> =
        vec![read_dir(client, layout, &start, prefix).await?];
    while let Some(frame) = frames.last_mut() {
        let Some((p, entry)) = frame.pop() else {
            frames.pop();
            continue;
        };
        match entry.kind {
            EntryKind::Dir => {
                let skip = cursor.is_some_and(|c| {
                    path_cmp(&p, c) == Ordering::Less && !c.starts_with(&format!("{p}/"))
                });
                if !skip {
                    frames.push(read_dir(client, layout, &p, prefix).await?);
                }
            }
            EntryKind::File => {
                let Some(f) = entry.file else { continue };
                if !p.starts_with(prefix)
                    || cursor.is_some_and(|c| path_cmp(&p, c) != Ordering::Greater)
                {
                    continue;
                }
                if out.len() == limit {
                    let next = out.last().map(|i: &ListItem| i.path.clone());
                    return Ok((out, next));
                }
                out.push(ListItem {
                    path: p,
                    size: f.size,
                    mtime: f.mtime,
                    checksum: f.checksum,
                });
            }
        }
    }
    Ok((out, None))
}

/// The children of `dir` that may hold matches of `prefix`, read, in reverse order.
async fn read_dir(
    client: &Client,
    layout: &Layout,
    dir: &str,
    prefix: &str,
) -> Result<Vec<(String, Entry)>, NsError> {
    let node = if dir.is_empty() {
        layout.files()
    } else {
        layout.file(dir)
    };
    let mut names = match client.list_children(&node).await {
        Ok(n) => n,
        Err(ZkClientError::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    let children: Vec<String> = names
        .into_iter()
        .map(|n| {
            if dir.is_empty() {
                n
            } else {
                format!("{dir}/{n}")
            }
        })
        .filter(|p| p.starts_with(prefix) || prefix.starts_with(&format!("{p}/")))
        .collect();
    let entries = read_entries(client, layout, &children).await?;
    let mut out: Vec<(String, Entry)> = children
        .into_iter()
        .zip(entries)
        .filter_map(|(p, e)| e.map(|e| (p, e)))
        .collect();
    out.reverse();
    Ok(out)
}

/// Reads entries with their data versions, all in one round trip.
async fn read_with_stats(
    client: &Client,
    nodes: &[String],
) -> Result<Vec<Option<(Entry, i32)>>, NsError> {
    let mut reader = client.new_multi_reader();
    for n in nodes {
        reader.add_get_data(n)?;
    }
    let mut out = Vec::with_capacity(nodes.len());
    for (n, r) in nodes.iter().zip(reader.commit().await?) {
        out.push(match r {
            MultiReadResult::Data { data, stat } => {
                Some((records::decode::<Entry>(n, &data)?, stat.version))
            }
            _ => None,
        });
    }
    Ok(out)
}

/// Reads many entries in few round trips.
pub(crate) async fn read_entries(
    client: &Client,
    layout: &Layout,
    paths: &[String],
) -> Result<Vec<Option<Entry>>, NsError> {
    let mut out = Vec::with_capacity(paths.len());
    for batch in paths.chunks(256) {
        let mut reader = client.new_multi_reader();
        for p in batch {
            reader.add_get_data(&layout.file(p))?;
        }
        for (p, r) in batch.iter().zip(reader.commit().await?) {
            out.push(match r {
                MultiReadResult::Data { data, .. } => {
                    Some(records::decode::<Entry>(&layout.file(p), &data)?)
                }
                _ => None,
            });
        }
    }
    Ok(out)
}

/// Every file with its full chunk list (the leader's start-up scan and its repair passes).
pub async fn walk(client: &Client, layout: &Layout) -> Result<Vec<(String, FileMeta)>, NsError> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        let node = if dir.is_empty() {
            layout.files()
        } else {
            layout.file(&dir)
        };
        let names = match client.list_children(&node).await {
            Ok(n) => n,
            Err(ZkClientError::NoNode) => continue,
            Err(e) => return Err(e.into()),
        };
        let children: Vec<String> = names
            .into_iter()
            .map(|n| {
                if dir.is_empty() {
                    n
                } else {
                    format!("{dir}/{n}")
                }
            })
            .collect();
        let entries = read_entries(client, layout, &children).await?;
        for (p, e) in children.into_iter().zip(entries) {
            match e {
                Some(e) if e.kind == EntryKind::Dir => stack.push(p),
                Some(_) => {
                    if let Ok(fp) = FilePath::parse(&p) {
                        match lookup(client, layout, &fp).await {
                            Ok((meta, _)) => out.push((p, meta)),
                            Err(NsError::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                None => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_order_is_depth_first() {
        let mut v = vec!["a.c", "a/b", "a/a/z", "b", "a"];
        v.sort_by(|a, b| path_cmp(a, b));
        assert_eq!(v, ["a", "a/a/z", "a/b", "a.c", "b"]);
    }
}
