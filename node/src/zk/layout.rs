//! Where things live in ZooKeeper, relative to the grid's root (see `docs/zookeeper.md`),
//! and the ACL the nodes there carry (see [`super::access`]).

use zookeeper_client::CreateOptions;

use super::access::ZkAccess;
use crate::config::CommonConfig;
use crate::ids::ServerId;

/// Paths of one grid's znodes and who may touch them. The root is configurable so several
/// grids share an ensemble.
#[derive(Clone, Debug)]
pub struct Layout {
    root: String,
    access: ZkAccess,
}

impl Layout {
    /// A layout whose nodes are open to anyone (no `zk_auth_file`).
    pub fn new(root: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            access: ZkAccess::open(),
        }
    }

    /// The grid of a server's settings: `zk_root` and the credential of `zk_auth_file`.
    pub fn for_config(common: &CommonConfig) -> Self {
        Self::new(common.zk_root.clone()).with_access(common.security.zk_access.clone())
    }

    pub fn with_access(mut self, access: ZkAccess) -> Self {
        self.access = access;
        self
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn access(&self) -> &ZkAccess {
        &self.access
    }

    /// Options for creating a persistent node of this grid (with its ACL). Every node
    /// FileGrid creates gets its options here or from [`Self::ephemeral`].
    pub fn persistent(&self) -> CreateOptions<'static> {
        self.access.persistent()
    }

    /// Options for creating an ephemeral node of this grid (with its ACL).
    pub fn ephemeral(&self) -> CreateOptions<'static> {
        self.access.ephemeral()
    }

    /// Parent directories created (persistent, empty) at start by every process.
    pub fn directories(&self) -> Vec<String> {
        vec![
            self.root.clone(),
            self.head_servers(),
            self.cluster_servers(),
            self.monitors(),
            self.excluded_dir(),
            self.health_reports_dir(),
            self.files(),
            self.manifests(),
            self.uploads(),
            self.cluster_state_dir(),
        ]
    }

    /// Ephemeral registrations of head servers.
    pub fn head_servers(&self) -> String {
        format!("{}/head_servers", self.root)
    }

    pub fn head(&self, id: &ServerId) -> String {
        format!("{}/head_servers/{id}", self.root)
    }

    /// Ephemeral registrations of cluster (storage) servers.
    pub fn cluster_servers(&self) -> String {
        format!("{}/cluster_servers", self.root)
    }

    pub fn cluster_server(&self, id: &ServerId) -> String {
        format!("{}/cluster_servers/{id}", self.root)
    }

    /// Ephemeral registrations of monitors.
    pub fn monitors(&self) -> String {
        format!("{}/monitors", self.root)
    }

    pub fn monitor(&self, id: &ServerId) -> String {
        format!("{}/monitors/{id}", self.root)
    }

    /// Ephemeral: the current leader, created by the winner of an election.
    pub fn leader(&self) -> String {
        format!("{}/leader", self.root)
    }

    /// Persistent counter bumped by every new leader: the fencing token.
    pub fn epoch(&self) -> String {
        format!("{}/epoch", self.root)
    }

    pub fn excluded_dir(&self) -> String {
        format!("{}/excluded", self.root)
    }

    /// Persistent: a head the monitor found hung, barred from leading until healthy again.
    pub fn excluded(&self, id: &ServerId) -> String {
        format!("{}/excluded/{id}", self.root)
    }

    pub fn health_reports_dir(&self) -> String {
        format!("{}/health_reports", self.root)
    }

    pub fn health_report(&self, id: &ServerId) -> String {
        format!("{}/health_reports/{id}", self.root)
    }

    /// Persistent: last write made through the fence by `POST /v1/admin/fenced-write`.
    pub fn fence_probe(&self) -> String {
        format!("{}/fence_probe", self.root)
    }

    /// Persistent file metadata, written only by the leader through the fence.
    pub fn files(&self) -> String {
        format!("{}/files", self.root)
    }

    /// The node of a file or directory: `files/<path>`.
    pub fn file(&self, path: &str) -> String {
        format!("{}/files/{path}", self.root)
    }

    /// Chunk lists of files too large for one znode, in parts.
    pub fn manifests(&self) -> String {
        format!("{}/manifests", self.root)
    }

    pub fn manifest_dir(&self, file_id: &str) -> String {
        format!("{}/manifests/{file_id}", self.root)
    }

    pub fn manifest_part(&self, file_id: &str, part: u32) -> String {
        format!("{}/manifests/{file_id}/{part:06}", self.root)
    }

    /// Multipart uploads in progress: `uploads/<upload_id>`, with a child per stored part.
    pub fn uploads(&self) -> String {
        format!("{}/uploads", self.root)
    }

    pub fn upload(&self, upload_id: &str) -> String {
        format!("{}/uploads/{upload_id}", self.root)
    }

    pub fn upload_part(&self, upload_id: &str, part: u32) -> String {
        format!("{}/uploads/{upload_id}/{part:05}", self.root)
    }

    pub fn cluster_state_dir(&self) -> String {
        format!("{}/cluster_state", self.root)
    }

    /// Persistent: a cluster server being drained, or drained (`POST .../decommission`).
    pub fn cluster_state(&self, id: &ServerId) -> String {
        format!("{}/cluster_state/{id}", self.root)
    }
}
