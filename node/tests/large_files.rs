//! Files whose manifest is far larger than one ZooKeeper request, end to end: such a file
//! uploads, reads back byte for byte, loses a cluster server holding a replica of most of its
//! chunks, and is repaired back to three replicas, while small files that lost the same server
//! are repaired too, without waiting for the big one. The chunk size is the smallest the
//! configuration accepts (4 KiB): the manifest has one entry per chunk whatever the chunk
//! size, so 200,000 chunks make the manifest of a 1.6 TB file at the default 8 MiB in 800 MB.
//! Real ZooKeeper (with its default 1 MB request limit), real heads and cluster servers.
//!
//! Every chunk costs a few milliseconds of processing on its way through a debug build, so the
//! test that always runs uses 7,000 chunks: a 1.1 MB manifest in five parts, already too large
//! for one request. The 200,000-chunk run takes far longer than the test runner's limit of five
//! minutes (about 20 minutes with a release build); run it with
//! `cargo test --release -p filegrid-node --test large_files -- --ignored --nocapture`.
//!
//! Before the server is killed, one copy of one chunk is deleted from disk: its repair must
//! rewrite only the manifest part that lists the chunk.

use std::collections::HashSet;
use std::io::Read;
use std::ops::Range;
use std::time::{Duration, Instant};

use filegrid_testkit::{Grid, GridOptions, wait_until_sync};

mod common;
use common::{admin_http, node_bin, put_ok, random};

const CHUNK: u64 = 4096;

/// The byte at `offset` of the big file: a cheap hash of the offset's 8-byte word, so a chunk
/// served in the wrong place or shifted is caught.
fn word(index: u64) -> [u8; 8] {
    let mut z = index.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).to_le_bytes()
}

/// The big file's content as a stream of `size` bytes (it is never held in memory whole).
struct Content {
    offset: u64,
    size: u64,
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.size - self.offset).min(buf.len() as u64) as usize;
        fill(self.offset, &mut buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

/// Writes the content at `offset..offset + buf.len()` into `buf`.
fn fill(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let at = offset + i as u64;
        *b = word(at / 8)[(at % 8) as usize];
    }
}

/// Reads `range` of the big file (`size` bytes) through `base` and checks every byte against
/// [`fill`].
fn read_back(base: &str, path: &str, size: u64, range: Range<u64>, deadline: Duration) {
    let mut req = admin_http()
        .get(format!("{base}/v1/files/{path}"))
        .timeout(deadline);
    let whole = range == (0..size);
    if !whole {
        req = req.header("range", format!("bytes={}-{}", range.start, range.end - 1));
    }
    let mut resp = req.send().unwrap();
    assert_eq!(resp.status(), if whole { 200 } else { 206 });
    let mut buf = vec![0u8; 1 << 20];
    let mut want = vec![0u8; 1 << 20];
    let mut offset = range.start;
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        fill(offset, &mut want[..n]);
        assert!(buf[..n] == want[..n], "bytes differ near offset {offset}");
        offset += n as u64;
    }
    assert_eq!(offset, range.end, "the whole range came back");
}

/// `Some` once every chunk of `path` lists three distinct servers, none of them `gone`.
fn repaired(grid: &Grid, path: &str, gone: &str) -> Option<()> {
    let chunks = grid.manifest_chunks(path);
    let ok = !chunks.is_empty()
        && chunks.iter().all(|(_, replicas)| {
            let distinct: HashSet<&String> = replicas.iter().collect();
            distinct.len() == 3 && !distinct.iter().any(|r| r.as_str() == gone)
        });
    ok.then_some(())
}

#[test]
fn a_file_of_7_000_chunks_uploads_reads_and_is_repaired_alongside_small_files() {
    big_file_end_to_end(7_000);
}

/// A commit refused after its manifest parts were written (a file where a directory should
/// be) leaves no parts behind in ZooKeeper.
#[test]
fn a_refused_commit_leaves_no_manifest_parts() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            chunk_size: "4KiB".into(),
            log_filter: Some("warn".into()),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    let put = |path: &str, size: u64| {
        admin_http()
            .put(format!("{base}/v1/files/{path}"))
            .timeout(Duration::from_secs(300))
            .body(reqwest::blocking::Body::sized(
                Content { offset: 0, size },
                size,
            ))
            .send()
            .unwrap()
    };
    assert_eq!(put("clash", 10).status(), 201);
    // 2,500 chunks: a chunk list over the inline limit, so it is written as parts first.
    let r = put("clash/big", 2_500 * CHUNK);
    assert_eq!(r.status(), 409, "{}", r.text().unwrap_or_default());
    assert_eq!(grid.zk_children("manifests"), Vec::<String>::new());
    // The same file where it may go is stored with its parts.
    assert_eq!(put("fine/big", 2_500 * CHUNK).status(), 201);
    assert_eq!(grid.zk_children("manifests").len(), 1);
    assert!(grid.manifest_parts("fine/big").len() > 1);
}

#[test]
#[ignore = "about 20 minutes with a release build: cargo test --release -p filegrid-node --test large_files -- --ignored"]
fn a_file_of_200_000_chunks_uploads_reads_and_is_repaired_alongside_small_files() {
    big_file_end_to_end(200_000);
}

