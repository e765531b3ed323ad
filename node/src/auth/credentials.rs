//! The credentials file, loaded and checked, and the lookup of a presented token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use base64::Engine;
use filegrid_proto::auth::{Access, CredentialsFile};
use subtle::ConstantTimeEq;

/// A principal that presented a valid credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub access_key: String,
    pub role: Access,
}

impl Principal {
    /// The principal of requests without a credential, when anonymous reads are allowed.
    pub fn anonymous() -> Self {
        Self {
            name: "anonymous".into(),
            access_key: String::new(),
            role: Access::Read,
        }
    }
}

/// Why the credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("setting `credentials_file` ({path}): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("setting `credentials_file` ({path}): {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One principal's entry, kept for lookups.
struct Entry {
    principal: Principal,
    secret: Vec<u8>,
}

/// The principals of a credentials file, looked up by access key.
pub struct Credentials {
    by_key: HashMap<String, Entry>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("principals", &self.by_key.len())
            .finish()
    }
}

/// Why an `Authorization` header was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the Authorization header is not `Bearer <access_key>:<secret>` or Basic")]
    Malformed,
    #[error("unknown access key or wrong secret")]
    Wrong,
}

impl Credentials {
    /// Parses and checks the file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: CredentialsFile =
            toml::from_str(text).map_err(|e| e.message().trim().replace('\n', " "))?;
        file.check()?;
        if file.principals.is_empty() {
            return Err("names no principal: add a [[principal]] entry".into());
        }
        let by_key = file
            .principals
            .into_iter()
            .map(|p| {
                (
                    p.access_key.clone(),
                    Entry {
                        principal: Principal {
                            name: p.name,
                            access_key: p.access_key,
                            role: p.role,
                        },
                        secret: p.secret.into_bytes(),
                    },
                )
            })
            .collect();
        Ok(Self { by_key })
    }

    /// Reads the file at `path`.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| CredentialsError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// The principal whose access key and secret these are. The secret is compared in
    /// constant time, and an unknown key costs the same comparison.
    pub fn verify(&self, access_key: &str, secret: &[u8]) -> Option<&Principal> {
        const DUMMY: &[u8] = b"filegrid-dummy-secret-for-unknown-keys";
        let entry = self.by_key.get(access_key);
        let expected = entry.map_or(DUMMY, |e| e.secret.as_slice());
        let equal: bool = expected.ct_eq(secret).into();
        match entry {
            Some(e) if equal => Some(&e.principal),
            _ => None,
        }
    }

    /// Checks an `Authorization` header value.
    pub fn verify_header(&self, value: &str) -> Result<&Principal, TokenError> {
        let (key, secret) = split_authorization(value)?;
        self.verify(&key, secret.as_bytes())
            .ok_or(TokenError::Wrong)
    }

    /// The secret of `access_key`, for verifying signatures made with it (the S3 API).
    pub fn secret_of(&self, access_key: &str) -> Option<(&Principal, &[u8])> {
        self.by_key
            .get(access_key)
            .map(|e| (&e.principal, e.secret.as_slice()))
    }
}

/// The access key and secret of an `Authorization` header, owned.
pub fn split_authorization(value: &str) -> Result<(String, String), TokenError> {
    let (scheme, rest) = value.trim().split_once(' ').ok_or(TokenError::Malformed)?;
    let rest = rest.trim();
    let pair = if scheme.eq_ignore_ascii_case("bearer") {
        rest.to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| TokenError::Malformed)?;
        String::from_utf8(decoded).map_err(|_| TokenError::Malformed)?
    } else {
        return Err(TokenError::Malformed);
    };
    let (key, secret) = pair.split_once(':').ok_or(TokenError::Malformed)?;
    Ok((key.to_string(), secret.to_string()))
}

/// The credentials file, reloaded when it changes so principals can be added, removed or
/// rotated without a restart. A file that no longer parses is logged and the last good
/// version kept.
#[derive(Clone)]
pub struct LiveCredentials {
    current: Arc<ArcSwap<Credentials>>,
}

impl std::fmt::Debug for LiveCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current.load().fmt(f)
    }
}

impl LiveCredentials {
    /// Loads `path` (an error stops the start) and watches it every `every`.
    pub fn watch(path: PathBuf, every: Duration) -> Result<Self, CredentialsError> {
        let first = Credentials::load(&path)?;
        let live = Self::fixed(first);
        let current = live.current.clone();
        tokio::spawn(async move {
            let mut seen = modified(&path);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match Credentials::load(&path) {
                    Ok(c) => {
                        tracing::info!(principals = c.by_key.len(), path = %path.display(), "credentials reloaded");
                        current.store(Arc::new(c));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "credentials file changed but cannot be used; keeping the previous one")
                    }
                }
            }
        });
        Ok(live)
    }

    /// Credentials that never change (tests).
    pub fn fixed(credentials: Credentials) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(credentials)),
        }
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<Credentials>> {
        self.current.load()
    }
}

fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[principal]]
name = "alice"
access_key = "AKALICE"
secret = "alice-secret-0123456789"
role = "write"

[[principal]]
name = "ro"
access_key = "AKREAD"
secret = "read-secret-0123456789"
role = "read"
"#;

    #[test]
    fn the_right_secret_names_its_principal_and_nothing_else_does() {
        let c = Credentials::parse(FILE).unwrap();
        let p = c.verify("AKALICE", b"alice-secret-0123456789").unwrap();
        assert_eq!((p.name.as_str(), p.role), ("alice", Access::Write));
        assert!(c.verify("AKALICE", b"alice-secret-012345678").is_none());
        assert!(c.verify("AKALICE", b"read-secret-0123456789").is_none());
        assert!(c.verify("AKNOBODY", b"alice-secret-0123456789").is_none());
        assert!(c.verify("", b"").is_none());
    }

    #[test]
    fn bearer_and_basic_headers_are_read() {
        let c = Credentials::parse(FILE).unwrap();
        let bearer = c
            .verify_header("Bearer AKREAD:read-secret-0123456789")
            .unwrap();
        assert_eq!(bearer.name, "ro");
        let basic =
            base64::engine::general_purpose::STANDARD.encode("AKALICE:alice-secret-0123456789");
        assert_eq!(
            c.verify_header(&format!("Basic {basic}")).unwrap().name,
            "alice"
        );
        assert_eq!(c.verify_header("Bearer AKREAD"), Err(TokenError::Malformed));
        assert_eq!(c.verify_header("Digest x"), Err(TokenError::Malformed));
        assert_eq!(c.verify_header("Basic !!!"), Err(TokenError::Malformed));
        assert_eq!(
            c.verify_header("Bearer AKREAD:wrong"),
            Err(TokenError::Wrong)
        );
    }

    #[test]
    fn a_bad_file_is_refused_with_the_reason() {
        assert!(Credentials::parse("").unwrap_err().contains("no principal"));
        assert!(
            Credentials::parse("[[principal]]\nname = \"a\"\n")
                .unwrap_err()
                .contains("missing field")
        );
        let unknown = "[[principal]]\nname=\"a\"\naccess_key=\"AK1\"\nsecret=\"0123456789abcdef\"\nrole=\"root\"\n";
        assert!(
            Credentials::parse(unknown)
                .unwrap_err()
                .contains("unknown variant")
        );
        let typo = "[[principal]]\nname=\"a\"\naccess_key=\"AK1\"\nsecret=\"0123456789abcdef\"\nrole=\"read\"\nrol=\"x\"\n";
        assert!(
            Credentials::parse(typo)
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
