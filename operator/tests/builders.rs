//! Builders from YAML fixtures: selectors, ports, probes, owner references, PDBs, config hash.

use std::collections::BTreeMap;

use filegrid_operator::builders::{self, CONFIG_HASH_ANNOTATION, names};
use filegrid_operator::config::{self, Role};
use filegrid_operator::crd::FileGrid;
use filegrid_operator::validate::{ValidGrid, validate};
use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, Probe, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn fixture(name: &str) -> ValidGrid {
    fixture_with(name, |_| {})
}

/// A fixture changed before validation, as a user would change the resource.
fn fixture_with(name: &str, change: impl FnOnce(&mut FileGrid)) -> ValidGrid {
    let path = format!("{}/tests/fixtures/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let mut fg: FileGrid = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut fg);
    validate(&fg).unwrap()
}

fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_labels(t: &PodTemplateSpec) -> BTreeMap<String, String> {
    t.metadata.as_ref().unwrap().labels.clone().unwrap()
}

fn container_port(c: &Container, name: &str) -> i32 {
    c.ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap()
        .container_port
}

fn probe_port(p: &Option<Probe>) -> (String, String) {
    let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
    let IntOrString::String(port) = &get.port else {
        panic!("probe port should be named")
    };
    (get.path.clone().unwrap(), port.clone())
}

fn service_selects(svc: &Service, t: &PodTemplateSpec) -> bool {
    matches(
        svc.spec.as_ref().unwrap().selector.as_ref().unwrap(),
        &pod_labels(t),
    )
}

#[test]
fn selectors_and_services_match_pod_labels() {
    for name in ["minimal", "zones", "no-monitor-rf2"] {
        let g = fixture(name);
        let head = builders::head_stateful_set(&g);
        let cluster = builders::cluster_stateful_set(&g, g.spec.cluster.replicas);
        for sts in [&head, &cluster] {
            let sel = sts.spec.selector.match_labels.as_ref().unwrap();
            assert!(
                matches(sel, &pod_labels(&sts.spec.template)),
                "{name}: selector of {:?}",
                sts.metadata.name
            );
        }
        assert!(service_selects(
            &builders::head_headless_service(&g),
            &head.spec.template
        ));
        assert!(service_selects(
            &builders::head_client_service(&g),
            &head.spec.template
        ));
        assert!(service_selects(
            &builders::cluster_headless_service(&g),
            &cluster.spec.template
        ));
        // A head selector must not pick cluster pods and vice versa.
        assert!(!service_selects(
            &builders::head_client_service(&g),
            &cluster.spec.template
        ));
        assert!(!service_selects(
            &builders::cluster_headless_service(&g),
            &head.spec.template
        ));
        assert_eq!(
            head.spec.service_name.as_deref(),
            Some(names::head_headless(&g).as_str())
        );
        assert_eq!(
            cluster.spec.service_name.as_deref(),
            Some(names::cluster_headless(&g).as_str())
        );
        let pdb = builders::cluster_pdb(&g);
        let pdb_sel = pdb
            .spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .clone()
            .unwrap();
        assert!(matches(&pdb_sel, &pod_labels(&cluster.spec.template)));
        assert!(!matches(&pdb_sel, &pod_labels(&head.spec.template)));
        if g.spec.monitor.enabled {
            let m = builders::monitor_deployment(&g);
            assert!(matches(
                m.spec.selector.match_labels.as_ref().unwrap(),
                &pod_labels(&m.spec.template)
            ));
            assert!(service_selects(
                &builders::monitor_service(&g),
                &m.spec.template
            ));
        }
    }
}

#[test]
fn ports_probes_and_commands_follow_the_node_contract() {
    let g = fixture("minimal");
    let head = builders::head_stateful_set(&g);
    let c = &head.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        c.command.as_ref().unwrap(),
        &[
            "/usr/local/bin/filegrid-node",
            "head",
            "--config",
            "/etc/filegrid/head.toml"
        ]
    );
    assert_eq!(container_port(c, "api"), 9669);
    assert_eq!(container_port(c, "metrics"), 9091);
    assert_eq!(
        probe_port(&c.liveness_probe),
        ("/health".to_string(), "api".to_string())
    );
    assert_eq!(
        probe_port(&c.readiness_probe),
        ("/ready".to_string(), "api".to_string())
    );
    let env = |c: &Container| -> Vec<(String, String)> {
        c.env
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| {
                let value = match &e.value_from {
                    Some(from) => format!("field {}", from.field_ref.as_ref().unwrap().field_path),
                    None => e.value.clone().unwrap(),
                };
                (e.name.clone(), value)
            })
            .collect()
    };
    // Secured: peers reach each other by the pod DNS name their certificate covers, which
    // the kubelet expands from the server id defined before it.
    assert_eq!(
        env(c),
        [
            ("FILEGRID_SERVER_ID".into(), "field metadata.name".into()),
            (
                "FILEGRID_ADVERTISE_HOST".into(),
                "$(FILEGRID_SERVER_ID).demo-head-headless.team-a.svc".into()
            )
        ]
    );
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .scheme
            .as_deref(),
        Some("HTTPS")
    );
    // Insecure: the pod IP, probed over plain HTTP.
    let insecure = fixture_with("minimal", |fg| fg.spec.security.insecure = true);
    let insecure_head = builders::head_stateful_set(&insecure);
    let ic = &insecure_head
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(env(ic)[1].1, "field status.podIP");
    assert_eq!(
        ic.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .scheme
            .as_deref(),
        Some("HTTP")
    );
    let toml = config::render(&g, Role::Head);
    assert!(toml.contains("listen = \"0.0.0.0:9669\""), "{toml}");
    assert!(toml.contains("s3_listen = \"0.0.0.0:9000\""), "{toml}");
    assert!(toml.contains("metrics_listen = \"0.0.0.0:9091\""), "{toml}");

    let cluster = builders::cluster_stateful_set(&g, 3);
    let pod = cluster.spec.template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.command.as_ref().unwrap()[1], "cluster");
    assert_eq!(container_port(c, "chunks"), 9700);
    assert_eq!(
        probe_port(&c.readiness_probe),
        ("/ready".to_string(), "chunks".to_string())
    );
    let data = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "data")
        .unwrap();
    assert_eq!(data.mount_path, "/var/lib/filegrid");
    assert!(config::render(&g, Role::Cluster).contains("data_dir = \"/var/lib/filegrid\""));
    let claim = &cluster.spec.volume_claim_templates.as_ref().unwrap()[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("data"));
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_user,
        Some(10001)
    );

    let monitor = builders::monitor_deployment(&g);
    let c = &monitor.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        c.command.as_ref().unwrap()[1..],
        ["monitor", "--config", "/etc/filegrid/monitor.toml"]
    );
    assert_eq!(container_port(c, "metrics"), 9092);
    assert_eq!(
        probe_port(&c.liveness_probe),
        ("/health".to_string(), "metrics".to_string())
    );
    assert!(config::render(&g, Role::Monitor).contains("metrics_listen = \"0.0.0.0:9092\""));
    // Service target ports are names that exist on the containers.
    for svc in [
        builders::head_client_service(&g),
        builders::head_headless_service(&g),
    ] {
        for p in svc.spec.unwrap().ports.unwrap() {
            let IntOrString::String(target) = p.target_port.unwrap() else {
                panic!()
            };
            let c = &head.spec.template.spec.as_ref().unwrap().containers[0];
            assert_eq!(container_port(c, &target), p.port);
        }
    }
}

