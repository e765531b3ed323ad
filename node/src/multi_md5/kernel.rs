//! MD5 block functions: one stream at a time (the `md5-asm` core on x86, the same one `md-5`
//! uses, or a portable one elsewhere), and eight streams at once in the lanes of AVX2 registers.
//!
//! MD5 is a chain of 64 dependent steps per 64-byte block, so one stream cannot go faster than
//! the latency of that chain (about 630 MB/s on this class of machine). Eight independent
//! streams fill the eight 32-bit lanes of an AVX2 register with the same instructions, for
//! close to eight times the bytes per instruction.

/// Bytes per MD5 block.
pub const BLOCK: usize = 64;

/// Streams one [`compress_lanes`] call hashes at once.
pub const LANES: usize = 8;

/// Per-step additive constants (RFC 1321, `floor(abs(sin(i + 1)) * 2^32)`).
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

/// The message word each step reads.
const G: [usize; 64] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, //
    1, 6, 11, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12, //
    5, 8, 11, 14, 1, 4, 7, 10, 13, 0, 3, 6, 9, 12, 15, 2, //
    0, 7, 14, 5, 12, 3, 10, 1, 8, 15, 6, 13, 4, 11, 2, 9,
];

/// Hashes `blocks` (a whole number of 64-byte blocks) into one stream's `state`.
pub fn compress(state: &mut [u32; 4], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % BLOCK, 0);
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        let (whole, _) = blocks.as_chunks::<BLOCK>();
        md5_asm::compress(state, whole);
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    portable::compress(state, blocks);
}

/// Hashes the first `blocks` 64-byte blocks of each of `lanes`' data into its state: up to
/// [`LANES`] streams, every one with at least `blocks * 64` bytes. Uses AVX2 where the CPU has
/// it (with two or more streams), one stream at a time otherwise.
pub fn compress_lanes(lanes: &mut [(&mut [u32; 4], &[u8])], blocks: usize) {
    assert!(lanes.len() <= LANES, "at most {LANES} lanes");
    assert!(
        lanes.iter().all(|(_, d)| d.len() >= blocks * BLOCK),
        "every lane holds the blocks asked for"
    );
    #[cfg(target_arch = "x86_64")]
    if lanes.len() > 1 && avx2::available() {
        // SAFETY: the CPU has AVX2 (checked just above) and every lane holds `blocks` blocks
        // (asserted above).
        unsafe { avx2::compress8(lanes, blocks) };
        return;
    }
    for (state, data) in lanes.iter_mut() {
        compress(state, &data[..blocks * BLOCK]);
    }
}

/// Whether [`compress_lanes`] hashes several streams at once on this CPU.
pub fn lanes_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The portable one-stream core: the reference the AVX2 lanes are tested against, and the
/// core on CPUs without `md5-asm`.
#[cfg_attr(any(target_arch = "x86", target_arch = "x86_64"), allow(dead_code))]
pub mod portable {
    use super::{BLOCK, G, K};

    const S: [[u32; 4]; 4] = [
        [7, 12, 17, 22],
        [5, 9, 14, 20],
        [4, 11, 16, 23],
        [6, 10, 15, 21],
    ];

    /// Hashes `blocks` (a whole number of 64-byte blocks) into `state`.
    pub fn compress(state: &mut [u32; 4], blocks: &[u8]) {
        for block in blocks.chunks_exact(BLOCK) {
            let mut m = [0u32; 16];
            for (w, b) in m.iter_mut().zip(block.chunks_exact(4)) {
                *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            let [mut a, mut b, mut c, mut d] = *state;
            for i in 0..64 {
                let f = match i / 16 {
                    0 => d ^ (b & (c ^ d)),
                    1 => c ^ (d & (b ^ c)),
                    2 => b ^ c ^ d,
                    _ => c ^ (b | !d),
                };
                let t = a
                    .wrapping_add(f)
                    .wrapping_add(K[i])
                    .wrapping_add(m[G[i]])
                    .rotate_left(S[i / 16][i % 4]);
                (a, b, c, d) = (d, b.wrapping_add(t), b, c);
            }
            for (s, v) in state.iter_mut().zip([a, b, c, d]) {
                *s = s.wrapping_add(v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use super::{BLOCK, G, K, LANES};

    pub fn available() -> bool {
        static AVX2: OnceLock<bool> = OnceLock::new();
        *AVX2.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
    }

    /// The boolean function of each round.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn f(round: usize, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        match round {
            0 => _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d))),
            1 => _mm256_xor_si256(c, _mm256_and_si256(d, _mm256_xor_si256(b, c))),
            2 => _mm256_xor_si256(_mm256_xor_si256(b, c), d),
            _ => _mm256_xor_si256(
                c,
                _mm256_or_si256(b, _mm256_xor_si256(d, _mm256_set1_epi32(-1))),
            ),
        }
    }

