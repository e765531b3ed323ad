//! The few head-server calls the operator makes, behind a trait so the reconciler can be
//! tested with a fake head while the Kubernetes API is mocked. The bodies are FileGrid's wire
//! types ([`filegrid_proto::head`]), shared with the heads.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use filegrid_proto::head::{LeaderView, RepairReport, ServerView};
use futures::future::BoxFuture;

/// The leader as `GET /v1/leader` reports it.
pub type Leader = LeaderView;
/// One cluster server as `GET /v1/cluster` reports it.
pub type ClusterServer = ServerView;
pub use filegrid_proto::head::ServerState;

#[derive(Debug, thiserror::Error)]
pub enum HeadApiError {
    #[error("no leader head elected")]
    NoLeader,
    #[error("head API request to {url} failed: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("HTTP client for the grid's CA: {0}")]
    Client(#[source] reqwest::Error),
    #[error("head API {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// How the operator reaches one grid's heads: the admin credential it presents and the CA
/// it trusts (https). The default, for an insecure grid, is plain HTTP without a credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeadAccess {
    /// `access_key:secret`, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// PEM of the grid's CA; with it the heads are called over https.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for HeadAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.ca_pem.is_some())
            .finish()
    }
}

impl HeadAccess {
    /// `https` when the grid's CA is known, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Head API of one grid. `base` is any head's URL (the client Service); leader-only calls
/// go to the leader's own address. `access` says how to authenticate and what to trust.
pub trait HeadApi: Send + Sync {
    fn leader<'a>(
        &'a self,
        access: &'a HeadAccess,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Leader, HeadApiError>>;
    fn cluster_servers<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<Vec<ClusterServer>, HeadApiError>>;
    fn decommission<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>>;
    /// Undoes a decommission: the server is live again and takes new chunks.
    fn recommission<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>>;
    /// What the leader's last repair pass found (`GET /v1/repair`).
    fn repair<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<RepairReport, HeadApiError>>;
}

/// The real head API over HTTP(S). One client per CA, made when first needed.
#[derive(Default)]
pub struct HttpHeadApi {
    clients: Mutex<HashMap<Option<String>, reqwest::Client>>,
}

impl HttpHeadApi {
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self::default())
    }

    /// The client trusting exactly `ca_pem` (no other roots), or a plain one.
    fn client(&self, ca_pem: Option<&String>) -> Result<reqwest::Client, HeadApiError> {
        let key = ca_pem.cloned();
        if let Ok(clients) = self.clients.lock()
            && let Some(c) = clients.get(&key)
        {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2));
        if let Some(pem) = ca_pem {
            let ca =
                reqwest::Certificate::from_pem(pem.as_bytes()).map_err(HeadApiError::Client)?;
            builder = builder
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca);
        }
        let client = builder.build().map_err(HeadApiError::Client)?;
        if let Ok(mut clients) = self.clients.lock() {
            // Grids come and go with their CAs; a small cache is enough.
            if clients.len() > 256 {
                clients.clear();
            }
            clients.insert(key, client.clone());
        }
        Ok(client)
    }

    async fn send(
        &self,
        access: &HeadAccess,
        method: reqwest::Method,
        url: String,
    ) -> Result<reqwest::Response, HeadApiError> {
        let mut req = self.client(access.ca_pem.as_ref())?.request(method, &url);
        if let Some(token) = &access.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|source| HeadApiError::Request {
            url: url.clone(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        if status == 503 && url.ends_with("/v1/leader") {
            return Err(HeadApiError::NoLeader);
        }
        let body = resp.text().await.unwrap_or_default();
        Err(HeadApiError::Status {
            url,
            status,
            body: body.chars().take(300).collect(),
        })
    }
}

impl HttpHeadApi {
    /// A GET whose answer is JSON of type `T`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        access: &HeadAccess,
        url: String,
    ) -> Result<T, HeadApiError> {
        let resp = self.send(access, reqwest::Method::GET, url.clone()).await?;
        resp.json()
            .await
            .map_err(|source| HeadApiError::Request { url, source })
    }

    /// A POST whose answer only needs to be a success.
    async fn post(&self, access: &HeadAccess, url: String) -> Result<(), HeadApiError> {
        self.send(access, reqwest::Method::POST, url)
            .await
            .map(|_| ())
    }
}

/// The leader's own address, https when it serves TLS.
fn leader_url(leader: &Leader, path: &str) -> String {
    let scheme = if leader.tls { "https" } else { "http" };
    format!("{scheme}://{}:{}{path}", leader.host, leader.api_port)
}

impl HeadApi for HttpHeadApi {
    fn leader<'a>(
        &'a self,
        access: &'a HeadAccess,
        base: &'a str,
    ) -> BoxFuture<'a, Result<Leader, HeadApiError>> {
        Box::pin(async move { self.get_json(access, format!("{base}/v1/leader")).await })
    }

    fn cluster_servers<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<Vec<ClusterServer>, HeadApiError>> {
        Box::pin(async move {
            self.get_json(access, leader_url(leader, "/v1/cluster"))
                .await
        })
    }

    fn repair<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<RepairReport, HeadApiError>> {
        Box::pin(async move {
            self.get_json(access, leader_url(leader, "/v1/repair"))
                .await
        })
    }

    fn decommission<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>> {
        Box::pin(async move {
            self.post(
                access,
                leader_url(leader, &format!("/v1/cluster/{server_id}/decommission")),
            )
            .await
        })
    }

    fn recommission<'a>(
        &'a self,
        access: &'a HeadAccess,
        leader: &'a Leader,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>> {
        Box::pin(async move {
            self.post(
                access,
                leader_url(leader, &format!("/v1/cluster/{server_id}/recommission")),
            )
            .await
        })
    }
}
