//! Signed requests between FileGrid servers.
//!
//! Heads and cluster servers share a cluster secret. Each request a server makes to another
//! carries `x-filegrid-peer-auth: FG1 <signer> <unix ms> <nonce> <signature>`, where the
//! signature is HMAC-SHA256, under a key derived from the secret and the signer's id, of
//! the method, path and query, epoch, checksum, pipeline and length of the request
//! ([`Signed`]). The receiver refuses a signature that does not verify, whose time is
//! further than the signature window from its clock, or that it has seen before (so a
//! captured request cannot be replayed). What a signer is allowed to do (only the leader
//! writes) is decided by the receiver from ZooKeeper, not here.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Shortest cluster secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Signatures remembered at most; past that, new signed requests are refused until old
/// ones leave the window (only a holder of the cluster secret can fill it).
const REPLAY_CAPACITY: usize = 500_000;
const SCHEME: &str = "FG1";

/// The secret heads and cluster servers sign with.
#[derive(Clone)]
pub struct ClusterSecret(Arc<[u8]>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Why the cluster secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("setting `cluster_secret_file` ({path}): {message}")]
    Invalid { path: String, message: String },
}

impl ClusterSecret {
    /// A secret from its bytes (surrounding whitespace is not part of it).
    pub fn new(bytes: &[u8]) -> Result<Self, String> {
        let text = bytes.trim_ascii();
        if text.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the secret must be at least {MIN_SECRET_BYTES} bytes, got {}",
                text.len()
            ));
        }
        Ok(Self(text.into()))
    }

    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let invalid = |message: String| SecretError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
        Self::new(&bytes).map_err(invalid)
    }

    /// The key `signer` signs with: HMAC(secret, label ‖ signer).
    fn key_for(&self, signer: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_mac());
        mac.update(b"filegrid peer key v1\0");
        mac.update(signer.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, signer: &str) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key_for(signer)).unwrap_or_else(|_| unreachable_mac())
    }
}

/// HMAC takes keys of any length, so building one cannot fail.
fn unreachable_mac() -> HmacSha256 {
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

/// What a request's signature covers besides the signer, time and nonce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// Path and query exactly as sent.
    pub path_and_query: &'a str,
    pub epoch: Option<u64>,
    pub checksum: Option<&'a str>,
    pub pipeline: Option<&'a str>,
    pub content_length: Option<u64>,
    /// A digest of the body, for small bodies sent whole (heartbeats, replicate orders).
    pub body_digest: Option<&'a str>,
}

fn canonical(mac: &mut HmacSha256, s: &Signed, signer: &str, time_ms: u64, nonce: &str) {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let text = format!(
        "{SCHEME}\n{}\n{}\n{signer}\n{time_ms}\n{nonce}\n{}\n{}\n{}\n{}\n{}",
        s.method,
        s.path_and_query,
        opt(s.epoch.map(|e| e.to_string())),
        opt(s.checksum.map(str::to_string)),
        opt(s.pipeline.map(str::to_string)),
        opt(s.content_length.map(|n| n.to_string())),
        opt(s.body_digest.map(str::to_string)),
    );
    mac.update(text.as_bytes());
}

/// Hex SHA-256 of a small body, for [`Signed::body_digest`].
pub fn body_digest(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(body))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Signs this server's requests.
#[derive(Clone, Debug)]
pub struct PeerSigner {
    id: String,
    secret: ClusterSecret,
}

impl PeerSigner {
    pub fn new(id: impl Into<String>, secret: ClusterSecret) -> Self {
        Self {
            id: id.into(),
            secret,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `x-filegrid-peer-auth` value for a request made now.
    pub fn header(&self, signed: &Signed) -> String {
        self.header_at(signed, now_ms(), &hex::encode(rand::random::<[u8; 12]>()))
    }

    fn header_at(&self, signed: &Signed, time_ms: u64, nonce: &str) -> String {
        let mut mac = self.secret.mac(&self.id);
        canonical(&mut mac, signed, &self.id, time_ms, nonce);
        let sig = hex::encode(mac.finalize().into_bytes());
        format!("{SCHEME} {} {time_ms} {nonce} {sig}", self.id)
    }

    /// This server's acknowledgement that it stored `chunk` with `checksum` and `len` at
    /// `epoch`; the head counts a replica only with one it can verify.
    pub fn ack(&self, chunk: &str, checksum: &str, len: u64, epoch: u64) -> String {
        ack_signature(&self.secret, &self.id, chunk, checksum, len, epoch)
    }
}

fn ack_signature(
    secret: &ClusterSecret,
    server: &str,
    chunk: &str,
    checksum: &str,
    len: u64,
    epoch: u64,
) -> String {
    let mut mac = secret.mac(server);
    mac.update(format!("{SCHEME} ack\n{server}\n{chunk}\n{checksum}\n{len}\n{epoch}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Why a peer request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request is not signed (no x-filegrid-peer-auth header)")]
    Missing,
    #[error("the x-filegrid-peer-auth header is malformed")]
    Malformed,
    #[error("the signature does not verify")]
    Wrong,
    #[error(
        "the signature's time is {skew_ms} ms from this server's clock (window {window_ms} ms)"
    )]
    Expired { skew_ms: u64, window_ms: u64 },
    #[error("the signature was already used")]
    Replayed,
    #[error("too many signed requests in the signature window")]
    Overloaded,
}

