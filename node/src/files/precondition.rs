//! What a write or a delete requires of the file at its path (S3's `If-Match`,
//! `If-None-Match: *` and the size and time conditions of deletes), judged in the same
//! ZooKeeper transaction as the change: the file node is read with its version, the
//! condition is judged on what was read, and the change is made only if the node still has
//! that version. A write that slips in between fails the version check and the condition is
//! judged again on what it left, so a conditional change never lands on a file it was not
//! meant for.

use std::fmt;
use std::sync::Arc;

use super::manifest::FileMeta;

/// A test of the current file; `Err` says why it fails.
pub type Test = Arc<dyn Fn(&FileMeta) -> Result<(), String> + Send + Sync>;

/// What a change requires of the file at its path.
#[derive(Clone, Default)]
pub enum Precondition {
    /// Whatever is there, or nothing.
    #[default]
    Any,
    /// Only where no file is yet.
    Absent,
    /// Only over a file that exists and passes the test.
    Present(Test),
    /// Over a file that passes the test, or where there is none.
    AbsentOr(Test),
}

impl Precondition {
    /// Whether the change passes where no file is, so a create needs no read first.
    pub fn allows_absent(&self) -> bool {
        !matches!(self, Precondition::Present(_))
    }
}

impl fmt::Debug for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precondition::Any => "Any",
            Precondition::Absent => "Absent",
            Precondition::Present(_) => "Present(..)",
            Precondition::AbsentOr(_) => "AbsentOr(..)",
        })
    }
}

/// Why a precondition failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A file is there and the change wanted none.
    Exists,
    /// No file is there and the change wanted one.
    Missing,
    /// The file does not pass the test; why.
    Mismatch(String),
}

/// The precondition of the native API's `If-Match` and `If-None-Match` headers (RFC 9110),
/// whose entity tags are file ids (a file's `ETag` is `"<file_id>"`): each header is `*` or a
/// list of quoted tags; `If-Match` needs a file with one of its tags (any file for `*`),
/// `If-None-Match` a file with none of them (no file at all for `*`). A weak tag never
/// matches (`If-Match` compares strongly; FileGrid issues none). Pure.
pub fn from_http(
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> Result<Precondition, String> {
    let if_match = if_match.map(|v| tags("If-Match", v, false)).transpose()?;
    let if_none_match = if_none_match
        .map(|v| tags("If-None-Match", v, true))
        .transpose()?;
    Ok(match (if_match, if_none_match) {
        (None, None) => Precondition::Any,
        (None, Some(Tags::Any)) => Precondition::Absent,
        (Some(Tags::Any), Some(Tags::Any)) => Precondition::Present(Arc::new(|_: &FileMeta| {
            Err("If-Match: * and If-None-Match: * cannot both hold".to_string())
        })),
        (m, n) => {
            let present = m.is_some();
            let test: Test = Arc::new(move |meta: &FileMeta| {
                if let Some(Tags::List(list)) = &m
                    && !list.contains(&meta.file_id)
                {
                    return Err("the file's ETag is none of If-Match's".into());
                }
                if let Some(Tags::List(list)) = &n
                    && list.contains(&meta.file_id)
                {
                    return Err("the file's ETag is one of If-None-Match's".into());
                }
                Ok(())
            });
            if present {
                Precondition::Present(test)
            } else {
                Precondition::AbsentOr(test)
            }
        }
    })
}

/// The entity tags of a condition header: `*`, or the quoted tags of a list; weak tags are
/// kept only for `If-None-Match`, which compares weakly (RFC 9110), so under `If-Match` they
/// never match.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tags {
    Any,
    List(Vec<String>),
}

fn tags(name: &str, value: &str, keep_weak: bool) -> Result<Tags, String> {
    if value.trim() == "*" {
        return Ok(Tags::Any);
    }
    let mut list = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (weak, quoted) = match item.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        let tag = quoted
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| !t.contains('"'))
            .ok_or_else(|| format!("{name}: {item:?} is not a quoted entity tag or `*`"))?;
        if keep_weak || !weak {
            list.push(tag.to_string());
        }
    }
    if list.is_empty() && !value.contains("W/") {
        return Err(format!("{name} names no entity tag"));
    }
    Ok(Tags::List(list))
}

