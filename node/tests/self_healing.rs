//! Self-healing end to end: damage done to a replica on a cluster server's disk (a flipped
//! bit, a deleted chunk file, a directory in its place) is found by the server's scrubber,
//! reaches the leader, and the chunk is copied again from a verified replica, with no client
//! reading the file. Real ZooKeeper, real heads and cluster servers.

use std::time::{Duration, Instant};

use filegrid_proto::head::RepairReport;
use filegrid_testkit::{Grid, GridOptions, wait_until_sync};

mod common;
use common::{admin_http, node_bin, random};

const CHUNK: usize = 256 * 1024;

fn put(base: &str, path: &str, data: Vec<u8>) -> u16 {
    admin_http()
        .put(format!("{base}/v1/files/{path}"))
        .body(data)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// A grid whose scrubbers start a new pass every second.
fn grid(cluster_servers: usize) -> Grid {
    Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers,
            extra_cluster_args: vec!["--scrub-interval".into(), "1s".into()],
            ..Default::default()
        },
    )
}

/// A chunk straight from a cluster server (signed as a peer), bypassing the heads, so that
/// looking does not trigger a head's read repair.
fn chunk_on(grid: &Grid, server: usize, chunk: &str) -> Option<Vec<u8>> {
    use filegrid_node::auth::peer::Signed;
    use filegrid_node::auth::{ClusterSecret, PeerSigner};
    let path = format!("/v1/chunks/{chunk}");
    let secret = ClusterSecret::load(&grid.cluster_secret_file()).ok()?;
    let header = PeerSigner::new("test-peer", secret).header(&Signed {
        method: "GET",
        path_and_query: &path,
        ..Signed::default()
    });
    let r = admin_http()
        .get(format!("{}{path}", grid.cluster_url(server)))
        .header(filegrid_proto::headers::PEER_AUTH, header)
        .send()
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.bytes().ok().map(|b| b.to_vec())
}

/// `Some` once every chunk of `path` is listed on three distinct servers, each of which
/// serves a verified copy with the right bytes.
fn fully_replicated(grid: &Grid, path: &str, data: &[u8]) -> Option<()> {
    let mut offset = 0;
    for (chunk, replicas) in grid.manifest(path) {
        let mut distinct = replicas.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != 3 {
            return None;
        }
        let len = CHUNK.min(data.len() - offset);
        let want = &data[offset..offset + len];
        for r in &replicas {
            let server = grid.cluster.iter().position(|c| &c.id == r)?;
            if chunk_on(grid, server, &chunk)?.as_slice() != want {
                return None;
            }
        }
        offset += len;
    }
    Some(())
}

/// The index in `grid.cluster` of the first replica of `path`'s first chunk, and the chunk.
fn first_replica(grid: &Grid, path: &str) -> (usize, String) {
    let chunks = grid.manifest(path);
    let (chunk, replicas) = &chunks[0];
    let server = grid
        .cluster
        .iter()
        .position(|c| c.id == replicas[0])
        .unwrap();
    (server, chunk.clone())
}

fn copies_made(base: &str) -> u64 {
    admin_http()
        .get(format!("{base}/v1/repair"))
        .send()
        .ok()
        .and_then(|r| r.json::<RepairReport>().ok())
        .map_or(0, |r| r.copies_made)
}

#[test]
fn a_corrupt_replica_the_scrubber_finds_is_replaced_without_any_read() {
    let grid = grid(3);
    let base = grid.leader_url(Duration::from_secs(20));
    let data = random(2 * CHUNK + 1000);
    assert_eq!(put(&base, "heal/bitrot", data.clone()), 201);
    let (victim, chunk) = first_replica(&grid, "heal/bitrot");
    let file = grid.chunk_file(victim, &chunk);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    assert!(fully_replicated(&grid, "heal/bitrot", &data).is_none());

    let damaged = Instant::now();
    wait_until_sync(
        Duration::from_secs(60),
        "three verified replicas again",
        || fully_replicated(&grid, "heal/bitrot", &data),
    );
    eprintln!("repaired {:?} after the damage", damaged.elapsed());
    assert!(
        copies_made(&base) <= 1,
        "only the damaged copy is made again"
    );
}

