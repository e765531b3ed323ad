//! Parsing of the HTTP `Range` header for chunk reads (one byte range per request).

use std::ops::Range;

/// Why a `Range` header cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Not a single `bytes=` range in one of the forms `a-b`, `a-`, `-n`.
    Malformed(String),
    /// Well-formed, but no byte of it lies inside the chunk.
    Unsatisfiable,
}

/// Parses `header` for a chunk of `len` bytes into a half-open byte range.
pub fn parse(header: &str, len: u64) -> Result<Range<u64>, RangeError> {
    let malformed = || RangeError::Malformed(format!("unsupported Range header {header:?}"));
    let spec = header.trim().strip_prefix("bytes=").ok_or_else(malformed)?;
    if spec.contains(',') {
        return Err(RangeError::Malformed(
            "only a single byte range per request is supported".into(),
        ));
    }
    let (first, last) = spec.trim().split_once('-').ok_or_else(malformed)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| malformed());
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // "-n": the last n bytes.
        (true, false) => {
            let n = number(last)?;
            if n == 0 || len == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            Ok(len - n.min(len)..len)
        }
        // "a-": from a to the end.
        (false, true) => {
            let start = number(first)?;
            if start >= len {
                return Err(RangeError::Unsatisfiable);
            }
            Ok(start..len)
        }
        // "a-b": inclusive, b clamped to the end.
        (false, false) => {
            let (start, end) = (number(first)?, number(last)?);
            if end < start {
                return Err(malformed());
            }
            if start >= len {
                return Err(RangeError::Unsatisfiable);
            }
            Ok(start..end.min(len - 1) + 1)
        }
        (true, true) => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("bytes=0-0", 10), Ok(0..1));
        assert_eq!(parse("bytes=2-5", 10), Ok(2..6));
        assert_eq!(parse("bytes=2-99", 10), Ok(2..10));
        assert_eq!(parse("bytes=7-", 10), Ok(7..10));
        assert_eq!(parse("bytes=-3", 10), Ok(7..10));
        assert_eq!(parse("bytes=-30", 10), Ok(0..10));
    }

    #[test]
    fn errors() {
        assert_eq!(parse("bytes=10-", 10), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=-0", 10), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=0-", 0), Err(RangeError::Unsatisfiable));
        for bad in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=5-2",
            "items=0-1",
            "bytes=a-b",
            "bytes=0-1,3-4",
        ] {
            assert!(
                matches!(parse(bad, 10), Err(RangeError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
