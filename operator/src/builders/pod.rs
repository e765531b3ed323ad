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

use super::{CONFIG_HASH_ANNOTATION, names, role_labels};
use crate::config::{CONFIG_DIR, Role, ZK_AUTH_DIR, ZK_AUTH_KEY, config_hash};
use crate::crd::Scheduling;
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

fn http_probe(path: &str, port: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(port.to_string()),
            scheme: Some("HTTP".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// `/health` for liveness, `/ready` for readiness, and a startup probe so a slow
/// start (ZooKeeper not yet reachable) is not killed by liveness.
pub fn with_probes(mut c: Container, port: &str) -> Container {
    c.startup_probe = Some(http_probe("/health", port, 2, 60));
    c.liveness_probe = Some(http_probe("/health", port, 10, 3));
    c.readiness_probe = Some(http_probe("/ready", port, 5, 2));
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
        volume_mounts: Some(node_mounts(grid)),
        ..Container::default()
    }
}

/// The config map, scratch space and, with `zookeeper.authSecret`, the ZooKeeper credential.
fn node_mounts(grid: &ValidGrid) -> Vec<VolumeMount> {
    let mut mounts = vec![
        VolumeMount {
            name: "config".to_string(),
            mount_path: CONFIG_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".to_string(),
            mount_path: "/tmp".to_string(),
            ..VolumeMount::default()
        },
    ];
    if grid.spec.zookeeper.auth_secret.is_some() {
        mounts.push(VolumeMount {
            name: ZK_AUTH_VOLUME.to_string(),
            mount_path: ZK_AUTH_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    mounts
}

const ZK_AUTH_VOLUME: &str = "zk-auth";

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
    if let Some(secret) = &grid.spec.zookeeper.auth_secret {
        volumes.push(Volume {
            name: ZK_AUTH_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                items: Some(vec![KeyToPath {
                    key: ZK_AUTH_KEY.to_string(),
                    path: ZK_AUTH_KEY.to_string(),
                    ..KeyToPath::default()
                }]),
                // Read by the node's group (fsGroup) only.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    volumes.extend(extra_volumes);
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(role_labels(grid, role)),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                config_hash(grid, role),
            )])),
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
