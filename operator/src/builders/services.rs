use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{metadata, names, role_labels, selector_labels};
use crate::config::{
    CLUSTER_PORT, HEAD_API_PORT, HEAD_S3_PORT, METRICS_PORT, MONITOR_METRICS_PORT, Role,
};
use crate::validate::ValidGrid;

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

fn service(
    grid: &ValidGrid,
    name: String,
    role: Role,
    headless: bool,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata: metadata(grid, name, role_labels(grid, role)),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(grid, role)),
            ports: Some(ports),
            cluster_ip: headless.then(|| "None".to_string()),
            // Peers must find each other before they are ready (election, registration).
            publish_not_ready_addresses: headless.then_some(true),
            type_: Some("ClusterIP".to_string()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Headless service governing the head StatefulSet (stable pod DNS names).
pub fn head_headless_service(grid: &ValidGrid) -> Service {
    service(
        grid,
        names::head_headless(grid),
        Role::Head,
        true,
        vec![
            port("api", HEAD_API_PORT),
            port("s3", HEAD_S3_PORT),
            port("metrics", METRICS_PORT),
        ],
    )
}

/// Client service: any ready head; standbys redirect leader-only calls to the leader.
pub fn head_client_service(grid: &ValidGrid) -> Service {
    service(
        grid,
        names::head(grid),
        Role::Head,
        false,
        vec![port("api", HEAD_API_PORT), port("s3", HEAD_S3_PORT)],
    )
}

/// Headless service governing the cluster StatefulSet.
pub fn cluster_headless_service(grid: &ValidGrid) -> Service {
    service(
        grid,
        names::cluster_headless(grid),
        Role::Cluster,
        true,
        vec![port("chunks", CLUSTER_PORT), port("metrics", METRICS_PORT)],
    )
}

/// Headless service exposing the monitor's metrics port to Prometheus.
pub fn monitor_service(grid: &ValidGrid) -> Service {
    service(
        grid,
        names::monitor(grid),
        Role::Monitor,
        true,
        vec![port("metrics", MONITOR_METRICS_PORT)],
    )
}