/// Uploads a file of `chunks` chunks (the last one short), reads it, kills a server with
/// copies of it and of three small files, and waits for all of them to be repaired.
fn big_file_end_to_end(chunks: u64) {
    let size = chunks * CHUNK - 1000;
    // Generous deadlines for a loaded machine: a debug build takes a few ms per chunk.
    let deadline = Duration::from_millis(chunks * 50).max(Duration::from_secs(300));
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            chunk_size: "4KiB".into(),
            // Logs at debug level would write a line or more per chunk.
            log_filter: Some("warn".into()),
            // Finds a chunk file deleted from disk within seconds.
            extra_cluster_args: vec!["--scrub-interval".into(), "1s".into()],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));

    // Small files first, eight chunks each, so each almost surely has a copy on any server.
    // They live in a directory and the big file at the top: a pass walks the top's files
    // before any directory, so the big file is planned first and the small ones after it.
    let small: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("small/{i}"), random(8 * CHUNK as usize - 10)))
        .collect();
    for (path, data) in &small {
        put_ok(&base, path, data);
    }

    let t = Instant::now();
    let r = admin_http()
        .put(format!("{base}/v1/files/big"))
        .timeout(deadline)
        .body(reqwest::blocking::Body::sized(
            Content { offset: 0, size },
            size,
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
    eprintln!(
        "uploaded {chunks} chunks ({size} bytes) in {:?}",
        t.elapsed()
    );

    let manifest = grid.manifest_chunks("big");
    assert_eq!(manifest.len() as u64, chunks);

    let t = Instant::now();
    read_back(&base, "big", size, 0..size, deadline);
    eprintln!("read back in {:?}", t.elapsed());

    // One replica lost on its own (its file deleted from disk, which the server's scrubber
    // finds): its repair rewrites the one manifest part that lists the chunk, no other.
    let before: Vec<i32> = grid.manifest_parts("big").iter().map(|p| p.0).collect();
    assert!(before.len() > 2, "the manifest is split into parts");
    let (damaged, replicas) = manifest[manifest.len() / 2].clone();
    let holder = grid
        .cluster
        .iter()
        .position(|c| c.id == replicas[0])
        .unwrap();
    std::fs::remove_file(grid.chunk_file(holder, &damaged)).unwrap();
    let t = Instant::now();
    let (now, changed) = wait_until_sync(deadline, "the deleted copy made again", || {
        let now = grid.manifest_parts("big");
        let changed: Vec<usize> = (0..now.len()).filter(|i| now[*i].0 != before[*i]).collect();
        if changed.is_empty() {
            std::thread::sleep(Duration::from_secs(1));
            return None;
        }
        Some((now, changed))
    });
    eprintln!("one lost copy repaired in {:?}", t.elapsed());
    let holding = now
        .iter()
        .position(|(_, ids)| ids.contains(&damaged))
        .unwrap();
    assert_eq!(
        changed,
        [holding],
        "only the part listing the chunk was rewritten"
    );
    let manifest = grid.manifest_chunks("big");
    let now_on: &Vec<String> = &manifest.iter().find(|(id, _)| *id == damaged).unwrap().1;
    assert_ne!(now_on, &replicas, "the chunk's replica list was updated");

    // The victim: a server holding copies of the big file and of every small file.
    let victim = grid
        .cluster
        .iter()
        .position(|c| {
            small.iter().all(|(path, _)| {
                grid.manifest_chunks(path)
                    .iter()
                    .any(|(_, replicas)| replicas.contains(&c.id))
            })
        })
        .expect("a server with a copy of every small file");
    let gone = grid.cluster[victim].id.clone();
    let lost = manifest
        .iter()
        .filter(|(_, replicas)| replicas.contains(&gone))
        .count();
    assert!(lost > 0);
    eprintln!("killing {gone}, which holds {lost} chunks of the big file");
    let killed = Instant::now();
    grid.cluster[victim].proc.kill9();

    // The small files are repaired while the big file is still being repaired: it does not
    // hold the others up until it is done.
    for (path, _) in &small {
        wait_until_sync(
            Duration::from_secs(300),
            &format!("{path} repaired"),
            || repaired(&grid, path, &gone),
        );
    }
    let small_done = killed.elapsed();
    eprintln!("small files repaired {small_done:?} after the kill");
    assert!(
        repaired(&grid, "big", &gone).is_none(),
        "the big file is still being repaired when the small ones are done"
    );
    // Each look reads the whole manifest: once a second is enough.
    wait_until_sync(deadline, "the big file repaired", || {
        repaired(&grid, "big", &gone).or_else(|| {
            std::thread::sleep(Duration::from_secs(1));
            None
        })
    });
    eprintln!("big file repaired {:?} after the kill", killed.elapsed());

    // Reads after the repair: the start, a stretch across the middle, the short end.
    let t = Instant::now();
    let mid = size / 2;
    for range in [
        0..CHUNK * 100,
        mid - CHUNK * 150 - 7..mid + CHUNK * 150,
        size - 3 * CHUNK..size,
    ] {
        read_back(&base, "big", size, range, deadline);
    }
    eprintln!("ranges read after the repair in {:?}", t.elapsed());
    for (path, data) in &small {
        let got = admin_http()
            .get(format!("{base}/v1/files/{path}"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert!(got.as_ref() == data.as_slice(), "{path}");
    }

    // No request was too large for ZooKeeper, which drops the connection of one that is.
    let log = grid.heads[0].proc.log();
    assert!(
        !log.contains("ZooKeeper connection lost"),
        "the leader lost its ZooKeeper connection"
    );
    if let Some(rss) = grid.heads[0].proc.rss_bytes() {
        eprintln!("leader head's resident memory: {} MiB", rss >> 20);
    }
}
