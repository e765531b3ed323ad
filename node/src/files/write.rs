//! Uploads: the body is cut into chunks as it streams in; each chunk goes down a replica
//! pipeline (first server forwards to the next) and is acknowledged only once every server of
//! the pipeline has it durably. A replica that fails is replaced by another live server. The
//! file becomes visible only when its manifest is committed through the fenced write.
//!
//! At most [`IN_FLIGHT`] chunks are on their way per upload, plus the one being filled, so
//! memory stays flat whatever the file size. Chunks on their way are driven while the body
//! is read, not only when the next chunk is full: however slowly a client sends, a chunk
//! handed to its pipeline finishes at the pipeline's speed (a stored chunk waiting for the
//! next one to fill would see its call time out). A chunk's buffer goes back to the head's
//! [`crate::buffers`] pool once its replicas have it, for a later chunk of this or another
//! upload: a fresh 8 MiB buffer costs 2,048 page faults and as many zeroed pages, which was a
//! third of the head's CPU on a large upload.
//!
//! While [`store`] runs, its file id is registered in [`super::live::LiveUploads`]: the orphan
//! collector never deletes a chunk of an upload still storing, however long it takes.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;

use super::manifest::{ChunkRef, FileMeta};
use super::path::FilePath;
use super::precondition::Precondition;
use super::{DataError, DataPlane, namespace, placement};
use crate::chunk::Checksum;
use crate::cluster::ChunkCallError;
use crate::cluster::client::PutChunk;
use crate::ids::ServerId;
use crate::leadership::Leadership;
use crate::multi_md5::{Md5, Md5Stream, kernel};
use crate::zk::records;
use filegrid_proto::ErrorCode;
use filegrid_proto::chunk::PutResponse;

/// Chunks of one upload in memory at once.
const IN_FLIGHT: usize = 3;

/// Pipelines tried for one chunk at most: each attempt rules out a server or stores the chunk.
const MAX_ATTEMPTS: usize = 8;

/// Digests computed over an upload's bytes as they stream through, beside the CRC32C every
/// upload keeps: no second pass over the data.
#[derive(Default)]
pub struct Digests {
    /// The MD5 of the content (the S3 ETag of a single-part upload).
    pub md5: Option<Md5>,
    /// A checksum the client announced (`x-amz-checksum-*`), to verify once the body ends.
    pub checksum: Option<s3s::checksum::ChecksumHasher>,
}

impl Digests {
    fn update(&mut self, data: &[u8]) {
        if let Some(m) = &mut self.md5 {
            m.update(data);
        }
        if let Some(c) = &mut self.checksum {
            c.update(data);
        }
    }
}

/// Bytes after which an upload's digests are computed off the task that reads the body:
/// hashing there would slow the upload by the hashing time (MD5 runs at about 600 MB/s,
/// 1.7 ms per MiB); a small body is not worth the hand-off. The MD5 goes to the
/// [`multi_md5`](crate::multi_md5) thread, which hashes concurrent uploads together, where
/// the CPU can ([`kernel::lanes_available`]); a checksum, and the MD5 elsewhere, to a thread of
/// the upload's own, so that uploads are still hashed side by side on every core.
///
/// The digests are fed whole chunks, the very buffers sent to the replicas, not the body's
/// frames as they arrive: a frame held for hashing pins the HTTP connection's read buffer,
/// which then reads the next bytes into fresh memory (a page fault per 4 KiB), while a chunk
/// buffer is only kept from the pool a little longer.
const HASH_APART_AFTER: u64 = 64 << 10;

/// Chunks queued for an upload's hashing thread at most (backpressure beyond): with the one
/// being hashed, an upload holds at most three chunks' buffers for it.
const HASH_QUEUE: usize = 2;

/// Where an upload's digests are computed.
enum Hashing {
    Inline(Box<Digests>),
    Apart {
        md5: Option<Md5Stream>,
        thread: Option<DigestThread>,
    },
}

