//! How S3 buckets and keys map onto the native namespace (pure; see `docs/s3.md`).
//!
//! A bucket is a top-level directory; a key's `/`-separated segments are the directories and
//! the file name below it. A segment that the native API accepts as it is stays as it is, so
//! `photos/2026/cat.jpg` in bucket `media` is the native file `media/photos/2026/cat.jpg`.
//! Any other segment is escaped: `%` followed by the segment percent-encoded. That covers
//! the empty segments of `a//b` and of a trailing `/` (a folder marker `photos/` is the
//! native file `photos/%`), `.` and `..` (`%%2E`, `%%2E%2E`), control characters, and names
//! that start with `%` themselves. The mapping is one-to-one, so every native path under a
//! bucket that it produces maps back to exactly one key.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::files::path::{FilePath, MAX_DEPTH, MAX_SEGMENT_LEN};

/// Longest key S3 accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// What an escaped segment encodes: controls, `%`, `/`, `.` (so `.` and `..` never appear
/// bare), and the code points the native API refuses (encoded through their UTF-8 bytes).
const ESCAPE: &AsciiSet = &CONTROLS.add(b'%').add(b'/').add(b'.');

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is empty")]
    Empty,
    #[error("the key is longer than {MAX_KEY_LEN} bytes")]
    TooLong,
    #[error("the key has more than {} levels", MAX_DEPTH - 1)]
    TooDeep,
}

/// Whether `name` is a bucket name FileGrid accepts: S3's rules (3 to 63 characters of
/// lower-case letters, digits, `.` and `-`, starting and ending with a letter or digit, no
/// `..`, not an IP address).
pub fn valid_bucket(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// One key segment as a native path segment.
fn encode_segment(seg: &str) -> String {
    if native_segment(seg) {
        seg.to_string()
    } else {
        let mut out = String::from("%");
        for c in seg.chars() {
            if refused_char(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.extend(utf8_percent_encode(c.encode_utf8(&mut [0u8; 4]), ESCAPE));
            }
        }
        out
    }
}

/// A segment the native API takes as it is, and that cannot be mistaken for an escape.
fn native_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && !seg.starts_with('%')
        && seg.len() <= MAX_SEGMENT_LEN
        && !seg.chars().any(refused_char)
}

/// Code points the native path refuses (see `files::path`).
fn refused_char(c: char) -> bool {
    c.is_control()
        || ('\u{e000}'..='\u{f8ff}').contains(&c)
        || ('\u{fff0}'..='\u{ffff}').contains(&c)
}

/// The native path of `key` in `bucket`.
pub fn to_path(bucket: &str, key: &str) -> Result<FilePath, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    let segments: Vec<&str> = key.split('/').collect();
    if segments.len() + 1 > MAX_DEPTH {
        return Err(KeyError::TooDeep);
    }
    let mut path = String::with_capacity(bucket.len() + key.len() + 8);
    path.push_str(bucket);
    for seg in segments {
        path.push('/');
        path.push_str(&encode_segment(seg));
    }
    // Every segment is now one the native path takes; a failure here is a bug, reported
    // as a key that cannot be stored rather than a crash.
    FilePath::parse(&path).map_err(|_| KeyError::TooLong)
}

/// One native segment (below a bucket) as the key segment it stands for; `None` for a
/// segment no key maps to (a malformed escape).
pub fn decode_segment(seg: &str) -> Option<String> {
    match seg.strip_prefix('%') {
        None => Some(seg.to_string()),
        Some(escaped) => {
            let decoded = percent_decode_str(escaped).decode_utf8().ok()?.into_owned();
            // Only the canonical escape of a segment decodes, so the mapping stays one-to-one.
            (encode_segment(&decoded) == seg).then_some(decoded)
        }
    }
}

/// The key a native path below a bucket stands for (`rest` is the path after `bucket/`).
pub fn to_key(rest: &str) -> Option<String> {
    let mut key = String::with_capacity(rest.len());
    for (i, seg) in rest.split('/').enumerate() {
        if i > 0 {
            key.push('/');
        }
        key.push_str(&decode_segment(seg)?);
    }
    Some(key)
}

/// The native directory (below the bucket) where every key starting with `prefix` lives,
/// and the part of the prefix that the next segment must start with. `a/b/c` gives
/// (`a/b`, `c`); `a/` gives (`a`, ``).
pub fn split_prefix(prefix: &str) -> (Vec<String>, &str) {
    match prefix.rfind('/') {
        None => (Vec::new(), prefix),
        Some(i) => (
            prefix[..i].split('/').map(encode_segment).collect(),
            &prefix[i + 1..],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys_are_native_paths() {
        let p = to_path("media", "photos/2026/cat.jpg").unwrap();
        assert_eq!(p.as_str(), "media/photos/2026/cat.jpg");
        assert_eq!(
            to_key("photos/2026/cat.jpg").unwrap(),
            "photos/2026/cat.jpg"
        );
    }

    #[test]
    fn odd_keys_escape_and_round_trip() {
        let cases = [
            ("a//b", "b/a/%/b"),
            ("photos/", "b/photos/%"),
            ("/lead", "b/%/lead"),
            ("x/../y", "b/x/%%2E%2E/y"),
            ("./z", "b/%%2E/z"),
            ("%41", "b/%%2541"),
            ("tab\there", "b/%tab%09here"),
            ("pua\u{e000}", "b/%pua%EE%80%80"),
            ("..", "b/%%2E%2E"),
            ("a.b/c.d", "b/a.b/c.d"),
        ];
        for (key, native) in cases {
            let p = to_path("b", key).unwrap();
            assert_eq!(p.as_str(), native, "key {key:?}");
            let back = to_key(p.as_str().strip_prefix("b/").unwrap()).unwrap();
            assert_eq!(back, key);
        }
    }

    #[test]
    fn malformed_or_non_canonical_escapes_map_to_no_key() {
        assert_eq!(decode_segment("%zz"), None);
        // `%61` would decode to `a`, whose canonical form is the plain `a`.
        assert_eq!(decode_segment("%61"), None);
        assert_eq!(decode_segment("%FF"), None);
        assert_eq!(decode_segment("%").as_deref(), Some(""));
    }

    #[test]
    fn limits() {
        assert_eq!(to_path("b", ""), Err(KeyError::Empty));
        assert_eq!(to_path("b", &"k".repeat(1025)), Err(KeyError::TooLong));
        assert!(to_path("b", &"k".repeat(1024)).is_ok());
        assert!(to_path("b", &"/".repeat(200)).is_err());
        // The longest escaped key still fits the native limits.
        assert!(to_path("b", &"\u{1}".repeat(1024)).is_ok());
        assert!(to_path("b", &"%".repeat(1024)).is_ok());
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-bucket.2026", "a1b"] {
            assert!(valid_bucket(ok), "{ok}");
        }
        for bad in [
            "ab",
            "Abc",
            "a..b",
            "-ab",
            "ab-",
            "192.168.1.1",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(!valid_bucket(bad), "{bad}");
        }
    }

    #[test]
    fn prefixes_split_at_the_last_slash() {
        assert_eq!(split_prefix("a/b/c"), (vec!["a".into(), "b".into()], "c"));
        assert_eq!(split_prefix("a/"), (vec!["a".into()], ""));
        assert_eq!(split_prefix("abc"), (vec![], "abc"));
        assert_eq!(split_prefix("a//"), (vec!["a".into(), "%".into()], ""));
    }
}
