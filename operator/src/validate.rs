//! Checks the schema and CEL cannot express, turning a `FileGrid` into a [`ValidGrid`]
//! that the pure builders accept without further error handling.

use std::time::Duration;

use kube::ResourceExt;

use crate::config::{self, Role};
use crate::crd::{FileGrid, FileGridSpec};

/// Longest resource name: leaves room for `-cluster-<ordinal>` and the StatefulSet's
/// 63-character revision label.
pub const MAX_NAME_LEN: usize = 40;

/// Settings the operator writes itself (or sets per pod through the environment);
/// `extraConfig` may not override them.
pub const MANAGED_KEYS: &[&str] = &[
    "zk_hosts",
    "zk_root",
    "zk_auth_file",
    "session_timeout",
    "log_format",
    "server_id",
    "listen",
    "s3_listen",
    "metrics_listen",
    "advertise_host",
    "preempt",
    "replication_factor",
    "min_write_replicas",
    "chunk_size",
    "dead_after",
    "data_dir",
    "zone",
    "capacity",
    "monitor_id",
    "interval",
    "timeout",
    "failure_threshold",
    "interactive",
    "insecure",
    "cluster_secret_file",
    "credentials_file",
    "tls_cert",
    "tls_key",
    "tls_ca",
    // Mutual TLS would refuse the kubelet's probes and Prometheus, which bring no certificate.
    "tls_client_ca",
];

/// Why a FileGrid cannot be built. The message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct InvalidSpec {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.to_string(),
        message: message.into(),
    }
}

/// A FileGrid whose spec passed every check, with its derived values.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidGrid {
    pub name: String,
    pub namespace: String,
    /// Owner uid for the children's owner references.
    pub uid: String,
    pub generation: Option<i64>,
    pub spec: FileGridSpec,
    pub zk_root: String,
    pub min_write_replicas: i32,
    /// Credentials, TLS and peer signatures are on (`spec.security.insecure` is false).
    pub secured: bool,
    /// Secret holding the ZooKeeper credential (key `auth`): `zookeeper.authSecret`, else the
    /// one the operator generates for a secured grid, else none.
    pub zk_auth_secret: Option<String>,
    /// SHA-256 of the grid's CA certificate once the reconciler has read it; on the pod
    /// templates, so that pods restart when the CA is replaced (they read `tls_ca` at start).
    pub ca_sha256: Option<String>,
}

/// `minWriteReplicas` when the spec leaves it out: 2 copies (1 when `replicationFactor` is 1),
/// so that with a replication factor of 3 writes go on while one cluster server restarts; the
/// missing copy is made by repair.
pub fn default_min_write_replicas(replication_factor: i32) -> i32 {
    replication_factor.clamp(1, 2)
}

