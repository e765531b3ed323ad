//! The operator brings the `FileGrid` CRD to its own version at start. `helm upgrade` never
//! touches a chart's `crds/`, so without this a new operator would run against the schema
//! of the first install (new spec fields pruned, new status fields dropped).
//!
//! The CRD is applied with server-side apply under the operator's field manager, marked with
//! the operator's version; an operator never replaces a CRD that a newer operator applied
//! (during a rolling upgrade the old replica may still start).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{CustomResourceExt, ResourceExt};
use tracing::{info, warn};

use crate::builders::FIELD_MANAGER;
use crate::crd::FileGrid;

/// Annotation on the CRD: the version of the operator that applied it.
pub const VERSION_ANNOTATION: &str = "filegrid.io/operator-version";

/// This operator's version, the one it marks the CRD with.
pub const OPERATOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What to do with the installed CRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrdAction {
    /// Apply ours (none installed, an older or equal one, or one of unknown version).
    Apply,
    /// Leave it: a newer operator applied it.
    KeepNewer { installed: String },
}

/// `major.minor.patch` as numbers; a pre-release or build suffix is ignored. `None` for
/// anything else (a hand-edited annotation is not trusted to block an upgrade).
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim().split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let out = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(out)
}

/// Decides from the installed CRD's version annotation (if any) and this operator's version.
pub fn decide(installed: Option<&str>, ours: &str) -> CrdAction {
    match (installed.and_then(parse_version), parse_version(ours)) {
        (Some(theirs), Some(mine)) if theirs > mine => CrdAction::KeepNewer {
            installed: installed.unwrap_or_default().to_string(),
        },
        _ => CrdAction::Apply,
    }
}

/// The CRD this operator applies: the generated one, marked with `version`.
pub fn desired(version: &str) -> CustomResourceDefinition {
    let mut crd = FileGrid::crd();
    crd.annotations_mut()
        .insert(VERSION_ANNOTATION.to_string(), version.to_string());
    crd
}

/// What [`ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrdOutcome {
    Applied,
    KeptNewer { installed: String },
}

/// Reads the installed CRD and applies ours unless a newer operator's is installed.
pub async fn ensure(
    api: &Api<CustomResourceDefinition>,
    version: &str,
) -> Result<CrdOutcome, kube::Error> {
    let ours = desired(version);
    let name = ours.name_any();
    let installed = api.get_opt(&name).await?;
    let installed_version = installed
        .as_ref()
        .and_then(|c| c.annotations().get(VERSION_ANNOTATION).cloned());
    match decide(installed_version.as_deref(), version) {
        CrdAction::KeepNewer { installed } => {
            warn!(crd = %name, %installed, ours = version,
                "the installed CRD was applied by a newer operator; leaving it");
            Ok(CrdOutcome::KeptNewer { installed })
        }
        CrdAction::Apply => {
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&ours),
            )
            .await?;
            info!(crd = %name, version, "applied the FileGrid CRD");
            Ok(CrdOutcome::Applied)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_missing_or_equal_crd_is_replaced() {
        assert_eq!(decide(None, "0.2.0"), CrdAction::Apply);
        assert_eq!(decide(Some("0.1.0"), "0.2.0"), CrdAction::Apply);
        assert_eq!(decide(Some("0.2.0"), "0.2.0"), CrdAction::Apply);
        assert_eq!(decide(Some("0.9.9"), "1.0.0"), CrdAction::Apply);
    }

    #[test]
    fn a_newer_operators_crd_is_kept() {
        assert_eq!(
            decide(Some("0.3.0"), "0.2.5"),
            CrdAction::KeepNewer {
                installed: "0.3.0".into()
            }
        );
        assert_eq!(
            decide(Some("0.2.10"), "0.2.9"),
            CrdAction::KeepNewer {
                installed: "0.2.10".into()
            }
        );
    }

    #[test]
    fn an_unreadable_version_does_not_block_the_upgrade() {
        for v in [
            "",
            "latest",
            "1.2",
            "1.2.3.4",
            "x.1.2",
            "99999999999999999999.0.0",
        ] {
            assert_eq!(decide(Some(v), "0.2.0"), CrdAction::Apply, "{v}");
        }
        assert!(matches!(
            decide(Some("1.0.0-rc.1"), "0.9.0"),
            CrdAction::KeepNewer { .. }
        ));
    }

    #[test]
    fn the_applied_crd_is_the_generated_one_marked_with_the_version() {
        let crd = desired("1.2.3");
        assert_eq!(crd.name_any(), "filegrids.filegrid.io");
        assert_eq!(crd.annotations()[VERSION_ANNOTATION], "1.2.3");
        assert_eq!(crd.spec, FileGrid::crd().spec);
    }
}
