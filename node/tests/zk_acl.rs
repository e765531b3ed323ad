//! ZooKeeper ACLs (`zk_auth_file`) with a real ZooKeeper server and real head, cluster server
//! and monitor processes on 127.0.0.1. Every wait has a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use filegrid_node::zk::access::Credential;
use filegrid_proto::head::{Role, StatusView};
use filegrid_testkit::{Grid, GridOptions, Proc, ZkServer, free_port, wait_until_sync};
use zookeeper_client::{Acl, AuthId, Client, CreateMode, Error as ZkErr, Permission};

const ROOT: &str = "/distributed_file_grid";

fn node_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_filegrid-node"))
}

fn monitor_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk_head_server_monitor"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client with the test admin credential.
fn http() -> reqwest::blocking::Client {
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        filegrid_testkit::auth::ADMIN.bearer().parse().unwrap(),
    );
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .default_headers(auth)
        .build()
        .unwrap()
}

/// A client without authentication: anyone who reaches ZooKeeper.
async fn anonymous(hosts: &str) -> Client {
    Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(hosts)
        .await
        .unwrap()
}

/// A client authenticated with the credential in `file`.
async fn authenticated(hosts: &str, file: &Path) -> Client {
    let text = std::fs::read_to_string(file).unwrap();
    Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_auth("digest", text.trim_end().as_bytes())
        .connect(hosts)
        .await
        .unwrap()
}

/// The ACL FileGrid gives its nodes for the credential in `file`.
fn principal_acl(file: &Path) -> Vec<Acl> {
    let id = Credential::read(file).unwrap().digest_id();
    vec![Acl::new(Permission::ALL, AuthId::new("digest", &id))]
}

/// Every node under (and including) `root` with its ACL, read by `c`.
async fn tree_acls(c: &Client, root: &str) -> Vec<(String, Vec<Acl>)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_string()];
    while let Some(path) = todo.pop() {
        let Ok((acl, _)) = c.get_acl(&path).await else {
            continue;
        };
        out.push((path.clone(), acl));
        for child in c.list_children(&path).await.unwrap_or_default() {
            todo.push(format!("{path}/{child}"));
        }
    }
    out
}

