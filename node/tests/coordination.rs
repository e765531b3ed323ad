//! Election, fencing and the monitor, with a real ZooKeeper server and real head and monitor
//! processes on 127.0.0.1. Every wait has a deadline.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use filegrid_proto::ErrorBody;
use filegrid_proto::ErrorCode;
use filegrid_proto::head::{Role, StatusView};
use filegrid_proto::zk::{FenceProbeRecord, HealthReport, HealthStatus, LeaderRecord};
use filegrid_testkit::{Proc, ZkServer, free_port, wait_until};

mod common;
use common::node_bin;

const ROOT: &str = "/distributed_file_grid";

fn monitor_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_zk_head_server_monitor"))
}

struct Head {
    id: String,
    port: u16,
    proc: Proc,
}

fn spawn_head(zk: &ZkServer, dir: &Path, id: &str, session: &str, extra: &[&str]) -> Head {
    let port = free_port();
    let mut args: Vec<String> = [
        "head",
        "--insecure",
        "--server-id",
        id,
        "--zk-hosts",
        &zk.hosts(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--session-timeout",
        session,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Head {
        id: id.into(),
        port,
        proc: Proc::spawn(id, node_bin(), &args, dir),
    }
}

struct Monitor {
    metrics_port: u16,
    proc: Proc,
}

fn spawn_monitor(zk: &ZkServer, dir: &Path, id: &str, interval: &str, timeout: &str) -> Monitor {
    let metrics_port = free_port();
    let args: Vec<String> = [
        "--zk-hosts",
        &zk.hosts(),
        "--interval",
        interval,
        "--timeout",
        timeout,
        "--failure-threshold",
        "3",
        "--monitor-id",
        id,
        "--metrics-listen",
        &format!("127.0.0.1:{metrics_port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Monitor {
        metrics_port,
        proc: Proc::spawn(id, monitor_bin(), &args, dir),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A head's own view (`/v1/status`), or `None` if it does not answer.
async fn head_status(port: u16) -> Option<StatusView> {
    let r = http()
        .get(format!("http://127.0.0.1:{port}/v1/status"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

async fn zk_client(zk: &ZkServer) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&zk.hosts())
        .await
        .unwrap()
}

/// Whether a head's status names `id` as the leader.
fn follows(s: &StatusView, id: &str) -> bool {
    s.status
        .leader
        .as_ref()
        .is_some_and(|l| l.server_id.as_str() == id)
}

/// A record read from a znode, if the znode exists and holds one.
async fn zk_record<T: serde::de::DeserializeOwned>(
    c: &zookeeper_client::Client,
    path: &str,
) -> Option<T> {
    let (data, _) = c.get_data(path).await.ok()?;
    serde_json::from_slice(&data).ok()
}

/// `(server_id, epoch)` of the leader node, if any.
async fn zk_leader(c: &zookeeper_client::Client) -> Option<(String, u64)> {
    let l: LeaderRecord = zk_record(c, &format!("{ROOT}/leader")).await?;
    Some((l.server_id.to_string(), l.epoch))
}

async fn zk_exists(c: &zookeeper_client::Client, path: &str) -> bool {
    matches!(c.check_stat(path).await, Ok(Some(_)))
}

async fn wait_leader(
    c: &zookeeper_client::Client,
    timeout: Duration,
    pred: impl Fn(&str, u64) -> bool,
    what: &str,
) -> (String, u64) {
    wait_until(timeout, what, || async {
        zk_leader(c).await.filter(|(id, e)| pred(id, *e))
    })
    .await
}

/// Sum of a metric (all label sets) in a Prometheus text page.
async fn metric_sum(port: u16, name: &str) -> Option<f64> {
    let text = http()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(common::metric_sum(&text, name, &[]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowest_id_leads_and_crash_fails_over_within_session_timeout() {
    let zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let session = Duration::from_secs(2);
    // Started together, in reverse order: natural order puts head_server_2 before head_server_10.
    let mut heads = vec![
        spawn_head(&zk, dir.path(), "head_server_10", "2s", &[]),
        spawn_head(&zk, dir.path(), "head_server_3", "2s", &[]),
        spawn_head(&zk, dir.path(), "head_server_2", "2s", &[]),
    ];
    let c = zk_client(&zk).await;
    let (first, epoch1) =
        wait_leader(&c, Duration::from_secs(20), |_, _| true, "a first leader").await;
    assert_eq!(first, "head_server_2");
    // Every head agrees, and only the leader says it leads.
    for h in &heads {
        let st = wait_until(Duration::from_secs(10), "head status agrees", || async {
            head_status(h.port).await.filter(|s| {
                follows(s, "head_server_2")
                    && (s.status.role == Role::Leader) == (h.id == "head_server_2")
            })
        })
        .await;
        assert_eq!(st.status.epoch, epoch1);
    }

    let killed = Instant::now();
    heads[2].proc.kill9();
    let (next, epoch2) = wait_leader(
        &c,
        session + Duration::from_secs(2),
        |id, _| id != "head_server_2",
        "a new leader after kill -9",
    )
    .await;
    let took = killed.elapsed();
    assert_eq!(next, "head_server_3", "the next lowest id leads");
    assert!(epoch2 > epoch1, "epoch grew: {epoch1} -> {epoch2}");
    eprintln!("crash failover took {took:?}");
    drop(heads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_leadership_at_once() {
    let zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h1 = spawn_head(&zk, dir.path(), "head_server_1", "6s", &[]);
    let mut h2 = spawn_head(&zk, dir.path(), "head_server_2", "6s", &[]);
    let c = zk_client(&zk).await;
    wait_leader(
        &c,
        Duration::from_secs(20),
        |id, _| id == "head_server_1",
        "head_server_1 to lead",
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "head_server_2 standing by",
        || async {
            head_status(h2.port)
                .await
                .filter(|s| s.status.role == Role::Standby)
        },
    )
    .await;

    let mut h1 = h1;
    let sent = Instant::now();
    h1.proc.terminate();
    wait_leader(
        &c,
        Duration::from_secs(1),
        |id, _| id == "head_server_2",
        "head_server_2 to lead within 1s of SIGTERM",
    )
    .await;
    eprintln!("graceful failover took {:?}", sent.elapsed());
    let status = h1
        .proc
        .wait_exit(Duration::from_secs(10))
        .expect("head exits after SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    assert!(h1.proc.log().contains("released leadership"));
    h2.proc.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_fails_over_a_hung_leader_which_then_cannot_write_or_preempt() {
    let zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A long session: the hung leader's session stays alive, so only the monitor can end it.
    let h1 = spawn_head(&zk, dir.path(), "head_server_1", "20s", &[]);
    let h2 = spawn_head(&zk, dir.path(), "head_server_2", "20s", &[]);
    let c = zk_client(&zk).await;
    let (_, epoch1) = wait_leader(
        &c,
        Duration::from_secs(20),
        |id, _| id == "head_server_1",
        "head_server_1 to lead",
    )
    .await;
    let m = spawn_monitor(&zk, dir.path(), "monitor_a", "200ms", "150ms");
    wait_until(
        Duration::from_secs(10),
        "a healthy report for head_server_1",
        || async {
            let r: HealthReport =
                zk_record(&c, &format!("{ROOT}/health_reports/head_server_1")).await?;
            (r.status == HealthStatus::Healthy && r.reporter == "monitor_a").then_some(())
        },
    )
    .await;
    // The leader's fence works while it leads.
    let ok = http()
        .post(format!(
            "http://127.0.0.1:{}/v1/admin/fenced-write",
            h1.port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    h1.proc.pause();
    let paused = Instant::now();
    let (leader, epoch2) = wait_leader(
        &c,
        Duration::from_secs(5),
        |id, _| id == "head_server_2",
        "failover away from the hung leader",
    )
    .await;
    eprintln!("hung-leader failover took {:?}", paused.elapsed());
    assert_eq!(leader, "head_server_2");
    assert!(epoch2 > epoch1);
    assert!(zk_exists(&c, &format!("{ROOT}/excluded/head_server_1")).await);
    assert!(m.proc.log().contains("forced failover"));

    h1.proc.resume();
    // The old leader's writes are fenced off, whatever it believes.
    let r = wait_until(
        Duration::from_secs(10),
        "the old leader to answer again",
        || async {
            http()
                .post(format!(
                    "http://127.0.0.1:{}/v1/admin/fenced-write",
                    h1.port
                ))
                .send()
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(r.status(), 409);
    let body: ErrorBody = r.json().await.unwrap();
    assert_eq!(body.code, ErrorCode::Deposed);
    let (d, _) = c.get_data(&format!("{ROOT}/fence_probe")).await.unwrap();
    let probe: FenceProbeRecord = serde_json::from_slice(&d).unwrap();
    assert_eq!(
        probe.epoch, epoch1,
        "the last accepted probe is still the one from before the hang"
    );

    // Once healthy again its exclusion is lifted, and it does not take leadership back.
    wait_until(
        Duration::from_secs(10),
        "the exclusion to be lifted",
        || async {
            (!zk_exists(&c, &format!("{ROOT}/excluded/head_server_1")).await).then_some(())
        },
    )
    .await;
    let st = wait_until(
        Duration::from_secs(5),
        "head_server_1 to stand by",
        || async {
            head_status(h1.port)
                .await
                .filter(|s| s.status.role == Role::Standby)
        },
    )
    .await;
    assert!(follows(&st, "head_server_2"), "{st:?}");
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            zk_leader(&c).await,
            Some(("head_server_2".into(), epoch2)),
            "no preemption"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((h1, h2, m));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_monitors_force_one_failover_for_one_hang() {
    let zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h1 = spawn_head(&zk, dir.path(), "head_server_1", "20s", &[]);
    let h2 = spawn_head(&zk, dir.path(), "head_server_2", "20s", &[]);
    let c = zk_client(&zk).await;
    let (_, epoch1) = wait_leader(
        &c,
        Duration::from_secs(20),
        |id, _| id == "head_server_1",
        "head_server_1 to lead",
    )
    .await;
    let ma = spawn_monitor(&zk, dir.path(), "monitor_a", "200ms", "150ms");
    let mb = spawn_monitor(&zk, dir.path(), "monitor_b", "200ms", "150ms");
    for m in [&ma, &mb] {
        wait_until(
            Duration::from_secs(10),
            "both monitors checking",
            || async {
                metric_sum(m.metrics_port, "filegrid_health_check_seconds_count")
                    .await
                    .filter(|n| *n >= 2.0)
            },
        )
        .await;
    }
    h1.proc.pause();
    let (_, epoch2) = wait_leader(
        &c,
        Duration::from_secs(5),
        |id, _| id == "head_server_2",
        "failover",
    )
    .await;
    assert_eq!(epoch2, epoch1 + 1);
    // Both monitors keep seeing the hang for many more intervals; still one failover.
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a = metric_sum(ma.metrics_port, "filegrid_forced_failovers_total")
        .await
        .unwrap();
    let b = metric_sum(mb.metrics_port, "filegrid_forced_failovers_total")
        .await
        .unwrap();
    assert_eq!(a + b, 1.0, "exactly one forced failover (a={a}, b={b})");
    assert_eq!(zk_leader(&c).await, Some(("head_server_2".into(), epoch2)));
    h1.proc.resume();
    drop((h1, h2, ma, mb));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_outage_suspends_leadership_and_one_leader_remains() {
    let mut zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let heads = [
        spawn_head(&zk, dir.path(), "head_server_1", "4s", &[]),
        spawn_head(&zk, dir.path(), "head_server_2", "4s", &[]),
    ];
    {
        let c = zk_client(&zk).await;
        wait_leader(
            &c,
            Duration::from_secs(20),
            |id, _| id == "head_server_1",
            "head_server_1 to lead",
        )
        .await;
    }
    for (outage, label) in [
        (Duration::from_secs(1), "short"),
        (Duration::from_secs(7), "longer than the session"),
    ] {
        zk.stop();
        let down = Instant::now();
        // No head acts as leader while it cannot prove its session.
        for h in &heads {
            wait_until(
                Duration::from_secs(5),
                "heads to stop acting as leader",
                || async {
                    head_status(h.port)
                        .await
                        .filter(|s| s.status.role != Role::Leader && !s.status.zk_connected)
                },
            )
            .await;
        }
        while down.elapsed() < outage {
            for h in &heads {
                if let Some(s) = head_status(h.port).await {
                    assert_ne!(
                        s.status.role,
                        Role::Leader,
                        "{} acted as leader during the {label} outage",
                        h.id
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        zk.start_again();
        let c = zk_client(&zk).await;
        // Exactly one head says it leads, it is the one in ZooKeeper, and all heads agree.
        let (leader, epoch) = wait_until(
            Duration::from_secs(20),
            "heads to agree on one leader",
            || async {
                let (leader, epoch) = zk_leader(&c).await?;
                let mut leaders = Vec::new();
                for h in &heads {
                    let s = head_status(h.port).await?;
                    if !follows(&s, &leader) || s.status.epoch != epoch {
                        return None;
                    }
                    if s.status.role == Role::Leader {
                        leaders.push(h.id.clone());
                    }
                }
                (leaders == [leader.clone()]).then_some((leader, epoch))
            },
        )
        .await;
        eprintln!("after the {label} outage: {leader} leads at epoch {epoch}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preempt_takes_leadership_back_and_fences_the_old_leader() {
    let zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h2 = spawn_head(
        &zk,
        dir.path(),
        "head_server_2",
        "6s",
        &["--startup-grace", "0s"],
    );
    let c = zk_client(&zk).await;
    let (_, e1) = wait_leader(
        &c,
        Duration::from_secs(20),
        |id, _| id == "head_server_2",
        "head_server_2 to lead",
    )
    .await;
    // The leader node can be visible a moment before the head has taken up its own win.
    wait_until(
        Duration::from_secs(5),
        "head_server_2 to say it leads",
        || async {
            head_status(h2.port)
                .await
                .filter(|s| s.status.role == Role::Leader && s.status.epoch == e1)
        },
    )
    .await;
    let ok = http()
        .post(format!(
            "http://127.0.0.1:{}/v1/admin/fenced-write",
            h2.port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let h1 = spawn_head(&zk, dir.path(), "head_server_1", "6s", &["--preempt"]);
    let (_, e2) = wait_leader(
        &c,
        Duration::from_secs(20),
        |id, _| id == "head_server_1",
        "head_server_1 to preempt",
    )
    .await;
    assert!(e2 > e1);
    let r = http()
        .post(format!(
            "http://127.0.0.1:{}/v1/admin/fenced-write",
            h2.port
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // A standby redirects leader-only calls to the leader, once it has seen the new leader.
    wait_until(
        Duration::from_secs(5),
        "head_server_2 to follow head_server_1",
        || async {
            head_status(h2.port)
                .await
                .filter(|s| s.status.role == Role::Standby && follows(s, "head_server_1"))
        },
    )
    .await;
    let r = http()
        .get(format!("http://127.0.0.1:{}/v1/cluster", h2.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(
        r.headers()["location"],
        format!("http://127.0.0.1:{}/v1/cluster", h1.port).as_str()
    );
    drop((h1, h2));
}

#[test]
fn interactive_mode_works_through_a_pipe() {
    use std::io::Write;
    let zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let head = spawn_head(
        &zk,
        dir.path(),
        "head_server_1",
        "6s",
        &["--startup-grace", "0s"],
    );
    let c = rt.block_on(zk_client(&zk));
    rt.block_on(wait_leader(
        &c,
        Duration::from_secs(20),
        |_, _| true,
        "a leader",
    ));

    let out = dir.path().join("interactive.out");
    let child = std::process::Command::new(monitor_bin())
        .args([
            "-i",
            "--zk-hosts",
            &zk.hosts(),
            "--interval",
            "200ms",
            "--timeout",
            "100ms",
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut p = Proc::adopt("interactive", child, out.clone());
    let script = "help\nfrobnicate\nregister head_server_9 127.0.0.1 1\nregister head_server_9\nregister head_server_9 127.0.0.1 1\n\
                  leader\nleader now\nunregister head_server_1\nreports\nunregister head_server_9\nstatus\nquit\n";
    let mut stdin = p.child_mut().stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    let status = p
        .wait_exit(Duration::from_secs(20))
        .expect("quit ends the monitor");
    drop(stdin);
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let expect = [
        "commands:",
        "error: unknown command \"frobnicate\"",
        "registered head_server_9 at 127.0.0.1:1",
        "error: usage: register <id> <host> <port>",
        "error: head_server_9 is already registered",
        "leader: head_server_1 at 127.0.0.1:",
        "error: leader takes no arguments",
        "error: head_server_1 registered itself",
        "unregistered head_server_9",
    ];
    let mut at = 0;
    for e in expect {
        let found = text[at..]
            .find(e)
            .unwrap_or_else(|| panic!("missing {e:?} (in order) in:\n{text}"));
        at += found + e.len();
    }
    assert!(!rt.block_on(zk_exists(&c, &format!("{ROOT}/head_servers/head_server_9"))));
    assert!(rt.block_on(zk_exists(&c, &format!("{ROOT}/head_servers/head_server_1"))));
    drop(head);
}

#[test]
fn bad_configuration_fails_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("head.toml");
    std::fs::write(&cfg, "server_id = \"head_server_1\"\nbogus_key = 1\n").unwrap();
    let bad_value = dir.path().join("monitor.toml");
    std::fs::write(&bad_value, "interval = \"0s\"\n").unwrap();
    /// (binary, arguments, environment, text the error must contain)
    type Case<'a> = (&'a Path, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            node_bin(),
            vec!["head", "--server-id", "h1", "--listen", "not-an-address"],
            vec![],
            "--listen",
        ),
        (
            node_bin(),
            vec!["head", "--listen", "127.0.0.1:0"],
            vec![],
            "setting `server_id` is required",
        ),
        (
            node_bin(),
            vec!["head", "--config", cfg.to_str().unwrap()],
            vec![],
            "unknown setting `bogus_key`",
        ),
        (
            node_bin(),
            vec!["head", "--server-id", "a/b"],
            vec![],
            "--server-id",
        ),
        (
            node_bin(),
            vec!["head", "--server-id", "h1", "--zk-hosts", "nohostport"],
            vec![],
            "--zk-hosts",
        ),
        (
            monitor_bin(),
            vec!["--interval", "0s"],
            vec![],
            "--interval",
        ),
        (
            monitor_bin(),
            vec!["--config", bad_value.to_str().unwrap()],
            vec![],
            "setting `interval`",
        ),
        (
            monitor_bin(),
            vec![],
            vec![("FILEGRID_FAILURE_THRESHOLD", "0")],
            "--failure-threshold",
        ),
        (
            monitor_bin(),
            vec!["--interval", "1s", "--timeout", "5s"],
            vec![],
            "setting `timeout`",
        ),
        (
            node_bin(),
            vec!["cluster", "--insecure", "--server-id", "c1"],
            vec![],
            "setting `data_dir` is required",
        ),
        (
            node_bin(),
            vec!["cluster", "--server-id", "c1", "--data-dir", "/tmp"],
            vec![],
            "setting `cluster_secret_file`: is required",
        ),
    ];
    for (bin, args, env, needle) in cases {
        let out = std::process::Command::new(bin)
            .args(&args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} should exit 2; stderr: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_stops_promptly_on_sigterm_even_without_zookeeper() {
    let mut zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut head = spawn_head(
        &zk,
        dir.path(),
        "head_server_1",
        "6s",
        &["--startup-grace", "0s"],
    );
    let mut monitor = spawn_monitor(&zk, dir.path(), "monitor_a", "500ms", "200ms");
    let data = dir.path().join("cs1");
    let cs_args: Vec<String> = [
        "cluster",
        "--insecure",
        "--server-id",
        "cluster_server_1",
        "--zk-hosts",
        &zk.hosts(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--data-dir",
        data.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut cluster = Proc::spawn("cluster_server_1", node_bin(), &cs_args, dir.path());
    let c = zk_client(&zk).await;
    wait_leader(&c, Duration::from_secs(20), |_, _| true, "a leader").await;
    wait_until(
        Duration::from_secs(20),
        "the cluster server to register",
        || async {
            zk_exists(&c, &format!("{ROOT}/cluster_servers/cluster_server_1"))
                .await
                .then_some(())
        },
    )
    .await;
    zk.stop();
    let stopping = Instant::now();
    head.proc.terminate();
    monitor.proc.terminate();
    cluster.terminate();
    for (name, p) in [
        ("head", &mut head.proc),
        ("monitor", &mut monitor.proc),
        ("cluster server", &mut cluster),
    ] {
        let status = p.wait_exit(Duration::from_secs(10));
        assert!(
            status.is_some(),
            "{name} did not stop within 10s of SIGTERM"
        );
    }
    eprintln!("all stopped {:?} after SIGTERM", stopping.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freshly_restarted_head_takes_over_without_waiting_for_its_startup_grace() {
    let zk = ZkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let h2 = spawn_head(
        &zk,
        dir.path(),
        "head_server_2",
        "6s",
        &["--startup-grace", "0s"],
    );
    let c = zk_client(&zk).await;
    wait_leader(
        &c,
        Duration::from_secs(20),
        |id, _| id == "head_server_2",
        "head_server_2 to lead",
    )
    .await;
    // head_server_1 (lower id) starts with a long grace and stands by: leadership is sticky.
    let h1 = spawn_head(
        &zk,
        dir.path(),
        "head_server_1",
        "6s",
        &["--startup-grace", "10s"],
    );
    wait_until(
        Duration::from_secs(10),
        "head_server_1 to stand by",
        || async {
            head_status(h1.port)
                .await
                .filter(|s| s.status.role == Role::Standby)
        },
    )
    .await;
    let sent = Instant::now();
    h2.proc.terminate();
    wait_leader(
        &c,
        Duration::from_secs(2),
        |id, _| id == "head_server_1",
        "head_server_1 to take over at once",
    )
    .await;
    assert!(sent.elapsed() < Duration::from_secs(2));
    drop(h1);
}

#[tokio::test]
async fn the_startup_grace_counts_from_registration_not_from_process_start() {
    let mut zk = ZkServer::start();
    // ZooKeeper is slow to come: head_server_2 runs longer than its grace before it can
    // register.
    zk.stop();
    let dir = tempfile::tempdir().unwrap();
    let _h2 = spawn_head(
        &zk,
        dir.path(),
        "head_server_2",
        "10s",
        &["--startup-grace", "4s"],
    );
    let process_started = Instant::now();
    while process_started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    zk.start_again();
    let c = zk_client(&zk).await;
    wait_until(
        Duration::from_secs(20),
        "head_server_2 to register",
        || async {
            zk_exists(&c, "/distributed_file_grid/head_servers/head_server_2")
                .await
                .then_some(())
        },
    )
    .await;
    // A lower id registers within head_server_2's grace (counted from its registration, not
    // from its start five seconds ago): it leads, after its own grace, well before
    // head_server_2 would give up waiting for it (a session timeout).
    let _h1 = spawn_head(
        &zk,
        dir.path(),
        "head_server_1",
        "10s",
        &["--startup-grace", "4s"],
    );
    wait_leader(
        &c,
        Duration::from_secs(30),
        |id, _| id == "head_server_1",
        "head_server_1 to lead",
    )
    .await;
}
