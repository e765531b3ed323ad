//! `filegrid-bench`: reproducible FileGrid benchmarks against real processes.
//!
//! `failover` starts a ZooKeeper server, three heads and a monitor on loopback and measures how
//! long leadership takes to move in each failure mode; `data` starts ZooKeeper, two heads and
//! three cluster servers and measures large and small transfers against local baselines;
//! `s3` puts the S3 API beside the native one, `list` times pages of a huge directory, and
//! `collect` how fast orphaned chunks are deleted (see `docs/performance.md`).

mod binaries;
mod collect;
mod data;
mod error;
mod failover;
mod list;
mod report;
mod s3;
mod stats;
mod zk_watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::data::DataOptions;
use crate::failover::FailoverOptions;

#[derive(Parser)]
#[command(name = "filegrid-bench", about = "FileGrid benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Election and failover times of three heads and a monitor, and their resident memory.
    Failover(FailoverArgs),
    /// Large and small file transfers against `cp`/`sync`/`cat` baselines, and resident memory.
    Data(DataArgs),
    /// The native API and the S3 API on one grid, alternating; optionally a Garage peer.
    S3(S3Args),
    /// Pages of a listing of one very large directory, with writers into it.
    List(ListArgs),
    /// How fast orphaned chunks are deleted: files put, deleted, and their copies watched.
    Collect(CollectArgs),
}

#[derive(clap::Args)]
struct CollectArgs {
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Files put and deleted per run.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    files: u64,
    /// Chunks of 64 KiB per file.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    chunks: u64,
    /// Concurrent clients putting and deleting.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    clients: u64,
    /// Where the grid's directory is made [default: the cargo target directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use the release binaries as they are.
    #[arg(long)]
    no_build: bool,
    /// Keep the processes' logs.
    #[arg(long)]
    keep_logs: bool,
}

#[derive(clap::Args)]
struct ListArgs {
    /// Files put into the one directory before timing (0 bytes each).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    files: u64,
    /// Files per page.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    page: u64,
    /// Pages timed, alternating between the leader and a standby.
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u64).range(2..))]
    samples: u64,
    /// Clients putting new files into the same directory while pages are timed.
    #[arg(long, default_value_t = 4)]
    writers: u64,
    /// Clients filling the directory.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    fillers: u64,
    /// ZooKeeper's Java heap: a million files need about 1 GiB.
    #[arg(long, default_value = "3g")]
    zk_heap: String,
    /// Where the grid's directory is made [default: the cargo target directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use the release binaries as they are.
    #[arg(long)]
    no_build: bool,
    /// Keep the processes' logs.
    #[arg(long)]
    keep_logs: bool,
}

#[derive(clap::Args)]
struct S3Args {
    /// Runs per endpoint; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the large object.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// 4 KiB objects per run (16 clients).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    small_objects: u64,
    /// 1 MiB objects per run (8 clients).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    medium_objects: u64,
    /// Where the work directory is made [default: the cargo target directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// A `garage` binary (e.g. from `cargo install garage`): also run the S3 workloads
    /// against a 3-node Garage (replication 3, fsync on) on loopback.
    #[arg(long, value_name = "PATH")]
    peer_garage: Option<PathBuf>,
    /// Use the release binaries as they are.
    #[arg(long)]
    no_build: bool,
    /// Keep the grid's logs and data.
    #[arg(long)]
    keep_logs: bool,
}

#[derive(clap::Args)]
struct DataArgs {
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Size of the large file (e.g. 1GiB, 256MiB).
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    size: u64,
    /// Number of 4 KiB files put and got per run.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    small_files: u64,
    /// 4 KiB files put and got before the first run, not measured: a freshly started
    /// ZooKeeper (a JVM) is still compiling its hot paths for the first few thousand requests.
    #[arg(long, default_value_t = 5000)]
    warm_up: u64,
    /// Concurrent clients for the small files.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    clients: u64,
    /// Directory for the work files (the source, baseline copies and FileGrid's data, all on
    /// one disk); default: the cargo target directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use the binaries next to this one as they are, without running `cargo build` first.
    #[arg(long)]
    no_build: bool,
    /// Keep the processes' logs (their directory is printed at the end).
    #[arg(long)]
    keep_logs: bool,
    /// Run the grid without security (no client credentials, no peer signatures), to
    /// compare with the default secured grid.
    #[arg(long, conflicts_with = "compare_security")]
    insecure: bool,
    /// Run the same workloads on two grids, one without security and one with client
    /// credentials, peer signatures, ZooKeeper ACLs and TLS on every listener, alternating
    /// runs between them, and print both and the secured/insecure ratios (target ≥ 0.8).
    #[arg(long)]
    compare_security: bool,
}

