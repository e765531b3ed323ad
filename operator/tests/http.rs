//! The real head API client and the operator's own HTTP endpoints, over real sockets.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use filegrid_operator::head_api::{HeadAccess, HeadApi, HeadApiError, HttpHeadApi, ServerState};
use filegrid_operator::metrics::Metrics;
use filegrid_operator::run::http_router;
use serde_json::json;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

type Calls = Arc<Mutex<Vec<String>>>;

/// A head that leads (port from the listener) and records decommission calls.
async fn leader_head(calls: Calls) -> (String, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new()
        .route(
            "/v1/leader",
            get(move || async move {
                Json(json!({"server_id": "head-0", "host": "127.0.0.1", "api_port": port, "epoch": 7, "elected_at": 1767225600000u64}))
            }),
        )
        .route(
            "/v1/cluster",
            get(|| async {
                Json(json!([
                    {"id": "c-0", "host": "10.0.0.1", "port": 9700, "zone": null, "capacity_bytes": 10, "used_bytes": 1, "state": "live", "chunks": 3},
                    {"id": "c-1", "host": "10.0.0.2", "port": 9700, "zone": "a", "capacity_bytes": 10, "used_bytes": 0, "state": "drained", "chunks": 0},
                    {"id": "c-2", "host": "10.0.0.3", "port": 9700, "zone": "a", "capacity_bytes": 10, "used_bytes": 0, "state": "rebalancing", "chunks": 0}
                ]))
            }),
        )
        .route(
            "/v1/cluster/{id}/decommission",
            post(|State(calls): State<Calls>, Path(id): Path<String>| async move {
                calls.lock().unwrap().push(id.clone());
                (StatusCode::ACCEPTED, Json(json!({"id": id, "state": "draining"})))
            }),
        )
        .route(
            "/v1/cluster/{id}/recommission",
            post(|State(calls): State<Calls>, Path(id): Path<String>| async move {
                calls.lock().unwrap().push(format!("recommission {id}"));
                (StatusCode::OK, Json(json!({"id": id, "was": "draining"})))
            }),
        )
        .with_state(calls);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), port)
}

#[tokio::test]
async fn head_api_reads_leader_and_cluster_and_decommissions_on_the_leader() {
    let calls: Calls = Arc::default();
    let (leader_url, port) = leader_head(calls.clone()).await;
    // A standby answers with a redirect to the leader, as heads do for leader-only calls.
    let target = leader_url.clone();
    let standby = serve(Router::new().route(
        "/v1/leader",
        get(move || {
            let target = target.clone();
            async move {
                let mut h = HeaderMap::new();
                h.insert(
                    header::LOCATION,
                    format!("{target}/v1/leader").parse().unwrap(),
                );
                (StatusCode::TEMPORARY_REDIRECT, h).into_response()
            }
        }),
    ))
    .await;
    let api = HttpHeadApi::new().unwrap();
    let leader = api.leader(&HeadAccess::default(), &standby).await.unwrap();
    assert_eq!(
        (leader.server_id.as_str(), leader.api_port, leader.epoch),
        ("head-0", port, 7)
    );
    let servers = api
        .cluster_servers(&HeadAccess::default(), &leader)
        .await
        .unwrap();
    let states: Vec<_> = servers.iter().map(|s| (s.id.as_str(), s.state)).collect();
    assert_eq!(
        states,
        [
            ("c-0", ServerState::Live),
            ("c-1", ServerState::Drained),
            ("c-2", ServerState::Unknown)
        ]
    );
    api.decommission(&HeadAccess::default(), &leader, "c-0")
        .await
        .unwrap();
    api.recommission(&HeadAccess::default(), &leader, "c-0")
        .await
        .unwrap();
    assert_eq!(*calls.lock().unwrap(), ["c-0", "recommission c-0"]);
}

#[tokio::test]
async fn no_leader_is_a_typed_error() {
    let head = serve(Router::new().route(
        "/v1/leader",
        get(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"code": "no_leader", "message": "no leader"})),
            )
        }),
    ))
    .await;
    let err = HttpHeadApi::new()
        .unwrap()
        .leader(&HeadAccess::default(), &head)
        .await
        .unwrap_err();
    assert!(matches!(err, HeadApiError::NoLeader), "{err}");
}

