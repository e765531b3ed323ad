//! The heads' client gate: which role each route needs, and the middleware that checks the
//! request's credential against it.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use filegrid_proto::ErrorCode;

use super::credentials::LiveCredentials;
use super::{Access, Principal};
use crate::http::ApiError;

/// What a route asks of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Anyone: liveness and readiness probes.
    Public,
    /// A client credential with at least this role.
    Client(Access),
    /// A signed request from a FileGrid server; the handler verifies it.
    Peer,
}

/// The role `method` on route `path` (axum's matched route, `None` when nothing matched)
/// needs. Anything not listed needs admin, so a new route is closed until it is listed.
pub fn need(method: &Method, path: Option<&str>) -> Need {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match path {
        Some("/health" | "/ready") => Need::Public,
        Some("/v1/heartbeat") => Need::Peer,
        Some(
            "/metrics" | "/v1/leader" | "/v1/heads" | "/v1/status" | "/v1/cluster" | "/v1/repair",
        ) if read => Need::Client(Access::Read),
        Some("/v1/files" | "/v1/files/{*path}") if read => Need::Client(Access::Read),
        Some("/v1/files/{*path}") if matches!(*method, Method::PUT | Method::DELETE) => {
            Need::Client(Access::Write)
        }
        // Unmatched paths answer 404 to any valid credential, and 401 to the rest.
        None => Need::Client(Access::Read),
        _ => Need::Client(Access::Admin),
    }
}

/// Who may call the head's API.
#[derive(Clone, Debug)]
pub struct ClientGate {
    /// `None` when running insecure: every call is let through.
    pub credentials: Option<LiveCredentials>,
    /// Requests without a credential may read.
    pub anonymous_read: bool,
}

/// Outcome of checking one request, before its handler runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow(Principal),
    Unauthorized(String),
    Forbidden(String),
}

impl ClientGate {
    /// Decides whether a caller presenting `authorization` may do what `need` asks.
    pub fn judge(&self, need: Need, authorization: Option<&str>) -> Verdict {
        let Some(credentials) = &self.credentials else {
            return Verdict::Allow(Principal {
                name: "insecure".into(),
                access_key: String::new(),
                role: Access::Admin,
            });
        };
        let wanted = match need {
            Need::Public | Need::Peer => return Verdict::Allow(Principal::anonymous()),
            Need::Client(access) => access,
        };
        let principal = match authorization {
            None if self.anonymous_read => Principal::anonymous(),
            None => {
                return Verdict::Unauthorized(
                    "this call needs a credential: send Authorization: Bearer <access_key>:<secret>"
                        .into(),
                );
            }
            Some(value) => match credentials.load().verify_header(value) {
                Ok(p) => p.clone(),
                Err(e) => return Verdict::Unauthorized(e.to_string()),
            },
        };
        if principal.role >= wanted {
            Verdict::Allow(principal)
        } else {
            Verdict::Forbidden(format!(
                "{} has the {} role; this call needs {wanted}",
                principal.name, principal.role
            ))
        }
    }
}

