//! The head API's bodies (`/v1/leader`, `/v1/heads`, `/v1/status`, `/v1/files`, `/v1/cluster`,
//! `/v1/repair`, `/v1/heartbeat`). The reference is `docs/api.md`.

use serde::{Deserialize, Serialize};

use crate::ids::ServerId;
use crate::zk::{DrainState, HealthReport, LeaderRecord};

/// `GET /v1/leader`: the leader, read fresh from ZooKeeper (what `filegrid leader` prints).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    pub server_id: ServerId,
    pub host: String,
    pub api_port: u16,
    pub epoch: u64,
    pub elected_at: u64,
    /// The leader's API speaks TLS (`https://`).
    #[serde(default)]
    pub tls: bool,
    /// Port of the leader's S3 API, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_port: Option<u16>,
}

impl From<LeaderRecord> for LeaderView {
    fn from(l: LeaderRecord) -> Self {
        Self {
            server_id: l.server_id,
            host: l.host,
            api_port: l.api_port,
            epoch: l.epoch,
            elected_at: l.elected_at,
            tls: l.tls,
            s3_port: l.s3_port,
        }
    }
}

/// One row of `GET /v1/heads`: a registered head with what the monitors last said about it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HeadView {
    pub id: String,
    pub host: String,
    pub api_port: u16,
    pub is_leader: bool,
    pub excluded: bool,
    pub registered_by: Option<String>,
    pub health: Option<HealthReport>,
}

/// What a head is doing right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Connecting to ZooKeeper and registering.
    Starting,
    /// No leader yet; waiting for a lower id to claim, or barred by an exclusion.
    Candidate,
    /// Another head leads.
    Standby,
    /// This head leads.
    Leader,
    /// This head led when the ZooKeeper connection dropped; it does nothing a leader does until
    /// it proves its session survived.
    Suspended,
    /// Not connected to ZooKeeper.
    Disconnected,
    /// Shutting down.
    Stopping,
}

/// A head's view of the election, as its election loop publishes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadStatus {
    pub server_id: ServerId,
    pub role: Role,
    pub leader: Option<LeaderRecord>,
    /// The newest epoch this head has seen.
    pub epoch: u64,
    pub session_id: Option<String>,
    pub zk_connected: bool,
    pub excluded: bool,
}

/// `GET /v1/status`: the head's own view, and whether as a standby it forwards leader-only
/// calls (so a client may keep using this address).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    #[serde(flatten)]
    pub status: HeadStatus,
    #[serde(default)]
    pub forwards_to_leader: bool,
}

/// `POST /v1/admin/fenced-write`: the probe write went through the fence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedWriteAnswer {
    pub accepted: bool,
    pub epoch: u64,
}

/// `PUT /v1/files/{path}` (201): the committed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutAnswer {
    pub path: String,
    pub size: u64,
    /// CRC32C of the whole content, `crc32c:<hex>`.
    pub checksum: String,
    pub chunks: u64,
    /// Unix milliseconds.
    pub mtime: u64,
    /// Epoch of the leader that committed it.
    pub epoch: u64,
    /// The file's `ETag` (`"<file_id>"`, new with every write), for a later conditional
    /// write or delete (`If-Match`). Empty from heads that did not send it.
    #[serde(default)]
    pub etag: String,
}

/// What `HEAD /v1/files/{path}` tells of a file (its headers), as `filegrid stat` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub path: String,
    pub size: u64,
    pub checksum: String,
    pub chunks: u64,
    pub mtime: u64,
    /// The `ETag` header, quotes included.
    #[serde(default)]
    pub etag: String,
}

/// `DELETE /v1/files/{path}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAnswer {
    pub path: String,
    pub deleted: bool,
}

/// One file in a listing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListItem {
    pub path: String,
    pub size: u64,
    pub mtime: u64,
    pub checksum: String,
}

/// `GET /v1/files?prefix=&limit=&cursor=`: one page of a listing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListPage {
    pub files: Vec<ListItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/heartbeat`: what a cluster server reports every heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub id: ServerId,
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub zone: Option<String>,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub chunks: u64,
    /// Chunks this server found damaged or gone from its disk since it started (by its
    /// scrubber or a read). The leader runs a repair pass when the count grows; which
    /// chunks they are, it learns from the server's block report.
    #[serde(default)]
    pub bad_chunks_found: u64,
    /// How often this server sends a heartbeat (milliseconds): the leader counts a server
    /// it has not heard from for several of them, while it hears the others, as silent.
    /// Absent from older servers, which are then never counted silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

/// The answer to a heartbeat: the epoch of the leader that took it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub epoch: u64,
}

/// State of a cluster server as the head API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    Live,
    Dead,
    Draining,
    Drained,
    /// A state from a newer FileGrid.
    #[serde(other)]
    Unknown,
}

impl ServerState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Dead => "dead",
            Self::Draining => "draining",
            Self::Drained => "drained",
            Self::Unknown => "unknown",
        }
    }
}

/// One row of `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    pub id: ServerId,
    pub host: String,
    pub port: u16,
    pub zone: Option<String>,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub state: ServerState,
    pub chunks: u64,
}

/// `POST /v1/cluster/{id}/decommission` (202).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecommissionAnswer {
    pub id: ServerId,
    pub state: DrainState,
}

/// `POST /v1/cluster/{id}/recommission`: the server is live again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommissionAnswer {
    pub id: ServerId,
    /// The drain state it had; `None` when it was not being drained (nothing changed).
    pub was: Option<DrainState>,
}

/// `GET /v1/repair`: what the leader's last repair pass found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    pub files: u64,
    pub chunks: u64,
    pub under_replicated: u64,
    pub copies_made: u64,
    pub orphans_deleted: u64,
    /// Unix milliseconds; 0 before the first pass.
    pub finished_at: u64,
    /// A pass is making copies now; the figures below are live while it does.
    #[serde(default)]
    pub in_progress: bool,
    /// Chunk copies (one per new replica) the current pass planned and has not tried yet; 0
    /// after a pass. A copy that failed is not left: the next pass plans it again, and until
    /// then its chunk counts in `under_replicated`.
    #[serde(default)]
    pub chunks_left: u64,
    /// Bytes of those copies.
    #[serde(default)]
    pub bytes_left: u64,
    /// Bytes per second the current (or last) pass copied, throttling included; 0 before
    /// its first copy.
    #[serde(default)]
    pub rate_bytes_per_sec: u64,
    /// Seconds until `bytes_left` are copied: at the measured rate, or at `repair_rate`
    /// before a rate was measured. Absent when nothing is left.
    #[serde(default)]
    pub eta_seconds: Option<u64>,
    /// The `repair_rate` setting: the most bytes per second repair copies.
    #[serde(default)]
    pub repair_rate: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_view_is_the_status_with_one_more_field() {
        let v = StatusView {
            status: HeadStatus {
                server_id: ServerId::new("head_server_1").unwrap(),
                role: Role::Leader,
                leader: None,
                epoch: 3,
                session_id: None,
                zk_connected: true,
                excluded: false,
            },
            forwards_to_leader: true,
        };
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["role"], "leader");
        assert_eq!(json["forwards_to_leader"], true);
        let back: StatusView = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn unknown_server_states_do_not_break_a_listing() {
        let s: ServerState = serde_json::from_str("\"retiring\"").unwrap();
        assert_eq!(s, ServerState::Unknown);
        for s in [
            ServerState::Live,
            ServerState::Dead,
            ServerState::Draining,
            ServerState::Drained,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
