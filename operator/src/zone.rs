//! Zones for cluster servers. The downward API cannot read node labels, so the operator
//! copies the zone label of each cluster pod's node onto the pod as the `filegrid.io/zone`
//! annotation; the pod reads it from a downward API file into `FILEGRID_ZONE`.

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::builders::{ZONE_ANNOTATION, selector_labels};
use crate::config::Role;
use crate::validate::ValidGrid;

/// Annotate every scheduled cluster pod that lacks its zone.
pub async fn annotate_pods(
    client: &Client,
    grid: &ValidGrid,
    topology_key: &str,
    recorder: &Recorder,
    grid_ref: &ObjectReference,
) -> Result<(), kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &grid.namespace);
    let nodes: Api<Node> = Api::all(client.clone());
    let selector = selector_labels(grid, Role::Cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    for pod in pods.list(&ListParams::default().labels(&selector)).await? {
        if pod.annotations().contains_key(ZONE_ANNOTATION) {
            continue;
        }
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        let node = nodes.get(&node_name).await?;
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
                warn!(%note);
                let ev = Event {
                    type_: EventType::Warning,
                    reason: "NodeWithoutZone".to_string(),
                    note: Some(note),
                    action: "Reconcile".to_string(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&ev, grid_ref).await {
                    warn!(error = %e, "could not publish event");
                }
            }
        }
    }
    Ok(())
}
