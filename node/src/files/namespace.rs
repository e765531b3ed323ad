//! The file namespace in ZooKeeper: `files/<path>` nodes for files and directories.
//!
//! Reads go straight to ZooKeeper; every change goes through the leader's fenced write, so a
//! deposed leader cannot change the namespace. A file's node is replaced in one transaction,
//! so a reader sees the old file or the new one, never a mix.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use zookeeper_client::{Client, Error as ZkClientError, MultiReadResult};

use super::known_dirs::KnownDirs;
use super::manifest::{self, Entry, EntryKind, FileMeta, Part};
use super::path::FilePath;
use super::precondition::{self, Precondition, Refusal};
use crate::fencing::{FenceError, FencedOp};
use crate::ids::ServerId;
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
    /// A conditional change found a file that does not pass its condition; why.
    #[error("{0}")]
    Precondition(String),
    /// Concurrent changes to the path or its parents kept winning; nothing was changed.
    #[error("{0} is being changed concurrently; retry")]
    Contended(String),
    /// A manifest node would be larger than one ZooKeeper request may carry; it is not sent
    /// (ZooKeeper would drop the connection).
    #[error("{path}: {bytes} bytes is more than one ZooKeeper request may carry")]
    TooLarge { path: String, bytes: usize },
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
    let (meta, version, _) = lookup_with_parts(client, layout, path).await?;
    Ok((meta, version))
}

/// [`lookup`], and how many chunks each manifest part held (empty for an inline list), so
/// that a later change of a chunk rewrites only its part.
pub async fn lookup_with_parts(
    client: &Client,
    layout: &Layout,
    path: &FilePath,
) -> Result<(FileMeta, i32, Vec<usize>), NsError> {
    let node = layout.file(path.as_str());
    let Some((entry, stat)) = zk::read::<Entry>(client, &node).await? else {
        return Err(NsError::NotFound(path.to_string()));
    };
    let Some(mut meta) = entry.file.filter(|_| entry.kind == EntryKind::File) else {
        return Err(NsError::NotFound(format!("{path} (a directory)")));
    };
    let mut part_lens = Vec::new();
    if meta.parts > 0 {
        // The count is only a hint for the allocation: it comes from ZooKeeper.
        let mut chunks = Vec::with_capacity(meta.chunk_count.min(1 << 20) as usize);
        for i in 0..meta.parts {
            let (part, _) = read_part(client, layout, &meta.file_id, i).await?;
            part_lens.push(part.chunks.len());
            chunks.extend(part.chunks);
        }
        meta.chunks = chunks;
    }
    Ok((meta, stat.version, part_lens))
}

/// Manifest part `i` of `file_id` and its data version; a missing part is a bad record.
async fn read_part(
    client: &Client,
    layout: &Layout,
    file_id: &str,
    i: u32,
) -> Result<(Part, i32), NsError> {
    let part_path = layout.manifest_part(file_id, i);
    match zk::read::<Part>(client, &part_path).await? {
        Some((part, stat)) => Ok((part, stat.version)),
        None => Err(NsError::Zk(ZkError::BadRecord {
            path: part_path,
            message: "manifest part missing".into(),
        })),
    }
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
    commit_with(lead, known, path, meta, &Precondition::Any).await
}

/// [`commit`] only where the file at `path` passes `pre`, judged in the same transaction
/// that replaces or creates it ([`NsError::Exists`], [`NsError::NotFound`] or
/// [`NsError::Precondition`] otherwise).
pub async fn commit_with(
    lead: &Leadership,
    known: &KnownDirs,
    path: &FilePath,
    mut meta: FileMeta,
    pre: &Precondition,
) -> Result<Option<FileMeta>, NsError> {
    if manifest::list_size(&meta.chunks) <= manifest::INLINE_LIMIT {
        return commit_entry(lead, known, path, meta, pre).await;
    }
    let file_id = meta.file_id.clone();
    let parts = manifest::split(&meta.chunks, manifest::PART_LIMIT);
    let (written, result) = match write_parts(lead, &file_id, &parts).await {
        Ok(()) => {
            meta.parts = parts.len() as u32;
            meta.chunks.clear();
            let result = commit_entry(lead, known, path, meta, pre).await;
            (parts.len() as u32, result)
        }
        Err((count, e)) => (count, Err(e)),
    };
    // Parts of a commit that certainly did not happen name chunks no file has: remove them.
    // After an answer that may hide a commit (a lost connection) they stay.
    if let Err(e) = &result
        && never_committed(e)
    {
        drop_parts_of(lead, &file_id, written).await;
    }
    result
}

