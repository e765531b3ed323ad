//! The Secret objects of a secured grid, built from material made in [`super::generate`].
//! Pure: they are applied by [`super::ensure`].

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::generate::{AdminCredential, Ca, GenerateError, Leaf};
use super::plan::{CA_CERT_KEY, Issued, TLS_CERT_KEY, TLS_KEY_KEY};
use super::{ADMIN_ACCESS_KEY, ADMIN_SECRET_KEY, ADMIN_TOKEN_KEY, CA_KEY_KEY};
use crate::builders::{instance_labels, metadata, names};
use crate::config::{CLUSTER_SECRET_KEY, CREDENTIALS_KEY, Role, ZK_AUTH_KEY};
use crate::validate::ValidGrid;

fn secret(
    grid: &ValidGrid,
    name: String,
    type_: &str,
    data: &[(&str, &str)],
    annotations: BTreeMap<String, String>,
) -> Secret {
    let mut meta = metadata(grid, name, instance_labels(grid));
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    Secret {
        metadata: meta,
        type_: Some(type_.to_string()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// `NAME-cluster-secret`, key `cluster-secret`.
pub fn cluster_secret(grid: &ValidGrid, value: &str) -> Secret {
    secret(
        grid,
        names::cluster_secret(grid),
        "Opaque",
        &[(CLUSTER_SECRET_KEY, value)],
        BTreeMap::new(),
    )
}

/// `NAME-admin`: the heads' credentials file (key `credentials`) and the admin credential's
/// `access-key`, `secret` and `token` (`access-key:secret`).
pub fn admin(grid: &ValidGrid, admin: &AdminCredential) -> Result<Secret, GenerateError> {
    let file = admin.credentials_file()?;
    Ok(secret(
        grid,
        names::admin(grid),
        "Opaque",
        &[
            (CREDENTIALS_KEY, &file),
            (ADMIN_ACCESS_KEY, &admin.access_key),
            (ADMIN_SECRET_KEY, &admin.secret),
            (ADMIN_TOKEN_KEY, &admin.token()),
        ],
        BTreeMap::new(),
    ))
}

/// `NAME-zookeeper`, key `auth`: `user:password`.
pub fn zookeeper_auth(grid: &ValidGrid, auth: &str) -> Secret {
    secret(
        grid,
        names::zookeeper_auth(&grid.name),
        "Opaque",
        &[(ZK_AUTH_KEY, auth)],
        BTreeMap::new(),
    )
}

/// `NAME-ca`: `ca.crt` and `ca.key`. Never mounted in a pod.
pub fn ca(grid: &ValidGrid, ca: &Ca) -> Secret {
    secret(
        grid,
        names::ca(grid),
        "Opaque",
        &[(CA_CERT_KEY, &ca.cert_pem), (CA_KEY_KEY, &ca.key_pem)],
        BTreeMap::new(),
    )
}

/// `NAME-<role>-tls` (type `kubernetes.io/tls`): `tls.crt`, `tls.key` and the CA's `ca.crt`,
/// annotated with what [`super::plan::certificate`] needs to decide on renewal.
pub fn tls(grid: &ValidGrid, role: Role, leaf: &Leaf, ca: &Ca, issued: &Issued) -> Secret {
    secret(
        grid,
        names::tls(grid, role),
        "kubernetes.io/tls",
        &[
            (TLS_CERT_KEY, &leaf.cert_pem),
            (TLS_KEY_KEY, &leaf.key_pem),
            (CA_CERT_KEY, &ca.cert_pem),
        ],
        issued.annotations(),
    )
}
