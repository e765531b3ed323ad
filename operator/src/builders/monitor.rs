use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::pod::{container_port, field_env, node_container, pod_template, with_probes};
use super::{metadata, names, role_labels, selector_labels};
use crate::config::{MONITOR_METRICS_PORT, Role};
use crate::validate::ValidGrid;

/// The head monitor: one replica, replaced (not doubled) on update.
pub fn monitor_deployment(grid: &ValidGrid) -> Deployment {
    let spec = &grid.spec.monitor;
    let mut c = node_container(grid, Role::Monitor, spec.resources.as_ref());
    c.ports = Some(vec![container_port("metrics", MONITOR_METRICS_PORT)]);
    c.env = Some(vec![field_env("FILEGRID_MONITOR_ID", "metadata.name")]);
    let c = with_probes(grid, c, "metrics");
    Deployment {
        metadata: metadata(grid, names::monitor(grid), role_labels(grid, Role::Monitor)),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector_labels(grid, Role::Monitor)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                ..DeploymentStrategy::default()
            }),
            template: pod_template(
                grid,
                Role::Monitor,
                vec![c],
                vec![],
                vec![],
                &spec.scheduling,
            ),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}
