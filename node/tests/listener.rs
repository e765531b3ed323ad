//! Every listener's TLS and limits, on real grids (ZooKeeper, heads and cluster servers as
//! processes) over real sockets: TLS and mutual TLS end to end, certificate rotation during a
//! transfer, a connection flood, oversized request heads and stalled clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use filegrid_proto::{ErrorBody, ErrorCode};
use filegrid_testkit::{CertFiles, Grid, GridOptions, GridTls, wait_until_sync};
use rand::RngCore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn node_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_filegrid-node"))
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

fn pem(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A blocking client trusting the grid's CA, presenting `identity` if given.
fn https_client(tls: &GridTls, identity: Option<&CertFiles>) -> reqwest::blocking::Client {
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        filegrid_testkit::auth::ADMIN.bearer().parse().unwrap(),
    );
    let mut b = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .default_headers(auth)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem(&tls.ca)).unwrap());
    if let Some(id) = identity {
        let mut both = pem(&id.cert);
        both.extend_from_slice(&pem(&id.key));
        b = b.identity(reqwest::Identity::from_pem(&both).unwrap());
    }
    b.build().unwrap()
}

fn leaf(path: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// Runs the `filegrid` CLI; panics with its output unless it succeeds.
fn cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_filegrid"))
        .env("FILEGRID_TOKEN", filegrid_testkit::auth::ADMIN.token())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "filegrid {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `request` on a fresh plain connection and reads the answer until the server closes.
fn raw(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn body_of(answer: &str) -> ErrorBody {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn tls_grid_moves_files_over_tls_and_refuses_plain_http() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            tls: true,
            cluster_servers: 2,
            replication_factor: 2,
            min_write_replicas: 2,
            ..Default::default()
        },
    );
    // Grid::start waited for the leader to list both cluster servers: their heartbeats
    // reached it over https, found through the leader record's `tls`.
    let tls = grid.tls.as_ref().unwrap();
    let head = grid.head_url(0);
    assert!(head.starts_with("https://"));
    assert!(
        grid.leader_url(Duration::from_secs(10))
            .starts_with("https://")
    );

    // Upload and download through the CLI trusting the CA: the head's chunk calls to both
    // cluster servers (which speak nothing but TLS) carry the data.
    let dir = tempfile::tempdir().unwrap();
    let data = random(3 * 256 * 1024 + 17);
    let local = dir.path().join("in");
    std::fs::write(&local, &data).unwrap();
    let ca = tls.ca.display().to_string();
    let back = dir.path().join("out");
    cli(&[
        "--head",
        &head,
        "--ca-cert",
        &ca,
        "put",
        local.to_str().unwrap(),
        "tls/f",
    ]);
    cli(&[
        "--head",
        &head,
        "--ca-cert",
        &ca,
        "get",
        "tls/f",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // Through reqwest trusting the CA too.
    let client = https_client(tls, None);
    let r = client.get(format!("{head}/v1/files/tls/f")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().to_vec(), data);

    // Without the CA the head's certificate is not trusted.
    let untrusting = reqwest::blocking::Client::new();
    assert!(untrusting.get(format!("{head}/health")).send().is_err());
    // Without --ca-cert the CLI refuses the head too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_filegrid"))
        .args(["--head", &head, "leader"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Plain HTTP to a TLS port: a 400 telling to use https, and no data.
    for port in [grid.heads[0].port, grid.cluster[0].port] {
        let answer = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(body_of(&answer).message.contains("https"), "{answer}");
    }
    let plain = grid.head_url(0).replace("https://", "http://");
    let r = untrusting.get(format!("{plain}/health")).send().unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_of_the_ca() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            tls: true,
            mutual_tls: true,
            cluster_servers: 1,
            replication_factor: 1,
            min_write_replicas: 1,
            ..Default::default()
        },
    );
    // The grid came up: heartbeats presented the cluster server's certificate.
    let tls = grid.tls.as_ref().unwrap();
    let head = grid.head_url(0);
    let client_cert = grid.client_cert().unwrap();

    let anonymous = https_client(tls, None);
    for url in [
        format!("{head}/health"),
        format!("{}/health", grid.cluster_url(0)),
    ] {
        assert!(
            anonymous.get(&url).send().is_err(),
            "{url} served a client without a certificate"
        );
    }
    // A certificate of another CA is refused too.
    let other_dir = tempfile::tempdir().unwrap();
    let other = GridTls::new(other_dir.path(), "other CA");
    let stranger = other.issue("stranger");
    assert!(
        https_client(tls, Some(&stranger))
            .get(format!("{head}/health"))
            .send()
            .is_err()
    );

    let client = https_client(tls, Some(&client_cert));
    let r = client.get(format!("{head}/health")).send().unwrap();
    assert_eq!(r.status(), 200);

    // The CLI with a client certificate: the upload's chunk calls present the head's own.
    let dir = tempfile::tempdir().unwrap();
    let data = random(300 * 1024);
    let local = dir.path().join("in");
    std::fs::write(&local, &data).unwrap();
    let (ca, cert, key) = (
        tls.ca.display().to_string(),
        client_cert.cert.display().to_string(),
        client_cert.key.display().to_string(),
    );
    let base = [
        "--head",
        &head,
        "--ca-cert",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ];
    let mut put = base.to_vec();
    put.extend(["put", local.to_str().unwrap(), "m/f"]);
    cli(&put);
    let r = client.get(format!("{head}/v1/files/m/f")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().to_vec(), data);
}

/// A request body that stops after `pause_at` bytes until told to go on.
struct Gated {
    data: Vec<u8>,
    pos: usize,
    pause_at: usize,
    paused: Option<mpsc::Sender<()>>,
    go: mpsc::Receiver<()>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.pause_at
            && let Some(tell) = self.paused.take()
        {
            let _ = tell.send(());
            let _ = self.go.recv();
        }
        let end = if self.pos < self.pause_at {
            self.pause_at
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.pos).min(64 << 10);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn certificates_rotate_during_a_transfer_without_a_restart() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            tls: true,
            cluster_servers: 2,
            replication_factor: 2,
            min_write_replicas: 2,
            ..Default::default()
        },
    );
    let tls = grid.tls.as_ref().unwrap();
    let head = grid.head_url(0);
    let head_port = grid.heads[0].port;
    let cluster_port = grid.cluster[0].port;
    let before_head = tls.peer_certificate(head_port, None).unwrap();
    let before_cluster = tls.peer_certificate(cluster_port, None).unwrap();
    assert_eq!(before_head, leaf(&tls.files("head_server_1").cert));

    let data = random(24 << 20);
    let (paused_tx, paused_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let body = Gated {
        data: data.clone(),
        pos: 0,
        pause_at: data.len() / 2,
        paused: Some(paused_tx),
        go: go_rx,
    };
    let client = https_client(tls, None);
    let upload = {
        let client = client.clone();
        let url = format!("{head}/v1/files/rotate/big");
        std::thread::spawn(move || {
            client
                .put(url)
                .body(reqwest::blocking::Body::sized(body, 24 << 20))
                .send()
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        })
    };
    // Half the file is in flight: replace the head's and a cluster server's files.
    paused_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let new_head = tls.issue("head_server_1");
    let new_cluster = tls.issue("cluster_server_1");
    // New connections get the new certificates once the reload saw the files.
    wait_until_sync(
        Duration::from_secs(20),
        "the head's new certificate",
        || {
            let c = tls.peer_certificate(head_port, None).ok()?;
            (c == leaf(&new_head.cert)).then_some(())
        },
    );
    wait_until_sync(
        Duration::from_secs(20),
        "the cluster server's new certificate",
        || {
            let c = tls.peer_certificate(cluster_port, None).ok()?;
            (c == leaf(&new_cluster.cert)).then_some(())
        },
    );
    assert_ne!(leaf(&new_head.cert), before_head);
    assert_ne!(leaf(&new_cluster.cert), before_cluster);
    go_tx.send(()).unwrap();
    let status = upload.join().unwrap().unwrap();
    assert_eq!(status, 201);

    // The file reads back whole, over new connections with the new certificates.
    let r = https_client(tls, None)
        .get(format!("{head}/v1/files/rotate/big"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().unwrap().as_ref() == data.as_slice());

    // A bad new file is refused (logged) and the current certificate kept.
    let current = leaf(&new_head.cert);
    let refusals = || {
        grid.heads[0]
            .proc
            .log()
            .matches("new TLS files are not usable")
            .count()
    };
    let before = refusals();
    std::fs::write(&new_head.cert, "garbage").unwrap();
    wait_until_sync(
        Duration::from_secs(20),
        "the reload refusing the bad file",
        || (refusals() > before).then_some(()),
    );
    assert_eq!(tls.peer_certificate(head_port, None).unwrap(), current);
    let r = https_client(tls, None)
        .get(format!("{head}/health"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Replaces `to` by a copy of `from` through a rename, as an operator rotating files would.
fn replace_file(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn a_changed_tls_ca_is_trusted_by_running_processes() {
    // Cluster servers close idle connections after 1 s, so no call between the processes
    // rides on a connection verified before the change.
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            tls: true,
            cluster_servers: 2,
            replication_factor: 2,
            min_write_replicas: 2,
            extra_cluster_args: vec!["--idle-timeout".into(), "1s".into()],
            ..Default::default()
        },
    );
    let tls = grid.tls.as_ref().unwrap();
    let head = grid.head_url(0);
    // cluster_server_1 moves to a certificate of a second CA, which tls_ca (the file every
    // process trusts for its calls) does not hold yet.
    let ca_b = GridTls::new(&grid.dir.path().join("tls-b"), "FileGrid test CA B");
    let from_b = ca_b.issue("cluster_server_1");
    let files = tls.files("cluster_server_1");
    replace_file(&from_b.key, &files.key);
    replace_file(&from_b.cert, &files.cert);
    let port = grid.cluster[0].port;
    wait_until_sync(
        Duration::from_secs(20),
        "cluster_server_1 serving the second CA's certificate",
        || (ca_b.peer_certificate(port, None).ok()? == leaf(&from_b.cert)).then_some(()),
    );
    // tls_ca now holds both CAs: the head's chunk calls to cluster_server_1 (and the other
    // server's pipeline hops there) verify again, without a restart. Both replicas are
    // needed, so a put succeeds only once the head and the other server trust the new CA.
    let mut both = pem(&tls.ca);
    both.extend_from_slice(&pem(&ca_b.ca));
    let bundle = grid.dir.path().join("ca-both.pem");
    std::fs::write(&bundle, &both).unwrap();
    replace_file(&bundle, &tls.ca);
    let client = https_client(tls, None);
    let data = random(600 * 1024);
    let mut tries = 0;
    wait_until_sync(
        Duration::from_secs(30),
        "a put through the head once tls_ca holds the second CA",
        || {
            tries += 1;
            let r = client
                .put(format!("{head}/v1/files/ca/f{tries}"))
                .body(data.clone())
                .send()
                .ok()?;
            (r.status().as_u16() == 201).then_some(())
        },
    );
    // Every process reads the new file (it looks every 2 s). The put may have ridden on a
    // connection opened before the change, so the head's reload is waited for too.
    let procs = grid
        .heads
        .iter()
        .map(|h| (&h.id, &h.proc))
        .chain(grid.cluster.iter().map(|c| (&c.id, &c.proc)));
    for (id, proc) in procs {
        wait_until_sync(
            Duration::from_secs(20),
            &format!("{id} reading the new tls_ca"),
            || {
                proc.log()
                    .contains("reloaded the CA certificates of tls_ca")
                    .then_some(())
            },
        );
    }
    let got = client
        .get(format!("{head}/v1/files/ca/f{tries}"))
        .send()
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(got.bytes().unwrap().as_ref() == data.as_slice());
}

/// Raises this process's descriptor limit to `n` (the flood needs more than the usual 1024).
fn raise_fd_limit(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn plain_grid(head_args: &[&str]) -> Grid {
    Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 0,
            replication_factor: 1,
            min_write_replicas: 1,
            extra_head_args: head_args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
}

fn health_ok(port: u16) -> Option<()> {
    filegrid_testkit::grid::http_get(port, "/health").map(|_| ())
}

#[test]
fn a_connection_flood_is_bounded_and_the_head_answers_once_it_ends() {
    const MAX: usize = 64;
    raise_fd_limit(4096);
    let grid = plain_grid(&[
        "--max-connections",
        "64",
        "--idle-timeout",
        "60s",
        "--header-read-timeout",
        "2s",
    ]);
    let port = grid.heads[0].port;
    let pid = grid.heads[0].proc.pid();
    let baseline = fd_count(pid);

    // 1,100 connections that send nothing.
    let mut idle = Vec::new();
    let mut peak = 0;
    for i in 0..1100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            idle.push(s);
        }
        if i % 50 == 0 {
            peak = peak.max(fd_count(pid));
        }
    }
    assert!(idle.len() >= 1000, "only {} connections opened", idle.len());
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(1) {
        peak = peak.max(fd_count(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Served ones, over-cap answers in progress and what the process had before.
    let bound = baseline + MAX + filegrid_node::http::serve::REJECTING_AT_ONCE + 16;
    eprintln!("descriptors: {baseline} before, {peak} at most during the flood (bound {bound})");
    assert!(peak <= bound, "{peak} descriptors open (bound {bound})");

    // The cap is full of idle connections: a new client gets a clear 503.
    let answer = wait_until_sync(Duration::from_secs(10), "a 503 past the cap", || {
        let a = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        a.starts_with("HTTP/1.1 503").then_some(a)
    });
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{answer}"
    );
    assert_eq!(body_of(&answer).code, ErrorCode::Unavailable);

    // Once the flood closes, the head answers again.
    let opened = idle.len();
    drop(idle);
    wait_until_sync(
        Duration::from_secs(10),
        "the head answering after the flood",
        || health_ok(port),
    );
    // Every connection past the cap was counted, under this listener's address.
    let metrics = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header(
            reqwest::header::AUTHORIZATION,
            filegrid_testkit::auth::ADMIN.bearer(),
        )
        .send()
        .unwrap()
        .text()
        .unwrap();
    let refused: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "filegrid_connections_refused_total{{listener=\"127.0.0.1:{port}\"}} "
            ))
        })
        .unwrap_or_else(|| panic!("no refused-connections counter for port {port}:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(
        refused >= (opened - MAX) as f64,
        "{refused} refused, {opened} opened with a cap of {MAX}"
    );

    // Connections that stall mid-head fill the cap, and are cut off by the header timeout.
    let mut stalled = Vec::new();
    for _ in 0..MAX {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
        stalled.push(s);
    }
    let start = Instant::now();
    wait_until_sync(
        Duration::from_secs(15),
        "the head answering after the stall",
        || health_ok(port),
    );
    assert!(start.elapsed() < Duration::from_secs(12));
    assert!(fd_count(pid) <= bound);
    assert!(
        grid.heads[0]
            .proc
            .log()
            .contains("connection limit reached")
    );
}

#[test]
fn request_heads_over_max_header_bytes_get_431() {
    let grid = plain_grid(&["--max-header-bytes", "16KiB"]);
    let port = grid.heads[0].port;
    let small = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8 << 10)
    );
    let answer = raw(port, small.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20 << 10)
    );
    let answer = raw(port, big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // The JSON error body every other error has, with its length.
    let body = body_of(&answer);
    assert_eq!(body.code, ErrorCode::BadRequest);
    assert!(body.message.contains("max_header_bytes"), "{answer}");
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("\r\ncontent-length: {}\r\n", rest.len())),
        "{answer}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\ncontent-type: application/json\r\n"),
        "{answer}"
    );
    // A head that grows past the limit on a kept-alive connection, after a served request.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    s.write_all(big.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let answer = String::from_utf8_lossy(&out);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(body_of(&answer).code, ErrorCode::BadRequest);
    assert!(health_ok(port).is_some());
}