/// Digests computed on a thread of the upload's own.
struct DigestThread {
    frames: tokio::sync::mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<Digests>,
}

impl DigestThread {
    fn start(mut digests: Digests) -> Self {
        let (frames, mut rx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(b) = rx.blocking_recv() {
                digests.update(&b);
            }
            digests
        });
        Self { frames, done }
    }
}

impl Hashing {
    /// Hashing off the upload's task: the MD5 on the batching thread if `batch_md5`, the
    /// rest on a thread of the upload's own.
    fn apart(mut rest: Digests, batch_md5: bool) -> Self {
        let md5 = if batch_md5 {
            rest.md5.take().map(Md5Stream::start)
        } else {
            None
        };
        let thread =
            (rest.md5.is_some() || rest.checksum.is_some()).then(|| DigestThread::start(rest));
        Hashing::Apart { md5, thread }
    }

    /// Feeds `data`, the body's bytes up to `total` included (a whole chunk, or the last).
    async fn update(&mut self, data: &Bytes, total: u64) {
        if let Hashing::Inline(d) = self {
            if (d.md5.is_none() && d.checksum.is_none()) || total <= HASH_APART_AFTER {
                d.update(data);
                return;
            }
            *self = Hashing::apart(std::mem::take(d.as_mut()), kernel::lanes_available());
        }
        if let Hashing::Apart { md5, thread } = self {
            if let Some(m) = md5 {
                m.feed(data.clone()).await;
            }
            if let Some(t) = thread {
                // The thread only ends when the sender is dropped, so a send cannot fail
                // while it runs; if it panicked, `finish` reports the digests as lost.
                let _ = t.frames.send(data.clone()).await;
            }
        }
    }

    async fn finish(self) -> Result<Digests, DataError> {
        let lost = |e: &dyn std::fmt::Display| {
            DataError::Unavailable(format!("hashing the body failed: {e}"))
        };
        match self {
            Hashing::Inline(d) => Ok(*d),
            Hashing::Apart { md5, thread } => {
                let mut digests = match thread {
                    Some(t) => {
                        drop(t.frames);
                        t.done.await.map_err(|e| lost(&e))?
                    }
                    None => Digests::default(),
                };
                if let Some(m) = md5 {
                    digests.md5 = Some(m.finish().await.map_err(|e| lost(&e))?);
                }
                Ok(digests)
            }
        }
    }
}

/// A body stored as chunks on the cluster servers, not yet part of any file.
pub struct Stored {
    pub file_id: String,
    pub size: u64,
    /// CRC32C of the whole content.
    pub crc32c: u32,
    pub chunks: Vec<ChunkRef>,
    pub digests: Digests,
    /// The epoch the chunks were written under.
    pub epoch: u64,
}

impl Stored {
    /// The manifest of a file with this content.
    pub fn into_meta(self, chunk_size: u64, attrs: super::manifest::ObjectAttrs) -> FileMeta {
        FileMeta {
            file_id: self.file_id,
            size: self.size,
            checksum: Checksum(self.crc32c).to_string(),
            chunk_size,
            chunk_count: self.chunks.len() as u64,
            mtime: records::now_ms(),
            epoch: self.epoch,
            chunks: self.chunks,
            parts: 0,
            attrs,
        }
    }
}

/// Stores the body as the file at `path`; returns the committed manifest.
pub async fn upload(
    dp: &Arc<DataPlane>,
    lead: &Leadership,
    path: FilePath,
    body: Body,
    content_length: Option<u64>,
    pre: &Precondition,
) -> Result<FileMeta, DataError> {
    let mut guard = Uncommitted::new(&dp.repairs);
    let announced = content_length.map_or(Announced::Unknown, Announced::Exact);
    let stored = store(dp, lead, body, announced, Digests::default()).await?;
    let meta = stored.into_meta(dp.config.chunk_size, Default::default());
    commit(dp, lead, &path, meta, pre, &mut guard).await
}