/// Judges `pre` on the file at the path, `None` where there is none (pure).
pub fn judge(pre: &Precondition, current: Option<&FileMeta>) -> Result<(), Refusal> {
    match (pre, current) {
        (Precondition::Any, _) => Ok(()),
        (Precondition::Absent, None) => Ok(()),
        (Precondition::Absent, Some(_)) => Err(Refusal::Exists),
        (Precondition::Present(_), None) => Err(Refusal::Missing),
        (Precondition::AbsentOr(_), None) => Ok(()),
        (Precondition::Present(test) | Precondition::AbsentOr(test), Some(meta)) => {
            test(meta).map_err(Refusal::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> FileMeta {
        FileMeta {
            file_id: "f".repeat(32),
            size,
            checksum: "crc32c:0".into(),
            chunk_size: 1 << 20,
            chunk_count: 1,
            mtime: 1,
            epoch: 1,
            chunks: Vec::new(),
            parts: 0,
            attrs: Default::default(),
        }
    }

    fn size_is(n: u64) -> Test {
        Arc::new(move |m: &FileMeta| {
            if m.size == n {
                Ok(())
            } else {
                Err(format!("size {} is not {n}", m.size))
            }
        })
    }

    #[test]
    fn any_passes_everything() {
        assert_eq!(judge(&Precondition::Any, None), Ok(()));
        assert_eq!(judge(&Precondition::Any, Some(&file(3))), Ok(()));
    }

    #[test]
    fn absent_wants_no_file() {
        assert_eq!(judge(&Precondition::Absent, None), Ok(()));
        assert_eq!(
            judge(&Precondition::Absent, Some(&file(3))),
            Err(Refusal::Exists)
        );
    }

    #[test]
    fn present_wants_a_file_that_passes() {
        let pre = Precondition::Present(size_is(3));
        assert_eq!(judge(&pre, Some(&file(3))), Ok(()));
        assert_eq!(judge(&pre, None), Err(Refusal::Missing));
        assert_eq!(
            judge(&pre, Some(&file(4))),
            Err(Refusal::Mismatch("size 4 is not 3".into()))
        );
    }

    #[test]
    fn absent_or_accepts_no_file() {
        let pre = Precondition::AbsentOr(size_is(3));
        assert_eq!(judge(&pre, None), Ok(()));
        assert_eq!(judge(&pre, Some(&file(3))), Ok(()));
        assert!(matches!(
            judge(&pre, Some(&file(5))),
            Err(Refusal::Mismatch(_))
        ));
    }

    fn with_id(id: &str) -> FileMeta {
        FileMeta {
            file_id: id.into(),
            ..file(1)
        }
    }

    #[test]
    fn http_conditions() {
        let pre = |m: Option<&str>, n: Option<&str>| from_http(m, n).unwrap();
        assert!(matches!(pre(None, None), Precondition::Any));
        assert!(matches!(pre(None, Some("*")), Precondition::Absent));
        let p = pre(Some("\"a\", \"b\""), None);
        assert_eq!(judge(&p, Some(&with_id("b"))), Ok(()));
        assert!(judge(&p, Some(&with_id("c"))).is_err());
        assert_eq!(judge(&p, None), Err(Refusal::Missing));
        let p = pre(Some("*"), None);
        assert_eq!(judge(&p, Some(&with_id("c"))), Ok(()));
        assert_eq!(judge(&p, None), Err(Refusal::Missing));
        let p = pre(None, Some("\"a\""));
        assert_eq!(judge(&p, None), Ok(()));
        assert_eq!(judge(&p, Some(&with_id("b"))), Ok(()));
        assert!(judge(&p, Some(&with_id("a"))).is_err());
        // A weak tag never matches under If-Match's strong comparison.
        let p = pre(Some("W/\"a\""), None);
        assert!(judge(&p, Some(&with_id("a"))).is_err());
        let p = pre(None, Some("W/\"a\""));
        assert!(judge(&p, Some(&with_id("a"))).is_err());
        let p = pre(Some("*"), Some("*"));
        assert!(judge(&p, Some(&with_id("a"))).is_err());
        assert!(judge(&p, None).is_err());
        for bad in ["a", "\"a", "\"a\"b\"", ",", ""] {
            assert!(from_http(Some(bad), None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_present_needs_a_file() {
        assert!(Precondition::Any.allows_absent());
        assert!(Precondition::Absent.allows_absent());
        assert!(Precondition::AbsentOr(size_is(1)).allows_absent());
        assert!(!Precondition::Present(size_is(1)).allows_absent());
    }
}
