//! The few head-server calls the operator makes, behind a trait so the reconciler can be
//! tested with a fake head while the Kubernetes API is mocked. The bodies are FileGrid's wire
//! types ([`filegrid_proto::head`]), shared with the heads.

use std::time::Duration;

use filegrid_proto::head::{LeaderView, ServerView};
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
    #[error("head API {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// Head API of one grid. `base` is any head's URL (the client Service); leader-only calls
/// go to the leader's own address.
pub trait HeadApi: Send + Sync {
    fn leader<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<Leader, HeadApiError>>;
    fn cluster_servers<'a>(
        &'a self,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<Vec<ClusterServer>, HeadApiError>>;
    fn decommission<'a>(
        &'a self,
        leader: &'a Leader,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>>;
}

/// The real head API over HTTP.
pub struct HttpHeadApi {
    http: reqwest::Client,
}

impl HttpHeadApi {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self { http })
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: String,
    ) -> Result<reqwest::Response, HeadApiError> {
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

fn leader_url(leader: &Leader, path: &str) -> String {
    format!("http://{}:{}{path}", leader.host, leader.api_port)
}

impl HeadApi for HttpHeadApi {
    fn leader<'a>(&'a self, base: &'a str) -> BoxFuture<'a, Result<Leader, HeadApiError>> {
        Box::pin(async move {
            let url = format!("{base}/v1/leader");
            let resp = self.send(self.http.get(&url), url.clone()).await?;
            resp.json()
                .await
                .map_err(|source| HeadApiError::Request { url, source })
        })
    }

    fn cluster_servers<'a>(
        &'a self,
        leader: &'a Leader,
    ) -> BoxFuture<'a, Result<Vec<ClusterServer>, HeadApiError>> {
        Box::pin(async move {
            let url = leader_url(leader, "/v1/cluster");
            let resp = self.send(self.http.get(&url), url.clone()).await?;
            resp.json()
                .await
                .map_err(|source| HeadApiError::Request { url, source })
        })
    }

    fn decommission<'a>(
        &'a self,
        leader: &'a Leader,
        server_id: &'a str,
    ) -> BoxFuture<'a, Result<(), HeadApiError>> {
        Box::pin(async move {
            let url = leader_url(leader, &format!("/v1/cluster/{server_id}/decommission"));
            self.send(self.http.post(&url), url.clone())
                .await
                .map(|_| ())
        })
    }
}