/// Makes stored chunks the file at `path` (through the fenced write); returns the manifest.
/// Only where the file at `path` passes `pre` ([`DataError::Exists`], [`DataError::NotFound`]
/// or [`DataError::Precondition`] otherwise).
pub async fn commit(
    dp: &Arc<DataPlane>,
    lead: &Leadership,
    path: &FilePath,
    meta: FileMeta,
    pre: &Precondition,
    guard: &mut Uncommitted<'_>,
) -> Result<FileMeta, DataError> {
    let previous = namespace::commit_with(lead, &dp.known_dirs, path, meta.clone(), pre).await?;
    guard.committed = true;
    if previous.is_some() {
        dp.repairs.orphaned();
    }
    for c in &meta.chunks {
        if (c.replicas.len() as u32) < dp.config.replication_factor {
            dp.repairs
                .under_replicated(path.as_str(), &meta.file_id, &c.id);
        }
    }
    tracing::info!(path = %path, size = meta.size, chunks = meta.chunk_count, epoch = meta.epoch, "stored file");
    Ok(meta)
}

/// What a request said of its body's length before the body arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announced {
    /// Exactly this many bytes (the body's own `Content-Length`): more or fewer is refused.
    Exact(u64),
    /// About this many: it only sizes the first chunk's buffer. An S3 body's length as the
    /// protocol layer reports it (an `aws-chunked` body's decoded length, which a client
    /// may leave out).
    About(u64),
    Unknown,
}

impl Announced {
    /// The exact length, if announced.
    fn exact(self) -> Option<u64> {
        match self {
            Announced::Exact(n) => Some(n),
            _ => None,
        }
    }
}

/// The size of the buffer for the chunk that starts `from` bytes into an upload (pure): what
/// is left of the announced length when that is shorter than a chunk, so that a small body or
/// a file's last chunk does not sit in (and, in the read cache, keep) a whole chunk's buffer,
/// and a body whose exact length is used up takes none. A fresh buffer costs what it is
/// sized for (its pages are mapped in at once, see [`crate::buffers`]).
pub fn chunk_buffer(announced: Announced, from: u64, chunk_size: usize) -> usize {
    match announced {
        Announced::Exact(n) | Announced::About(n) if n > from => usize::try_from(n - from)
            .unwrap_or(usize::MAX)
            .min(chunk_size),
        Announced::Exact(_) => 0,
        _ => chunk_size,
    }
}

