//! The data path end to end: real ZooKeeper, real heads and cluster servers on 127.0.0.1,
//! files with random contents compared by hash.

use std::io::Read;
use std::time::{Duration, Instant};

use filegrid_proto::chunk::ListResponse;
use filegrid_proto::head::{
    ListPage, PutAnswer, RepairReport, ServerState, ServerView, StatusView,
};
use filegrid_proto::{ErrorBody, ErrorCode, headers};
use filegrid_testkit::{Grid, GridOptions, auth, wait_until_sync};
use rand::RngCore;

mod common;
use common::{admin_http as http, metric_sum, node_bin, random, scraped_sum};
use serde::de::DeserializeOwned;

const CHUNK: usize = 256 * 1024;

fn put(base: &str, path: &str, data: Vec<u8>) -> reqwest::blocking::Response {
    http()
        .put(format!("{base}/v1/files/{path}"))
        .body(data)
        .send()
        .unwrap()
}

fn get(base: &str, path: &str) -> (u16, Vec<u8>) {
    let r = http()
        .get(format!("{base}/v1/files/{path}"))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().map(|b| b.to_vec()).unwrap_or_default())
}

/// A JSON answer to a GET, or `None` if there is none (yet) or it is not a `T`.
/// A GET to a cluster server, signed with the grid's cluster secret as a peer would.
fn signed_get(grid: &Grid, server: usize, path: &str) -> Option<reqwest::blocking::Response> {
    use filegrid_node::auth::peer::Signed;
    use filegrid_node::auth::{ClusterSecret, PeerSigner};
    let secret = ClusterSecret::load(&grid.cluster_secret_file()).ok()?;
    let header = PeerSigner::new("test-peer", secret).header(&Signed {
        method: "GET",
        path_and_query: path,
        ..Signed::default()
    });
    http()
        .get(format!("{}{path}", grid.cluster_url(server)))
        .header(filegrid_proto::headers::PEER_AUTH, header)
        .send()
        .ok()
}

fn get_json<T: DeserializeOwned>(url: &str) -> Option<T> {
    http().get(url).send().ok()?.json().ok()
}

/// The paths of a listing page, in order.
fn paths(page: &ListPage) -> Vec<&str> {
    page.files.iter().map(|f| f.path.as_str()).collect()
}

fn hash(b: &[u8]) -> blake3::Hash {
    blake3::hash(b)
}

#[test]
fn round_trips_of_every_size_and_ranges_at_chunk_boundaries() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(20));
    for size in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7] {
        let data = random(size);
        let r = put(&base, &format!("sizes/f{size}"), data.clone());
        assert_eq!(r.status(), 201, "put of {size} bytes");
        let body: PutAnswer = r.json().unwrap();
        assert_eq!(body.size, size as u64);
        let (status, back) = get(&base, &format!("sizes/f{size}"));
        assert_eq!(status, 200);
        assert_eq!(hash(&back), hash(&data), "{size} bytes round trip");
        // Any head answers: the standby path is covered by the redirect test.
        let head = http()
            .head(format!("{base}/v1/files/sizes/f{size}"))
            .send()
            .unwrap();
        assert_eq!(head.headers()["content-length"], size.to_string().as_str());
        let chunks = size.div_ceil(CHUNK);
        assert_eq!(head.headers()[headers::CHUNKS], chunks.to_string().as_str());
    }
    let data = random(3 * CHUNK + 7);
    assert_eq!(put(&base, "ranges/f", data.clone()).status(), 201);
    for (a, b) in [
        (0, 0),
        (CHUNK - 1, CHUNK),
        (CHUNK, CHUNK),
        (CHUNK - 3, 2 * CHUNK + 3),
        (3 * CHUNK, 3 * CHUNK + 6),
        (5, 3 * CHUNK + 6),
    ] {
        let r = http()
            .get(format!("{base}/v1/files/ranges/f"))
            .header("Range", format!("bytes={a}-{b}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 206, "range {a}-{b}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {a}-{b}/{}", data.len()).as_str()
        );
        assert_eq!(r.bytes().unwrap().as_ref(), &data[a..=b], "range {a}-{b}");
    }
    // The leader's gauges count the cluster servers and their heartbeats.
    wait_until_sync(
        Duration::from_secs(10),
        "live and heartbeating gauges at 3",
        || {
            let m = http()
                .get(format!("{base}/metrics"))
                .send()
                .ok()?
                .text()
                .ok()?;
            (m.contains("\nfilegrid_cluster_servers_live 3\n")
                && m.contains("\nheartbeat_active_connections 3\n"))
            .then_some(())
        },
    );
    let suffix = http()
        .get(format!("{base}/v1/files/ranges/f"))
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(suffix.bytes().unwrap().as_ref(), &data[data.len() - 10..]);
}

#[test]
fn a_200_mib_file_round_trips_streamed() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            chunk_size: "8MiB".into(),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    let size: u64 = 200 << 20;
    // Generated and hashed as it streams: the test holds no copy of the file.
    let mut sent = blake3::Hasher::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64_compat(7);
    let mut remaining = size;
    let mut body = Vec::new();
    while remaining > 0 {
        let n = remaining.min(1 << 20) as usize;
        let mut buf = vec![0u8; n];
        rng.fill_bytes(&mut buf);
        sent.update(&buf);
        body.push(Ok::<_, std::io::Error>(buf));
        remaining -= n as u64;
    }
    let sent = sent.finalize();
    let r = http()
        .put(format!("{base}/v1/files/big/200m"))
        .header("content-length", size)
        .body(reqwest::blocking::Body::sized(IterReader::new(body), size))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let mut resp = http()
        .get(format!("{base}/v1/files/big/200m"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        got.update(&buf[..n]);
    }
    assert_eq!(total, size);
    assert_eq!(got.finalize(), sent);
}

/// Reads a list of buffers as one stream.
struct IterReader {
    parts: std::collections::VecDeque<Vec<u8>>,
    pos: usize,
}

impl IterReader {
    fn new(parts: Vec<Result<Vec<u8>, std::io::Error>>) -> Self {
        Self {
            parts: parts.into_iter().map(|p| p.unwrap()).collect(),
            pos: 0,
        }
    }
}