#[test]
fn a_chunk_file_deleted_from_disk_is_copied_again() {
    let grid = grid(4);
    let base = grid.leader_url(Duration::from_secs(20));
    let data = random(CHUNK + 5000);
    assert_eq!(put(&base, "heal/deleted", data.clone()), 201);
    let (victim, chunk) = first_replica(&grid, "heal/deleted");
    std::fs::remove_file(grid.chunk_file(victim, &chunk)).unwrap();

    let damaged = Instant::now();
    wait_until_sync(
        Duration::from_secs(60),
        "three verified replicas again",
        || fully_replicated(&grid, "heal/deleted", &data),
    );
    eprintln!("repaired {:?} after the deletion", damaged.elapsed());
}

#[test]
fn a_chunk_path_replaced_by_a_directory_is_repaired_and_reads_stay_right() {
    let grid = grid(3);
    let base = grid.leader_url(Duration::from_secs(20));
    let data = random(CHUNK + 77);
    assert_eq!(put(&base, "heal/dir", data.clone()), 201);
    let (victim, chunk) = first_replica(&grid, "heal/dir");
    let file = grid.chunk_file(victim, &chunk);
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("inside"), b"not a chunk").unwrap();

    // Reads through the head are right whichever replica it tries first.
    for _ in 0..3 {
        let r = admin_http()
            .get(format!("{base}/v1/files/heal/dir"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().unwrap().as_ref() == data.as_slice());
    }
    wait_until_sync(
        Duration::from_secs(60),
        "three verified replicas again",
        || fully_replicated(&grid, "heal/dir", &data),
    );
    // The directory was moved aside, not deleted, and a chunk file is in its place.
    assert!(std::fs::metadata(&file).unwrap().is_file());
    let quarantine = grid.cluster[victim].data_dir.join("quarantine");
    let kept = std::fs::read_dir(&quarantine).unwrap().count();
    assert_eq!(kept, 1, "the directory is kept in {}", quarantine.display());
}

fn repair_report(base: &str) -> Option<RepairReport> {
    admin_http()
        .get(format!("{base}/v1/repair"))
        .send()
        .ok()?
        .json()
        .ok()
}

#[test]
fn repair_progress_says_what_is_left_and_when_it_ends() {
    // 512 KiB/s: the copies of a dead server's chunks take seconds, long enough to watch.
    let rate: u64 = 512 * 1024;
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            session_timeout: "2s".into(),
            dead_after: "2s".into(),
            extra_head_args: vec!["--repair-rate".into(), rate.to_string()],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    let data = random(12 * CHUNK);
    assert_eq!(put(&base, "heal/progress", data.clone()), 201);
    let victim = 1;
    let victim_id = grid.cluster[victim].id.clone();
    let on_victim = grid
        .manifest("heal/progress")
        .iter()
        .filter(|(_, r)| r.contains(&victim_id))
        .count() as u64;
    assert!(on_victim > 0);
    grid.cluster[victim].proc.kill9();

    // While the pass copies: copies and bytes left, and an estimate.
    let seen = wait_until_sync(Duration::from_secs(60), "a pass copying", || {
        repair_report(&base).filter(|r| r.in_progress && r.chunks_left > 0)
    });
    assert!(seen.chunks_left <= on_victim, "{seen:?}");
    assert_eq!(seen.bytes_left, seen.chunks_left * CHUNK as u64, "{seen:?}");
    assert_eq!(seen.repair_rate, rate);
    let eta = seen.eta_seconds.expect("an estimate while copies are left");
    assert!(eta >= 1, "{seen:?}");
    let metrics = admin_http()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("filegrid_repair_bytes_left"), "{metrics}");
    assert!(metrics.contains("filegrid_repair_eta_seconds"), "{metrics}");

    // Done: nothing left, at a measured rate no faster than the setting allows.
    let started = Instant::now();
    let done = wait_until_sync(Duration::from_secs(90), "the copies made", || {
        repair_report(&base).filter(|r| !r.in_progress && r.chunks_left == 0 && r.copies_made > 0)
    });
    eprintln!(
        "{on_victim} chunks of {CHUNK} bytes copied in about {:?} (first estimate {eta}s); report {done:?}",
        started.elapsed()
    );
    assert_eq!(done.eta_seconds, None);
    assert!(
        done.rate_bytes_per_sec > 0 && done.rate_bytes_per_sec <= rate,
        "{done:?}"
    );
    wait_until_sync(
        Duration::from_secs(30),
        "three replicas, none on the dead server",
        || {
            grid.manifest("heal/progress")
                .iter()
                .all(|(_, r)| r.len() == 3 && !r.contains(&victim_id))
                .then_some(())
        },
    );
}
