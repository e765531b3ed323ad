//! Zones for cluster servers. The downward API cannot read node labels, so the operator
//! copies the zone label of each cluster pod's node onto the pod as the `filegrid.io/zone`
//! annotation; the pod reads it from a downward API file into `FILEGRID_ZONE`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use crate::builders::{ZONE_ANNOTATION, selector_labels};
use crate::config::Role;
use crate::validate::ValidGrid;

/// Annotate every scheduled cluster pod that lacks its zone. Returns, by pod name, why the pods
/// still waiting for a zone have none (their node lacks the label); the caller publishes
/// those as Warning Events once per change. A pod bound to a node that no longer exists is
/// skipped: it is about to be deleted and rescheduled.
pub async fn annotate_pods(
    client: &Client,
    grid: &ValidGrid,
    topology_key: &str,
) -> Result<BTreeMap<String, String>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &grid.namespace);
    let nodes: Api<Node> = Api::all(client.clone());
    let selector = selector_labels(grid, Role::Cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut without_zone = BTreeMap::new();
    for pod in pods.list(&ListParams::default().labels(&selector)).await? {
        if pod.annotations().contains_key(ZONE_ANNOTATION) {
            continue;
        }
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let Some(node) = nodes.get_opt(&node_name).await? else {
            info!(pod = %pod.name_any(), node = %node_name, "the pod's node is gone; skipping it");
            continue;
        };
        match node.labels().get(topology_key) {
            Some(zone) => {
                info!(pod = %pod.name_any(), %zone, "setting zone");
                let patch = json!({"metadata": {"annotations": {ZONE_ANNOTATION: zone}}});
                pods.patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            }
            None => {
                let note = format!(
                    "node {node_name} of pod {} has no label {topology_key}",
                    pod.name_any()
                );
                without_zone.insert(pod.name_any(), note);
            }
        }
    }
    Ok(without_zone)
}
