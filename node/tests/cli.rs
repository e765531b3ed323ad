//! The `filegrid` CLI against real grids (ZooKeeper, heads and cluster servers as processes)
//! through a stand-in for a Kubernetes Service: a TCP forwarder on 127.0.0.1 that hands each
//! new connection to a head of its choosing, as kube-proxy does.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use filegrid_proto::head::{Role, StatusView};
use filegrid_testkit::{Grid, GridOptions, auth, wait_until_sync};

mod common;
use common::{node_bin, random, scraped_sum};

fn http() -> reqwest::blocking::Client {
    common::admin_http_no_redirects()
}

/// A Service in front of the heads: connection number `n` (from 0) goes to the port
/// `pick(n)` names. Runs until the test process ends.
fn service(pick: impl Fn(usize) -> u16 + Send + 'static) -> String {
    forwarder(pick, pipe)
}

/// The accept loop of a Service: connection number `n` goes to the port `pick(n)` names,
/// client to head through `up`, head to client as it comes.
fn forwarder(
    pick: impl Fn(usize) -> u16 + Send + 'static,
    up: impl Fn(TcpStream, TcpStream) + Clone + Send + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let port = pick(count.fetch_add(1, Ordering::SeqCst));
            let Ok(backend) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let (Ok(c2), Ok(b2)) = (client.try_clone(), backend.try_clone()) else {
                continue;
            };
            let up = up.clone();
            std::thread::spawn(move || up(client, backend));
            std::thread::spawn(move || pipe(b2, c2));
        }
    });
    format!("http://{addr}")
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `path` reads back from the head at `url` as exactly `data`.
fn assert_stored(url: &str, path: &str, data: &[u8]) {
    let back = http().get(format!("{url}/v1/files/{path}")).send().unwrap();
    assert_eq!(back.status(), 200);
    assert!(
        back.bytes().unwrap()[..] == data[..],
        "stored what was sent"
    );
}

/// The `filegrid_http_requests_total` of PUTs a head answered with `code`.
fn puts_answered(url: &str, code: u16) -> f64 {
    scraped_sum(
        url,
        "filegrid_http_requests_total",
        &[("method", "PUT"), ("code", &code.to_string())],
    )
}

/// A 2-head grid without `standby_proxy`: the leader's and the standby's URLs and ports,
/// once the standby knows the leader.
fn two_heads() -> (Grid, (String, u16), (String, u16)) {
    two_heads_with(GridOptions::default())
}

/// [`two_heads`] with other settings for the grid.
fn two_heads_with(options: GridOptions) -> (Grid, (String, u16), (String, u16)) {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            ..options
        },
    );
    let leader = grid.leader_url(Duration::from_secs(30));
    let standby = grid.standby(Duration::from_secs(20));
    let standby = (grid.head_url(standby), grid.heads[standby].port);
    let leader_port = grid
        .heads
        .iter()
        .map(|h| h.port)
        .find(|p| *p != standby.1)
        .unwrap();
    assert_eq!(leader, format!("http://127.0.0.1:{leader_port}"));
    (grid, (leader, leader_port), standby)
}

