//! The reconcile loop against a mocked API server (tower-test) and a fake head, asserting
//! the exact calls, in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use filegrid_operator::crd::{FileGrid, FileGridStatus};
use filegrid_operator::head_api::{
    ClusterServer, HeadAccess, HeadApi, HeadApiError, Leader, ServerState,
};
use filegrid_operator::metrics::Metrics;
use filegrid_operator::reconciler::{
    BUSY_REQUEUE, Context, STEADY_REQUEUE, backoff, error_policy, reconcile,
};
use filegrid_operator::warnings::Warnings;
use filegrid_proto::ServerId;
use filegrid_proto::head::RepairReport;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;
type Marks = Arc<Mutex<std::collections::HashMap<String, filegrid_operator::rollout::Mark>>>;

/// A head whose answers the test sets; every call is appended to the shared log, and the
/// access (credential, CA) it was made with to `accesses`.
struct FakeHead {
    log: Log,
    accesses: Arc<Mutex<Vec<HeadAccess>>>,
    leader: Option<Leader>,
    servers: Vec<ClusterServer>,
    repair: Option<RepairReport>,
}

impl FakeHead {
    fn record(&self, access: &HeadAccess, call: String) {
        self.log.lock().unwrap().push(call);
        self.accesses.lock().unwrap().push(access.clone());
    }
}

impl HeadApi for FakeHead {
    fn leader<'a>(
        &'a self,
        access: &'a HeadAccess,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Leader, HeadApiError>> {
        self.record(access, format!("head GET {base}/v1/leader"));
        Box::pin(async move { self.leader.clone().ok_or(HeadApiError::NoLeader) })
    }
    fn cluster_servers<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<Vec<ClusterServer>, HeadApiError>> {
        self.record(access, format!("head GET {}/v1/cluster", leader.host));
        Box::pin(async move { Ok(self.servers.clone()) })
    }
    fn decommission<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>> {
        self.record(
            access,
            format!("head POST {}/v1/cluster/{id}/decommission", leader.host),
        );
        Box::pin(async { Ok(()) })
    }
    fn repair<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<RepairReport, HeadApiError>> {
        self.record(access, format!("head GET {}/v1/repair", leader.host));
        Box::pin(async move { self.repair.clone().ok_or(HeadApiError::NoLeader) })
    }
    fn recommission<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>> {
        self.record(
            access,
            format!("head POST {}/v1/cluster/{id}/recommission", leader.host),
        );
        Box::pin(async { Ok(()) })
    }
}

fn leader() -> Leader {
    Leader {
        server_id: ServerId::new("demo-head-0").unwrap(),
        host: "10.0.0.5".into(),
        api_port: 9669,
        epoch: 4,
        elected_at: 1_767_225_600_000,
        tls: false,
        s3_port: None,
    }
}

fn server(id: &str, state: ServerState) -> ClusterServer {
    ClusterServer {
        id: ServerId::new(id).unwrap(),
        host: format!("{id}.demo-cluster"),
        port: 9700,
        zone: None,
        capacity_bytes: 1 << 30,
        used_bytes: 0,
        state,
        chunks: 0,
    }
}

/// How the mock API server answers one expected request.
enum Reply {
    /// Server-side apply: the body back, plus a fully rolled-out status for workloads.
    Applied,
    Json(u16, Value),
    /// The request body back, with these fields added (what a real server returns).
    EchoWith(Value),
}

struct Expect {
    method: Method,
    path: String,
    reply: Reply,
}

fn expect(method: Method, path: &str, reply: Reply) -> Expect {
    Expect {
        method,
        path: path.to_string(),
        reply,
    }
}

const NS: &str = "/api/v1/namespaces/team-a";
const APPS: &str = "/apis/apps/v1/namespaces/team-a";
const POLICY: &str = "/apis/policy/v1/namespaces/team-a";
const NET: &str = "/apis/networking.k8s.io/v1/namespaces/team-a";

/// Secrets already stored, by name (as the API server returns them).
type Stored = BTreeMap<String, Value>;

/// The names of a secured grid's Secrets, in the order the operator handles them.
fn secret_names(grid: &str, monitor: bool, generated_zk: bool) -> Vec<String> {
    let mut names = vec![format!("{grid}-cluster-secret"), format!("{grid}-admin")];
    if generated_zk {
        names.push(format!("{grid}-zookeeper"));
    }
    names.push(format!("{grid}-ca"));
    names.push(format!("{grid}-head-tls"));
    names.push(format!("{grid}-cluster-tls"));
    if monitor {
        names.push(format!("{grid}-monitor-tls"));
    }
    names
}

/// Reading each Secret: stored ones are answered and left alone, missing ones are created.
fn secrets_script_in(ns: &str, names: &[String], stored: &Stored) -> Vec<Expect> {
    let mut s = vec![namespace_lookup(ns)];
    for name in names {
        let path = format!("{ns}/secrets/{name}");
        match stored.get(name) {
            Some(secret) => s.push(expect(Method::GET, &path, Reply::Json(200, secret.clone()))),
            None => {
                s.push(expect(Method::GET, &path, not_found()));
                s.push(apply(&path));
            }
        }
    }
    s
}

/// The check that the grid's namespace is not being deleted (`ns` is its API path).
fn namespace_lookup(ns: &str) -> Expect {
    let name = ns.rsplit('/').next().unwrap();
    expect(
        Method::GET,
        ns,
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {"phase": "Active"}}),
        ),
    )
}

fn secrets_script(stored: &Stored, monitor: bool) -> Vec<Expect> {
    secrets_script_in(NS, &secret_names("demo", monitor, true), stored)
}

/// The Secrets a run applied, by name.
fn applied_secrets(bodies: &[Value]) -> Stored {
    bodies
        .iter()
        .filter(|b| b["kind"] == "Secret")
        .map(|b| {
            (
                b["metadata"]["name"].as_str().unwrap().to_string(),
                b.clone(),
            )
        })
        .collect()
}

fn secret_text(secret: &Value, key: &str) -> String {
    use base64::Engine;
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

fn apply(kind_path: &str) -> Expect {
    expect(Method::PATCH, kind_path, Reply::Applied)
}

fn empty_list() -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []}),
    )
}

fn not_found() -> Reply {
    Reply::Json(
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// Add the status a finished rollout reports, sized from the applied spec.
fn rolled_out(mut obj: Value) -> Value {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    obj["metadata"]["generation"] = json!(1);
    let n = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    match kind.as_str() {
        "StatefulSet" => {
            obj["status"] = json!({"replicas": n, "readyReplicas": n, "updatedReplicas": n, "observedGeneration": 1,
                "currentRevision": "r1", "updateRevision": "r1"})
        }
        "Deployment" => {
            obj["status"] = json!({"replicas": n, "readyReplicas": n, "updatedReplicas": n, "observedGeneration": 1})
        }
        _ => {}
    }
    obj
}

/// Serve `script` in order, logging each call; any other call fails the test. Returns the
/// bodies of the requests, by index.
fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    script: Vec<Expect>,
    log: Log,
) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut bodies = vec![];
        for (i, e) in script.into_iter().enumerate() {
            let req = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
                .await
                .unwrap_or_else(|_| {
                    panic!("call {i} never came: expected {} {}", e.method, e.path)
                });
            let (req, send) = req.unwrap_or_else(|| {
                panic!("client dropped before call {i}: {} {}", e.method, e.path)
            });
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or_default().to_string();
            log.lock()
                .unwrap()
                .push(format!("kube {} {path}", req.method()));
            assert_eq!(
                (req.method().clone(), path.as_str()),
                (e.method.clone(), e.path.as_str()),
                "call {i}"
            );
            if req.method() == Method::PATCH
                && !path.ends_with("/status")
                && query.contains("fieldManager")
            {
                assert!(
                    query.contains("fieldManager=filegrid-operator")
                        && query.contains("force=true"),
                    "{query}"
                );
            }
            if req.method() == Method::GET
                && e.path.ends_with('s')
                && !e.path.contains("monitoring")
                && !e.path.contains("/secrets/")
            {
                assert!(
                    query.contains("labelSelector="),
                    "list without selector: {query}"
                );
            }
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let (status, reply) = match e.reply {
                Reply::Applied => (200, rolled_out(body.clone())),
                Reply::Json(s, v) => (s, v),
                Reply::EchoWith(extra) => {
                    let mut obj = body.clone();
                    for (k, v) in extra.as_object().unwrap() {
                        obj[k] = v.clone();
                    }
                    (200, obj)
                }
            };
            bodies.push(body);
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
        // Nothing else may be called: the next request must be the client going away.
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_secs(1), handle.next_request()).await
        {
            panic!("unexpected call {} {}", req.method(), req.uri());
        }
        bodies
    })
}

