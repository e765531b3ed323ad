//! The `Range` header of file and chunk reads: one byte range per request.
//!
//! The syntax is checked by `http-range-header` (strict RFC 9110 grammar, bounded digit
//! runs); resolving the range against the size is done here, because RFC 9110 clamps a
//! suffix longer than the representation to all of it, which that crate refuses.

use std::ops::Range;

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};

/// Why a `Range` header cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Not a single `bytes=` range in one of the forms `a-b`, `a-`, `-n`.
    Malformed(String),
    /// Well-formed, but no byte of it lies inside the representation.
    Unsatisfiable,
}

/// Resolves `header` against a representation of `len` bytes into a half-open byte range.
pub fn parse(header: &str, len: u64) -> Result<Range<u64>, RangeError> {
    let malformed = || RangeError::Malformed(format!("unsupported Range header {header:?}"));
    let parsed = match http_range_header::parse_range_header(header.trim()) {
        Ok(p) => p,
        // `-0` asks for no byte at all: well-formed, nothing to serve.
        Err(RangeUnsatisfiableError::ZeroSuffix) => return Err(RangeError::Unsatisfiable),
        Err(_) => return Err(malformed()),
    };
    let [one] = parsed.ranges.as_slice() else {
        return Err(RangeError::Malformed(
            "only a single byte range per request is supported".into(),
        ));
    };
    match (&one.start, &one.end) {
        // "-n": the last n bytes, all of them when n exceeds the length.
        (StartPosition::FromLast(n), _) => {
            if *n == 0 || len == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            Ok(len - (*n).min(len)..len)
        }
        (StartPosition::Index(start), EndPosition::Index(last)) if last < start => Err(malformed()),
        // An end whose following byte cannot be counted (2^64 - 1) names a range no
        // representation can have: refused, never wrapped or clamped.
        (StartPosition::Index(_), EndPosition::Index(u64::MAX)) => Err(RangeError::Unsatisfiable),
        (StartPosition::Index(start), end) => {
            if *start >= len {
                return Err(RangeError::Unsatisfiable);
            }
            let last = match end {
                EndPosition::Index(last) => (*last).min(len - 1),
                EndPosition::LastByte => len - 1,
            };
            Ok(*start..last + 1)
        }
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
        assert_eq!(parse(" bytes=1-2 ", 10), Ok(1..3));
    }

    #[test]
    fn an_end_that_cannot_be_counted_past_is_unsatisfiable() {
        assert_eq!(
            parse("bytes=0-18446744073709551615", 10),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(parse("bytes=0-18446744073709551614", 10), Ok(0..10));
        assert!(matches!(
            parse("bytes=0-99999999999999999999999", 10),
            Err(RangeError::Malformed(_))
        ));
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
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,4-5",
            "bytes=1-2-3",
        ] {
            assert!(
                matches!(parse(bad, 10), Err(RangeError::Malformed(_))),
                "{bad:?} accepted"
            );
        }
    }
}