/// Validate a FileGrid read from the API server.
pub fn validate(fg: &FileGrid) -> Result<ValidGrid, InvalidSpec> {
    let name = fg.name_any();
    let namespace = fg
        .namespace()
        .ok_or_else(|| invalid("metadata.namespace", "is required"))?;
    let uid = fg
        .uid()
        .ok_or_else(|| invalid("metadata.uid", "is required"))?;
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(
            "metadata.name",
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    let spec = &fg.spec;
    let rf = spec.replication_factor;
    if !(1..=5).contains(&rf) {
        return Err(invalid("spec.replicationFactor", "must be between 1 and 5"));
    }
    if spec.cluster.replicas < rf {
        return Err(invalid(
            "spec.cluster.replicas",
            format!("{} is below replicationFactor {rf}", spec.cluster.replicas),
        ));
    }
    if spec.heads.replicas < 1 {
        return Err(invalid("spec.heads.replicas", "must be at least 1"));
    }
    let min_write_replicas = spec
        .min_write_replicas
        .unwrap_or_else(|| default_min_write_replicas(rf));
    if !(1..=rf).contains(&min_write_replicas) {
        return Err(invalid(
            "spec.minWriteReplicas",
            format!("must be between 1 and replicationFactor {rf}"),
        ));
    }
    if spec.zookeeper.connect.trim().is_empty() {
        return Err(invalid("spec.zookeeper.connect", "is required"));
    }
    for part in spec.zookeeper.connect.split(',') {
        let ok = part
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(invalid(
                "spec.zookeeper.connect",
                format!("`{part}` is not host:port"),
            ));
        }
    }
    let chunk = parse_size("spec.chunkSize", &spec.chunk_size)?;
    if !(64 * 1024..=1024 * 1024 * 1024).contains(&chunk) {
        return Err(invalid("spec.chunkSize", "must be between 64KiB and 1GiB"));
    }
    if let Some(capacity) = &spec.cluster.capacity {
        parse_size("spec.cluster.capacity", capacity)?;
    }
    parse_duration("spec.deadAfter", &spec.dead_after)?;
    parse_duration(
        "spec.zookeeper.sessionTimeout",
        &spec.zookeeper.session_timeout,
    )?;
    let interval = parse_duration("spec.monitor.interval", &spec.monitor.interval)?;
    let timeout = parse_duration("spec.monitor.timeout", &spec.monitor.timeout)?;
    if timeout >= interval {
        return Err(invalid(
            "spec.monitor.timeout",
            "must be shorter than spec.monitor.interval",
        ));
    }
    parse_duration(
        "spec.metrics.serviceMonitor.interval",
        &spec.metrics.service_monitor.interval,
    )?;
    if let Some(key) = &spec.zone_topology_key {
        check_label_key("spec.zoneTopologyKey", key)?;
    }
    for (role, extra) in [
        (Role::Head, &spec.extra_config.head),
        (Role::Cluster, &spec.extra_config.cluster),
        (Role::Monitor, &spec.extra_config.monitor),
    ] {
        for (key, value) in extra {
            let field = format!("spec.extraConfig.{}.{key}", role.as_str());
            if MANAGED_KEYS.contains(&key.as_str()) {
                return Err(invalid(
                    &field,
                    "is managed by the operator; set it through the FileGrid spec",
                ));
            }
            let well_formed = key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !well_formed {
                return Err(invalid(&field, "setting names are snake_case"));
            }
            if let Some(message) = config::extra_problem(role, key, value) {
                return Err(invalid(&field, message));
            }
        }
    }
    let zk_root = spec
        .zookeeper
        .root
        .clone()
        .unwrap_or_else(|| format!("/filegrid/{namespace}/{name}"));
    if !zk_root.starts_with('/') || zk_root.ends_with('/') || zk_root.contains("//") {
        return Err(invalid(
            "spec.zookeeper.root",
            "must be an absolute znode path such as /filegrid/prod",
        ));
    }
    let secured = !spec.security.insecure;
    let zk_auth_secret = match &spec.zookeeper.auth_secret {
        Some(s) => Some(s.clone()),
        None if secured => Some(crate::builders::names::zookeeper_auth(&name)),
        None => None,
    };
    Ok(ValidGrid {
        name,
        namespace,
        uid,
        generation: fg.metadata.generation,
        spec: spec.clone(),
        zk_root,
        min_write_replicas,
        secured,
        zk_auth_secret,
        ca_sha256: None,
    })
}

fn parse_size(field: &str, value: &str) -> Result<u64, InvalidSpec> {
    value
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| invalid(field, format!("`{value}` is not a size such as 8MiB: {e}")))
}

fn parse_duration(field: &str, value: &str) -> Result<Duration, InvalidSpec> {
    let d = humantime::parse_duration(value).map_err(|e| {
        invalid(
            field,
            format!("`{value}` is not a duration such as 10s: {e}"),
        )
    })?;
    if d.is_zero() {
        return Err(invalid(field, "must be greater than zero"));
    }
    Ok(d)
}

