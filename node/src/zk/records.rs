//! The JSON values stored in znodes: the types live in [`filegrid_proto::zk`]; this module
//! adds the clock and the encoding with errors that name the znode.

use serde::{Deserialize, Serialize};

pub use filegrid_proto::zk::*;

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Serializes a record for a znode.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Parses a znode's data, naming the path on error.
pub fn decode<T: for<'de> Deserialize<'de>>(path: &str, data: &[u8]) -> Result<T, super::ZkError> {
    serde_json::from_slice(data).map_err(|e| super::ZkError::BadRecord {
        path: path.to_string(),
        message: e.to_string(),
    })
}
