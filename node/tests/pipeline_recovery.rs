//! Pipeline recovery against a hung cluster server (SIGSTOP): the hop before it gives it up
//! after the hop progress timeout, only it is ruled out, and uploads succeed quickly on the
//! servers left. Real ZooKeeper, real heads and cluster servers.

use std::time::{Duration, Instant};

use filegrid_testkit::{Grid, GridOptions};

mod common;
use common::{admin_http, node_bin, random};

const CHUNK: usize = 256 * 1024;

#[test]
fn a_stopped_server_anywhere_in_the_pipeline_is_the_only_one_ruled_out() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            // The stopped server stays registered (and chosen) for the whole test.
            session_timeout: "40s".into(),
            dead_after: "60s".into(),
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
    let uploads: Vec<_> = (0..6)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let path = format!("left/f{i}");
                let data = random(CHUNK + 100);
                let started = Instant::now();
                let r = admin_http()
                    .put(format!("{base}/v1/files/{path}"))
                    .timeout(Duration::from_secs(90))
                    .body(data.clone())
                    .send();
                (
                    path,
                    data,
                    r.map(|r| r.status().as_u16()),
                    started.elapsed(),
                )
            })
        })
        .collect();
    for u in uploads {
        let (path, data, status, took) = u.join().unwrap();
        assert_eq!(status.ok(), Some(201), "{path} after {took:?}");
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
        head_log.contains("left the grid during the upload"),
        "no upload was in flight through the stopped server"
    );
    grid.cluster[hung].proc.resume();
}
