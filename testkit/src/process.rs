//! Child processes with logs in a directory, signals, and clean-up that never leaves a stopped
//! or running process behind.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that nothing listens on, for a child process to listen on.
///
/// Picked outside the kernel's ephemeral range (`ip_local_port_range`). A port found by binding
/// port 0 comes from that range, which is also where every outgoing connection takes its local
/// port: on a loaded machine another test's connection can take it before the child binds it,
/// and the child fails with "Address already in use". Outside the range only a listener can
/// take it. The start is random so that concurrent test processes seldom try the same port, and
/// a port this process has handed out is not handed out again.
pub fn free_port() -> u16 {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| parse_port_range(&s));
    if let Some(range) = ephemeral.and_then(listen_port_range) {
        let span = u32::from(*range.end() - *range.start()) + 1;
        let start = random_u32() % span;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..span {
            let port = *range.start() + ((start + i) % span) as u16;
            if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Ports [`free_port`] has handed out in this process.
static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The two numbers of `/proc/sys/net/ipv4/ip_local_port_range`.
fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// Where to pick listening ports given the ephemeral range: the unprivileged ports below it
/// (at most its lower half), else those above it; `None` when neither holds 1,000 ports.
fn listen_port_range((lo, hi): (u16, u16)) -> Option<std::ops::RangeInclusive<u16>> {
    const MIN_PORTS: u16 = 1000;
    let below_start = (lo / 2).max(1024);
    if lo > below_start && lo - below_start >= MIN_PORTS {
        return Some(below_start..=lo - 1);
    }
    if hi < u16::MAX && u16::MAX - hi >= MIN_PORTS {
        return Some(hi + 1..=u16::MAX);
    }
    None
}

/// A random number from the standard library's per-process random hash keys.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// A running process whose stdout and stderr go to `<dir>/<name>.log`.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Self {
        Self::spawn_with(name, program, args, dir, &[], Stdio::null())
    }

    /// Spawns with extra environment variables and a given stdin.
    pub fn spawn_with(
        name: &str,
        program: &Path,
        args: &[String],
        dir: &Path,
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("dup log: {e}"));
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(stdin)
            .stdout(out)
            .stderr(err)
            .env("RUST_LOG", "info,filegrid_node=debug,zookeeper_client=warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Self {
            name: name.into(),
            child,
            log,
        }
    }

    /// Wraps an already spawned child (e.g. with piped stdin).
    pub fn adopt(name: &str, child: Child, log: PathBuf) -> Self {
        Self {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety implications.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Resident memory in bytes, from /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("----- last lines of {} -----", self.name);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        self.resume();
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_range_file_parses_and_bad_text_does_not() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 65535"), Some((1024, 65535)));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("32768"), None);
        assert_eq!(parse_port_range("a b"), None);
        assert_eq!(parse_port_range("1 2 3"), None);
    }

    #[test]
    fn listening_ports_come_from_outside_the_ephemeral_range() {
        assert_eq!(listen_port_range((32768, 60999)), Some(16384..=32767));
        assert_eq!(listen_port_range((10000, 60999)), Some(5000..=9999));
        // Too few ports below: above it.
        assert_eq!(listen_port_range((1500, 60000)), Some(60001..=65535));
        // No room on either side.
        assert_eq!(listen_port_range((1024, 65000)), None);
    }

    #[test]
    fn handed_out_ports_are_outside_the_ephemeral_range_and_never_repeat() {
        let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| parse_port_range(&s));
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        if let Some((lo, hi)) = ephemeral
            && listen_port_range((lo, hi)).is_some()
        {
            assert!(ports.iter().all(|p| !(lo..=hi).contains(p)), "{ports:?}");
        }
    }
}
