//! Pipeline recovery against a hung cluster server (SIGSTOP): the hop before it gives it up
//! after the hop progress timeout, the head when its registration ends or when it falls
//! silent (no heartbeat for three intervals); only it is ruled out, and uploads succeed
//! quickly on the servers left; and one stopped for less than the progress timeout, even
//! longer than 30 s, is waited for. Real ZooKeeper, real heads and cluster servers.

use std::time::{Duration, Instant};

use filegrid_testkit::{Grid, GridOptions, wait_until_sync};

mod common;
use common::{admin_http, metric, node_bin, put_ok, random};

const CHUNK: usize = 256 * 1024;

#[test]
fn a_stopped_server_anywhere_in_the_pipeline_is_the_only_one_ruled_out() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            // The stopped server stays registered (and chosen) for the whole test, and does
            // not fall silent within it: only the hops' progress watch can give it up.
            session_timeout: "40s".into(),
            dead_after: "60s".into(),
            heartbeat_interval: "60s".into(),
            extra_head_args: vec!["--hop-progress-timeout".into(), "1s".into()],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(4, Duration::from_secs(20));
    let hung = 3;
    let hung_id = grid.cluster[hung].id.clone();
    grid.cluster[hung].proc.pause();

    for i in 0..6 {
        let path = format!("hung/f{i}");
        let data = random(2 * CHUNK + 100);
        let started = Instant::now();
        let r = admin_http()
            .put(format!("{base}/v1/files/{path}"))
            .body(data.clone())
            .send()
            .unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), 201, "{path}: {:?}", r.text());
        // Three chunks, each at most: the head's limit (3 hops x 1 s) and a second pipeline.
        // Before, a hung later hop held each chunk for 30 s.
        assert!(took < Duration::from_secs(20), "{path} took {took:?}");
        eprintln!("{path} stored in {took:?}");
        for (_, reps) in grid.manifest(&path) {
            let mut distinct = reps.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                3,
                "{path}: every healthy server kept its copy: {reps:?}"
            );
            assert!(!reps.contains(&hung_id), "{path}: {reps:?}");
        }
        let back = admin_http()
            .get(format!("{base}/v1/files/{path}"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert!(back.as_ref() == data.as_slice(), "{path} reads back");
    }
    // The hung server was a later hop at least once (a chance of 1 in 4096 otherwise), and
    // the hop before it, not the head, gave it up.
    let gave_up = grid
        .cluster
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != hung)
        .any(|(_, c)| c.proc.log().contains("going on without it"));
    assert!(gave_up, "no hop gave up the hung server");
    grid.cluster[hung].proc.resume();
}

