//! The S3-compatible API of a head, on its own listener (`s3_listen`). See `docs/s3.md`.
//!
//! The S3 protocol (request parsing, AWS Signature V4 in headers and presigned URLs,
//! `aws-chunked` bodies and their trailers, XML answers and errors) is the `s3s` crate's;
//! FileGrid supplies the keys ([`auth::Keys`]), who may do what ([`auth::Roles`]), and the
//! operations over its namespace and data path ([`service::FileGridS3`]). A bucket is a
//! top-level directory of the native namespace and a key maps onto a path below it
//! ([`keys`]), so both APIs see the same files.
//!
//! Reads (every `GET` and `HEAD`: objects, listings, buckets, parts) are served by any head
//! from ZooKeeper's committed state, as the file API's reads are (a standby after a `sync`,
//! see [`crate::head::leader_only`]), so they go on through a leader failover. Every other
//! call is served by the leader: a standby forwards it there unchanged (its signature covers
//! the `Host` header, which is kept), streaming both ways.

pub mod answer;
pub mod auth;
pub mod checksum;
pub mod conditions;
pub mod error;
pub mod forward;
pub mod host;
pub mod keys;
pub mod list;
pub mod multipart;
pub mod parts;
pub mod range;
pub mod service;
pub mod unsupported;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::auth::credentials::LiveCredentials;
use crate::election::{Election, Role};
use crate::files::DataPlane;
use crate::files::servers::Membership;
use crate::head::leader_only::{FORWARDED_BY_HEADER, read_view};
use crate::leadership::Leadership;

/// What the S3 listener needs.
pub struct S3Options {
    pub credentials: Option<LiveCredentials>,
    pub anonymous_read: bool,
    pub domain: Option<String>,
    pub region: String,
    /// This head's id, marked on forwarded requests.
    pub server_id: String,
    /// Forwards requests to the leader's S3 listener.
    pub forward: forward::Forwarder,
}

#[derive(Clone)]
struct Gate {
    election: Arc<Election>,
    membership: Arc<Membership>,
    service: S3Service,
    /// The same operations without signature checks, for an object read the first one
    /// granted and then refused for its `Range` alone ([`range`]).
    again: S3Service,
    server_id: Arc<str>,
    forward: forward::Forwarder,
    region: Arc<str>,
    /// The head has keys to check signatures with (it is not insecure).
    checks_signatures: bool,
}

/// The S3 API as a router for `http::serve`.
pub fn router(dp: Arc<DataPlane>, options: S3Options) -> anyhow::Result<Router> {
    let election = dp.election.clone();
    let membership = dp.membership.clone();
    let operations = service::FileGridS3 {
        dp,
        region: options.region.clone(),
    };
    let config = Arc::new(s3s::config::StaticConfigProvider::new(
        Arc::new(s3_config()),
    ));
    let domain = options.domain.as_deref().map(str::to_ascii_lowercase);
    let mut builder = S3ServiceBuilder::new(operations.clone());
    builder.set_config(config.clone());
    if let Some(creds) = &options.credentials {
        builder.set_auth(auth::Keys {
            credentials: creds.clone(),
        });
    }
    builder.set_access(auth::Roles {
        credentials: options.credentials.clone(),
        anonymous_read: options.anonymous_read,
    });
    if let Some(domain) = &domain {
        builder.set_host(host::Domain(domain.clone()));
    }
    let mut again = S3ServiceBuilder::new(operations);
    again.set_config(config);
    if let Some(domain) = domain {
        again.set_host(host::Domain(domain));
    }
    let gate = Gate {
        election,
        membership,
        service: builder.build(),
        again: again.build(),
        server_id: options.server_id.into(),
        forward: options.forward,
        region: options.region.as_str().into(),
        checks_signatures: options.credentials.is_some(),
    };
    Ok(Router::new().fallback(serve).with_state(gate))
}

/// Limits on what one request may make the head hold in memory.
fn s3_config() -> s3s::config::S3Config {
    let mut c = s3s::config::S3Config::default();
    // The largest XML body a client needs: CompleteMultipartUpload of 10,000 parts (about
    // 1.5 MB). s3s's default, 20 MB, times every connection allowed is too much to hold.
    c.xml_max_body_size = 4 << 20;
    // POST uploads (browser forms) are not supported; their form fields need no room.
    c.post_object_max_file_size = 0;
    c.form_max_field_size = 64 << 10;
    c.form_max_fields_size = 256 << 10;
    c
}

/// Whether a request only reads (pure): S3 reads are exactly its `GET` and `HEAD` calls.
fn reads_only(method: &axum::http::Method) -> bool {
    method == axum::http::Method::GET || method == axum::http::Method::HEAD
}