impl Read for IterReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let Some(front) = self.parts.front() else {
            return Ok(0);
        };
        let n = out.len().min(front.len() - self.pos);
        out[..n].copy_from_slice(&front[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == front.len() {
            self.parts.pop_front();
            self.pos = 0;
        }
        Ok(n)
    }
}

trait SeedCompat {
    fn seed_from_u64_compat(seed: u64) -> Self;
}

impl SeedCompat for rand::rngs::StdRng {
    fn seed_from_u64_compat(seed: u64) -> Self {
        <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed)
    }
}

#[test]
fn a_flipped_byte_on_disk_is_read_around_and_repaired() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(20));
    let data = random(2 * CHUNK);
    assert_eq!(put(&base, "bitrot/f", data.clone()).status(), 201);
    let chunks = grid.manifest("bitrot/f");
    let (chunk_id, replicas) = &chunks[0];
    let victim = grid
        .cluster
        .iter()
        .position(|c| c.id == replicas[0])
        .unwrap();
    let file = grid.chunk_file(victim, chunk_id);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    // Range reads too, over the flipped byte or elsewhere in that chunk: only the range
    // travels, but the server checks the whole chunk before it ends its answer cleanly.
    for (from, to) in [(50usize, 150usize), (1000, 2000), (CHUNK - 10, CHUNK + 10)] {
        for _ in 0..2 {
            let r = http()
                .get(format!("{base}/v1/files/bitrot/f"))
                .header("range", format!("bytes={from}-{}", to - 1))
                .send()
                .unwrap();
            assert_eq!(r.status(), 206);
            assert_eq!(
                &r.bytes().unwrap()[..],
                &data[from..to],
                "range {from}..{to}"
            );
        }
    }
    // Every read is right, whichever replica the head tries first.
    for _ in 0..3 {
        let (status, back) = get(&base, "bitrot/f");
        assert_eq!(status, 200);
        assert_eq!(hash(&back), hash(&data));
    }
    // The bad copy is rewritten from a good one.
    let good = data[..CHUNK].to_vec();
    wait_until_sync(
        Duration::from_secs(20),
        "the bad replica to be repaired",
        || {
            let r = signed_get(&grid, victim, &format!("/v1/chunks/{chunk_id}"))?;
            if r.status() != 200 {
                return None;
            }
            let b = r.bytes().ok()?;
            (b.as_ref() == good.as_slice()).then_some(())
        },
    );
}

#[test]
fn a_dead_cluster_server_is_replaced_and_no_file_is_lost() {
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            session_timeout: "2s".into(),
            dead_after: "2s".into(),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    let mut files = Vec::new();
    for i in 0..6 {
        let data = random(CHUNK * (i % 3) + 1000 * i);
        assert_eq!(
            put(&base, &format!("dead/f{i}"), data.clone()).status(),
            201
        );
        files.push((format!("dead/f{i}"), hash(&data)));
    }
    let victim = 1;
    let victim_id = grid.cluster[victim].id.clone();
    let killed = Instant::now();
    grid.cluster[victim].proc.kill9();
    // session timeout (2s) + dead_after (2s) + a pass + copying; generous margin.
    wait_until_sync(
        Duration::from_secs(40),
        "every chunk back to 3 replicas",
        || {
            for (path, _) in &files {
                for (_, reps) in grid.manifest(path) {
                    if reps.len() != 3 || reps.contains(&victim_id) {
                        return None;
                    }
                }
            }
            Some(())
        },
    );
    eprintln!("re-replication done {:?} after kill -9", killed.elapsed());
    for (path, h) in &files {
        let (status, back) = get(&base, path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(hash(&back), *h, "{path}");
    }
    // The leader reports its repair passes (a report, `copies_made` a count among them).
    assert!(get_json::<RepairReport>(&format!("{base}/v1/repair")).is_some());
}

#[test]
fn uploads_right_after_a_cluster_server_dies_place_around_it() {
    // Long sessions: the dead server stays registered (and placeable) during the uploads,
    // so pipelines keep choosing it, often as their first hop.
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            session_timeout: "15s".into(),
            dead_after: "60s".into(),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(30));
    grid.wait_cluster_live(4, Duration::from_secs(30));
    let victim = 2;
    let victim_id = grid.cluster[victim].id.clone();
    grid.cluster[victim].proc.kill9();
    // 3 files of 16 chunks: a pipeline that starts at the dead server must not cost the
    // chunk the servers behind it (one spare server is left).
    for i in 0..3 {
        let path = format!("after-death/f{i}");
        let data = random(CHUNK * 16);
        let resp = put(&base, &path, data.clone());
        let status = resp.status();
        assert_eq!(status, 201, "{path}: {}", resp.text().unwrap_or_default());
        for (chunk, reps) in grid.manifest(&path) {
            assert!(reps.len() >= 2, "{chunk}: {reps:?}");
            assert!(
                !reps.contains(&victim_id),
                "{chunk} placed on the dead server"
            );
        }
        let (status, back) = get(&base, &path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(hash(&back), hash(&data), "{path}");
    }
}

#[test]
fn too_few_cluster_servers_is_a_clear_503_and_nothing_is_visible() {
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 2,
            session_timeout: "2s".into(),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    // Two servers: acknowledged with 2 of 3 replicas (min_write_replicas = 2).
    assert_eq!(put(&base, "few/ok", random(CHUNK + 5)).status(), 201);
    grid.cluster[1].proc.kill9();
    wait_until_sync(
        Duration::from_secs(20),
        "the leader to see one server",
        || {
            let r: Vec<ServerView> = get_json(&format!("{base}/v1/cluster"))?;
            let live = r.iter().filter(|s| s.state == ServerState::Live).count();
            (live == 1).then_some(())
        },
    );
    let r = put(&base, "few/no", random(3 * CHUNK));
    assert_eq!(r.status(), 503);
    let body: ErrorBody = r.json().unwrap();
    assert!(
        body.message.contains("required cluster servers"),
        "{body:?}"
    );
    assert_eq!(
        get(&base, "few/no").0,
        404,
        "nothing half-written is visible"
    );
    let list: ListPage = get_json(&format!("{base}/v1/files?prefix=few/")).unwrap();
    assert_eq!(paths(&list), ["few/ok"]);
}

#[test]
fn a_full_server_is_avoided_and_a_full_grid_says_507() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            capacities: vec![Some("600KiB".into()), None, None, None],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    // Far more than the small server can hold: writes go elsewhere.
    for i in 0..6 {
        let data = random(2 * CHUNK);
        assert_eq!(
            put(&base, &format!("full/f{i}"), data.clone()).status(),
            201
        );
        assert_eq!(hash(&get(&base, &format!("full/f{i}")).1), hash(&data));
    }
    let r: ListResponse = signed_get(&grid, 0, "/v1/chunks").unwrap().json().unwrap();
    let used = r.usage.used_bytes;
    assert!(
        used <= 600 * 1024,
        "the small server stayed within its capacity: {used}"
    );

    let tiny = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 2,
            capacities: vec![Some("300KiB".into()), Some("300KiB".into())],
            ..Default::default()
        },
    );
    let tbase = tiny.leader_url(Duration::from_secs(20));
    let r = put(&tbase, "full/big", random(4 * CHUNK));
    assert_eq!(r.status(), 507, "{:?}", r.text());
    assert_eq!(get(&tbase, "full/big").0, 404);
}

