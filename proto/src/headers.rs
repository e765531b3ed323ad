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
/// Set by a standby on a request it forwards to the leader; a head never forwards twice.
pub const FORWARDED_BY: &str = "x-filegrid-forwarded-by";