fn fixture(name: &str) -> FileGrid {
    let path = format!("{}/tests/fixtures/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Run {
    action: Result<Action, String>,
    bodies: Vec<Value>,
    log: Vec<String>,
    metrics: Arc<Metrics>,
    /// How each head API call authenticated.
    accesses: Vec<HeadAccess>,
}

async fn run(
    fg: FileGrid,
    script: Vec<Expect>,
    leader: Option<Leader>,
    servers: Vec<ClusterServer>,
) -> Run {
    run_with(fg, script, leader, servers, None).await
}

/// [`run`], remembering the warnings already published in `warnings` (as one operator would
/// across reconciles).
async fn run_with(
    fg: FileGrid,
    script: Vec<Expect>,
    leader: Option<Leader>,
    servers: Vec<ClusterServer>,
    warnings: Option<Arc<Mutex<Warnings>>>,
) -> Run {
    run_inner(fg, script, leader, servers, warnings, None).await
}

/// [`run`] with a head that reports `repair` at `GET /v1/repair`.
async fn run_reporting(
    fg: FileGrid,
    script: Vec<Expect>,
    servers: Vec<ClusterServer>,
    repair: RepairReport,
) -> Run {
    run_inner(fg, script, Some(leader()), servers, None, Some(repair)).await
}

async fn run_inner(
    fg: FileGrid,
    script: Vec<Expect>,
    leader: Option<Leader>,
    servers: Vec<ClusterServer>,
    warnings: Option<Arc<Mutex<Warnings>>>,
    repair: Option<RepairReport>,
) -> Run {
    run_full(fg, script, leader, servers, warnings, repair, None).await
}

/// [`run_inner`], remembering the rollout's marks in `marks` (as one operator would across
/// reconciles).
async fn run_full(
    fg: FileGrid,
    script: Vec<Expect>,
    leader: Option<Leader>,
    servers: Vec<ClusterServer>,
    warnings: Option<Arc<Mutex<Warnings>>>,
    repair: Option<RepairReport>,
    marks: Option<Marks>,
) -> Run {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let server = serve(handle, script, log.clone());
    let metrics = Arc::new(Metrics::new().unwrap());
    let accesses: Arc<Mutex<Vec<HeadAccess>>> = Arc::default();
    let head = Arc::new(FakeHead {
        log: log.clone(),
        accesses: accesses.clone(),
        leader,
        servers,
        repair,
    });
    let mut ctx = Context::new(Client::new(svc, "default"), head, metrics.clone());
    if let Some(w) = warnings {
        ctx.warnings = w;
    }
    if let Some(m) = marks {
        ctx.marks = m;
    }
    let ctx = Arc::new(ctx);
    let fg = Arc::new(fg);
    let action = tokio::time::timeout(Duration::from_secs(10), reconcile(fg.clone(), ctx.clone()))
        .await
        .unwrap();
    let action = match action {
        Ok(a) => Ok(a),
        Err(e) => {
            let retry = error_policy(fg, &e, ctx.clone());
            assert_eq!(retry, Action::requeue(backoff(1)));
            Err(e.to_string())
        }
    };
    drop(ctx);
    let bodies = server.await.unwrap();
    let log = log.lock().unwrap().clone();
    let accesses = accesses.lock().unwrap().clone();
    Run {
        action,
        bodies,
        log,
        metrics,
        accesses,
    }
}

/// Calls of a full reconcile of the `demo` grid (secured, its Secrets made on the way), up to
/// (not including) the leader lookup.
fn children_script(existing_cluster: Reply, monitor: bool) -> Vec<Expect> {
    let mut s = secrets_script(&Stored::new(), monitor);
    s.extend(children_after_secrets(existing_cluster, monitor));
    s
}

/// The same, after the Secrets.
fn children_after_secrets(existing_cluster: Reply, monitor: bool) -> Vec<Expect> {
    let mut s = vec![
        apply(&format!("{NS}/configmaps/demo-config")),
        apply(&format!("{NS}/services/demo-head-headless")),
        apply(&format!("{NS}/services/demo-head")),
        apply(&format!("{NS}/services/demo-cluster-headless")),
    ];
    if monitor {
        s.push(apply(&format!("{NS}/services/demo-monitor")));
    }
    s.push(head_lookup(APPS, "demo-head", not_found()));
    s.push(apply(&format!("{APPS}/statefulsets/demo-head")));
    s.push(expect(
        Method::GET,
        &format!("{APPS}/statefulsets/demo-cluster"),
        existing_cluster,
    ));
    s
}

/// The read of the head StatefulSet before it is applied (is it `OnDelete` yet?).
fn head_lookup(apps: &str, name: &str, reply: Reply) -> Expect {
    expect(Method::GET, &format!("{apps}/statefulsets/{name}"), reply)
}

fn after_cluster_script(monitor: bool) -> Vec<Expect> {
    let mut s = vec![apply(&format!("{APPS}/statefulsets/demo-cluster"))];
    if monitor {
        s.push(apply(&format!("{APPS}/deployments/demo-monitor")));
    }
    s.extend([
        apply(&format!("{POLICY}/poddisruptionbudgets/demo-head")),
        apply(&format!("{POLICY}/poddisruptionbudgets/demo-cluster")),
        apply(&format!("{NET}/networkpolicies/demo")),
        expect(Method::GET, "/apis/monitoring.coreos.com/v1", not_found()),
    ]);
    s
}

fn prune_script(services: Reply, deployments: Reply) -> Vec<Expect> {
    vec![
        expect(Method::GET, &format!("{NS}/configmaps"), empty_list()),
        expect(Method::GET, &format!("{NS}/services"), services),
        expect(Method::GET, &format!("{APPS}/statefulsets"), empty_list()),
        expect(Method::GET, &format!("{APPS}/deployments"), deployments),
        expect(
            Method::GET,
            &format!("{POLICY}/poddisruptionbudgets"),
            empty_list(),
        ),
        expect(Method::GET, &format!("{NET}/networkpolicies"), empty_list()),
    ]
}

fn status_patch() -> Expect {
    let stored = json!({"metadata": {"name": "demo", "namespace": "team-a"}, "spec": {"zookeeper": {"connect": "zookeeper:2181"}}});
    expect(
        Method::PATCH,
        "/apis/filegrid.io/v1alpha1/namespaces/team-a/filegrids/demo/status",
        Reply::EchoWith(stored),
    )
}

fn existing_cluster(replicas: i64) -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "demo-cluster", "namespace": "team-a"},
        "spec": {"replicas": replicas, "selector": {}, "serviceName": "demo-cluster-headless", "template": {}}}),
    )
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
}

fn full_script(existing: Reply, with_status_patch: bool) -> Vec<Expect> {
    full_script_stored(&Stored::new(), existing, with_status_patch)
}

fn full_script_stored(stored: &Stored, existing: Reply, with_status_patch: bool) -> Vec<Expect> {
    let mut s = secrets_script(stored, true);
    s.extend(children_after_secrets(existing, true));
    s.extend(after_cluster_script(true));
    s.extend(prune_script(empty_list(), empty_list()));
    if with_status_patch {
        s.push(status_patch());
    }
    s
}

#[tokio::test]
async fn first_create_applies_every_child_then_reports_progress() {
    let r = run(
        fixture("minimal"),
        full_script(not_found(), true),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.action, Ok(Action::requeue(BUSY_REQUEUE)));
    // The applied objects are the builders' output, with owner references.
    let config = r.bodies.iter().find(|b| b["kind"] == "ConfigMap").unwrap();
    assert!(
        config["data"]["head.toml"]
            .as_str()
            .unwrap()
            .contains("zk_root = \"/filegrid/team-a/demo\"")
    );
    let cluster = r
        .bodies
        .iter()
        .find(|b| b["metadata"]["name"] == "demo-cluster" && b["kind"] == "StatefulSet")
        .unwrap();
    assert_eq!(cluster["spec"]["replicas"], 3);
    assert_eq!(
        cluster["metadata"]["ownerReferences"][0]["uid"],
        "6f1c2b7e-0000-4000-8000-000000000001"
    );
    // No leader yet: not available.
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(r.bodies.last().unwrap()["kind"], "FileGrid");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(condition(status, "Available")["status"], "False");
    assert_eq!(condition(status, "Available")["reason"], "NoLeader");
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(status["readyHeads"], 2);
    assert!(
        r.log
            .iter()
            .any(|l| l == "head GET https://demo-head.team-a.svc:9669/v1/leader"),
        "{:?}",
        r.log
    );
    assert_eq!(r.metrics.reconciliations.get(), 1);
}

#[tokio::test]
async fn steady_state_writes_no_status_and_requeues_slowly() {
    // First pass: everything ready and a leader → status patch with Available=True.
    let first = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    assert_eq!(first.action, Ok(Action::requeue(STEADY_REQUEUE)));
    let status = first.bodies.last().unwrap()["status"].clone();
    assert_eq!(condition(&status, "Available")["status"], "True");
    assert_eq!(condition(&status, "Progressing")["status"], "False");
    assert_eq!(status["leader"], "demo-head-0");
    assert_eq!(status["epoch"], 4);
    assert_eq!(status["readyClusterServers"], 3);

    // Second pass with that status and those Secrets stored: the same applies, but no
    // status write and no Secret write.
    let mut fg = fixture("minimal");
    fg.status = Some(serde_json::from_value::<FileGridStatus>(status).unwrap());
    let second = run(
        fg,
        full_script_stored(&applied_secrets(&first.bodies), existing_cluster(3), false),
        Some(leader()),
        vec![],
    )
    .await;
    assert_eq!(second.action, Ok(Action::requeue(STEADY_REQUEUE)));
    assert!(
        !second.log.iter().any(|l| l.ends_with("/status")),
        "{:?}",
        second.log
    );
}

#[tokio::test]
async fn children_that_no_longer_belong_are_deleted_by_label_and_owner() {
    let mut fg = fixture("minimal");
    fg.spec.monitor.enabled = false;
    let owned = |kind: &str, api: &str, name: &str, uid: &str| {
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "team-a",
            "ownerReferences": [{"apiVersion": "filegrid.io/v1alpha1", "kind": "FileGrid", "name": "demo", "uid": uid}]}})
    };
    let uid = "6f1c2b7e-0000-4000-8000-000000000001";
    let services = Reply::Json(
        200,
        json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {}, "items": [
            owned("Service", "v1", "demo-head", uid),
            owned("Service", "v1", "demo-monitor", uid),
            // Same labels but another owner: never touched.
            owned("Service", "v1", "demo-foreign", "someone-else"),
        ]}),
    );
    let deployments = Reply::Json(
        200,
        json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": [
        owned("Deployment", "apps/v1", "demo-monitor", uid)]}),
    );
    let mut script = children_script(existing_cluster(3), false);
    script.extend(after_cluster_script(false));
    let mut prune = prune_script(services, deployments);
    let deleted = Reply::Json(
        200,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    );
    prune.insert(
        2,
        expect(
            Method::DELETE,
            &format!("{NS}/services/demo-monitor"),
            deleted,
        ),
    );
    let deleted = Reply::Json(
        200,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    );
    prune.insert(
        5,
        expect(
            Method::DELETE,
            &format!("{APPS}/deployments/demo-monitor"),
            deleted,
        ),
    );
    script.extend(prune);
    script.push(status_patch());
    let r = run(fg, script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
}