/// Whether a failed commit certainly changed nothing (pure).
fn never_committed(e: &NsError) -> bool {
    matches!(
        e,
        NsError::Exists(_)
            | NsError::NotFound(_)
            | NsError::Precondition(_)
            | NsError::Contended(_)
            | NsError::Conflict(_)
            | NsError::TooLarge { .. }
            | NsError::Fence(FenceError::Operation { .. })
    )
}

/// Judges `pre` on the file at `path` as it is now (its node alone, no chunk list), so a
/// change that cannot pass is refused before its body is stored anywhere. Only a first look:
/// the commit judges `pre` again in its own transaction, and that decides.
pub async fn judge_now(
    lead: &Leadership,
    path: &FilePath,
    pre: &Precondition,
) -> Result<(), NsError> {
    if matches!(pre, Precondition::Any) {
        return Ok(());
    }
    let current = zk::read::<Entry>(lead.client(), &lead.layout().file(path.as_str()))
        .await?
        .and_then(|(e, _)| e.file.filter(|_| e.kind == EntryKind::File));
    precondition::judge(pre, current.as_ref()).map_err(|r| refused(path, r))
}

/// A failed precondition as the namespace error it is answered with.
fn refused(path: &FilePath, r: Refusal) -> NsError {
    match r {
        Refusal::Exists => NsError::Exists(path.to_string()),
        Refusal::Missing => NsError::NotFound(path.to_string()),
        Refusal::Mismatch(why) => NsError::Precondition(format!("{path}: {why}")),
    }
}

/// Creates the manifest directory and parts of `file_id`, each in a request of its own; on
/// failure, how many parts were created.
async fn write_parts(
    lead: &Leadership,
    file_id: &str,
    parts: &[Vec<manifest::ChunkRef>],
) -> Result<(), (u32, NsError)> {
    let layout = lead.layout();
    lead.write(&[FencedOp::Create {
        path: layout.manifest_dir(file_id),
        data: Vec::new(),
        options: layout.persistent(),
    }])
    .await
    .map_err(|e| (0, e.into()))?;
    for (i, chunks) in parts.iter().enumerate() {
        let part = Part {
            v: 1,
            chunks: chunks.clone(),
        };
        lead.write(&[FencedOp::Create {
            path: layout.manifest_part(file_id, i as u32),
            data: records::encode(&part),
            options: layout.persistent(),
        }])
        .await
        .map_err(|e| (i as u32, e.into()))?;
    }
    Ok(())
}

