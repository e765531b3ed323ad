//! MD5 for S3 ETags, computed for many uploads at once.
//!
//! An S3 ETag is the MD5 of the object, and clients check it, so every byte of every S3 upload
//! is hashed. MD5 is a chain of dependent steps: one stream runs at about 630 MB/s whatever the
//! code, which on two cores that also run the grid was the whole gap between S3 and native
//! puts. Concurrent uploads are independent chains, though, and [`kernel`] hashes eight of them
//! in the lanes of AVX2 registers for several times the bytes per CPU second. [`batcher`] is
//! the thread that brings the uploads' bytes together into such rounds.
//!
//! No maintained crate hashes several MD5 streams at once (`md-5` and `md5-asm` hash one), so
//! the eight-lane core is FileGrid's own, tested against `md-5` on every path.

pub mod batcher;
pub mod kernel;

pub use batcher::Md5Stream;

use kernel::BLOCK;

/// A running MD5: the block state, the bytes of an unfinished block and the length so far.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    partial: [u8; BLOCK],
    partial_len: usize,
    len: u64,
}

impl Default for Md5 {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5 {
    pub fn new() -> Self {
        Self {
            state: [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476],
            partial: [0; BLOCK],
            partial_len: 0,
            len: 0,
        }
    }

    /// Hashes `data`, one stream at a time.
    pub fn update(&mut self, data: &[u8]) {
        let rest = self.fill_partial(data);
        let whole = rest.len() / BLOCK * BLOCK;
        kernel::compress(&mut self.state, &rest[..whole]);
        self.len += whole as u64;
        self.keep_partial(&rest[whole..]);
    }

    /// Completes an unfinished block from the front of `data` (hashing it once full) and
    /// returns the rest of `data`, which then starts on a block boundary unless it is empty.
    fn fill_partial<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.partial_len == 0 {
            return data;
        }
        let take = (BLOCK - self.partial_len).min(data.len());
        self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
        self.partial_len += take;
        if self.partial_len == BLOCK {
            kernel::compress(&mut self.state, &self.partial);
            self.len += BLOCK as u64;
            self.partial_len = 0;
        }
        &data[take..]
    }

    /// Keeps `tail` (shorter than a block, and only when no block is unfinished) for later.
    fn keep_partial(&mut self, tail: &[u8]) {
        debug_assert!(tail.len() < BLOCK && (tail.is_empty() || self.partial_len == 0));
        self.partial[self.partial_len..self.partial_len + tail.len()].copy_from_slice(tail);
        self.partial_len += tail.len();
    }

    /// Accounts for whole blocks hashed into [`Self::state`] by someone else.
    fn hashed_blocks(&mut self, blocks: usize) {
        self.len += (blocks * BLOCK) as u64;
    }

    /// The digest of everything hashed.
    pub fn finalize(mut self) -> [u8; 16] {
        let bits = (self.len + self.partial_len as u64).wrapping_mul(8);
        let mut pad = [0u8; 2 * BLOCK];
        let n = self.partial_len;
        pad[..n].copy_from_slice(&self.partial[..n]);
        pad[n] = 0x80;
        let total = if n < BLOCK - 8 { BLOCK } else { 2 * BLOCK };
        pad[total - 8..total].copy_from_slice(&bits.to_le_bytes());
        kernel::compress(&mut self.state, &pad[..total]);
        let mut out = [0u8; 16];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    #[test]
    fn digests_match_md5_at_every_length_and_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in (0..200).chain([255, 256, 511, 512, 513, 999, 1000]) {
            let want: [u8; 16] = md5::Md5::digest(&data[..len]).into();
            let mut one = Md5::new();
            one.update(&data[..len]);
            assert_eq!(one.finalize(), want, "len {len} in one piece");
            for split in [1, 3, 63, 64, 65, 130] {
                let mut m = Md5::new();
                for piece in data[..len].chunks(split) {
                    m.update(piece);
                }
                assert_eq!(m.finalize(), want, "len {len} in pieces of {split}");
            }
        }
    }
}
