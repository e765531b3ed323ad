//! Pure decisions about a grid's Secrets: whether one must be created, kept as it is, or (for
//! certificates) issued again. Nothing here reads randomness, clocks or the API server.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

/// Certificate Secret annotations the operator writes when it issues a certificate, and reads
/// back to decide on renewal without parsing the certificate.
pub const NOT_BEFORE_ANNOTATION: &str = "filegrid.io/not-before";
pub const NOT_AFTER_ANNOTATION: &str = "filegrid.io/not-after";
/// SHA-256 of the CA certificate that signed it: a new CA means a new certificate.
pub const CA_ANNOTATION: &str = "filegrid.io/ca-sha256";
/// The DNS names the certificate covers, comma separated.
pub const DNS_NAMES_ANNOTATION: &str = "filegrid.io/dns-names";

/// What to do with a Secret whose contents are generated once and then kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Once {
    /// It does not exist: generate the material and create it.
    Create,
    /// It exists with every key: leave it alone, whatever it holds.
    Keep,
    /// It exists but lacks a key; rewriting it would lose what it holds, so it is reported.
    MissingKey(String),
}

/// Decide for a generate-once Secret that must hold `keys`.
pub fn once(existing: Option<&Secret>, keys: &[&str]) -> Once {
    let Some(secret) = existing else {
        return Once::Create;
    };
    match keys.iter().find(|k| value(secret, k).is_none()) {
        Some(k) => Once::MissingKey((*k).to_string()),
        None => Once::Keep,
    }
}

/// The non-empty value of `key` in a Secret, as text.
pub fn value(secret: &Secret, key: &str) -> Option<String> {
    let bytes: &ByteString = secret.data.as_ref()?.get(key)?;
    let text = String::from_utf8(bytes.0.clone()).ok()?;
    (!text.trim().is_empty()).then_some(text)
}

/// What the operator recorded about a certificate it issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub ca_sha256: String,
    pub dns_names: Vec<String>,
}

