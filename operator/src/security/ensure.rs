//! The reconcile step for a secured grid's Secrets: read each one, decide with
//! [`super::plan`], generate only what is missing or due, apply it with server-side apply.
//!
//! A Secret whose material exists is never applied again: applying it without its data
//! would remove the data, and with new data would replace credentials people use. Only
//! certificates are replaced, when [`super::plan::certificate`] says so.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use tracing::info;

use super::generate::{self, AdminCredential, Ca, GenerateError};
use super::plan::{self, CA_CERT_KEY, Issued, Once};
use super::{
    ADMIN_PRINCIPAL, ADMIN_TOKEN_KEY, CA_KEY_KEY, CA_VALIDITY, CERT_VALIDITY, CLOCK_SKEW,
    ca_common_name, dns_names, roles, secrets,
};
use crate::builders::{FIELD_MANAGER, names};
use crate::config::{CLUSTER_SECRET_KEY, CREDENTIALS_KEY, Role, ZK_AUTH_KEY};
use crate::head_api::HeadAccess;
use crate::validate::ValidGrid;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(
        "Secret {secret} has no key `{key}`; delete the Secret to have a new one made, \
         or add the key"
    )]
    MissingKey { secret: String, key: String },
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Makes sure every Secret of a secured grid exists and every certificate is current at
/// `now` (unix seconds); returns how the operator reaches the grid's heads. An insecure grid
/// gets nothing and is reached over plain HTTP without a credential.
pub async fn ensure(
    client: &Client,
    grid: &ValidGrid,
    now: i64,
) -> Result<HeadAccess, SecurityError> {
    if !grid.secured {
        return Ok(HeadAccess::default());
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), &grid.namespace);
    once(
        &api,
        grid,
        names::cluster_secret(grid),
        &[CLUSTER_SECRET_KEY],
        || Ok(secrets::cluster_secret(grid, &generate::cluster_secret())),
    )
    .await?;
    let admin = once(
        &api,
        grid,
        names::admin(grid),
        &[CREDENTIALS_KEY, ADMIN_TOKEN_KEY],
        || secrets::admin(grid, &AdminCredential::generate(ADMIN_PRINCIPAL)),
    )
    .await?;
    if grid.spec.zookeeper.auth_secret.is_none() {
        let user = format!("filegrid-{}", grid.name);
        once(
            &api,
            grid,
            names::zookeeper_auth(&grid.name),
            &[ZK_AUTH_KEY],
            || {
                Ok(secrets::zookeeper_auth(
                    grid,
                    &generate::zookeeper_auth(&user),
                ))
            },
        )
        .await?;
    }
    let ca_secret = once(
        &api,
        grid,
        names::ca(grid),
        &[CA_CERT_KEY, CA_KEY_KEY],
        || {
            let ca = generate::new_ca(
                &ca_common_name(grid),
                now - secs(CLOCK_SKEW),
                now + secs(CA_VALIDITY),
            )?;
            Ok(secrets::ca(grid, &ca))
        },
    )
    .await?;
    let ca = Ca {
        cert_pem: required(&ca_secret, &names::ca(grid), CA_CERT_KEY)?,
        key_pem: required(&ca_secret, &names::ca(grid), CA_KEY_KEY)?,
    };
    for role in roles(grid) {
        ensure_certificate(&api, grid, &ca, role, now).await?;
    }
    Ok(HeadAccess {
        token: Some(
            required(&admin, &names::admin(grid), ADMIN_TOKEN_KEY)?
                .trim()
                .to_string(),
        ),
        ca_pem: Some(ca.cert_pem),
    })
}

/// Issue `role`'s certificate when [`plan::certificate`] says it is due.
async fn ensure_certificate(
    api: &Api<Secret>,
    grid: &ValidGrid,
    ca: &Ca,
    role: Role,
    now: i64,
) -> Result<(), SecurityError> {
    let name = names::tls(grid, role);
    let ca_sha256 = ca.sha256();
    let wanted = dns_names(grid, role);
    let existing = api.get_opt(&name).await?;
    let Some(reason) = plan::certificate(existing.as_ref(), &ca_sha256, &wanted, now) else {
        return Ok(());
    };
    info!(grid = %grid.name, secret = %name, reason = reason.as_str(), "issuing a certificate");
    let issued = Issued {
        not_before: now - secs(CLOCK_SKEW),
        not_after: now + secs(CERT_VALIDITY),
        ca_sha256,
        dns_names: wanted,
    };
    let leaf = generate::issue(
        ca,
        &ca_common_name(grid),
        &names::ca(grid),
        &issued.dns_names,
        issued.not_before,
        issued.not_after,
    )?;
    apply(api, &secrets::tls(grid, role, &leaf, ca, &issued)).await?;
    Ok(())
}

fn required(secret: &Secret, name: &str, key: &str) -> Result<String, SecurityError> {
    plan::value(secret, key).ok_or_else(|| SecurityError::MissingKey {
        secret: name.to_string(),
        key: key.to_string(),
    })
}

/// A Secret generated once: created (from `make`) when missing, otherwise returned as stored.
async fn once(
    api: &Api<Secret>,
    grid: &ValidGrid,
    name: String,
    keys: &[&str],
    make: impl FnOnce() -> Result<Secret, GenerateError>,
) -> Result<Secret, SecurityError> {
    let existing = api.get_opt(&name).await?;
    match plan::once(existing.as_ref(), keys) {
        Once::Keep => Ok(existing.unwrap_or_default()),
        Once::MissingKey(key) => Err(SecurityError::MissingKey { secret: name, key }),
        Once::Create => {
            info!(grid = %grid.name, secret = %name, "creating secret");
            apply(api, &make()?).await
        }
    }
}

async fn apply(api: &Api<Secret>, secret: &Secret) -> Result<Secret, SecurityError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(secret),
        )
        .await?)
}
