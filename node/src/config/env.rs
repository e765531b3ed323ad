//! `FILEGRID_*` environment variables that are not settings of the starting role.
//!
//! clap only reads the variables it declares, so a misspelled one (`FILEGRID_ZK_HOST`) would be
//! ignored and the default used. At start every `FILEGRID_*` variable is therefore checked:
//! - a setting of this role, or a variable of another FileGrid program (the `filegrid` CLI, the
//!   image's health check, build and test scripts), is fine;
//! - a setting of another role only draws a warning, because one environment is often shared by
//!   every role (a compose `x-node-env`, an env file, a shell) and that works today;
//! - anything else is an error that names the closest known variable.

use std::collections::BTreeSet;

use clap::{Args, Command};

use super::{ClusterArgs, ConfigError, HeadArgs, MonitorArgs};

/// Variables read by FileGrid's other programs and scripts, not by a server role.
pub const OTHER_PROGRAMS: &[&str] = &[
    // the `filegrid` CLI and the compose test client
    "FILEGRID_HEAD",
    "FILEGRID_HEADS",
    "FILEGRID_CA_CERT",
    "FILEGRID_CLIENT_CERT",
    "FILEGRID_CLIENT_KEY",
    "FILEGRID_TOKEN",
    // the images' health check
    "FILEGRID_HEALTH_PORT",
    "FILEGRID_HEALTH_TIMEOUT",
    // the operator
    "FILEGRID_OPERATOR_LISTEN",
    "FILEGRID_OPERATOR_LOG_JSON",
    // image builds, docker compose and local runs
    "FILEGRID_VERSION",
    "FILEGRID_IMAGE_TAG",
    "FILEGRID_IMAGE_CACHE",
    "FILEGRID_DEBIAN_MIRROR",
    "FILEGRID_HEAD1_PORT",
    "FILEGRID_HEAD2_PORT",
    "FILEGRID_PROMETHEUS_PORT",
    "FILEGRID_GRAFANA_PORT",
    "FILEGRID_CLUSTER_CAPACITY",
    "FILEGRID_COMPOSE",
    "FILEGRID_LOCAL_DIR",
    "FILEGRID_ZK_PORT",
    // tests
    "FILEGRID_ZK_CLASSPATH",
    "FILEGRID_UPDATE_GENERATED",
];

/// Prefixes of variable families read by other programs (`FILEGRID_E2E_<NAME>` deadlines etc.).
pub const OTHER_PROGRAM_PREFIXES: &[&str] = &["FILEGRID_E2E_"];

pub use filegrid_proto::config::Role;

/// The variables `role`'s flags read, taken from the flags themselves.
pub fn env_names(role: Role) -> BTreeSet<String> {
    let cmd = Command::new(role.as_str());
    let cmd = match role {
        Role::Head => HeadArgs::augment_args(cmd),
        Role::Cluster => ClusterArgs::augment_args(cmd),
        Role::Monitor => MonitorArgs::augment_args(cmd),
    };
    cmd.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// A setting of another role found in this role's environment; it has no effect here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRoleVariable {
    pub name: String,
    pub roles: Vec<&'static str>,
}

impl std::fmt::Display for OtherRoleVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "environment variable {} is a setting of the {}, not of this role; ignored",
            self.name,
            self.roles.join(" and ")
        )
    }
}

/// What every role accepts, computed once from the flags.
pub struct KnownVariables {
    /// Each role with the variables its flags read.
    pub roles: Vec<(Role, BTreeSet<String>)>,
}

impl KnownVariables {
    pub fn from_flags() -> Self {
        Self {
            roles: Role::ALL.iter().map(|r| (*r, env_names(*r))).collect(),
        }
    }

    /// Decides about the `FILEGRID_*` variables among `names` for `role`: the first unknown
    /// one (in name order) is an error, settings of other roles are returned as warnings.
    pub fn check(
        &self,
        role: Role,
        names: impl IntoIterator<Item = String>,
    ) -> Result<Vec<OtherRoleVariable>, ConfigError> {
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with("FILEGRID_"))
            .collect();
        names.sort_unstable();
        names.dedup();
        let own = self
            .roles
            .iter()
            .filter(|(r, _)| *r == role)
            .flat_map(|(_, vars)| vars);
        let mut warnings = Vec::new();
        for name in names {
            if own.clone().any(|v| *v == name)
                || OTHER_PROGRAMS.contains(&name.as_str())
                || OTHER_PROGRAM_PREFIXES.iter().any(|p| name.starts_with(p))
                || is_service_link(&name)
            {
                continue;
            }
            let roles: Vec<&'static str> = self
                .roles
                .iter()
                .filter(|(_, vars)| vars.contains(&name))
                .map(|(r, _)| r.as_str())
                .collect();
            if !roles.is_empty() {
                warnings.push(OtherRoleVariable { name, roles });
                continue;
            }
            let suggestion = self.closest(&name);
            return Err(ConfigError::UnknownEnv {
                name,
                role: role.as_str(),
                suggestion,
            });
        }
        Ok(warnings)
    }

    /// The known variable spelled most like `name`, if any is reasonably close.
    fn closest(&self, name: &str) -> Option<String> {
        let known = self
            .roles
            .iter()
            .flat_map(|(_, vars)| vars.iter().map(String::as_str))
            .chain(OTHER_PROGRAMS.iter().copied());
        known
            .map(|k| (strsim::levenshtein(name, k), k))
            .filter(|(distance, k)| *distance <= (k.len() - "FILEGRID_".len()).div_ceil(2))
            .min()
            .map(|(_, k)| k.to_string())
    }
}

