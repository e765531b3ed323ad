//! Pieces shared by every FileGrid pod template.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CA_ANNOTATION, CONFIG_HASH_ANNOTATION, names, role_labels};
use crate::config::{
    CLUSTER_SECRET_DIR, CLUSTER_SECRET_KEY, CONFIG_DIR, CREDENTIALS_DIR, CREDENTIALS_KEY, Role,
    TLS_DIR, ZK_AUTH_DIR, ZK_AUTH_KEY, config_hash,
};
use crate::crd::Scheduling;
use crate::security::plan::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use crate::validate::ValidGrid;

/// The image's non-root user.
pub const NODE_UID: i64 = 10001;
pub const NODE_BINARY: &str = "/usr/local/bin/filegrid-node";

pub fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

pub fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

fn http_probe(path: &str, port: &str, scheme: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(port.to_string()),
            scheme: Some(scheme.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// `/health` for liveness, `/ready` for readiness, and a startup probe so a slow
/// start (ZooKeeper not yet reachable) is not killed by liveness. Over HTTPS when the grid
/// is secured (the kubelet does not verify the certificate; neither path needs a credential).
pub fn with_probes(grid: &ValidGrid, mut c: Container, port: &str) -> Container {
    let scheme = if grid.secured { "HTTPS" } else { "HTTP" };
    c.startup_probe = Some(http_probe("/health", port, scheme, 2, 60));
    c.liveness_probe = Some(http_probe("/health", port, scheme, 10, 3));
    c.readiness_probe = Some(http_probe("/ready", port, scheme, 5, 2));
    c
}

/// A node container running `filegrid-node <role> --config <role file>`.
pub fn node_container(
    grid: &ValidGrid,
    role: Role,
    resources: Option<&ResourceRequirements>,
) -> Container {
    Container {
        name: role.as_str().to_string(),
        image: Some(grid.spec.image.clone()),
        image_pull_policy: Some(grid.spec.image_pull_policy.as_str().to_string()),
        command: Some(vec![
            NODE_BINARY.to_string(),
            role.as_str().to_string(),
            "--config".to_string(),
            crate::config::config_path(role),
        ]),
        resources: resources.cloned(),
        security_context: Some(container_security_context()),
        volume_mounts: Some(node_mounts(grid, role)),
        ..Container::default()
    }
}

/// The config map, scratch space and the role's secrets, each Secret in its own directory
/// (never `subPath`, so updated Secrets reach the files: certificates rotate in place).
fn node_mounts(grid: &ValidGrid, role: Role) -> Vec<VolumeMount> {
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(read_only).filter(|r| *r),
        ..VolumeMount::default()
    };
    let mut mounts = vec![
        mount("config", CONFIG_DIR, true),
        mount("tmp", "/tmp", false),
    ];
    mounts.extend(
        secret_volumes(grid, role)
            .into_iter()
            .map(|v| mount(v.name, v.dir, true)),
    );
    mounts
}

const ZK_AUTH_VOLUME: &str = "zk-auth";

/// One Secret mounted into a role's containers.
struct SecretMount {
    name: &'static str,
    dir: &'static str,
    secret: String,
    keys: &'static [&'static str],
}

/// The Secrets `role` mounts: the ZooKeeper credential when there is one; when secured, the
/// role's certificate (with the CA), the cluster secret (heads and cluster servers) and the
/// credentials file (heads).
fn secret_volumes(grid: &ValidGrid, role: Role) -> Vec<SecretMount> {
    let mut out = vec![];
    if let Some(secret) = &grid.zk_auth_secret {
        out.push(SecretMount {
            name: ZK_AUTH_VOLUME,
            dir: ZK_AUTH_DIR,
            secret: secret.clone(),
            keys: &[ZK_AUTH_KEY],
        });
    }
    if grid.secured {
        out.push(SecretMount {
            name: "tls",
            dir: TLS_DIR,
            secret: names::tls(grid, role),
            keys: &[TLS_CERT_KEY, TLS_KEY_KEY, CA_CERT_KEY],
        });
        if role != Role::Monitor {
            out.push(SecretMount {
                name: "cluster-secret",
                dir: CLUSTER_SECRET_DIR,
                secret: names::cluster_secret(grid),
                keys: &[CLUSTER_SECRET_KEY],
            });
        }
        if role == Role::Head {
            out.push(SecretMount {
                name: "credentials",
                dir: CREDENTIALS_DIR,
                secret: names::admin(grid),
                keys: &[CREDENTIALS_KEY],
            });
        }
    }
    out
}

pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(NODE_UID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// Pod template of one role: labels, config hash, config and scratch volumes, scheduling.
pub fn pod_template(
    grid: &ValidGrid,
    role: Role,
    containers: Vec<Container>,
    init_containers: Vec<Container>,
    extra_volumes: Vec<Volume>,
    scheduling: &Scheduling,
) -> PodTemplateSpec {
    let mut volumes = vec![
        Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(grid),
                items: None,
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    volumes.extend(secret_volumes(grid, role).into_iter().map(|m| {
        Volume {
            name: m.name.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(m.secret),
                items: Some(
                    m.keys
                        .iter()
                        .map(|k| KeyToPath {
                            key: k.to_string(),
                            path: k.to_string(),
                            ..KeyToPath::default()
                        })
                        .collect(),
                ),
                // Read by the node's group (fsGroup) only.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }
    }));
    volumes.extend(extra_volumes);
    let mut annotations =
        BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), config_hash(grid, role))]);
    if let Some(ca) = &grid.ca_sha256 {
        annotations.insert(CA_ANNOTATION.to_string(), ca.clone());
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(role_labels(grid, role)),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers,
            init_containers: (!init_containers.is_empty()).then_some(init_containers),
            volumes: Some(volumes),
            affinity: scheduling.affinity.clone(),
            tolerations: (!scheduling.tolerations.is_empty())
                .then(|| scheduling.tolerations.clone()),
            node_selector: (!scheduling.node_selector.is_empty())
                .then(|| scheduling.node_selector.clone()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NODE_UID),
                run_as_group: Some(NODE_UID),
                fs_group: Some(NODE_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            termination_grace_period_seconds: Some(30),
            ..PodSpec::default()
        }),
    }
}