#[test]
fn malformed_requests_get_4xx_and_store_nothing() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(20));
    let data = random(CHUNK + 10);
    assert_eq!(put(&base, "ok/f", data.clone()).status(), 201);
    // Bad paths.
    // Sent over a raw socket: HTTP client libraries normalise dot segments away.
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    for bad in [
        "a//b",
        "a/../b",
        "./x",
        "x/",
        "a/%2E%2E/b",
        &"y".repeat(3300),
    ] {
        let answer = raw(
            port,
            &format!(
                "PUT /v1/files/{bad} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer FGTESTADMIN:test-admin-secret-0123456789\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad:?}: {answer}");
        assert!(answer.contains("bad_path"), "{bad:?}: {answer}");
    }
    // Bad ranges.
    for range in ["bytes=9999999-", "bytes=5-1", "pages=1-2", "bytes=0-1,3-4"] {
        let r = http()
            .get(format!("{base}/v1/files/ok/f"))
            .header("Range", range)
            .send()
            .unwrap();
        assert_eq!(r.status(), 416, "{range}");
    }
    // A file where a directory is, and under a file.
    assert_eq!(put(&base, "ok", random(10)).status(), 409);
    assert_eq!(put(&base, "ok/f/g", random(10)).status(), 409);
    assert_eq!(get(&base, "missing/file").0, 404);
    // A body shorter than its Content-Length: the connection is cut mid-upload.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "PUT /v1/files/cut/f HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer FGTESTADMIN:test-admin-secret-0123456789\r\nContent-Length: 1000000\r\n\r\n"
        )
        .unwrap();
        s.write_all(&random(300_000)).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            !answer.starts_with("HTTP/1.1 201"),
            "a truncated upload must not succeed: {answer}"
        );
    }
    assert_eq!(
        get(&base, "cut/f").0,
        404,
        "nothing stored for the truncated upload"
    );
    // Bad listing arguments.
    assert_eq!(
        http()
            .get(format!("{base}/v1/files?limit=0"))
            .send()
            .unwrap()
            .status(),
        400
    );
    // The good file is untouched.
    assert_eq!(hash(&get(&base, "ok/f").1), hash(&data));
}

/// Sends `request` as is and returns the whole answer.
/// An answer given before the request body was read closes the connection, so what is
/// left of the body is never read as the next request (seen as wrong signatures and stray
/// 412s on the S3 API when clients reused such connections).
#[test]
fn an_answer_before_the_body_is_read_closes_the_connection() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    grid.leader_url(Duration::from_secs(20));
    let port = grid.heads[0].port;
    // No credential: 401 before the body is read, then a second request on the same
    // connection, written at once.
    let answer = raw(
        port,
        "PUT /v1/files/early/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /v1/leader HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer FGTESTADMIN:test-admin-secret-0123456789\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
}

