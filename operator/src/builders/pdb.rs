use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{metadata, names, role_labels, selector_labels};
use crate::config::Role;
use crate::validate::ValidGrid;

/// Cluster servers that may be down at once: `max(1, min(rf - 2, replicas - 2))`, so a
/// voluntary eviction never leaves a chunk with fewer than two live copies when that is possible.
pub fn cluster_max_unavailable(replication_factor: i32, replicas: i32) -> i32 {
    1.max((replication_factor - 2).min(replicas - 2))
}

fn pdb(grid: &ValidGrid, name: String, role: Role, max_unavailable: i32) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(grid, name, role_labels(grid, role)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(grid, role)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// One head at a time.
pub fn head_pdb(grid: &ValidGrid) -> PodDisruptionBudget {
    pdb(grid, names::head(grid), Role::Head, 1)
}

pub fn cluster_pdb(grid: &ValidGrid) -> PodDisruptionBudget {
    let n = cluster_max_unavailable(grid.spec.replication_factor, grid.spec.cluster.replicas);
    pdb(grid, names::cluster(grid), Role::Cluster, n)
}
