//! S3's conditions on writes and deletes (`If-Match`, `If-None-Match: *`, and a delete's
//! `x-amz-if-match-last-modified-time` and `x-amz-if-match-size`, or the `ETag`,
//! `LastModifiedTime` and `Size` of a DeleteObjects entry) as the namespace's
//! [`Precondition`]s. They are judged in the ZooKeeper transaction that makes the change
//! ([`crate::files::precondition`]), never only before it: two writers that both send
//! `If-Match` with the same ETag cannot both succeed.

use std::sync::Arc;

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::service::{etag_of, modified_secs, secs};
use crate::files::manifest::FileMeta;
use crate::files::precondition::{Precondition, Refusal, Test};

/// What the current object must be: each condition that is set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The ETag, without quotes.
    pub etag: Option<String>,
    /// The modification time, in whole seconds since the epoch.
    pub modified_secs: Option<i64>,
    pub size: Option<u64>,
}

impl Expected {
    /// Why `meta` fails these conditions, if it does (pure). The object's own values are not
    /// named: the caller may hold the write role only.
    pub fn check(&self, meta: &FileMeta) -> Result<(), String> {
        if let Some(etag) = &self.etag
            && *etag != etag_of(meta)
        {
            return Err(format!("the object's ETag is not \"{etag}\""));
        }
        if let Some(secs) = self.modified_secs
            && secs != modified_secs(meta)
        {
            return Err("the object's last modification time is not the one given".into());
        }
        if let Some(size) = self.size
            && size != meta.size
        {
            return Err(format!("the object is not {size} bytes"));
        }
        Ok(())
    }

    fn into_test(self) -> Test {
        Arc::new(move |meta: &FileMeta| self.check(meta))
    }
}

/// The precondition of a PutObject, CopyObject or CompleteMultipartUpload (pure).
/// `If-None-Match: *` creates only; `If-Match` overwrites only an object with that ETag (or
/// any object, for `*`), and a missing object answers `NoSuchKey`. Other combinations have no
/// meaning S3 defines for a write and are refused rather than ignored.
pub fn on_write(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Precondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(Precondition::Any),
        (None, Some(ETagCondition::Any)) => Ok(Precondition::Absent),
        (None, Some(ETagCondition::ETag(_))) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on a write takes only `*` (create only)"
        )),
        (Some(c), None) => Ok(Precondition::Present(
            Expected {
                etag: etag_of_condition(c),
                ..Expected::default()
            }
            .into_test(),
        )),
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "a write takes If-Match or If-None-Match, not both"
        )),
    }
}

/// The `If-Match` and `If-None-Match` headers of a request whose input type does not carry
/// them (CopyObject's destination conditions, newer than the protocol layer's model); a
/// value that is not an entity tag condition is refused.
pub fn from_headers(
    headers: &axum::http::HeaderMap,
) -> S3Result<(Option<ETagCondition>, Option<ETagCondition>)> {
    let parse = |name: axum::http::HeaderName| -> S3Result<Option<ETagCondition>> {
        match headers.get(&name) {
            None => Ok(None),
            Some(v) => ETagCondition::parse_http_header(v.as_bytes())
                .map(Some)
                .map_err(|_| s3_error!(InvalidArgument, "{name} is not an entity tag or `*`")),
        }
    };
    Ok((
        parse(axum::http::header::IF_MATCH)?,
        parse(axum::http::header::IF_NONE_MATCH)?,
    ))
}

/// The precondition of a DeleteObject, or of one DeleteObjects entry (pure). With an
/// ETag (`If-Match`, `*` for any), the object must exist (`NoSuchKey` otherwise); the size
/// and time conditions alone pass where there is no object, as S3 has them.
pub fn on_delete(
    etag: Option<&ETagCondition>,
    modified: Option<&Timestamp>,
    size: Option<i64>,
) -> S3Result<Precondition> {
    let size =
        match size {
            None => None,
            Some(n) => Some(u64::try_from(n).map_err(|_| {
                s3_error!(InvalidArgument, "x-amz-if-match-size must not be negative")
            })?),
        };
    let expected = Expected {
        etag: etag.and_then(etag_of_condition),
        modified_secs: modified.map(secs),
        size,
    };
    Ok(match etag {
        Some(_) => Precondition::Present(expected.into_test()),
        None if expected == Expected::default() => Precondition::Any,
        None => Precondition::AbsentOr(expected.into_test()),
    })
}

