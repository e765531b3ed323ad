//! The edge where secret material is made: randomness and certificates (rcgen). Which
//! material to make, and when, is decided in [`super::plan`].

use filegrid_proto::auth::{Access, CredentialsFile, PrincipalEntry};
use rand::Rng;
use rand::distr::Alphanumeric;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("making a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("the CA in Secret {secret} cannot be used: {message}")]
    BadCa { secret: String, message: String },
    #[error("writing the credentials file: {0}")]
    Credentials(#[from] toml::ser::Error),
    #[error("certificate validity out of range")]
    Time,
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The cluster secret heads and cluster servers sign their requests with: 48 random bytes,
/// base64 (the node wants at least 32 bytes).
pub fn cluster_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 48];
    rand::rng().fill(&mut bytes[..]);
    format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A ZooKeeper digest credential `user:password` for `user`.
pub fn zookeeper_auth(user: &str) -> String {
    format!("{user}:{}\n", random_text(32))
}

/// An admin client credential: access key and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredential {
    pub name: String,
    pub access_key: String,
    pub secret: String,
}

impl std::fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredential")
            .field("name", &self.name)
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl AdminCredential {
    /// A new random credential named `name`: a 20-character access key (`FGA` and 17
    /// upper-case letters or digits) and a 40-character secret.
    pub fn generate(name: &str) -> Self {
        let key: String = random_text(17).to_ascii_uppercase();
        Self {
            name: name.to_string(),
            access_key: format!("FGA{key}"),
            secret: random_text(40),
        }
    }

    /// `access_key:secret`, what `--token` and `FILEGRID_TOKEN` take.
    pub fn token(&self) -> String {
        format!("{}:{}", self.access_key, self.secret)
    }

    /// The heads' credentials file holding this one admin principal.
    pub fn credentials_file(&self) -> Result<String, GenerateError> {
        let file = CredentialsFile {
            principals: vec![PrincipalEntry {
                name: self.name.clone(),
                access_key: self.access_key.clone(),
                secret: self.secret.clone(),
                role: Access::Admin,
            }],
        };
        Ok(toml::to_string(&file)?)
    }
}

/// A CA certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("sha256", &self.sha256())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Hex SHA-256 of the certificate, naming this CA on the certificates it signed.
    pub fn sha256(&self) -> String {
        ca_sha256(&self.cert_pem)
    }
}

/// Hex SHA-256 of a CA certificate (PEM), as [`Ca::sha256`].
pub fn ca_sha256(cert_pem: &str) -> String {
    hex(&Sha256::digest(cert_pem.trim().as_bytes()))
}

/// A certificate signed by the grid's CA and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf").finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn time(unix: i64) -> Result<time::OffsetDateTime, GenerateError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|_| GenerateError::Time)
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes[..]);
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// The CA's parameters. The same subject is rebuilt to sign with a stored CA, so it depends
/// only on `common_name`.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "FileGrid");
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// A new self-signed CA valid from `not_before` to `not_after` (unix seconds).
pub fn new_ca(common_name: &str, not_before: i64, not_after: i64) -> Result<Ca, GenerateError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params(common_name);
    params.not_before = time(not_before)?;
    params.not_after = time(not_after)?;
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A certificate for `dns_names` (the first is also its common name), for both server and
/// client use, signed by `ca` (named `ca_secret` in errors).
pub fn issue(
    ca: &Ca,
    ca_common_name: &str,
    ca_secret: &str,
    dns_names: &[String],
    not_before: i64,
    not_after: i64,
) -> Result<Leaf, GenerateError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| GenerateError::BadCa {
        secret: ca_secret.to_string(),
        message: format!("the key does not parse: {e}"),
    })?;
    let issuer = Issuer::new(ca_params(ca_common_name), ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(first) = dns_names.first() {
        params.distinguished_name.push(DnType::CommonName, first);
    }
    params.not_before = time(not_before)?;
    params.not_after = time(not_after)?;
    params.serial_number = Some(random_serial());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_credentials_file_is_what_heads_accept() {
        let a = AdminCredential::generate("admin");
        assert_eq!(a.access_key.len(), 20);
        assert!(a.access_key.starts_with("FGA"));
        assert_eq!(a.secret.len(), 40);
        assert_ne!(a, AdminCredential::generate("admin"), "random");
        let text = a.credentials_file().unwrap();
        let file: CredentialsFile = toml::from_str(&text).unwrap();
        file.check().unwrap();
        assert_eq!(file.principals[0].role, Access::Admin);
        assert_eq!(file.principals[0].secret, a.secret);
        assert_eq!(a.token(), format!("{}:{}", a.access_key, a.secret));
        assert!(
            !format!("{a:?}").contains(&a.secret),
            "never in debug output"
        );
    }

    #[test]
    fn cluster_secret_and_zookeeper_auth_are_long_enough() {
        use base64::Engine;
        let s = cluster_secret();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .unwrap();
        assert_eq!(bytes.len(), 48);
        assert_ne!(s, cluster_secret());
        let z = zookeeper_auth("filegrid-demo");
        let (user, password) = z.trim().split_once(':').unwrap();
        assert_eq!(user, "filegrid-demo");
        assert_eq!(password.len(), 32);
    }

    #[test]
    fn issued_certificates_chain_to_the_ca_and_cover_their_names() {
        let now = 1_767_225_600;
        let ca = new_ca("FileGrid CA team-a/demo", now, now + 3650 * 86_400).unwrap();
        let names = vec![
            "demo-head.team-a.svc".to_string(),
            "*.demo-head-headless.team-a.svc".to_string(),
        ];
        let leaf = issue(
            &ca,
            "FileGrid CA team-a/demo",
            "demo-ca",
            &names,
            now,
            now + 90 * 86_400,
        )
        .unwrap();
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        // The leaf carries the CA's subject as its issuer and its names (a full chain check
        // over TLS is in tests/http.rs).
        let der = |pem: &str| {
            use base64::Engine;
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        };
        let ca_der = der(&ca.cert_pem);
        let leaf_der = der(&leaf.cert_pem);
        let cn = b"FileGrid CA team-a/demo";
        let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&ca_der, cn) && contains(&leaf_der, cn));
        assert!(contains(&leaf_der, b"*.demo-head-headless.team-a.svc"));
        assert_ne!(ca.sha256(), new_ca("x", now, now + 1).unwrap().sha256());
        let broken = Ca {
            cert_pem: ca.cert_pem.clone(),
            key_pem: "not a key".into(),
        };
        assert!(matches!(
            issue(&broken, "x", "demo-ca", &names, now, now + 1),
            Err(GenerateError::BadCa { .. })
        ));
    }
}
