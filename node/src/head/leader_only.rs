//! Leader-only routes, gated in this one place: the leader serves them, and each request it
//! serves carries the [`Leadership`] it was admitted under (an axum extension), so every
//! metadata write of that request is fenced with the same token. A standby either redirects
//! the client to the leader (`307`, the default) or, with `standby_proxy`, forwards the
//! request to the leader and streams the answer back, for clients that cannot reach the
//! leader's advertised address (a port published by docker compose, a Kubernetes
//! port-forward). A head that knows no leader answers `503`.
//!
//! File reads (GET and HEAD of a file, listings) are served by any head ([`readable`]): the
//! leader with its own session, a standby from ZooKeeper's committed state after a `sync`
//! ([`ReadView`]), so reads go on while leadership changes hands. Only a standby that cannot
//! sync (no ZooKeeper session) passes a read on to the leader like a leader-only call.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use filegrid_proto::{ErrorBody, ErrorCode};

use std::sync::Arc;

use super::api::ApiState;
use crate::election::{Election, Role};
use crate::files::servers::Membership;
use crate::http::ApiError;
use crate::leadership::{Leadership, ReadView};
use crate::zk::records::LeaderRecord;

/// Set on a forwarded request: a head never forwards a request twice, so two heads that
/// briefly disagree on who leads cannot bounce a request between them.
pub const FORWARDED_BY_HEADER: &str = filegrid_proto::headers::FORWARDED_BY;

/// Hop-by-hop headers (RFC 9110 §7.6.1), which a proxy must not pass on, and `Expect`, which
/// the standby has already answered.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::EXPECT,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
];

/// `routes` as leader-only routes that a standby may forward.
pub fn forwardable(routes: Router, state: ApiState) -> Router {
    routes.route_layer(axum::middleware::from_fn_with_state(
        state,
        forward_or_redirect,
    ))
}

/// `routes` as leader-only routes that are never forwarded (heartbeats: a cluster server
/// must learn who leads, not have a standby carry its reports).
pub fn redirected(routes: Router, state: ApiState) -> Router {
    routes.route_layer(axum::middleware::from_fn_with_state(state, redirect))
}

/// `routes` as read routes, served by any head that can read committed state: each request
/// gets the [`ReadView`] it reads through.
pub fn readable(routes: Router, state: ApiState) -> Router {
    routes.route_layer(axum::middleware::from_fn_with_state(state, read_here))
}

/// Longest a standby waits for ZooKeeper's `sync` before passing a read to the leader.
const SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a read is served, from what the head knows of itself (pure).
#[derive(Debug, PartialEq, Eq)]
enum ReadAt {
    /// The leader reads with its own session.
    Leader,
    /// A standby (or a head between roles) reads after a `sync`.
    Synced,
    /// Not connected to ZooKeeper: like a leader-only call.
    Elsewhere,
}

/// `servers_known`: the head has read the cluster servers' registrations (before that it
/// could find no replica of anything).
fn read_at(role: Role, zk_connected: bool, servers_known: bool) -> ReadAt {
    match (role, zk_connected, servers_known) {
        (_, false, _) => ReadAt::Elsewhere,
        (Role::Leader, true, _) => ReadAt::Leader,
        (_, true, true) => ReadAt::Synced,
        (_, true, false) => ReadAt::Elsewhere,
    }
}

async fn read_here(State(s): State<ApiState>, mut req: Request, next: Next) -> Response {
    match read_view(&s.election, &s.membership).await {
        Some(view) => {
            req.extensions_mut().insert(view);
            next.run(req).await
        }
        None => {
            let st = s.election.status().borrow().clone();
            if st.role == Role::Leader {
                return ApiError::new(
                    ErrorCode::NoLeader,
                    "this head cannot read ZooKeeper right now; retry shortly",
                )
                .into_response();
            }
            elsewhere(&s, st.role, st.leader, req, true).await
        }
    }
}