/// A Kubernetes label key: optional DNS prefix and a name of at most 63 characters.
fn check_label_key(field: &str, key: &str) -> Result<(), InvalidSpec> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(invalid(field, format!("`{key}` is not a valid label key")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(yaml_spec: &str) -> FileGrid {
        let text = format!(
            "apiVersion: filegrid.io/v1alpha1\nkind: FileGrid\nmetadata: {{name: g, namespace: ns, uid: u1}}\nspec:\n{yaml_spec}"
        );
        serde_yaml::from_str(&text).unwrap()
    }

    fn field_of(spec: &str) -> String {
        validate(&grid(spec)).unwrap_err().field
    }

    #[test]
    fn defaults_are_valid() {
        let g = validate(&grid("  zookeeper: {connect: 'zk:2181'}")).unwrap();
        assert_eq!(g.min_write_replicas, 2);
        assert_eq!(g.zk_root, "/filegrid/ns/g");
    }

    #[test]
    fn default_min_write_replicas_leaves_one_copy_to_repair() {
        assert_eq!(default_min_write_replicas(1), 1);
        assert_eq!(default_min_write_replicas(2), 2);
        assert_eq!(default_min_write_replicas(3), 2);
        assert_eq!(default_min_write_replicas(5), 2);
        let g = validate(&grid(
            "  zookeeper: {connect: 'zk:2181'}\n  replicationFactor: 1\n  cluster: {replicas: 1}",
        ))
        .unwrap();
        assert_eq!(g.min_write_replicas, 1);
    }

    #[test]
    fn extra_config_takes_strings_numbers_and_booleans_but_not_objects() {
        let zk = "  zookeeper: {connect: 'zk:2181'}\n";
        let g = validate(&grid(&format!(
            "{zk}  extraConfig: {{head: {{standby_proxy: false, startup_grace: 5s}}, cluster: {{scrub_rate: 1048576}}}}"
        )))
        .unwrap();
        assert_eq!(g.spec.extra_config.head["standby_proxy"], false.into());
        assert_eq!(
            validate(&grid(&format!(
                "{zk}  extraConfig: {{head: {{future: {{a: 1}}}}}}"
            )))
            .unwrap_err()
            .to_string(),
            "spec.extraConfig.head.future: must be a string, a number or a boolean"
        );
        assert_eq!(
            field_of(&format!(
                "{zk}  extraConfig: {{head: {{standby_proxy: 3}}}}"
            )),
            "spec.extraConfig.head.standby_proxy"
        );
    }

    #[test]
    fn each_bad_value_names_its_field() {
        let zk = "  zookeeper: {connect: 'zk:2181'}\n";
        assert_eq!(
            field_of("  zookeeper: {connect: 'zk'}"),
            "spec.zookeeper.connect"
        );
        assert_eq!(
            field_of("  zookeeper: {connect: 'zk:99999'}"),
            "spec.zookeeper.connect"
        );
        assert_eq!(
            field_of(&format!("{zk}  monitor: {{interval: 2s, timeout: 2s}}")),
            "spec.monitor.timeout"
        );
        assert_eq!(
            field_of(&format!("{zk}  chunkSize: 1KiB")),
            "spec.chunkSize"
        );
        assert_eq!(field_of(&format!("{zk}  deadAfter: 0s")), "spec.deadAfter");
        assert_eq!(
            field_of(&format!("{zk}  zoneTopologyKey: 'bad key/'")),
            "spec.zoneTopologyKey"
        );
        assert_eq!(
            field_of(&format!("{zk}  minWriteReplicas: 4")),
            "spec.minWriteReplicas"
        );
        assert_eq!(
            field_of(&format!("{zk}  extraConfig: {{monitor: {{Bad-Key: x}}}}")),
            "spec.extraConfig.monitor.Bad-Key"
        );
        assert_eq!(
            field_of(&format!("{zk}  cluster: {{capacity: lots}}")),
            "spec.cluster.capacity"
        );
        assert_eq!(
            field_of("  zookeeper: {connect: 'zk:2181', root: '/a//b'}"),
            "spec.zookeeper.root"
        );
    }

    #[test]
    fn long_names_are_refused() {
        let mut fg = grid("  zookeeper: {connect: 'zk:2181'}");
        fg.metadata.name = Some("a".repeat(MAX_NAME_LEN + 1));
        assert_eq!(validate(&fg).unwrap_err().field, "metadata.name");
    }

    #[test]
    fn zone_keys_with_prefix_are_accepted() {
        let g = validate(&grid(
            "  zookeeper: {connect: 'zk:2181'}\n  zoneTopologyKey: topology.kubernetes.io/zone",
        ));
        assert!(g.is_ok());
    }
}