#[tokio::test]
async fn scale_down_decommissions_first_and_shrinks_only_when_drained() {
    // Cluster runs 4 servers; the spec asks for 3.
    let mut script = children_script(existing_cluster(4), true);
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let servers = vec![
        server("demo-cluster-0", ServerState::Live),
        server("demo-cluster-3", ServerState::Live),
    ];
    let r = run(fixture("minimal"), script, Some(leader()), servers).await;
    assert_eq!(r.action, Ok(Action::requeue(BUSY_REQUEUE)));
    let decommission = r
        .log
        .iter()
        .position(|l| l == "head POST 10.0.0.5/v1/cluster/demo-cluster-3/decommission")
        .unwrap();
    let sts = r
        .log
        .iter()
        .position(|l| l == &format!("kube PATCH {APPS}/statefulsets/demo-cluster"))
        .unwrap();
    assert!(decommission < sts, "{:?}", r.log);
    let applied = r
        .bodies
        .iter()
        .find(|b| b["kind"] == "StatefulSet" && b["metadata"]["name"] == "demo-cluster")
        .unwrap();
    assert_eq!(
        applied["spec"]["replicas"], 4,
        "must not shrink before the drain"
    );
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(status["decommissioning"], json!(["demo-cluster-3"]));
    assert_eq!(
        condition(status, "Progressing")["reason"],
        "Decommissioning"
    );
    assert_eq!(
        r.log.iter().filter(|l| l.contains("decommission")).count(),
        1,
        "only the leaving server"
    );

    // Still draining: no second decommission call, still 4.
    let mut script = children_script(existing_cluster(4), true);
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(
        fixture("minimal"),
        script,
        Some(leader()),
        vec![server("demo-cluster-3", ServerState::Draining)],
    )
    .await;
    assert!(
        !r.log.iter().any(|l| l.contains("decommission")),
        "{:?}",
        r.log
    );
    let applied = r
        .bodies
        .iter()
        .find(|b| b["kind"] == "StatefulSet" && b["metadata"]["name"] == "demo-cluster")
        .unwrap();
    assert_eq!(applied["spec"]["replicas"], 4);

    // Drained: the StatefulSet shrinks to 3, and the drained server's volume is deleted
    // (a scale-down itself deletes none: claim retention Retain).
    let mut script = children_script(existing_cluster(4), true);
    script.push(claims_list(&[0, 1, 2, 3]));
    script.push(claim_delete(3));
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(
        fixture("minimal"),
        script,
        Some(leader()),
        vec![server("demo-cluster-3", ServerState::Drained)],
    )
    .await;
    let applied = cluster_sts(&r.bodies);
    assert_eq!(applied["spec"]["replicas"], 3);
    assert_eq!(
        applied["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
        "Retain"
    );
    assert_eq!(applied["metadata"]["annotations"][REPLICAS], "3");
    assert_eq!(
        applied["metadata"]["annotations"][CLAIMS], "3",
        "no claim left"
    );
    assert_eq!(
        r.bodies.last().unwrap()["status"].get("decommissioning"),
        None
    );
}

const REPLICAS: &str = "filegrid.io/cluster-replicas";
const CLAIMS: &str = "filegrid.io/cluster-claims";

/// The cluster StatefulSet as the operator left it: `replicas` now, and its annotations.
fn cluster_at(replicas: i64, annotations: Value) -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "demo-cluster", "namespace": "team-a", "annotations": annotations},
        "spec": {"replicas": replicas, "selector": {}, "serviceName": "demo-cluster-headless", "template": {}}}),
    )
}

/// The cluster's volume claims, listed by label.
fn claims_list(ordinals: &[i32]) -> Expect {
    let items: Vec<Value> = ordinals
        .iter()
        .map(|n| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": format!("data-demo-cluster-{n}"), "namespace": "team-a"}})
        })
        .collect();
    expect(
        Method::GET,
        &format!("{NS}/persistentvolumeclaims"),
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaimList", "metadata": {}, "items": items}),
        ),
    )
}

fn claim_delete(ordinal: i32) -> Expect {
    expect(
        Method::DELETE,
        &format!("{NS}/persistentvolumeclaims/data-demo-cluster-{ordinal}"),
        Reply::Json(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
    )
}

fn cluster_sts(bodies: &[Value]) -> &Value {
    bodies
        .iter()
        .find(|b| b["kind"] == "StatefulSet" && b["metadata"]["name"] == "demo-cluster")
        .unwrap()
}

#[tokio::test]
async fn a_scale_down_by_hand_is_restored_without_a_leader_and_keeps_every_volume() {
    // The operator applied 4; someone ran `kubectl scale --replicas=2`.
    let mut script = children_script(cluster_at(2, json!({ REPLICAS: "4" })), true);
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let mut fg = fixture("minimal");
    fg.spec.cluster.replicas = 4;
    let r = run(fg, script, None, vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let applied = cluster_sts(&r.bodies);
    assert_eq!(applied["spec"]["replicas"], 4, "restored");
    assert_eq!(
        applied["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"], "Retain",
        "the removed pods' volumes are kept for their return"
    );
    assert!(
        !r.log
            .iter()
            .any(|l| l.contains("DELETE") || l.contains("decommission")),
        "{:?}",
        r.log
    );
}

#[tokio::test]
async fn a_scale_up_by_hand_is_restored_and_the_extra_volume_goes_once_drained() {
    // The operator applied 3; someone scaled to 5. Without a leader: restored to 3 at once
    // (not read as a scale-down that needs one), the extra claims kept and remembered.
    let by_hand = || cluster_at(5, json!({ REPLICAS: "3" }));
    let mut script = children_script(by_hand(), true);
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(fixture("minimal"), script, None, vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let applied = cluster_sts(&r.bodies);
    assert_eq!(applied["spec"]["replicas"], 3);
    assert_eq!(applied["metadata"]["annotations"][CLAIMS], "5");

    // With a leader: ordinal 3 joined the grid (live), ordinal 4 never did. Ordinal 4's
    // volume goes; ordinal 3 is drained first and its volume kept meanwhile.
    let remembered = || cluster_at(3, json!({ REPLICAS: "3", CLAIMS: "5" }));
    let mut script = children_script(remembered(), true);
    script.push(claims_list(&[0, 1, 2, 3, 4]));
    script.push(claim_delete(4));
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(
        fixture("minimal"),
        script,
        Some(leader()),
        vec![
            server("demo-cluster-0", ServerState::Live),
            server("demo-cluster-3", ServerState::Live),
        ],
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert!(
        r.log
            .contains(&"head POST 10.0.0.5/v1/cluster/demo-cluster-3/decommission".to_string()),
        "{:?}",
        r.log
    );
    let applied = cluster_sts(&r.bodies);
    assert_eq!(applied["spec"]["replicas"], 3);
    assert_eq!(
        applied["metadata"]["annotations"][CLAIMS], "5",
        "ordinal 3's claim is left"
    );
    assert_eq!(
        r.bodies.last().unwrap()["status"]["decommissioning"],
        json!(["demo-cluster-3"])
    );

    // Drained: its volume goes too, and nothing is left to look at.
    let mut script = children_script(remembered(), true);
    script.push(claims_list(&[0, 1, 2, 3]));
    script.push(claim_delete(3));
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(
        fixture("minimal"),
        script,
        Some(leader()),
        vec![server("demo-cluster-3", ServerState::Drained)],
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert_eq!(
        cluster_sts(&r.bodies)["metadata"]["annotations"][CLAIMS],
        "3"
    );
}

#[tokio::test]
async fn scale_down_without_a_leader_changes_nothing_and_retries() {
    let script = children_script(existing_cluster(4), true);
    let mut script = script;
    script.push(status_patch());
    let r = run(fixture("minimal"), script, None, vec![]).await;
    assert_eq!(
        r.action,
        Err("head API: no leader head elected".to_string())
    );
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "Degraded")["reason"], "ReconcileError");
    assert!(
        !r.log
            .iter()
            .any(|l| l == &format!("kube PATCH {APPS}/statefulsets/demo-cluster"))
    );
    assert_eq!(r.metrics.failures.with_label_values(&["head_api"]).get(), 1);
}

#[tokio::test]
async fn invalid_resource_gets_an_event_and_degraded_once_and_is_not_retried() {
    // replicationFactor 3 with 2 cluster servers (the CEL rule normally stops this): the
    // operator refuses to build, and so never shrinks below the replication factor.
    let mut fg = fixture("minimal");
    fg.spec.cluster.replicas = 2;
    let script = vec![
        expect(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/team-a/events",
            Reply::EchoWith(json!({})),
        ),
        status_patch(),
    ];
    let r = run(fg.clone(), script, Some(leader()), vec![]).await;
    assert_eq!(r.action, Ok(Action::await_change()));
    let event = &r.bodies[0];
    assert_eq!(event["reason"], "InvalidSpec");
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("spec.cluster.replicas"),
        "{event}"
    );
    let status = r.bodies[1]["status"].clone();
    assert_eq!(condition(&status, "Degraded")["status"], "True");
    assert_eq!(condition(&status, "Degraded")["reason"], "InvalidSpec");
    assert!(
        r.log.iter().all(|l| !l.contains("statefulsets")),
        "{:?}",
        r.log
    );

    // Reconciled again (e.g. after a resync) with that status: no event, no write, no retry.
    fg.status = Some(serde_json::from_value(status).unwrap());
    let r = run(fg, vec![], Some(leader()), vec![]).await;
    assert_eq!(r.action, Ok(Action::await_change()));
    assert!(r.log.is_empty(), "{:?}", r.log);
}

#[tokio::test]
async fn api_errors_requeue_with_backoff_and_count_by_kind() {
    let mut script = secrets_script(&Stored::new(), true);
    script.extend([
        expect(
            Method::PATCH,
            &format!("{NS}/configmaps/demo-config"),
            Reply::Json(
                500,
                json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "message": "etcd unavailable", "reason": "InternalError", "code": 500}),
            ),
        ),
        status_patch(),
    ]);
    let r = run(fixture("minimal"), script, None, vec![]).await;
    assert!(r.action.unwrap_err().contains("etcd unavailable"));
    assert_eq!(r.metrics.failures.with_label_values(&["kube"]).get(), 1);
    assert_eq!(backoff(1), Duration::from_secs(5));
    assert_eq!(backoff(2), Duration::from_secs(10));
    assert_eq!(backoff(20), Duration::from_secs(300));
}

