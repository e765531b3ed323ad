//! Files generated from the Rust types must match them. Run with
//! `FILEGRID_UPDATE_GENERATED=1` to rewrite them after changing the types or RBAC rules.

use std::path::PathBuf;

use filegrid_operator::{crd, install};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn check(path: &str, expected: &str) {
    let file = repo(path);
    if std::env::var_os("FILEGRID_UPDATE_GENERATED").is_some() {
        std::fs::write(&file, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        actual == expected,
        "{path} differs from what the Rust types generate; run \
         `FILEGRID_UPDATE_GENERATED=1 cargo test -p filegrid-operator --test generated`"
    );
}

#[test]
fn crd_yaml_matches_the_types() {
    check("crds/filegrid.yaml", &crd::crd_yaml().unwrap());
}

#[test]
fn helm_chart_crd_is_identical_to_crds_filegrid_yaml() {
    check(
        "helm/filegrid-operator/crds/filegrid.yaml",
        &crd::crd_yaml().unwrap(),
    );
    let a = std::fs::read(repo("crds/filegrid.yaml")).unwrap();
    let b = std::fs::read(repo("helm/filegrid-operator/crds/filegrid.yaml")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn helm_chart_rbac_rules_match_the_operator() {
    check(
        "helm/filegrid-operator/files/clusterrole-rules.yaml",
        &install::rules_yaml(&install::cluster_rules()).unwrap(),
    );
    check(
        "helm/filegrid-operator/files/crd-rules.yaml",
        &install::rules_yaml(&install::crd_rules()).unwrap(),
    );
    check(
        "helm/filegrid-operator/files/role-rules.yaml",
        &install::rules_yaml(&install::lease_rules()).unwrap(),
    );
}

#[test]
fn crd_has_short_name_printer_columns_and_cel_rules() {
    let y: serde_yaml::Value = serde_yaml::from_str(&crd::crd_yaml().unwrap()).unwrap();
    assert_eq!(y["spec"]["names"]["shortNames"][0], "fg");
    assert_eq!(y["spec"]["scope"], "Namespaced");
    let v = &y["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Leader",
            "Heads",
            "Cluster",
            "Available",
            "Used",
            "Under-Replicated",
            "Age"
        ]
    );
    assert!(v["subresources"]["status"].is_mapping());
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let rules: Vec<&str> = spec["x-kubernetes-validations"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"self.cluster.replicas >= self.replicationFactor"));
    assert_eq!(
        spec["properties"]["replicationFactor"]["x-kubernetes-validations"][0]["rule"],
        "self == oldSelf"
    );
    assert_eq!(
        spec["properties"]["replicationFactor"]["maximum"].as_f64(),
        Some(5.0)
    );
}
