//! The cluster StatefulSet's size, and the volumes of servers that left it.
//!
//! The operator owns the size: it records the count it applied on the StatefulSet
//! ([`REPLICAS_ANNOTATION`]), so a `kubectl scale` by hand is undone (restored) instead of being
//! read as the grid's size; only the spec's `cluster.replicas` scales, and a scale-down drains
//! first. Volumes are never deleted by Kubernetes on a scale-down (claim retention `Retain`):
//! the operator deletes the claim of an ordinal at or above the size only once the head says
//! its server is drained (or does not know it). [`CLAIMS_ANNOTATION`] records up to which
//! ordinal claims may be left, so the claims are listed only while some may need deleting.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;

use crate::head_api::ServerState;

/// Annotation on the cluster StatefulSet: the `replicas` the operator applied last.
pub const REPLICAS_ANNOTATION: &str = "filegrid.io/cluster-replicas";
/// Annotation on the cluster StatefulSet: ordinals below this may still have a claim.
pub const CLAIMS_ANNOTATION: &str = "filegrid.io/cluster-claims";

/// What the API shows of the cluster StatefulSet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// `spec.replicas` now (a `kubectl scale` changes it).
    pub replicas: Option<i32>,
    /// [`REPLICAS_ANNOTATION`], if readable.
    pub recorded: Option<i32>,
    /// [`CLAIMS_ANNOTATION`], if readable.
    pub claims: Option<i32>,
}

impl Seen {
    pub fn of(sts: Option<&StatefulSet>) -> Self {
        let Some(sts) = sts else {
            return Self::default();
        };
        let annotation = |key: &str| {
            sts.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .and_then(|v| v.parse::<i32>().ok())
                .filter(|n| *n >= 0)
        };
        Self {
            replicas: sts.spec.replicas,
            recorded: annotation(REPLICAS_ANNOTATION),
            claims: annotation(CLAIMS_ANNOTATION),
        }
    }

    /// The size the grid has: what the operator applied last. A StatefulSet without the
    /// record (made before it) counts at its current size.
    pub fn size(&self) -> Option<i32> {
        self.recorded.or(self.replicas)
    }

    /// Whether the StatefulSet was resized by someone else than the operator.
    pub fn scaled_by_hand(&self) -> bool {
        matches!((self.recorded, self.replicas), (Some(r), Some(n)) if r != n)
    }

    /// Ordinals below the answer may have a claim, once `replicas` is applied: every pod
    /// that ran (by the record, the current size or a scale by hand) left one.
    pub fn claims_below(&self, replicas: i32) -> i32 {
        [self.claims, self.recorded, self.replicas, Some(replicas)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(replicas)
    }
}

/// What to do with the claim of a server at or above the size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Drained, or unknown to the head (never joined, or forgotten after leaving drained):
    /// nothing on the volume is needed.
    Delete,
    /// Still counted by the grid (live or dead, e.g. a pod added by hand): drain it first.
    Decommission,
    /// Draining (or a state this operator does not know): wait.
    Wait,
}

pub fn claim(state: Option<ServerState>) -> Claim {
    match state {
        None | Some(ServerState::Drained) => Claim::Delete,
        Some(ServerState::Draining) | Some(ServerState::Unknown) => Claim::Wait,
        Some(ServerState::Live) | Some(ServerState::Dead) => Claim::Decommission,
    }
}

/// The ordinal of a cluster claim `data-<grid>-cluster-<n>`, if `name` is one.
pub fn claim_ordinal(grid: &str, name: &str) -> Option<i32> {
    server_ordinal(grid, name.strip_prefix("data-")?)
}

/// The ordinal of cluster server (pod) `<grid>-cluster-<n>`, if `id` is one.
pub fn server_ordinal(grid: &str, id: &str) -> Option<i32> {
    let n = id.strip_prefix(grid)?.strip_prefix("-cluster-")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok()
}

/// The servers the operator was decommissioning (its last status) that the grid keeps after
/// all (`spec.cluster.replicas` went back up): they are recommissioned.
pub fn to_recommission(grid: &str, decommissioning: &[String], replicas: i32) -> Vec<String> {
    decommissioning
        .iter()
        .filter(|id| server_ordinal(grid, id).is_some_and(|n| n < replicas))
        .cloned()
        .collect()
}

