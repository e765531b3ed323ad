//! The TOML files the operator writes use only keys the node accepts for that role.
//! The node rejects unknown keys at start, so a mismatch would crash-loop every pod; this
//! reads the node's own key lists (node/src/config/mod.rs) to catch it here instead.

use std::path::PathBuf;

use filegrid_operator::config::{self, Role};
use filegrid_operator::crd::FileGrid;
use filegrid_operator::validate::validate;

/// The quoted names in `const NAME: &[&str] = &[ ... ];` of the node's config module.
fn node_keys(constant: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../node/src/config/mod.rs");
    let src = std::fs::read_to_string(&path).unwrap();
    let start = src
        .find(&format!("const {constant}: &[&str] = &["))
        .unwrap_or_else(|| {
            panic!(
                "{constant} not found in {}: the node's config keys moved",
                path.display()
            )
        });
    let body = &src[start..start + src[start..].find("];").unwrap()];
    body.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_rendered_key_is_known_to_the_node_for_that_role() {
    let common = node_keys("COMMON_KEYS");
    assert!(common.contains(&"zk_hosts".to_string()), "{common:?}");
    for fixture in ["minimal", "zones", "no-monitor-rf2"] {
        let path = format!(
            "{}/tests/fixtures/{fixture}.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let fg: FileGrid = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let grid = validate(&fg).unwrap();
        for (role, constant) in [
            (Role::Head, "HEAD_KEYS"),
            (Role::Cluster, "CLUSTER_KEYS"),
            (Role::Monitor, "MONITOR_KEYS"),
        ] {
            let known = node_keys(constant);
            for key in config::role_settings(&grid, role).keys() {
                assert!(
                    common.contains(key) || known.contains(key),
                    "{fixture}: the operator writes `{key}` into {}, which the node does not accept ({known:?})",
                    role.file_name()
                );
            }
        }
    }
}
