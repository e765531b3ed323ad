//! The `FileGrid` custom resource: the single source of `crds/filegrid.yaml`.
//!
//! Bounds and formats live in the OpenAPI schema, cross-field rules in CEL
//! (`x-kubernetes-validations`), so the API server rejects bad resources before the
//! operator sees them. [`crate::validate`] repeats the checks that CEL cannot express.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the FileGrid resource.
pub const GROUP: &str = "filegrid.io";
/// Default node image.
pub const DEFAULT_IMAGE: &str = "filegrid/node:0.1.0";

/// Desired state of one FileGrid: head servers, cluster (storage) servers and a monitor.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "filegrid.io",
    version = "v1alpha1",
    kind = "FileGrid",
    plural = "filegrids",
    shortname = "fg",
    namespaced,
    status = "FileGridStatus",
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.leader","description":"server id of the leader head"}"#,
    printcolumn = r#"{"name":"Heads","type":"integer","jsonPath":".status.readyHeads","description":"ready head servers"}"#,
    printcolumn = r#"{"name":"Cluster","type":"integer","jsonPath":".status.readyClusterServers","description":"ready cluster servers"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status","description":"whether the grid serves files"}"#,
    printcolumn = r#"{"name":"Used","type":"string","jsonPath":".status.capacity.used","description":"space used on the cluster servers"}"#,
    printcolumn = r#"{"name":"Under-Replicated","type":"integer","jsonPath":".status.underReplicatedChunks","description":"chunks with fewer copies than replicationFactor"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("self.cluster.replicas >= self.replicationFactor")
        .message("cluster.replicas must be at least replicationFactor")
        .field_path(".cluster.replicas"),
    validation = Rule::new("!has(self.minWriteReplicas) || self.minWriteReplicas <= self.replicationFactor")
        .message("minWriteReplicas must not exceed replicationFactor")
        .field_path(".minWriteReplicas"),
)]
#[serde(rename_all = "camelCase")]
pub struct FileGridSpec {
    /// Node image holding filegrid-node, zk_head_server_monitor and filegrid.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// Image pull policy of every FileGrid container.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// ZooKeeper ensemble and the root znode of this grid.
    pub zookeeper: ZooKeeperSpec,
    /// Copies of each chunk. Fixed at creation: changing it would strand existing chunks.
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 5))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("replicationFactor is immutable"))]
    pub replication_factor: i32,
    /// Replicas that must hold a chunk before a write is acknowledged; defaults to 2 (1 when
    /// replicationFactor is 1), so writes go on while one cluster server is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub min_write_replicas: Option<i32>,
    /// Chunk size, such as `8MiB`.
    #[serde(default = "default_chunk_size")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(B|KiB|MiB|GiB)?$"))]
    pub chunk_size: String,
    /// How long a silent cluster server counts as alive before its chunks are re-replicated.
    #[serde(default = "default_dead_after")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(ms|s|m|h)$"))]
    pub dead_after: String,
    /// Node label naming the failure zone (such as `topology.kubernetes.io/zone`); chunks are spread over zones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 316))]
    pub zone_topology_key: Option<String>,
    /// Log format of every FileGrid process.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Head servers.
    #[serde(default)]
    pub heads: HeadsSpec,
    /// Cluster (storage) servers.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// Monitor of the head servers.
    #[serde(default)]
    pub monitor: MonitorSpec,
    /// Prometheus integration.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Credentials, TLS and network isolation; on by default.
    #[serde(default)]
    pub security: SecuritySpec,
    /// Further settings per role, written into that role's TOML file. Keys the operator
    /// manages (addresses, ids, ZooKeeper) are refused.
    #[serde(default)]
    pub extra_config: ExtraConfig,
}

