//! Samples: valid ones pass every check, invalid ones fail with the reason they state.
//! (The structural schema part is also checked by scripts/validate-manifests.sh with check-jsonschema.)

use std::path::PathBuf;

use filegrid_operator::crd::FileGrid;
use filegrid_operator::render::{check_sample, crd_schema};
use kube::core::cel::Validator;

fn dir(sub: &str) -> Vec<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crds/samples")
        .join(sub);
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn valid_samples_pass() {
    let samples = dir("");
    assert!(samples.len() >= 2);
    for s in samples {
        check_sample(&s).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn invalid_samples_fail_for_their_stated_reason_unless_only_the_structural_schema_catches_them() {
    let samples = dir("invalid");
    assert!(samples.len() >= 5);
    let mut rejected = 0;
    for s in samples {
        let text = std::fs::read_to_string(&s).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap();
        match check_sample(&s) {
            Err(e) => {
                assert!(
                    e.to_string().contains(expect),
                    "{}: {e} does not mention {expect}",
                    s.display()
                );
                rejected += 1;
            }
            // Unknown fields are dropped by serde; the strict JSON schema rejects them.
            Ok(_) => assert!(
                s.ends_with("unknown-field.yaml"),
                "{} was accepted",
                s.display()
            ),
        }
    }
    assert!(rejected >= 5);
}

#[test]
fn replication_factor_is_immutable_by_cel_transition_rule() {
    let old: FileGrid =
        serde_yaml::from_str(&std::fs::read_to_string(&dir("")[0]).unwrap()).unwrap();
    let mut new = old.clone();
    new.spec.replication_factor = 2;
    let (o, n) = (
        serde_json::to_value(&old).unwrap(),
        serde_json::to_value(&new).unwrap(),
    );
    let err = Validator::new()
        .validate(&crd_schema(), &n, Some(&o))
        .unwrap_err();
    assert!(
        err.to_string().contains("replicationFactor is immutable"),
        "{err}"
    );
    assert!(
        Validator::new()
            .validate(&crd_schema(), &o, Some(&o))
            .is_ok()
    );
}
