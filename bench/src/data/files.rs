//! Local files of the benchmark: the random source file, evicting files from the page cache so
//! that both FileGrid and the baselines read from disk, and the baseline commands.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::error::BenchError;

/// Writes `size` random bytes to `path` (fsynced, so evicting it later leaves nothing dirty)
/// and returns their CRC32C.
pub fn write_random(path: &Path, size: u64) -> Result<u32, BenchError> {
    let io = |e| BenchError::Io(format!("writing {}", path.display()), e);
    let mut file = std::fs::File::create(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut rng = rand::rng();
    let mut crc = 0u32;
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        file.write_all(&buf[..n]).map_err(io)?;
        left -= n as u64;
    }
    file.sync_all().map_err(io)?;
    Ok(crc)
}

/// Drops the cached pages of `path` (`posix_fadvise(DONTNEED)`), so the next read comes
/// from disk. Unlike `drop_caches` this touches only the benchmark's own files, not the
/// cache of other work on the machine. Dirty pages are not dropped: fsync first.
pub fn evict(path: &Path) -> Result<(), BenchError> {
    let file = std::fs::File::open(path)
        .map_err(|e| BenchError::Io(format!("opening {}", path.display()), e))?;
    // SAFETY: posix_fadvise only reads its arguments; the fd is open for the whole call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(BenchError::Io(
            format!("posix_fadvise on {}", path.display()),
            std::io::Error::from_raw_os_error(rc),
        ));
    }
    Ok(())
}

/// Evicts every regular file under `dir`.
pub fn evict_tree(dir: &Path) -> Result<(), BenchError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| BenchError::Io(format!("listing {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            evict_tree(&entry.path())?;
        } else if kind.is_file() {
            // A file removed meanwhile (a temp file renamed, an orphan collected) is fine.
            match evict(&entry.path()) {
                Err(BenchError::Io(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// Runs `program args`, its output to /dev/null, and returns how long it took.
pub fn timed(program: &str, args: &[&Path]) -> Result<Duration, BenchError> {
    let command = format!(
        "{program} {}",
        args.iter()
            .map(|a| a.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| BenchError::Io(format!("running `{command}`"), e))?;
    let took = start.elapsed();
    if !status.success() {
        return Err(BenchError::Unexpected {
            what: format!("`{command}` failed with {status}"),
            logs: String::new(),
        });
    }
    Ok(took)
}

/// `cp src copy` for each copy, then `sync copies...` (fsync of those files: other work's
/// dirty pages are not counted); the time of all of it.
pub fn cp_and_sync(src: &Path, copies: &[PathBuf]) -> Result<Duration, BenchError> {
    let mut total = Duration::ZERO;
    for c in copies {
        total += timed("cp", &[src, c])?;
    }
    let refs: Vec<&Path> = copies.iter().map(PathBuf::as_path).collect();
    total += timed("sync", &refs)?;
    Ok(total)
}