/// Serves one S3 request and names it: every answer carries a request id, and an error
/// S3's message for its code where it has none ([`answer`]).
async fn serve(State(g): State<Gate>, req: Request) -> Response {
    let method = req.method().clone();
    let mut resp = route(&g, req).await;
    if partial_head(&method, resp.status(), resp.headers()) {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    finish(resp, &method).await
}

/// Whether an answer is a HEAD of part of an object (pure): `200` with a `Content-Range`
/// (a `partNumber` HEAD), which S3 answers `206` as it does the same GET. The protocol layer
/// sets 206 from `Content-Range` for GETs only.
fn partial_head(
    method: &axum::http::Method,
    status: StatusCode,
    headers: &header::HeaderMap,
) -> bool {
    method == axum::http::Method::HEAD
        && status == StatusCode::OK
        && headers.contains_key(header::CONTENT_RANGE)
}

/// Serves a read on any head that can read committed state and everything else on the
/// leader; a standby forwards what it does not serve to the leader.
async fn route(g: &Gate, mut req: Request) -> Response {
    {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let query = req.uri().query();
        if !g.checks_signatures && auth::is_signed(authorization, query) {
            return signed_without_keys();
        }
        if let Some(region) = auth::signed_region(authorization, query)
            && !auth::region_accepted(&region)
        {
            return wrong_region(&region, &g.region);
        }
    }
    if reads_only(req.method())
        && let Some(view) = read_view(&g.election, &g.membership).await
    {
        req.extensions_mut().insert(view);
        return call(g, req).await;
    }
    let st = crate::head::leader_only::status_with_leader(
        &g.election,
        crate::head::leader_only::LEADER_WAIT,
    )
    .await;
    match (st.role, st.leader) {
        (Role::Leader, _) => {
            let Some(lead) = Leadership::current(&g.election) else {
                return unavailable("this head stopped leading; retry shortly");
            };
            let Some(_counted) = g.election.write_admitted() else {
                return unavailable(
                    "this head is stopping and hands leadership over; retry shortly",
                );
            };
            req.extensions_mut().insert(lead);
            call(g, req).await
        }
        (Role::Standby, Some(leader)) if !req.headers().contains_key(FORWARDED_BY_HEADER) => {
            let Some(port) = leader.s3_port else {
                return unavailable(&format!("{} leads but serves no S3 API", leader.server_id));
            };
            match g
                .forward
                .send(&leader.host, port, leader.tls, &g.server_id, req)
                .await
            {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::warn!(leader = %leader.server_id, error = %e, "could not forward an S3 request to the leader");
                    unavailable(&format!(
                        "{} leads, but this head could not reach it",
                        leader.server_id
                    ))
                }
            }
        }
        _ => unavailable("no head leads right now; retry shortly"),
    }
}

/// Hands a request the gate admitted to the protocol layer; an object read with a `Range`
/// S3 ignores is served whole ([`range`]).
async fn call(g: &Gate, mut req: Request) -> Response {
    if !range::ignored(req.method(), req.headers()) {
        return dispatch(&g.service, req).await;
    }
    if !g.checks_signatures {
        // Nothing is signed: the header can go before the protocol layer sees it.
        req.headers_mut().remove(header::RANGE);
        return dispatch(&g.service, req).await;
    }
    let granted = range::Granted::default();
    req.extensions_mut().insert(granted.clone());
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let uri = parts.uri.clone();
    let version = parts.version;
    let headers = range::without_range(&parts.headers);
    let extensions = parts.extensions.clone();
    let first = dispatch(&g.service, Request::from_parts(parts, body)).await;
    // Only a read that passed the signature and access checks and was then refused for its
    // Range (400; 416 for `bytes=-`, read as an empty suffix) is served again.
    let refused = [StatusCode::BAD_REQUEST, StatusCode::RANGE_NOT_SATISFIABLE];
    if !refused.contains(&first.status()) || !granted.object_read() {
        return first;
    }
    let Some(uri) = unsigned_uri(uri) else {
        return first;
    };
    let mut again = Request::new(Body::empty());
    *again.method_mut() = method;
    *again.uri_mut() = uri;
    *again.version_mut() = version;
    *again.headers_mut() = headers;
    *again.extensions_mut() = extensions;
    tracing::debug!("an object read's Range is not a byte range S3 reads: served whole");
    dispatch(&g.again, again).await
}

/// `uri` without a presigned URL's signature parameters (`None` if it cannot be rebuilt).
fn unsigned_uri(uri: axum::http::Uri) -> Option<axum::http::Uri> {
    let Some(query) = uri.query() else {
        return Some(uri);
    };
    let query = range::unsigned_query(query);
    let path_and_query = if query.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut parts = uri.into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    axum::http::Uri::from_parts(parts).ok()
}

/// One call of a protocol service.
async fn dispatch(service: &S3Service, req: Request) -> Response {
    let mut svc = service.clone();
    match tower::Service::call(&mut svc, req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => {
            tracing::warn!(error = ?e, "S3 request failed inside the protocol layer");
            unavailable("the request could not be served")
        }
    }
}