/// Checks signatures, remembering those seen within the window.
#[derive(Clone)]
pub struct PeerVerifier {
    secret: ClusterSecret,
    window: Duration,
    seen: Arc<Mutex<ReplayCache>>,
}

impl std::fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("window", &self.window)
            .finish()
    }
}

impl PeerVerifier {
    pub fn new(secret: ClusterSecret, window: Duration) -> Self {
        Self {
            secret,
            window,
            seen: Arc::new(Mutex::new(ReplayCache::default())),
        }
    }

    /// Checks `header` against `signed` and returns the signer's id.
    pub fn verify(&self, header: Option<&str>, signed: &Signed) -> Result<String, SignatureError> {
        self.verify_at(header, signed, now_ms())
    }

    fn verify_at(
        &self,
        header: Option<&str>,
        signed: &Signed,
        now: u64,
    ) -> Result<String, SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let mut parts = header.split(' ');
        let (Some(SCHEME), Some(signer), Some(time), Some(nonce), Some(sig), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SignatureError::Malformed);
        };
        let time_ms: u64 = time.parse().map_err(|_| SignatureError::Malformed)?;
        let sig = hex::decode(sig).map_err(|_| SignatureError::Malformed)?;
        if signer.is_empty() || nonce.len() > 64 {
            return Err(SignatureError::Malformed);
        }
        let mut mac = self.secret.mac(signer);
        canonical(&mut mac, signed, signer, time_ms, nonce);
        if mac.verify_slice(&sig).is_err() {
            return Err(SignatureError::Wrong);
        }
        let window_ms = self.window.as_millis() as u64;
        let skew_ms = now.abs_diff(time_ms);
        if skew_ms > window_ms {
            return Err(SignatureError::Expired { skew_ms, window_ms });
        }
        let mut key = [0u8; 32];
        let n = sig.len().min(32);
        key[..n].copy_from_slice(&sig[..n]);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.admit(key, time_ms + window_ms, now)?;
        Ok(signer.to_string())
    }

    /// Whether `ack` is `server`'s acknowledgement of storing `chunk` as described.
    pub fn ack_ok(
        &self,
        server: &str,
        ack: &str,
        chunk: &str,
        checksum: &str,
        len: u64,
        epoch: u64,
    ) -> bool {
        let expected = ack_signature(&self.secret, server, chunk, checksum, len, epoch);
        expected.as_bytes().ct_eq(ack.as_bytes()).into()
    }
}

/// Signatures seen, each until its time leaves the window.
#[derive(Default)]
struct ReplayCache {
    keys: HashSet<[u8; 32]>,
    order: VecDeque<(u64, [u8; 32])>,
}

