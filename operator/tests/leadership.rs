//! The operator's leadership guard against a mocked API server: it steps down when the Lease
//! is another replica's, and before its term ends when renewals stop being confirmed.

use std::time::{Duration, SystemTime};

use filegrid_operator::leadership::{StepDown, guard};
use http::{Request, Response};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};

const PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/filegrid-system/leases/filegrid-operator-leader";

fn lease(holder: &str, renewed: SystemTime) -> Value {
    let t = k8s_openapi::jiff::Timestamp::try_from(renewed).unwrap();
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "filegrid-operator-leader", "namespace": "filegrid-system"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": t.to_string()}})
}

/// Answer each GET of the Lease with the next reply, then 401 forever.
fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    replies: Vec<(u16, Value)>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 0;
        let mut replies = replies.into_iter();
        while let Some((req, send)) = handle.next_request().await {
            assert_eq!(req.uri().path(), PATH);
            let (status, body) = replies.next().unwrap_or((
                401,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Unauthorized", "code": 401}),
            ));
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap(),
            );
            n += 1;
        }
        n
    })
}

fn api(
    svc: tower_test::mock::Mock<Request<Body>, Response<Body>>,
) -> Api<k8s_openapi::api::coordination::v1::Lease> {
    Api::namespaced(Client::new(svc, "default"), "filegrid-system")
}

#[tokio::test]
async fn another_holder_means_stepping_down_at_once() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = serve(handle, vec![(200, lease("op-b", SystemTime::now()))]);
    let why = tokio::time::timeout(
        Duration::from_secs(5),
        guard(api(svc), "filegrid-operator-leader".into(), "op-a".into()),
    )
    .await
    .unwrap();
    assert_eq!(why, StepDown::NotHolder);
    assert_eq!(server.await.unwrap(), 1);
}

#[tokio::test]
async fn renewals_refused_mean_stepping_down_before_the_term_ends() {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    // Renewed 10 s ago: the term ends in 5 s. Every later read is refused (401).
    let renewed = SystemTime::now() - Duration::from_secs(10);
    let server = serve(handle, vec![(200, lease("op-a", renewed))]);
    let started = std::time::Instant::now();
    let why = tokio::time::timeout(
        Duration::from_secs(10),
        guard(api(svc), "filegrid-operator-leader".into(), "op-a".into()),
    )
    .await
    .unwrap();
    assert_eq!(why, StepDown::NotRenewed);
    // Stepped down before the term's end (5 s), leaving the margin to stop.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(server.await.unwrap() >= 2);
}
