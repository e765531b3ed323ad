//! Server ids and their natural order.
//!
//! Ids are names such as `head_server_1`. "Lowest id" means natural order, comparing runs of
//! digits as numbers, so `head_server_2` comes before `head_server_10`.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest id accepted; ids become znode names and metric label values.
pub const MAX_ID_LEN: usize = 64;

/// A validated server id (head, cluster server or monitor).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerId(String);

/// Why a string is not a valid server id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("may only contain letters, digits, '_', '-' and '.', found {0:?}")]
    BadChar(char),
    #[error("must not be '.' or '..'")]
    Dots,
}

impl ServerId {
    /// Validates `s` as a server id: 1–64 characters from `[A-Za-z0-9_.-]`.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(IdError::BadChar(c));
        }
        if s == "." || s == ".." {
            return Err(IdError::Dots);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ServerId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ServerId> for String {
    fn from(id: ServerId) -> String {
        id.0
    }
}

impl std::str::FromStr for ServerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Ord for ServerId {
    fn cmp(&self, other: &Self) -> Ordering {
        natural_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for ServerId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two strings in natural order: digit runs compare by value, the rest bytewise.
/// Ties between equal values with different leading zeros fall back to plain comparison, so
/// the order is total and consistent with equality.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let xn = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let yn = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let xd = trim_zeros(&x[..xn]);
                let yd = trim_zeros(&y[..yn]);
                let ord = xd.len().cmp(&yd.len()).then_with(|| xd.cmp(yd));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[xn..];
                y = &y[yn..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().take_while(|&&c| c == b'0').count();
    &digits[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ServerId {
        ServerId::new(s).unwrap()
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut ids = [
            id("head_server_10"),
            id("head_server_2"),
            id("head_server_1"),
            id("head_server_02"),
        ];
        ids.sort();
        let names: Vec<_> = ids.iter().map(|i| i.as_str()).collect();
        assert_eq!(
            names,
            [
                "head_server_1",
                "head_server_02",
                "head_server_2",
                "head_server_10"
            ]
        );
    }

    #[test]
    fn natural_order_handles_text_and_prefixes() {
        assert_eq!(natural_cmp("a", "b"), Ordering::Less);
        assert_eq!(natural_cmp("head", "head_1"), Ordering::Less);
        assert_eq!(natural_cmp("x9y", "x10a"), Ordering::Less);
        assert_eq!(natural_cmp("x10", "x10"), Ordering::Equal);
        assert_eq!(
            natural_cmp("n99999999999999999999999", "n100000000000000000000000"),
            Ordering::Less
        );
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(ServerId::new(""), Err(IdError::Empty));
        assert_eq!(ServerId::new("a/b"), Err(IdError::BadChar('/')));
        assert_eq!(ServerId::new(".."), Err(IdError::Dots));
        assert_eq!(ServerId::new("x".repeat(65)), Err(IdError::TooLong));
        assert!(ServerId::new("head-server.1_a").is_ok());
    }
}