fn raw(port: u16, request: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn listing_paginates_in_order_and_delete_removes() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(20));
    let names = ["a/1", "a/2", "a/b/3", "a.c", "b", "a/b/c/4"];
    for n in names {
        assert_eq!(put(&base, n, random(10)).status(), 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/files?limit=2");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: ListPage = get_json(&url).unwrap();
        seen.extend(paths(&page).into_iter().map(String::from));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["a/1", "a/2", "a/b/3", "a/b/c/4", "a.c", "b"]);
    // A cursor must be a path, as pages hand them out.
    for bad in ["../x", "a//b", "a%01b"] {
        let r = http()
            .get(format!("{base}/v1/files?cursor={bad}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "cursor {bad}");
        assert_eq!(r.json::<ErrorBody>().unwrap().code, ErrorCode::BadRequest);
    }
    let pre: ListPage = get_json(&format!("{base}/v1/files?prefix=a/b")).unwrap();
    assert_eq!(pre.files.len(), 2);
    assert_eq!(
        http()
            .delete(format!("{base}/v1/files/a/b/c/4"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get(&base, "a/b/c/4").0, 404);
    assert_eq!(
        http()
            .delete(format!("{base}/v1/files/a/b/c/4"))
            .send()
            .unwrap()
            .status(),
        404
    );
    // The emptied directory went with the file: a file may now take its name.
    assert_eq!(put(&base, "a/b/c", random(3)).status(), 201);
    // ...and nothing may be stored under that file, though a directory of that name
    // existed (and held files) a moment ago.
    let under_file = put(&base, "a/b/c/5", random(3));
    assert_eq!(under_file.status(), 409);
    assert_eq!(get(&base, "a/b/c/5").0, 404);

    // A directory emptied and removed comes back when a file is stored in it again.
    let del = |p: &str| {
        http()
            .delete(format!("{base}/v1/files/{p}"))
            .send()
            .unwrap()
    };
    assert_eq!(put(&base, "d/e/1", random(5)).status(), 201);
    assert_eq!(put(&base, "d/e/2", random(5)).status(), 201);
    assert_eq!(del("d/e/1").status(), 200);
    assert_eq!(del("d/e/2").status(), 200);
    let data = random(7);
    assert_eq!(put(&base, "d/e/3", data.clone()).status(), 201);
    assert_eq!(get(&base, "d/e/3"), (200, data));
    // A file cannot be stored where a directory is, nor a directory where a file is.
    assert_eq!(put(&base, "d/e", random(1)).status(), 409);
    assert_eq!(put(&base, "d/e/3/x", random(1)).status(), 409);
    // Overwriting a file in a known directory replaces it.
    let newer = random(9);
    assert_eq!(put(&base, "d/e/3", newer.clone()).status(), 201);
    assert_eq!(get(&base, "d/e/3"), (200, newer));
}

#[test]
fn overwrites_deletes_and_new_files_of_one_directory_keep_the_latest() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(20));
    let failed_writes = || {
        scraped_sum(
            &base,
            "filegrid_fenced_writes_total",
            &[("result", "failed")],
        )
    };
    assert_eq!(put(&base, "d/e/f", random(100)).status(), 201);
    assert_eq!(put(&base, "d/e/g", random(10)).status(), 201);
    // Overwrites of a file this leader stored: no transaction that fails first.
    let failed = failed_writes();
    let mut latest = Vec::new();
    for size in [0, 1, 300, CHUNK + 1, 5] {
        latest = random(size);
        assert_eq!(put(&base, "d/e/f", latest.clone()).status(), 201);
        assert_eq!(get(&base, "d/e/f"), (200, latest.clone()));
    }
    assert_eq!(failed_writes(), failed);
    // A new file beside it, then the overwritten one deleted and stored again.
    assert_eq!(put(&base, "d/e/h", random(20)).status(), 201);
    let del = |path: &str| {
        http()
            .delete(format!("{base}/v1/files/{path}"))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(del("d/e/f"), 200);
    assert_eq!(get(&base, "d/e/f").0, 404);
    let again = random(700);
    assert_eq!(put(&base, "d/e/f", again.clone()).status(), 201);
    assert_eq!(get(&base, "d/e/f"), (200, again));
    // Every file gone takes the directories with it; storing one brings them back.
    for path in ["d/e/f", "d/e/g", "d/e/h"] {
        assert_eq!(del(path), 200, "{path}");
    }
    let page: ListPage = get_json(&format!("{base}/v1/files")).unwrap();
    assert!(paths(&page).is_empty(), "{:?}", paths(&page));
    assert_eq!(put(&base, "d/e/f", latest.clone()).status(), 201);
    assert_eq!(get(&base, "d/e/f"), (200, latest));
    assert_eq!(put(&base, "d/e/f", random(3)).status(), 201);
    let page: ListPage = get_json(&format!("{base}/v1/files")).unwrap();
    assert_eq!(paths(&page), ["d/e/f"]);
}

#[test]
fn decommission_drains_a_server_and_orphans_are_collected() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            orphan_grace: "1s".into(),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    let mut files = Vec::new();
    for i in 0..5 {
        let data = random(CHUNK * 2 + i);
        assert_eq!(put(&base, &format!("dec/f{i}"), data.clone()).status(), 201);
        files.push((format!("dec/f{i}"), hash(&data)));
    }
    // Overwrite one file: its old chunks become orphans.
    let old_chunks = grid.manifest("dec/f0");
    let new = random(CHUNK);
    assert_eq!(put(&base, "dec/f0", new.clone()).status(), 201);
    files[0].1 = hash(&new);

    let target = grid.cluster[2].id.clone();
    let r = http()
        .post(format!("{base}/v1/cluster/{target}/decommission"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_until_sync(Duration::from_secs(60), "the server to be drained", || {
        let v: Vec<ServerView> = get_json(&format!("{base}/v1/cluster"))?;
        let s = v.iter().find(|s| s.id.as_str() == target)?;
        (s.state == ServerState::Drained).then_some(())
    });
    for (path, h) in &files {
        for (_, reps) in grid.manifest(path) {
            assert_eq!(reps.len(), 3, "{path}");
            assert!(
                !reps.contains(&target),
                "{path} still on the drained server"
            );
        }
        assert_eq!(hash(&get(&base, path).1), *h);
    }
    // The replaced file's chunks disappear from every server after the grace period.
    wait_until_sync(
        Duration::from_secs(60),
        "orphaned chunks to be collected",
        || {
            for (chunk, _) in &old_chunks {
                for i in 0..grid.cluster.len() {
                    if grid.chunk_file(i, chunk).exists() {
                        return None;
                    }
                }
            }
            Some(())
        },
    );
    // They went in batches, and the leader counted them.
    let copies: usize = old_chunks.iter().map(|(_, reps)| reps.len()).sum();
    let counted = scraped_sum(&base, "filegrid_orphans_deleted_total", &[]);
    assert!(counted >= copies as f64, "{counted} < {copies}");
    let batches: f64 = (0..grid.cluster.len())
        .map(|i| {
            let body = grid
                .get(grid.cluster[i].port, "/metrics")
                .unwrap_or_default();
            metric_sum(
                &body,
                "filegrid_chunk_requests_total",
                &[("op", "delete_batch"), ("code", "200")],
            )
        })
        .sum();
    assert!(batches >= 1.0, "no deletion batch was answered");
}

#[test]
fn a_leader_crash_during_uploads_loses_no_acknowledged_file() {
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            session_timeout: "2s".into(),
            ..Default::default()
        },
    );
    let first = grid.leader_url(Duration::from_secs(20));
    let leader = (0..2).find(|&i| grid.head_url(i) == first).unwrap();
    let other = 1 - leader;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let uploader = {
        let acked = acked.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut outcomes = (0, 0);
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let data = random(CHUNK * (1 + i % 3) + i);
                let r = http()
                    .put(format!("{first}/v1/files/crash/f{i}"))
                    .body(data.clone())
                    .send();
                match r {
                    Ok(r) if r.status() == 201 => {
                        outcomes.0 += 1;
                        acked
                            .lock()
                            .unwrap()
                            .push((format!("crash/f{i}"), hash(&data)));
                    }
                    _ => outcomes.1 += 1,
                }
            }
            outcomes
        })
    };
    wait_until_sync(
        Duration::from_secs(30),
        "a few acknowledged uploads",
        || (acked.lock().unwrap().len() >= 3).then_some(()),
    );
    grid.heads[leader].proc.kill9();
    let new = wait_until_sync(Duration::from_secs(10), "the other head to lead", || {
        let body = filegrid_testkit::grid::http_get(grid.heads[other].port, "/v1/leader")?;
        body.contains(&grid.heads[other].id)
            .then(|| grid.head_url(other))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = uploader.join().unwrap();
    assert!(failed >= 1, "uploads to the dead leader fail");
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), ok);
    for (path, h) in &acked {
        let (status, back) = get(&new, path);
        assert_eq!(status, 200, "{path} was acknowledged");
        assert_eq!(hash(&back), *h, "{path}");
    }
}