#[test]
fn each_role_file_holds_only_that_roles_keys() {
    let g = fixture("zones");
    let shared = [
        "zk_hosts",
        "zk_root",
        "session_timeout",
        "log_format",
        "zk_auth_file",
        "tls_cert",
        "tls_key",
        "tls_ca",
    ];
    let allowed: [(Role, &[&str]); 3] = [
        (
            Role::Head,
            &[
                "cluster_secret_file",
                "credentials_file",
                "listen",
                "s3_listen",
                "metrics_listen",
                "preempt",
                "standby_proxy",
                "replication_factor",
                "min_write_replicas",
                "chunk_size",
                "dead_after",
            ],
        ),
        (
            Role::Cluster,
            &[
                "cluster_secret_file",
                "listen",
                "metrics_listen",
                "data_dir",
                "capacity",
            ],
        ),
        (
            Role::Monitor,
            &["metrics_listen", "interval", "timeout", "failure_threshold"],
        ),
    ];
    for (role, keys) in allowed {
        let text = config::render(&g, role);
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        for k in parsed.keys() {
            assert!(
                shared.contains(&k.as_str()) || keys.contains(&k.as_str()),
                "{k} in {role:?}: {text}"
            );
        }
        assert_eq!(parsed["zk_root"].as_str(), Some("/filegrid/storage/files"));
    }
    let head: toml::Table = toml::from_str(&config::render(&g, Role::Head)).unwrap();
    assert_eq!(head["replication_factor"].as_integer(), Some(3));
    assert_eq!(head["min_write_replicas"].as_integer(), Some(2));
    assert_eq!(head["chunk_size"].as_str(), Some("16MiB"));
    assert_eq!(head["dead_after"].as_str(), Some("60s"));
    let cluster: toml::Table = toml::from_str(&config::render(&g, Role::Cluster)).unwrap();
    assert_eq!(cluster["capacity"].as_str(), Some("90GiB"));
}