#[tokio::test]
async fn decommission_failure_carries_status_and_body() {
    let calls: Calls = Arc::default();
    let (_, port) = leader_head(calls).await;
    let leader = filegrid_operator::head_api::Leader {
        server_id: filegrid_proto::ServerId::new("head-0").unwrap(),
        host: "127.0.0.1".into(),
        api_port: port,
        epoch: 1,
        elected_at: 0,
        tls: false,
        s3_port: None,
    };
    // Unknown route on the leader: 404 must surface as an error, not as success.
    let api = HttpHeadApi::new().unwrap();
    let err = api
        .decommission(&HeadAccess::default(), &leader, "a/b")
        .await
        .unwrap_err();
    assert!(
        matches!(err, HeadApiError::Status { status: 404, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn operator_serves_health_and_metrics() {
    let metrics = Arc::new(Metrics::new().unwrap());
    metrics.reconciliations.inc();
    metrics.failures.with_label_values(&["kube"]).inc();
    let base = serve(http_router(metrics)).await;
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("filegrid_operator_reconciliations_total 1"),
        "{text}"
    );
    assert!(
        text.contains("filegrid_operator_reconcile_failures_total{error=\"kube\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("filegrid_operator_reconcile_duration_seconds_bucket"),
        "{text}"
    );
}

/// Serves `router` over TLS on localhost with a certificate for `localhost` signed by a new
/// grid CA; returns the port and the CA.
async fn serve_tls(router: Router) -> (u16, filegrid_operator::security::generate::Ca) {
    use filegrid_operator::security::generate;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let now = 1_767_225_600;
    let ca = generate::new_ca("FileGrid CA test/grid", now, 4_102_444_800).unwrap();
    let leaf = generate::issue(
        &ca,
        "FileGrid CA test/grid",
        "grid-ca",
        &["localhost".to_string()],
        now,
        4_102_444_800,
    )
    .unwrap();
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca)
}

#[tokio::test]
async fn head_api_over_tls_presents_the_admin_credential_and_trusts_only_the_grid_ca() {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let port_cell = Arc::new(Mutex::new(0u16));
    let (seen2, port2) = (seen.clone(), port_cell.clone());
    let router = Router::new()
        .route(
            "/v1/leader",
            get(move |headers: HeaderMap| {
                let port = *port2.lock().unwrap();
                seen2.lock().unwrap().push(
                    headers
                        .get(header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap().to_string()),
                );
                async move {
                    Json(
                        json!({"server_id": "head-0", "host": "localhost", "api_port": port,
                        "epoch": 3, "elected_at": 0, "tls": true}),
                    )
                }
            }),
        )
        .route(
            "/v1/cluster/{id}/decommission",
            post(|Path(id): Path<String>| async move {
                (
                    StatusCode::ACCEPTED,
                    Json(json!({"id": id, "state": "draining"})),
                )
            }),
        );
    let (port, ca) = serve_tls(router).await;
    *port_cell.lock().unwrap() = port;
    let access = HeadAccess {
        token: Some("FGAADMIN:0123456789abcdef0123".into()),
        ca_pem: Some(ca.cert_pem.clone()),
    };
    assert_eq!(access.scheme(), "https");
    assert!(
        !format!("{access:?}").contains("0123456789abcdef"),
        "no secret in logs"
    );
    let api = HttpHeadApi::new().unwrap();
    let base = format!("https://localhost:{port}");
    let leader = api.leader(&access, &base).await.unwrap();
    assert!(leader.tls);
    assert_eq!(
        *seen.lock().unwrap(),
        [Some("Bearer FGAADMIN:0123456789abcdef0123".to_string())]
    );
    // Leader-only calls go to the leader's own address over https.
    api.decommission(&access, &leader, "c-0").await.unwrap();

    // Another grid's CA is not trusted: the handshake fails.
    let other = filegrid_operator::security::generate::new_ca("other", 0, 4_102_444_800).unwrap();
    let wrong = HeadAccess {
        token: access.token.clone(),
        ca_pem: Some(other.cert_pem),
    };
    let err = api.leader(&wrong, &base).await.unwrap_err();
    assert!(matches!(err, HeadApiError::Request { .. }), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing sent without trust");
}
