//! File paths of the grid's namespace: `/`-separated segments, validated before anything else.

use std::fmt;

/// Longest path accepted, in bytes: room for a bucket and any S3 key (up to 1,024 bytes)
/// after escaping (see `s3::keys`).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest segment accepted, in bytes: a 1,024-byte S3 key segment escaped.
pub const MAX_SEGMENT_LEN: usize = 3200;
/// Deepest nesting accepted. It bounds the directories one commit may check or create in
/// its ZooKeeper transaction.
pub const MAX_DEPTH: usize = 128;

/// A validated file path such as `photos/2026/cat.jpg` (no leading or trailing slash).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilePath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("the path is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the path has an empty segment (\"//\" or a trailing '/')")]
    EmptySegment,
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("a path segment is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong,
    #[error("the path contains a control or reserved character")]
    BadChar,
}

impl FilePath {
    /// Validates `raw`; one leading `/` is ignored.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let p = raw.strip_prefix('/').unwrap_or(raw);
        if p.is_empty() {
            return Err(PathError::Empty);
        }
        if p.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let mut depth = 0;
        for seg in p.split('/') {
            depth += 1;
            if seg.is_empty() {
                return Err(PathError::EmptySegment);
            }
            if seg == "." || seg == ".." {
                return Err(PathError::DotSegment);
            }
            if seg.len() > MAX_SEGMENT_LEN {
                return Err(PathError::SegmentTooLong);
            }
            if seg.chars().any(bad_char) {
                return Err(PathError::BadChar);
            }
        }
        if depth > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        Ok(Self(p.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks a listing prefix (no leading `/`): its directory part must be a valid path and
    /// the partial last segment must hold only what a segment may, so a prefix that can name
    /// no file is refused instead of reaching ZooKeeper.
    pub fn check_prefix(prefix: &str) -> Result<(), PathError> {
        let (dir, tail) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        if !dir.is_empty() || prefix.starts_with('/') {
            Self::parse(dir)?;
        }
        if tail.len() > MAX_SEGMENT_LEN {
            return Err(PathError::SegmentTooLong);
        }
        if tail.chars().any(bad_char) {
            return Err(PathError::BadChar);
        }
        Ok(())
    }

    /// The parent directories, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> Vec<&str> {
        self.0
            .match_indices('/')
            .map(|(i, _)| &self.0[..i])
            .collect()
    }
}

/// Characters ZooKeeper refuses in node names; they are never useful in file names.
fn bad_char(c: char) -> bool {
    c.is_control()
        || ('\u{e000}'..='\u{f8ff}').contains(&c)
        || ('\u{fff0}'..='\u{ffff}').contains(&c)
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        let p = FilePath::parse("/photos/2026/cat.jpg").unwrap();
        assert_eq!(p.as_str(), "photos/2026/cat.jpg");
        assert_eq!(p.ancestors(), ["photos", "photos/2026"]);
        assert!(FilePath::parse("a b/ü.txt").is_ok());
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(FilePath::parse(""), Err(PathError::Empty));
        assert_eq!(FilePath::parse("/"), Err(PathError::Empty));
        assert_eq!(FilePath::parse("a//b"), Err(PathError::EmptySegment));
        assert_eq!(FilePath::parse("a/"), Err(PathError::EmptySegment));
        assert_eq!(FilePath::parse("a/../b"), Err(PathError::DotSegment));
        assert_eq!(FilePath::parse("./a"), Err(PathError::DotSegment));
        assert_eq!(FilePath::parse("a\nb"), Err(PathError::BadChar));
        assert_eq!(
            FilePath::parse(&"x".repeat(MAX_SEGMENT_LEN + 1)),
            Err(PathError::SegmentTooLong)
        );
        assert_eq!(
            FilePath::parse(&"ab/".repeat(1400)),
            Err(PathError::TooLong)
        );
        assert_eq!(
            FilePath::parse("a/".repeat(MAX_DEPTH + 1).trim_end_matches('/')),
            Err(PathError::TooDeep)
        );
    }

    #[test]
    fn listing_prefixes() {
        for ok in ["", "a", "a/", "a/b", "photos/20", "a/..x", "a/."] {
            assert_eq!(FilePath::check_prefix(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(FilePath::check_prefix("a//b"), Err(PathError::EmptySegment));
        assert_eq!(FilePath::check_prefix("a/../b"), Err(PathError::DotSegment));
        assert_eq!(FilePath::check_prefix("/a"), Err(PathError::Empty));
        assert_eq!(FilePath::check_prefix("a/b\u{0}"), Err(PathError::BadChar));
        assert_eq!(
            FilePath::check_prefix(&"x".repeat(MAX_SEGMENT_LEN + 1)),
            Err(PathError::SegmentTooLong)
        );
    }
}
