//! A secured grid's Secrets: the cluster secret, the admin client credential, the ZooKeeper
//! digest credential, the CA and one TLS certificate per role.
//!
//! - [`plan`]: pure decisions (create, keep, reissue);
//! - [`generate`]: randomness and certificates, the only place material is made;
//! - [`secrets`]: the Secret objects, pure builders;
//! - [`ensure`]: the reconcile step that reads, decides, generates and applies.

pub mod ensure;
pub mod generate;
pub mod plan;
pub mod secrets;

use std::time::Duration;

use crate::builders::names;
use crate::config::Role;
use crate::validate::ValidGrid;

pub use ensure::{SecurityError, ensure};

/// Validity of the grid's CA. It is not renewed by the operator (see docs/operator.md).
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Validity of each role's certificate; reissued when less than a third is left.
pub const CERT_VALIDITY: Duration = Duration::from_secs(90 * 86_400);
/// Certificates start this long before they are made, for clocks a little behind.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// Name of the admin principal in the heads' credentials file.
pub const ADMIN_PRINCIPAL: &str = "admin";
/// Keys of the admin Secret besides the credentials file.
pub const ADMIN_ACCESS_KEY: &str = "access-key";
pub const ADMIN_SECRET_KEY: &str = "secret";
pub const ADMIN_TOKEN_KEY: &str = "token";
/// Keys of the CA Secret.
pub const CA_KEY_KEY: &str = "ca.key";

/// The roles that run, and so need a certificate.
pub fn roles(grid: &ValidGrid) -> Vec<Role> {
    let mut roles = vec![Role::Head, Role::Cluster];
    if grid.spec.monitor.enabled {
        roles.push(Role::Monitor);
    }
    roles
}

/// Common name of the grid's CA; signing with a stored CA rebuilds its subject from it.
pub fn ca_common_name(grid: &ValidGrid) -> String {
    format!("FileGrid CA {}/{}", grid.namespace, grid.name)
}

/// A name every role's certificate carries so that one scrape configuration can verify
/// every metrics port (`serverName` of the ServiceMonitor). It need not resolve.
pub fn metrics_server_name(grid: &ValidGrid) -> String {
    format!("{}-metrics.{}.svc", grid.name, grid.namespace)
}

/// `host`, `host.ns`, `host.ns.svc` and `host.ns.svc.cluster.local`.
fn service_names(host: &str, ns: &str) -> [String; 4] {
    [
        format!("{host}.{ns}.svc"),
        host.to_string(),
        format!("{host}.{ns}"),
        format!("{host}.{ns}.svc.cluster.local"),
    ]
}

/// Every pod of a StatefulSet governed by `headless`: `*.headless.ns.svc[.cluster.local]`.
fn pod_names(headless: &str, ns: &str) -> [String; 2] {
    [
        format!("*.{headless}.{ns}.svc"),
        format!("*.{headless}.{ns}.svc.cluster.local"),
    ]
}

/// The names `role`'s certificate must cover: its pods' names under their headless Service
/// (what they advertise to each other), the names of its Services, and for heads `localhost`
/// and `127.0.0.1` (a port-forward).
pub fn dns_names(grid: &ValidGrid, role: Role) -> Vec<String> {
    let ns = &grid.namespace;
    let mut out = vec![];
    match role {
        Role::Head => {
            out.extend(service_names(&names::head(grid), ns));
            out.extend(pod_names(&names::head_headless(grid), ns));
            // For `kubectl port-forward` to a head.
            out.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        }
        Role::Cluster => {
            out.extend(pod_names(&names::cluster_headless(grid), ns));
            out.extend(service_names(&names::cluster_headless(grid), ns));
        }
        Role::Monitor => out.extend(service_names(&names::monitor(grid), ns)),
    }
    out.push(metrics_server_name(grid));
    out
}

/// What a head or cluster server advertises when TLS is on: its pod's DNS name, which its
/// certificate covers. `$(FILEGRID_SERVER_ID)` is the pod name, expanded by the kubelet.
pub fn advertise_host(grid: &ValidGrid, role: Role) -> String {
    let headless = match role {
        Role::Cluster => names::cluster_headless(grid),
        _ => names::head_headless(grid),
    };
    format!("$(FILEGRID_SERVER_ID).{headless}.{}.svc", grid.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> ValidGrid {
        let fg = serde_yaml::from_str(
            "apiVersion: filegrid.io/v1alpha1\nkind: FileGrid\nmetadata: {name: demo, namespace: team-a, uid: u1}\nspec: {zookeeper: {connect: 'zk:2181'}}\n",
        )
        .unwrap();
        crate::validate::validate(&fg).unwrap()
    }

    /// Does a certificate name `pattern` (possibly `*.` wildcard) cover `host`?
    fn covers(pattern: &str, host: &str) -> bool {
        match pattern.strip_prefix("*.") {
            Some(rest) => host
                .split_once('.')
                .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
            None => pattern == host,
        }
    }

    #[test]
    fn certificates_cover_pod_and_service_names() {
        let g = grid();
        let head = dns_names(&g, Role::Head);
        for host in [
            "demo-head-0.demo-head-headless.team-a.svc",
            "demo-head-1.demo-head-headless.team-a.svc.cluster.local",
            "demo-head.team-a.svc",
            "demo-head",
            "demo-metrics.team-a.svc",
            "localhost",
        ] {
            assert!(head.iter().any(|p| covers(p, host)), "{host}: {head:?}");
        }
        assert_eq!(head[0], "demo-head.team-a.svc", "the common name");
        let cluster = dns_names(&g, Role::Cluster);
        assert!(
            cluster
                .iter()
                .any(|p| covers(p, "demo-cluster-7.demo-cluster-headless.team-a.svc"))
        );
        assert!(!cluster.iter().any(|p| covers(p, "demo-head.team-a.svc")));
        let monitor = dns_names(&g, Role::Monitor);
        assert!(monitor.contains(&"demo-monitor.team-a.svc".to_string()));
        // What the pods advertise is covered by their certificate.
        let advertised =
            advertise_host(&g, Role::Cluster).replace("$(FILEGRID_SERVER_ID)", "demo-cluster-0");
        assert!(cluster.iter().any(|p| covers(p, &advertised)));
        let advertised =
            advertise_host(&g, Role::Head).replace("$(FILEGRID_SERVER_ID)", "demo-head-1");
        assert!(head.iter().any(|p| covers(p, &advertised)));
    }
}