#[tokio::test]
async fn zones_and_service_monitor_grid_annotates_scheduled_pods_and_applies_the_monitor() {
    let ns = "/api/v1/namespaces/storage";
    let apps = "/apis/apps/v1/namespaces/storage";
    let policy = "/apis/policy/v1/namespaces/storage";
    let sm = "/apis/monitoring.coreos.com/v1/namespaces/storage/servicemonitors";
    let net = "/apis/networking.k8s.io/v1/namespaces/storage";
    let pod = |name: &str, node: Option<&str>, zone: Option<&str>| {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "storage"}, "spec": {"containers": []}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        if let Some(z) = zone {
            p["metadata"]["annotations"] = json!({"filegrid.io/zone": z});
        }
        p
    };
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        pod("files-cluster-0", Some("n1"), None),
        pod("files-cluster-1", Some("n2"), Some("eu-1b")),
        pod("files-cluster-2", None, None),
    ]});
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "eu-1a"}}});
    let resources = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1", "resources": [
        {"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true, "kind": "ServiceMonitor",
         "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]});
    let sts = Reply::Json(
        200,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "files-cluster", "namespace": "storage"},
        "spec": {"replicas": 6, "selector": {}, "serviceName": "files-cluster-headless", "template": {}}}),
    );
    let stored = json!({"metadata": {"name": "files", "namespace": "storage"}, "spec": {"zookeeper": {"connect": "zk:2181"}}});
    let mut script = secrets_script_in(ns, &secret_names("files", true, true), &Stored::new());
    script.extend([
        apply(&format!("{ns}/configmaps/files-config")),
        apply(&format!("{ns}/services/files-head-headless")),
        apply(&format!("{ns}/services/files-head")),
        apply(&format!("{ns}/services/files-cluster-headless")),
        apply(&format!("{ns}/services/files-monitor")),
        head_lookup(apps, "files-head", not_found()),
        apply(&format!("{apps}/statefulsets/files-head")),
        expect(
            Method::GET,
            &format!("{apps}/statefulsets/files-cluster"),
            sts,
        ),
        apply(&format!("{apps}/statefulsets/files-cluster")),
        apply(&format!("{apps}/deployments/files-monitor")),
        apply(&format!("{policy}/poddisruptionbudgets/files-head")),
        apply(&format!("{policy}/poddisruptionbudgets/files-cluster")),
        apply(&format!("{net}/networkpolicies/files")),
        expect(
            Method::GET,
            "/apis/monitoring.coreos.com/v1",
            Reply::Json(200, resources),
        ),
        apply(&format!("{sm}/files")),
        expect(Method::GET, &format!("{ns}/pods"), Reply::Json(200, pods)),
        expect(Method::GET, "/api/v1/nodes/n1", Reply::Json(200, node)),
        expect(
            Method::PATCH,
            &format!("{ns}/pods/files-cluster-0"),
            Reply::EchoWith(json!({"apiVersion": "v1", "kind": "Pod"})),
        ),
        expect(Method::GET, &format!("{ns}/configmaps"), empty_list()),
        expect(Method::GET, &format!("{ns}/services"), empty_list()),
        expect(Method::GET, &format!("{apps}/statefulsets"), empty_list()),
        expect(Method::GET, &format!("{apps}/deployments"), empty_list()),
        expect(
            Method::GET,
            &format!("{policy}/poddisruptionbudgets"),
            empty_list(),
        ),
        expect(Method::GET, &format!("{net}/networkpolicies"), empty_list()),
        expect(Method::GET, sm, empty_list()),
        expect(
            Method::PATCH,
            "/apis/filegrid.io/v1alpha1/namespaces/storage/filegrids/files/status",
            Reply::EchoWith(stored),
        ),
    ]);
    let r = run(fixture("zones"), script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let sm_body = r
        .bodies
        .iter()
        .find(|b| b["kind"] == "ServiceMonitor")
        .unwrap();
    assert_eq!(sm_body["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm_body["spec"]["endpoints"][0]["scheme"], "https");
    assert_eq!(
        sm_body["spec"]["endpoints"][0]["tlsConfig"]["ca"]["secret"]["name"],
        "files-head-tls"
    );
    // Only the scheduled pod without a zone is annotated, with its node's label.
    let patch_index = r
        .log
        .iter()
        .filter(|l| l.starts_with("kube "))
        .position(|l| l == &format!("kube PATCH {ns}/pods/files-cluster-0"))
        .unwrap();
    assert_eq!(
        r.bodies[patch_index],
        json!({"metadata": {"annotations": {"filegrid.io/zone": "eu-1a"}}})
    );
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "Available")["status"], "True", "{status}");
}

const DAY: i64 = 86_400;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .unwrap()
        .to_string()
}

fn applied<'a>(bodies: &'a [Value], kind: &str, name: &str) -> &'a Value {
    bodies
        .iter()
        .find(|b| b["kind"] == kind && b["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} applied"))
}

