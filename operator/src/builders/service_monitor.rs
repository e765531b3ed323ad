use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::{
    LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY, instance_labels, metadata, names,
};
use crate::config::Role;
use crate::security::metrics_server_name;
use crate::security::plan::CA_CERT_KEY;
use crate::validate::ValidGrid;

pub const SERVICE_MONITOR_API_VERSION: &str = "monitoring.coreos.com/v1";

/// The prometheus-operator ServiceMonitor kind (not part of k8s-openapi).
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ))
}

/// Scrapes the `metrics` port of every FileGrid service of this grid.
pub fn service_monitor(grid: &ValidGrid) -> DynamicObject {
    let sm = &grid.spec.metrics.service_monitor;
    let mut labels = instance_labels(grid);
    labels.extend(sm.labels.clone());
    let mut obj = DynamicObject::new(&grid.name, &service_monitor_resource());
    obj.metadata = metadata(grid, grid.name.clone(), labels);
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": {
                LABEL_NAME: "filegrid",
                LABEL_INSTANCE: grid.name,
                LABEL_MANAGED_BY: MANAGED_BY,
            }},
            "namespaceSelector": {"matchNames": [grid.namespace]},
            "endpoints": [endpoint(grid)],
        }
    });
    obj
}

/// The `metrics` port of every service; over https when the grid is secured, verified
/// against the grid's CA (from the head certificate's Secret) under a name every role's
/// certificate carries.
fn endpoint(grid: &ValidGrid) -> serde_json::Value {
    let sm = &grid.spec.metrics.service_monitor;
    let mut e = json!({"port": "metrics", "path": "/metrics", "interval": sm.interval});
    if grid.secured {
        e["scheme"] = json!("https");
        e["tlsConfig"] = json!({
            "ca": {"secret": {"name": names::tls(grid, Role::Head), "key": CA_CERT_KEY}},
            "serverName": metrics_server_name(grid),
        });
    }
    e
}