/// The view this head reads committed state through right now, or `None` when it cannot
/// read here (the read goes to the leader). Shared by the file API and the S3 API.
pub(crate) async fn read_view(
    election: &Arc<Election>,
    membership: &Membership,
) -> Option<ReadView> {
    let (role, connected) = {
        let st = election.status();
        let st = st.borrow();
        (st.role, st.zk_connected)
    };
    match read_at(role, connected, membership.loaded()) {
        ReadAt::Leader => match Leadership::current(election) {
            Some(lead) => Some(ReadView::of(&lead)),
            // Leadership ended just now: read as any other head.
            None => synced(election).await,
        },
        ReadAt::Synced => synced(election).await,
        ReadAt::Elsewhere => None,
    }
}

async fn synced(election: &Election) -> Option<ReadView> {
    match ReadView::synced(election, SYNC_TIMEOUT).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read committed state here; passing the read to the leader");
            None
        }
    }
}

async fn forward_or_redirect(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    gate(s, req, next, true).await
}

async fn redirect(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    gate(s, req, next, false).await
}

/// Longest a head that knows no leader holds a write for one to be elected (a handover or a
/// failover in progress) before it answers `503 no_leader`.
pub(crate) const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The head's status once it leads or knows a leader, waiting up to `limit` for that; as it
/// stands after `limit` otherwise.
pub(crate) async fn status_with_leader(
    election: &Election,
    limit: std::time::Duration,
) -> crate::election::HeadStatus {
    let mut status = election.status();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let st = status.borrow_and_update().clone();
        if knows_leader(st.role, st.leader.is_some()) {
            return st;
        }
        match tokio::time::timeout_at(deadline, status.changed()).await {
            Ok(Ok(())) => continue,
            _ => return st,
        }
    }
}

/// The leader epoch a client addressed its request to (`x-filegrid-leader-epoch`), if it
/// says; `Err` for a value that is not a number (pure).
fn sent_to_epoch(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    match headers.get(filegrid_proto::headers::LEADER_EPOCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or(()),
    }
}

/// Whether a head in `role` can place a write: it leads, or knows who does.
fn knows_leader(role: Role, leader_known: bool) -> bool {
    role == Role::Leader || leader_known
}

async fn gate(s: ApiState, mut req: Request, next: Next, may_forward: bool) -> Response {
    let st = status_with_leader(&s.election, LEADER_WAIT).await;
    match (st.role, st.leader) {
        (Role::Leader, _) => match Leadership::current(&s.election) {
            Some(lead) => {
                let Some(_counted) = s.election.write_admitted() else {
                    return ApiError::new(
                        ErrorCode::NoLeader,
                        "this head is stopping and hands leadership over; retry shortly",
                    )
                    .into_response();
                };
                match sent_to_epoch(req.headers()) {
                    Err(()) => {
                        return ApiError::new(
                            ErrorCode::BadHeader,
                            format!(
                                "{} must be a leader epoch (a number)",
                                filegrid_proto::headers::LEADER_EPOCH
                            ),
                        )
                        .into_response();
                    }
                    Ok(Some(sent_to)) if sent_to != lead.epoch() => {
                        return ApiError::new(
                            ErrorCode::StaleEpoch,
                            format!(
                                "sent to the leader of epoch {sent_to}; this head leads epoch {}",
                                lead.epoch()
                            ),
                        )
                        .into_response();
                    }
                    Ok(_) => {}
                }
                req.extensions_mut().insert(lead);
                next.run(req).await
            }
            // Leadership ended between the status and the token: like any other head that
            // knows no leader right now.
            None => ApiError::new(
                ErrorCode::NoLeader,
                "this head stopped leading; retry shortly",
            )
            .into_response(),
        },
        (role, leader) => elsewhere(&s, role, leader, req, may_forward).await,
    }
}

/// A request this head does not serve: a standby that knows the leader forwards it there
/// (with `standby_proxy`) or redirects the client; any other head answers `503 no_leader`.
async fn elsewhere(
    s: &ApiState,
    role: Role,
    leader: Option<LeaderRecord>,
    req: Request,
    may_forward: bool,
) -> Response {
    match (role, leader) {
        (Role::Standby, Some(leader)) => match &s.proxy {
            Some(client) if may_forward && !req.headers().contains_key(FORWARDED_BY_HEADER) => {
                forward(client, s, &leader, req).await
            }
            _ => redirect_to(&leader, &req),
        },
        (role, _) => ApiError::new(
            ErrorCode::NoLeader,
            format!("this head is {role:?} and knows no leader; retry shortly").to_lowercase(),
        )
        .into_response(),
    }
}