fn role_file(bodies: &[Value], role: &str) -> toml::Table {
    let cm = applied(bodies, "ConfigMap", "demo-config");
    toml::from_str(cm["data"][format!("{role}.toml")].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn secured_grid_gets_its_secrets_on_first_reconcile_and_role_files_point_at_them() {
    let r = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let secrets = applied_secrets(&r.bodies);
    assert_eq!(
        secrets.keys().cloned().collect::<Vec<_>>(),
        [
            "demo-admin",
            "demo-ca",
            "demo-cluster-secret",
            "demo-cluster-tls",
            "demo-head-tls",
            "demo-monitor-tls",
            "demo-zookeeper"
        ]
    );
    for s in secrets.values() {
        assert_eq!(
            s["metadata"]["ownerReferences"][0]["uid"],
            "6f1c2b7e-0000-4000-8000-000000000001"
        );
        assert_eq!(
            s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "filegrid-operator"
        );
    }
    // The admin credential: a credentials file the heads accept, and its parts.
    let admin = &secrets["demo-admin"];
    let file: filegrid_proto::auth::CredentialsFile =
        toml::from_str(&secret_text(admin, "credentials")).unwrap();
    file.check().unwrap();
    assert_eq!(file.principals.len(), 1);
    let p = &file.principals[0];
    assert_eq!(p.role, filegrid_proto::auth::Access::Admin);
    assert_eq!(secret_text(admin, "access-key"), p.access_key);
    assert_eq!(secret_text(admin, "secret"), p.secret);
    let token = secret_text(admin, "token");
    assert_eq!(token, format!("{}:{}", p.access_key, p.secret));
    // ZooKeeper digest `user:password`, and a cluster secret of at least 32 bytes.
    let zk = secret_text(&secrets["demo-zookeeper"], "auth");
    let (user, password) = zk.trim().split_once(':').unwrap();
    assert_eq!(user, "filegrid-demo");
    assert!(password.len() >= 16);
    assert!(
        secret_text(&secrets["demo-cluster-secret"], "cluster-secret")
            .trim()
            .len()
            >= 44
    );
    // Certificates: signed by the grid's CA, which each one carries, annotated for renewal.
    let ca = secret_text(&secrets["demo-ca"], "ca.crt");
    for role in ["head", "cluster", "monitor"] {
        let tls = &secrets[&format!("demo-{role}-tls")];
        assert_eq!(tls["type"], "kubernetes.io/tls");
        assert_eq!(secret_text(tls, "ca.crt"), ca);
        assert!(secret_text(tls, "tls.crt").starts_with("-----BEGIN CERTIFICATE"));
        assert!(secret_text(tls, "tls.key").contains("PRIVATE KEY"));
        let a = &tls["metadata"]["annotations"];
        let not_after: k8s_openapi::jiff::Timestamp = a["filegrid.io/not-after"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((not_after.as_second() - unix_now() - 90 * DAY).abs() < 60);
    }
    assert!(
        secrets["demo-head-tls"]["metadata"]["annotations"]["filegrid.io/dns-names"]
            .as_str()
            .unwrap()
            .contains("*.demo-head-headless.team-a.svc")
    );
    // Secrets come before anything that mounts them.
    let first_secret = r.log.iter().position(|l| l.contains("/secrets/")).unwrap();
    let config = r
        .log
        .iter()
        .position(|l| l.contains("/configmaps/"))
        .unwrap();
    assert!(first_secret < config);

    // Role files: mounted files, no `insecure`.
    let head = role_file(&r.bodies, "head");
    assert_eq!(head.get("insecure"), None);
    assert_eq!(
        head["credentials_file"].as_str(),
        Some("/etc/filegrid-credentials/credentials")
    );
    assert_eq!(
        head["cluster_secret_file"].as_str(),
        Some("/etc/filegrid-cluster-secret/cluster-secret")
    );
    assert_eq!(head["zk_auth_file"].as_str(), Some("/etc/filegrid-zk/auth"));
    assert_eq!(head["tls_cert"].as_str(), Some("/etc/filegrid-tls/tls.crt"));
    assert_eq!(head["tls_key"].as_str(), Some("/etc/filegrid-tls/tls.key"));
    assert_eq!(head["tls_ca"].as_str(), Some("/etc/filegrid-tls/ca.crt"));
    let cluster = role_file(&r.bodies, "cluster");
    assert!(
        cluster.contains_key("cluster_secret_file") && !cluster.contains_key("credentials_file")
    );
    let monitor = role_file(&r.bodies, "monitor");
    assert!(monitor.contains_key("tls_ca") && !monitor.contains_key("cluster_secret_file"));

    // The head pods mount their Secrets read-only, whole (no subPath), and probe over HTTPS.
    let sts = applied(&r.bodies, "StatefulSet", "demo-head");
    let pod = &sts["spec"]["template"]["spec"];
    let volumes: BTreeMap<String, String> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v.get("secret").is_some())
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["secret"]["secretName"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(volumes["tls"], "demo-head-tls");
    assert_eq!(volumes["credentials"], "demo-admin");
    assert_eq!(volumes["cluster-secret"], "demo-cluster-secret");
    assert_eq!(volumes["zk-auth"], "demo-zookeeper");
    let c = &pod["containers"][0];
    for m in c["volumeMounts"].as_array().unwrap() {
        assert!(m.get("subPath").is_none(), "{m}");
        if volumes.contains_key(m["name"].as_str().unwrap()) {
            assert_eq!(m["readOnly"], true, "{m}");
        }
    }
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");

    // The operator calls the heads over https, as admin, trusting the grid's CA only.
    assert!(
        r.log
            .iter()
            .any(|l| l == "head GET https://demo-head.team-a.svc:9669/v1/leader"),
        "{:?}",
        r.log
    );
    assert!(!r.accesses.is_empty());
    for a in &r.accesses {
        assert_eq!(a.token.as_deref(), Some(token.as_str()));
        assert_eq!(a.ca_pem.as_deref(), Some(ca.as_str()));
    }
    // And the NetworkPolicy lets clients reach only the heads' API and S3 ports.
    let np = applied(&r.bodies, "NetworkPolicy", "demo");
    let open = &np["spec"]["ingress"][0];
    assert!(open.get("from").is_none());
    assert_eq!(
        open["ports"],
        json!([{"port": 9669, "protocol": "TCP"}, {"port": 9000, "protocol": "TCP"}])
    );
}

#[tokio::test]
async fn existing_secrets_are_kept_and_not_regenerated() {
    let first = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    let stored = applied_secrets(&first.bodies);
    let second = run(
        fixture("minimal"),
        full_script_stored(&stored, existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    assert!(second.action.is_ok(), "{:?}", second.action);
    // Only reads of Secrets, no write (the script would fail on any other call).
    assert!(
        !second
            .log
            .iter()
            .any(|l| l.starts_with("kube PATCH") && l.contains("/secrets/")),
        "{:?}",
        second.log
    );
    // The heads are called with the stored credential.
    let token = secret_text(&stored["demo-admin"], "token");
    assert_eq!(second.accesses[0].token.as_deref(), Some(token.as_str()));
}

#[tokio::test]
async fn certificates_close_to_expiry_are_reissued_and_the_rest_is_kept() {
    let first = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    let mut stored = applied_secrets(&first.bodies);
    // The head certificate has 20 of its 90 days left: less than a third.
    let now = unix_now();
    let old = stored["demo-head-tls"].clone();
    let a = &mut stored.get_mut("demo-head-tls").unwrap()["metadata"]["annotations"];
    a["filegrid.io/not-before"] = json!(rfc3339(now - 70 * DAY));
    a["filegrid.io/not-after"] = json!(rfc3339(now + 20 * DAY));
    // The cluster certificate has 40 days left: kept.
    let a = &mut stored.get_mut("demo-cluster-tls").unwrap()["metadata"]["annotations"];
    a["filegrid.io/not-before"] = json!(rfc3339(now - 50 * DAY));
    a["filegrid.io/not-after"] = json!(rfc3339(now + 40 * DAY));

    let mut script = vec![namespace_lookup(NS)];
    for name in secret_names("demo", true, true) {
        let path = format!("{NS}/secrets/{name}");
        script.push(expect(
            Method::GET,
            &path,
            Reply::Json(200, stored[&name].clone()),
        ));
        if name == "demo-head-tls" {
            script.push(apply(&path));
        }
    }
    script.extend(children_after_secrets(existing_cluster(3), true));
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(fixture("minimal"), script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let renewed = applied_secrets(&r.bodies);
    assert_eq!(renewed.keys().collect::<Vec<_>>(), ["demo-head-tls"]);
    let new = &renewed["demo-head-tls"];
    assert_ne!(secret_text(new, "tls.crt"), secret_text(&old, "tls.crt"));
    assert_ne!(secret_text(new, "tls.key"), secret_text(&old, "tls.key"));
    assert_eq!(
        secret_text(new, "ca.crt"),
        secret_text(&old, "ca.crt"),
        "same CA"
    );
    let not_after: k8s_openapi::jiff::Timestamp =
        new["metadata"]["annotations"]["filegrid.io/not-after"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    assert!(not_after.as_second() > now + 89 * DAY);
    // A rotated certificate changes no pod template: the mounted files are updated in place.
    let before = applied(&first.bodies, "StatefulSet", "demo-head")["spec"]["template"].clone();
    let after = applied(&r.bodies, "StatefulSet", "demo-head")["spec"]["template"].clone();
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_secret_missing_a_key_is_reported_and_not_overwritten() {
    let first = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    let mut stored = applied_secrets(&first.bodies);
    stored.get_mut("demo-admin").unwrap()["data"]
        .as_object_mut()
        .unwrap()
        .remove("token");
    let script = vec![
        namespace_lookup(NS),
        expect(
            Method::GET,
            &format!("{NS}/secrets/demo-cluster-secret"),
            Reply::Json(200, stored["demo-cluster-secret"].clone()),
        ),
        expect(
            Method::GET,
            &format!("{NS}/secrets/demo-admin"),
            Reply::Json(200, stored["demo-admin"].clone()),
        ),
        status_patch(),
    ];
    let r = run(fixture("minimal"), script, Some(leader()), vec![]).await;
    let err = r.action.unwrap_err();
    assert!(
        err.contains("demo-admin") && err.contains("`token`"),
        "{err}"
    );
    assert_eq!(r.metrics.failures.with_label_values(&["security"]).get(), 1);
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "Degraded")["reason"], "ReconcileError");
}

#[tokio::test]
async fn insecure_grid_renders_insecure_and_creates_no_secrets() {
    let mut fg = fixture("minimal");
    fg.spec.security.insecure = true;
    let mut script = vec![namespace_lookup(NS)];
    script.extend(children_after_secrets(existing_cluster(3), true));
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(fg, script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert!(!r.log.iter().any(|l| l.contains("/secrets")), "{:?}", r.log);
    for role in ["head", "cluster", "monitor"] {
        let file = role_file(&r.bodies, role);
        assert_eq!(file["insecure"].as_bool(), Some(true), "{role}");
        for key in [
            "tls_cert",
            "cluster_secret_file",
            "credentials_file",
            "zk_auth_file",
        ] {
            assert!(!file.contains_key(key), "{role}: {key}");
        }
    }
    let sts = applied(&r.bodies, "StatefulSet", "demo-head");
    let pod = &sts["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("secret").is_none())
    );
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["scheme"],
        "HTTP"
    );
    assert!(
        r.log
            .iter()
            .any(|l| l == "head GET http://demo-head.team-a.svc:9669/v1/leader")
    );
    assert!(r.accesses.iter().all(|a| *a == HeadAccess::default()));
}

#[tokio::test]
async fn user_zookeeper_secret_is_used_instead_of_a_generated_one() {
    let mut fg = fixture("minimal");
    fg.spec.zookeeper.auth_secret = Some("zk-credential".into());
    let mut script = secrets_script_in(NS, &secret_names("demo", true, false), &Stored::new());
    script.extend(children_after_secrets(existing_cluster(3), true));
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(fg, script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert!(!r.log.iter().any(|l| l.contains("demo-zookeeper")));
    let sts = applied(&r.bodies, "StatefulSet", "demo-cluster");
    let zk = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "zk-auth")
        .unwrap();
    assert_eq!(zk["secret"]["secretName"], "zk-credential");
    assert_eq!(
        role_file(&r.bodies, "cluster")["zk_auth_file"].as_str(),
        Some("/etc/filegrid-zk/auth")
    );
}

#[tokio::test]
async fn network_policy_switched_off_is_not_applied_and_the_old_one_is_deleted() {
    let mut fg = fixture("minimal");
    fg.spec.security.network_policy.enabled = false;
    let mut script = children_script(existing_cluster(3), true);
    let mut after = after_cluster_script(true);
    after.retain(|e| !e.path.contains("networkpolicies"));
    script.extend(after);
    let mut prune = prune_script(empty_list(), empty_list());
    prune.pop();
    let policies = Reply::Json(
        200,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "metadata": {}, "items": [
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "demo", "namespace": "team-a",
             "ownerReferences": [{"apiVersion": "filegrid.io/v1alpha1", "kind": "FileGrid", "name": "demo",
             "uid": "6f1c2b7e-0000-4000-8000-000000000001"}]}}]}),
    );
    prune.push(expect(
        Method::GET,
        &format!("{NET}/networkpolicies"),
        policies,
    ));
    prune.push(expect(
        Method::DELETE,
        &format!("{NET}/networkpolicies/demo"),
        Reply::Json(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
    ));
    script.extend(prune);
    script.push(status_patch());
    let r = run(fg, script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert!(
        !r.log
            .iter()
            .any(|l| l == &format!("kube PATCH {NET}/networkpolicies/demo"))
    );
}

#[tokio::test]
async fn a_replaced_ca_reissues_every_certificate_and_restarts_the_pods() {
    let first = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    let mut stored = applied_secrets(&first.bodies);
    // Someone deleted the CA Secret: a new CA is made, and every certificate it did not sign
    // is issued again.
    stored.remove("demo-ca");
    let mut script = vec![namespace_lookup(NS)];
    for name in secret_names("demo", true, true) {
        let path = format!("{NS}/secrets/{name}");
        match stored.get(&name) {
            Some(s) => script.push(expect(Method::GET, &path, Reply::Json(200, s.clone()))),
            None => script.push(expect(Method::GET, &path, not_found())),
        }
        if name == "demo-ca" || name.ends_with("-tls") {
            script.push(apply(&path));
        }
    }
    script.extend(children_after_secrets(existing_cluster(3), true));
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(fixture("minimal"), script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let renewed = applied_secrets(&r.bodies);
    let new_ca = secret_text(&renewed["demo-ca"], "ca.crt");
    assert_ne!(
        new_ca,
        secret_text(
            &first
                .bodies
                .iter()
                .find(|b| b["metadata"]["name"] == "demo-ca")
                .unwrap()
                .clone(),
            "ca.crt"
        )
    );
    for role in ["head", "cluster", "monitor"] {
        assert_eq!(
            secret_text(&renewed[&format!("demo-{role}-tls")], "ca.crt"),
            new_ca
        );
    }
    // Processes read tls_ca at start: the pod templates change, so every role rolls.
    for (kind, name) in [
        ("StatefulSet", "demo-head"),
        ("StatefulSet", "demo-cluster"),
        ("Deployment", "demo-monitor"),
    ] {
        let before =
            &applied(&first.bodies, kind, name)["spec"]["template"]["metadata"]["annotations"];
        let after = &applied(&r.bodies, kind, name)["spec"]["template"]["metadata"]["annotations"];
        assert_ne!(
            before["filegrid.io/ca-sha256"], after["filegrid.io/ca-sha256"],
            "{name}"
        );
        assert_eq!(
            before["filegrid.io/config-hash"], after["filegrid.io/config-hash"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_grid_being_deleted_gets_nothing_applied() {
    let mut fg = fixture("minimal");
    fg.metadata.deletion_timestamp =
        Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).unwrap());
    let r = run(fg, vec![], Some(leader()), vec![]).await;
    assert_eq!(r.action, Ok(Action::await_change()));
    assert!(r.log.is_empty(), "{:?}", r.log);
}

#[tokio::test]
async fn nothing_is_applied_in_a_terminating_namespace() {
    for namespace in [
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a",
                "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Terminating"}}),
        ),
        not_found(),
    ] {
        let script = vec![expect(Method::GET, NS, namespace)];
        let r = run(fixture("minimal"), script, Some(leader()), vec![]).await;
        assert_eq!(r.action, Ok(Action::await_change()));
        assert_eq!(r.log, vec![format!("kube GET {NS}")]);
    }
}

#[tokio::test]
async fn a_paused_grid_reports_it_once_and_applies_nothing() {
    let mut fg = fixture("minimal");
    fg.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("filegrid.io/paused".into(), "true".into());
    let script = vec![
        expect(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/team-a/events",
            Reply::EchoWith(json!({})),
        ),
        status_patch(),
    ];
    let r = run(fg.clone(), script, Some(leader()), vec![]).await;
    assert_eq!(r.action, Ok(Action::await_change()));
    assert_eq!(r.bodies[0]["reason"], "ReconciliationPaused");
    assert_eq!(r.bodies[0]["type"], "Normal");
    let status = r.bodies[1]["status"].clone();
    assert_eq!(condition(&status, "ReconciliationPaused")["status"], "True");
    let gauge = r
        .metrics
        .paused
        .with_label_values(&["team-a", "demo"])
        .get();
    assert_eq!(gauge, 1);
    // Still paused on the next reconcile: no Event, no status write, nothing applied.
    fg.status = Some(serde_json::from_value(status.clone()).unwrap());
    let r = run(fg.clone(), vec![], Some(leader()), vec![]).await;
    assert_eq!(r.action, Ok(Action::await_change()));
    assert!(r.log.is_empty(), "{:?}", r.log);

    // The annotation removed: an Event, then a full reconcile that clears the condition.
    fg.metadata.annotations = None;
    let mut script = vec![expect(
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/team-a/events",
        Reply::EchoWith(json!({})),
    )];
    script.extend(full_script(existing_cluster(3), true));
    let r = run(fg, script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert_eq!(r.bodies[0]["reason"], "ReconciliationResumed");
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "ReconciliationPaused")["status"], "False");
    assert_eq!(
        r.metrics
            .paused
            .with_label_values(&["team-a", "demo"])
            .get(),
        0
    );
}

#[tokio::test]
async fn the_first_retry_after_a_failure_waits_for_the_backoff() {
    let fg = Arc::new(fixture("minimal"));
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let mut script = secrets_script(&Stored::new(), true);
    script.extend([
        expect(
            Method::PATCH,
            &format!("{NS}/configmaps/demo-config"),
            Reply::Json(
                500,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "etcd unavailable", "reason": "InternalError", "code": 500}),
            ),
        ),
        status_patch(),
    ]);
    let server = serve(handle, script, log.clone());
    let head = Arc::new(FakeHead {
        log: log.clone(),
        accesses: Arc::default(),
        leader: Some(leader()),
        servers: vec![],
        repair: None,
    });
    let metrics = Arc::new(Metrics::new().unwrap());
    let ctx = Arc::new(Context::new(
        Client::new(svc, "default"),
        head,
        metrics.clone(),
    ));
    let err = reconcile(fg.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(
        error_policy(fg.clone(), &err, ctx.clone()),
        Action::requeue(backoff(1))
    );
    // The status write above wakes the controller at once: nothing is called, and the
    // retry comes when the backoff ends.
    let mut written = (*fg).clone();
    written.status = Some(FileGridStatus::default());
    let again = reconcile(Arc::new(written), ctx.clone()).await.unwrap();
    match again {
        a if a == Action::requeue(backoff(1)) => {}
        a => {
            let text = format!("{a:?}");
            assert!(
                text.contains("requeue_after: Some(4.") || text.contains("requeue_after: Some(5"),
                "{text}"
            );
        }
    }
    assert_eq!(metrics.reconciliations.get(), 1);
    drop(ctx);
    server.await.unwrap();
}

#[tokio::test]
async fn a_pod_on_a_deleted_node_is_skipped_and_zone_warnings_come_once_per_cause() {
    let ns = "/api/v1/namespaces/storage";
    let apps = "/apis/apps/v1/namespaces/storage";
    let policy = "/apis/policy/v1/namespaces/storage";
    let sm = "/apis/monitoring.coreos.com/v1/namespaces/storage/servicemonitors";
    let net = "/apis/networking.k8s.io/v1/namespaces/storage";
    let pod = |name: &str, node: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "storage"},
            "spec": {"containers": [], "nodeName": node}})
    };
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
        pod("files-cluster-0", "gone"),
        pod("files-cluster-1", "bare"),
    ]});
    let bare =
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "bare", "labels": {}}});
    let resources = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "monitoring.coreos.com/v1", "resources": [
        {"name": "servicemonitors", "singularName": "servicemonitor", "namespaced": true, "kind": "ServiceMonitor",
         "verbs": ["get", "list", "watch", "create", "patch", "delete"]}]});
    let stored_grid = json!({"metadata": {"name": "files", "namespace": "storage"}, "spec": {"zookeeper": {"connect": "zk:2181"}}});
    let script = |stored: &Stored, event: bool, status: bool| {
        let mut s = secrets_script_in(ns, &secret_names("files", true, true), stored);
        s.extend([
            apply(&format!("{ns}/configmaps/files-config")),
            apply(&format!("{ns}/services/files-head-headless")),
            apply(&format!("{ns}/services/files-head")),
            apply(&format!("{ns}/services/files-cluster-headless")),
            apply(&format!("{ns}/services/files-monitor")),
            head_lookup(apps, "files-head", not_found()),
            apply(&format!("{apps}/statefulsets/files-head")),
            expect(
                Method::GET,
                &format!("{apps}/statefulsets/files-cluster"),
                not_found(),
            ),
            apply(&format!("{apps}/statefulsets/files-cluster")),
            apply(&format!("{apps}/deployments/files-monitor")),
            apply(&format!("{policy}/poddisruptionbudgets/files-head")),
            apply(&format!("{policy}/poddisruptionbudgets/files-cluster")),
            apply(&format!("{net}/networkpolicies/files")),
            expect(
                Method::GET,
                "/apis/monitoring.coreos.com/v1",
                Reply::Json(200, resources.clone()),
            ),
            apply(&format!("{sm}/files")),
            expect(
                Method::GET,
                &format!("{ns}/pods"),
                Reply::Json(200, pods.clone()),
            ),
            expect(Method::GET, "/api/v1/nodes/gone", not_found()),
            expect(
                Method::GET,
                "/api/v1/nodes/bare",
                Reply::Json(200, bare.clone()),
            ),
        ]);
        if event {
            s.push(expect(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/storage/events",
                Reply::EchoWith(json!({})),
            ));
        }
        s.extend([
            expect(Method::GET, &format!("{ns}/configmaps"), empty_list()),
            expect(Method::GET, &format!("{ns}/services"), empty_list()),
            expect(Method::GET, &format!("{apps}/statefulsets"), empty_list()),
            expect(Method::GET, &format!("{apps}/deployments"), empty_list()),
            expect(
                Method::GET,
                &format!("{policy}/poddisruptionbudgets"),
                empty_list(),
            ),
            expect(Method::GET, &format!("{net}/networkpolicies"), empty_list()),
            expect(Method::GET, sm, empty_list()),
        ]);
        if status {
            s.push(expect(
                Method::PATCH,
                "/apis/filegrid.io/v1alpha1/namespaces/storage/filegrids/files/status",
                Reply::EchoWith(stored_grid.clone()),
            ));
        }
        s
    };
    let warnings: Arc<Mutex<Warnings>> = Arc::default();
    let r = run_with(
        fixture("zones"),
        script(&Stored::new(), true, true),
        Some(leader()),
        vec![],
        Some(warnings.clone()),
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let event = r
        .bodies
        .iter()
        .find(|b| b["reason"] == "NodeWithoutZone")
        .unwrap();
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("node bare of pod files-cluster-1")
    );
    assert!(
        !r.bodies
            .iter()
            .any(|b| b["note"].as_str().is_some_and(|n| n.contains("gone")))
    );
    // The next reconcile, same cause: no Event.
    let stored = applied_secrets(&r.bodies);
    let mut fg = fixture("zones");
    fg.status = Some(serde_json::from_value(r.bodies.last().unwrap()["status"].clone()).unwrap());
    let r = run_with(
        fg,
        script(&stored, false, false),
        Some(leader()),
        vec![],
        Some(warnings),
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
}

