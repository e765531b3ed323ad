use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{instance_labels, metadata, names};
use crate::config::{Role, render};
use crate::validate::ValidGrid;

/// One config map holding `head.toml`, `cluster.toml` and `monitor.toml`.
pub fn config_map(grid: &ValidGrid) -> ConfigMap {
    let data: BTreeMap<String, String> = Role::ALL
        .iter()
        .map(|r| (crate::config::file_name(*r), render(grid, *r)))
        .collect();
    ConfigMap {
        metadata: metadata(grid, names::config_map(grid), instance_labels(grid)),
        data: Some(data),
        ..ConfigMap::default()
    }
}
