//! The node's TOML files, one per role, and the hash that rolls pods when one changes.
//!
//! Each file holds only its role's keys (the node rejects unknown ones). Per-pod values —
//! server id, advertised address, monitor id, zone — come from the environment instead.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use toml::Value;

use crate::crd::ExtraValue;
use crate::validate::ValidGrid;

/// Where the config map is mounted in every FileGrid container.
pub const CONFIG_DIR: &str = "/etc/filegrid";
/// Where the Secret of `zookeeper.authSecret` is mounted, and the key (file) it must hold.
pub const ZK_AUTH_DIR: &str = "/etc/filegrid-zk";
pub const ZK_AUTH_KEY: &str = "auth";
/// Where the cluster secret is mounted (heads and cluster servers), and its key.
pub const CLUSTER_SECRET_DIR: &str = "/etc/filegrid-cluster-secret";
pub const CLUSTER_SECRET_KEY: &str = "cluster-secret";
/// Where the heads' credentials file is mounted, and its key in the admin Secret.
pub const CREDENTIALS_DIR: &str = "/etc/filegrid-credentials";
pub const CREDENTIALS_KEY: &str = "credentials";
/// Where each role's certificate, key and the grid's CA are mounted.
pub const TLS_DIR: &str = "/etc/filegrid-tls";
/// Where each cluster server's volume is mounted.
pub const DATA_DIR: &str = "/var/lib/filegrid";
pub const HEAD_API_PORT: i32 = 9669;
/// The heads' S3 API ([docs/s3.md]).
pub const HEAD_S3_PORT: i32 = 9000;
pub const CLUSTER_PORT: i32 = 9700;
pub const MONITOR_METRICS_PORT: i32 = 9092;
/// Extra metrics listener of heads and cluster servers.
pub const METRICS_PORT: i32 = 9091;

pub use filegrid_proto::config::Role;

/// Key of `role`'s file in the config map.
pub fn file_name(role: Role) -> String {
    format!("{}.toml", role.as_str())
}

/// Absolute path of `role`'s file inside the container.
pub fn config_path(role: Role) -> String {
    format!("{CONFIG_DIR}/{}", file_name(role))
}

/// The settings of one role, sorted by key.
pub fn role_settings(grid: &ValidGrid, role: Role) -> BTreeMap<String, Value> {
    let spec = &grid.spec;
    let mut s = BTreeMap::new();
    let mut put = |k: &str, v: Value| {
        s.insert(k.to_string(), v);
    };
    put("zk_hosts", Value::String(spec.zookeeper.connect.clone()));
    put("zk_root", Value::String(grid.zk_root.clone()));
    put(
        "session_timeout",
        Value::String(spec.zookeeper.session_timeout.clone()),
    );
    put(
        "log_format",
        Value::String(spec.log_format.as_str().to_string()),
    );
    if grid.zk_auth_secret.is_some() {
        put(
            "zk_auth_file",
            Value::String(format!("{ZK_AUTH_DIR}/{ZK_AUTH_KEY}")),
        );
    }
    if grid.secured {
        use crate::security::plan::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
        put(
            "tls_cert",
            Value::String(format!("{TLS_DIR}/{TLS_CERT_KEY}")),
        );
        put("tls_key", Value::String(format!("{TLS_DIR}/{TLS_KEY_KEY}")));
        put("tls_ca", Value::String(format!("{TLS_DIR}/{CA_CERT_KEY}")));
        if role != Role::Monitor {
            put(
                "cluster_secret_file",
                Value::String(format!("{CLUSTER_SECRET_DIR}/{CLUSTER_SECRET_KEY}")),
            );
        }
        if role == Role::Head {
            put(
                "credentials_file",
                Value::String(format!("{CREDENTIALS_DIR}/{CREDENTIALS_KEY}")),
            );
        }
    } else {
        // Asked for explicitly (spec.security.insecure); every process logs a warning.
        put("insecure", Value::Boolean(true));
    }
    let extra = match role {
        Role::Head => {
            put("listen", Value::String(format!("0.0.0.0:{HEAD_API_PORT}")));
            put(
                "s3_listen",
                Value::String(format!("0.0.0.0:{HEAD_S3_PORT}")),
            );
            put(
                "metrics_listen",
                Value::String(format!("0.0.0.0:{METRICS_PORT}")),
            );
            put("preempt", Value::Boolean(spec.heads.preempt));
            // Clients reach the heads through a Service that may pick a standby: standbys
            // forward to the leader instead of redirecting (a streamed upload cannot follow a
            // redirect). `extraConfig.head.standby_proxy: false` switches it off.
            put("standby_proxy", Value::Boolean(true));
            put(
                "replication_factor",
                Value::Integer(spec.replication_factor.into()),
            );
            put(
                "min_write_replicas",
                Value::Integer(grid.min_write_replicas.into()),
            );
            put("chunk_size", Value::String(spec.chunk_size.clone()));
            put("dead_after", Value::String(spec.dead_after.clone()));
            &spec.extra_config.head
        }
        Role::Cluster => {
            put("listen", Value::String(format!("0.0.0.0:{CLUSTER_PORT}")));
            put(
                "metrics_listen",
                Value::String(format!("0.0.0.0:{METRICS_PORT}")),
            );
            put("data_dir", Value::String(DATA_DIR.to_string()));
            if let Some(capacity) = &spec.cluster.capacity {
                put("capacity", Value::String(capacity.clone()));
            }
            &spec.extra_config.cluster
        }
        Role::Monitor => {
            put(
                "metrics_listen",
                Value::String(format!("0.0.0.0:{MONITOR_METRICS_PORT}")),
            );
            put("interval", Value::String(spec.monitor.interval.clone()));
            put("timeout", Value::String(spec.monitor.timeout.clone()));
            put(
                "failure_threshold",
                Value::Integer(spec.monitor.failure_threshold.into()),
            );
            &spec.extra_config.monitor
        }
    };
    for (k, v) in extra {
        // Validation refuses values without a TOML scalar form, so none is skipped here.
        if let Some(v) = extra_value(v) {
            s.insert(k.clone(), v);
        }
    }
    s
}