#[tokio::test]
async fn a_scale_down_undone_before_it_finished_recommissions_the_servers() {
    // 4 -> 3 began (demo-cluster-3 draining), then the spec went back to 4.
    let mut fg = fixture("minimal");
    fg.spec.cluster.replicas = 4;
    fg.status = Some(FileGridStatus {
        decommissioning: vec!["demo-cluster-3".into()],
        ..FileGridStatus::default()
    });
    let mut script = children_script(cluster_at(4, json!({ REPLICAS: "4" })), true);
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(
        fg,
        script,
        Some(leader()),
        vec![server("demo-cluster-3", ServerState::Draining)],
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert!(
        r.log
            .contains(&"head POST 10.0.0.5/v1/cluster/demo-cluster-3/recommission".to_string()),
        "{:?}",
        r.log
    );
    assert_eq!(cluster_sts(&r.bodies)["spec"]["replicas"], 4);
    assert_eq!(
        r.bodies.last().unwrap()["status"].get("decommissioning"),
        None
    );
}

#[tokio::test]
async fn status_reports_capacity_servers_and_repair_from_the_leader() {
    let mut fg = fixture("minimal");
    let report = |under: u64, at: u64| RepairReport {
        files: 3,
        chunks: 40,
        under_replicated: under,
        copies_made: 2,
        orphans_deleted: 0,
        finished_at: at,
        ..Default::default()
    };
    let mut servers = vec![
        server("demo-cluster-0", ServerState::Live),
        server("demo-cluster-1", ServerState::Live),
        server("demo-cluster-2", ServerState::Dead),
    ];
    servers[0].used_bytes = 1 << 29;
    let t0 = 1_767_225_600_000;
    let r = run_reporting(
        fg.clone(),
        full_script(existing_cluster(3), true),
        servers.clone(),
        report(12, t0),
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    assert!(r.log.contains(&"head GET 10.0.0.5/v1/repair".to_string()));
    let status = r.bodies.last().unwrap()["status"].clone();
    assert_eq!(status["capacity"]["used"], "512.0MiB/3.0GiB (17%)");
    assert_eq!(status["underReplicatedChunks"], 12);
    assert_eq!(status["servers"][2]["state"], "dead");
    assert_eq!(status["repair"]["lastPassTime"], "2026-01-01T00:00:00Z");
    assert!(status["repair"].get("estimatedCompletionTime").is_none());

    // The next pass a minute later fixed 6 of 12: the rest takes another minute.
    fg.status = Some(serde_json::from_value(status).unwrap());
    let r = run_reporting(
        fg,
        full_script_stored(&applied_secrets(&r.bodies), existing_cluster(3), true),
        servers,
        report(6, t0 + 60_000),
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(status["underReplicatedChunks"], 6);
    assert_eq!(
        status["repair"]["estimatedCompletionTime"],
        "2026-01-01T00:02:00Z"
    );
}

// ---- Rolling upgrades ----

const TEMPLATE_SHA: &str = "filegrid.io/template-sha256";

/// The Secrets, the cluster template hash and the CA hash of the `minimal` grid after a first
/// reconcile, so that later reconciles apply the same template.
async fn settled() -> (Stored, String, String) {
    let r = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    let sha = cluster_sts(&r.bodies)["metadata"]["annotations"][TEMPLATE_SHA]
        .as_str()
        .unwrap()
        .to_string();
    let ca = cluster_sts(&r.bodies)["spec"]["template"]["metadata"]["annotations"]
        ["filegrid.io/ca-sha256"]
        .as_str()
        .unwrap()
        .to_string();
    (applied_secrets(&r.bodies), sha, ca)
}

/// The cluster StatefulSet with the current template applied, rolling from revision `c1` to
/// `c2` with `updated` pods on `c2` and the partition at `partition`.
fn cluster_rolling(sha: &str, partition: i64, updated: i64) -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "demo-cluster", "namespace": "team-a", "generation": 2,
            "annotations": {TEMPLATE_SHA: sha, REPLICAS: "3"}},
        "spec": {"replicas": 3, "selector": {}, "serviceName": "demo-cluster-headless", "template": {},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}},
        "status": {"replicas": 3, "readyReplicas": 3, "updatedReplicas": updated, "observedGeneration": 2,
            "currentRevision": "c1", "updateRevision": "c2"}}),
    )
}

