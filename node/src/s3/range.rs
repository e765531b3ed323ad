//! `Range` headers that S3 ignores.
//!
//! S3 answers a `GetObject` or `HeadObject` whose `Range` is not one byte range it can read
//! (`bytes=5-1`, `bytes=abc`, several ranges) with the whole object, `200`, as HTTP allows a
//! server to; only a well-formed range that starts past the object's end is an error
//! (`416 InvalidRange`). The protocol layer (`s3s`) refuses such a header with `400
//! InvalidArgument` (or reads `bytes=-` as an empty suffix, `416`), and does so after the
//! signature check, which covers the header. So the gate lets the signed request through as it
//! came, and when the protocol layer granted it as a read of an object (the [`Granted`] mark,
//! set by [`super::auth::Roles`]) and then refused it, serves it again without the header on a
//! second protocol service that checks no signature: the first one already did.

use std::sync::{Arc, OnceLock};

use axum::http::{HeaderMap, Method, header};

/// The operation the access check let through, shared between the gate and the check
/// (placed in the request's extensions).
#[derive(Clone, Debug, Default)]
pub struct Granted(Arc<OnceLock<String>>);

impl Granted {
    /// Records that `op` passed the signature and access checks.
    pub fn record(&self, op: &str) {
        let _ = self.0.set(op.to_string());
    }

    /// Whether a read of one object passed both checks.
    pub fn object_read(&self) -> bool {
        matches!(
            self.0.get().map(String::as_str),
            Some("GetObject" | "HeadObject")
        )
    }
}

/// Whether `method` and `headers` make an object read whose `Range` S3 would ignore (pure):
/// a `GET` or `HEAD` whose `Range` headers are not exactly one well-formed byte range.
pub fn ignored(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let mut values = headers.get_all(header::RANGE).iter();
    match (values.next(), values.next()) {
        (None, _) => false,
        (Some(_), Some(_)) => true,
        (Some(v), None) => !well_formed(v.as_bytes()),
    }
}

/// Whether `value` is one byte range (`bytes=F-L` with `F <= L`, `bytes=F-` or `bytes=-N`),
/// whatever the size of its numbers (pure). The protocol layer refuses numbers past 2^63; such
/// a range is still well formed, and keeps that refusal rather than being ignored.
fn well_formed(value: &[u8]) -> bool {
    let Some(spec) = value.strip_prefix(b"bytes=") else {
        return false;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return false;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    match (first.is_empty(), last.is_empty()) {
        (true, true) => false,
        (true, false) => digits(last),
        (false, true) => digits(first),
        (false, false) => digits(first) && digits(last) && !greater(first, last),
    }
}

/// Whether the decimal number `a` is greater than `b` (pure; both all digits, any length).
fn greater(a: &[u8], b: &[u8]) -> bool {
    fn trim(s: &[u8]) -> &[u8] {
        let start = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
        &s[start..]
    }
    let (a, b) = (trim(a), trim(b));
    (a.len(), a) > (b.len(), b)
}

/// The headers of an object read served again without its `Range` (and without the
/// signature, already checked): what [`ignored`] approved goes, nothing else changes.
pub fn without_range(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.remove(header::RANGE);
    h.remove(header::AUTHORIZATION);
    h
}

/// The query of an object read served again: a presigned URL's signature parameters removed
/// (already checked), everything else (`response-*` overrides, `versionId`, `partNumber`)
/// kept in order.
pub fn unsigned_query(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| {
            let name = kv.split('=').next().unwrap_or("");
            !SIGNATURE_PARAMS
                .iter()
                .any(|p| name.eq_ignore_ascii_case(p))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Query parameters of presigned URLs (Signature V4 and V2).
const SIGNATURE_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_range(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::RANGE, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn ranges_s3_reads_are_kept() {
        for v in [
            "bytes=0-499",
            "bytes=5-5",
            "bytes=9500-",
            "bytes=-20",
            "bytes=007-10",
            // Past what the protocol layer takes, but well formed: its refusal stands.
            "bytes=0-18446744073709551616",
        ] {
            assert!(!ignored(&Method::GET, &with_range(&[v])), "{v}");
        }
        assert!(!ignored(&Method::GET, &HeaderMap::new()));
    }

    #[test]
    fn ranges_s3_ignores_are_told() {
        for v in [
            "bytes=5-1",
            "bytes=10-9",
            "bytes=abc",
            "bytes=",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=0-1,4-5",
            "bytes=1 -2",
            "items=0-1",
            "0-1",
            "bytes=18446744073709551617-18446744073709551616",
        ] {
            assert!(ignored(&Method::GET, &with_range(&[v])), "{v}");
            assert!(ignored(&Method::HEAD, &with_range(&[v])), "{v}");
            // What is ignored, the protocol layer refuses (400), or reads as an empty suffix
            // that no object satisfies (416, `bytes=-`): the first call does not serve it.
            assert!(
                matches!(
                    s3s::dto::Range::parse(v),
                    Err(_) | Ok(s3s::dto::Range::Suffix { length: 0 })
                ),
                "{v}"
            );
        }
        assert!(ignored(
            &Method::GET,
            &with_range(&["bytes=0-1", "bytes=2-3"])
        ));
        // Not a read: never served again.
        assert!(!ignored(&Method::PUT, &with_range(&["bytes=5-1"])));
        assert!(!ignored(&Method::DELETE, &with_range(&["bytes=5-1"])));
    }

    #[test]
    fn a_non_ascii_range_is_ignored() {
        let mut h = HeaderMap::new();
        h.insert(
            header::RANGE,
            HeaderValue::from_bytes(b"bytes=\xff-1").expect("header"),
        );
        assert!(ignored(&Method::GET, &h));
    }

    #[test]
    fn numbers_compare_by_value_whatever_their_length() {
        assert!(greater(b"10", b"9"));
        assert!(!greater(b"9", b"10"));
        assert!(!greater(b"0009", b"10"));
        assert!(!greater(b"5", b"5"));
        assert!(greater(b"18446744073709551617", b"18446744073709551616"));
    }

    #[test]
    fn only_the_signature_leaves_a_request_served_again() {
        let mut h = with_range(&["bytes=5-1"]);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 x"),
        );
        h.insert("x-amz-date", HeaderValue::from_static("20261207T000000Z"));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"e\""));
        let out = without_range(&h);
        assert!(out.get(header::RANGE).is_none() && out.get(header::AUTHORIZATION).is_none());
        assert_eq!(out[header::IF_MATCH], "\"e\"");
        assert_eq!(out["x-amz-date"], "20261207T000000Z");

        let q = "response-content-type=text%2Fplain&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a%2Fb&X-Amz-Date=1&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=ab&versionId=null";
        assert_eq!(
            unsigned_query(q),
            "response-content-type=text%2Fplain&versionId=null"
        );
        assert_eq!(unsigned_query("AWSAccessKeyId=k&Signature=s&Expires=1"), "");
    }
}
