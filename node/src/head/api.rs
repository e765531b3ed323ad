//! The head's coordination API: `/v1/leader`, `/v1/heads`, `/v1/status`, `/v1/cluster` and
//! the fence probe. The file API is added beside it by the data path.

use filegrid_proto::ErrorCode;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use zookeeper_client::Client;

use crate::election::Election;
use crate::fencing::{FenceError, FencedOp};
use crate::http::ApiError;
use crate::ids::ServerId;
use crate::zk::records::{self, FenceProbeRecord, HeadRecord, HealthReport, LeaderRecord};
use crate::zk::{self, ZkError};

#[derive(Clone)]
pub struct ApiState {
    pub election: Arc<Election>,
    /// This head's id.
    pub server_id: ServerId,
    /// Client for forwarding leader-only calls to the leader, when `standby_proxy` is on.
    pub proxy: Option<reqwest::Client>,
    /// The cluster servers this head knows: a standby serves reads itself only once it has
    /// read them.
    pub membership: Arc<crate::files::servers::Membership>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/leader", get(leader))
        .route("/v1/heads", get(heads))
        .route("/v1/status", get(status))
        .route("/v1/admin/fenced-write", post(fenced_write))
        .with_state(state)
}

pub use filegrid_proto::head::{FencedWriteAnswer, HeadView, LeaderView, StatusView};

fn client(s: &ApiState) -> Result<Client, ApiError> {
    s.election
        .client()
        .ok_or_else(|| ApiError::new(ErrorCode::ZkUnavailable, "not connected to ZooKeeper"))
}

fn zk_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::ZkUnavailable, format!("ZooKeeper: {e}"))
}

/// The leader, read fresh from ZooKeeper (any head answers).
async fn leader(State(s): State<ApiState>) -> Result<axum::Json<LeaderView>, ApiError> {
    let c = client(&s)?;
    match zk::read::<LeaderRecord>(&c, &s.election.layout().leader()).await {
        Ok(Some((l, _))) => Ok(axum::Json(l.into())),
        Ok(None) => Err(ApiError::new(
            ErrorCode::NoLeader,
            "no head leads right now (an election is in progress)",
        )),
        Err(e) => Err(zk_error(e)),
    }
}

async fn heads(State(s): State<ApiState>) -> Result<axum::Json<Vec<HeadView>>, ApiError> {
    let c = client(&s)?;
    list_heads(&c, s.election.layout())
        .await
        .map(axum::Json)
        .map_err(zk_error)
}

/// Registered heads, their leadership, exclusion and latest health report.
pub async fn list_heads(c: &Client, layout: &zk::Layout) -> Result<Vec<HeadView>, ZkError> {
    let leader = zk::read::<LeaderRecord>(c, &layout.leader()).await?;
    let excluded = c.list_children(&layout.excluded_dir()).await?;
    let mut names = c.list_children(&layout.head_servers()).await?;
    names.sort_by(|a, b| crate::ids::natural_cmp(a, b));
    let mut out = Vec::new();
    for name in names {
        let Ok(id) = ServerId::new(name.clone()) else {
            continue;
        };
        let Some((rec, _)) = zk::read::<HeadRecord>(c, &layout.head(&id)).await? else {
            continue;
        };
        let health = zk::read::<HealthReport>(c, &layout.health_report(&id))
            .await?
            .map(|(r, _)| r);
        out.push(HeadView {
            is_leader: leader.as_ref().is_some_and(|(l, _)| l.server_id == id),
            excluded: excluded.contains(&name),
            id: name,
            host: rec.host,
            api_port: rec.api_port,
            registered_by: rec.registered_by,
            health,
        });
    }
    Ok(out)
}

/// This head's own view, and whether as a standby it forwards leader-only calls (so a client
/// may keep using this address).
async fn status(State(s): State<ApiState>) -> axum::Json<StatusView> {
    axum::Json(StatusView {
        status: s.election.status().borrow().clone(),
        forwards_to_leader: s.proxy.is_some(),
    })
}

/// Writes `fence_probe` through the fence with this head's most recent leadership token,
/// current or not: a way to check from outside that a deposed leader cannot write.
async fn fenced_write(State(s): State<ApiState>) -> Response {
    let Some(token) = s.election.last_token() else {
        return ApiError::new(
            ErrorCode::NeverLeader,
            "this head has not led since it started",
        )
        .into_response();
    };
    let path = s.election.layout().fence_probe();
    let data = records::encode(&FenceProbeRecord {
        v: records::RECORD_VERSION,
        writer: token.server_id.clone(),
        epoch: token.epoch,
        written_at: records::now_ms(),
    });
    let c = match client(&s) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let exists = match c.check_stat(&path).await {
        Ok(stat) => stat.is_some(),
        Err(e) => return zk_error(e).into_response(),
    };
    let op = if exists {
        FencedOp::SetData {
            path,
            data,
            version: None,
        }
    } else {
        FencedOp::Create {
            path,
            data,
            options: s.election.layout().persistent(),
        }
    };
    match s.election.write_with(&token, &[op]).await {
        Ok(_) => axum::Json(FencedWriteAnswer {
            accepted: true,
            epoch: token.epoch,
        })
        .into_response(),
        Err(e @ FenceError::Deposed { .. }) => {
            ApiError::new(ErrorCode::Deposed, e.to_string()).into_response()
        }
        Err(e) => zk_error(e).into_response(),
    }
}