#[test]
fn a_paused_leaders_late_writes_are_rejected_by_epoch() {
    use std::io::Write;
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            session_timeout: "2s".into(),
            ..Default::default()
        },
    );
    let old = grid.leader_url(Duration::from_secs(20));
    let leader = (0..2).find(|&i| grid.head_url(i) == old).unwrap();
    let other = 1 - leader;
    let port = grid.heads[leader].port;
    let data = random(3 * CHUNK);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "PUT /v1/files/late/f HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer FGTESTADMIN:test-admin-secret-0123456789\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )
    .unwrap();
    // The first chunk is stored under the old epoch; then the leader freezes.
    s.write_all(&data[..CHUNK + 100]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    grid.heads[leader].proc.pause();
    let new = wait_until_sync(Duration::from_secs(15), "the other head to lead", || {
        let body = filegrid_testkit::grid::http_get(grid.heads[other].port, "/v1/leader")?;
        body.contains(&grid.heads[other].id)
            .then(|| grid.head_url(other))
    });
    grid.heads[leader].proc.resume();
    s.write_all(&data[CHUNK + 100..]).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        !answer.starts_with("HTTP/1.1 201"),
        "the deposed leader's upload must fail: {answer}"
    );
    eprintln!("deposed leader answered: {answer}");
    assert_eq!(get(&new, "late/f").0, 404, "nothing of it is visible");
    // The cluster servers refused its chunks by epoch.
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("stale_epoch"),
        "refused by the cluster servers' epoch fence: {answer}"
    );
}

