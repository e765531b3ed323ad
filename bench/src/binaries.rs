//! The node's release binaries: built (a no-op when fresh) and found next to this program, so
//! the benchmark always measures the code in the working tree.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::BenchError;

pub struct NodeBinaries {
    pub node: PathBuf,
    pub monitor: PathBuf,
}

impl NodeBinaries {
    /// Runs `cargo build --release -p filegrid-node --bins` unless `build` is false, then finds
    /// `filegrid-node` and `zk_head_server_monitor` in this program's directory.
    pub fn locate(build: bool) -> Result<Self, BenchError> {
        if build {
            cargo_build()?;
        }
        let exe = std::env::current_exe().map_err(BenchError::NoExeDir)?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        let bins = Self {
            node: dir.join("filegrid-node"),
            monitor: dir.join("zk_head_server_monitor"),
        };
        for b in [&bins.node, &bins.monitor] {
            if !b.is_file() {
                return Err(BenchError::MissingBinary(b.clone()));
            }
        }
        Ok(bins)
    }
}

/// The `target` directory this program was built into (its directory's parent), where the
/// data benchmark puts its files by default.
pub fn target_dir() -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::NoExeDir)?;
    Ok(exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."))
        .to_path_buf())
}

fn cargo_build() -> Result<(), BenchError> {
    // `cargo run` sets CARGO to the cargo that runs us; the child inherits CARGO_TARGET_DIR,
    // so the binaries land next to this one.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args = ["build", "--release", "-p", "filegrid-node", "--bins"];
    let command = format!("{cargo} {}", args.join(" "));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(workspace)
        .status()
        .map_err(|source| BenchError::Build {
            command: command.clone(),
            source,
        })?;
    if !status.success() {
        return Err(BenchError::BuildFailed { command, status });
    }
    Ok(())
}