/// Why the node would refuse an `extraConfig` entry of `role`, if it is sure to: a value the
/// setting's rule rejects, or a setting of another role. Keys no role knows are passed on, as
/// `extraConfig` is for settings of newer node versions.
pub fn extra_problem(role: Role, key: &str, value: &ExtraValue) -> Option<String> {
    use filegrid_proto::config::{ClusterFile, HeadFile, MonitorFile};
    let Some(value) = extra_value(value) else {
        return Some("must be a string, a number or a boolean".to_string());
    };
    let one: toml::Table = [(key.to_string(), value)].into_iter().collect();
    let checked = match role {
        Role::Head if HeadFile::KEYS.contains(&key) => Some(one.try_into::<HeadFile>().err()),
        Role::Cluster if ClusterFile::KEYS.contains(&key) => {
            Some(one.try_into::<ClusterFile>().err())
        }
        Role::Monitor if MonitorFile::KEYS.contains(&key) => {
            Some(one.try_into::<MonitorFile>().err())
        }
        _ => None,
    };
    if let Some(error) = checked {
        return error.map(|e| e.message().to_string());
    }
    let owners: Vec<&str> = [
        (Role::Head, HeadFile::KEYS),
        (Role::Cluster, ClusterFile::KEYS),
        (Role::Monitor, MonitorFile::KEYS),
    ]
    .into_iter()
    .filter(|(_, keys)| keys.contains(&key))
    .map(|(r, _)| r.as_str())
    .collect();
    (!owners.is_empty()).then(|| {
        format!(
            "is a {} setting, not a {} one",
            owners.join(" and "),
            role.as_str()
        )
    })
}

/// The TOML form of an `extraConfig` value: strings, integers, floats and booleans keep their
/// type; objects, arrays and null have none.
pub fn extra_value(v: &ExtraValue) -> Option<Value> {
    match &v.0 {
        serde_json::Value::Bool(b) => Some(Value::Boolean(*b)),
        serde_json::Value::String(s) => Some(Value::String(s.clone())),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Value::Integer(i)),
            None => n.as_f64().map(Value::Float),
        },
        serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            None
        }
    }
}

/// The TOML text of one role's file.
pub fn render(grid: &ValidGrid, role: Role) -> String {
    let table: toml::Table = role_settings(grid, role).into_iter().collect();
    // A flat table of strings, integers and booleans always serializes.
    toml::to_string(&table).unwrap_or_default()
}

/// Hex SHA-256 of one role's file: goes on that role's pod template so a change rolls the pods.
pub fn config_hash(grid: &ValidGrid, role: Role) -> String {
    let digest = Sha256::digest(render(grid, role).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_config_the_node_would_refuse() {
        let int = |n: i64| ExtraValue::from(n);
        assert_eq!(
            extra_problem(Role::Cluster, "scrub_rate", &int(33554432)),
            None
        );
        assert_eq!(
            extra_problem(Role::Cluster, "scrub_rate", &"32MiB".into()),
            None
        );
        assert_eq!(
            extra_problem(Role::Head, "startup_grace", &"5s".into()),
            None
        );
        assert_eq!(
            extra_problem(Role::Head, "standby_proxy", &true.into()),
            None
        );
        assert_eq!(
            extra_problem(Role::Cluster, "scrub_rate", &"fast".into()).map(|m| m.contains("8MiB")),
            Some(true)
        );
        assert!(extra_problem(Role::Head, "standby_proxy", &int(7)).is_some());
        assert_eq!(
            extra_problem(Role::Head, "scrub_rate", &"1MiB".into()).as_deref(),
            Some("is a cluster setting, not a head one")
        );
        assert_eq!(
            extra_problem(Role::Head, "from_a_newer_node", &int(1)),
            None
        );
        assert_eq!(
            extra_problem(
                Role::Head,
                "from_a_newer_node",
                &ExtraValue(json!({"a": 1}))
            )
            .as_deref(),
            Some("must be a string, a number or a boolean")
        );
    }

    #[test]
    fn extra_values_keep_their_type() {
        assert_eq!(extra_value(&true.into()), Some(Value::Boolean(true)));
        assert_eq!(extra_value(&false.into()), Some(Value::Boolean(false)));
        assert_eq!(extra_value(&64.into()), Some(Value::Integer(64)));
        assert_eq!(
            extra_value(&ExtraValue(json!(0.5))),
            Some(Value::Float(0.5))
        );
        assert_eq!(
            extra_value(&"8MiB".into()),
            Some(Value::String("8MiB".to_string()))
        );
        // A quoted value stays a string.
        assert_eq!(
            extra_value(&"true".into()),
            Some(Value::String("true".to_string()))
        );
        assert_eq!(extra_value(&ExtraValue(json!(null))), None);
        assert_eq!(extra_value(&ExtraValue(json!([1]))), None);
    }
}