#[test]
fn default_zk_root_and_extra_config_types() {
    let g = fixture("minimal");
    assert_eq!(g.zk_root, "/filegrid/team-a/demo");
    let g = fixture("no-monitor-rf2");
    let cluster: toml::Table = toml::from_str(&config::render(&g, Role::Cluster)).unwrap();
    assert_eq!(cluster["heartbeat_interval"].as_str(), Some("1s"));
    assert_eq!(cluster["scrub_rate"].as_integer(), Some(33554432));
    assert!(!config::render(&g, Role::Head).contains("scrub_rate"));
    let head: toml::Table = toml::from_str(&config::render(&g, Role::Head)).unwrap();
    assert_eq!(head["startup_grace"].as_str(), Some("5s"));
    assert_eq!(head["preempt"].as_bool(), Some(true));
}

#[test]
fn heads_forward_to_the_leader_unless_extra_config_says_otherwise() {
    let head =
        |g: &ValidGrid| -> toml::Table { toml::from_str(&config::render(g, Role::Head)).unwrap() };
    let g = fixture("minimal");
    assert_eq!(head(&g)["standby_proxy"].as_bool(), Some(true));
    assert_eq!(head(&g)["min_write_replicas"].as_integer(), Some(2));
    assert!(!config::render(&g, Role::Cluster).contains("standby_proxy"));
    let g = fixture_with("minimal", |fg| {
        fg.spec
            .extra_config
            .head
            .insert("standby_proxy".into(), false.into());
    });
    assert_eq!(head(&g)["standby_proxy"].as_bool(), Some(false));
    // The documented form `extraConfig: {head: {standby_proxy: true}}` decodes and renders.
    let fg: FileGrid = serde_yaml::from_str(
        "apiVersion: filegrid.io/v1alpha1\nkind: FileGrid\nmetadata: {name: d, namespace: n, uid: u}\n\
         spec: {zookeeper: {connect: 'zk:2181'}, extraConfig: {head: {standby_proxy: true, startup_grace: 5s}, cluster: {scrub_rate: 1048576}}}",
    )
    .unwrap();
    let g = validate(&fg).unwrap();
    assert_eq!(head(&g)["standby_proxy"].as_bool(), Some(true));
    let cluster: toml::Table = toml::from_str(&config::render(&g, Role::Cluster)).unwrap();
    assert_eq!(cluster["scrub_rate"].as_integer(), Some(1048576));
}

#[test]
fn every_child_has_an_owner_reference_and_instance_labels() {
    let g = fixture("zones");
    let children = filegrid_operator::render::children(&g).unwrap();
    assert_eq!(
        children.len(),
        12,
        "config map, 4 services, 2 stateful sets, 2 PDBs, monitor, service monitor, network policy"
    );
    for obj in children {
        let owners = obj
            .pointer("/metadata/ownerReferences")
            .and_then(|o| o.as_array())
            .unwrap();
        assert_eq!(owners.len(), 1, "{obj}");
        assert_eq!(owners[0]["uid"], "6f1c2b7e-0000-4000-8000-000000000002");
        assert_eq!(owners[0]["kind"], "FileGrid");
        assert_eq!(owners[0]["controller"], true);
        assert_eq!(obj.pointer("/metadata/namespace").unwrap(), "storage");
        assert_eq!(
            obj.pointer("/metadata/labels/app.kubernetes.io~1instance")
                .unwrap(),
            "files"
        );
        assert_eq!(
            obj.pointer("/metadata/labels/app.kubernetes.io~1managed-by")
                .unwrap(),
            "filegrid-operator"
        );
    }
}