/// Cuts `body` into chunks as it streams and stores each on its replicas. The chunks belong
/// to no file yet: a caller that does not commit them leaves them to the orphan collector
/// (hold an [`Uncommitted`] until the commit).
pub async fn store(
    dp: &Arc<DataPlane>,
    lead: &Leadership,
    body: Body,
    announced: Announced,
    digests: Digests,
) -> Result<Stored, DataError> {
    let token = lead.token();
    let content_length = announced.exact();
    if let Some(n) = content_length
        && n > dp.config.max_file_size
    {
        return Err(DataError::TooLarge(format!(
            "{n} bytes is more than the largest file accepted ({} bytes)",
            dp.config.max_file_size
        )));
    }
    let chunk_size = dp.config.chunk_size as usize;
    let file_id = format!("{:032x}", rand::random::<u128>());
    let chunk_id = |index: u64| format!("{file_id}-{index}");
    let mut whole = crc32c_state();
    let mut total: u64 = 0;
    let mut buf = dp.buffers.take(chunk_buffer(announced, 0, chunk_size));
    let mut pending = FuturesOrdered::new();
    let mut chunks: Vec<ChunkRef> = Vec::new();
    let mut index: u64 = 0;
    let mut frames = body.into_data_stream();
    let mut hashing = Hashing::Inline(Box::new(digests));
    // Bytes handed to `hashing`: every chunk once cut, in order.
    let mut hashed: u64 = 0;

    let _live = dp.live_uploads.register(&file_id);

    loop {
        // Chunks on their way progress while the next chunk's bytes arrive: a finished one
        // gives its buffer back, a failed one ends the upload at once.
        let frame = tokio::select! {
            Some(r) = pending.next(), if !pending.is_empty() => {
                chunks.push(r?);
                continue;
            }
            frame = frames.next() => frame,
        };
        let mut data = match frame {
            None => break,
            Some(Ok(data)) => data,
            Some(Err(e)) => {
                return Err(DataError::BadRequest(format!(
                    "the request body broke off after {total} bytes: {e}; nothing was stored"
                )));
            }
        };
        total += data.len() as u64;
        if total > dp.config.max_file_size {
            return Err(DataError::TooLarge(format!(
                "the body is larger than the largest file accepted ({} bytes)",
                dp.config.max_file_size
            )));
        }
        whole = crc32c::crc32c_append(whole, &data);
        dp.metrics.bytes_in.inc_by(data.len() as u64);
        // Fill the chunk buffer exactly: a piece that overshot it would make it grow (and
        // copy) to twice its size.
        while !data.is_empty() {
            let take = data.len().min(chunk_size - buf.len());
            buf.extend_from_slice(&data.split_to(take));
            if buf.len() == chunk_size {
                let cut = total - data.len() as u64;
                let next = dp.buffers.take(chunk_buffer(announced, cut, chunk_size));
                let full = std::mem::replace(&mut buf, next);
                let held = full.capacity();
                let chunk = full.freeze();
                hashed += chunk.len() as u64;
                pending.push_back(store_chunk(
                    dp.clone(),
                    token.epoch,
                    chunk_id(index),
                    chunk.clone(),
                    held,
                ));
                hashing.update(&chunk, hashed).await;
                index += 1;
                if pending.len() >= IN_FLIGHT
                    && let Some(r) = pending.next().await
                {
                    chunks.push(r?);
                }
            }
        }
    }
    if !buf.is_empty() {
        let held = buf.capacity();
        let chunk = buf.freeze();
        hashed += chunk.len() as u64;
        pending.push_back(store_chunk(
            dp.clone(),
            token.epoch,
            chunk_id(index),
            chunk.clone(),
            held,
        ));
        hashing.update(&chunk, hashed).await;
    }
    while let Some(r) = pending.next().await {
        chunks.push(r?);
    }
    if let Some(n) = content_length
        && n != total
    {
        return Err(DataError::BadRequest(format!(
            "Content-Length said {n} bytes but the body had {total}; nothing was stored"
        )));
    }
    Ok(Stored {
        file_id,
        size: total,
        crc32c: whole,
        chunks,
        digests: hashing.finish().await?,
        epoch: token.epoch,
    })
}

fn crc32c_state() -> u32 {
    0
}

/// Tells the repair loop about orphans when an upload ends without its commit.
pub struct Uncommitted<'a> {
    repairs: &'a super::repair::Queue,
    committed: bool,
}

impl<'a> Uncommitted<'a> {
    pub fn new(repairs: &'a super::repair::Queue) -> Self {
        Self {
            repairs,
            committed: false,
        }
    }

    /// The chunks are referenced elsewhere (a multipart upload's part record).
    pub fn keep(&mut self) {
        self.committed = true;
    }
}

impl Drop for Uncommitted<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.repairs.orphaned();
        }
    }
}