/// A failed precondition as S3 answers it: `NoSuchKey` where a condition needed an object,
/// `PreconditionFailed` otherwise.
pub fn refused(r: Refusal) -> S3Error {
    match r {
        Refusal::Missing => s3_error!(NoSuchKey),
        Refusal::Exists => s3_error!(PreconditionFailed),
        Refusal::Mismatch(why) => S3Error::with_message(S3ErrorCode::PreconditionFailed, why),
    }
}

/// The ETag a condition names; `None` for `*` (any object).
fn etag_of_condition(c: &ETagCondition) -> Option<String> {
    match c {
        ETagCondition::Any => None,
        ETagCondition::ETag(e) if e.value() == "*" => None,
        ETagCondition::ETag(e) => Some(e.value().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::precondition::{Refusal, judge};
    use s3s::dto::ETag;

    fn object(etag: &str, mtime_ms: u64, size: u64) -> FileMeta {
        FileMeta {
            file_id: "0".repeat(32),
            size,
            checksum: "crc32c:0".into(),
            chunk_size: 1 << 20,
            chunk_count: 1,
            mtime: mtime_ms,
            epoch: 1,
            chunks: Vec::new(),
            parts: 0,
            attrs: filegrid_proto::manifest::ObjectAttrs {
                etag: Some(etag.into()),
                ..Default::default()
            },
        }
    }

    fn tag(v: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(v.into()))
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64))
    }

    #[test]
    fn writes_without_conditions_or_create_only() {
        assert!(matches!(on_write(None, None), Ok(Precondition::Any)));
        assert!(matches!(
            on_write(None, Some(&ETagCondition::Any)),
            Ok(Precondition::Absent)
        ));
    }

    #[test]
    fn if_match_on_a_write_needs_that_etag() {
        let pre = on_write(Some(&tag("abc")), None).unwrap();
        assert_eq!(judge(&pre, Some(&object("abc", 0, 1))), Ok(()));
        assert!(matches!(
            judge(&pre, Some(&object("def", 0, 1))),
            Err(Refusal::Mismatch(_))
        ));
        assert_eq!(judge(&pre, None), Err(Refusal::Missing));
        let any = on_write(Some(&ETagCondition::Any), None).unwrap();
        assert_eq!(judge(&any, Some(&object("def", 0, 1))), Ok(()));
        assert_eq!(judge(&any, None), Err(Refusal::Missing));
    }

    #[test]
    fn write_conditions_without_a_meaning_are_refused() {
        assert!(on_write(None, Some(&tag("abc"))).is_err());
        assert!(on_write(Some(&tag("abc")), Some(&ETagCondition::Any)).is_err());
    }

    #[test]
    fn conditions_are_read_from_headers() {
        let mut h = axum::http::HeaderMap::new();
        assert!(matches!(from_headers(&h), Ok((None, None))));
        h.insert("if-none-match", "*".parse().unwrap());
        h.insert("if-match", "\"abc\"".parse().unwrap());
        let (m, n) = from_headers(&h).unwrap();
        assert_eq!(m.and_then(|c| etag_of_condition(&c)), Some("abc".into()));
        assert!(matches!(n, Some(ETagCondition::Any)));
        h.insert("if-match", "not a tag".parse().unwrap());
        assert!(from_headers(&h).is_err());
    }

    #[test]
    fn deletes_by_etag_need_the_object() {
        let pre = on_delete(Some(&tag("abc")), None, None).unwrap();
        assert_eq!(judge(&pre, Some(&object("abc", 0, 1))), Ok(()));
        assert!(judge(&pre, Some(&object("x", 0, 1))).is_err());
        assert_eq!(judge(&pre, None), Err(Refusal::Missing));
    }

    #[test]
    fn deletes_by_size_and_time_pass_where_nothing_is() {
        let pre = on_delete(None, Some(&at(1_700_000_000)), Some(5)).unwrap();
        assert_eq!(judge(&pre, None), Ok(()));
        assert_eq!(
            judge(&pre, Some(&object("e", 1_700_000_000_999, 5))),
            Ok(())
        );
        assert!(judge(&pre, Some(&object("e", 1_700_000_001_000, 5))).is_err());
        assert!(judge(&pre, Some(&object("e", 1_700_000_000_000, 6))).is_err());
        assert!(on_delete(None, None, Some(-1)).is_err());
        assert!(matches!(on_delete(None, None, None), Ok(Precondition::Any)));
    }

    #[test]
    fn a_refusal_does_not_name_the_objects_own_values() {
        let e = Expected {
            etag: Some("abc".into()),
            ..Expected::default()
        };
        let why = e.check(&object("secret-etag", 0, 1)).unwrap_err();
        assert!(!why.contains("secret-etag"), "{why}");
    }
}
