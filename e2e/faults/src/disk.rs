//! A full disk, for real: one cluster server's data dir is a small tmpfs (root only), and the
//! fault fills it with a ballast file to the last byte, then frees it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory, unmounted on drop.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `dir`, keeping what `dir`
    /// held (copied into the tmpfs).
    pub fn mount_over(dir: &Path, size: &str) -> std::io::Result<Self> {
        let aside = dir.with_extension("before-tmpfs");
        std::fs::rename(dir, &aside)?;
        std::fs::create_dir_all(dir)?;
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir))?;
        let mounted = Self { dir: dir.into() };
        // `cp -a aside/. dir` keeps modes and times of whatever the server made.
        run(Command::new("cp").arg("-a").arg(aside.join(".")).arg(dir))?;
        std::fs::remove_dir_all(&aside)?;
        Ok(mounted)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server may still hold files open while it is being stopped.
        if let Err(e) = run(Command::new("umount").arg("-l").arg(&self.dir)) {
            tracing::warn!(dir = %self.dir.display(), "unmounting the tmpfs: {e}");
        }
    }
}

fn run(cmd: &mut Command) -> std::io::Result<()> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A file that takes all the free space of a directory's file system.
pub struct Ballast {
    path: PathBuf,
}

impl Ballast {
    pub fn fill(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("faults-ballast");
        let mut f = std::fs::File::create(&path)?;
        let ballast = Self { path };
        let block = vec![0u8; 1 << 20];
        // Big blocks until the first refusal, then single pages for what is left.
        for size in [block.len(), 4096] {
            loop {
                match f.write_all(&block[..size]) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(ballast)
    }

    pub fn free(self) -> std::io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}