/// Marks the StatefulSet the operator applies with its size and claim bound.
pub fn annotate(sts: &mut StatefulSet, replicas: i32, claims_below: i32) {
    let a = sts.metadata.annotations.get_or_insert_with(BTreeMap::new);
    a.insert(REPLICAS_ANNOTATION.to_string(), replicas.to_string());
    a.insert(
        CLAIMS_ANNOTATION.to_string(),
        claims_below.max(replicas).to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;

    fn sts(replicas: i32, annotations: &[(&str, &str)]) -> StatefulSet {
        let mut s = StatefulSet {
            spec: StatefulSetSpec {
                replicas: Some(replicas),
                ..StatefulSetSpec::default()
            },
            ..StatefulSet::default()
        };
        s.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s
    }

    #[test]
    fn the_size_is_what_the_operator_applied_not_a_scale_by_hand() {
        let up = Seen::of(Some(&sts(5, &[(REPLICAS_ANNOTATION, "4")])));
        assert_eq!(up.size(), Some(4));
        assert!(up.scaled_by_hand());
        let down = Seen::of(Some(&sts(2, &[(REPLICAS_ANNOTATION, "4")])));
        assert_eq!(down.size(), Some(4));
        assert!(down.scaled_by_hand());
        // Made before the record: its current size.
        let old = Seen::of(Some(&sts(3, &[])));
        assert_eq!(old.size(), Some(3));
        assert!(!old.scaled_by_hand());
        // A hostile annotation is ignored.
        let bad = Seen::of(Some(&sts(3, &[(REPLICAS_ANNOTATION, "-1")])));
        assert_eq!(bad.size(), Some(3));
        let bad = Seen::of(Some(&sts(3, &[(REPLICAS_ANNOTATION, "lots")])));
        assert_eq!(bad.size(), Some(3));
        assert_eq!(Seen::of(None).size(), None);
    }

    #[test]
    fn claims_are_looked_at_up_to_every_ordinal_that_ran() {
        // Scaled down 4 -> 3 by the operator: ordinal 3's claim.
        let s = Seen::of(Some(&sts(4, &[(REPLICAS_ANNOTATION, "4")])));
        assert_eq!(s.claims_below(3), 4);
        // Scaled up by hand to 6, restored to 4: ordinals 4 and 5.
        let s = Seen::of(Some(&sts(6, &[(REPLICAS_ANNOTATION, "4")])));
        assert_eq!(s.claims_below(4), 6);
        // A claim bound left from an earlier reconcile is kept until cleared.
        let s = Seen::of(Some(&sts(
            3,
            &[(REPLICAS_ANNOTATION, "3"), (CLAIMS_ANNOTATION, "5")],
        )));
        assert_eq!(s.claims_below(3), 5);
        // Nothing above the size.
        let s = Seen::of(Some(&sts(3, &[(REPLICAS_ANNOTATION, "3")])));
        assert_eq!(s.claims_below(3), 3);
    }

    #[test]
    fn a_claim_goes_only_once_its_server_is_drained_or_unknown() {
        assert_eq!(claim(Some(ServerState::Drained)), Claim::Delete);
        assert_eq!(claim(None), Claim::Delete);
        assert_eq!(claim(Some(ServerState::Draining)), Claim::Wait);
        assert_eq!(claim(Some(ServerState::Unknown)), Claim::Wait);
        assert_eq!(claim(Some(ServerState::Live)), Claim::Decommission);
        assert_eq!(claim(Some(ServerState::Dead)), Claim::Decommission);
    }

    #[test]
    fn claim_names_are_parsed_strictly() {
        assert_eq!(claim_ordinal("demo", "data-demo-cluster-3"), Some(3));
        assert_eq!(claim_ordinal("demo", "data-demo-cluster-12"), Some(12));
        for name in [
            "data-demo-cluster-",
            "data-demo-cluster-03",
            "data-demo-cluster-3x",
            "data-demo-cluster--3",
            "data-demo2-cluster-3",
            "data-demo-head-0",
            "other-demo-cluster-3",
            "data-demo-cluster-99999999999",
        ] {
            assert_eq!(claim_ordinal("demo", name), None, "{name}");
        }
    }

    #[test]
    fn only_its_own_decommissions_within_the_size_are_undone() {
        let was = vec![
            "demo-cluster-3".to_string(),
            "demo-cluster-4".to_string(),
            "other-cluster-1".to_string(),
            "demo-cluster-x".to_string(),
        ];
        assert_eq!(to_recommission("demo", &was, 4), ["demo-cluster-3"]);
        assert!(to_recommission("demo", &was, 3).is_empty());
        assert_eq!(to_recommission("demo", &was, 5).len(), 2);
    }

    #[test]
    fn the_applied_statefulset_carries_its_size_and_claim_bound() {
        let mut s = sts(3, &[]);
        annotate(&mut s, 3, 5);
        let a = s.metadata.annotations.unwrap();
        assert_eq!(a[REPLICAS_ANNOTATION], "3");
        assert_eq!(a[CLAIMS_ANNOTATION], "5");
    }
}
