//! The operator's own install manifests, rendered from Rust: the single source of the
//! RBAC rules the Helm chart includes, and the objects `render` validates offline.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service, ServiceAccount, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::builders::pod::field_env;

pub const NAME: &str = "filegrid-operator";
pub const IMAGE: &str = "filegrid/operator:0.1.0";
/// Port of `/health` and `/metrics`.
pub const HTTP_PORT: i32 = 8080;
/// Lease the operator replicas compete for.
pub const LEASE_NAME: &str = "filegrid-operator-leader";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let v = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect());
    PolicyRule {
        api_groups: v(groups),
        resources: v(resources),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// Cluster-wide permissions, each for a reason documented in docs/operator.md.
pub fn cluster_rules() -> Vec<PolicyRule> {
    let manage = ["get", "list", "watch", "create", "patch", "delete"];
    vec![
        rule(&["filegrid.io"], &["filegrids"], &["get", "list", "watch"]),
        rule(&["filegrid.io"], &["filegrids/status"], &["get", "patch"]),
        rule(&["filegrid.io"], &["filegrids/finalizers"], &["update"]),
        rule(&[""], &["configmaps", "services"], &manage),
        rule(&["apps"], &["statefulsets", "deployments"], &manage),
        rule(&["policy"], &["poddisruptionbudgets"], &manage),
        // Generated once and kept: never deleted by the operator (garbage collection does).
        rule(
            &[""],
            &["secrets"],
            &["get", "list", "watch", "create", "patch"],
        ),
        rule(&["networking.k8s.io"], &["networkpolicies"], &manage),
        // Patch: the zone annotation. Delete: head pods on an old revision, standbys first and
        // the leader last (the head StatefulSet is `OnDelete`).
        rule(
            &[""],
            &["pods"],
            &["get", "list", "watch", "patch", "delete"],
        ),
        // Volumes of cluster servers that left, deleted once they are drained.
        rule(&[""], &["persistentvolumeclaims"], &["list", "delete"]),
        rule(&[""], &["nodes"], &["get"]),
        rule(&[""], &["namespaces"], &["get"]),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        rule(&["monitoring.coreos.com"], &["servicemonitors"], &manage),
    ]
}

/// Cluster-wide permissions to upgrade the FileGrid CRD at start (chart value `crds.apply`):
/// only that one CRD, read and server-side applied. The chart's `crds/` creates it at install.
pub fn crd_rules() -> Vec<PolicyRule> {
    vec![PolicyRule {
        resource_names: Some(vec!["filegrids.filegrid.io".to_string()]),
        ..rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["get", "patch"],
        )
    }]
}

/// Permissions in the operator's own namespace: the leader-election Lease.
pub fn lease_rules() -> Vec<PolicyRule> {
    vec![rule(
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "patch", "delete"],
    )]
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), NAME.to_string()),
        ("app.kubernetes.io/instance".to_string(), NAME.to_string()),
    ])
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

/// Every install object except the CRD, for namespace `ns`, as the chart's defaults render them.
pub fn manifests(ns: &str) -> Vec<serde_json::Value> {
    let subject = Subject {
        kind: "ServiceAccount".to_string(),
        name: NAME.to_string(),
        namespace: Some(ns.to_string()),
        ..Subject::default()
    };
    let sa = ServiceAccount {
        metadata: meta(NAME, Some(ns)),
        ..ServiceAccount::default()
    };
    let cr = ClusterRole {
        metadata: meta(NAME, None),
        rules: Some(cluster_rules().into_iter().chain(crd_rules()).collect()),
        ..ClusterRole::default()
    };
    let crb = ClusterRoleBinding {
        metadata: meta(NAME, None),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "ClusterRole".to_string(),
            name: NAME.to_string(),
        },
        subjects: Some(vec![subject.clone()]),
    };
    let role = Role {
        metadata: meta(NAME, Some(ns)),
        rules: Some(lease_rules()),
    };
    let rb = RoleBinding {
        metadata: meta(NAME, Some(ns)),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name: NAME.to_string(),
        },
        subjects: Some(vec![subject]),
    };
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("http".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let container = Container {
        name: "operator".to_string(),
        image: Some(IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec!["run".to_string()]),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            EnvVar {
                name: "RUST_LOG".to_string(),
                value: Some("info".to_string()),
                ..EnvVar::default()
            },
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_string()),
            container_port: HTTP_PORT,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/health")),
        readiness_probe: Some(probe("/health")),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let deploy = Deployment {
        metadata: meta(NAME, Some(ns)),
        spec: DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(labels()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.to_string()),
                    containers: vec![container],
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(10001),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    let svc = Service {
        metadata: meta(&format!("{NAME}-metrics"), Some(ns)),
        spec: Some(ServiceSpec {
            selector: Some(labels()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String("http".to_string())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let to = |v: Result<serde_json::Value, serde_json::Error>| v.unwrap_or_default();
    vec![
        to(serde_json::to_value(&sa)),
        to(serde_json::to_value(&cr)),
        to(serde_json::to_value(&crb)),
        to(serde_json::to_value(&role)),
        to(serde_json::to_value(&rb)),
        to(serde_json::to_value(&deploy)),
        to(serde_json::to_value(&svc)),
    ]
}

/// The chart's `files/clusterrole-rules.yaml` and `files/role-rules.yaml`.
pub fn rules_yaml(rules: &[PolicyRule]) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(rules)
}