#[test]
fn pdb_numbers() {
    use builders::cluster_max_unavailable as n;
    assert_eq!(n(3, 3), 1);
    assert_eq!(n(3, 6), 1);
    assert_eq!(n(5, 5), 3);
    assert_eq!(n(5, 4), 2);
    assert_eq!(n(4, 10), 2);
    assert_eq!(n(1, 1), 1);
    assert_eq!(n(2, 2), 1);
    let g = fixture("minimal");
    let head = builders::head_pdb(&g).spec.unwrap();
    assert_eq!(head.max_unavailable, Some(IntOrString::Int(1)));
    let cluster = builders::cluster_pdb(&g).spec.unwrap();
    assert_eq!(cluster.max_unavailable, Some(IntOrString::Int(1)));
}

fn hash_of(t: &PodTemplateSpec) -> String {
    t.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[CONFIG_HASH_ANNOTATION].clone()
}

#[test]
fn config_hash_changes_exactly_when_the_roles_config_does() {
    let base = fixture("minimal");
    let head_hash = |g: &ValidGrid| hash_of(&builders::head_stateful_set(g).spec.template);
    let cluster_hash = |g: &ValidGrid| hash_of(&builders::cluster_stateful_set(g, 3).spec.template);
    let monitor_hash = |g: &ValidGrid| hash_of(&builders::monitor_deployment(g).spec.template);
    assert_eq!(head_hash(&base), config::config_hash(&base, Role::Head));

    // Not config: replicas, resources, image. No hash changes.
    let mut g = base.clone();
    g.spec.heads.replicas = 5;
    g.spec.cluster.replicas = 7;
    g.spec.image = "filegrid/node:0.2.0".to_string();
    assert_eq!(
        (head_hash(&g), cluster_hash(&g), monitor_hash(&g)),
        (head_hash(&base), cluster_hash(&base), monitor_hash(&base))
    );

    // A head-only setting: only the head hash changes.
    let mut g = base.clone();
    g.spec.chunk_size = "4MiB".to_string();
    assert_ne!(head_hash(&g), head_hash(&base));
    assert_eq!(cluster_hash(&g), cluster_hash(&base));
    assert_eq!(monitor_hash(&g), monitor_hash(&base));

    // A monitor-only setting.
    let mut g = base.clone();
    g.spec.monitor.interval = "20s".to_string();
    assert_eq!(head_hash(&g), head_hash(&base));
    assert_ne!(monitor_hash(&g), monitor_hash(&base));

    // A shared setting changes every role.
    let mut g = base.clone();
    g.spec.zookeeper.session_timeout = "9s".to_string();
    assert_ne!(head_hash(&g), head_hash(&base));
    assert_ne!(cluster_hash(&g), cluster_hash(&base));
    assert_ne!(monitor_hash(&g), monitor_hash(&base));
}

#[test]
fn zones_come_from_a_downward_api_file_the_operator_fills() {
    let g = fixture("zones");
    let sts = builders::cluster_stateful_set(&g, 6);
    let pod = sts.spec.template.spec.as_ref().unwrap();
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, "wait-for-zone");
    let podinfo = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "podinfo")
        .unwrap();
    let item = &podinfo
        .downward_api
        .as_ref()
        .unwrap()
        .items
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        item.field_ref.as_ref().unwrap().field_path,
        "metadata.annotations['filegrid.io/zone']"
    );
    let cmd = pod.containers[0].command.as_ref().unwrap().join(" ");
    assert!(
        cmd.contains("export FILEGRID_ZONE=\"$(cat /etc/podinfo/zone)\""),
        "{cmd}"
    );
    assert!(
        cmd.contains(
            "exec /usr/local/bin/filegrid-node cluster --config /etc/filegrid/cluster.toml"
        ),
        "{cmd}"
    );
    // Without a topology key there is no wait and the node binary runs directly.
    let plain = builders::cluster_stateful_set(&fixture("minimal"), 3);
    let pod = plain.spec.template.spec.unwrap();
    assert!(pod.init_containers.is_none());
    assert_eq!(
        pod.containers[0].command.as_ref().unwrap()[0],
        "/usr/local/bin/filegrid-node"
    );
    // Scheduling from the spec reaches the pods.
    assert_eq!(
        sts.spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .tolerations
            .as_ref()
            .unwrap()[0]
            .key
            .as_deref(),
        Some("dedicated")
    );
}