/// Stores one chunk on `replication_factor` servers (or at least `min_write_replicas`);
/// `held` is the memory its buffer holds, for the read cache, which keeps a stored chunk.
async fn store_chunk(
    dp: Arc<DataPlane>,
    epoch: u64,
    id: String,
    data: Bytes,
    held: usize,
) -> Result<ChunkRef, DataError> {
    let checksum = Checksum::of(&data);
    let rf = dp.config.replication_factor as usize;
    let min = dp.config.min_write_replicas as usize;
    let mut stored: Vec<ServerId> = Vec::new();
    // Servers that failed this chunk; a hop that was never reached is not among them.
    let mut failed: Vec<ServerId> = Vec::new();
    let mut full = 0usize;
    let mut last_error = String::new();
    // The first attempt is a pipeline over all replicas; later attempts replace the ones
    // that failed (pipeline recovery), until enough servers hold the chunk or none are left.
    // Every attempt either stores the chunk somewhere or rules out at least one server.
    for _attempt in 0..MAX_ATTEMPTS {
        let want = rf - stored.len();
        let candidates = dp.membership.placement_candidates(want);
        let excluded: Vec<ServerId> = stored.iter().chain(&failed).cloned().collect();
        let targets = placement::choose(
            &candidates,
            want,
            &excluded,
            data.len() as u64,
            &mut rand::rng(),
        );
        if targets.is_empty() {
            if !candidates.iter().all(|c| excluded.contains(&c.id))
                && !candidates.iter().any(|c| c.free_bytes >= data.len() as u64)
            {
                full += 1;
            }
            break;
        }
        let addrs: Vec<(ServerId, String)> = targets
            .iter()
            .filter_map(|t| dp.addr_of(t).map(|a| (t.clone(), a)))
            .collect();
        let Some(((_, first), rest)) = addrs.split_first() else {
            break;
        };
        let pipeline: Vec<String> = rest.iter().map(|(_, a)| a.clone()).collect();
        let put = PutChunk {
            id: &id,
            epoch,
            pipeline: &pipeline,
            len: Some(data.len() as u64),
            checksum: Some(checksum),
            progress: None,
        };
        // Watched for progress, not timed as a whole: a slow pipeline is waited for, a hung
        // hop given up (and, deeper in the pipeline, given up first by the hop before it).
        // A server that leaves the grid or falls silent meanwhile ends the attempt at once.
        let ids: Vec<ServerId> = addrs.iter().map(|(sid, _)| sid.clone()).collect();
        let silent_before = dp.membership.silent(&ids);
        let judged = tokio::select! {
            answer = dp.chunks.put_watched(first, put, data.clone(), dp.config.hop_progress_timeout) => {
                let answer = answer.map(|resp| match &dp.peers {
                    Some(peers) => keep_verified(peers, &addrs, resp, &checksum.to_string(), epoch),
                    None => resp,
                });
                if let Err(e) = &answer {
                    tracing::warn!(chunk = %id, server = %first, error = %e.detail(), "chunk pipeline failed at its first hop");
                }
                judge(&addrs, &answer)
            }
            gone = dp.membership.until_gone(&ids, &silent_before) => {
                tracing::warn!(chunk = %id, servers = ?gone, "a server of the pipeline left the grid or fell silent during the upload; placing the chunk again without it");
                Judged {
                    last_error: Some(format!("{gone:?} left the grid or fell silent during the upload")),
                    failed: gone,
                    ..Judged::default()
                }
            }
        };
        for _ in &judged.failed {
            dp.metrics
                .replica_failures
                .with_label_values(&["write"])
                .inc();
        }
        full += judged.full;
        if let Some(e) = judged.last_error {
            last_error = e;
        }
        for sid in judged.stored {
            if !stored.contains(&sid) {
                stored.push(sid);
            }
        }
        failed.extend(judged.failed);
        if stored.len() >= rf {
            break;
        }
    }
    if stored.len() < min {
        let msg = format!(
            "only {} of the {min} required cluster servers could store chunk {id} ({} live){}",
            stored.len(),
            dp.membership.placement_candidates(rf).len(),
            if last_error.is_empty() {
                String::new()
            } else {
                format!("; last error: {last_error}")
            }
        );
        // Full disks among the refusals make it a capacity problem (507), not an outage.
        return Err(if full > 0 {
            DataError::StorageFull(msg)
        } else {
            DataError::Unavailable(msg)
        });
    }
    if stored.len() < rf {
        tracing::warn!(chunk = %id, replicas = stored.len(), replication_factor = rf,
            "chunk acknowledged under-replicated; it will be repaired in the background");
    }
    // The bytes are the ones checksummed above, and stored: a read soon after, the
    // commonest pattern, needs no cluster server.
    dp.cache.keep(&id, checksum, &data, held);
    let chunk = ChunkRef {
        id,
        len: data.len() as u64,
        checksum: checksum.to_string(),
        replicas: stored,
    };
    Ok(chunk)
}

