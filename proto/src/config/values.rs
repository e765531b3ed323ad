//! Parsers for setting values. The node uses each both for flags/environment and for the TOML
//! file, so a value means the same wherever it comes from; the error texts end up in the node's
//! start-up errors. Addresses are not here: resolving a host name is I/O, which the node does.

use std::path::PathBuf;
use std::time::Duration;

use crate::ids::ServerId;

/// A duration such as `500ms`, `6s`, `2m`; zero is rejected.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write durations like 500ms, 6s or 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// A duration such as `500ms` or `1s`; zero is allowed.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write durations like 500ms, 6s or 2m)"))
}

/// A size such as `8MiB`, `100GiB` or plain bytes; zero is rejected.
pub fn positive_size(s: &str) -> Result<u64, String> {
    let b = size(s)?;
    if b == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(b)
}

/// A size such as `256MiB` or plain bytes, zero included (for settings where 0 turns
/// something off).
pub fn size(s: &str) -> Result<u64, String> {
    let b: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| format!("{e} (write sizes like 8MiB or 100GiB)"))?;
    Ok(b.as_u64())
}

/// A ZooKeeper connect string: `host:port[,host:port...]`, without a chroot suffix.
pub fn zk_hosts(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("must name at least one host:port".into());
    }
    if s.contains('/') {
        return Err("must not contain a path; set zk_root instead".into());
    }
    for part in s.split(',') {
        let part = part.trim();
        let (host, port) = part
            .rsplit_once(':')
            .ok_or_else(|| format!("{part:?} is not host:port"))?;
        if host.is_empty() {
            return Err(format!("{part:?} has no host"));
        }
        port.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{part:?} has no valid port"))?;
    }
    Ok(s.to_string())
}

/// A ZooKeeper root path: absolute, no trailing slash, no empty or dot segments.
pub fn zk_root(s: &str) -> Result<String, String> {
    let s = s.trim();
    if !s.starts_with('/') || s.len() < 2 {
        return Err("must be an absolute znode path such as /distributed_file_grid".into());
    }
    if s.ends_with('/') {
        return Err("must not end with '/'".into());
    }
    if s[1..]
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg == "zookeeper")
    {
        return Err("has an empty, '.', '..' or reserved 'zookeeper' segment".into());
    }
    Ok(s.to_string())
}

/// A server or monitor id (see [`ServerId`]).
pub fn server_id(s: &str) -> Result<ServerId, String> {
    ServerId::new(s.trim()).map_err(|e| e.to_string())
}

/// A host name or IP address other processes use to reach this one.
pub fn host(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains('/') {
        return Err(format!("{s:?} is not a host name or IP address"));
    }
    Ok(s.to_string())
}

/// `true`/`false`, also `1`/`0`, `yes`/`no`, `on`/`off`.
pub fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// A whole number in `min..=max`.
pub fn bounded_u32(s: &str, min: u32, max: u32) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}, got {n}"));
    }
    Ok(n)
}

/// Failed checks in a row, 1 to 1000.
pub fn failure_threshold(s: &str) -> Result<u32, String> {
    bounded_u32(s, 1, 1000)
}

/// A replica count, 1 to 5.
pub fn replication_factor(s: &str) -> Result<u32, String> {
    bounded_u32(s, 1, 5)
}

/// A failure zone label.
pub fn zone(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty()
        || s.len() > 63
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "{s:?} is not a zone label ([A-Za-z0-9_.-], 1-63 characters)"
        ));
    }
    Ok(s.to_string())
}

/// How a process writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// The name used in flags and files.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// A directory path; only an empty one is refused here (whether it is usable is checked at start).
pub fn data_dir(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(PathBuf::from(s))
    }
}

/// A file path; only an empty one is refused here (the file is read at start).
pub fn path(s: &str) -> Result<PathBuf, String> {
    data_dir(s)
}

/// Connections served at once per listener, 1 to 1,000,000.
pub fn max_connections(s: &str) -> Result<u32, String> {
    bounded_u32(s, 1, 1_000_000)
}

/// Uploads in progress at once per head, 1 to 100,000.
pub fn max_uploads(s: &str) -> Result<u32, String> {
    bounded_u32(s, 1, 100_000)
}

/// Largest request head: a size from 8KiB (the HTTP parser's smallest buffer) to 16MiB.
pub fn header_bytes(s: &str) -> Result<u64, String> {
    let n = positive_size(s)?;
    if !(8 << 10..=16 << 20).contains(&n) {
        return Err(format!("must be between 8KiB and 16MiB, got {n} bytes"));
    }
    Ok(n)
}

/// Any text: addresses, which the node resolves itself.
pub fn text(s: &str) -> Result<String, String> {
    Ok(s.to_string())
}

pub fn log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is not one of: text, json")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(positive_duration("6s"), Ok(Duration::from_secs(6)));
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(
            positive_duration("0s")
                .unwrap_err()
                .contains("greater than zero")
        );
        assert!(positive_duration("six").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(positive_size("8MiB"), Ok(8 << 20));
        assert_eq!(positive_size("4096"), Ok(4096));
        assert!(positive_size("0").is_err());
        assert!(positive_size("lots").is_err());
    }

    #[test]
    fn zk_strings() {
        assert!(zk_hosts("a:2181,b:2181").is_ok());
        assert!(zk_hosts("a").is_err());
        assert!(zk_hosts("a:0").is_err());
        assert!(zk_hosts("a:2181/chroot").is_err());
        assert!(zk_root("/filegrid/ns/name").is_ok());
        assert!(zk_root("filegrid").is_err());
        assert!(zk_root("/a//b").is_err());
        assert!(zk_root("/a/").is_err());
    }
}
