//! The trust boundary, attacked the way an outsider, a read-only client and a process without
//! the cluster secret would: real grids, real processes, real sockets.

use std::path::Path;
use std::time::Duration;

use filegrid_node::auth::peer::Signed;
use filegrid_node::auth::{ClusterSecret, PeerSigner};
use filegrid_proto::chunk::PutResponse;
use filegrid_proto::head::{LeaderView, ServerView};
use filegrid_proto::manifest::Entry;
use filegrid_proto::{ErrorBody, ErrorCode, headers};
use filegrid_testkit::{Grid, GridOptions, auth, wait_until_sync};
use rand::RngCore;

fn node_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_filegrid-node"))
}

fn client(token: Option<&str>) -> reqwest::blocking::Client {
    let mut h = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
    }
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(h)
        .build()
        .unwrap()
}

fn admin() -> reqwest::blocking::Client {
    client(Some(&auth::ADMIN.token()))
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

fn code(resp: reqwest::blocking::Response) -> (u16, ErrorCode) {
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().expect("a JSON error body");
    (status, body.code)
}

fn leader(base: &str) -> LeaderView {
    admin()
        .get(format!("{base}/v1/leader"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn secret(grid: &Grid) -> ClusterSecret {
    ClusterSecret::load(&grid.cluster_secret_file()).unwrap()
}

#[test]
fn clients_need_a_credential_with_the_role_for_each_call() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(30));
    let data = random(300_000);
    let r = admin()
        .put(format!("{base}/v1/files/sec/a"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    let anonymous = client(None);
    // Probes stay open; everything else needs a credential.
    assert_eq!(
        anonymous
            .get(format!("{base}/health"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let r = anonymous
        .get(format!("{base}/v1/files/sec/a"))
        .send()
        .unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(code(r), (401, ErrorCode::Unauthorized));
    let calls = [
        anonymous.get(format!("{base}/v1/files")),
        anonymous.get(format!("{base}/metrics")),
        anonymous.put(format!("{base}/v1/files/sec/evil")).body("x"),
        anonymous.delete(format!("{base}/v1/files/sec/a")),
        anonymous.post(format!("{base}/v1/cluster/cluster_server_1/decommission")),
        anonymous.post(format!("{base}/v1/cluster/cluster_server_1/recommission")),
    ];
    for call in calls {
        assert_eq!(code(call.send().unwrap()), (401, ErrorCode::Unauthorized));
    }
    // A wrong secret, a malformed header and an unknown key are all 401.
    for token in [
        format!("{}:wrong-secret-0123456789", auth::ADMIN.access_key),
        "no-colon".to_string(),
        format!("NOBODY:{}", auth::ADMIN.secret),
    ] {
        let r = client(Some(&token))
            .get(format!("{base}/v1/files/sec/a"))
            .send()
            .unwrap();
        assert_eq!(code(r), (401, ErrorCode::Unauthorized), "{token}");
    }
    // A reader reads and may do nothing else; a writer writes but administers nothing.
    let reader = client(Some(&auth::READER.token()));
    let r = reader.get(format!("{base}/v1/files/sec/a")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), data.as_slice());
    let r = reader
        .put(format!("{base}/v1/files/sec/b"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(code(r), (403, ErrorCode::Forbidden));
    let r = reader
        .delete(format!("{base}/v1/files/sec/a"))
        .send()
        .unwrap();
    assert_eq!(code(r), (403, ErrorCode::Forbidden));
    let writer = client(Some(&auth::WRITER.token()));
    let r = writer
        .put(format!("{base}/v1/files/sec/b"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = writer
        .post(format!("{base}/v1/cluster/cluster_server_1/decommission"))
        .send()
        .unwrap();
    assert_eq!(code(r), (403, ErrorCode::Forbidden));
    // Nothing the refused calls asked for happened.
    let servers: Vec<ServerView> = admin()
        .get(format!("{base}/v1/cluster"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        servers
            .iter()
            .all(|s| s.state == filegrid_proto::head::ServerState::Live)
    );
    assert_eq!(
        admin()
            .get(format!("{base}/v1/files/sec/evil"))
            .send()
            .unwrap()
            .status(),
        404
    );
    // Decommission is undone by recommission, both admin-only.
    let r = admin()
        .post(format!("{base}/v1/cluster/cluster_server_1/decommission"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = admin()
        .post(format!("{base}/v1/cluster/cluster_server_1/recommission"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let back: filegrid_proto::head::RecommissionAnswer = r.json().unwrap();
    assert!(back.was.is_some());
    let servers: Vec<ServerView> = admin()
        .get(format!("{base}/v1/cluster"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        servers
            .iter()
            .all(|s| s.state == filegrid_proto::head::ServerState::Live)
    );
    // Forged heartbeats (unsigned, or signed for another server) change nothing.
    let hb = serde_json::json!({"id": "cluster_server_1", "host": "127.0.0.1", "port": 1,
        "capacity_bytes": 1, "used_bytes": 1, "free_bytes": 0, "chunks": 0});
    let r = admin()
        .post(format!("{base}/v1/heartbeat"))
        .json(&hb)
        .send()
        .unwrap();
    assert_eq!(code(r), (401, ErrorCode::BadSignature));
    let body = serde_json::to_vec(&hb).unwrap();
    let digest = filegrid_node::auth::peer::body_digest(&body);
    let forged = PeerSigner::new("cluster_server_2", secret(&grid)).header(&Signed {
        method: "POST",
        path_and_query: "/v1/heartbeat",
        body_digest: Some(&digest),
        ..Signed::default()
    });
    let r = client(None)
        .post(format!("{base}/v1/heartbeat"))
        .header(headers::PEER_AUTH, forged)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(code(r), (403, ErrorCode::Forbidden));
    let r = admin()
        .put(format!("{base}/v1/files/sec/after"))
        .body(random(1000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "uploads still find free space");
}

#[test]
fn anonymous_reads_when_turned_on_and_never_writes() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            anonymous_read: true,
            ..GridOptions::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(30));
    let r = admin()
        .put(format!("{base}/v1/files/pub/a"))
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let anonymous = client(None);
    let r = anonymous
        .get(format!("{base}/v1/files/pub/a"))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "hello");
    let r = anonymous
        .put(format!("{base}/v1/files/pub/b"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(code(r), (403, ErrorCode::Forbidden));
}

#[test]
fn cluster_servers_obey_only_the_signed_leader_at_zookeepers_epoch() {
    let grid = Grid::start(node_bin(), GridOptions::default());
    let base = grid.leader_url(Duration::from_secs(30));
    let data = random(200_000);
    let r = admin()
        .put(format!("{base}/v1/files/sec/kept"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let chunk = grid.manifest("sec/kept").remove(0).0;
    let lead = leader(&base);
    let http = client(None);
    let server = grid.cluster_url(0);
    let chunk_path = format!("/v1/chunks/{chunk}");

    // Unsigned: a delete, an epoch of 2^64-1, a 300-hop pipeline, a replicate order.
    let r = http
        .delete(format!("{server}{chunk_path}"))
        .header(headers::EPOCH, lead.epoch)
        .send()
        .unwrap();
    assert_eq!(code(r), (401, ErrorCode::BadSignature));
    let r = http
        .put(format!("{server}/v1/chunks/poison-0"))
        .header(headers::EPOCH, u64::MAX)
        .body("x")
        .send()
        .unwrap();
    assert_eq!(code(r), (401, ErrorCode::BadSignature));
    let r = http
        .post(format!("{server}{chunk_path}/replicate"))
        .json(&serde_json::json!({"targets": ["127.0.0.1:1"], "epoch": lead.epoch}))
        .send()
        .unwrap();
    assert_eq!(code(r), (401, ErrorCode::BadSignature));

    // Signed with the secret, but not by the leader: no delete.
    let signed_delete = |signer: &str, epoch: u64| {
        let h = PeerSigner::new(signer, secret(&grid)).header(&Signed {
            method: "DELETE",
            path_and_query: &chunk_path,
            epoch: Some(epoch),
            ..Signed::default()
        });
        http.delete(format!("{server}{chunk_path}"))
            .header(headers::EPOCH, epoch)
            .header(headers::PEER_AUTH, h)
            .send()
            .unwrap()
    };
    assert_eq!(
        code(signed_delete("head_server_9", lead.epoch)),
        (403, ErrorCode::NotLeaderPeer)
    );
    assert_eq!(
        code(signed_delete("cluster_server_2", lead.epoch)),
        (403, ErrorCode::NotLeaderPeer)
    );
    // Nor a batch of deletions: unsigned, or signed by anyone but the leader.
    let batch =
        serde_json::to_vec(&serde_json::json!({"epoch": lead.epoch, "chunks": [chunk]})).unwrap();
    let signed_batch = |signer: Option<&str>| {
        let mut req = http
            .post(format!("{server}/v1/chunk-deletions"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(batch.clone());
        if let Some(signer) = signer {
            let digest = filegrid_node::auth::peer::body_digest(&batch);
            let h = PeerSigner::new(signer, secret(&grid)).header(&Signed {
                method: "POST",
                path_and_query: "/v1/chunk-deletions",
                body_digest: Some(&digest),
                ..Signed::default()
            });
            req = req.header(headers::PEER_AUTH, h);
        }
        req.send().unwrap()
    };
    assert_eq!(code(signed_batch(None)), (401, ErrorCode::BadSignature));
    assert_eq!(
        code(signed_batch(Some("head_server_9"))),
        (403, ErrorCode::NotLeaderPeer)
    );
    assert_eq!(
        code(signed_batch(Some("cluster_server_2"))),
        (403, ErrorCode::NotLeaderPeer)
    );
    // Even signed as the leader, an epoch ZooKeeper has not confirmed moves nothing.
    let put = |signer: &str, epoch: u64, pipeline: &str| {
        let h = PeerSigner::new(signer, secret(&grid)).header(&Signed {
            method: "PUT",
            path_and_query: "/v1/chunks/poison-0",
            epoch: Some(epoch),
            pipeline: (!pipeline.is_empty()).then_some(pipeline),
            content_length: Some(1),
            ..Signed::default()
        });
        let mut req = http
            .put(format!("{server}/v1/chunks/poison-0"))
            .header(headers::EPOCH, epoch)
            .header(headers::PEER_AUTH, h)
            .body("x");
        if !pipeline.is_empty() {
            req = req.header(headers::PIPELINE, pipeline);
        }
        req.send().unwrap()
    };
    assert_eq!(
        code(put(lead.server_id.as_str(), u64::MAX, "")),
        (409, ErrorCode::BadEpoch)
    );
    // A pipeline naming one server 300 times, or an unregistered one, is refused.
    let other = format!("127.0.0.1:{}", grid.cluster[1].port);
    let repeated = vec![other.as_str(); 300].join(",");
    assert_eq!(
        code(put(lead.server_id.as_str(), lead.epoch, &repeated)),
        (400, ErrorCode::BadPipeline)
    );
    assert_eq!(
        code(put(lead.server_id.as_str(), lead.epoch, "127.0.0.1:1")),
        (400, ErrorCode::BadPipeline)
    );
    // A signature is good once.
    let h = PeerSigner::new(lead.server_id.as_str(), secret(&grid)).header(&Signed {
        method: "GET",
        path_and_query: &chunk_path,
        ..Signed::default()
    });
    let get = || {
        http.get(format!("{server}{chunk_path}"))
            .header(headers::PEER_AUTH, &h)
            .send()
            .unwrap()
    };
    assert_eq!(get().status(), 200);
    assert_eq!(code(get()), (401, ErrorCode::BadSignature));

    // Nothing changed: the chunk is there, no poisoned chunk, and uploads still work.
    let r = admin()
        .get(format!("{base}/v1/files/sec/kept"))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().as_ref(), data.as_slice());
    assert!(!grid.chunk_file(0, "poison-0").exists());
    let r = admin()
        .put(format!("{base}/v1/files/sec/after"))
        .body(random(300_000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "the fence was not raised: {:?}", r.text());
}

/// A process registered as a cluster server that throws data away and answers that every
/// hop stored it.
async fn liar(listener: tokio::net::TcpListener) {
    use axum::routing::put;
    let app = axum::Router::new().route(
        "/v1/chunks/{id}",
        put(
            |axum::extract::Path(id): axum::extract::Path<String>,
             headers: axum::http::HeaderMap,
             body: axum::body::Bytes| async move {
                let me = headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut stored = vec![me];
                if let Some(p) = headers.get(headers::PIPELINE).and_then(|h| h.to_str().ok()) {
                    stored.extend(p.split(',').map(str::to_string));
                }
                let checksum = headers
                    .get(headers::CHECKSUM)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                (
                    axum::http::StatusCode::CREATED,
                    axum::Json(PutResponse {
                        id,
                        len: body.len() as u64,
                        checksum,
                        stored,
                        failed: Vec::new(),
                        acks: Vec::new(),
                    }),
                )
            },
        ),
    );
    let _ = axum::serve(listener, app).await;
}

/// Starts [`liar`] and registers it in the grid's ZooKeeper as `cluster_server_liar` (this
/// grid's ZooKeeper has no ACLs), then waits until the leader lists it. The runtime keeps the
/// liar and its ZooKeeper session alive.
fn start_liar(grid: &Grid, base: &str) -> (tokio::runtime::Runtime, zookeeper_client::Client) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(liar(listener));
    let zk = rt
        .block_on(zookeeper_client::Client::connect(&grid.zk.hosts()))
        .unwrap();
    let record = serde_json::json!({"v": 1, "id": "cluster_server_liar", "host": "127.0.0.1",
        "port": port, "capacity_bytes": 1u64 << 40, "used_bytes": 0, "started_at": 0});
    rt.block_on(zk.create(
        "/distributed_file_grid/cluster_servers/cluster_server_liar",
        &serde_json::to_vec(&record).unwrap(),
        &zookeeper_client::CreateMode::Ephemeral.with_acls(zookeeper_client::Acls::anyone_all()),
    ))
    .unwrap();
    wait_until_sync(Duration::from_secs(20), "the liar to be listed", || {
        let v: Vec<ServerView> = admin()
            .get(format!("{base}/v1/cluster"))
            .send()
            .ok()?
            .json()
            .ok()?;
        v.iter()
            .any(|s| s.id.as_str() == "cluster_server_liar")
            .then_some(())
    });
    (rt, zk)
}

#[test]
fn a_server_that_claims_copies_without_the_secret_is_not_counted() {
    let grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 4,
            ..GridOptions::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(30));
    let (rt, zk) = start_liar(&grid, &base);
    // Many uploads: the liar is placed in some pipelines, and never counted.
    for i in 0..12 {
        let data = random(300_000);
        let path = format!("liar/f{i}");
        let r = admin()
            .put(format!("{base}/v1/files/{path}"))
            .body(data.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text());
        let back = admin()
            .get(format!("{base}/v1/files/{path}"))
            .send()
            .unwrap();
        assert_eq!(back.bytes().unwrap().as_ref(), data.as_slice(), "{path}");
        let manifest = rt.block_on(zk.get_data(&format!("/distributed_file_grid/files/{path}")));
        let (raw, _) = manifest.unwrap();
        let entry: Entry = serde_json::from_slice(&raw).unwrap();
        for c in entry.file.unwrap().chunks {
            assert!(
                c.replicas
                    .iter()
                    .all(|r| r.as_str() != "cluster_server_liar"),
                "{path}: the liar was counted as a replica"
            );
        }
    }
}

/// Repair, like an upload, counts a copy only with the target's own signed acknowledgement:
/// a copy the liar claims to have stored never enters a manifest.
#[test]
fn repair_does_not_count_copies_a_target_claims_without_its_acknowledgement() {
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            cluster_servers: 3,
            session_timeout: "2s".into(),
            dead_after: "2s".into(),
            ..GridOptions::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(30));
    let data = random(300_000);
    let r = admin()
        .put(format!("{base}/v1/files/liar/repaired"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text());

    // Kept alive to the end: the liar and its registration.
    let (_rt, _zk) = start_liar(&grid, &base);

    // One of the three real servers dies: the only server left to copy to is the liar.
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    grid.cluster[0].proc.kill9();
    // A pass after the death that planned copies: under-replicated chunks it found.
    let pass = wait_until_sync(Duration::from_secs(60), "a pass after the death", || {
        let r: filegrid_proto::head::RepairReport = admin()
            .get(format!("{base}/v1/repair"))
            .send()
            .ok()?
            .json()
            .ok()?;
        (r.finished_at > killed_at + 2_000 && !r.in_progress && r.under_replicated > 0).then_some(r)
    });
    assert_eq!(
        pass.copies_made, 0,
        "the liar's claim was counted: {pass:?}"
    );
    let log = grid.heads[0].proc.log();
    assert!(
        log.contains("answered stored without a valid acknowledgement"),
        "the repair never tried the liar"
    );
    let replicas = grid.manifest("liar/repaired");
    for (chunk, r) in &replicas {
        assert!(
            !r.iter().any(|s| s == "cluster_server_liar"),
            "{chunk}: the liar entered the manifest: {r:?}"
        );
        assert!(r.len() >= 2, "{chunk}: replicas lost: {r:?}");
    }
    let back = admin()
        .get(format!("{base}/v1/files/liar/repaired"))
        .send()
        .unwrap();
    assert_eq!(back.bytes().unwrap().as_ref(), data.as_slice());
}