/// ZooKeeper connection.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZooKeeperSpec {
    /// Connect string, `host:port[,host:port...]`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9.\-]+:[0-9]{1,5}(,[A-Za-z0-9.\-]+:[0-9]{1,5})*$"))]
    pub connect: String,
    /// Root znode of this grid; defaults to `/filegrid/<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(/[A-Za-z0-9_.\-]+)+$"))]
    pub root: Option<String>,
    /// Secret in the grid's namespace whose key `auth` holds the ZooKeeper digest credential
    /// `user:password`. Every pod mounts it and uses it as `zk_auth_file`, so the grid's znodes
    /// are readable and writable by that user only. Unset: the znodes are open to anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub auth_secret: Option<String>,
    /// ZooKeeper session timeout; a crashed leader is replaced after about this long.
    #[serde(default = "default_session_timeout")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(ms|s|m)$"))]
    pub session_timeout: String,
}

/// When the kubelet pulls the node image.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Log output format.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    #[default]
    Json,
}

impl LogFormat {
    /// The node's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Where pods of one role may run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
}

/// Head servers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeadsSpec {
    /// Number of head servers; one leads, the others stand by.
    #[serde(default = "default_head_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// A recovered lower id takes leadership back.
    #[serde(default)]
    pub preempt: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, flatten)]
    pub scheduling: Scheduling,
}

impl Default for HeadsSpec {
    fn default() -> Self {
        Self {
            replicas: default_head_replicas(),
            preempt: false,
            resources: None,
            scheduling: Scheduling::default(),
        }
    }
}

/// Cluster (storage) servers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Number of cluster servers; never less than replicationFactor.
    #[serde(default = "default_cluster_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Persistent volume of each cluster server.
    #[serde(default)]
    pub storage: StorageSpec,
    /// Bytes a server may use, such as `90GiB`; defaults to the size of its data disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(B|KiB|MiB|GiB|TiB)?$"))]
    pub capacity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, flatten)]
    pub scheduling: Scheduling,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            replicas: default_cluster_replicas(),
            storage: StorageSpec::default(),
            capacity: None,
            resources: None,
            scheduling: Scheduling::default(),
        }
    }
}

/// Volume claim of each cluster server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, a Kubernetes quantity such as `10Gi`.
    #[serde(default = "default_storage_size")]
    pub size: Quantity,
    /// Storage class; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

/// The monitor that health-checks heads and fails a hung leader over.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitorSpec {
    /// Run the monitor (one replica).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time between checks of each head.
    #[serde(default = "default_monitor_interval")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(ms|s|m)$"))]
    pub interval: String,
    /// Time allowed for one check.
    #[serde(default = "default_monitor_timeout")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(ms|s|m)$"))]
    pub timeout: String,
    /// Failed checks in a row after which a leader is excluded.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1, max = 100))]
    pub failure_threshold: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, flatten)]
    pub scheduling: Scheduling,
}

impl Default for MonitorSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: default_monitor_interval(),
            timeout: default_monitor_timeout(),
            failure_threshold: default_failure_threshold(),
            resources: None,
            scheduling: Scheduling::default(),
        }
    }
}

/// Prometheus integration.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// A prometheus-operator ServiceMonitor for every FileGrid process.
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,
}

/// ServiceMonitor settings.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create the ServiceMonitor (only where its CRD is installed).
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval.
    #[serde(default = "default_scrape_interval")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(s|m)$"))]
    pub interval: String,
    /// Extra labels, e.g. the `release` label a Prometheus selects on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: default_scrape_interval(),
            labels: BTreeMap::new(),
        }
    }
}

/// Security of the grid. By default the operator creates and mounts a cluster secret, an
/// admin client credential, a ZooKeeper digest credential, a CA and per-role TLS
/// certificates, and a NetworkPolicy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// Run without security: no credentials, no TLS, no peer signatures. Anyone who reaches
    /// a head can read, change and delete every file. The pods log a warning at start.
    #[serde(default)]
    pub insecure: bool,
    /// The NetworkPolicy that lets clients reach only the heads' API port.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
}

