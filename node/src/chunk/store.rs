//! The chunk store: an index of the chunk files in one data directory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::blocks::BlockPool;
use super::checksum::Checksum;
use super::dir::ChunkDir;
use super::error::StoreError;
use super::format::{TRAILER_LEN, Trailer};
use super::id::ChunkId;
pub use super::meta::ChunkMeta;
use super::reader::{self, ChunkRead};
use super::space::Space;
pub use super::space::Usage;
use super::writer::ChunkWriter;

/// Where chunk files live, below the data directory.
const CHUNKS_DIR: &str = "chunks";
/// Where chunk files with an unreadable trailer are moved at open, kept for inspection.
const QUARANTINE_DIR: &str = "quarantine";
/// Lock file that keeps two processes off one data directory.
const LOCK_FILE: &str = "LOCK";
/// Temp files end with this suffix; chunk ids cannot contain a `.`.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Settings of a chunk store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Directory holding the chunks; created if missing.
    pub data_dir: PathBuf,
    /// Most bytes the chunk files may take, or `None` to be limited by the disk only.
    pub capacity: Option<u64>,
}

/// One line of a chunk listing (block report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Length and checksum.
    pub meta: ChunkMeta,
    /// The chunk failed verification since it was last written.
    pub corrupt: bool,
}

/// A chunk that failed verification, reported to subscribers so it can be repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadChunk {
    /// The damaged chunk.
    pub id: ChunkId,
    /// What verification found.
    pub reason: String,
}

/// What [`ChunkStore::open`] found on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Chunks found.
    pub chunks: u64,
    /// Bytes of chunk files found.
    pub bytes: u64,
    /// Temp files of interrupted writes that were removed.
    pub temp_files_removed: u64,
    /// Chunk files with a damaged trailer, moved to the quarantine directory.
    pub quarantined: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    len: u64,
    checksum: Checksum,
    corrupt: bool,
}

/// A durable, checksummed chunk store on one data directory. Share it as `Arc<ChunkStore>`.
#[derive(Debug)]
pub struct ChunkStore {
    data_dir: PathBuf,
    chunks_dir: PathBuf,
    dir_sync: super::dirsync::DirSync,
    space: Space,
    index: Mutex<BTreeMap<ChunkId, Entry>>,
    bad_tx: broadcast::Sender<BadChunk>,
    checksum_failures: AtomicU64,
    temp_seq: AtomicU64,
    /// Whole blocks are written with `O_DIRECT` until the file system refuses it once.
    direct_io: AtomicBool,
    blocks: BlockPool,
    /// Held for the store's lifetime: the exclusive lock on the data directory.
    _lock: File,
}

