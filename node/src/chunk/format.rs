//! On-disk chunk file format: the data, then a 24-byte trailer.
//!
//! ```text
//! offset 0        data (len bytes)
//! offset len      magic  "FGCHUNK1"          8 bytes
//!                 len    u64 little-endian   8 bytes
//!                 crc    u32 LE, CRC32C of the data
//!                 tcrc   u32 LE, CRC32C of the 20 trailer bytes before it
//! ```
//!
//! A trailer (rather than a header) lets a writer stream data of unknown length and
//! append the checksum at the end; `tcrc` and the length cross-check against the file
//! size detect a damaged or truncated trailer.

use super::checksum::Checksum;

/// Size of the trailer appended to every chunk file.
pub const TRAILER_LEN: u64 = 24;
const MAGIC: &[u8; 8] = b"FGCHUNK1";

/// The decoded trailer of a chunk file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// Length of the chunk data in bytes.
    pub len: u64,
    /// Checksum of the chunk data.
    pub checksum: Checksum,
}

/// Why a trailer could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrailerError {
    /// The file is shorter than a trailer.
    #[error("file of {0} bytes is too short to hold a chunk trailer")]
    TooShort(u64),
    /// The magic bytes are wrong: not a chunk file, or a damaged one.
    #[error("bad trailer magic")]
    BadMagic,
    /// The trailer's own checksum does not match.
    #[error("trailer checksum mismatch")]
    BadTrailerChecksum,
    /// The recorded length does not match the file size.
    #[error("trailer records {recorded} data bytes but the file holds {actual}")]
    LengthMismatch {
        /// Length written in the trailer.
        recorded: u64,
        /// Data length implied by the file size.
        actual: u64,
    },
}

impl Trailer {
    /// Encodes the trailer.
    pub fn encode(&self) -> [u8; TRAILER_LEN as usize] {
        let mut out = [0u8; TRAILER_LEN as usize];
        out[..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.len.to_le_bytes());
        out[16..20].copy_from_slice(&self.checksum.0.to_le_bytes());
        let tcrc = crc32c::crc32c(&out[..20]);
        out[20..].copy_from_slice(&tcrc.to_le_bytes());
        out
    }

    /// Decodes the trailer read from the end of a file of `file_len` bytes.
    pub fn decode(bytes: &[u8; TRAILER_LEN as usize], file_len: u64) -> Result<Self, TrailerError> {
        if file_len < TRAILER_LEN {
            return Err(TrailerError::TooShort(file_len));
        }
        if &bytes[..8] != MAGIC {
            return Err(TrailerError::BadMagic);
        }
        let tcrc = u32::from_le_bytes(le4(&bytes[20..24]));
        if crc32c::crc32c(&bytes[..20]) != tcrc {
            return Err(TrailerError::BadTrailerChecksum);
        }
        let len = u64::from_le_bytes(le8(&bytes[8..16]));
        let actual = file_len - TRAILER_LEN;
        if len != actual {
            return Err(TrailerError::LengthMismatch {
                recorded: len,
                actual,
            });
        }
        Ok(Self {
            len,
            checksum: Checksum(u32::from_le_bytes(le4(&bytes[16..20]))),
        })
    }
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    out.copy_from_slice(b);
    out
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_detection() {
        let t = Trailer {
            len: 12345,
            checksum: Checksum(0xdead_beef),
        };
        let enc = t.encode();
        assert_eq!(Trailer::decode(&enc, 12345 + TRAILER_LEN), Ok(t));
        assert_eq!(
            Trailer::decode(&enc, 12 + TRAILER_LEN),
            Err(TrailerError::LengthMismatch {
                recorded: 12345,
                actual: 12
            })
        );
        let mut flipped = enc;
        flipped[9] ^= 1;
        assert_eq!(
            Trailer::decode(&flipped, 12345 + TRAILER_LEN),
            Err(TrailerError::BadTrailerChecksum)
        );
        let mut magic = enc;
        magic[0] = b'X';
        assert_eq!(Trailer::decode(&magic, 99), Err(TrailerError::BadMagic));
        assert_eq!(Trailer::decode(&enc, 3), Err(TrailerError::TooShort(3)));
    }
}
