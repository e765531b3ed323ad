//! The JSON values FileGrid stores in ZooKeeper's znodes (the layout is in `docs/zookeeper.md`). Every value carries a version field `v` so a newer node
//! can read an older layout; unknown fields are ignored for the same reason.

use serde::{Deserialize, Serialize};

use crate::ids::ServerId;

/// Version of the records this build writes.
pub const RECORD_VERSION: u32 = 1;

fn v1() -> u32 {
    RECORD_VERSION
}

/// `head_servers/<id>`: how to reach a head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: ServerId,
    pub host: String,
    pub api_port: u16,
    #[serde(default)]
    pub metrics_port: Option<u16>,
    #[serde(default)]
    pub version: String,
    /// Unix milliseconds.
    #[serde(default)]
    pub started_at: u64,
    /// Set when a monitor registered the head by hand (interactive `register`); such heads are
    /// health-checked but never elected, since no FileGrid process stands behind the entry.
    #[serde(default)]
    pub registered_by: Option<String>,
    /// The head's listeners speak TLS (`https://`).
    #[serde(default)]
    pub tls: bool,
    /// Port of the head's S3 API, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_port: Option<u16>,
}

/// `cluster_servers/<id>`: how to reach a cluster server and what it holds at registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: ServerId,
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub zone: Option<String>,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    #[serde(default)]
    pub started_at: u64,
    /// The server's chunk API speaks TLS (`https://`).
    #[serde(default)]
    pub tls: bool,
}

/// `cluster_state/<id>`: decommissioning progress of a cluster server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterStateRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub state: DrainState,
    pub since: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainState {
    Draining,
    Drained,
}

/// `leader`: the current leader. `session_id` lets a head recognise its own node after a lost
/// reply to the create.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub server_id: ServerId,
    pub host: String,
    pub api_port: u16,
    pub epoch: u64,
    /// Unix milliseconds.
    pub elected_at: u64,
    /// ZooKeeper session id (hex) that created the node.
    pub session_id: String,
    /// The leader's API speaks TLS (`https://`).
    #[serde(default)]
    pub tls: bool,
    /// Port of the leader's S3 API, when it serves one (standbys forward S3 calls there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_port: Option<u16>,
}

/// `epoch`: the fencing counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub epoch: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
}

/// `health_reports/<id>`: the latest check of a head by some monitor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    #[serde(default = "v1")]
    pub v: u32,
    pub status: HealthStatus,
    /// Unix milliseconds.
    pub checked_at: u64,
    pub latency_ms: u64,
    pub consecutive_failures: u32,
    pub reporter: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// `excluded/<id>`: why and by whom a head was barred.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExclusionRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub server_id: ServerId,
    pub excluded_at: u64,
    pub reporter: String,
    pub consecutive_failures: u32,
    /// Epoch of the leadership that was ended.
    pub epoch: u64,
}

/// `monitors/<id>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitorRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub id: ServerId,
    pub host: String,
    pub started_at: u64,
    pub interval_ms: u64,
    pub failure_threshold: u32,
}

/// `fence_probe`: the last write made through the fence by the admin probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FenceProbeRecord {
    #[serde(default = "v1")]
    pub v: u32,
    pub writer: ServerId,
    pub epoch: u64,
    pub written_at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_records_without_optional_fields_still_parse() {
        let r: HeadRecord =
            serde_json::from_str(r#"{"id":"head_server_1","host":"h","api_port":9669}"#).unwrap();
        assert_eq!(r.v, 1);
        assert_eq!(r.metrics_port, None);
        let newer: HealthReport = serde_json::from_str(
            r#"{"v":2,"status":"healthy","checked_at":1,"latency_ms":2,"consecutive_failures":0,"reporter":"m","extra":true}"#,
        )
        .unwrap();
        assert_eq!(newer.status, HealthStatus::Healthy);
    }
}
