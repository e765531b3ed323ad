//! Header names FileGrid defines. Lower case, as HTTP/2 and `http::HeaderName` want them.

/// Chunk API request: the leader epoch a write, delete or replication runs under.
pub const EPOCH: &str = "x-filegrid-epoch";
/// Chunk API request: the downstream replicas of a pipeline write, `host:port,host:port`.
pub const PIPELINE: &str = "x-filegrid-pipeline";
/// Chunk API request: the expected checksum of a write (`crc32c:<hex>`); chunk and file
/// answers: the stored checksum.
pub const CHECKSUM: &str = "x-filegrid-checksum";
/// File answers: how many chunks the file has.
pub const CHUNKS: &str = "x-filegrid-chunks";
/// File answers: modification time, Unix milliseconds.
pub const MTIME: &str = "x-filegrid-mtime";
/// File API write or delete: the epoch of the leader the client sends it to. A head leading
/// at another epoch refuses it (`409 stale_epoch`), so a request that was held up (a cut
/// network, a stopped process) and that the client has since sent again to a newer leader
/// cannot take effect a second time, later, through another leadership.
pub const LEADER_EPOCH: &str = "x-filegrid-leader-epoch";
/// Set by a standby on a request it forwards to the leader; a head never forwards twice.
pub const FORWARDED_BY: &str = "x-filegrid-forwarded-by";
/// A peer request's signature: `FG1 <signer> <unix ms> <hex HMAC-SHA256>` (see the node's
/// `auth::peer`).
pub const PEER_AUTH: &str = "x-filegrid-peer-auth";
/// Chunk API request: the hop progress timeout of a pipeline write, in milliseconds. A hop
/// with `k` hops after it gives up the next one when it takes no byte, or gives no answer
/// after the last one, for `k` times this (see the node's `cluster::pipeline::stall_limit`).
pub const HOP_PROGRESS: &str = "x-filegrid-hop-progress-ms";
/// A replica's signed acknowledgement of a stored chunk, in the chunk API's answers.
pub const ACK: &str = "x-filegrid-ack";
