//! The reconcile loop against a mocked API server (tower-test) and a fake head, asserting
//! the exact calls, in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use filegrid_operator::crd::{FileGrid, FileGridStatus};
use filegrid_operator::head_api::{ClusterServer, HeadApi, HeadApiError, Leader, ServerState};
use filegrid_operator::metrics::Metrics;
use filegrid_operator::reconciler::{
    BUSY_REQUEUE, Context, STEADY_REQUEUE, backoff, error_policy, reconcile,
};
use filegrid_proto::ServerId;
use futures::future::BoxFuture;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;

/// A head whose answers the test sets; every call is appended to the shared log.
struct FakeHead {
    log: Log,
    leader: Option<Leader>,
    servers: Vec<ClusterServer>,
}

impl HeadApi for FakeHead {
    fn leader<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<Leader, HeadApiError>> {
        self.log
            .lock()
            .unwrap()
            .push(format!("head GET {base}/v1/leader"));
        Box::pin(async move { self.leader.clone().ok_or(HeadApiError::NoLeader) })
    }
    fn cluster_servers<'a>(
        &'a self,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<Vec<ClusterServer>, HeadApiError>> {
        self.log
            .lock()
            .unwrap()
            .push(format!("head GET {}/v1/cluster", leader.host));
        Box::pin(async move { Ok(self.servers.clone()) })
    }
    fn decommission<'a>(
        &'a self,
        leader: &'a Leader,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>> {
        self.log.lock().unwrap().push(format!(
            "head POST {}/v1/cluster/{id}/decommission",
            leader.host
        ));
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
}

async fn run(
    fg: FileGrid,
    script: Vec<Expect>,
    leader: Option<Leader>,
    servers: Vec<ClusterServer>,
) -> Run {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log: Log = Arc::default();
    let server = serve(handle, script, log.clone());
    let metrics = Arc::new(Metrics::new().unwrap());
    let head = Arc::new(FakeHead {
        log: log.clone(),
        leader,
        servers,
    });
    let ctx = Arc::new(Context::new(
        Client::new(svc, "default"),
        head,
        metrics.clone(),
    ));
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
    Run {
        action,
        bodies,
        log,
        metrics,
    }
}

/// Calls of a full reconcile of the `demo` grid, up to (not including) the leader lookup.
fn children_script(existing_cluster: Reply, monitor: bool) -> Vec<Expect> {
    let mut s = vec![
        apply(&format!("{NS}/configmaps/demo-config")),
        apply(&format!("{NS}/services/demo-head-headless")),
        apply(&format!("{NS}/services/demo-head")),
        apply(&format!("{NS}/services/demo-cluster-headless")),
    ];
    if monitor {
        s.push(apply(&format!("{NS}/services/demo-monitor")));
    }
    s.push(apply(&format!("{APPS}/statefulsets/demo-head")));
    s.push(expect(
        Method::GET,
        &format!("{APPS}/statefulsets/demo-cluster"),
        existing_cluster,
    ));
    s
}

fn after_cluster_script(monitor: bool) -> Vec<Expect> {
    let mut s = vec![apply(&format!("{APPS}/statefulsets/demo-cluster"))];
    if monitor {
        s.push(apply(&format!("{APPS}/deployments/demo-monitor")));
    }
    s.extend([
        apply(&format!("{POLICY}/poddisruptionbudgets/demo-head")),
        apply(&format!("{POLICY}/poddisruptionbudgets/demo-cluster")),
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
    let mut s = children_script(existing, true);
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
    assert_eq!(r.bodies[0]["kind"], "ConfigMap");
    assert!(
        r.bodies[0]["data"]["head.toml"]
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
            .any(|l| l == "head GET http://demo-head.team-a.svc:9669/v1/leader"),
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

    // Second pass with that status stored: the same applies, but no status write.
    let mut fg = fixture("minimal");
    fg.status = Some(serde_json::from_value::<FileGridStatus>(status).unwrap());
    let second = run(
        fg,
        full_script(existing_cluster(3), false),
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

    // Drained: the StatefulSet shrinks to 3.
    let mut script = children_script(existing_cluster(4), true);
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
    let applied = r
        .bodies
        .iter()
        .find(|b| b["kind"] == "StatefulSet" && b["metadata"]["name"] == "demo-cluster")
        .unwrap();
    assert_eq!(applied["spec"]["replicas"], 3);
    assert_eq!(
        r.bodies.last().unwrap()["status"].get("decommissioning"),
        None
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
    let script = vec![
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
    ];
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
    let script = vec![
        apply(&format!("{ns}/configmaps/files-config")),
        apply(&format!("{ns}/services/files-head-headless")),
        apply(&format!("{ns}/services/files-head")),
        apply(&format!("{ns}/services/files-cluster-headless")),
        apply(&format!("{ns}/services/files-monitor")),
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
        expect(Method::GET, sm, empty_list()),
        expect(
            Method::PATCH,
            "/apis/filegrid.io/v1alpha1/namespaces/storage/filegrids/files/status",
            Reply::EchoWith(stored),
        ),
    ];
    let r = run(fixture("zones"), script, Some(leader()), vec![]).await;
    assert!(r.action.is_ok(), "{:?}", r.action);
    let sm_body = &r.bodies[12];
    assert_eq!(sm_body["kind"], "ServiceMonitor");
    assert_eq!(sm_body["spec"]["endpoints"][0]["port"], "metrics");
    // Only the scheduled pod without a zone is annotated, with its node's label.
    assert_eq!(
        r.bodies[15],
        json!({"metadata": {"annotations": {"filegrid.io/zone": "eu-1a"}}})
    );
    let status = &r.bodies.last().unwrap()["status"];
    assert_eq!(condition(status, "Available")["status"], "True", "{status}");
}