#[test]
fn a_stalled_request_head_is_cut_off_and_an_idle_connection_closed() {
    let grid = plain_grid(&["--header-read-timeout", "1s", "--idle-timeout", "3s"]);
    let port = grid.heads[0].port;

    // Half a head, then nothing: 408 with a JSON body after header_read_timeout.
    let start = Instant::now();
    let answer = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n");
    let took = start.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(body_of(&answer).code, ErrorCode::BadRequest);
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A kept-alive connection after its answer, and a connection that never sends: both
    // closed after idle_timeout, not after the header timeout.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = kept.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let answered = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let opened = Instant::now();
    let mut rest = Vec::new();
    let _ = kept.read_to_end(&mut rest);
    let kept_for = answered.elapsed();
    assert!(rest.is_empty());
    assert!(
        kept_for >= Duration::from_millis(2800) && kept_for < Duration::from_secs(8),
        "{kept_for:?}"
    );
    let _ = silent.read_to_end(&mut rest);
    let silent_for = opened.elapsed();
    assert!(rest.is_empty());
    assert!(
        silent_for >= Duration::from_millis(2800) && silent_for < Duration::from_secs(8),
        "{silent_for:?}"
    );
}

#[test]
fn unusable_tls_files_stop_the_process_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let tls = GridTls::new(dir.path(), "CA");
    let good = tls.issue("h");
    let other = tls.issue("other");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    let run = |cert: &Path, key: &Path| {
        let out = std::process::Command::new(node_bin())
            .args([
                "head",
                "--insecure",
                "--server-id",
                "h1",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--zk-hosts")
            .arg("127.0.0.1:1")
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    };
    let err = run(&missing, &good.key);
    assert!(err.contains("setting `tls_cert`: cannot read"), "{err}");
    let err = run(&junk, &good.key);
    assert!(err.contains("setting `tls_cert`"), "{err}");
    let err = run(&good.cert, &junk);
    assert!(err.contains("setting `tls_key`"), "{err}");
    let err = run(&good.cert, &other.key);
    assert!(
        err.contains("setting `tls_key`") && err.contains("is not the key of"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");
}