impl ChunkStore {
    /// Opens (or creates) the store in `config.data_dir`: takes the directory lock, removes
    /// temp files left by interrupted writes and indexes the chunks found.
    pub async fn open(config: StoreConfig) -> Result<(Arc<Self>, OpenReport), StoreError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(config))
            .await
            .map_err(|e| StoreError::io("opening the chunk store", io::Error::other(e)))?
    }

    fn open_blocking(config: StoreConfig) -> Result<(Arc<Self>, OpenReport), StoreError> {
        let data_dir = &config.data_dir;
        let chunks_dir = data_dir.join(CHUNKS_DIR);
        fs::create_dir_all(&chunks_dir)
            .map_err(|e| StoreError::io(format!("creating {}", chunks_dir.display()), e))?;
        // Make the chunk directory's own entry durable before anything is acknowledged in it.
        sync_dir(data_dir)?;
        let lock = lock_data_dir(data_dir)?;
        let space = Space::new(chunks_dir.clone(), config.capacity);
        let (index, report) = scan(data_dir, &chunks_dir, &space)?;
        tracing::info!(
            dir = %data_dir.display(),
            chunks = report.chunks,
            bytes = report.bytes,
            temp_files_removed = report.temp_files_removed,
            quarantined = report.quarantined.len(),
            "chunk store opened"
        );
        let (bad_tx, _) = broadcast::channel(1024);
        let store = Self {
            dir_sync: super::dirsync::DirSync::new(chunks_dir.clone()),
            data_dir: data_dir.clone(),
            chunks_dir,
            space,
            index: Mutex::new(index),
            bad_tx,
            checksum_failures: AtomicU64::new(0),
            temp_seq: AtomicU64::new(0),
            direct_io: AtomicBool::new(true),
            blocks: Default::default(),
            _lock: lock,
        };
        Ok((Arc::new(store), report))
    }

    fn index(&self) -> MutexGuard<'_, BTreeMap<ChunkId, Entry>> {
        // Every index update is a single insert or remove, so a poisoned lock is still consistent.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        self.chunks_dir.join(id.as_str())
    }

    /// Starts a streamed write of chunk `id`. With `expected_len` the space is reserved up
    /// front, so a write that cannot fit fails before any data is sent; without it space is
    /// reserved as the data arrives. Writing an existing id replaces the chunk atomically.
    pub async fn writer(
        self: &Arc<Self>,
        id: ChunkId,
        expected_len: Option<u64>,
    ) -> Result<ChunkWriter, StoreError> {
        ChunkWriter::create(self.clone(), id, expected_len).await
    }

    /// Stores `data` as chunk `id` in one call (a convenience over [`ChunkStore::writer`]).
    pub async fn put(self: &Arc<Self>, id: ChunkId, data: &[u8]) -> Result<ChunkMeta, StoreError> {
        let mut w = self.writer(id, Some(data.len() as u64)).await?;
        w.write(data).await?;
        w.finish(None).await
    }

    /// Length and checksum of chunk `id`.
    pub fn meta(&self, id: &ChunkId) -> Result<ChunkMeta, StoreError> {
        self.entry(id).map(|e| e.meta)
    }

    /// Length, checksum and corruption mark of chunk `id`.
    pub fn entry(&self, id: &ChunkId) -> Result<ChunkEntry, StoreError> {
        self.index()
            .get(id)
            .map(|e| ChunkEntry {
                meta: ChunkMeta {
                    id: id.clone(),
                    len: e.len,
                    checksum: e.checksum,
                },
                corrupt: e.corrupt,
            })
            .ok_or_else(|| StoreError::NotFound(id.clone()))
    }

    /// Opens chunk `id` for a streamed, verified read of `range` (the whole chunk if `None`).
    ///
    /// The whole chunk is read and checksummed even for a short range, and the stream ends
    /// only after the checksum matched; on a mismatch its last item is
    /// [`StoreError::Corrupt`] and the chunk is reported bad. A chunk already known to be
    /// corrupt fails at once.
    pub async fn read(
        self: &Arc<Self>,
        id: &ChunkId,
        range: Option<Range<u64>>,
    ) -> Result<ChunkRead, StoreError> {
        self.open_read(id, range, true).await
    }

    /// Re-reads chunk `id` in full and checks its checksum, also when it is known to be
    /// corrupt (a good result clears the mark). A mismatch is reported bad and returned
    /// as [`StoreError::Corrupt`].
    pub async fn verify(self: &Arc<Self>, id: &ChunkId) -> Result<ChunkMeta, StoreError> {
        let read = self.open_read(id, None, false).await?;
        let meta = read.meta.clone();
        read.drain().await?;
        if let Some(e) = self.index().get_mut(id)
            && e.checksum == meta.checksum
            && e.len == meta.len
        {
            e.corrupt = false;
        }
        Ok(meta)
    }

    pub(crate) async fn open_read(
        self: &Arc<Self>,
        id: &ChunkId,
        range: Option<Range<u64>>,
        fail_if_known_corrupt: bool,
    ) -> Result<ChunkRead, StoreError> {
        let store = self.clone();
        let id = id.clone();
        let meta = tokio::task::spawn_blocking(move || {
            // Open under the index lock so the file and its recorded checksum belong together
            // even when the chunk is being replaced concurrently.
            let (entry, file) = {
                let mut index = store.index();
                let entry = *index
                    .get(&id)
                    .ok_or_else(|| StoreError::NotFound(id.clone()))?;
                if fail_if_known_corrupt && entry.corrupt {
                    return Err(StoreError::Corrupt {
                        id: id.clone(),
                        reason: "failed verification earlier".into(),
                    });
                }
                match open_chunk_file(&store.chunk_path(&id)) {
                    Ok(file) => (entry, file),
                    Err(Opened::Gone(why)) => {
                        store.forget(&mut index, &id, entry, &why);
                        drop(index);
                        store.report_bad(&id, why);
                        return Err(StoreError::NotFound(id));
                    }
                    Err(Opened::Failed(e)) => {
                        return Err(StoreError::io(format!("opening chunk {id}"), e));
                    }
                }
            };
            let file_len = file
                .metadata()
                .map_err(|e| StoreError::io(format!("reading chunk {id}"), e))?
                .len();
            // A small chunk is read here at once, so one hand-off to a blocking thread serves
            // the whole read. A read error is left for the stream to meet again and report.
            let data = reader::read_small(&file, entry.len, file_len).unwrap_or(None);
            let meta = ChunkMeta {
                id,
                len: entry.len,
                checksum: entry.checksum,
            };
            Ok::<_, StoreError>((meta, file, file_len, data))
        })
        .await
        .map_err(|e| StoreError::io("opening a chunk", io::Error::other(e)))??;
        let (meta, file, file_len, data) = meta;
        reader::open(self.clone(), meta, file, file_len, data, range).await
    }

    /// Drops chunk `id` from the index because its file is no longer a chunk file (deleted
    /// behind the store's back, or replaced by something else, which is moved to the
    /// quarantine directory so that a good copy can be written in its place). Called under
    /// the index lock.
    fn forget(&self, index: &mut BTreeMap<ChunkId, Entry>, id: &ChunkId, entry: Entry, why: &str) {
        index.remove(id);
        self.space.remove(entry.len + TRAILER_LEN);
        let path = self.chunk_path(id);
        if fs::symlink_metadata(&path).is_ok()
            && let Err(e) = quarantine(&self.data_dir, &path, id.as_str())
        {
            tracing::warn!(chunk = %id, error = %e, "cannot move a damaged chunk path aside");
        }
        tracing::warn!(chunk = %id, reason = %why, "chunk file is gone; forgot the chunk");
    }

    /// Receives every chunk found bad from now on (by reads, [`ChunkStore::verify`] or the scrubber).
    pub fn subscribe_bad(&self) -> broadcast::Receiver<BadChunk> {
        self.bad_tx.subscribe()
    }

    /// How many verification failures were found since the store was opened, chunk files
    /// found gone from disk among them.
    pub fn checksum_failures(&self) -> u64 {
        self.checksum_failures.load(Ordering::Relaxed)
    }

    /// Deletes chunk `id` durably and returns what it was.
    pub async fn delete(self: &Arc<Self>, id: &ChunkId) -> Result<ChunkMeta, StoreError> {
        let store = self.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            let meta = store.remove_blocking(id)?;
            store.sync_dir_blocking()?;
            Ok(meta)
        })
        .await
        .map_err(|e| StoreError::io("deleting a chunk", io::Error::other(e)))?
    }

    /// Deletes each of `ids`, with one directory sync for all of them: what became of each,
    /// in order. A chunk removed but not made durable by a failed sync counts as failed (it
    /// may come back after a crash).
    pub async fn delete_many(
        self: &Arc<Self>,
        ids: Vec<ChunkId>,
    ) -> Result<Vec<(ChunkId, Result<ChunkMeta, StoreError>)>, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut out: Vec<(ChunkId, Result<ChunkMeta, StoreError>)> = ids
                .into_iter()
                .map(|id| (id.clone(), store.remove_blocking(id)))
                .collect();
            if out.iter().any(|(_, r)| r.is_ok())
                && let Err(e) = store.sync_dir_blocking()
            {
                for (_, r) in out.iter_mut().filter(|(_, r)| r.is_ok()) {
                    *r = Err(StoreError::io(
                        "syncing the chunk directory",
                        io::Error::other(e.to_string()),
                    ));
                }
            }
            out
        })
        .await
        .map_err(|e| StoreError::io("deleting chunks", io::Error::other(e)))
    }

    /// Removes chunk `id` from the disk and the index, without making it durable. Blocking.
    fn remove_blocking(&self, id: ChunkId) -> Result<ChunkMeta, StoreError> {
        let mut index = self.index();
        let entry = *index
            .get(&id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let path = self.chunk_path(&id);
        match fs::symlink_metadata(&path) {
            // Already gone from disk: only the index still had it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Ok(m) if m.is_dir() => quarantine(&self.data_dir, &path, id.as_str())?,
            _ => fs::remove_file(&path)
                .map_err(|e| StoreError::io(format!("deleting chunk {id}"), e))?,
        }
        index.remove(&id);
        self.space.remove(entry.len + TRAILER_LEN);
        Ok(ChunkMeta {
            id,
            len: entry.len,
            checksum: entry.checksum,
        })
    }

    /// All stored chunks, sorted by id.
    pub fn list(&self) -> Vec<ChunkEntry> {
        self.index()
            .iter()
            .map(|(id, e)| ChunkEntry {
                meta: ChunkMeta {
                    id: id.clone(),
                    len: e.len,
                    checksum: e.checksum,
                },
                corrupt: e.corrupt,
            })
            .collect()
    }

    /// Used, free and capacity bytes and the number of chunks.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        self.space.usage()
    }
}