fn put(base: &str, path: &str, data: &[u8]) -> u16 {
    http()
        .put(format!("{base}/v1/files/{path}"))
        .body(data.to_vec())
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn get(base: &str, path: &str) -> Option<Vec<u8>> {
    let r = http().get(format!("{base}/v1/files/{path}")).send().ok()?;
    if r.status() != 200 {
        return None;
    }
    r.bytes().ok().map(|b| b.to_vec())
}

fn status(port: u16) -> Option<StatusView> {
    let body = filegrid_testkit::grid::http_get(port, "/v1/status")?;
    serde_json::from_str(&body).ok()
}

fn role(port: u16) -> Option<Role> {
    status(port).map(|s| s.status.role)
}

fn spawn_monitor(hosts: &str, dir: &Path, id: &str, extra: &[String]) -> Proc {
    let mut args: Vec<String> = [
        "--zk-hosts",
        hosts,
        "--interval",
        "300ms",
        "--timeout",
        "250ms",
        "--failure-threshold",
        "3",
        "--monitor-id",
        id,
        "--metrics-listen",
        &format!("127.0.0.1:{}", free_port()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().cloned());
    Proc::spawn(id, monitor_bin(), &args, dir)
}

fn head_args(hosts: &str, id: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "head",
        "--insecure",
        "--server-id",
        id,
        "--zk-hosts",
        hosts,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--session-timeout",
        "4s",
        "--startup-grace",
        "0s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().cloned());
    args
}

/// Waits for `proc` to exit on its own; returns its exit code and log.
fn exits(proc: &mut Proc, timeout: Duration) -> (Option<i32>, String) {
    let status = proc
        .wait_exit(timeout)
        .unwrap_or_else(|| panic!("{} did not stop within {timeout:?}", proc.name));
    (status.code(), proc.log())
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn with_a_credential_anonymous_clients_cannot_touch_the_grid_which_works_and_fails_over() {
    let started = Instant::now();
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            zk_auth: true,
            ..Default::default()
        },
    );
    let hosts = grid.zk.hosts();
    let auth_file = grid.zk_auth_file().unwrap();
    let ours = principal_acl(&auth_file);
    let base = grid.leader_url(Duration::from_secs(20));
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(put(&base, "acl/one", &data), 201);
    assert_eq!(get(&base, "acl/one").as_deref(), Some(&data[..]));
    let monitor = spawn_monitor(&hosts, grid.dir.path(), "monitor_1", &grid.zk_auth_args());

    let rt = rt();
    rt.block_on(async {
        let auth = authenticated(&hosts, &auth_file).await;
        // The monitor works with the credential: it registers and reports.
        let report = format!("{ROOT}/health_reports/head_server_1");
        filegrid_testkit::wait_until(Duration::from_secs(20), "a health report", || async {
            auth.check_stat(&report).await.ok().flatten()
        })
        .await;

        let anon = anonymous(&hosts).await;
        let open = CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        let eph = CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all());
        assert_eq!(
            anon.create(&format!("{ROOT}/excluded/head_server_1"), b"{}", &open)
                .await
                .unwrap_err(),
            ZkErr::NoAuth,
            "an anonymous client excluded the leader"
        );
        assert_eq!(
            anon.delete(&format!("{ROOT}/leader"), None)
                .await
                .unwrap_err(),
            ZkErr::NoAuth,
            "an anonymous client deleted the leader node"
        );
        assert_eq!(
            anon.create(
                &format!("{ROOT}/cluster_servers/cluster_server_9"),
                b"{}",
                &eph
            )
            .await
            .unwrap_err(),
            ZkErr::NoAuth,
            "an anonymous client registered a cluster server"
        );
        assert_eq!(
            anon.get_data(&format!("{ROOT}/files/acl/one"))
                .await
                .unwrap_err(),
            ZkErr::NoAuth,
            "an anonymous client read a file's metadata"
        );
        assert_eq!(
            anon.list_children(&format!("{ROOT}/files"))
                .await
                .unwrap_err(),
            ZkErr::NoAuth,
            "an anonymous client listed file names"
        );
        assert_eq!(
            anon.set_acl(ROOT, &zookeeper_client::Acls::anyone_all(), None)
                .await
                .unwrap_err(),
            ZkErr::NoAuth,
            "an anonymous client opened the root"
        );
        // Every node, whoever made it (heads, cluster servers, the monitor), is the
        // principal's only.
        let tree = tree_acls(&auth, ROOT).await;
        assert!(tree.len() > 15, "{tree:?}");
        for (path, acl) in &tree {
            assert_eq!(acl, &ours, "{path}");
        }
    });

    // The CLI reads ZooKeeper with the credential, and cannot without it.
    let cli = |extra: &[String]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_filegrid"))
            .args(["--zk-hosts", &hosts, "--json"])
            .args(extra)
            .arg("heads")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let with = cli(&grid.zk_auth_args());
    let listed = String::from_utf8_lossy(&with.stdout);
    assert!(with.status.success(), "{with:?}");
    assert!(listed.contains("head_server_2"), "{listed}");
    let without = cli(&[]);
    assert!(!without.status.success(), "{without:?}");

    // Reconnects re-authenticate: after a ZooKeeper restart the grid still writes.
    grid.zk.stop();
    grid.zk.start_again();
    let base = grid.leader_url(Duration::from_secs(30));
    wait_until_sync(
        Duration::from_secs(30),
        "an upload after ZooKeeper's restart",
        || (put(&base, "acl/two", b"after the restart") == 201).then_some(()),
    );

    // Fail-over: kill the leader; the other head leads and serves the file.
    let leader = wait_until_sync(Duration::from_secs(20), "a leading head", || {
        (0..2).find(|&i| role(grid.heads[i].port) == Some(Role::Leader))
    });
    let epoch = status(grid.heads[leader].port).unwrap().status.epoch;
    grid.heads[leader].proc.kill9();
    let other = grid.heads[1 - leader].port;
    wait_until_sync(Duration::from_secs(30), "the other head to lead", || {
        status(other).filter(|s| s.status.role == Role::Leader && s.status.epoch > epoch)
    });
    let new_base = format!("http://127.0.0.1:{other}");
    assert_eq!(get(&new_base, "acl/one").as_deref(), Some(&data[..]));
    assert_eq!(put(&new_base, "acl/three", b"after failover"), 201);
    rt.block_on(async {
        let auth = authenticated(&hosts, &auth_file).await;
        for (path, acl) in tree_acls(&auth, ROOT).await {
            assert_eq!(acl, ours, "{path}");
        }
    });
    drop(monitor);
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn a_wrong_or_missing_credential_stops_every_role_with_what_to_do() {
    let zk = ZkServer::start();
    let hosts = zk.hosts();
    let dir = tempfile::tempdir().unwrap();
    let right = write_file(dir.path(), "right", "filegrid:right-password\n");
    let wrong = write_file(dir.path(), "wrong", "filegrid:wrong-password\n");
    let other = write_file(dir.path(), "other", "someone:else\n");
    // A head with the right credential makes the grid.
    let mut first = Proc::spawn(
        "head_server_1",
        node_bin(),
        &head_args(
            &hosts,
            "head_server_1",
            &["--zk-auth-file".into(), right.display().to_string()],
        ),
        dir.path(),
    );
    rt().block_on(async {
        let auth = authenticated(&hosts, &right).await;
        filegrid_testkit::wait_until(Duration::from_secs(20), "a leader", || async {
            auth.check_stat(&format!("{ROOT}/leader"))
                .await
                .ok()
                .flatten()
        })
        .await;
        assert_eq!(auth.get_acl(ROOT).await.unwrap().0, principal_acl(&right));
    });
    let arg = |f: &Path| vec!["--zk-auth-file".to_string(), f.display().to_string()];

    let mut head = Proc::spawn(
        "head_wrong",
        node_bin(),
        &head_args(&hosts, "head_server_2", &arg(&wrong)),
        dir.path(),
    );
    let (code, log) = exits(&mut head, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("may not read it"), "{log}");
    assert!(log.contains("password differs"), "{log}");
    assert!(
        !log.contains("wrong-password"),
        "the password was logged: {log}"
    );

    let data_dir = dir.path().join("c1");
    let mut cluster = Proc::spawn(
        "cluster_anonymous",
        node_bin(),
        &[
            "cluster",
            "--insecure",
            "--server-id",
            "cluster_server_1",
            "--zk-hosts",
            &hosts,
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
            &data_dir.display().to_string(),
        ]
        .map(String::from),
        dir.path(),
    );
    let (code, log) = exits(&mut cluster, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("ZooKeeper is unauthenticated"), "{log}");
    assert!(log.contains("set zk_auth_file"), "{log}");

    let mut monitor = spawn_monitor(&hosts, dir.path(), "monitor_other", &arg(&other));
    let (code, log) = exits(&mut monitor, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("may not read it"), "{log}");
    assert!(log.contains("digest user \"someone\""), "{log}");

    // The grid itself was not disturbed.
    assert!(first.wait_exit(Duration::ZERO).is_none(), "{}", first.log());
    rt().block_on(async {
        let auth = authenticated(&hosts, &right).await;
        assert!(
            auth.check_stat(&format!("{ROOT}/leader"))
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            auth.list_children(&format!("{ROOT}/cluster_servers"))
                .await
                .unwrap()
                .is_empty()
        );
    });
}

#[test]
fn a_root_left_open_by_an_older_grid_is_adopted_once() {
    let zk = ZkServer::start();
    let hosts = zk.hosts();
    let dir = tempfile::tempdir().unwrap();
    // A grid from before ACLs: a head without a credential, and a file-like node.
    let mut old = Proc::spawn(
        "head_old",
        node_bin(),
        &head_args(&hosts, "head_server_1", &[]),
        dir.path(),
    );
    let rt = rt();
    rt.block_on(async {
        let anon = anonymous(&hosts).await;
        filegrid_testkit::wait_until(Duration::from_secs(20), "the old grid's leader", || async {
            anon.check_stat(&format!("{ROOT}/leader"))
                .await
                .ok()
                .flatten()
        })
        .await;
        let open = CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        anon.mkdir(&format!("{ROOT}/files/old/dir"), &open)
            .await
            .unwrap();
        anon.create(&format!("{ROOT}/files/old/dir/f"), b"old data", &open)
            .await
            .unwrap();
    });
    assert!(old.log().contains("ZooKeeper is unauthenticated"));
    old.terminate();
    old.wait_exit(Duration::from_secs(10)).unwrap();

    let auth_file = write_file(dir.path(), "auth", "filegrid:adopt-me\n");
    let ours = principal_acl(&auth_file);
    let with_auth = [
        "--zk-auth-file".to_string(),
        auth_file.display().to_string(),
    ];
    let mut heads: Vec<Proc> = (1..=2)
        .map(|i| {
            let id = format!("head_server_{i}");
            Proc::spawn(
                &id,
                node_bin(),
                &head_args(&hosts, &id, &with_auth),
                dir.path(),
            )
        })
        .collect();
    rt.block_on(async {
        let auth = authenticated(&hosts, &auth_file).await;
        filegrid_testkit::wait_until(Duration::from_secs(20), "a leader", || async {
            let (acl, _) = auth.get_acl(&format!("{ROOT}/leader")).await.ok()?;
            (acl == ours).then_some(())
        })
        .await;
        for (path, acl) in tree_acls(&auth, ROOT).await {
            assert_eq!(acl, ours, "{path}");
        }
        // The old grid's data is kept, and is now the principal's only.
        let path = format!("{ROOT}/files/old/dir/f");
        assert_eq!(auth.get_data(&path).await.unwrap().0, b"old data");
        let anon = anonymous(&hosts).await;
        assert_eq!(anon.get_data(&path).await.unwrap_err(), ZkErr::NoAuth);
        let open = CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        assert_eq!(
            anon.create(&format!("{ROOT}/excluded/head_server_1"), b"{}", &open)
                .await
                .unwrap_err(),
            ZkErr::NoAuth
        );
    });
    // Both heads started; they adopted at most... one did, or both raced harmlessly, and a
    // restart does not adopt again.
    let adoptions = |h: &Proc| h.log().matches("adopting it").count();
    let total: usize = heads.iter().map(adoptions).sum();
    assert!((1..=2).contains(&total), "adoptions: {total}");
    heads[1].terminate();
    heads[1].wait_exit(Duration::from_secs(10)).unwrap();
    let again = Proc::spawn(
        "head_server_2_again",
        node_bin(),
        &head_args(&hosts, "head_server_2", &with_auth),
        dir.path(),
    );
    wait_until_sync(
        Duration::from_secs(20),
        "the restarted head to register",
        || again.log().contains("registered head").then_some(()),
    );
    assert_eq!(adoptions(&again), 0, "{}", again.log());
    // The old head, still without a credential, is now refused with what to do.
    let mut old = Proc::spawn(
        "head_old_again",
        node_bin(),
        &head_args(&hosts, "head_server_3", &[]),
        dir.path(),
    );
    let (code, log) = exits(&mut old, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("set zk_auth_file"), "{log}");
    drop(heads);
}

#[test]
fn a_malformed_credential_file_is_a_start_up_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            write_file(dir.path(), "no-colon", "filegrid-secret-1\n"),
            "no `:`",
        ),
        (
            write_file(dir.path(), "no-user", ":secret-2\n"),
            "the user is empty",
        ),
        (
            write_file(dir.path(), "no-password", "filegrid:\n"),
            "the password is empty",
        ),
        (dir.path().join("missing"), "cannot read"),
    ];
    for (file, needle) in &cases {
        let f = file.display().to_string();
        let runs: [(&Path, Vec<&str>); 3] = [
            (
                node_bin(),
                vec![
                    "head",
                    "--insecure",
                    "--server-id",
                    "h1",
                    "--zk-auth-file",
                    &f,
                ],
            ),
            (
                node_bin(),
                vec![
                    "cluster",
                    "--insecure",
                    "--server-id",
                    "c1",
                    "--data-dir",
                    "/nonexistent",
                    "--zk-auth-file",
                    &f,
                ],
            ),
            (monitor_bin(), vec!["--zk-auth-file", &f]),
        ];
        for (bin, args) in runs {
            let out = std::process::Command::new(bin)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains("setting `zk_auth_file`"),
                "{args:?}: {stderr}"
            );
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
            assert!(stderr.contains(&f), "{args:?}: {stderr}");
            assert!(
                !stderr.contains("secret-"),
                "{args:?} showed the password: {stderr}"
            );
        }
    }
}
