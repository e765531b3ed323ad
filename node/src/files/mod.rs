//! The head's data path: the file API, chunk placement, the write pipeline, verified reads,
//! and the leader's repair work. Metadata lives in ZooKeeper (`namespace`), bytes on cluster
//! servers (see [`crate::cluster`]). See `docs/data-path.md`.

pub mod api;
pub mod cache;
pub mod dir_index;
pub mod known_dirs;
pub mod listing;
pub mod live;
pub mod manifest;
pub mod namespace;
pub mod path;
pub mod placement;
pub mod precondition;
pub mod read;
pub mod repair;
pub mod servers;
pub mod uploads;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use filegrid_proto::ErrorCode;

use crate::cluster::ChunkClient;
use crate::election::Election;
use crate::http::ApiError;
use crate::metrics::DataMetrics;
use known_dirs::KnownDirs;
use namespace::NsError;
use servers::Membership;

/// Data-path settings of a head.
#[derive(Clone, Debug)]
pub struct DataConfig {
    pub replication_factor: u32,
    pub min_write_replicas: u32,
    pub chunk_size: u64,
    pub dead_after: Duration,
    /// Orphaned chunks are deleted once unreferenced this long.
    pub orphan_grace: Duration,
    /// Bytes per second that repairs may copy.
    pub repair_rate: u64,
    /// An upload's pipeline hop that moves nothing this long (times the hops from it to the
    /// end) is given up.
    pub hop_progress_timeout: Duration,
    /// Largest file accepted.
    pub max_file_size: u64,
    /// Uploads in progress at once; more are refused with 503 and Retry-After.
    pub max_uploads: u32,
    /// Bytes of recently read or written small chunks kept in memory (0: none).
    pub read_cache_size: u64,
    /// Largest chunk the read cache keeps.
    pub read_cache_max_chunk: u64,
}

/// Everything the data path shares.
pub struct DataPlane {
    pub election: Arc<Election>,
    pub membership: Arc<Membership>,
    pub config: DataConfig,
    pub metrics: DataMetrics,
    /// Calls to cluster servers (uploads, reads, repair).
    pub chunks: ChunkClient,
    pub repairs: repair::Queue,
    /// Directories known to exist, for one-transaction commits of new files.
    pub known_dirs: KnownDirs,
    /// Checks cluster servers' signatures (acknowledgements, heartbeats); `None` when
    /// running insecure.
    pub peers: Option<crate::auth::PeerVerifier>,
    /// One permit per upload in progress (`max_uploads`).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// Uploads storing chunks on this head: the orphan collector keeps their chunks.
    pub live_uploads: live::LiveUploads,
    /// The sorted children of listed directories, for listings of both APIs.
    pub index: dir_index::DirIndex,
    /// Buffers for whole chunks, uploaded or read.
    pub buffers: Arc<crate::buffers::BufferPool>,
    /// Small whole chunks read or written recently.
    pub cache: cache::ChunkCache,
}

/// Freed chunk buffers a head keeps for reuse, in chunks: enough for a few large transfers
/// at once (a read holds up to three chunks, an upload up to four) without the page faults of
/// fresh buffers, for 64 MiB of memory at the default chunk size.
const POOLED_CHUNKS: u64 = 8;

impl DataPlane {
    pub fn new(
        election: Arc<Election>,
        config: DataConfig,
        metrics: DataMetrics,
        chunks: ChunkClient,
        peers: Option<crate::auth::PeerVerifier>,
    ) -> Arc<Self> {
        let index = dir_index::DirIndex::spawn(election.clients(), election.layout().files());
        Arc::new(Self {
            election,
            index,
            membership: Arc::new(Membership::default()),
            chunks,
            repairs: repair::Queue::default(),
            known_dirs: KnownDirs::default(),
            peers,
            uploads: Arc::new(tokio::sync::Semaphore::new(config.max_uploads as usize)),
            live_uploads: live::LiveUploads::default(),
            buffers: crate::buffers::BufferPool::new(
                usize::try_from(POOLED_CHUNKS.saturating_mul(config.chunk_size))
                    .unwrap_or(usize::MAX),
            ),
            cache: cache::ChunkCache::new(
                config.read_cache_size,
                config.read_cache_max_chunk,
                metrics.read_cache.clone(),
            ),
            metrics,
            config,
        })
    }

    /// The address of a cluster server, if known.
    pub fn addr_of(&self, id: &crate::ids::ServerId) -> Option<String> {
        self.membership.get(id).map(|s| s.addr())
    }
}

/// Why a file operation failed; each maps to one HTTP status and error code.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    BadRange(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    StorageFull(String),
    /// A create-only write found a file already there.
    #[error("{0}")]
    Exists(String),
    /// A conditional write or delete found a file that does not pass its condition.
    #[error("{0}")]
    Precondition(String),
}

impl From<NsError> for DataError {
    fn from(e: NsError) -> Self {
        match e {
            NsError::NotFound(p) => DataError::NotFound(format!("{p} not found")),
            NsError::Conflict(m) => DataError::Conflict(m),
            NsError::Exists(p) => DataError::Exists(format!("{p} exists already")),
            NsError::Precondition(m) => DataError::Precondition(m),
            e @ NsError::Contended(_) => DataError::Conflict(e.to_string()),
            NsError::Fence(f) => DataError::Unavailable(format!(
                "leadership changed during the request ({f}); retry"
            )),
            NsError::Zk(z) => DataError::Unavailable(format!("metadata store unavailable: {z}")),
            e @ NsError::TooLarge { .. } => DataError::TooLarge(e.to_string()),
        }
    }
}

impl DataError {
    /// The error code this failure is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DataError::BadRequest(_) => ErrorCode::BadRequest,
            DataError::BadRange(_) => ErrorCode::BadRange,
            DataError::TooLarge(_) => ErrorCode::TooLarge,
            DataError::NotFound(_) => ErrorCode::NotFound,
            DataError::Conflict(_) => ErrorCode::Conflict,
            DataError::Unavailable(_) => ErrorCode::Unavailable,
            DataError::StorageFull(_) => ErrorCode::StorageFull,
            DataError::Exists(_) | DataError::Precondition(_) => ErrorCode::PreconditionFailed,
        }
    }
}

impl From<DataError> for ApiError {
    fn from(e: DataError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}