impl ChunkDir for ChunkStore {
    fn space(&self) -> &Space {
        &self.space
    }

    /// Idle block buffers shared by chunk writers.
    fn blocks(&self) -> &BlockPool {
        &self.blocks
    }

    /// Whether chunk writers should try `O_DIRECT` for whole blocks.
    fn direct_io(&self) -> bool {
        self.direct_io.load(Ordering::Relaxed)
    }

    /// The file system refused `O_DIRECT`: write through the page cache from now on.
    fn disable_direct_io(&self, why: &io::Error) {
        if self.direct_io.swap(false, Ordering::Relaxed) {
            tracing::info!(dir = %self.chunks_dir.display(), error = %why,
                "direct I/O is not available here; chunks are written through the page cache");
        }
    }

    /// A fresh temp file path for a write of `id`, in the chunk directory so the final
    /// rename stays within one directory of one filesystem.
    fn temp_path(&self, id: &ChunkId) -> PathBuf {
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        self.chunks_dir
            .join(format!(".{id}.{}-{seq}{TEMP_SUFFIX}", std::process::id()))
    }

    /// Moves a finished, fsynced temp file into place and indexes it. The caller fsyncs
    /// the directory afterwards (outside the index lock, so commits do not serialise on it).
    fn install(&self, temp: &Path, meta: &ChunkMeta, reserved: u64) -> Result<(), StoreError> {
        let mut index = self.index();
        let target = self.chunk_path(&meta.id);
        if let Err(e) = fs::rename(temp, &target) {
            // Something that is not a chunk file (a directory) sits where the chunk goes:
            // move it aside and install the good copy in its place.
            let in_the_way = fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir());
            if !in_the_way {
                return Err(StoreError::io(
                    format!("renaming chunk {} into place", meta.id),
                    e,
                ));
            }
            quarantine(&self.data_dir, &target, meta.id.as_str())?;
            tracing::warn!(chunk = %meta.id, "moved a directory found at a chunk's path to quarantine");
            fs::rename(temp, &target)
                .map_err(|e| StoreError::io(format!("renaming chunk {} into place", meta.id), e))?;
        }
        let replaced = index.insert(
            meta.id.clone(),
            Entry {
                len: meta.len,
                checksum: meta.checksum,
                corrupt: false,
            },
        );
        self.space.commit(
            reserved,
            meta.len + TRAILER_LEN,
            replaced.map(|e| e.len + TRAILER_LEN),
        );
        Ok(())
    }

    /// Makes renames and removals in the chunk directory durable (shared with concurrent
    /// callers: see [`super::dirsync`]).
    fn sync_dir_blocking(&self) -> Result<(), StoreError> {
        self.dir_sync.sync()
    }

    /// Records that chunk `id` failed verification and tells subscribers.
    fn report_bad(&self, id: &ChunkId, reason: String) {
        if let Some(e) = self.index().get_mut(id) {
            e.corrupt = true;
        }
        self.checksum_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(chunk = %id, %reason, "chunk failed verification");
        // No subscriber is not an error: the mark in the index and the counter remain.
        let _ = self.bad_tx.send(BadChunk {
            id: id.clone(),
            reason,
        });
    }
}