/// `resp` with every stored copy that lacks a valid acknowledgement from the server
/// registered at its address (or has another checksum than the one sent) moved to `failed`:
/// a server that answers "stored" without holding the secret, or for another server, is
/// not counted.
pub(crate) fn keep_verified(
    peers: &crate::auth::PeerVerifier,
    addrs: &[(ServerId, String)],
    mut resp: PutResponse,
    checksum: &str,
    epoch: u64,
) -> PutResponse {
    let len = resp.len;
    let chunk = resp.id.clone();
    let same_data = resp.checksum == checksum;
    let (ok, bad): (Vec<String>, Vec<String>) = resp.stored.drain(..).partition(|addr| {
        let Some((sid, _)) = addrs.iter().find(|(_, a)| a == addr) else {
            return false;
        };
        same_data
            && resp.acks.iter().any(|a| {
                a.addr == *addr
                    && a.server == sid.as_str()
                    && peers.ack_ok(sid.as_str(), &a.sig, &chunk, checksum, len, epoch)
            })
    });
    for addr in bad {
        tracing::warn!(chunk = %chunk, server = %addr, "a replica answered stored without a valid acknowledgement; not counted");
        resp.failed.push(filegrid_proto::chunk::Failure {
            addr,
            code: ErrorCode::BadSignature,
            error: "stored without a valid signed acknowledgement".into(),
        });
    }
    resp.stored = ok;
    resp
}

/// What one pipeline attempt says of its servers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Judged {
    /// Servers that stored the chunk.
    stored: Vec<ServerId>,
    /// Servers that were sent the chunk and failed: not tried again for it.
    failed: Vec<ServerId>,
    /// Refusals for want of space.
    full: usize,
    last_error: Option<String>,
}