/// Whether `name` is one of the variables Kubernetes (service links) or docker (`links:`)
/// define for a service whose name starts with `filegrid` (`FILEGRID_HEAD_SERVICE_HOST`,
/// `FILEGRID_HEAD_PORT_9669_TCP_ADDR`, ...). No FileGrid setting has such a name, and such a
/// variable must not stop a process that merely runs beside a service called `filegrid-head`.
pub fn is_service_link(name: &str) -> bool {
    if name.contains("_SERVICE_HOST") || name.contains("_SERVICE_PORT") || name.ends_with("_PORT") {
        return true;
    }
    // `<SVC>_PORT_<number>_<protocol>` and its `_ADDR`, `_PORT`, `_PROTO` suffixes.
    name.split("_PORT_").skip(1).any(|rest| {
        let mut parts = rest.split('_');
        let number = parts
            .next()
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let proto = parts
            .next()
            .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
        number && proto
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_link_variables_of_a_service_named_filegrid_are_not_settings() {
        for v in [
            "FILEGRID_HEAD_SERVICE_HOST",
            "FILEGRID_HEAD_SERVICE_PORT",
            "FILEGRID_HEAD_SERVICE_PORT_API",
            "FILEGRID_HEAD_PORT",
            "FILEGRID_HEAD_PORT_9669_TCP",
            "FILEGRID_HEAD_PORT_9669_TCP_ADDR",
            "FILEGRID_CLUSTER_PORT_9700_UDP_PROTO",
        ] {
            assert!(is_service_link(v), "{v}");
        }
        for v in [
            "FILEGRID_ZK_HOST",
            "FILEGRID_PORTS",
            "FILEGRID_PORT_X_TCP",
            "FILEGRID_LISTEN",
        ] {
            assert!(!is_service_link(v), "{v}");
        }
        assert_eq!(
            check(
                Role::Head,
                &[
                    "FILEGRID_HEAD_PORT_9669_TCP_PORT",
                    "FILEGRID_HEAD_SERVICE_HOST"
                ]
            ),
            Ok(vec![])
        );
    }

    fn check(role: Role, names: &[&str]) -> Result<Vec<OtherRoleVariable>, String> {
        KnownVariables::from_flags()
            .check(role, names.iter().map(|n| n.to_string()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn own_settings_and_other_programs_variables_are_fine() {
        let vars = [
            "FILEGRID_CONFIG",
            "FILEGRID_ZK_HOSTS",
            "FILEGRID_LOG_FORMAT",
            "FILEGRID_SERVER_ID",
            "FILEGRID_HEAD",
            "FILEGRID_HEALTH_PORT",
            "FILEGRID_E2E_COMPOSE",
            "FILEGRID_ZK_CLASSPATH",
            "PATH",
            "RUST_LOG",
        ];
        assert_eq!(check(Role::Head, &vars), Ok(vec![]));
        assert_eq!(
            check(
                Role::Monitor,
                &["FILEGRID_FAILURE_THRESHOLD", "FILEGRID_MONITOR_ID"]
            ),
            Ok(vec![])
        );
        assert_eq!(
            check(Role::Cluster, &["FILEGRID_ZONE", "FILEGRID_DATA_DIR"]),
            Ok(vec![])
        );
    }

    #[test]
    fn a_misspelled_variable_is_an_error_naming_the_closest() {
        let err = check(Role::Head, &["FILEGRID_ZK_HOST"]).unwrap_err();
        assert_eq!(
            err,
            "environment variable FILEGRID_ZK_HOST is not a setting of the head; \
             did you mean FILEGRID_ZK_HOSTS?"
        );
        let err = check(Role::Cluster, &["FILEGRID_SCRUBRATE"]).unwrap_err();
        assert!(err.ends_with("did you mean FILEGRID_SCRUB_RATE?"), "{err}");
        let err = check(Role::Monitor, &["FILEGRID_INTERVALL"]).unwrap_err();
        assert!(err.ends_with("did you mean FILEGRID_INTERVAL?"), "{err}");
    }

    #[test]
    fn nothing_close_means_no_suggestion() {
        let err = check(Role::Head, &["FILEGRID_WHATEVER_ELSE_ENTIRELY"]).unwrap_err();
        assert_eq!(
            err,
            "environment variable FILEGRID_WHATEVER_ELSE_ENTIRELY is not a setting of the head"
        );
    }

    #[test]
    fn another_roles_setting_is_a_warning() {
        let warnings = check(Role::Head, &["FILEGRID_DATA_DIR", "FILEGRID_INTERVAL"]).unwrap();
        assert_eq!(
            warnings,
            vec![
                OtherRoleVariable {
                    name: "FILEGRID_DATA_DIR".into(),
                    roles: vec!["cluster"],
                },
                OtherRoleVariable {
                    name: "FILEGRID_INTERVAL".into(),
                    roles: vec!["monitor"],
                },
            ]
        );
        // A head's id in a monitor's environment (a shared env file) keeps working.
        let w = check(Role::Monitor, &["FILEGRID_SERVER_ID"]).unwrap();
        assert_eq!(w[0].roles, vec!["head", "cluster"]);
        assert!(w[0].to_string().contains("setting of the head and cluster"));
    }

    #[test]
    fn every_setting_has_its_variable() {
        use filegrid_proto::config::{ClusterFile, HeadFile, MonitorFile};
        for (role, keys) in [
            (Role::Head, HeadFile::KEYS),
            (Role::Cluster, ClusterFile::KEYS),
            (Role::Monitor, MonitorFile::KEYS),
        ] {
            let mut expected: BTreeSet<String> = keys
                .iter()
                .map(|k| format!("FILEGRID_{}", k.to_ascii_uppercase()))
                .collect();
            expected.insert("FILEGRID_CONFIG".into());
            assert_eq!(env_names(role), expected, "{role:?}");
        }
    }
}