#[test]
fn service_monitor_scrapes_the_metrics_port_of_this_grid() {
    let g = fixture("zones");
    let sm = builders::service_monitor(&g);
    assert_eq!(
        sm.types.as_ref().unwrap().api_version,
        "monitoring.coreos.com/v1"
    );
    assert_eq!(
        sm.metadata.labels.as_ref().unwrap()["release"],
        "prometheus"
    );
    assert_eq!(sm.data["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm.data["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(
        sm.data["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        "files"
    );
    // Every service of the grid exposes a port named "metrics" carrying the instance labels.
    for svc in [
        builders::head_headless_service(&g),
        builders::cluster_headless_service(&g),
        builders::monitor_service(&g),
    ] {
        assert!(
            svc.spec
                .unwrap()
                .ports
                .unwrap()
                .iter()
                .any(|p| p.name.as_deref() == Some("metrics"))
        );
        assert_eq!(
            svc.metadata.labels.unwrap()["app.kubernetes.io/instance"],
            "files"
        );
    }
}

/// What the operator writes for each role reads into that role's file struct, the one the node
/// reads it with: unknown keys (including another role's) and values the node would refuse
/// fail here instead of crash-looping the pods.
#[test]
fn every_rendered_file_reads_as_the_nodes_file_for_that_role() {
    use filegrid_proto::config::{ClusterFile, HeadFile, MonitorFile};
    for name in ["minimal", "zones", "no-monitor-rf2"] {
        let g = fixture(name);
        let head: HeadFile = toml::from_str(&config::render(&g, Role::Head))
            .unwrap_or_else(|e| panic!("{name}: head.toml: {e}"));
        let cluster: ClusterFile = toml::from_str(&config::render(&g, Role::Cluster))
            .unwrap_or_else(|e| panic!("{name}: cluster.toml: {e}"));
        let monitor: MonitorFile = toml::from_str(&config::render(&g, Role::Monitor))
            .unwrap_or_else(|e| panic!("{name}: monitor.toml: {e}"));
        assert_eq!(head.common(), cluster.common(), "{name}");
        // The monitor signs nothing: the same settings without the cluster secret.
        let mut without_secret = cluster.common();
        without_secret.cluster_secret_file = None;
        assert_eq!(without_secret, monitor.common(), "{name}");
        assert!(
            head.credentials_file.is_some(),
            "{name}: secured by default"
        );
        assert_eq!(
            head.replication_factor,
            Some(g.spec.replication_factor as u32)
        );
        assert!(cluster.data_dir.is_some(), "{name}");
        assert!(
            head.server_id.is_none() && cluster.server_id.is_none() && monitor.monitor_id.is_none(),
            "{name}: ids come from the environment"
        );
    }
}

#[test]
fn extra_config_of_another_role_is_refused() {
    let mut fg: FileGrid = serde_yaml::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/minimal.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    fg.spec
        .extra_config
        .head
        .insert("scrub_rate".into(), "1MiB".into());
    let err = validate(&fg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.extraConfig.head.scrub_rate: is a cluster setting, not a head one"
    );
}

#[test]
fn a_zookeeper_auth_secret_is_mounted_in_every_pod_and_named_in_every_role_file() {
    let g = fixture_with("minimal", |fg| fg.spec.security.insecure = true);
    for role in [Role::Head, Role::Cluster, Role::Monitor] {
        assert!(!config::render(&g, role).contains("zk_auth_file"));
    }
    // Secured without `authSecret`: the generated one.
    let g = fixture("minimal");
    assert_eq!(g.zk_auth_secret.as_deref(), Some("demo-zookeeper"));
    // `authSecret` wins, secured or not.
    let g = fixture_with("minimal", |fg| {
        fg.spec.security.insecure = true;
        fg.spec.zookeeper.auth_secret = Some("demo-zk-auth".into());
    });
    for role in [Role::Head, Role::Cluster, Role::Monitor] {
        let parsed: toml::Table = toml::from_str(&config::render(&g, role)).unwrap();
        assert_eq!(
            parsed["zk_auth_file"].as_str(),
            Some("/etc/filegrid-zk/auth"),
            "{role:?}"
        );
    }
    let templates = [
        builders::head_stateful_set(&g).spec.template,
        builders::cluster_stateful_set(&g, 3).spec.template,
        builders::monitor_deployment(&g).spec.template,
    ];
    for t in templates {
        let pod = t.spec.unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "zk-auth")
            .expect("a zk-auth volume");
        let secret = volume.secret.unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("demo-zk-auth"));
        assert_eq!(secret.items.unwrap()[0].key, "auth");
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        let mount = mounts.iter().find(|m| m.name == "zk-auth").unwrap();
        assert_eq!(mount.mount_path, "/etc/filegrid-zk");
        assert_eq!(mount.read_only, Some(true));
    }
}

/// The Secrets each role mounts when secured: read-only, whole directories (no subPath, so a
/// renewed certificate reaches the files), each holding only the keys it needs.
#[test]
fn secured_pods_mount_only_their_roles_secrets() {
    let g = fixture("minimal");
    let templates = [
        (Role::Head, builders::head_stateful_set(&g).spec.template),
        (
            Role::Cluster,
            builders::cluster_stateful_set(&g, 3).spec.template,
        ),
        (
            Role::Monitor,
            builders::monitor_deployment(&g).spec.template,
        ),
    ];
    for (role, t) in templates {
        let pod = t.spec.unwrap();
        let secrets: BTreeMap<String, (String, Vec<String>)> = pod
            .volumes
            .unwrap()
            .into_iter()
            .filter_map(|v| {
                let s = v.secret?;
                let keys = s.items.unwrap().into_iter().map(|i| i.key).collect();
                Some((v.name, (s.secret_name.unwrap(), keys)))
            })
            .collect();
        let r = role.as_str();
        assert_eq!(
            secrets["tls"],
            (
                format!("demo-{r}-tls"),
                vec!["tls.crt".into(), "tls.key".into(), "ca.crt".into()]
            ),
            "{r}"
        );
        assert_eq!(secrets["zk-auth"].0, "demo-zookeeper");
        assert_eq!(
            secrets.contains_key("cluster-secret"),
            role != Role::Monitor,
            "{r}"
        );
        assert_eq!(
            secrets.contains_key("credentials"),
            role == Role::Head,
            "{r}"
        );
        if role == Role::Head {
            // Only the credentials file of the admin Secret, not its separate keys.
            assert_eq!(
                secrets["credentials"],
                ("demo-admin".into(), vec!["credentials".into()])
            );
        }
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        for name in secrets.keys() {
            let m = mounts.iter().find(|m| &m.name == name).unwrap();
            assert_eq!(m.read_only, Some(true), "{r}: {name}");
            assert_eq!(m.sub_path, None, "{r}: {name}");
        }
        // The role file names the mounted files.
        let file: toml::Table = toml::from_str(&config::render(&g, role)).unwrap();
        assert_eq!(file["tls_cert"].as_str(), Some("/etc/filegrid-tls/tls.crt"));
        assert!(!file.contains_key("insecure"));
    }
}

#[test]
fn network_policy_opens_only_the_head_api_to_clients() {
    use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    let g = fixture("minimal");
    let np = builders::network_policy(&g);
    assert_eq!(np.metadata.name.as_deref(), Some("demo"));
    assert_eq!(np.metadata.owner_references.as_ref().unwrap()[0].uid, g.uid);
    let spec = np.spec.unwrap();
    let selector = spec.pod_selector.unwrap().match_labels.unwrap();
    // Selects every pod of this grid (every role), and only this grid.
    for t in [
        builders::head_stateful_set(&g).spec.template,
        builders::cluster_stateful_set(&g, 3).spec.template,
        builders::monitor_deployment(&g).spec.template,
    ] {
        assert!(matches(&selector, &pod_labels(&t)));
    }
    let other = fixture("zones");
    assert!(!matches(
        &selector,
        &pod_labels(&builders::head_stateful_set(&other).spec.template)
    ));
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
    let rules = spec.ingress.unwrap();
    let ports = |i: usize| -> Vec<i32> {
        rules[i]
            .ports
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| match p.port.unwrap() {
                IntOrString::Int(n) => n,
                IntOrString::String(s) => panic!("named port {s}"),
            })
            .collect()
    };
    // Anyone: the heads' API and S3 ports only (not the chunk port 9700).
    assert_eq!(rules[0].from, None);
    assert_eq!(ports(0), [9669, 9000]);
    // The grid's own pods: everything.
    let own = rules[1].from.clone().unwrap();
    assert_eq!(
        own[0].pod_selector.clone().unwrap().match_labels.unwrap(),
        selector
    );
    assert!(own[0].namespace_selector.is_none(), "same namespace only");
    assert!(rules[1].ports.is_none());
    // Scrapers: the metrics ports, by default Prometheus pods in any namespace.
    assert_eq!(ports(2), [9091, 9092]);
    let scraper = &rules[2].from.clone().unwrap()[0];
    assert_eq!(
        scraper.pod_selector.clone().unwrap().match_labels.unwrap()["app.kubernetes.io/name"],
        "prometheus"
    );
    assert_eq!(scraper.namespace_selector, Some(LabelSelector::default()));
    // metricsFrom replaces the default.
    let g = fixture_with("minimal", |fg| {
        fg.spec.security.network_policy.metrics_from = Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "name".to_string(),
                    "monitoring".to_string(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }])
    });
    let rules = builders::network_policy(&g).spec.unwrap().ingress.unwrap();
    let from = rules[2].from.clone().unwrap();
    assert_eq!(from.len(), 1);
    assert!(from[0].pod_selector.is_none());
}

