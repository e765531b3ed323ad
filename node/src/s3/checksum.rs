//! What a client says about a body's integrity, checked against what the body was:
//! `Content-MD5`, and an `x-amz-checksum-*` value sent as a header or as an `aws-chunked`
//! trailer. Both digests are computed while the body streams through (`files::write`).

use base64::Engine;

use crate::multi_md5::Md5;
use s3s::checksum::ChecksumHasher;
use s3s::dto::Checksum;
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders, s3_error};

/// The five `x-amz-checksum-*` algorithms, by their header suffix.
pub const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

/// A checksum a client announced: its algorithm and, when sent as a header, its value
/// (a trailer's value arrives after the body).
#[derive(Debug, PartialEq, Eq)]
pub struct Announced {
    pub algorithm: String,
    pub value: Option<String>,
}

/// The checksum announced by header values (in [`ALGORITHMS`] order) or by
/// `x-amz-trailer: x-amz-checksum-<algorithm>` (pure).
pub fn announced(values: [&Option<String>; 5], trailer: Option<&str>) -> Option<Announced> {
    if let Some((alg, v)) = ALGORITHMS.iter().zip(values).find(|(_, v)| v.is_some()) {
        return Some(Announced {
            algorithm: (*alg).to_string(),
            value: v.clone(),
        });
    }
    let alg = trailer?.trim().strip_prefix("x-amz-checksum-")?;
    Some(Announced {
        algorithm: alg.to_ascii_lowercase(),
        value: None,
    })
}

impl Announced {
    /// A hasher for the announced algorithm.
    pub fn hasher(&self) -> S3Result<ChecksumHasher> {
        let mut h = ChecksumHasher::default();
        match self.algorithm.as_str() {
            "crc32" => h.crc32 = Some(Default::default()),
            "crc32c" => h.crc32c = Some(Default::default()),
            "crc64nvme" => h.crc64nvme = Some(Default::default()),
            "sha1" => h.sha1 = Some(Default::default()),
            "sha256" => h.sha256 = Some(Default::default()),
            other => {
                return Err(s3_error!(
                    InvalidArgument,
                    "unknown checksum algorithm {other}"
                ));
            }
        }
        Ok(h)
    }

    /// Compares the computed checksum with the one sent (as a header, or in `trailers`);
    /// the (algorithm, value) to keep with the object, `None` when none was sent.
    pub fn verify(
        self,
        hasher: ChecksumHasher,
        trailers: Option<&TrailingHeaders>,
    ) -> S3Result<Option<(String, String)>> {
        let alg = self.algorithm;
        let computed = value_of(&hasher.finalize(), &alg);
        let sent = self.value.or_else(|| {
            trailers.and_then(|t| {
                t.read(|h| {
                    h.get(format!("x-amz-checksum-{alg}").as_str())
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                })
                .flatten()
            })
        });
        match (sent, computed) {
            (Some(s), Some(c)) if s == c => Ok(Some((alg, c))),
            (Some(_), _) => Err(S3Error::with_message(
                S3ErrorCode::BadDigest,
                format!("the {alg} checksum of the body does not match the one sent"),
            )),
            // Announced but never sent: nothing to check, nothing to keep.
            (None, _) => Ok(None),
        }
    }
}

/// The algorithm's value in a computed checksum.
fn value_of(sum: &Checksum, algorithm: &str) -> Option<String> {
    match algorithm {
        "crc32" => sum.checksum_crc32.clone(),
        "crc32c" => sum.checksum_crc32c.clone(),
        "crc64nvme" => sum.checksum_crc64nvme.clone(),
        "sha1" => sum.checksum_sha1.clone(),
        "sha256" => sum.checksum_sha256.clone(),
        _ => None,
    }
}

/// What a client said about one body's integrity.
#[derive(Default)]
pub struct Claims<'a> {
    pub content_md5: Option<&'a str>,
    pub checksum: Option<Announced>,
    pub trailers: Option<&'a TrailingHeaders>,
}

/// The body's MD5, checked against `Content-MD5` when the client sent one.
pub fn md5_checked(md5: Option<Md5>, content_md5: Option<&str>) -> S3Result<Vec<u8>> {
    let md5 = md5.map(|m| m.finalize().to_vec()).unwrap_or_default();
    if let Some(sent) = content_md5 {
        let want = base64::engine::general_purpose::STANDARD
            .decode(sent)
            .map_err(|_| s3_error!(InvalidDigest))?;
        if want != md5 {
            return Err(s3_error!(BadDigest));
        }
    }
    Ok(md5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_value_wins_over_a_trailer_announcement() {
        let v = Some("abc".to_string());
        let a = announced(
            [&None, &v, &None, &None, &None],
            Some("x-amz-checksum-crc32"),
        );
        assert_eq!(
            a,
            Some(Announced {
                algorithm: "crc32c".into(),
                value: v.clone()
            })
        );
        let t = announced([&None; 5], Some("x-amz-checksum-CRC64NVME"));
        assert_eq!(t.map(|a| a.algorithm).as_deref(), Some("crc64nvme"));
        assert_eq!(announced([&None; 5], Some("x-amz-meta-x")), None);
        assert_eq!(announced([&None; 5], None), None);
    }

    #[test]
    fn checksums_are_verified() {
        let sum = |alg: &str, data: &[u8]| {
            let a = Announced {
                algorithm: alg.into(),
                value: None,
            };
            let mut h = a.hasher().unwrap();
            h.update(data);
            value_of(&h.finalize(), alg).unwrap()
        };
        let good = sum("sha256", b"hello");
        let a = Announced {
            algorithm: "sha256".into(),
            value: Some(good.clone()),
        };
        let mut h = a.hasher().unwrap();
        h.update(b"hello");
        assert_eq!(a.verify(h, None).unwrap(), Some(("sha256".into(), good)));
        let a = Announced {
            algorithm: "crc32".into(),
            value: Some(sum("crc32", b"other")),
        };
        let mut h = a.hasher().unwrap();
        h.update(b"hello");
        assert_eq!(
            a.verify(h, None).unwrap_err().code(),
            &S3ErrorCode::BadDigest
        );
        let unknown = Announced {
            algorithm: "md4".into(),
            value: None,
        };
        assert!(unknown.hasher().is_err());
    }

    #[test]
    fn content_md5_is_checked() {
        let m = || {
            let mut m = Md5::new();
            m.update(b"hello");
            Some(m)
        };
        assert!(md5_checked(m(), Some("XUFAKrxLKna5cZ2REBfFkg==")).is_ok());
        assert_eq!(
            md5_checked(m(), Some("fXkwN6B2AYZXSwKC8vQ15w=="))
                .unwrap_err()
                .code(),
            &S3ErrorCode::BadDigest
        );
        assert_eq!(
            md5_checked(m(), Some("not base64!")).unwrap_err().code(),
            &S3ErrorCode::InvalidDigest
        );
    }
}
