//! Warning Events once per change of cause: a reconcile runs every few seconds while a grid
//! converges, and the same warning each time would bury every other Event.

use std::collections::{BTreeMap, HashMap};

/// The warnings last published, per grid and per subject (such as a pod's name).
#[derive(Debug, Default)]
pub struct Warnings {
    last: HashMap<(String, String), BTreeMap<String, String>>,
}

impl Warnings {
    /// `current` maps each subject that has this warning now to its note. Returns the entries
    /// to publish: those whose subject is new or whose note changed. Subjects no longer in
    /// `current` are forgotten, so the warning is published again if the cause comes back.
    pub fn changed(
        &mut self,
        grid: &str,
        reason: &str,
        current: BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        let key = (grid.to_string(), reason.to_string());
        let previous = self.last.remove(&key).unwrap_or_default();
        let new = current
            .iter()
            .filter(|(subject, note)| previous.get(*subject) != Some(*note))
            .map(|(s, n)| (s.clone(), n.clone()))
            .collect();
        if !current.is_empty() {
            self.last.insert(key, current);
        }
        new
    }

    /// Forget everything about a grid (it was deleted).
    pub fn forget(&mut self, grid: &str) {
        self.last.retain(|(g, _), _| g != grid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(subject: &str, note: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(subject.to_string(), note.to_string())])
    }

    #[test]
    fn each_warning_once_per_change_of_cause() {
        let mut w = Warnings::default();
        let r = "NodeWithoutZone";
        assert_eq!(
            w.changed("ns/a", r, one("a-cluster-0", "node n1 has no label")),
            vec![(
                "a-cluster-0".to_string(),
                "node n1 has no label".to_string()
            )]
        );
        // The same cause on the next reconciles: nothing.
        assert!(
            w.changed("ns/a", r, one("a-cluster-0", "node n1 has no label"))
                .is_empty()
        );
        assert!(
            w.changed("ns/a", r, one("a-cluster-0", "node n1 has no label"))
                .is_empty()
        );
        // Another grid, another reason: independent.
        assert_eq!(w.changed("ns/b", r, one("b-cluster-0", "x")).len(), 1);
        assert_eq!(
            w.changed("ns/a", "ServiceMonitorUnavailable", one("", "y"))
                .len(),
            1
        );
        // The cause changes (the pod moved to another node without the label): again.
        assert_eq!(
            w.changed("ns/a", r, one("a-cluster-0", "node n2 has no label"))
                .len(),
            1
        );
        // Fixed, then broken again: again.
        assert!(w.changed("ns/a", r, BTreeMap::new()).is_empty());
        assert_eq!(
            w.changed("ns/a", r, one("a-cluster-0", "node n2 has no label"))
                .len(),
            1
        );
        w.forget("ns/a");
        assert_eq!(
            w.changed("ns/a", "ServiceMonitorUnavailable", one("", "y"))
                .len(),
            1
        );
        assert!(w.changed("ns/b", r, one("b-cluster-0", "x")).is_empty());
    }
}