/// The grid's NetworkPolicy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy: clients reach only the heads' API port, the grid's pods
    /// reach each other, and the scrapers of `metricsFrom` reach the metrics ports.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Who may scrape the metrics ports. Unset: pods labelled
    /// `app.kubernetes.io/name: prometheus` in any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_from: Option<Vec<NetworkPolicyPeer>>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            metrics_from: None,
        }
    }
}

/// Extra TOML settings per role: strings, numbers and booleans, written with their type.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExtraConfig {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub head: BTreeMap<String, ExtraValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster: BTreeMap<String, ExtraValue>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub monitor: BTreeMap<String, ExtraValue>,
}

/// One `extraConfig` value as written in the resource. The schema accepts any JSON value
/// (a structural schema cannot say "string, number or boolean"); the operator refuses
/// objects, arrays and null ([`crate::validate`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(transparent)]
pub struct ExtraValue(pub serde_json::Value);

impl From<&str> for ExtraValue {
    fn from(s: &str) -> Self {
        Self(serde_json::Value::String(s.to_string()))
    }
}

impl From<bool> for ExtraValue {
    fn from(b: bool) -> Self {
        Self(serde_json::Value::Bool(b))
    }
}

impl From<i64> for ExtraValue {
    fn from(n: i64) -> Self {
        Self(serde_json::Value::from(n))
    }
}

impl JsonSchema for ExtraValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExtraValue".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A string, number or boolean.",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// Observed state, written only by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FileGridStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Available`, `Progressing`, `Degraded`, `Resilient` and `ReconciliationPaused`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub ready_heads: i32,
    #[serde(default)]
    pub ready_cluster_servers: i32,
    /// Server id of the current leader head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Leader epoch (fencing token) from ZooKeeper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// Cluster servers being decommissioned before a scale-down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decommissioning: Vec<String>,
    /// Space of the cluster servers, as the leader last heard from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
    /// Chunks with fewer copies than `replicationFactor` at the leader's last repair pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_replicated_chunks: Option<i64>,
    /// The leader's repair: its last pass and, while chunks are short, when it should end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<RepairStatus>,
    /// Every cluster server the leader knows, with its state and space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerStatus>,
    /// The rollout in progress (pods not yet ready or not yet updated), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<String>,
}

/// Space of the cluster servers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CapacityStatus {
    pub used_bytes: i64,
    pub total_bytes: i64,
    /// For people and `kubectl get`: `1.2GiB/3.0GiB (40%)`.
    pub used: String,
}

/// The leader's last repair pass.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RepairStatus {
    /// When the pass finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pass_time: Option<String>,
    /// Chunks the pass looked at.
    pub chunks: i64,
    /// Copies it made.
    pub copies_made: i64,
    /// When no chunk should be short any more (RFC 3339), from how fast the count of
    /// under-replicated chunks fell between two passes; absent when none is short or the
    /// count does not fall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_completion_time: Option<String>,
}

/// One cluster server as the leader sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    pub id: String,
    /// `live`, `dead`, `draining` or `drained`.
    pub state: String,
    pub used_bytes: i64,
    pub capacity_bytes: i64,
    pub chunks: i64,
}

fn default_image() -> String {
    DEFAULT_IMAGE.to_string()
}
fn default_replication_factor() -> i32 {
    3
}
fn default_chunk_size() -> String {
    "8MiB".to_string()
}
fn default_dead_after() -> String {
    "30s".to_string()
}
fn default_session_timeout() -> String {
    "6s".to_string()
}
fn default_head_replicas() -> i32 {
    2
}
fn default_cluster_replicas() -> i32 {
    3
}
fn default_storage_size() -> Quantity {
    Quantity("10Gi".to_string())
}
fn default_true() -> bool {
    true
}
fn default_monitor_interval() -> String {
    "10s".to_string()
}
fn default_monitor_timeout() -> String {
    "2s".to_string()
}
fn default_failure_threshold() -> i32 {
    3
}
fn default_scrape_interval() -> String {
    "30s".to_string()
}

/// The CRD as YAML, exactly as stored in `crds/filegrid.yaml`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&FileGrid::crd())
}
