//! Cutting one process off the network on loopback (root only): its new sockets are dropped
//! by a cgroup v2 match, and its existing ones (and its listening port) by port. All rules
//! live in one chain of this run, removed on heal or drop.

use std::path::PathBuf;
use std::process::Command;

/// Where cgroup v2 is mounted on hosts with both hierarchies, or alone.
const CGROUP2_ROOTS: [&str; 2] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

#[derive(Debug, thiserror::Error)]
pub enum CutError {
    #[error("no writable cgroup v2 hierarchy")]
    NoCgroup2,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{cmd}: {stderr}")]
    Command { cmd: String, stderr: String },
}

/// The cgroup v2 mount whose root we may create groups in.
fn cgroup2_root() -> Option<PathBuf> {
    CGROUP2_ROOTS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.controllers").exists())
}

/// Whether cuts can be made here: root, iptables and cgroup v2.
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && cgroup2_root().is_some()
        && Command::new("iptables")
            .args(["-L", "-n"])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// A process cut off; healed on [`Cut::heal`] or drop.
pub struct Cut {
    pid: i32,
    chain: String,
    group: PathBuf,
    root: PathBuf,
    healed: bool,
}

impl Cut {
    pub fn isolate(pid: i32, listen_port: u16) -> Result<Self, CutError> {
        let root = cgroup2_root().ok_or(CutError::NoCgroup2)?;
        let name = format!("filegrid-faults-{}-{pid}", std::process::id());
        let group = root.join(&name);
        std::fs::create_dir_all(&group)?;
        let mut cut = Self {
            pid,
            chain: format!("FGFAULTS{}", std::process::id()),
            group,
            root,
            healed: false,
        };
        iptables(&["-N", &cut.chain])?;
        for hook in ["INPUT", "OUTPUT"] {
            iptables(&["-I", hook, "1", "-j", &cut.chain])?;
        }
        // Sockets made from now on belong to the group and are dropped.
        std::fs::write(cut.group.join("cgroup.procs"), pid.to_string())?;
        iptables(&[
            "-A", &cut.chain, "-m", "cgroup", "--path", &name, "-j", "DROP",
        ])?;
        // Sockets it has already: its listening port and its connections' local ports.
        let mut ports = local_ports(pid)?;
        ports.push(listen_port);
        ports.sort_unstable();
        ports.dedup();
        for p in ports {
            let p = p.to_string();
            for dir in ["--sport", "--dport"] {
                iptables(&["-A", &cut.chain, "-p", "tcp", dir, &p, "-j", "DROP"])?;
            }
        }
        cut.healed = false;
        Ok(cut)
    }

    pub fn heal(mut self) -> Result<(), CutError> {
        self.undo()
    }

    fn undo(&mut self) -> Result<(), CutError> {
        if self.healed {
            return Ok(());
        }
        self.healed = true;
        let mut first_err = None;
        for hook in ["INPUT", "OUTPUT"] {
            if let Err(e) = iptables(&["-D", hook, "-j", &self.chain]) {
                first_err.get_or_insert(e);
            }
        }
        for args in [["-F", &self.chain], ["-X", &self.chain]] {
            if let Err(e) = iptables(&args) {
                first_err.get_or_insert(e);
            }
        }
        // Back to the root group (a process that died meanwhile has left it already).
        let _ = std::fs::write(self.root.join("cgroup.procs"), self.pid.to_string());
        if let Err(e) = std::fs::remove_dir(&self.group) {
            first_err.get_or_insert(e.into());
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        if let Err(e) = self.undo() {
            tracing::warn!("undoing a network cut: {e}");
        }
    }
}

fn iptables(args: &[&str]) -> Result<(), CutError> {
    let out = Command::new("iptables").arg("-w").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CutError::Command {
            cmd: format!("iptables {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The local TCP ports of a process's sockets, from `ss`.
fn local_ports(pid: i32) -> Result<Vec<u16>, CutError> {
    let out = Command::new("ss").args(["-Htanp"]).output()?;
    Ok(parse_ss(&String::from_utf8_lossy(&out.stdout), pid))
}

/// Local ports of `pid`'s sockets in `ss -Htanp` output. Pure.
pub fn parse_ss(text: &str, pid: i32) -> Vec<u16> {
    let tag = format!("pid={pid},");
    text.lines()
        .filter(|l| l.contains(&tag))
        .filter_map(|l| {
            let local = l.split_whitespace().nth(3)?;
            local.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_one_process_only() {
        let ss = "\
LISTEN 0      1024       127.0.0.1:40001      0.0.0.0:*     users:((\"filegrid-node\",pid=42,fd=9))
ESTAB  0      0          127.0.0.1:51234    127.0.0.1:2181  users:((\"filegrid-node\",pid=42,fd=11))
ESTAB  0      0          127.0.0.1:51299    127.0.0.1:2181  users:((\"filegrid-node\",pid=420,fd=11))
ESTAB  0      0      [::ffff:127.0.0.1]:2181 [::ffff:127.0.0.1]:51234 users:((\"java\",pid=7,fd=50))
";
        assert_eq!(parse_ss(ss, 42), vec![40001, 51234]);
        assert_eq!(parse_ss(ss, 7), vec![2181]);
        assert_eq!(parse_ss(ss, 1), Vec::<u16>::new());
    }
}