/// A server that leaves the grid (here: stopped until its ZooKeeper session expires) ends the
/// uploads in flight through it when its registration goes, not after the hop progress
/// timeout: a paused server stalls writes for its session timeout at most.
#[test]
fn uploads_through_a_server_that_leaves_the_grid_go_on_without_it_at_once() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            session_timeout: "2s".into(),
            dead_after: "60s".into(),
            // Far longer than the test may take: only the registration's end can free them.
            heartbeat_interval: "60s".into(),
            extra_head_args: vec!["--hop-progress-timeout".into(), "120s".into()],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(4, Duration::from_secs(20));
    let hung = 2;
    let hung_id = grid.cluster[hung].id.clone();
    grid.cluster[hung].proc.pause();

    // Six uploads at once, right after the pause: the stopped server is still registered and
    // is in most of their pipelines (in none of them: a chance of 1 in 4096).
    for (path, data, status, took) in uploads_at_once(&base, "left", 6) {
        assert_eq!(status, Some(201), "{path} after {took:?}");
        // The session timeout (2 s), the check, and a second pipeline; the hop progress
        // timeout (120 s) would have held it far longer.
        assert!(took < Duration::from_secs(30), "{path} took {took:?}");
        eprintln!("{path} stored in {took:?}");
        for (_, reps) in grid.manifest(&path) {
            assert!(!reps.contains(&hung_id), "{path}: {reps:?}");
            assert!(reps.len() >= 2, "{path}: {reps:?}");
        }
        let back = admin_http()
            .get(format!("{base}/v1/files/{path}"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert!(back.as_ref() == data.as_slice(), "{path} reads back");
    }
    let head_log = grid.heads[0].proc.log();
    assert!(
        head_log.contains("left the grid or fell silent during the upload"),
        "no upload was in flight through the stopped server"
    );
    grid.cluster[hung].proc.resume();
}

/// A stopped server that keeps its registration (a long session timeout) but stops
/// heartbeating is silent after three heartbeat intervals: uploads in flight through it are
/// placed again without it, new ones avoid it, and reads of files it holds a copy of are
/// served from the others, long before its session or any progress timeout would end.
#[test]
fn a_stopped_server_that_falls_silent_is_placed_and_read_around() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            session_timeout: "40s".into(),
            dead_after: "60s".into(),
            extra_head_args: vec!["--hop-progress-timeout".into(), "120s".into()],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(4, Duration::from_secs(20));
    // Files with a copy of every chunk on each of three servers of four: most have one on
    // the server about to stop.
    let before = put_files(&base, "silent/old", 6, |_| CHUNK + 100);
    // A server the leader has not heard from yet is not judged: wait until it has heard all.
    wait_until_sync(
        Duration::from_secs(20),
        "heartbeats from every server",
        || {
            let text = admin_http()
                .get(format!("{base}/metrics"))
                .send()
                .ok()?
                .text()
                .ok()?;
            metric(&text, "heartbeat_active_connections").filter(|n| *n >= 4.0)
        },
    );
    let hung = 1;
    let hung_id = grid.cluster[hung].id.clone();
    grid.cluster[hung].proc.pause();

    for (path, data, status, took) in uploads_at_once(&base, "silent", 6) {
        assert_eq!(status, Some(201), "{path} after {took:?}");
        // Three heartbeat intervals (1.5 s), the check and a second pipeline; the session
        // (40 s) and the hop progress timeout (120 s) would have held it far longer.
        assert!(took < Duration::from_secs(20), "{path} took {took:?}");
        eprintln!("{path} stored in {took:?}");
        for (_, reps) in grid.manifest(&path) {
            assert!(!reps.contains(&hung_id), "{path}: {reps:?}");
        }
        let back = admin_http()
            .get(format!("{base}/v1/files/{path}"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert!(back.as_ref() == data.as_slice(), "{path} reads back");
    }
    for (path, data) in &before {
        let started = Instant::now();
        let back = admin_http()
            .get(format!("{base}/v1/files/{path}"))
            .timeout(Duration::from_secs(90))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let took = started.elapsed();
        assert!(back.as_ref() == data.as_slice(), "{path} reads back");
        assert!(took < Duration::from_secs(10), "{path} took {took:?}");
    }
    let head_log = grid.heads[0].proc.log();
    assert!(
        head_log.contains("left the grid or fell silent during the upload"),
        "no upload was in flight through the stopped server"
    );
    grid.cluster[hung].proc.resume();
}

/// `n` uploads of a chunk and a little more to `dir/f<i>`, all at once; for each, its path,
/// data, answer status (`None` for no answer) and how long it took.
fn uploads_at_once(
    base: &str,
    dir: &str,
    n: usize,
) -> Vec<(String, Vec<u8>, Option<u16>, Duration)> {
    let uploads: Vec<_> = (0..n)
        .map(|i| {
            let (base, path) = (base.to_string(), format!("{dir}/f{i}"));
            std::thread::spawn(move || {
                let data = random(CHUNK + 100);
                let started = Instant::now();
                let status = admin_http()
                    .put(format!("{base}/v1/files/{path}"))
                    .timeout(Duration::from_secs(90))
                    .body(data.clone())
                    .send()
                    .ok()
                    .map(|r| r.status().as_u16());
                (path, data, status, started.elapsed())
            })
        })
        .collect();
    uploads.into_iter().map(|u| u.join().unwrap()).collect()
}

/// A standby takes no heartbeats, so it cannot tell that a stopped cluster server is silent,
/// and the server keeps its registration until its session expires. A read there that tries
/// the stopped server first asks the next replica once the first has not answered for the
/// hedge delay (1 s), instead of waiting for the read's own timeout (30 s) or the session.
#[test]
fn a_standby_reads_around_a_stopped_server_it_cannot_know_is_silent() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            session_timeout: "40s".into(),
            dead_after: "60s".into(),
            // Every read goes to the replicas: the standby would otherwise answer the chunks
            // it read while waiting below from its cache, and might never try the stopped
            // server first.
            extra_head_args: vec!["--read-cache-size".into(), "0".into()],
            ..Default::default()
        },
    );
    let leader = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let standby = grid.head_url(grid.standby(Duration::from_secs(20)));
    let no_redirects = common::admin_http_no_redirects();
    let files = put_files(&leader, "hedge/f", 3, |i| 2 * CHUNK + i);
    // The standby serves reads itself once it has read the servers' registrations.
    wait_until_sync(
        Duration::from_secs(20),
        "the standby serves reads itself",
        || {
            let r = no_redirects
                .get(format!("{standby}/v1/files/{}", files[0].0))
                .send()
                .ok()?;
            (r.status() == 200).then_some(())
        },
    );
    // Every server is registered and none is judged silent on the standby, so it tries the
    // replicas in the manifest's order: stop the first one of the first file's first chunk.
    let first = grid.manifest(&files[0].0)[0].1[0].clone();
    let hung = grid
        .cluster
        .iter()
        .position(|c| c.id == first)
        .expect("the replica's server is in the grid");
    let hedges = || {
        let text = no_redirects
            .get(format!("{standby}/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap();
        metric(&text, "filegrid_read_hedges_total").expect("the standby counts hedged reads")
    };
    let hedges_before = hedges();
    grid.cluster[hung].proc.pause();
    for (path, data) in &files {
        let started = Instant::now();
        let r = no_redirects
            .get(format!("{standby}/v1/files/{path}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let back = r.bytes().unwrap();
        let took = started.elapsed();
        assert!(back.as_ref() == data.as_slice(), "{path} reads back");
        eprintln!("{path} read from the standby in {took:?}");
        // A second per chunk tried on the stopped server first; without the hedge, 30 s.
        assert!(took < Duration::from_secs(15), "{path} took {took:?}");
    }
    // At least the first file's first chunk went to the stopped server first.
    let hedged = hedges() - hedges_before;
    assert!(hedged >= 1.0, "{hedged} hedged reads counted");
    grid.cluster[hung].proc.resume();
}

/// Puts `n` files `<prefix><i>` of random bytes, `len(i)` long, through `base`, one after
/// the other; their paths and contents.
fn put_files(
    base: &str,
    prefix: &str,
    n: usize,
    len: impl Fn(usize) -> usize,
) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let path = format!("{prefix}{i}");
            let data = random(len(i));
            put_ok(base, &path, &data);
            (path, data)
        })
        .collect()
}

