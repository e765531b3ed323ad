//! Client credentials: the credentials file heads read, and the roles it grants.
//!
//! One entry per principal. Its `access_key` and `secret` are both the token of the native
//! API (`Authorization: Bearer <access_key>:<secret>`) and an S3 access key id and secret
//! access key, so one credential serves both APIs.

use serde::{Deserialize, Serialize};

/// What a principal may do. Each level includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// List, stat and download files; read grid status.
    Read,
    /// Also upload and delete files.
    Write,
    /// Also decommission and recommission servers, run repair, exclude heads.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The credentials file (`credentials_file`), TOML:
///
/// ```toml
/// [[principal]]
/// name = "backup"
/// access_key = "FGK7Q2MZ4X9B3N5V8C1D"
/// secret = "at least 16 characters, 40 random ones are usual"
/// role = "write"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    #[serde(default, rename = "principal")]
    pub principals: Vec<PrincipalEntry>,
}

/// One principal of the credentials file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalEntry {
    /// Who this is, in logs and audit lines.
    pub name: String,
    /// Public half of the credential (also the S3 access key id).
    pub access_key: String,
    /// Private half (also the S3 secret access key). Never logged.
    pub secret: String,
    pub role: Access,
}

impl std::fmt::Debug for PrincipalEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalEntry")
            .field("name", &self.name)
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// Shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest access key or secret accepted.
pub const MAX_KEY_LEN: usize = 128;

impl CredentialsFile {
    /// Checks every entry: names and access keys unique and well formed, secrets long enough.
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        for (i, p) in self.principals.iter().enumerate() {
            let which = format!("principal {} ({:?})", i + 1, p.name);
            if p.name.trim().is_empty() || p.name.len() > MAX_KEY_LEN {
                return Err(format!(
                    "{which}: name must be 1 to {MAX_KEY_LEN} characters"
                ));
            }
            if !access_key_ok(&p.access_key) {
                return Err(format!(
                    "{which}: access_key must be 3 to {MAX_KEY_LEN} letters, digits or any of `-_.`"
                ));
            }
            if p.secret.len() < MIN_SECRET_LEN || p.secret.len() > MAX_KEY_LEN {
                return Err(format!(
                    "{which}: secret must be {MIN_SECRET_LEN} to {MAX_KEY_LEN} characters"
                ));
            }
            if p.secret
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(format!(
                    "{which}: secret must not hold spaces or control characters"
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(format!("{which}: name is used twice"));
            }
            if !keys.insert(p.access_key.as_str()) {
                return Err(format!("{which}: access_key is used twice"));
            }
        }
        Ok(())
    }
}

/// Access keys are plain so they fit a token, a header and an S3 key id.
pub fn access_key_ok(key: &str) -> bool {
    (3..=MAX_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, key: &str, secret: &str) -> PrincipalEntry {
        PrincipalEntry {
            name: name.into(),
            access_key: key.into(),
            secret: secret.into(),
            role: Access::Read,
        }
    }

    #[test]
    fn roles_are_ordered_and_read_from_lowercase() {
        assert!(Access::Read < Access::Write && Access::Write < Access::Admin);
        let f: CredentialsFile = toml_like(
            r#"{"principal":[{"name":"a","access_key":"AK1","secret":"0123456789abcdef","role":"admin"}]}"#,
        );
        assert_eq!(f.principals[0].role, Access::Admin);
        assert!(f.check().is_ok());
    }

    fn toml_like(json: &str) -> CredentialsFile {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bad_entries_are_named() {
        let short = CredentialsFile {
            principals: vec![entry("a", "AK1", "short")],
        };
        assert!(short.check().unwrap_err().contains("secret must be 16"));
        let colon = CredentialsFile {
            principals: vec![entry("a", "AK:1", "0123456789abcdef")],
        };
        assert!(colon.check().unwrap_err().contains("access_key must be"));
        let twice = CredentialsFile {
            principals: vec![
                entry("a", "AK1", "0123456789abcdef"),
                entry("b", "AK1", "0123456789abcdeg"),
            ],
        };
        assert!(
            twice
                .check()
                .unwrap_err()
                .contains("access_key is used twice")
        );
        let spaced = CredentialsFile {
            principals: vec![entry("a", "AK1", "0123456789 abcdef")],
        };
        assert!(spaced.check().is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let e = entry("a", "AK1", "supersecretvalue1234");
        assert!(!format!("{e:?}").contains("supersecret"));
    }
}
