//! Chunk identifiers: opaque names, restricted so they are always safe file names.

use std::fmt;

/// Longest accepted chunk id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// A validated chunk id: 1 to 128 characters from `[A-Za-z0-9_-]`.
///
/// The restricted alphabet means an id can be used directly as a file name and never
/// collides with the store's temp files, which always contain a `.`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkId(String);

/// Why a string is not a valid chunk id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunk id {id:?}: must be 1 to {MAX_ID_LEN} characters from [A-Za-z0-9_-]")]
pub struct InvalidChunkId {
    /// The rejected input, cut to a printable length.
    pub id: String,
}

impl ChunkId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidChunkId> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(id))
        } else {
            Err(InvalidChunkId {
                id: id.chars().take(MAX_ID_LEN + 8).collect(),
            })
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ChunkId {
    type Err = InvalidChunkId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(ChunkId::new("0b9c1d2e-aaaa-4bbb-8ccc-0123456789ab-17-3").is_ok());
        assert!(ChunkId::new("A_z-09").is_ok());
        assert!(ChunkId::new("x".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn rejects_everything_else() {
        for bad in ["", ".", "..", "a/b", "a.b", "a b", "é", "a\0b"] {
            assert!(ChunkId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ChunkId::new("x".repeat(MAX_ID_LEN + 1)).is_err());
    }
}