impl Issued {
    /// The annotations recording this certificate on its Secret.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NOT_BEFORE_ANNOTATION.to_string(), rfc3339(self.not_before)),
            (NOT_AFTER_ANNOTATION.to_string(), rfc3339(self.not_after)),
            (CA_ANNOTATION.to_string(), self.ca_sha256.clone()),
            (DNS_NAMES_ANNOTATION.to_string(), self.dns_names.join(",")),
        ])
    }

    /// Read back from a Secret's annotations; `None` when any is missing or unreadable.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Self> {
        let time = |k: &str| -> Option<i64> {
            let t: k8s_openapi::jiff::Timestamp = annotations.get(k)?.parse().ok()?;
            Some(t.as_second())
        };
        Some(Self {
            not_before: time(NOT_BEFORE_ANNOTATION)?,
            not_after: time(NOT_AFTER_ANNOTATION)?,
            ca_sha256: annotations.get(CA_ANNOTATION)?.clone(),
            dns_names: annotations
                .get(DNS_NAMES_ANNOTATION)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Why a certificate is issued (again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueReason {
    /// No Secret yet.
    Missing,
    /// The Secret lacks the certificate, the key, the CA or the operator's annotations.
    Unreadable,
    /// Less than a third of its validity is left (or it expired).
    Renewal,
    /// Signed by another CA than the grid's current one.
    NewCa,
    /// It does not cover the names the grid's pods and Services now need.
    NamesChanged,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::Missing => "missing",
            IssueReason::Unreadable => "unreadable",
            IssueReason::Renewal => "renewal",
            IssueReason::NewCa => "new CA",
            IssueReason::NamesChanged => "names changed",
        }
    }
}

/// Keys of a certificate Secret (type `kubernetes.io/tls`, plus the CA).
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
pub const CA_CERT_KEY: &str = "ca.crt";

/// Whether the certificate Secret `existing` must be issued again, and why.
pub fn certificate(
    existing: Option<&Secret>,
    ca_sha256: &str,
    dns_names: &[String],
    now: i64,
) -> Option<IssueReason> {
    let Some(secret) = existing else {
        return Some(IssueReason::Missing);
    };
    let complete = [TLS_CERT_KEY, TLS_KEY_KEY, CA_CERT_KEY]
        .iter()
        .all(|k| value(secret, k).is_some());
    let issued = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(Issued::from_annotations);
    let Some(issued) = issued.filter(|_| complete) else {
        return Some(IssueReason::Unreadable);
    };
    if issued.ca_sha256 != ca_sha256 {
        return Some(IssueReason::NewCa);
    }
    if issued.dns_names != dns_names {
        return Some(IssueReason::NamesChanged);
    }
    renewal_due(issued.not_before, issued.not_after, now).then_some(IssueReason::Renewal)
}

/// True when less than a third of the validity `not_before..not_after` is left at `now`.
pub fn renewal_due(not_before: i64, not_after: i64, now: i64) -> bool {
    let total = i128::from(not_after) - i128::from(not_before);
    let left = i128::from(not_after) - i128::from(now);
    total <= 0 || left * 3 < total
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const DAY: i64 = 86_400;

    fn secret(data: &[(&str, &str)], annotations: BTreeMap<String, String>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn names() -> Vec<String> {
        vec!["a.svc".to_string(), "*.h.svc".to_string()]
    }

    fn issued(not_before: i64, not_after: i64) -> Issued {
        Issued {
            not_before,
            not_after,
            ca_sha256: "ca1".into(),
            dns_names: names(),
        }
    }

    fn cert_secret(i: &Issued) -> Secret {
        secret(
            &[("tls.crt", "C"), ("tls.key", "K"), ("ca.crt", "A")],
            i.annotations(),
        )
    }

    #[test]
    fn generate_once_secrets_are_created_only_when_missing() {
        assert_eq!(once(None, &["auth"]), Once::Create);
        let s = secret(&[("auth", "u:p")], BTreeMap::new());
        assert_eq!(once(Some(&s), &["auth"]), Once::Keep);
        assert_eq!(
            once(Some(&s), &["auth", "token"]),
            Once::MissingKey("token".into())
        );
        let blank = secret(&[("auth", "  ")], BTreeMap::new());
        assert_eq!(
            once(Some(&blank), &["auth"]),
            Once::MissingKey("auth".into())
        );
    }

    #[test]
    fn renewal_is_due_in_the_last_third_of_validity() {
        let (start, end) = (0, 90 * DAY);
        assert!(!renewal_due(start, end, 0));
        assert!(!renewal_due(start, end, 59 * DAY));
        assert!(!renewal_due(start, end, 60 * DAY));
        assert!(renewal_due(start, end, 60 * DAY + 1));
        assert!(renewal_due(start, end, 91 * DAY), "expired");
        assert!(renewal_due(10, 10, 0), "empty validity");
        assert!(renewal_due(i64::MIN, i64::MAX, i64::MAX), "no overflow");
    }

    #[test]
    fn certificates_are_issued_when_missing_incomplete_stale_or_near_expiry() {
        let now = 10 * DAY;
        let fresh = issued(0, 90 * DAY);
        assert_eq!(
            certificate(None, "ca1", &names(), now),
            Some(IssueReason::Missing)
        );
        assert_eq!(
            certificate(Some(&cert_secret(&fresh)), "ca1", &names(), now),
            None
        );
        assert_eq!(
            certificate(Some(&cert_secret(&fresh)), "ca2", &names(), now),
            Some(IssueReason::NewCa)
        );
        assert_eq!(
            certificate(
                Some(&cert_secret(&fresh)),
                "ca1",
                &["other.svc".to_string()],
                now
            ),
            Some(IssueReason::NamesChanged)
        );
        assert_eq!(
            certificate(Some(&cert_secret(&fresh)), "ca1", &names(), 61 * DAY),
            Some(IssueReason::Renewal)
        );
        let no_key = secret(&[("tls.crt", "C"), ("ca.crt", "A")], fresh.annotations());
        assert_eq!(
            certificate(Some(&no_key), "ca1", &names(), now),
            Some(IssueReason::Unreadable)
        );
        let no_annotations = secret(
            &[("tls.crt", "C"), ("tls.key", "K"), ("ca.crt", "A")],
            BTreeMap::new(),
        );
        assert_eq!(
            certificate(Some(&no_annotations), "ca1", &names(), now),
            Some(IssueReason::Unreadable)
        );
    }

    #[test]
    fn annotations_round_trip() {
        let i = issued(1_767_225_600, 1_767_225_600 + 90 * DAY);
        let a = i.annotations();
        assert_eq!(a[NOT_BEFORE_ANNOTATION], "2026-01-01T00:00:00Z");
        assert_eq!(a[DNS_NAMES_ANNOTATION], "a.svc,*.h.svc");
        assert_eq!(Issued::from_annotations(&a), Some(i));
        let mut broken = a.clone();
        broken.insert(NOT_AFTER_ANNOTATION.into(), "soon".into());
        assert_eq!(Issued::from_annotations(&broken), None);
    }
}
