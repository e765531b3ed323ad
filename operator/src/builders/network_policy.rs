use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{LABEL_INSTANCE, LABEL_NAME, instance_labels, metadata, names};
use crate::config::{HEAD_API_PORT, HEAD_S3_PORT, METRICS_PORT, MONITOR_METRICS_PORT};
use crate::validate::ValidGrid;

/// Label of the scrapers allowed by default (prometheus-operator's Prometheus pods carry it).
pub const DEFAULT_SCRAPER_LABEL: (&str, &str) = ("app.kubernetes.io/name", "prometheus");

/// Every pod of this grid.
fn grid_pods(grid: &ValidGrid) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([
            (LABEL_NAME.to_string(), "filegrid".to_string()),
            (LABEL_INSTANCE.to_string(), grid.name.clone()),
        ])),
        ..LabelSelector::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..NetworkPolicyPort::default()
    }
}

/// The scrapers of `security.networkPolicy.metricsFrom`, by default pods labelled
/// `app.kubernetes.io/name: prometheus` in any namespace.
pub fn scrapers(grid: &ValidGrid) -> Vec<NetworkPolicyPeer> {
    match &grid.spec.security.network_policy.metrics_from {
        Some(peers) => peers.clone(),
        None => vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector::default()),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    DEFAULT_SCRAPER_LABEL.0.to_string(),
                    DEFAULT_SCRAPER_LABEL.1.to_string(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        }],
    }
}

/// Ingress to the grid's pods: anyone to the heads' API port (only heads listen on it), the
/// grid's own pods to every port, the scrapers to the metrics ports. Egress is not limited.
pub fn network_policy(grid: &ValidGrid) -> NetworkPolicy {
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(grid_pods(grid)),
        ..NetworkPolicyPeer::default()
    };
    NetworkPolicy {
        metadata: metadata(grid, names::network_policy(grid), instance_labels(grid)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(grid_pods(grid)),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(vec![tcp(HEAD_API_PORT), tcp(HEAD_S3_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![own_pods]),
                    ports: None,
                },
                NetworkPolicyIngressRule {
                    from: Some(scrapers(grid)),
                    ports: Some(vec![tcp(METRICS_PORT), tcp(MONITOR_METRICS_PORT)]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}
