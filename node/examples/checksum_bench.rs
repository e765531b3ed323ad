//! Throughput of the two candidate chunk checksums against a memcpy baseline.
//!
//! Run with `cargo run --release -p filegrid-node --example checksum_bench`.
//! Each figure is the median of several runs over 8 MiB buffers (the default
//! chunk size), so the comparison reflects what a cluster server does per chunk.

use std::hint::black_box;
use std::time::{Duration, Instant};

const CHUNK: usize = 8 * 1024 * 1024;
const CHUNKS_PER_RUN: usize = 32;
const RUNS: usize = 7;

fn main() {
    let input: Vec<u8> = (0..CHUNK)
        .map(|i| {
            (i as u64)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(17) as u8
        })
        .collect();
    let mut copy = vec![0u8; CHUNK];

    let memcpy = median_throughput(|| {
        copy.copy_from_slice(black_box(&input));
        black_box(&copy);
    });
    let crc = median_throughput(|| {
        black_box(crc32c::crc32c(black_box(&input)));
    });
    let blake = median_throughput(|| {
        black_box(blake3::hash(black_box(&input)));
    });

    println!("checksum throughput, 8 MiB buffers, median of {RUNS} runs x {CHUNKS_PER_RUN} chunks");
    println!("{:<10} {:>10} {:>12}", "method", "GiB/s", "vs memcpy");
    for (name, gib) in [("memcpy", memcpy), ("crc32c", crc), ("blake3", blake)] {
        println!("{name:<10} {gib:>10.2} {:>11.2}x", gib / memcpy);
    }
}

/// Median throughput in GiB/s of `op`, run over one chunk per call.
fn median_throughput(mut op: impl FnMut()) -> f64 {
    op(); // warm caches and lazy CPU-feature detection
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CHUNKS_PER_RUN {
                op();
            }
            gib_per_sec(CHUNK * CHUNKS_PER_RUN, start.elapsed())
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[RUNS / 2]
}

fn gib_per_sec(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0 * 1024.0) / elapsed.as_secs_f64()
}
