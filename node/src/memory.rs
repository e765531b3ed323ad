//! How much memory this process may use: the smaller of its cgroup's limit (v2
//! `memory.max`, or v1 `memory.limit_in_bytes`, as containers and Kubernetes pods set them)
//! and the machine's memory. Sizes defaults such as the head's read cache.

use std::path::Path;

/// Where cgroup v2 mounts the process's own group in a container.
const CGROUP_V2: &str = "/sys/fs/cgroup/memory.max";
/// The same under cgroup v1.
const CGROUP_V1: &str = "/sys/fs/cgroup/memory/memory.limit_in_bytes";

/// Bytes of memory this process may use, or `None` when nothing can be read.
pub fn limit() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(Path::new(p)).ok();
    let total = read("/proc/meminfo").as_deref().and_then(mem_total);
    let cgroup = read(CGROUP_V2)
        .or_else(|| read(CGROUP_V1))
        .as_deref()
        .and_then(cgroup_limit);
    smaller(total, cgroup)
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// A cgroup's limit: a number of bytes, or `max` (none). cgroup v1 writes "no limit" as a
/// number near `u64::MAX`, which is then larger than any machine and loses to `MemTotal`.
fn cgroup_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok().filter(|&n| n > 0)
}

fn smaller(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let meminfo = "MemTotal:       24683772 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total(meminfo), Some(24683772 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total("MemTotal: 18446744073709551615 kB\n"), None);
    }

    #[test]
    fn cgroup_limits_of_both_versions() {
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("2147483648\n"), Some(2 << 30));
        assert_eq!(
            cgroup_limit("9223372036854771712\n"),
            Some(9223372036854771712)
        );
        assert_eq!(cgroup_limit("0"), None);
        assert_eq!(cgroup_limit("garbage"), None);
    }

    #[test]
    fn the_smaller_limit_wins() {
        assert_eq!(smaller(Some(8), Some(2)), Some(2));
        assert_eq!(smaller(Some(8), None), Some(8));
        assert_eq!(smaller(None, Some(2)), Some(2));
        assert_eq!(smaller(None, None), None);
    }
}