/// A hop that takes no data for longer than 30 s, but less than `hop_progress_timeout` (and
/// `signature_window`), is waited for: the connections that carry chunks have no 30 s TCP
/// user timeout of their own (HTTP libraries set one by default), so the upload goes on
/// through the server once it resumes, and every chunk keeps its copy there.
#[test]
fn a_hop_stopped_longer_than_thirty_seconds_is_waited_for_within_the_progress_timeout() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            // Three servers, replication 3: every pipeline goes through the stopped one.
            cluster_servers: 3,
            // 8 MiB chunks, more than the sockets' buffers hold: the stopped server's
            // window closes and data waits unacknowledged.
            chunk_size: "8MiB".into(),
            // Neither its session nor its heartbeats end it within the test.
            session_timeout: "60s".into(),
            heartbeat_interval: "30s".into(),
            dead_after: "120s".into(),
            extra_head_args: vec!["--hop-progress-timeout".into(), "60s".into()],
            // A resumed server checks the signature of a request that waited for it as it
            // reads it: a window shorter than the stop would refuse it.
            extra_cluster_args: vec!["--signature-window".into(), "90s".into()],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(3, Duration::from_secs(20));
    let stopped = 1;
    let stopped_id = grid.cluster[stopped].id.clone();
    grid.cluster[stopped].proc.pause();
    let data = random(24 << 20);
    let upload = {
        let (base, data) = (base.clone(), data.clone());
        std::thread::spawn(move || {
            // Without a TCP user timeout on this side either.
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(150))
                .tcp_user_timeout(None)
                .default_headers(common::admin_headers())
                .build()
                .unwrap();
            let r = http
                .put(format!("{base}/v1/files/long/f"))
                .body(data)
                .send()
                .unwrap();
            (r.status().as_u16(), r.text().unwrap_or_default())
        })
    };
    // The fault: the server stays stopped for 35 s.
    std::thread::sleep(Duration::from_secs(35));
    assert!(
        !upload.is_finished(),
        "the upload did not wait for the stopped server"
    );
    grid.cluster[stopped].proc.resume();
    let (status, body) = upload.join().unwrap();
    assert_eq!(status, 201, "{body}");
    for (chunk, reps) in grid.manifest("long/f") {
        assert!(
            reps.contains(&stopped_id),
            "{chunk} was placed without the stopped server: {reps:?}"
        );
    }
    let back = admin_http()
        .get(format!("{base}/v1/files/long/f"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(back.as_ref() == data.as_slice(), "the file reads back");
}