#[test]
fn service_monitor_scrapes_over_https_when_secured() {
    let g = fixture("zones");
    let sm = builders::service_monitor(&g);
    let e = &sm.data["spec"]["endpoints"][0];
    assert_eq!(e["scheme"], "https");
    assert_eq!(e["tlsConfig"]["ca"]["secret"]["name"], "files-head-tls");
    assert_eq!(e["tlsConfig"]["ca"]["secret"]["key"], "ca.crt");
    let server_name = e["tlsConfig"]["serverName"].as_str().unwrap();
    for role in [Role::Head, Role::Cluster, Role::Monitor] {
        assert!(
            filegrid_operator::security::dns_names(&g, role).contains(&server_name.to_string()),
            "{role:?} certificate must carry {server_name}"
        );
    }
    let insecure = fixture_with("zones", |fg| fg.spec.security.insecure = true);
    let e = &builders::service_monitor(&insecure).data["spec"]["endpoints"][0];
    assert!(e.get("scheme").is_none() && e.get("tlsConfig").is_none());
}

#[test]
fn update_strategies_leave_the_rollout_to_the_operator() {
    let g = fixture("minimal");
    // Heads: replaced only when the operator deletes them (standbys first, the leader last),
    // each serving a few seconds after it leaves the Service's endpoints.
    let heads = builders::head_stateful_set(&g);
    let strategy = heads.spec.update_strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("OnDelete"));
    assert!(
        strategy.rolling_update.is_none(),
        "OnDelete refuses rollingUpdate"
    );
    let c = &heads.spec.template.spec.as_ref().unwrap().containers[0];
    let pre_stop = c.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
    assert_eq!(
        pre_stop.exec.as_ref().unwrap().command.as_deref(),
        Some(&["sleep".to_string(), "5".to_string()][..])
    );
    // Cluster servers: a partition the operator lowers (0 for a new StatefulSet), and the hash
    // of the template, which changes exactly when the template does.
    let cluster = builders::cluster_stateful_set(&g, 3);
    let strategy = cluster.spec.update_strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(strategy.rolling_update.as_ref().unwrap().partition, Some(0));
    let sha = |s: &k8s_openapi::api::apps::v1::StatefulSet| {
        s.metadata.annotations.as_ref().unwrap()["filegrid.io/template-sha256"].clone()
    };
    assert_eq!(sha(&cluster), sha(&builders::cluster_stateful_set(&g, 5)));
    let other = fixture_with("minimal", |fg| fg.spec.image = "filegrid/node:0.2.0".into());
    assert_ne!(
        sha(&cluster),
        sha(&builders::cluster_stateful_set(&other, 3))
    );
}
