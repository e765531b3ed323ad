//! The heads' read cache of small chunks, against real ZooKeeper, heads and cluster servers:
//! a chunk the leader uploaded, or a head read whole, is served from that head's memory
//! (even with every cluster server gone), a `Range` is cut from it, and chunks over
//! `read_cache_max_chunk` always come from the replicas.

use std::time::Duration;

use filegrid_testkit::{Grid, GridOptions, wait_until_sync};

mod common;
use common::{admin_http_no_redirects, metric, node_bin, put_ok, random};

const CHUNK: usize = 256 * 1024;

#[test]
fn small_chunks_are_served_from_the_heads_memory_and_large_ones_from_replicas() {
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            extra_head_args: vec!["--read-cache-max-chunk".into(), "128KiB".into()],
            ..Default::default()
        },
    );
    let leader = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let standby = grid.head_url(grid.standby(Duration::from_secs(20)));
    // No redirects: a standby that cannot serve a read yet sends it to the leader, and this
    // test must know which head answered.
    let http = admin_http_no_redirects();
    let get = |base: &str, path: &str, range: Option<&str>| {
        let mut req = http.get(format!("{base}/v1/files/{path}"));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };
    let cache = |base: &str| {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap();
        let m = |name| metric(&text, name).unwrap_or_else(|| panic!("{name} is exported"));
        (
            m("filegrid_read_cache_hits_total"),
            m("filegrid_read_cache_misses_total"),
            m("filegrid_read_cache_bytes"),
        )
    };

    // Uploaded through the leader: one chunk of 100 KiB (cached as it is stored), and a
    // file of two whole chunks, larger than the cache keeps.
    let small = random(100 * 1024);
    let large = random(2 * CHUNK);
    put_ok(&leader, "cache/small", &small);
    put_ok(&leader, "cache/large", &large);
    let (hits0, _, held) = cache(&leader);
    assert!(
        held >= small.len() as f64,
        "the leader holds the small chunk: {held}"
    );
    assert_eq!(get(&leader, "cache/small", None), (200, small.clone()));
    assert_eq!(get(&leader, "cache/large", None), (200, large.clone()));
    let (hits1, _, _) = cache(&leader);
    assert_eq!(hits1 - hits0, 1.0, "the small file came from the cache");

    // The standby fills its own cache from the reads it serves.
    wait_until_sync(
        Duration::from_secs(20),
        "the standby serves reads itself",
        || (get(&standby, "cache/small", None).0 == 200).then_some(()),
    );
    let (_, misses, held) = cache(&standby);
    assert!(misses >= 1.0, "the standby's first read missed");
    assert!(held >= small.len() as f64, "and kept the chunk: {held}");

    // With every cluster server gone, the cached chunk is still served, whole and in part,
    // by both heads; the large file cannot be.
    for c in &mut grid.cluster {
        c.proc.kill9();
    }
    for head in [&leader, &standby] {
        assert_eq!(
            get(head, "cache/small", None),
            (200, small.clone()),
            "{head}"
        );
        let (status, part) = get(head, "cache/small", Some("bytes=1000-1999"));
        assert_eq!(status, 206, "{head}");
        assert!(
            part == small[1000..2000],
            "{head}: the range is cut from the chunk"
        );
    }
    let (status, _) = get(&leader, "cache/large", None);
    assert!(
        status >= 500,
        "a large file is read from the replicas only: {status}"
    );
}

#[test]
fn a_head_with_the_cache_off_keeps_nothing() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            extra_head_args: vec!["--read-cache-size".into(), "0".into()],
            ..Default::default()
        },
    );
    let leader = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let small = random(10 * 1024);
    put_ok(&leader, "off/small", &small);
    let http = common::admin_http();
    let r = http
        .get(format!("{leader}/v1/files/off/small"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().unwrap().as_ref() == small.as_slice());
    let text = http
        .get(format!("{leader}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap();
    assert_eq!(metric(&text, "filegrid_read_cache_bytes"), Some(0.0));
    assert_eq!(metric(&text, "filegrid_read_cache_hits_total"), Some(0.0));
}