impl ReplayCache {
    fn admit(&mut self, key: [u8; 32], expires: u64, now: u64) -> Result<(), SignatureError> {
        while let Some(&(at, old)) = self.order.front() {
            if at > now && self.order.len() < REPLAY_CAPACITY {
                break;
            }
            if at > now {
                return Err(SignatureError::Overloaded);
            }
            self.order.pop_front();
            self.keys.remove(&old);
        }
        if !self.keys.insert(key) {
            return Err(SignatureError::Replayed);
        }
        // Expiry times arrive nearly in order; one out of order only stays a little longer.
        self.order.push_back((expires, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> ClusterSecret {
        ClusterSecret::new(s.as_bytes()).unwrap()
    }

    const S: &str = "0123456789abcdef0123456789abcdef";

    fn put() -> Signed<'static> {
        Signed {
            method: "PUT",
            path_and_query: "/v1/chunks/abc-0",
            epoch: Some(7),
            checksum: Some("crc32c:1234"),
            pipeline: Some("127.0.0.1:2,127.0.0.1:3"),
            content_length: Some(10),
            body_digest: None,
        }
    }

    #[test]
    fn a_signature_verifies_once_and_names_its_signer() {
        let signer = PeerSigner::new("head_server_1", secret(S));
        let verifier = PeerVerifier::new(secret(S), Duration::from_secs(30));
        let h = signer.header(&put());
        assert_eq!(verifier.verify(Some(&h), &put()).unwrap(), "head_server_1");
        assert_eq!(
            verifier.verify(Some(&h), &put()),
            Err(SignatureError::Replayed)
        );
        // Two requests alike in every field still sign differently (the nonce).
        let again = signer.header(&put());
        assert_ne!(again, h);
        assert!(verifier.verify(Some(&again), &put()).is_ok());
    }

    #[test]
    fn every_covered_field_changes_the_signature() {
        let signer = PeerSigner::new("h", secret(S));
        let verifier = PeerVerifier::new(secret(S), Duration::from_secs(30));
        let base = put();
        let variants = [
            Signed {
                method: "DELETE",
                ..base
            },
            Signed {
                path_and_query: "/v1/chunks/abc-1",
                ..base
            },
            Signed {
                epoch: Some(8),
                ..base
            },
            Signed {
                epoch: None,
                ..base
            },
            Signed {
                checksum: Some("crc32c:1235"),
                ..base
            },
            Signed {
                pipeline: Some("127.0.0.1:2,127.0.0.1:2"),
                ..base
            },
            Signed {
                content_length: Some(11),
                ..base
            },
            Signed {
                body_digest: Some("00"),
                ..base
            },
        ];
        for v in variants {
            let h = signer.header(&base);
            assert_eq!(
                verifier.verify(Some(&h), &v),
                Err(SignatureError::Wrong),
                "{v:?}"
            );
        }
    }

    #[test]
    fn wrong_secret_wrong_signer_old_time_and_garbage_are_refused() {
        let verifier = PeerVerifier::new(secret(S), Duration::from_secs(30));
        let other = PeerSigner::new("h", secret("another secret of at least 32 bytes!"));
        assert_eq!(
            verifier.verify(Some(&other.header(&put())), &put()),
            Err(SignatureError::Wrong)
        );
        // A signature is bound to its signer: claiming another id fails.
        let h = PeerSigner::new("h", secret(S)).header(&put());
        let forged = h.replacen(" h ", " cluster_server_1 ", 1);
        assert_eq!(
            verifier.verify(Some(&forged), &put()),
            Err(SignatureError::Wrong)
        );
        let signer = PeerSigner::new("h", secret(S));
        let old = signer.header_at(&put(), now_ms() - 31_000, "n1");
        assert!(matches!(
            verifier.verify(Some(&old), &put()),
            Err(SignatureError::Expired { .. })
        ));
        let future = signer.header_at(&put(), now_ms() + 31_000, "n2");
        assert!(matches!(
            verifier.verify(Some(&future), &put()),
            Err(SignatureError::Expired { .. })
        ));
        for bad in [
            "",
            "FG1",
            "FG1 h 1 n zz",
            "FG2 h 1 n 00",
            "FG1 h x n 00",
            "FG1 h 1 n 00 extra",
        ] {
            assert_eq!(
                verifier.verify(Some(bad), &put()),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(verifier.verify(None, &put()), Err(SignatureError::Missing));
    }

    #[test]
    fn replays_are_forgotten_only_after_the_window() {
        let mut cache = ReplayCache::default();
        assert!(cache.admit([1; 32], 100, 0).is_ok());
        assert_eq!(cache.admit([1; 32], 100, 50), Err(SignatureError::Replayed));
        assert!(cache.admit([2; 32], 200, 150).is_ok());
        // At 101 the first has left the window; its time check would refuse it anyway.
        assert!(cache.admit([1; 32], 300, 101).is_ok());
        assert_eq!(cache.keys.len(), 2);
    }

    #[test]
    fn acks_bind_server_chunk_checksum_length_and_epoch() {
        let signer = PeerSigner::new("cluster_server_1", secret(S));
        let verifier = PeerVerifier::new(secret(S), Duration::from_secs(30));
        let ack = signer.ack("abc-0", "crc32c:1", 10, 3);
        assert!(verifier.ack_ok("cluster_server_1", &ack, "abc-0", "crc32c:1", 10, 3));
        assert!(!verifier.ack_ok("cluster_server_2", &ack, "abc-0", "crc32c:1", 10, 3));
        assert!(!verifier.ack_ok("cluster_server_1", &ack, "abc-1", "crc32c:1", 10, 3));
        assert!(!verifier.ack_ok("cluster_server_1", &ack, "abc-0", "crc32c:2", 10, 3));
        assert!(!verifier.ack_ok("cluster_server_1", &ack, "abc-0", "crc32c:1", 11, 3));
        assert!(!verifier.ack_ok("cluster_server_1", &ack, "abc-0", "crc32c:1", 10, 4));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(ClusterSecret::new(b"  short  \n").is_err());
        assert!(ClusterSecret::new(format!("{S}\n").as_bytes()).is_ok());
    }
}
