//! The chunk checksum: CRC32C, chosen over BLAKE3 by measurement (see `docs/storage.md`).
//!
//! Chunks are protected against media and transfer corruption, not against an adversary,
//! so the hardware-accelerated CRC wins: it costs a fraction of the memory bandwidth.

use std::fmt;
use std::str::FromStr;

/// Name of the algorithm as it appears in the textual form, `crc32c:0123abcd`.
pub const ALGORITHM: &str = "crc32c";

/// A CRC32C value of a whole chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Checksum(pub u32);

/// Incremental checksum over streamed data.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hasher(u32);

impl Hasher {
    /// Adds `data` to the checksum.
    pub fn update(&mut self, data: &[u8]) {
        self.0 = crc32c::crc32c_append(self.0, data);
    }

    /// The checksum of everything added so far.
    pub fn finish(&self) -> Checksum {
        Checksum(self.0)
    }
}

impl Checksum {
    /// The checksum of `data` in one go.
    pub fn of(data: &[u8]) -> Self {
        Self(crc32c::crc32c(data))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM}:{:08x}", self.0)
    }
}

/// A checksum string that is not `crc32c:` followed by 8 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("invalid checksum {0:?}: expected {ALGORITHM}:<8 hex digits>")]
pub struct ChecksumParseError(String);

impl FromStr for Checksum {
    type Err = ChecksumParseError;

    /// Accepts `crc32c:0123abcd` and, for convenience, the bare 8 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let hex = s
            .strip_prefix(ALGORITHM)
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or(s);
        if hex.len() != 8 {
            return Err(ChecksumParseError(s.to_string()));
        }
        u32::from_str_radix(hex, 16)
            .map(Checksum)
            .map_err(|_| ChecksumParseError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Hasher::default();
        for part in data.chunks(333) {
            h.update(part);
        }
        assert_eq!(h.finish(), Checksum::of(&data));
    }

    #[test]
    fn text_round_trip() {
        let c = Checksum(0x0a1b_2c3d);
        assert_eq!(c.to_string(), "crc32c:0a1b2c3d");
        assert_eq!(c.to_string().parse::<Checksum>().unwrap(), c);
        assert_eq!("0a1b2c3d".parse::<Checksum>().unwrap(), c);
        for bad in [
            "",
            "crc32c:",
            "crc32c:0a1b2c3",
            "sha256:0a1b2c3d",
            "zzzzzzzz",
        ] {
            assert!(bad.parse::<Checksum>().is_err(), "{bad:?} accepted");
        }
    }
}