/// A file of `len` random bytes named `name` in `dir`: its path and contents.
fn local_file(dir: &Path, name: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let data = random(len);
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// Stops (SIGSTOP) the head listening on `port`; its index in the grid.
fn pause_head(grid: &Grid, port: u16) -> usize {
    let i = grid.heads.iter().position(|h| h.port == port).unwrap();
    grid.heads[i].proc.pause();
    i
}

fn cli(service: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_filegrid"));
    c.env("FILEGRID_TOKEN", auth::ADMIN.token())
        .env_remove("FILEGRID_HEAD")
        .arg("--head")
        .arg(service)
        .stdin(std::process::Stdio::null());
    c
}

/// The unlucky Service: the CLI's first connection (its look at `/v1/status`) reaches the
/// leader, so it keeps the Service's address, and the upload then reaches the standby,
/// which answers `307`. The CLI sends the file again to the leader.
#[test]
fn a_cli_upload_redirected_by_a_standby_is_sent_again_to_the_leader() {
    let (grid, (leader, leader_port), (standby, standby_port)) = two_heads();
    let svc = service(move |n| if n == 0 { leader_port } else { standby_port });
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("upload.bin");
    // Larger than the socket buffers, so the standby answers long before the body is sent.
    let data = random(12 * 1024 * 1024 + 7);
    std::fs::write(&local, &data).unwrap();
    let redirects_before = puts_answered(&standby, 307);

    let out = cli(&svc)
        .args(["put", local.to_str().unwrap(), "svc/upload.bin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        puts_answered(&standby, 307),
        redirects_before + 1.0,
        "the upload reached the standby first and was redirected"
    );
    assert_stored(&leader, "svc/upload.bin", &data);
    drop(grid);
}

/// Stdin cannot be sent twice: the same redirect fails with an error that says so, and
/// nothing is stored.
#[test]
fn a_cli_upload_from_stdin_that_meets_a_redirect_fails_clearly() {
    let (grid, (leader, leader_port), (_, standby_port)) = two_heads();
    let svc = service(move |n| if n == 0 { leader_port } else { standby_port });
    let mut child = cli(&svc)
        .args(["put", "-", "svc/stdin.bin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The CLI may stop reading once it has the redirect: a broken pipe here is expected.
    let _ = stdin.write_all(&random(64 * 1024));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stdin cannot be sent twice"), "{err}");
    let r = http()
        .get(format!("{leader}/v1/files/svc/stdin.bin"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(grid);
}

/// A leader that stops answering (SIGSTOP here; a machine cut off from the network alike) is
/// replaced once its ZooKeeper session expires. An upload and a delete the CLI sent to it
/// before are then sent again to the new leader, which the head given names with a newer
/// epoch, instead of waiting for the CLI's own timeout (a minute without an answer).
#[test]
fn a_cli_write_to_a_leader_that_stops_answering_goes_to_its_successor() {
    let (grid, (leader, leader_port), (standby, _)) = two_heads();
    let r = http()
        .put(format!("{leader}/v1/files/fo/old.bin"))
        .body(random(1000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let dir = tempfile::tempdir().unwrap();
    let (local, data) = local_file(dir.path(), "new.bin", 300 * 1024);
    let stopped = pause_head(&grid, leader_port);
    let started = std::time::Instant::now();
    let put = cli(&standby)
        .args(["put", local.to_str().unwrap(), "fo/new.bin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rm = cli(&standby)
        .args(["rm", "fo/old.bin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let put = put.wait_with_output().unwrap();
    let rm = rm.wait_with_output().unwrap();
    let took = started.elapsed();
    assert!(put.status.success(), "{put:?}");
    assert!(rm.status.success(), "{rm:?}");
    // The session timeout (4 s), an election and the CLI's look every half second.
    assert!(took < Duration::from_secs(30), "took {took:?}");

    assert_stored(&standby, "fo/new.bin", &data);
    let gone = http()
        .get(format!("{standby}/v1/files/fo/old.bin"))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404);
    grid.heads[stopped].proc.resume();
}

/// An upload held up by a stopped leader for longer than 30 s (the `TCP_USER_TIMEOUT` HTTP
/// client libraries set by default: the socket is closed once data has waited that long on a
/// full window) still waits for the leader's successor and is stored there; the grid's
/// session timeout is longer than that, so no successor exists before.
#[test]
fn a_cli_upload_held_up_by_a_stopped_leader_for_over_30_s_goes_to_its_successor() {
    let (grid, (_, leader_port), (standby, _)) = two_heads_with(GridOptions {
        session_timeout: "40s".into(),
        dead_after: "60s".into(),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // More than the stopped leader's socket takes in, so the rest waits on a full window.
    let (local, data) = local_file(dir.path(), "big.bin", 8 << 20);
    let stopped = pause_head(&grid, leader_port);
    let started = std::time::Instant::now();
    let put = cli(&standby)
        .args(["put", local.to_str().unwrap(), "held/big.bin"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(put.status.success(), "after {took:?}: {put:?}");
    // Not before the leader's session expired.
    assert!(took > Duration::from_secs(35), "took {took:?}");
    assert_stored(&standby, "held/big.bin", &data);
    grid.heads[stopped].proc.resume();
}

/// A Service in front of one head that holds the first `PUT` until [`Gate::release`], and
/// closes every connection that asks `GET /v1/leader`, so that a client's look for a newer
/// leader never answers: a write held up this way can only learn of a new leadership from
/// the heads' answer to it.
struct Gate {
    /// `(first PUT seen, released)`.
    state: std::sync::Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Gate {
            state: std::sync::Mutex::new((false, false)),
            changed: std::sync::Condvar::new(),
        })
    }

    /// Holds the first PUT until released; later ones pass.
    fn hold_first_put(&self) {
        let mut s = self.state.lock().unwrap();
        if s.0 {
            return;
        }
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap();
        }
    }

    fn put_held(&self) -> bool {
        self.state.lock().unwrap().0
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// The Service's URL; connections go to `port`.
    fn service(self: &Arc<Self>, port: u16) -> String {
        let gate = self.clone();
        forwarder(move |_| port, move |c, b| gate.pipe_requests(c, b))
    }

    /// Client to head. A request starts a read (the client sends the next one on a
    /// connection only once it has the answer to the last).
    fn pipe_requests(&self, mut from: TcpStream, mut to: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if buf[..n].starts_with(b"GET /v1/leader ") {
                let _ = from.shutdown(Shutdown::Both);
                break;
            }
            if buf[..n].starts_with(b"PUT ") {
                self.hold_first_put();
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// The head's status, read directly.
fn status(url: &str) -> Option<StatusView> {
    http()
        .get(format!("{url}/v1/status"))
        .send()
        .ok()?
        .json()
        .ok()
}

/// An upload held up on its way to the leader while leadership moves reaches the grid
/// addressed to the old leadership: the new leader refuses it (`409 stale_epoch`, nothing
/// stored) and the CLI sends it again to the leader the grid names now.
#[test]
fn a_cli_upload_refused_as_sent_to_an_earlier_leadership_is_sent_again() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            extra_head_args: vec!["--standby-proxy".into()],
            ..Default::default()
        },
    );
    let first = grid.leader_url(Duration::from_secs(30));
    let first_epoch = status(&first).unwrap().status.epoch;
    let (first_at, first_port) = grid
        .heads
        .iter()
        .enumerate()
        .map(|(i, h)| (i, h.port))
        .find(|(_, p)| first == format!("http://127.0.0.1:{p}"))
        .unwrap();
    let second = grid
        .heads
        .iter()
        .map(|h| format!("http://127.0.0.1:{}", h.port))
        .find(|u| *u != first)
        .unwrap();
    let gate = Gate::new();
    let svc = gate.service(first_port);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("held.bin");
    let data = random(300 * 1024 + 3);
    std::fs::write(&local, &data).unwrap();

    let put = cli(&svc)
        .args(["put", local.to_str().unwrap(), "held/held.bin"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_sync(Duration::from_secs(30), "the upload held", || {
        gate.put_held().then_some(())
    });
    // Leadership moves: the first leader stops answering, the other head takes over, and
    // the first comes back as a standby that forwards to it.
    grid.heads[first_at].proc.pause();
    wait_until_sync(Duration::from_secs(60), "a new leadership", || {
        status(&second)
            .filter(|s| s.status.role == Role::Leader && s.status.epoch > first_epoch)
            .map(|_| ())
    });
    grid.heads[first_at].proc.resume();
    wait_until_sync(
        Duration::from_secs(60),
        "the first leader a standby that forwards",
        || {
            status(&first)
                .filter(|s| {
                    s.status.role == Role::Standby
                        && s.forwards_to_leader
                        && s.status.epoch > first_epoch
                })
                .map(|_| ())
        },
    );
    let refused_before = puts_answered(&second, 409);
    gate.release();

    let put = put.wait_with_output().unwrap();
    assert!(put.status.success(), "{put:?}");
    assert_eq!(
        puts_answered(&second, 409),
        refused_before + 1.0,
        "the held upload was refused as sent to the earlier leadership"
    );
    assert_stored(&second, "held/held.bin", &data);
}

/// `put --if-absent` creates only, `put --if-match` and `rm --if-match` change only the file
/// with the ETag `put` and `stat` print; a condition that does not hold exits 1, says so and
/// changes nothing.
#[test]
fn conditional_puts_and_deletes_from_the_cli() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let leader = grid.leader_url(Duration::from_secs(30));
    grid.wait_cluster_live(3, Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let (first, first_data) = local_file(dir.path(), "first", 3000);
    let (second, second_data) = local_file(dir.path(), "second", 5000);
    let run = |args: &[&str]| cli(&leader).arg("--json").args(args).output().unwrap();
    let json = |out: &std::process::Output| -> serde_json::Value {
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let refused = |out: &std::process::Output| {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("412") || err.contains("precondition"), "{err}");
    };
    let first_path = first.to_str().unwrap();
    let second_path = second.to_str().unwrap();

    let created = json(&run(&["put", "--if-absent", first_path, "cond/f"]));
    let etag = created["etag"].as_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    refused(&run(&["put", "--if-absent", second_path, "cond/f"]));
    assert_stored(&leader, "cond/f", &first_data);

    let stat = json(&run(&["stat", "cond/f"]));
    assert_eq!(stat["etag"].as_str(), Some(etag.as_str()));
    // Without its quotes, as a shell would pass it unquoted.
    let bare = etag.trim_matches('"');
    let replaced = json(&run(&["put", "--if-match", bare, second_path, "cond/f"]));
    let new_etag = replaced["etag"].as_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    assert_stored(&leader, "cond/f", &second_data);
    // The old tag no longer matches, for a put or a delete.
    refused(&run(&["put", "--if-match", &etag, first_path, "cond/f"]));
    refused(&run(&["rm", "--if-match", &etag, "cond/f"]));
    assert_stored(&leader, "cond/f", &second_data);
    json(&run(&["rm", "--if-match", &new_etag, "cond/f"]));
    let gone = http()
        .get(format!("{leader}/v1/files/cond/f"))
        .send()
        .unwrap();
    assert_eq!(gone.status(), 404);
    // A usage error exits 2 and sends nothing.
    let out = run(&[
        "put",
        "--if-absent",
        "--if-match",
        bare,
        first_path,
        "cond/g",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
