use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EnvVar, ExecAction, Lifecycle,
    LifecycleHandler, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

use super::pod::{
    NODE_BINARY, container_port, container_security_context, field_env, node_container,
    pod_template, with_probes,
};
use super::{ZONE_ANNOTATION, metadata, names, role_labels, selector_labels};
use crate::config::{CLUSTER_PORT, DATA_DIR, HEAD_API_PORT, HEAD_S3_PORT, METRICS_PORT, Role};
use crate::validate::ValidGrid;

/// Seconds a head pod being deleted keeps serving before its SIGTERM (well below the
/// termination grace period).
pub const HEAD_PRE_STOP_SECONDS: u32 = 5;

/// Where cluster pods see their own annotations (the zone) through the downward API.
pub const PODINFO_DIR: &str = "/etc/podinfo";

/// Server id (the pod name) and the address peers reach it at: the pod's DNS name when TLS
/// is on (its certificate covers it), its IP otherwise.
fn server_env(grid: &ValidGrid, role: Role) -> Vec<EnvVar> {
    let advertise = if grid.secured {
        EnvVar {
            name: "FILEGRID_ADVERTISE_HOST".to_string(),
            value: Some(crate::security::advertise_host(grid, role)),
            ..EnvVar::default()
        }
    } else {
        field_env("FILEGRID_ADVERTISE_HOST", "status.podIP")
    };
    vec![field_env("FILEGRID_SERVER_ID", "metadata.name"), advertise]
}

fn selector(grid: &ValidGrid, role: Role) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(grid, role)),
        ..LabelSelector::default()
    }
}

/// Head servers: stable names (`<grid>-head-0`, ...) become their server ids, so the lowest
/// ordinal leads after a full restart.
pub fn head_stateful_set(grid: &ValidGrid) -> StatefulSet {
    let mut c = node_container(grid, Role::Head, grid.spec.heads.resources.as_ref());
    c.ports = Some(vec![
        container_port("api", HEAD_API_PORT),
        container_port("s3", HEAD_S3_PORT),
        container_port("metrics", METRICS_PORT),
    ]);
    c.env = Some(server_env(grid, Role::Head));
    // A deleted head pod leaves the client Service's endpoints while it still serves, so
    // clients that picked it are not refused before every proxy has caught up; then SIGTERM
    // (a leader gives up its leadership first, and a standby takes over).
    c.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sleep".to_string(), HEAD_PRE_STOP_SECONDS.to_string()]),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    });
    let c = with_probes(grid, c, "api");
    StatefulSet {
        metadata: metadata(grid, names::head(grid), role_labels(grid, Role::Head)),
        spec: StatefulSetSpec {
            replicas: Some(grid.spec.heads.replicas),
            selector: selector(grid, Role::Head),
            service_name: Some(names::head_headless(grid)),
            pod_management_policy: Some("Parallel".to_string()),
            // The operator replaces head pods itself, standbys first and the leader last
            // (`rollout::next_head_step`); the controller never restarts one on its own.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some(crate::rollout::ON_DELETE.to_string()),
                rolling_update: None,
            }),
            template: pod_template(
                grid,
                Role::Head,
                vec![c],
                vec![],
                vec![],
                &grid.spec.heads.scheduling,
            ),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

/// Cluster servers with one persistent volume each. `replicas` is passed in because a
/// scale-down keeps the old count until the leaving servers are drained.
pub fn cluster_stateful_set(grid: &ValidGrid, replicas: i32) -> StatefulSet {
    let spec = &grid.spec;
    let mut c = node_container(grid, Role::Cluster, spec.cluster.resources.as_ref());
    c.ports = Some(vec![
        container_port("chunks", CLUSTER_PORT),
        container_port("metrics", METRICS_PORT),
    ]);
    c.env = Some(server_env(grid, Role::Cluster));
    let mut mounts = c.volume_mounts.take().unwrap_or_default();
    mounts.push(VolumeMount {
        name: "data".to_string(),
        mount_path: DATA_DIR.to_string(),
        ..VolumeMount::default()
    });
    let mut init = vec![];
    let mut volumes = vec![];
    if spec.zone_topology_key.is_some() {
        // The downward API cannot read node labels: the operator copies the node's zone
        // label onto the pod as an annotation, which the pod reads from a downward API file.
        mounts.push(VolumeMount {
            name: "podinfo".to_string(),
            mount_path: PODINFO_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "podinfo".to_string(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: "zone".to_string(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{ZONE_ANNOTATION}']"),
                        ..ObjectFieldSelector::default()
                    }),
                    ..DownwardAPIVolumeFile::default()
                }]),
                ..DownwardAPIVolumeSource::default()
            }),
            ..Volume::default()
        });
        init.push(Container {
            name: "wait-for-zone".to_string(),
            image: Some(spec.image.clone()),
            image_pull_policy: Some(spec.image_pull_policy.as_str().to_string()),
            command: Some(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                WAIT_FOR_ZONE.to_string(),
            ]),
            security_context: Some(container_security_context()),
            volume_mounts: Some(vec![VolumeMount {
                name: "podinfo".to_string(),
                mount_path: PODINFO_DIR.to_string(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        });
        c.command = Some(vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(
                "export FILEGRID_ZONE=\"$(cat {PODINFO_DIR}/zone)\"; exec {NODE_BINARY} cluster --config {}",
                crate::config::config_path(Role::Cluster)
            ),
        ]);
    }
    c.volume_mounts = Some(mounts);
    let c = with_probes(grid, c, "chunks");
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_string()),
            labels: Some(selector_labels(grid, Role::Cluster)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: spec.cluster.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    spec.cluster.storage.size.clone(),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let mut sts = StatefulSet {
        metadata: metadata(grid, names::cluster(grid), role_labels(grid, Role::Cluster)),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            selector: selector(grid, Role::Cluster),
            service_name: Some(names::cluster_headless(grid)),
            pod_management_policy: Some("Parallel".to_string()),
            // The operator lowers the partition one pod at a time, when the grid can spare
            // the next one (`rollout::next_partition`); 0 for a StatefulSet being created.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    ..RollingUpdateStatefulSetStrategy::default()
                }),
            }),
            template: pod_template(
                grid,
                Role::Cluster,
                vec![c],
                init,
                volumes,
                &spec.cluster.scheduling,
            ),
            volume_claim_templates: Some(vec![claim]),
            // A scale-down never deletes a volume: the operator deletes it once its server is
            // drained (`scaling`), so a `kubectl scale` by hand loses nothing. A deleted grid
            // keeps its volumes.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some("Retain".to_string()),
                    when_deleted: Some("Retain".to_string()),
                },
            ),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    };
    crate::rollout::stamp_template(&mut sts);
    sts
}

/// Waits (bounded) for the operator to publish the node's zone; on timeout the kubelet retries.
const WAIT_FOR_ZONE: &str = "i=0; until [ -s /etc/podinfo/zone ]; do \
i=$((i+1)); if [ \"$i\" -ge 150 ]; then echo 'zone annotation filegrid.io/zone not set after 300s' >&2; exit 1; fi; \
sleep 2; done; echo \"zone: $(cat /etc/podinfo/zone)\"";
