//! Pure builders: a [`ValidGrid`] in, the Kubernetes objects the operator applies out.
//!
//! Nothing here talks to the API server, so every object can be tested from a YAML fixture
//! and validated offline against the official schemas.

mod config_map;
mod monitor;
mod network_policy;
mod pdb;
pub mod pod;
mod service_monitor;
mod services;
mod stateful_sets;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::config::Role;
use crate::validate::ValidGrid;

pub use config_map::config_map;
pub use monitor::monitor_deployment;
pub use network_policy::{DEFAULT_SCRAPER_LABEL, network_policy, scrapers};
pub use pdb::{cluster_max_unavailable, cluster_pdb, head_pdb};
pub use service_monitor::{SERVICE_MONITOR_API_VERSION, service_monitor, service_monitor_resource};
pub use services::{
    cluster_headless_service, head_client_service, head_headless_service, monitor_service,
};
pub use stateful_sets::{cluster_stateful_set, head_stateful_set};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "filegrid-operator";
/// Pod template annotation holding the hash of the role's config file.
pub const CONFIG_HASH_ANNOTATION: &str = "filegrid.io/config-hash";
/// Pod template annotation holding the SHA-256 of the grid's CA certificate.
pub const CA_ANNOTATION: &str = "filegrid.io/ca-sha256";
/// Pod annotation the operator sets to the zone of the pod's node.
pub const ZONE_ANNOTATION: &str = "filegrid.io/zone";
pub const MANAGED_BY: &str = "filegrid-operator";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Names of every child, one place for all of them.
pub mod names {
    use crate::validate::ValidGrid;

    pub fn config_map(g: &ValidGrid) -> String {
        format!("{}-config", g.name)
    }
    pub fn head(g: &ValidGrid) -> String {
        format!("{}-head", g.name)
    }
    pub fn head_headless(g: &ValidGrid) -> String {
        format!("{}-head-headless", g.name)
    }
    pub fn cluster(g: &ValidGrid) -> String {
        format!("{}-cluster", g.name)
    }
    pub fn cluster_headless(g: &ValidGrid) -> String {
        format!("{}-cluster-headless", g.name)
    }
    pub fn monitor(g: &ValidGrid) -> String {
        format!("{}-monitor", g.name)
    }
    /// Secret: the cluster secret heads and cluster servers sign their requests with.
    pub fn cluster_secret(g: &ValidGrid) -> String {
        format!("{}-cluster-secret", g.name)
    }
    /// Secret: the heads' credentials file and the admin credential.
    pub fn admin(g: &ValidGrid) -> String {
        format!("{}-admin", g.name)
    }
    /// Secret: the generated ZooKeeper digest credential (by grid name, as validation needs it).
    pub fn zookeeper_auth(grid_name: &str) -> String {
        format!("{grid_name}-zookeeper")
    }
    /// Secret: the grid's CA certificate and key.
    pub fn ca(g: &ValidGrid) -> String {
        format!("{}-ca", g.name)
    }
    /// Secret: the TLS certificate of one role.
    pub fn tls(g: &ValidGrid, role: crate::config::Role) -> String {
        format!("{}-{}-tls", g.name, role.as_str())
    }
    /// NetworkPolicy of the grid.
    pub fn network_policy(g: &ValidGrid) -> String {
        g.name.clone()
    }
    /// Pod name, and so server id, of cluster server `ordinal`.
    pub fn cluster_pod(g: &ValidGrid, ordinal: i32) -> String {
        format!("{}-cluster-{ordinal}", g.name)
    }
}

/// Labels that select one role's pods of one grid.
pub fn selector_labels(grid: &ValidGrid, role: Role) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "filegrid".to_string()),
        (LABEL_INSTANCE.to_string(), grid.name.clone()),
        (LABEL_COMPONENT.to_string(), role.as_str().to_string()),
    ])
}

/// Labels on every child of a grid; the cleanup lists children by these.
pub fn instance_labels(grid: &ValidGrid) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "filegrid".to_string()),
        (LABEL_INSTANCE.to_string(), grid.name.clone()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
    ])
}

/// Label selector string matching every child of a grid.
pub fn instance_selector(grid: &ValidGrid) -> String {
    instance_labels(grid)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn role_labels(grid: &ValidGrid, role: Role) -> BTreeMap<String, String> {
    let mut labels = instance_labels(grid);
    labels.extend(selector_labels(grid, role));
    labels
}

/// Owner reference to the FileGrid: garbage collection deletes children with it.
pub fn owner_reference(grid: &ValidGrid) -> OwnerReference {
    OwnerReference {
        api_version: "filegrid.io/v1alpha1".to_string(),
        kind: "FileGrid".to_string(),
        name: grid.name.clone(),
        uid: grid.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub(crate) fn metadata(
    grid: &ValidGrid,
    name: String,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(grid.namespace.clone()),
        labels: Some(labels),
        owner_references: Some(vec![owner_reference(grid)]),
        ..ObjectMeta::default()
    }
}