/// The pods of `set`, listed by label: `(ordinal, revision, ready)`, started with the CA
/// whose hash is `ca`.
fn pods(set: &str, ca: &str, pods: &[(i32, &str, bool)]) -> Expect {
    let items: Vec<Value> = pods
        .iter()
        .map(|(o, rev, ready)| {
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{set}-{o}"), "namespace": "team-a", "uid": format!("uid-{set}-{o}"),
                "labels": {"controller-revision-hash": rev},
                "annotations": {"filegrid.io/ca-sha256": ca}},
            "status": {"conditions": [{"type": "Ready", "status": if *ready { "True" } else { "False" }}]}})
        })
        .collect();
    expect(
        Method::GET,
        &format!("{NS}/pods"),
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}),
        ),
    )
}

fn pod_delete(name: &str) -> Expect {
    expect(
        Method::DELETE,
        &format!("{NS}/pods/{name}"),
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team-a"}}),
        ),
    )
}

/// One reconcile of the `minimal` grid: the head StatefulSet as stored (`OnDelete`) and as
/// the apply answers it, the cluster StatefulSet as stored, then `during` (the pod lists
/// and deletions of a rollout, in order: cluster pods before the cluster apply, head pods
/// after it).
fn rollout_script(
    stored: &Stored,
    heads_applied: Reply,
    cluster: Reply,
    cluster_pods: Option<Expect>,
    head_steps: Vec<Expect>,
) -> Vec<Expect> {
    let mut s = secrets_script(stored, true);
    s.extend([
        apply(&format!("{NS}/configmaps/demo-config")),
        apply(&format!("{NS}/services/demo-head-headless")),
        apply(&format!("{NS}/services/demo-head")),
        apply(&format!("{NS}/services/demo-cluster-headless")),
        apply(&format!("{NS}/services/demo-monitor")),
        head_lookup(APPS, "demo-head", heads_on_delete()),
        expect(
            Method::PATCH,
            &format!("{APPS}/statefulsets/demo-head"),
            heads_applied,
        ),
        expect(
            Method::GET,
            &format!("{APPS}/statefulsets/demo-cluster"),
            cluster,
        ),
    ]);
    s.extend(cluster_pods);
    let mut after = after_cluster_script(true);
    let rest = after.split_off(1);
    s.extend(after);
    s.extend(head_steps);
    s.extend(rest);
    s.extend(prune_script(empty_list(), empty_list()));
    s.push(status_patch());
    s
}

/// The head StatefulSet as stored by this operator.
fn heads_on_delete() -> Reply {
    Reply::Json(
        200,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "demo-head", "namespace": "team-a"},
        "spec": {"replicas": 2, "selector": {}, "serviceName": "demo-head-headless", "template": {},
            "updateStrategy": {"type": "OnDelete"}}}),
    )
}

/// The head StatefulSet as the apply answers it: rolling from `h1` to `h2`, `updated` pods on `h2`.
fn heads_rolling(updated: i64) -> Reply {
    Reply::EchoWith(json!({
        "metadata": {"name": "demo-head", "namespace": "team-a", "generation": 2},
        "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": updated, "observedGeneration": 2,
            "currentRevision": "h1", "updateRevision": "h2"}}))
}