    /// One MD5 step in every lane: `b + rotl(a + f + K[i] + m[G[i]], L)`; `R` is `32 - L`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn step<const L: i32, const R: i32>(
        i: usize,
        abcd: [__m256i; 4],
        m: &[__m256i; 16],
    ) -> __m256i {
        let [a, b, c, d] = abcd;
        let t = _mm256_add_epi32(
            _mm256_add_epi32(a, f(i / 16, b, c, d)),
            _mm256_add_epi32(_mm256_set1_epi32(K[i] as i32), m[G[i]]),
        );
        let r = _mm256_or_si256(_mm256_slli_epi32::<L>(t), _mm256_srli_epi32::<R>(t));
        _mm256_add_epi32(b, r)
    }

    /// Transposes eight rows of eight 32-bit words: row `l` of the input is lane `l`'s
    /// words, row `w` of the output is word `w` of every lane.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn transpose(r: [__m256i; 8]) -> [__m256i; 8] {
        {
            let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
            let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
            let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
            let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
            let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
            let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
            let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
            let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
            let u0 = _mm256_unpacklo_epi64(t0, t2);
            let u1 = _mm256_unpackhi_epi64(t0, t2);
            let u2 = _mm256_unpacklo_epi64(t1, t3);
            let u3 = _mm256_unpackhi_epi64(t1, t3);
            let u4 = _mm256_unpacklo_epi64(t4, t6);
            let u5 = _mm256_unpackhi_epi64(t4, t6);
            let u6 = _mm256_unpacklo_epi64(t5, t7);
            let u7 = _mm256_unpackhi_epi64(t5, t7);
            [
                _mm256_permute2x128_si256::<0x20>(u0, u4),
                _mm256_permute2x128_si256::<0x20>(u1, u5),
                _mm256_permute2x128_si256::<0x20>(u2, u6),
                _mm256_permute2x128_si256::<0x20>(u3, u7),
                _mm256_permute2x128_si256::<0x31>(u0, u4),
                _mm256_permute2x128_si256::<0x31>(u1, u5),
                _mm256_permute2x128_si256::<0x31>(u2, u6),
                _mm256_permute2x128_si256::<0x31>(u3, u7),
            ]
        }
    }

    /// Sixteen steps of one round, the four shifts of the round given.
    macro_rules! round {
        ($r:expr, $s:ident, $m:ident, $l0:literal, $l1:literal, $l2:literal, $l3:literal) => {
            for j in 0..4 {
                let i = $r * 16 + j * 4;
                let [a, b, c, d] = $s;
                let a = step::<$l0, { 32 - $l0 }>(i, [a, b, c, d], &$m);
                let d = step::<$l1, { 32 - $l1 }>(i + 1, [d, a, b, c], &$m);
                let c = step::<$l2, { 32 - $l2 }>(i + 2, [c, d, a, b], &$m);
                let b = step::<$l3, { 32 - $l3 }>(i + 3, [b, c, d, a], &$m);
                $s = [a, b, c, d];
            }
        };
    }

    /// Eight streams (fewer lanes are padded with a block of zeros read over and over, whose
    /// results are thrown away).
    ///
    /// # Safety
    /// The CPU must have AVX2, and every lane's data must hold at least `blocks * 64` bytes.
    #[target_feature(enable = "avx2")]
    pub unsafe fn compress8(lanes: &mut [(&mut [u32; 4], &[u8])], blocks: usize) {
        static ZERO: [u8; BLOCK] = [0; BLOCK];
        let mut ptr = [ZERO.as_ptr(); LANES];
        let mut stride = [0usize; LANES];
        let mut init = [[0u32; 4]; LANES];
        for (l, (state, data)) in lanes.iter().enumerate() {
            ptr[l] = data.as_ptr();
            stride[l] = BLOCK;
            init[l] = **state;
        }
        let mut s = [_mm256_setzero_si256(); 4];
        for (w, v) in s.iter_mut().enumerate() {
            let mut words = [0u32; LANES];
            for (x, st) in words.iter_mut().zip(&init) {
                *x = st[w];
            }
            // SAFETY: an unaligned load of eight u32 from a local array.
            *v = unsafe { _mm256_loadu_si256(words.as_ptr().cast()) };
        }
        for n in 0..blocks {
            let mut lo = [_mm256_setzero_si256(); LANES];
            let mut hi = [_mm256_setzero_si256(); LANES];
            for l in 0..LANES {
                // SAFETY: lane `l` reads bytes `n * stride .. n * stride + 64` of its data,
                // inside the `blocks * 64` bytes the caller guarantees (or of `ZERO`, whose
                // stride is 0).
                unsafe {
                    let p = ptr[l].add(n * stride[l]);
                    lo[l] = _mm256_loadu_si256(p.cast());
                    hi[l] = _mm256_loadu_si256(p.add(32).cast());
                }
            }
            let lo = transpose(lo);
            let hi = transpose(hi);
            let mut m = [_mm256_setzero_si256(); 16];
            m[..8].copy_from_slice(&lo);
            m[8..].copy_from_slice(&hi);
            let before = s;
            round!(0, s, m, 7, 12, 17, 22);
            round!(1, s, m, 5, 9, 14, 20);
            round!(2, s, m, 4, 11, 16, 23);
            round!(3, s, m, 6, 10, 15, 21);
            for (v, b) in s.iter_mut().zip(before) {
                *v = _mm256_add_epi32(*v, b);
            }
        }
        let mut out = [[0u32; LANES]; 4];
        for (o, v) in out.iter_mut().zip(s) {
            // SAFETY: an unaligned store of eight u32 into a local array.
            unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), v) };
        }
        for (l, (state, _)) in lanes.iter_mut().enumerate() {
            **state = [out[0][l], out[1][l], out[2][l], out[3][l]];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    const INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

    #[test]
    fn the_portable_core_matches_md5_asm_and_lanes_match_one_stream_at_a_time() {
        for lanes in 1..=LANES {
            let inputs: Vec<Vec<u8>> = (0..lanes).map(|l| data(64 * 9, l as u8)).collect();
            let mut want = vec![INIT; lanes];
            for (s, d) in want.iter_mut().zip(&inputs) {
                compress(s, d);
                let mut p = INIT;
                portable::compress(&mut p, d);
                assert_eq!(p, *s, "portable core");
            }
            let mut got = vec![INIT; lanes];
            let mut args: Vec<(&mut [u32; 4], &[u8])> = got
                .iter_mut()
                .zip(&inputs)
                .map(|(s, d)| (s, d.as_slice()))
                .collect();
            compress_lanes(&mut args, 9);
            assert_eq!(got, want, "{lanes} lanes");
        }
    }

    #[test]
    fn lanes_hash_only_the_blocks_asked_for() {
        let a = data(64 * 5, 1);
        let b = data(64 * 3, 2);
        let (mut sa, mut sb) = (INIT, INIT);
        compress_lanes(&mut [(&mut sa, &a), (&mut sb, &b)], 2);
        let (mut wa, mut wb) = (INIT, INIT);
        compress(&mut wa, &a[..128]);
        compress(&mut wb, &b[..128]);
        assert_eq!((sa, sb), (wa, wb));
    }
}