#[derive(clap::Args)]
struct FailoverArgs {
    /// Independent rounds (fresh processes and a fresh --zk-root each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// ZooKeeper session timeout of the heads and the monitor.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    session_timeout: Duration,
    /// The monitor's check interval.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    interval: Duration,
    /// Failed checks in a row after which the monitor forces a failover.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    failure_threshold: u32,
    /// Time allowed for one health check (the monitor's --timeout); default: 3/4 of --interval,
    /// so a hung head's checks do not stretch the interval.
    #[arg(long, value_parser = parse_duration)]
    check_timeout: Option<Duration>,
    /// The heads' --startup-grace (the node's default is 1s).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    startup_grace: Duration,
    /// Use the binaries next to this one as they are, without running `cargo build` first.
    #[arg(long)]
    no_build: bool,
    /// Keep the processes' logs (their directory is printed at the end).
    #[arg(long)]
    keep_logs: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

fn parse_size(s: &str) -> Result<u64, String> {
    let n = s
        .parse::<bytesize::ByteSize>()
        .map_err(|e| format!("{s:?}: {e}"))?
        .as_u64();
    if n == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(n)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Failover(a) => {
            let options = FailoverOptions {
                rounds: a.rounds,
                session_timeout: a.session_timeout,
                interval: a.interval,
                failure_threshold: a.failure_threshold,
                check_timeout: a.check_timeout.unwrap_or(a.interval * 3 / 4),
                startup_grace: a.startup_grace,
                keep_logs: a.keep_logs,
            };
            run_failover(options, !a.no_build)
        }
        Command::Data(a) => run_data(a),
        Command::S3(a) => run_s3(a),
        Command::List(a) => run_list(a),
        Command::Collect(a) => run_collect(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filegrid-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_failover(options: FailoverOptions, build: bool) -> Result<(), error::BenchError> {
    options.validate()?;
    let bins = binaries::NodeBinaries::locate(build)?;
    runtime()?.block_on(failover::run(&options, bins))
}

fn run_data(a: DataArgs) -> Result<(), error::BenchError> {
    let bins = binaries::NodeBinaries::locate(!a.no_build)?;
    let options = DataOptions {
        runs: a.runs,
        size: a.size,
        small_files: a.small_files as usize,
        warm_up: a.warm_up as usize,
        clients: a.clients as usize,
        dir: match a.dir {
            Some(d) => d,
            None => binaries::target_dir()?,
        },
        keep_logs: a.keep_logs,
        insecure: a.insecure,
        compare_security: a.compare_security,
    };
    runtime()?.block_on(data::run(options, bins))
}

/// Two workers: the benchmark's clients should not take more of the machine than that.
fn run_s3(a: S3Args) -> Result<(), error::BenchError> {
    let bins = binaries::NodeBinaries::locate(!a.no_build)?;
    let options = s3::S3Options {
        runs: a.runs,
        size: a.size,
        small: a.small_objects as usize,
        medium: a.medium_objects as usize,
        dir: match a.dir {
            Some(d) => d,
            None => binaries::target_dir()?,
        },
        garage: a.peer_garage,
        keep_logs: a.keep_logs,
    };
    runtime()?.block_on(s3::run(options, bins))
}

fn run_list(a: ListArgs) -> Result<(), error::BenchError> {
    let bins = binaries::NodeBinaries::locate(!a.no_build)?;
    let options = list::ListOptions {
        files: a.files,
        page: a.page as usize,
        samples: a.samples as usize,
        writers: a.writers as usize,
        fillers: a.fillers as usize,
        zk_heap: a.zk_heap,
        dir: match a.dir {
            Some(d) => d,
            None => binaries::target_dir()?,
        },
        keep_logs: a.keep_logs,
    };
    runtime()?.block_on(list::run(options, bins))
}

fn run_collect(a: CollectArgs) -> Result<(), error::BenchError> {
    let bins = binaries::NodeBinaries::locate(!a.no_build)?;
    let options = collect::CollectOptions {
        runs: a.runs,
        files: a.files,
        chunks: a.chunks,
        clients: a.clients as usize,
        dir: match a.dir {
            Some(d) => d,
            None => binaries::target_dir()?,
        },
        keep_logs: a.keep_logs,
    };
    runtime()?.block_on(collect::run(options, bins))
}

fn runtime() -> Result<tokio::runtime::Runtime, error::BenchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(error::BenchError::Runtime)
}