fn partition(bodies: &[Value]) -> i64 {
    cluster_sts(bodies)["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap()
}

fn report(under: u64, finished_at: u64) -> RepairReport {
    RepairReport {
        chunks: 40,
        under_replicated: under,
        finished_at,
        ..Default::default()
    }
}

async fn reconcile_rollout(
    script: Vec<Expect>,
    leader: Option<Leader>,
    repair: Option<RepairReport>,
    marks: &Marks,
) -> Run {
    let r = run_full(
        fixture("minimal"),
        script,
        leader,
        vec![],
        None,
        repair,
        Some(marks.clone()),
    )
    .await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    r
}

fn rollout_line(r: &Run) -> String {
    r.bodies.last().unwrap()["status"]["rollout"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_new_cluster_stateful_set_has_partition_zero_and_an_unchanged_one_holds_every_pod() {
    let r = run(
        fixture("minimal"),
        full_script(not_found(), true),
        None,
        vec![],
    )
    .await;
    assert_eq!(partition(&r.bodies), 0, "creation is never held back");
    let sts = cluster_sts(&r.bodies);
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert!(sts["metadata"]["annotations"][TEMPLATE_SHA].is_string());
    let heads = applied(&r.bodies, "StatefulSet", "demo-head");
    assert_eq!(heads["spec"]["updateStrategy"]["type"], "OnDelete");
    assert!(
        heads["spec"]["updateStrategy"]
            .get("rollingUpdate")
            .is_none()
    );
    // An existing StatefulSet whose stored template is not this one (here: none recorded):
    // every existing pod is held until the operator has seen the controller take it in.
    let r = run(
        fixture("minimal"),
        full_script(existing_cluster(3), true),
        Some(leader()),
        vec![],
    )
    .await;
    assert_eq!(partition(&r.bodies), 3);
}

#[tokio::test]
async fn the_cluster_partition_is_lowered_only_when_the_pods_are_ready_and_nothing_is_under_replicated()
 {
    let (stored, sha, ca) = settled().await;
    let marks = Marks::default();
    let t0 = 1_767_225_600_000;
    let all_old = [(0, "c1", true), (1, "c1", true), (2, "c1", true)];
    let step = |p: i64, updated: i64, pods_now: &[(i32, &str, bool)]| {
        rollout_script(
            &stored,
            Reply::Applied,
            cluster_rolling(&sha, p, updated),
            Some(pods("demo-cluster", &ca, pods_now)),
            vec![],
        )
    };

    // 17 chunks short: held at 3, and the status says why.
    let r = reconcile_rollout(
        step(3, 0, &all_old),
        Some(leader()),
        Some(report(17, t0)),
        &marks,
    )
    .await;
    assert_eq!(partition(&r.bodies), 3);
    assert!(
        rollout_line(&r).starts_with("cluster 0/3 updated, waiting for 17 under-replicated chunks"),
        "{}",
        rollout_line(&r)
    );
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "Progressing")["reason"], "RollingOut");
    // The leader was asked once for the report, which the status used too.
    assert_eq!(
        r.log.iter().filter(|l| l.ends_with("/v1/repair")).count(),
        1,
        "{:?}",
        r.log
    );
    assert_eq!(status["underReplicatedChunks"], 17);

    // A repair pass in progress: held.
    let mut running = report(0, t0);
    running.in_progress = true;
    let r = reconcile_rollout(step(3, 0, &all_old), Some(leader()), Some(running), &marks).await;
    assert_eq!(partition(&r.bodies), 3);

    // Nothing short, every pod Ready: the highest ordinal goes.
    let r = reconcile_rollout(
        step(3, 0, &all_old),
        Some(leader()),
        Some(report(0, t0)),
        &marks,
    )
    .await;
    assert_eq!(partition(&r.bodies), 2);
    assert!(
        rollout_line(&r).contains("restarting demo-cluster-2"),
        "{}",
        rollout_line(&r)
    );

    // demo-cluster-2 on the new revision but not Ready yet: held.
    let restarting = [(0, "c1", true), (1, "c1", true), (2, "c2", false)];
    let r = reconcile_rollout(
        step(2, 1, &restarting),
        Some(leader()),
        Some(report(0, t0)),
        &marks,
    )
    .await;
    assert_eq!(partition(&r.bodies), 2);
    assert!(rollout_line(&r).contains("waiting for demo-cluster-2 to be Ready"));

    // Ready: the leader's last pass may predate its return, so the rollout waits for the next.
    let back = [(0, "c1", true), (1, "c1", true), (2, "c2", true)];
    let r = reconcile_rollout(
        step(2, 1, &back),
        Some(leader()),
        Some(report(0, t0)),
        &marks,
    )
    .await;
    assert_eq!(partition(&r.bodies), 2);
    assert!(
        rollout_line(&r).contains("waiting for a repair pass that sees demo-cluster-2 back"),
        "{}",
        rollout_line(&r)
    );
    // The next pass found the chunks written meanwhile short: held.
    let r = reconcile_rollout(
        step(2, 1, &back),
        Some(leader()),
        Some(report(5, t0 + 10_000)),
        &marks,
    )
    .await;
    assert_eq!(partition(&r.bodies), 2);
    // The pass after that found nothing short: the next pod.
    let r = reconcile_rollout(
        step(2, 1, &back),
        Some(leader()),
        Some(report(0, t0 + 20_000)),
        &marks,
    )
    .await;
    assert_eq!(partition(&r.bodies), 1);
    assert!(rollout_line(&r).contains("restarting demo-cluster-1"));
}

#[tokio::test]
async fn the_cluster_rollout_holds_without_a_leader_and_says_so() {
    let (stored, sha, ca) = settled().await;
    let marks = Marks::default();
    let all_old = [(0, "c1", true), (1, "c1", true), (2, "c1", true)];
    let script = rollout_script(
        &stored,
        Reply::Applied,
        cluster_rolling(&sha, 3, 0),
        Some(pods("demo-cluster", &ca, &all_old)),
        vec![],
    );
    let r = reconcile_rollout(script, None, None, &marks).await;
    assert_eq!(partition(&r.bodies), 3);
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "Progressing")["reason"], "RolloutHeld");
    assert!(
        rollout_line(&r).contains("held: no leader head answers"),
        "{}",
        rollout_line(&r)
    );
    // Asked once, not again for the status.
    assert_eq!(
        r.log.iter().filter(|l| l.ends_with("/v1/leader")).count(),
        1,
        "{:?}",
        r.log
    );
    // A leader that answers without its report holds too.
    let script = rollout_script(
        &stored,
        Reply::Applied,
        cluster_rolling(&sha, 3, 0),
        Some(pods("demo-cluster", &ca, &all_old)),
        vec![],
    );
    let r = reconcile_rollout(script, Some(leader()), None, &marks).await;
    assert_eq!(partition(&r.bodies), 3);
}

#[tokio::test]
async fn heads_roll_standbys_first_and_the_leader_last() {
    let (stored, _, ca) = settled().await;
    let marks = Marks::default();
    let other = |id: &str| Leader {
        server_id: ServerId::new(id).unwrap(),
        ..leader()
    };
    // (head pods updated, the head pods, the leader, the pod deleted, the rollout line)
    type Case<'a> = (
        i64,
        Vec<(i32, &'a str, bool)>,
        Leader,
        Option<&'a str>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        // Both old, demo-head-0 leads: the standby goes first.
        (
            0,
            vec![(0, "h1", true), (1, "h1", true)],
            leader(),
            Some("demo-head-1"),
            "heads: restarting standby demo-head-1 (leader last)",
        ),
        // After a failover demo-head-1 leads: demo-head-0 is the standby now, it goes first.
        (
            0,
            vec![(0, "h1", true), (1, "h1", true)],
            other("demo-head-1"),
            Some("demo-head-0"),
            "heads: restarting standby demo-head-0 (leader last)",
        ),
        // The standby is back but not Ready: nothing is deleted.
        (
            1,
            vec![(0, "h1", true), (1, "h2", false)],
            leader(),
            None,
            "heads: waiting for demo-head-1 to be Ready (leader last)",
        ),
        // Only the leader is left: it goes, and a standby takes over.
        (
            1,
            vec![(0, "h1", true), (1, "h2", true)],
            leader(),
            Some("demo-head-0"),
            "heads: leader last, restarting the leader demo-head-0 (a standby takes over)",
        ),
    ];
    for (updated, now, lead, deleted, line) in cases {
        let mut steps = vec![pods("demo-head", &ca, &now)];
        steps.extend(deleted.map(pod_delete));
        let script = rollout_script(
            &stored,
            heads_rolling(updated),
            existing_cluster(3),
            None,
            steps,
        );
        let r = reconcile_rollout(script, Some(lead), Some(report(0, 1)), &marks).await;
        assert!(rollout_line(&r).starts_with(line), "{}", rollout_line(&r));
        if let Some(name) = deleted {
            // Only the pod that was seen: a replacement with the same name is left alone.
            let body = r
                .bodies
                .iter()
                .find(|b| b["preconditions"]["uid"].is_string())
                .unwrap();
            assert_eq!(body["preconditions"]["uid"], format!("uid-{name}"));
        }
    }
}

#[tokio::test]
async fn heads_wait_for_the_cluster_rollout_and_for_a_leader() {
    let (stored, sha, ca) = settled().await;
    let marks = Marks::default();
    let old_heads = [(0, "h1", true), (1, "h1", true)];
    // The cluster servers are rolling: no head is deleted.
    let script = rollout_script(
        &stored,
        heads_rolling(0),
        cluster_rolling(&sha, 3, 0),
        Some(pods(
            "demo-cluster",
            &ca,
            &[(0, "c1", true), (1, "c1", true), (2, "c1", true)],
        )),
        vec![pods("demo-head", &ca, &old_heads)],
    );
    let r = reconcile_rollout(script, Some(leader()), Some(report(3, 1)), &marks).await;
    assert!(
        rollout_line(&r).contains("heads: waiting for the cluster servers to finish"),
        "{}",
        rollout_line(&r)
    );
    // No leader: no head can be told from the leader, none is deleted.
    let script = rollout_script(
        &stored,
        heads_rolling(0),
        existing_cluster(3),
        None,
        vec![pods("demo-head", &ca, &old_heads)],
    );
    let r = reconcile_rollout(script, None, None, &marks).await;
    assert!(rollout_line(&r).contains("heads: held: no leader head answers"));
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "Progressing")["reason"], "RolloutHeld");
}

#[tokio::test]
async fn a_head_stateful_set_of_an_earlier_operator_is_switched_to_on_delete_first() {
    let mut script = secrets_script(&Stored::new(), true);
    let legacy = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "demo-head", "namespace": "team-a"},
        "spec": {"replicas": 2, "selector": {}, "serviceName": "demo-head-headless", "template": {},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}});
    let mut children = children_after_secrets(existing_cluster(3), true);
    let at = children
        .iter()
        .position(|e| e.method == Method::GET && e.path.ends_with("/statefulsets/demo-head"))
        .unwrap();
    children[at] = head_lookup(APPS, "demo-head", Reply::Json(200, legacy.clone()));
    children.insert(
        at + 1,
        expect(
            Method::PATCH,
            &format!("{APPS}/statefulsets/demo-head"),
            Reply::Json(200, legacy),
        ),
    );
    script.extend(children);
    script.extend(after_cluster_script(true));
    script.extend(prune_script(empty_list(), empty_list()));
    script.push(status_patch());
    let r = run(fixture("minimal"), script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let switch = r
        .bodies
        .iter()
        .find(|b| b["spec"]["updateStrategy"]["type"] == "OnDelete" && b.get("kind").is_none())
        .unwrap();
    assert_eq!(
        switch,
        &json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}})
    );
}

#[tokio::test]
async fn a_replaced_ca_rolls_by_readiness_alone_since_old_and_new_pods_cannot_talk() {
    let (stored, sha, ca) = settled().await;
    let marks = Marks::default();
    // demo-cluster-2 restarted with the grid's (new) CA, the others still trust the old one:
    // the leader cannot answer usefully (here: not at all), and waiting would never end.
    let mut script = rollout_script(
        &stored,
        Reply::Applied,
        cluster_rolling(&sha, 2, 1),
        Some(pods(
            "demo-cluster",
            "old-ca",
            &[(0, "c1", true), (1, "c1", true)],
        )),
        vec![],
    );
    // The list answers pods 0 and 1 on the old CA; add pod 2, on the new CA and Ready.
    let at = script
        .iter()
        .position(|e| e.method == Method::GET && e.path.ends_with("/pods"))
        .unwrap();
    let Reply::Json(_, mut list) = pods(
        "demo-cluster",
        "old-ca",
        &[(0, "c1", true), (1, "c1", true)],
    )
    .reply
    else {
        unreachable!()
    };
    let Reply::Json(_, new_pod) = pods("demo-cluster", &ca, &[(2, "c2", true)]).reply else {
        unreachable!()
    };
    list["items"]
        .as_array_mut()
        .unwrap()
        .push(new_pod["items"][0].clone());
    script[at] = expect(Method::GET, &format!("{NS}/pods"), Reply::Json(200, list));
    let r = reconcile_rollout(script, None, None, &marks).await;
    assert_eq!(partition(&r.bodies), 1);
    assert!(
        rollout_line(&r).contains("by readiness alone"),
        "{}",
        rollout_line(&r)
    );
}