/// Makes the file node of `path` hold `meta` (whose parts, if any, are written).
async fn commit_entry(
    lead: &Leadership,
    known: &KnownDirs,
    path: &FilePath,
    meta: FileMeta,
    pre: &Precondition,
) -> Result<Option<FileMeta>, NsError> {
    let client = lead.client();
    let layout = lead.layout();
    let data = records::encode(&Entry::file(meta));
    let epoch = lead.epoch();
    let ancestors = path.ancestors();
    // A new file under directories known to exist: one transaction, no read first (unless
    // the condition needs a file there).
    if let Some(versions) = known
        .versions(epoch, &ancestors)
        .filter(|_| pre.allows_absent() && !known.holds_file(epoch, path.as_str()))
    {
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
        let checks = ops.len() - 1;
        match lead.write(&ops).await {
            Ok(_) => {
                known.learn_file(epoch, path.as_str());
                return Ok(None);
            }
            // The file exists already, or the map was wrong: take the read path.
            Err(FenceError::Operation {
                index,
                source:
                    source @ (ZkClientError::NodeExists
                    | ZkClientError::BadVersion
                    | ZkClientError::NoNode),
            }) => {
                if map_was_wrong(index, checks, &source) {
                    known.clear();
                } else {
                    known.learn_file(epoch, path.as_str());
                }
            }
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
        let current_file = match &current {
            Some((e, _)) if e.kind != EntryKind::File => {
                return Err(NsError::Conflict(format!("{path} is a directory")));
            }
            Some((e, _)) => e.file.as_ref(),
            None => None,
        };
        precondition::judge(pre, current_file).map_err(|r| refused(path, r))?;
        let previous = match current {
            None => {
                ops.push(FencedOp::Create {
                    path: node,
                    data: data.clone(),
                    options: layout.persistent(),
                });
                None
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
                known.learn_file(epoch, path.as_str());
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
    Err(NsError::Contended(path.to_string()))
}

/// Whether a new-file transaction that failed at op `index` with `source` proves the map of
/// known directories wrong (pure). Its first `checks` ops check the parents' versions and
/// the last creates the file; ZooKeeper names the first op that failed, so a `NodeExists` of
/// the file means every parent check passed: the file is merely there already (an
/// overwrite), and the map stays for the next new file.
fn map_was_wrong(index: usize, checks: usize, source: &ZkClientError) -> bool {
    !(index == checks && matches!(source, ZkClientError::NodeExists))
}

/// Deletes the file at `path` (and directories it leaves empty); returns what was deleted.
/// Only a file that passes `pre` is deleted, judged in the same transaction
/// ([`NsError::Precondition`] otherwise).
pub async fn remove(
    lead: &Leadership,
    known: &KnownDirs,
    path: &FilePath,
    pre: &Precondition,
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
        precondition::judge(pre, Some(&meta)).map_err(|r| refused(path, r))?;
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
        known.forget_file(path.as_str());
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
    Err(NsError::Contended(path.to_string()))
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

/// Removes the manifest parts of a replaced or deleted file (best effort: a part left behind
/// is unreachable, the file node no longer names it). The deletions go in batches that
/// each stay under [`manifest::REQUEST_LIMIT`], the directory last.
async fn drop_parts(lead: &Leadership, meta: &FileMeta) {
    if meta.parts == 0 {
        return;
    }
    drop_parts_of(lead, &meta.file_id, meta.parts).await;
}

/// Removes parts `0..parts` of `file_id` and its manifest directory, as [`drop_parts`].
async fn drop_parts_of(lead: &Leadership, file_id: &str, parts: u32) {
    let layout = lead.layout();
    let mut paths: Vec<String> = (0..parts)
        .map(|i| layout.manifest_part(file_id, i))
        .collect();
    paths.push(layout.manifest_dir(file_id));
    let sizes: Vec<usize> = paths
        .iter()
        .map(|p| p.len() + manifest::OP_OVERHEAD)
        .collect();
    let fence = 2 * manifest::OP_OVERHEAD + layout.root().len();
    for range in manifest::batches(&sizes, fence, manifest::REQUEST_LIMIT) {
        let ops: Vec<FencedOp> = paths[range]
            .iter()
            .map(|path| FencedOp::Delete {
                path: path.clone(),
                version: None,
            })
            .collect();
        if let Err(e) = lead.write(&ops).await {
            tracing::warn!(file_id, error = %e, "could not remove manifest parts");
            return;
        }
    }
}

/// Sets new replica lists (`changes`, by chunk id) in the manifest of the file at `path`, if
/// it still is the write `file_id` (used by repairs). `Ok(false)` when the file changed
/// meanwhile.
///
/// An inline list is rewritten with its file node. A split list is rewritten part by part,
/// and only the parts holding a changed chunk: `part_of` says where a chunk was when the
/// manifest was read (a chunk it does not place, or does not find there, is looked for in
/// the other parts). Each part goes in a request of its own that also checks the file
/// node's version, so a concurrent overwrite (a new `file_id`, new parts) is not disturbed,
/// and the part's own version, so two writers never lose each other's change. A reader sees
/// each chunk's old list or its new one, both of which name servers holding it.
pub async fn update_chunks(
    lead: &Leadership,
    path: &str,
    file_id: &str,
    changes: &BTreeMap<String, Vec<ServerId>>,
    part_of: &(dyn Fn(&str) -> Option<u32> + Sync),
) -> Result<bool, NsError> {
    if changes.is_empty() {
        return Ok(true);
    }
    let client = lead.client();
    let layout = lead.layout();
    let Ok(fp) = FilePath::parse(path) else {
        return Ok(false);
    };
    let node = layout.file(fp.as_str());
    let Some((entry, stat)) = zk::read::<Entry>(client, &node).await? else {
        return Ok(false);
    };
    let Some(mut meta) = entry.file.filter(|_| entry.kind == EntryKind::File) else {
        return Ok(false);
    };
    if meta.file_id != file_id {
        return Ok(false);
    }
    let mut found = HashSet::new();
    if meta.parts == 0 {
        if !manifest::set_replicas(&mut meta.chunks, changes, &mut found) {
            return Ok(true);
        }
        let data = records::encode(&Entry::file(meta));
        return write_manifest_node(
            lead,
            FencedOp::SetData {
                path: node,
                data,
                version: Some(stat.version),
            },
            None,
        )
        .await;
    }
    // The parts `part_of` names first, then the others while some change is not found.
    let named: BTreeSet<u32> = changes
        .keys()
        .filter_map(|id| part_of(id))
        .filter(|p| *p < meta.parts)
        .collect();
    let rest = (0..meta.parts).filter(|p| !named.contains(p));
    let mut written = 0usize;
    for i in named.iter().copied().chain(rest) {
        if found.len() == changes.len() {
            break;
        }
        let (mut part, part_version) = read_part(client, layout, file_id, i).await?;
        if !manifest::set_replicas(&mut part.chunks, changes, &mut found) {
            continue;
        }
        let applied = write_manifest_node(
            lead,
            FencedOp::SetData {
                path: layout.manifest_part(file_id, i),
                data: records::encode(&part),
                version: Some(part_version),
            },
            Some(FencedOp::Check {
                path: node.clone(),
                version: stat.version,
            }),
        )
        .await?;
        if !applied {
            return Ok(false);
        }
        written += 1;
    }
    tracing::debug!(path = %path, parts = written, "rewrote manifest parts");
    Ok(true)
}

/// Refuses node data that, with the fence's checks and another operation, would make a
/// request larger than ZooKeeper accepts: sent, it would cost the connection.
pub(crate) fn fits_request(path: &str, data: &[u8]) -> Result<(), NsError> {
    let bytes = data.len() + path.len();
    if bytes + 4 * manifest::OP_OVERHEAD > manifest::REQUEST_LIMIT {
        tracing::error!(path = %path, bytes, "a record is larger than one ZooKeeper request may carry; not written");
        return Err(NsError::TooLarge {
            path: path.to_string(),
            bytes,
        });
    }
    Ok(())
}

/// Writes one manifest node (after `check`, if any) through the fence, refusing data larger
/// than a request may carry. `Ok(false)` when a version check failed.
async fn write_manifest_node(
    lead: &Leadership,
    op: FencedOp,
    check: Option<FencedOp>,
) -> Result<bool, NsError> {
    if let FencedOp::SetData { path, data, .. } = &op {
        fits_request(path, data)?;
    }
    let ops: Vec<FencedOp> = check.into_iter().chain([op]).collect();
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
    // Four batches in flight at once: one round trip's wait for all of them, with a bound
    // on what a walk of the whole namespace holds in flight.
    let mut out = Vec::with_capacity(paths.len());
    for group in paths.chunks(4 * 256) {
        let mut reads = Vec::with_capacity(4);
        for batch in group.chunks(256) {
            reads.push(read_batch(client, layout, batch));
        }
        for entries in futures::future::try_join_all(reads).await? {
            out.extend(entries);
        }
    }
    Ok(out)
}

async fn read_batch(
    client: &Client,
    layout: &Layout,
    batch: &[String],
) -> Result<Vec<Option<Entry>>, NsError> {
    let mut reader = client.new_multi_reader();
    for p in batch {
        reader.add_get_data(&layout.file(p))?;
    }
    let mut out = Vec::with_capacity(batch.len());
    for (p, r) in batch.iter().zip(reader.commit().await?) {
        out.push(match r {
            MultiReadResult::Data { data, .. } => {
                Some(records::decode::<Entry>(&layout.file(p), &data)?)
            }
            _ => None,
        });
    }
    Ok(out)
}

/// Every file with its full chunk list, as [`walk`] reads it, and how many chunks each
/// manifest part holds for files whose list is split (by `file_id`).
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<(String, FileMeta)>,
    pub part_lens: HashMap<String, Vec<usize>>,
}

/// Every file with its full chunk list (the leader's start-up scan and its repair passes).
pub async fn walk(client: &Client, layout: &Layout) -> Result<Walk, NsError> {
    let mut out = Walk::default();
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
                        match lookup_with_parts(client, layout, &fp).await {
                            Ok((meta, _, lens)) => {
                                if !lens.is_empty() {
                                    out.part_lens.insert(meta.file_id.clone(), lens);
                                }
                                out.files.push((p, meta));
                            }
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

    #[test]
    fn only_a_file_already_there_keeps_the_map_of_known_directories() {
        // Two parent checks, then the create at index 2.
        assert!(!map_was_wrong(2, 2, &ZkClientError::NodeExists));
        // A parent's version moved, or a parent is gone.
        assert!(map_was_wrong(0, 2, &ZkClientError::BadVersion));
        assert!(map_was_wrong(1, 2, &ZkClientError::NoNode));
        // The create failed because a parent is missing.
        assert!(map_was_wrong(2, 2, &ZkClientError::NoNode));
        // A file directly under the root: no checks.
        assert!(!map_was_wrong(0, 0, &ZkClientError::NodeExists));
    }

    #[test]
    fn only_certain_failures_remove_the_parts_of_a_commit() {
        assert!(never_committed(&NsError::Exists("a".into())));
        assert!(never_committed(&NsError::Conflict("a".into())));
        assert!(never_committed(&NsError::NotFound("a".into())));
        assert!(never_committed(&NsError::Precondition("a".into())));
        assert!(never_committed(&NsError::Contended("a".into())));
        assert!(never_committed(&NsError::Fence(FenceError::Operation {
            index: 2,
            source: ZkClientError::NodeExists,
        })));
        // The transaction may have gone through before the connection broke.
        assert!(!never_committed(&NsError::Fence(FenceError::Zk(
            ZkClientError::ConnectionLoss
        ))));
    }
}