fn leader_url(leader: &LeaderRecord, req: &Request) -> String {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let scheme = crate::http::Outgoing::scheme(leader.tls);
    format!("{scheme}://{}:{}{}", leader.host, leader.api_port, pq)
}

fn redirect_to(leader: &LeaderRecord, req: &Request) -> Response {
    let location = leader_url(leader, req);
    let mut body = ErrorBody::new(
        ErrorCode::NotLeader,
        format!("{} leads; retry at {location}", leader.server_id),
    );
    body.leader = Some(leader.server_id.to_string());
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response()
}

/// Sends `req` to the leader, body streamed, and streams the leader's answer back.
async fn forward(
    client: &reqwest::Client,
    s: &ApiState,
    leader: &LeaderRecord,
    req: Request,
) -> Response {
    let url = leader_url(leader, &req);
    match send_on(client, s.server_id.as_str(), &url, req).await {
        Ok(resp) => resp,
        Err(e) => {
            let e = crate::cluster::client::describe(&e);
            tracing::warn!(leader = %leader.server_id, %url, error = %e, "could not forward a request to the leader");
            ApiError::new(
                ErrorCode::LeaderUnreachable,
                format!(
                    "{} leads, but this head could not reach it: {e}",
                    leader.server_id
                ),
            )
            .into_response()
        }
    }
}

/// Sends `req` on to `url` with the body streamed, marked as forwarded by `me`, and streams
/// the answer back.
async fn send_on(
    client: &reqwest::Client,
    me: &str,
    url: &str,
    req: Request,
) -> Result<Response, reqwest::Error> {
    let (parts, body) = req.into_parts();
    let mut headers = without_hop_by_hop(&parts.headers);
    if let Ok(me) = me.parse() {
        headers.insert(FORWARDED_BY_HEADER, me);
    }
    let answer = client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await?;
    let (status, headers) = (answer.status(), without_hop_by_hop(answer.headers()));
    let mut resp = Response::new(Body::from_stream(answer.bytes_stream()));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

pub(crate) fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for h in HOP_BY_HOP {
        out.remove(h);
    }
    out.remove("keep-alive");
    out.remove("proxy-connection");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_a_write_was_sent_to_is_read_from_its_header() {
        let mut h = HeaderMap::new();
        assert_eq!(sent_to_epoch(&h), Ok(None));
        h.insert(filegrid_proto::headers::LEADER_EPOCH, "7".parse().unwrap());
        assert_eq!(sent_to_epoch(&h), Ok(Some(7)));
        h.insert(
            filegrid_proto::headers::LEADER_EPOCH,
            "seven".parse().unwrap(),
        );
        assert_eq!(sent_to_epoch(&h), Err(()));
    }

    #[test]
    fn a_write_waits_only_while_no_leader_is_known() {
        assert!(knows_leader(Role::Leader, false));
        assert!(knows_leader(Role::Standby, true));
        assert!(!knows_leader(Role::Standby, false));
        assert!(!knows_leader(Role::Candidate, false));
    }

    #[test]
    fn reads_are_served_where_committed_state_can_be_read() {
        assert_eq!(read_at(Role::Leader, true, true), ReadAt::Leader);
        assert_eq!(read_at(Role::Standby, true, true), ReadAt::Synced);
        assert_eq!(read_at(Role::Candidate, true, true), ReadAt::Synced);
        assert_eq!(read_at(Role::Standby, false, true), ReadAt::Elsewhere);
        assert_eq!(read_at(Role::Leader, false, true), ReadAt::Elsewhere);
        // A standby that has not read the cluster servers yet passes reads on.
        assert_eq!(read_at(Role::Standby, true, false), ReadAt::Elsewhere);
        assert_eq!(read_at(Role::Leader, true, false), ReadAt::Leader);
    }
}