#[test]
fn a_standby_with_standby_proxy_serves_the_file_api_through_the_leader() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            extra_head_args: vec!["--standby-proxy".into()],
            ..Default::default()
        },
    );
    let leader = grid.leader_url(Duration::from_secs(20));
    // The standby, once it knows the leader (its own /v1/status says so).
    let standby = grid.head_url(grid.standby(Duration::from_secs(10)));
    assert_ne!(standby, leader);
    let no_redirects = common::admin_http_no_redirects();

    // A multi-chunk upload and download through the standby, streamed both ways.
    let data = random(CHUNK * 5 + 11);
    let r = no_redirects
        .put(format!("{standby}/v1/files/via/standby.bin"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "forwarded, not redirected");
    let r = no_redirects
        .get(format!("{standby}/v1/files/via/standby.bin"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hash(&r.bytes().unwrap()), hash(&data));
    // What the leader stored is what the standby was sent.
    assert_eq!(get(&leader, "via/standby.bin"), (200, data.clone()));
    // Ranges, HEAD, listings and errors pass through unchanged.
    let r = no_redirects
        .get(format!("{standby}/v1/files/via/standby.bin"))
        .header("range", "bytes=10-19")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().unwrap()[..], &data[10..20]);
    let r = no_redirects
        .head(format!("{standby}/v1/files/via/standby.bin"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        (data.len()).to_string().as_str()
    );
    let list: ListPage = no_redirects
        .get(format!("{standby}/v1/files?prefix=via/"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(paths(&list).first(), Some(&"via/standby.bin"));
    let r = no_redirects
        .get(format!("{standby}/v1/files/via/missing"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<ErrorBody>().unwrap().code, ErrorCode::NotFound);
    let r = no_redirects
        .delete(format!("{standby}/v1/files/via/standby.bin"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&leader, "via/standby.bin").0, 404);
    // `curl -T` through the standby: curl asks `Expect: 100-continue` for a body this size,
    // which the standby answers itself before forwarding.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("upload.bin");
    let big = random(3 * 1024 * 1024 + 5);
    std::fs::write(&local, &big).unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: {}", auth::ADMIN.bearer()))
        .arg("-T")
        .arg(&local)
        .arg(format!("{standby}/v1/files/via/curl.bin"))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "{out:?}");
    assert_eq!(hash(&get(&leader, "via/curl.bin").1), hash(&big));
    // The CLI given the standby keeps using it (its status says it forwards), so a client
    // that can reach only this head still works.
    let st: StatusView = get_json(&format!("{standby}/v1/status")).unwrap();
    assert!(st.forwards_to_leader);
    let puts_via_standby = || {
        scraped_sum(
            &standby,
            "filegrid_http_requests_total",
            &[("method", "PUT"), ("code", "201")],
        )
    };
    let before = puts_via_standby();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_filegrid"))
            .env("FILEGRID_TOKEN", auth::ADMIN.token())
            .arg("--head")
            .arg(&standby)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["put", local.to_str().unwrap(), "via/cli.bin"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        puts_via_standby(),
        before + 1.0,
        "the CLI put went through the standby"
    );
    let back = dir.path().join("back.bin");
    let out = cli(&["get", "via/cli.bin", back.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(hash(&std::fs::read(&back).unwrap()), hash(&big));
    // Heartbeats are never forwarded: a cluster server must talk to the leader itself.
    let r = no_redirects
        .post(format!("{standby}/v1/heartbeat"))
        .json(&serde_json::json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 307);
}

#[test]
fn every_error_is_json_and_an_unreadable_file_fails_before_its_body() {
    let grid = Grid::start(node_bin(), replicas_only());
    let base = grid.leader_url(Duration::from_secs(30));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let http = http();
    let error = |resp: reqwest::blocking::Response| -> (u16, ErrorCode) {
        let status = resp.status().as_u16();
        let body: ErrorBody = resp.json().expect("a JSON error body");
        assert!(!body.message.is_empty());
        (status, body.code)
    };
    // Unknown routes and methods, on a head and on a cluster server.
    for url in [format!("{base}/v1/nope"), grid.cluster_url(0) + "/v1/nope"] {
        let resp = http.get(&url).send().unwrap();
        assert_eq!(error(resp), (404, ErrorCode::NotFound), "{url}");
    }
    let resp = http.post(format!("{base}/v1/leader")).send().unwrap();
    assert_eq!(error(resp), (405, ErrorCode::MethodNotAllowed));
    // A prefix that can name no file is the client's mistake, not an outage.
    for prefix in ["a//b", "a/../b"] {
        let resp = http
            .get(format!("{base}/v1/files"))
            .query(&[("prefix", prefix)])
            .send()
            .unwrap();
        assert_eq!(error(resp), (400, ErrorCode::BadRequest), "{prefix:?}");
    }
    // A file none of whose replicas can be read: an error status, not 200 and no body.
    let data = random(CHUNK / 2);
    assert_eq!(put(&base, "lost/one", data).status(), 201);
    for (chunk, _) in grid.manifest("lost/one") {
        for server in 0..3 {
            let _ = std::fs::remove_file(grid.chunk_file(server, &chunk));
        }
    }
    let resp = http
        .get(format!("{base}/v1/files/lost/one"))
        .send()
        .unwrap();
    assert_eq!(error(resp), (503, ErrorCode::Unavailable));
}

/// Sends `data` in bursts of `burst` bytes with `pause` before each burst after the first,
/// as a slow client does.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    burst: usize,
    pause: Duration,
    in_burst: usize,
}

impl Trickle {
    fn body(data: Vec<u8>, burst: usize, pause: Duration) -> reqwest::blocking::Body {
        let len = data.len() as u64;
        reqwest::blocking::Body::sized(
            Self {
                data,
                pos: 0,
                burst,
                pause,
                in_burst: 0,
            },
            len,
        )
    }
}

impl Read for Trickle {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.data.len() {
            return Ok(0);
        }
        if self.in_burst == self.burst {
            std::thread::sleep(self.pause);
            self.in_burst = 0;
        }
        let n = out
            .len()
            .min(self.burst - self.in_burst)
            .min(self.data.len() - self.pos);
        out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        self.in_burst += n;
        Ok(n)
    }
}

/// A client that sends a multi-chunk file a chunk at a time, pausing longer than the head's
/// `chunk_timeout` between chunks: each chunk handed to its pipeline must finish while the
/// client pauses, not wait (and time out) until the next chunk is full.
#[test]
fn a_slow_client_uploads_a_multi_chunk_file() {
    let pause = Duration::from_secs(3);
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            // Every server must store every chunk, so a chunk call given up fails the upload
            // instead of being placed again on fewer servers.
            min_write_replicas: 3,
            extra_head_args: vec!["--chunk-timeout".into(), "2s".into()],
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let data = random(CHUNK * 6 + 1000);
    let started = Instant::now();
    let r = http()
        .put(format!("{base}/v1/files/slow/client"))
        .body(Trickle::body(data.clone(), CHUNK, pause))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());
    assert!(
        started.elapsed() >= pause * 6,
        "the body really came slowly"
    );
    assert_eq!(hash(&get(&base, "slow/client").1), hash(&data));
}

/// An upload that lasts many times `orphan_grace`, while the collector deletes other orphans:
/// the upload's chunks are never taken for orphans.
#[test]
fn an_upload_longer_than_the_orphan_grace_keeps_its_chunks() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            orphan_grace: "1s".into(),
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    // The leader's first repair pass, after its warm-up.
    wait_until_sync(Duration::from_secs(30), "a first repair pass", || {
        let r: RepairReport = get_json(&format!("{base}/v1/repair"))?;
        (r.finished_at > 0).then_some(())
    });
    // An orphan to watch: collected while the slow upload runs, so the collector is active.
    assert_eq!(put(&base, "tick/first", random(10)).status(), 201);
    let watched = grid.manifest("tick/first")[0].0.clone();
    let data = random(CHUNK * 4 + 10);
    let sent = data.clone();
    let target = base.clone();
    let uploader = std::thread::spawn(move || {
        let r = http()
            .put(format!("{target}/v1/files/slow/long"))
            .body(Trickle::body(sent, CHUNK, Duration::from_millis(2500)))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    });
    assert_eq!(
        http()
            .delete(format!("{base}/v1/files/tick/first"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let mut collected_meanwhile = false;
    let mut i = 0;
    while !uploader.is_finished() {
        // Deleting a file leaves orphans, which asks for a pass.
        i += 1;
        assert_eq!(put(&base, &format!("tick/f{i}"), random(10)).status(), 201);
        let _ = http().delete(format!("{base}/v1/files/tick/f{i}")).send();
        if (0..3).all(|s| !grid.chunk_file(s, &watched).exists()) {
            collected_meanwhile = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, text) = uploader.join().unwrap();
    assert_eq!(status, 201, "{text}");
    assert!(
        collected_meanwhile,
        "orphans were being collected while the upload ran"
    );
    for (chunk, replicas) in grid.manifest("slow/long") {
        for r in replicas {
            let server = grid.cluster.iter().position(|c| c.id == r).unwrap();
            assert!(
                grid.chunk_file(server, &chunk).exists(),
                "{chunk} was collected from {r} during its upload"
            );
        }
    }
    assert_eq!(hash(&get(&base, "slow/long").1), hash(&data));
}

/// A download whose second chunk has no readable replica: the status line and the first
/// chunk went out already, so the connection is cut before the promised length. The CLI
/// exits with the documented status.
#[test]
fn a_later_unreadable_chunk_cuts_the_download_short() {
    let grid = Grid::start(node_bin(), replicas_only());
    let base = grid.leader_url(Duration::from_secs(30));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let port = grid.heads[0].port;
    let data = random(3 * CHUNK);
    assert_eq!(put(&base, "cut/three", data.clone()).status(), 201);
    // An end past the file is served up to the end (RFC 9110); the one end that cannot be
    // counted past (2^64 - 1) is 416, never a wrapped Content-Range.
    let r = http()
        .get(format!("{base}/v1/files/cut/three"))
        .header("Range", "bytes=0-18446744073709551614")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-{}/{}", data.len() - 1, data.len()).as_str()
    );
    assert_eq!(hash(&r.bytes().unwrap()), hash(&data));
    let r = http()
        .get(format!("{base}/v1/files/cut/three"))
        .header("Range", "bytes=0-18446744073709551615")
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", data.len()).as_str()
    );

    let chunks = grid.manifest("cut/three");
    assert_eq!(chunks.len(), 3);
    for server in 0..3 {
        let _ = std::fs::remove_file(grid.chunk_file(server, &chunks[1].0));
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    use std::io::Write;
    write!(
        s,
        "GET /v1/files/cut/three HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        auth::ADMIN.bearer()
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let cut = loop {
        match s.read(&mut buf) {
            Ok(0) => break "closed",
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("the connection stayed open without sending the rest")
            }
            Err(_) => break "reset",
        }
    };
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer head");
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let body = &answer[split + 4..];
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", data.len())),
        "{head}"
    );
    assert!(
        body.len() < data.len(),
        "the connection was {cut} after {} of {} bytes",
        body.len(),
        data.len()
    );
    assert_eq!(body, &data[..body.len()], "what came is the file's start");

    // The CLI: an unreadable file is an error (status 1) and leaves no local file; a usage
    // error is status 2.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("three.bin");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_filegrid"))
            .env("FILEGRID_TOKEN", auth::ADMIN.token())
            .arg("--head")
            .arg(&base)
            .args(args)
            .output()
            .unwrap()
    };
    let out = cli(&["get", "cut/three", local.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!local.exists());
    assert_eq!(
        cli(&["get", "cut/missing", local.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(cli(&["--no-such-flag", "leader"]).status.code(), Some(2));
    assert_eq!(cli(&["leader"]).status.code(), Some(0));
}

/// A standby serves GET, HEAD and listings itself from ZooKeeper's committed state, never
/// older than an acknowledged write, and goes on serving them while the leader is stopped.
#[test]
fn a_standby_serves_reads_itself_and_while_the_leader_is_stopped() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            ..Default::default()
        },
    );
    let leader = grid.leader_url(Duration::from_secs(20));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let standby = grid.head_url(grid.standby(Duration::from_secs(10)));
    let leader_index = grid
        .heads
        .iter()
        .position(|h| format!("http://127.0.0.1:{}", h.port) == leader)
        .unwrap();
    let no_redirects = common::admin_http_no_redirects();
    let read = |path: &str| -> (u16, Vec<u8>) {
        let r = no_redirects
            .get(format!("{standby}/v1/files/{path}"))
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap().to_vec())
    };
    // A standby serves reads itself once it has read the cluster servers' registrations
    // (until then it passes reads to the leader).
    assert_eq!(put(&leader, "probe/x", random(10)).status(), 201);
    wait_until_sync(
        Duration::from_secs(20),
        "the standby serves reads itself",
        || (read("probe/x").0 == 200).then_some(()),
    );
    let list = |url: &str| -> Option<ListPage> {
        no_redirects
            .get(format!("{url}/v1/files?prefix=any/"))
            .send()
            .ok()?
            .json()
            .ok()
    };
    let listed = |url: &str| -> Vec<String> {
        list(url)
            .map(|l| l.files.into_iter().map(|f| f.path).collect())
            .unwrap_or_default()
    };
    // Each write acknowledged by the leader is read back from the standby at once, and
    // listed there at once (the first listing loads the directory, later ones follow it).
    let mut files = Vec::new();
    for i in 0..4 {
        let path = format!("any/f{i}");
        let data = random(CHUNK * i + 7);
        assert_eq!(put(&leader, &path, data.clone()).status(), 201);
        assert_eq!(read(&path), (200, data.clone()), "{path} from the standby");
        assert!(
            listed(&standby).contains(&path),
            "{path} listed on the standby"
        );
        let data = random(CHUNK + i);
        assert_eq!(put(&leader, &path, data.clone()).status(), 201);
        assert_eq!(read(&path), (200, data.clone()), "{path} overwritten");
        files.push((path, data));
    }
    let r = no_redirects
        .head(format!("{standby}/v1/files/any/f1"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        files[1].1.len().to_string().as_str()
    );
    let r = no_redirects
        .get(format!("{standby}/v1/files/any/f2"))
        .header("range", "bytes=5-9")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().unwrap()[..], &files[2].1[5..10]);
    assert_eq!(list(&standby).unwrap().files.len(), 4);
    // A delete is gone from the standby's listing at once, and so is a whole directory.
    for p in ["any/tmp", "any/sub/tmp"] {
        assert_eq!(put(&leader, p, random(3)).status(), 201);
        assert!(listed(&standby).contains(&p.to_string()), "{p} listed");
        let r = http()
            .delete(format!("{leader}/v1/files/{p}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            !listed(&standby).contains(&p.to_string()),
            "{p} still listed"
        );
    }
    assert_eq!(list(&standby).unwrap().files.len(), 4);
    assert_eq!(read("any/missing").0, 404);
    // Writes still belong to the leader.
    let r = no_redirects
        .put(format!("{standby}/v1/files/any/new"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 307);

    // The leader stops: reads through the standby go on, through its session's expiry and
    // the election that follows.
    grid.heads[leader_index].proc.pause();
    let until = Instant::now() + Duration::from_secs(8);
    let mut rounds = 0;
    while Instant::now() < until {
        for (path, data) in &files {
            let (status, body) = read(path);
            assert_eq!(status, 200, "{path} while the leader is stopped");
            assert!(body == *data, "{path} read back different");
        }
        assert_eq!(list(&standby).map(|l| l.files.len()), Some(4));
        rounds += 1;
    }
    assert!(rounds > 1, "{rounds} rounds of reads");
    grid.heads[leader_index].proc.resume();
}

/// A write addressed to another leadership than the one that receives it is refused and
/// changes nothing: a request held up on its way, and sent again by its client to a newer
/// leader, cannot take effect a second time later.
#[test]
fn a_write_addressed_to_another_leadership_is_refused() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(20));
    let leader: filegrid_proto::head::LeaderView = get_json(&format!("{base}/v1/leader")).unwrap();
    let send = |epoch: &str, path: &str| {
        http()
            .put(format!("{base}/v1/files/{path}"))
            .header(headers::LEADER_EPOCH, epoch)
            .body("x")
            .send()
            .unwrap()
    };
    let stale = send(&(leader.epoch - 1).to_string(), "addressed/old");
    assert_eq!(stale.status(), 409);
    assert_eq!(
        stale.json::<ErrorBody>().unwrap().code,
        ErrorCode::StaleEpoch
    );
    assert_eq!(get(&base, "addressed/old").0, 404);
    let bad = send("seven", "addressed/bad");
    assert_eq!(bad.status(), 400);
    assert_eq!(
        send(&leader.epoch.to_string(), "addressed/now").status(),
        201
    );
    let del = http()
        .delete(format!("{base}/v1/files/addressed/now"))
        .header(headers::LEADER_EPOCH, (leader.epoch + 1).to_string())
        .send()
        .unwrap();
    assert_eq!(del.status(), 409);
    assert_eq!(get(&base, "addressed/now").0, 200);

    // Refused before its body is read, a large upload still gets the refusal, not a reset
    // connection: the head reads on (and discards) while the client is still sending, so
    // closing the connection does not destroy the answer before the client reads it.
    for i in 0..3 {
        let path = format!("addressed/large{i}");
        let r = http()
            .put(format!("{base}/v1/files/{path}"))
            .header(headers::LEADER_EPOCH, (leader.epoch - 1).to_string())
            .body(vec![7u8; 32 << 20])
            .send();
        let r = r.unwrap_or_else(|e| panic!("{path}: the refusal was lost: {e:?}"));
        assert_eq!(r.status(), 409, "{path}");
        assert_eq!(r.json::<ErrorBody>().unwrap().code, ErrorCode::StaleEpoch);
        assert_eq!(get(&base, &path).0, 404);
    }
}

#[test]
fn conditional_writes_and_deletes_are_judged_where_they_commit() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(20));
    let send = |method: reqwest::Method, path: &str, cond: Option<(&str, &str)>, body: Vec<u8>| {
        let mut req = http().request(method, format!("{base}/v1/files/{path}"));
        if let Some((name, value)) = cond {
            req = req.header(name, value);
        }
        req.body(body).send().unwrap()
    };
    let put = |path: &str, cond: Option<(&str, &str)>, body: &[u8]| {
        send(reqwest::Method::PUT, path, cond, body.to_vec())
    };
    let etag = |path: &str| {
        let r = http()
            .head(format!("{base}/v1/files/{path}"))
            .send()
            .unwrap();
        r.headers()["etag"].to_str().unwrap().to_string()
    };
    let refused = |r: reqwest::blocking::Response, what: &str| {
        assert_eq!(r.status(), 412, "{what}");
        assert_eq!(
            r.json::<ErrorBody>().unwrap().code,
            ErrorCode::PreconditionFailed,
            "{what}"
        );
    };

    assert_eq!(put("cond/v", None, b"v1").status(), 201);
    let v1 = etag("cond/v");
    refused(
        put("cond/v", Some(("if-none-match", "*")), b"x"),
        "create-only over a file",
    );
    assert_eq!(
        put("cond/new", Some(("if-none-match", "*")), b"n").status(),
        201
    );
    refused(
        put("cond/v", Some(("if-match", "\"0123\"")), b"x"),
        "another ETag",
    );
    refused(
        put("cond/none", Some(("if-match", &v1)), b"x"),
        "If-Match on no file",
    );
    assert_eq!(get(&base, "cond/none").0, 404);
    assert_eq!(put("cond/v", Some(("if-match", "abc")), b"x").status(), 400);
    assert_eq!(put("cond/v", Some(("if-match", &v1)), b"v2").status(), 201);
    refused(
        put("cond/v", Some(("if-match", &v1)), b"x"),
        "the replaced ETag",
    );
    assert_eq!(get(&base, "cond/v"), (200, b"v2".to_vec()));

    // Two writers that saw the same ETag: exactly one wins, whatever the timing.
    let v2 = etag("cond/v");
    let bodies = [random(3 << 20), random(3 << 20)];
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let racers: Vec<_> = bodies
            .iter()
            .map(|b| s.spawn(|| put("cond/v", Some(("if-match", &v2)), b).status().as_u16()))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..2).filter(|&i| statuses[i] == 201).collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert_eq!(statuses[1 - winners[0]], 412, "{statuses:?}");
    assert_eq!(get(&base, "cond/v"), (200, bodies[winners[0]].clone()));

    // Deletes.
    let now = etag("cond/v");
    refused(
        send(
            reqwest::Method::DELETE,
            "cond/v",
            Some(("if-match", &v2)),
            Vec::new(),
        ),
        "delete with a stale ETag",
    );
    assert_eq!(get(&base, "cond/v").0, 200);
    refused(
        send(
            reqwest::Method::DELETE,
            "cond/gone",
            Some(("if-match", "*")),
            Vec::new(),
        ),
        "delete If-Match of no file",
    );
    let del = send(
        reqwest::Method::DELETE,
        "cond/v",
        Some(("if-match", &now)),
        Vec::new(),
    );
    assert_eq!(del.status(), 200);
    assert_eq!(get(&base, "cond/v").0, 404);
}

/// A grid whose heads read every chunk from the replicas (read cache off), for tests of what
/// a read does when replicas fail: with the cache, the head would answer from memory a chunk
/// it has just uploaded.
fn replicas_only() -> GridOptions {
    GridOptions {
        extra_head_args: vec!["--read-cache-size".into(), "0".into()],
        ..Default::default()
    }
}