/// Why a chunk file could not be opened.
enum Opened {
    /// The path holds no chunk file any more (removed, or something else is there).
    Gone(String),
    /// Another I/O error (the file may still be there).
    Failed(io::Error),
}

/// Opens a chunk file, telling a file that is gone or is not a regular file apart from
/// other errors.
fn open_chunk_file(path: &Path) -> Result<File, Opened> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Opened::Gone("the chunk file is missing".into()));
        }
        Err(e) => return Err(Opened::Failed(e)),
        Ok(m) if !m.is_file() => {
            return Err(Opened::Gone(format!(
                "the chunk path holds a {}, not a file",
                if m.is_dir() {
                    "directory"
                } else {
                    "special file"
                }
            )));
        }
        Ok(_) => {}
    }
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Opened::Gone("the chunk file is missing".into()),
        _ => Opened::Failed(e),
    })
}

fn lock_data_dir(data_dir: &Path) -> Result<File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| {
            StoreError::io(
                format!(
                    "locking {}: is another cluster server using this data directory?",
                    path.display()
                ),
                e.into(),
            )
        },
    )?;
    Ok(file)
}

/// Indexes the chunk directory: removes temp files, reads every trailer, quarantines
/// files whose trailer is damaged.
fn scan(
    data_dir: &Path,
    chunks_dir: &Path,
    space: &Space,
) -> Result<(BTreeMap<ChunkId, Entry>, OpenReport), StoreError> {
    let mut index = BTreeMap::new();
    let mut report = OpenReport::default();
    let entries = fs::read_dir(chunks_dir)
        .map_err(|e| StoreError::io(format!("listing {}", chunks_dir.display()), e))?;
    for entry in entries {
        let entry =
            entry.map_err(|e| StoreError::io(format!("listing {}", chunks_dir.display()), e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TEMP_SUFFIX) {
            fs::remove_file(&path)
                .map_err(|e| StoreError::io(format!("removing {}", path.display()), e))?;
            tracing::info!(file = %path.display(), "removed temp file of an interrupted write");
            report.temp_files_removed += 1;
            continue;
        }
        let Ok(id) = ChunkId::new(name.clone()) else {
            tracing::warn!(file = %path.display(), "ignoring unexpected file in the chunk directory");
            continue;
        };
        match read_trailer(&path) {
            Ok(t) => {
                space.add_existing(t.len + TRAILER_LEN);
                report.chunks += 1;
                report.bytes += t.len + TRAILER_LEN;
                index.insert(
                    id,
                    Entry {
                        len: t.len,
                        checksum: t.checksum,
                        corrupt: false,
                    },
                );
            }
            Err(reason) => {
                quarantine(data_dir, &path, &name)?;
                tracing::warn!(chunk = %id, %reason, "quarantined chunk with a damaged trailer");
                report.quarantined.push(name);
            }
        }
    }
    if report.temp_files_removed > 0 || !report.quarantined.is_empty() {
        sync_dir(chunks_dir)?;
    }
    Ok((index, report))
}

fn read_trailer(path: &Path) -> Result<Trailer, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    if file_len < TRAILER_LEN {
        return Err(format!("file of {file_len} bytes has no trailer"));
    }
    let mut buf = [0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut buf, file_len - TRAILER_LEN)
        .map_err(|e| e.to_string())?;
    Trailer::decode(&buf, file_len).map_err(|e| e.to_string())
}

fn quarantine(data_dir: &Path, path: &Path, name: &str) -> Result<(), StoreError> {
    let dir = data_dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&dir)
        .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let target = dir.join(format!("{name}.{stamp}"));
    fs::rename(path, &target)
        .map_err(|e| StoreError::io(format!("moving {} to quarantine", path.display()), e))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("fsync of directory {}", dir.display()), e))
}
