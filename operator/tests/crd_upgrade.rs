//! The operator's CRD upgrade at start against a mocked API server (tower-test): the calls
//! it makes, and the CRD it applies.

use std::time::Duration;

use filegrid_operator::crd::FileGrid;
use filegrid_operator::crd_upgrade::{CrdOutcome, VERSION_ANNOTATION, ensure};
use http::{Method, Request, Response};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::client::Body;
use kube::{Api, Client, CustomResourceExt};
use serde_json::{Value, json};

const PATH: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/filegrids.filegrid.io";

/// One request the operator made: method, query and body.
struct Call {
    method: Method,
    query: String,
    body: Value,
}

/// Answers the GET with `installed` (404 when `None`) and a PATCH with its body; records
/// every call until the client goes away.
fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    installed: Option<Value>,
) -> tokio::task::JoinHandle<Vec<Call>> {
    tokio::spawn(async move {
        let mut calls = vec![];
        while let Ok(Some((req, send))) =
            tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await
        {
            assert_eq!(req.uri().path(), PATH);
            let method = req.method().clone();
            let query = req.uri().query().unwrap_or_default().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let (status, reply) = match (&method, &installed) {
                (&Method::GET, Some(crd)) => (200, crd.clone()),
                (&Method::GET, None) => (
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404}),
                ),
                (&Method::PATCH, _) => (200, body.clone()),
                (m, _) => panic!("unexpected {m}"),
            };
            calls.push(Call {
                method,
                query,
                body,
            });
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
        calls
    })
}

/// The CRD as installed by an earlier chart: the generated one, some other version mark.
fn installed(version: Option<&str>) -> Value {
    let mut crd = serde_json::to_value(FileGrid::crd()).unwrap();
    // An older schema: without the status block the operator now writes.
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    if let Some(v) = version {
        crd["metadata"]["annotations"] = json!({ VERSION_ANNOTATION: v });
    }
    crd
}

async fn run(installed: Option<Value>, version: &str) -> (CrdOutcome, Vec<Call>) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle, installed);
    let api: Api<CustomResourceDefinition> = Api::all(Client::new(svc, "default"));
    let outcome = ensure(&api, version).await.unwrap();
    drop(api);
    (outcome, server.await.unwrap())
}

fn assert_applied(calls: &[Call], version: &str) {
    assert_eq!(
        calls.iter().map(|c| c.method.clone()).collect::<Vec<_>>(),
        [Method::GET, Method::PATCH]
    );
    let patch = &calls[1];
    assert!(
        patch.query.contains("fieldManager=filegrid-operator")
            && patch.query.contains("force=true"),
        "server-side apply, forced over the chart's fields: {}",
        patch.query
    );
    assert_eq!(
        patch.body["metadata"]["annotations"][VERSION_ANNOTATION],
        version
    );
    let ours = serde_json::to_value(FileGrid::crd()).unwrap();
    assert_eq!(patch.body["spec"], ours["spec"], "the operator's own CRD");
    assert!(
        patch.body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            .is_object()
    );
}

#[tokio::test]
async fn an_older_crd_from_the_chart_is_replaced_by_the_operators_own() {
    // The chart's first install marks nothing; a later operator's mark is older than ours.
    for mark in [None, Some("0.0.9")] {
        let (outcome, calls) = run(Some(installed(mark)), "0.1.0").await;
        assert_eq!(outcome, CrdOutcome::Applied, "{mark:?}");
        assert_applied(&calls, "0.1.0");
    }
}

#[tokio::test]
async fn a_missing_crd_is_applied() {
    let (outcome, calls) = run(None, "0.1.0").await;
    assert_eq!(outcome, CrdOutcome::Applied);
    assert_applied(&calls, "0.1.0");
}

#[tokio::test]
async fn a_crd_from_a_newer_operator_is_left_alone() {
    let (outcome, calls) = run(Some(installed(Some("0.2.0"))), "0.1.0").await;
    assert_eq!(
        outcome,
        CrdOutcome::KeptNewer {
            installed: "0.2.0".into()
        }
    );
    assert_eq!(
        calls.iter().map(|c| c.method.clone()).collect::<Vec<_>>(),
        [Method::GET],
        "read, never patched"
    );
}
