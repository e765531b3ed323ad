//! Why a benchmark could not run to the end (a missed target is not an error).

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    BadOptions(String),
    #[error("cannot run `{command}`: {source}")]
    Build {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed with {status}")]
    BuildFailed {
        command: String,
        status: std::process::ExitStatus,
    },
    #[error("cannot find where this program lives: {0}")]
    NoExeDir(std::io::Error),
    #[error("{} is missing (run without --no-build, or `cargo build --release -p filegrid-node --bins`)", .0.display())]
    MissingBinary(PathBuf),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("temp dir: {0}")]
    TempDir(std::io::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("ZooKeeper client: {0}")]
    Zk(#[from] zookeeper_client::Error),
    #[error("timed out after {timeout:?} waiting for {what} (logs in {logs})")]
    Timeout {
        what: String,
        timeout: Duration,
        logs: String,
    },
    #[error("{what} (logs in {logs})")]
    Unexpected { what: String, logs: String },
    #[error("setting up: {0}")]
    Setup(String),
    #[error("{0}")]
    Failed(String),
}