/// Names `resp` (a forwarded answer keeps the leader's name) and completes its error body.
async fn finish(mut resp: Response, method: &axum::http::Method) -> Response {
    let id = match resp
        .headers()
        .get(answer::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(id) => id.to_string(),
        None => {
            let id = answer::request_id();
            if let Ok(v) = header::HeaderValue::from_str(&id) {
                resp.headers_mut().insert(answer::REQUEST_ID_HEADER, v);
            }
            id
        }
    };
    let status = resp.status();
    let xml = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("xml"));
    // Only a whole error body of a known, small length is read and completed; anything else
    // streams through untouched.
    let length = axum::body::HttpBody::size_hint(resp.body())
        .exact()
        .or_else(|| {
            resp.headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        });
    let small = length.is_some_and(|n| n <= answer::MAX_ERROR_BODY as u64);
    let failed = status.is_client_error() || status.is_server_error();
    if !failed || !xml || !small {
        if failed {
            tracing::debug!(request_id = %id, %method, status = status.as_u16(), "S3 request refused");
        }
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, answer::MAX_ERROR_BODY).await {
        Ok(b) => b,
        Err(e) => {
            // The body broke off (a forwarded answer whose connection dropped).
            tracing::debug!(request_id = %id, error = %e, "S3 error body not completed");
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::empty());
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let code = answer::error_code(&text).unwrap_or("").to_string();
    // A 501 answers a call FileGrid does not serve: the client's choice, not a failure.
    if status.is_server_error()
        && status != StatusCode::SERVICE_UNAVAILABLE
        && status != StatusCode::NOT_IMPLEMENTED
    {
        tracing::warn!(request_id = %id, %method, status = status.as_u16(), %code, "S3 request failed");
    } else {
        tracing::debug!(request_id = %id, %method, status = status.as_u16(), %code, "S3 request refused");
    }
    let body = match answer::complete_error(&text, &id) {
        Some(done) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, done.len().into());
            Body::from(done)
        }
        None => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// On the leader, removes multipart uploads left alone longer than `max_age`, until `stop`.
pub async fn collect_uploads(
    dp: Arc<DataPlane>,
    max_age: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let every = (max_age / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let Some(lead) = Leadership::current(&dp.election) else {
            continue;
        };
        match crate::files::uploads::collect_abandoned(&lead, max_age).await {
            Ok(0) => {}
            Ok(_) => dp.repairs.orphaned(),
            Err(e) => tracing::warn!(error = %e, "could not collect abandoned multipart uploads"),
        }
    }
}

/// S3's answer to a request signed for a region it cannot take (`400
/// AuthorizationHeaderMalformed` naming the right one): s3cmd, whose default region is `US`,
/// signs the request again for the region named.
fn wrong_region(signed: &str, ours: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region '{}' is wrong; expecting '{}'</Message><Region>{}</Region></Error>",
        answer::xml_escape(signed),
        answer::xml_escape(ours),
        answer::xml_escape(ours)
    );
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

/// A signed request to a head without security, which has no keys to check it against:
/// `403 AccessDenied` (clients do not retry it), saying how to send it.
fn signed_without_keys() -> Response {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>This grid runs without security (insecure) and has no keys to check signatures against: send requests unsigned (aws --no-sign-request, boto3 Config(signature_version=UNSIGNED), rclone without keys)</Message></Error>";
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

/// A `503 ServiceUnavailable` in S3's XML, which SDKs retry.
fn unavailable(message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code><Message>{}</Message></Error>",
        answer::xml_escape(message)
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "application/xml"),
            (header::RETRY_AFTER, "1"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn only_gets_and_heads_are_served_as_reads_on_any_head() {
        assert!(reads_only(&Method::GET));
        assert!(reads_only(&Method::HEAD));
        for m in [
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            assert!(!reads_only(&m), "{m} must go to the leader");
        }
    }

    #[test]
    fn only_a_head_naming_a_content_range_becomes_partial() {
        let mut ranged = header::HeaderMap::new();
        ranged.insert(header::CONTENT_RANGE, "bytes 0-9/20".parse().unwrap());
        let plain = header::HeaderMap::new();
        assert!(partial_head(&Method::HEAD, StatusCode::OK, &ranged));
        assert!(!partial_head(&Method::HEAD, StatusCode::OK, &plain));
        assert!(!partial_head(&Method::GET, StatusCode::OK, &ranged));
        assert!(!partial_head(
            &Method::HEAD,
            StatusCode::NOT_MODIFIED,
            &ranged
        ));
    }

    #[test]
    fn an_unavailable_answer_is_escaped_xml_that_sdks_retry() {
        let r = unavailable("a <b> & c");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(answer::xml_escape("a <b> & c"), "a &lt;b&gt; &amp; c");
    }
}