/// Middleware: checks the credential, then hands the handler the [`Principal`] as an
/// extension. 401 answers carry `WWW-Authenticate` so clients know what to send.
pub async fn check(State(gate): State<ClientGate>, mut req: Request, next: Next) -> Response {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str());
    let need = need(req.method(), path);
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match gate.judge(need, authorization) {
        Verdict::Allow(principal) => {
            let audit = (need == Need::Client(Access::Admin)).then(|| {
                (
                    principal.name.clone(),
                    req.method().clone(),
                    req.uri().path().to_string(),
                )
            });
            req.extensions_mut().insert(principal);
            let resp = next.run(req).await;
            if let Some((principal, method, path)) = audit {
                tracing::info!(target: "filegrid::audit", %principal, %method, %path,
                    status = resp.status().as_u16(), "admin call");
            }
            resp
        }
        Verdict::Unauthorized(why) => {
            let mut resp = ApiError::new(ErrorCode::Unauthorized, why).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"filegrid\""),
            );
            resp
        }
        Verdict::Forbidden(why) => {
            tracing::info!(target: "filegrid::audit", method = %req.method(), path = %req.uri().path(), reason = %why, "call refused");
            ApiError::new(ErrorCode::Forbidden, why).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;

    fn gate(anonymous_read: bool) -> ClientGate {
        let file = r#"
[[principal]]
name = "ro"
access_key = "AKREAD"
secret = "read-secret-0123456789"
role = "read"
[[principal]]
name = "rw"
access_key = "AKWRITE"
secret = "write-secret-0123456789"
role = "write"
[[principal]]
name = "root"
access_key = "AKADMIN"
secret = "admin-secret-0123456789"
role = "admin"
"#;
        ClientGate {
            credentials: Some(LiveCredentials::fixed(Credentials::parse(file).unwrap())),
            anonymous_read,
        }
    }

    #[test]
    fn routes_need_the_role_their_effect_needs() {
        use Access::*;
        let files = Some("/v1/files/{*path}");
        assert_eq!(need(&Method::GET, Some("/health")), Need::Public);
        assert_eq!(need(&Method::GET, Some("/ready")), Need::Public);
        assert_eq!(need(&Method::GET, files), Need::Client(Read));
        assert_eq!(need(&Method::HEAD, files), Need::Client(Read));
        assert_eq!(need(&Method::PUT, files), Need::Client(Write));
        assert_eq!(need(&Method::DELETE, files), Need::Client(Write));
        assert_eq!(need(&Method::GET, Some("/v1/files")), Need::Client(Read));
        assert_eq!(need(&Method::GET, Some("/metrics")), Need::Client(Read));
        assert_eq!(need(&Method::POST, Some("/v1/heartbeat")), Need::Peer);
        for admin in [
            "/v1/cluster/{id}/decommission",
            "/v1/cluster/{id}/recommission",
            "/v1/admin/fenced-write",
        ] {
            assert_eq!(
                need(&Method::POST, Some(admin)),
                Need::Client(Admin),
                "{admin}"
            );
        }
        // A route nobody listed is admin-only; a write to a read route too.
        assert_eq!(
            need(&Method::POST, Some("/v1/new-thing")),
            Need::Client(Admin)
        );
        assert_eq!(need(&Method::POST, Some("/v1/status")), Need::Client(Admin));
    }

    #[test]
    fn each_role_gets_what_it_may_and_no_more() {
        let g = gate(false);
        let write = Need::Client(Access::Write);
        let admin = Need::Client(Access::Admin);
        let ro = Some("Bearer AKREAD:read-secret-0123456789");
        let rw = Some("Bearer AKWRITE:write-secret-0123456789");
        let root = Some("Bearer AKADMIN:admin-secret-0123456789");
        assert!(
            matches!(g.judge(Need::Client(Access::Read), ro), Verdict::Allow(p) if p.name == "ro")
        );
        assert!(
            matches!(g.judge(write, ro), Verdict::Forbidden(m) if m.contains("ro has the read role"))
        );
        assert!(matches!(g.judge(write, rw), Verdict::Allow(_)));
        assert!(matches!(g.judge(admin, rw), Verdict::Forbidden(_)));
        assert!(matches!(g.judge(admin, root), Verdict::Allow(_)));
        assert!(matches!(g.judge(write, None), Verdict::Unauthorized(_)));
        assert!(matches!(
            g.judge(write, Some("Bearer AKWRITE:write-secret-012345678X")),
            Verdict::Unauthorized(_)
        ));
        assert!(matches!(g.judge(Need::Public, None), Verdict::Allow(_)));
    }

    #[test]
    fn anonymous_reads_are_off_unless_turned_on_and_never_write() {
        let read = Need::Client(Access::Read);
        assert!(matches!(
            gate(false).judge(read, None),
            Verdict::Unauthorized(_)
        ));
        assert!(matches!(gate(true).judge(read, None), Verdict::Allow(p) if p.name == "anonymous"));
        assert!(matches!(
            gate(true).judge(Need::Client(Access::Write), None),
            Verdict::Forbidden(_)
        ));
        // A wrong credential is not read as anonymous.
        assert!(matches!(
            gate(true).judge(read, Some("Bearer AKREAD:nope")),
            Verdict::Unauthorized(_)
        ));
    }
}