/// Sorts the servers of one attempt (`addrs`, in pipeline order) by the answer of its first
/// hop. A hop the chunk never reached because one before it failed is neither stored nor
/// failed, so the next attempt may place the chunk there again.
fn judge(addrs: &[(ServerId, String)], answer: &Result<PutResponse, ChunkCallError>) -> Judged {
    let id_of = |addr: &str| {
        addrs
            .iter()
            .find(|(_, a)| a == addr)
            .map(|(sid, _)| sid.clone())
    };
    let mut j = Judged::default();
    match answer {
        Ok(resp) => {
            j.stored = addrs
                .iter()
                .filter(|(_, a)| resp.stored.contains(a))
                .map(|(sid, _)| sid.clone())
                .collect();
            for f in &resp.failed {
                if f.code == ErrorCode::StorageFull {
                    j.full += 1;
                }
                if f.code != ErrorCode::NotReached
                    && let Some(sid) = id_of(&f.addr)
                    && !j.stored.contains(&sid)
                {
                    j.failed.push(sid);
                    j.last_error = Some(format!("{}: {}", f.addr, f.error));
                }
            }
        }
        Err(e) => {
            // The first hop failed; the hops after it were never sent the chunk.
            if let Some((sid, addr)) = addrs.first() {
                j.failed.push(sid.clone());
                j.last_error = Some(format!("{addr}: {}", e.detail()));
            }
            if e.code() == ErrorCode::StorageFull {
                j.full += 1;
            }
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegrid_proto::ErrorBody;
    use filegrid_proto::chunk::Failure;

    /// Both ways of hashing off the upload's task (the batching thread where AVX2 is, an
    /// upload's own thread elsewhere) give the MD5 and the checksum of the whole body.
    #[tokio::test]
    async fn digests_computed_apart_cover_the_whole_body_either_way() {
        use md5::Digest;
        let body: Vec<u8> = (0..700_003u32).map(|i| (i * 13 + i / 251) as u8).collect();
        let want_md5: [u8; 16] = md5::Md5::digest(&body).into();
        let crc32 = || s3s::checksum::ChecksumHasher {
            crc32: Some(Default::default()),
            ..Default::default()
        };
        let mut want_crc = crc32();
        want_crc.update(&body);
        let want_crc = want_crc.finalize();
        for batch in [true, false] {
            let mut first = Digests {
                md5: Some(Md5::new()),
                checksum: Some(crc32()),
            };
            let head = HASH_APART_AFTER as usize;
            first.update(&body[..head]);
            let mut hashing = Hashing::apart(first, batch);
            let Hashing::Apart { md5, thread } = &hashing else {
                panic!("apart");
            };
            assert_eq!(md5.is_some(), batch, "the MD5 on the batching thread");
            assert!(thread.is_some(), "the checksum on a thread of its own");
            let mut total = head as u64;
            for piece in body[head..].chunks(30_001) {
                total += piece.len() as u64;
                hashing.update(&Bytes::copy_from_slice(piece), total).await;
            }
            let d = hashing.finish().await.expect("hashed");
            assert_eq!(d.md5.expect("md5").finalize(), want_md5, "batch {batch}");
            let got = d.checksum.expect("checksum").finalize();
            assert_eq!(got.checksum_crc32, want_crc.checksum_crc32, "batch {batch}");
        }
    }

    #[test]
    fn a_small_body_gets_a_buffer_of_its_size() {
        let chunk = 8 << 20;
        assert_eq!(chunk_buffer(Announced::Exact(1 << 20), 0, chunk), 1 << 20);
        assert_eq!(chunk_buffer(Announced::About(4096), 0, chunk), 4096);
        assert_eq!(chunk_buffer(Announced::About(1 << 40), 0, chunk), chunk);
        // An aws-chunked body that announced no decoded length is reported as 0.
        assert_eq!(chunk_buffer(Announced::About(0), 0, chunk), chunk);
        // An empty body needs no buffer.
        assert_eq!(chunk_buffer(Announced::Exact(0), 0, chunk), 0);
        assert_eq!(chunk_buffer(Announced::Unknown, 0, chunk), chunk);
        assert_eq!(Announced::About(5).exact(), None);
        assert_eq!(Announced::Exact(5).exact(), Some(5));
    }

    #[test]
    fn a_last_chunk_gets_a_buffer_of_what_is_left() {
        let chunk = 8 << 20;
        let nine = 9 << 20;
        assert_eq!(
            chunk_buffer(Announced::Exact(nine), 8 << 20, chunk),
            1 << 20
        );
        assert_eq!(
            chunk_buffer(Announced::Exact(3 * chunk as u64), 8 << 20, chunk),
            chunk
        );
        // A body of whole chunks: nothing is left after the last one.
        assert_eq!(chunk_buffer(Announced::Exact(16 << 20), 16 << 20, chunk), 0);
        // A length that was only about right says nothing once passed.
        assert_eq!(
            chunk_buffer(Announced::About(nine), 8 << 20, chunk),
            1 << 20
        );
        assert_eq!(chunk_buffer(Announced::About(nine), 16 << 20, chunk), chunk);
        assert_eq!(chunk_buffer(Announced::Unknown, 8 << 20, chunk), chunk);
    }

    fn pipeline() -> Vec<(ServerId, String)> {
        (1..=3).map(|i| (sid(i), format!("h{i}:9700"))).collect()
    }

    fn sid(i: u32) -> ServerId {
        ServerId::new(format!("cluster_server_{i}")).unwrap()
    }

    fn answer(stored: &[u32], failed: &[(u32, ErrorCode)]) -> Result<PutResponse, ChunkCallError> {
        Ok(PutResponse {
            id: "f-0".into(),
            len: 1,
            checksum: "crc32c:00000000".into(),
            stored: stored.iter().map(|i| format!("h{i}:9700")).collect(),
            failed: failed
                .iter()
                .map(|(i, code)| Failure {
                    addr: format!("h{i}:9700"),
                    code: *code,
                    error: code.as_str().into(),
                })
                .collect(),
            acks: Vec::new(),
        })
    }

    #[test]
    fn a_dead_first_hop_rules_out_only_itself() {
        let e = Err(ChunkCallError::Unreachable {
            addr: "h1:9700".into(),
            message: "connection refused".into(),
        });
        let j = judge(&pipeline(), &e);
        assert_eq!(j.failed, vec![sid(1)]);
        assert!(j.stored.is_empty());
        assert_eq!(j.full, 0);
    }

    #[test]
    fn hops_behind_a_failed_hop_may_be_tried_again() {
        let a = answer(
            &[1],
            &[(2, ErrorCode::Unavailable), (3, ErrorCode::NotReached)],
        );
        let j = judge(&pipeline(), &a);
        assert_eq!(j.stored, vec![sid(1)]);
        assert_eq!(j.failed, vec![sid(2)]);
    }

    #[test]
    fn refusals_for_space_are_counted() {
        let a = answer(&[1, 2], &[(3, ErrorCode::StorageFull)]);
        let j = judge(&pipeline(), &a);
        assert_eq!(j.stored, vec![sid(1), sid(2)]);
        assert_eq!(j.failed, vec![sid(3)]);
        assert_eq!(j.full, 1);
        let e = Err(ChunkCallError::Refused {
            addr: "h1:9700".into(),
            status: 507,
            body: ErrorBody::new(ErrorCode::StorageFull, "full"),
        });
        assert_eq!(judge(&pipeline(), &e).full, 1);
    }
    #[test]
    fn only_replicas_with_their_own_valid_acknowledgement_count() {
        use crate::auth::{ClusterSecret, PeerSigner, PeerVerifier};
        let secret = ClusterSecret::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let verifier = PeerVerifier::new(secret.clone(), std::time::Duration::from_secs(30));
        let other = ClusterSecret::new(b"another secret, also 32 bytes long").unwrap();
        let addrs: Vec<(ServerId, String)> =
            (1..=4).map(|i| (sid(i), format!("h{i}:9700"))).collect();
        let ack = |addr: u32, signer: u32, secret: &ClusterSecret, epoch: u64| {
            filegrid_proto::chunk::Ack {
                addr: format!("h{addr}:9700"),
                server: sid(signer).to_string(),
                sig: PeerSigner::new(sid(signer).as_str(), secret.clone()).ack(
                    "f-0",
                    "crc32c:00000000",
                    1,
                    epoch,
                ),
            }
        };
        let mut resp = answer(&[1, 2, 3, 4], &[]).unwrap();
        resp.acks = vec![
            ack(1, 1, &secret, 5),
            // Signed by another server than the one registered at the address.
            ack(2, 3, &secret, 5),
            // Signed without the cluster secret.
            ack(3, 3, &other, 5),
            // Signed for another epoch.
            ack(4, 4, &secret, 4),
        ];
        let kept = keep_verified(&verifier, &addrs, resp.clone(), "crc32c:00000000", 5);
        assert_eq!(kept.stored, vec!["h1:9700".to_string()]);
        assert_eq!(kept.failed.len(), 3);
        assert!(
            kept.failed
                .iter()
                .all(|f| f.code == ErrorCode::BadSignature)
        );
        // Another checksum than the one sent: nothing counts.
        let kept = keep_verified(&verifier, &addrs, resp, "crc32c:11111111", 5);
        assert!(kept.stored.is_empty());
    }
}
