//! The data path benchmark: a ZooKeeper server, two heads and three cluster servers on
//! loopback, a large file put and read back beside `cp` ×3 + `sync` and `cat` of the same
//! bytes on the same disk, many small files by concurrent clients, and the resident memory
//! of every FileGrid process during the large transfers.
//!
//! With `--compare-security` two such grids run side by side, one without security and one
//! with client credentials, peer signatures, ZooKeeper ACLs and TLS on every listener; the
//! runs alternate between them and the report ends with the secured/plain ratios.

mod files;
mod large;
pub(crate) mod rss;
mod small;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use filegrid_testkit::{Grid, GridOptions};

use crate::binaries::NodeBinaries;
use crate::error::BenchError;
use crate::report::{Report, Row, Target, Unit};
use large::LargeRun;
use small::SmallRun;

const MIB: u64 = 1 << 20;
/// The resident memory every FileGrid process must stay under during large transfers.
const RSS_LIMIT: u64 = 64 * MIB;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct DataOptions {
    pub runs: u32,
    /// Size of the large file.
    pub size: u64,
    pub small_files: usize,
    /// Small files put and got before the first run, unmeasured.
    pub warm_up: usize,
    pub clients: usize,
    /// Where the work directory (source file, baseline copies, FileGrid's data) is created.
    pub dir: PathBuf,
    pub keep_logs: bool,
    /// The grid runs without security.
    pub insecure: bool,
    /// Run the same workloads on a grid without security and on one with credentials,
    /// signatures, ZooKeeper ACLs and TLS, alternating, and print both and their ratios.
    pub compare_security: bool,
}

/// How the grid under test is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `--insecure`: no credentials, no signatures, no TLS.
    Off,
    /// Client credentials and peer signatures (the default grid), no TLS.
    Credentials,
    /// Credentials, signatures, ZooKeeper ACLs and TLS on every listener.
    CredentialsAndTls,
}

impl Security {
    fn describe(self) -> &'static str {
        match self {
            Security::Off => "insecure",
            Security::Credentials => "credentials + signatures",
            Security::CredentialsAndTls => "credentials + signatures + ZooKeeper ACLs + TLS",
        }
    }
}

/// What every phase of every run shares.
#[derive(Clone)]
pub struct Setup {
    pub options: DataOptions,
    /// The work directory: baseline files and (under it) the grid's data directories.
    pub work: PathBuf,
    /// The large source file, its size and CRC32C.
    pub source: PathBuf,
    pub size: u64,
    pub crc: u32,
    pub http: reqwest::Client,
    /// `http://host:port` of the leader head.
    pub leader: String,
    pub data_dirs: Vec<PathBuf>,
    /// (name, pid) of every FileGrid process, leader head first.
    pub processes: Arc<Vec<(String, i32)>>,
    /// The processes above, ZooKeeper and this benchmark (the clients): whose CPU time is
    /// reported for small puts.
    pub cpu_watch: Arc<Vec<(String, i32)>>,
    /// Where the processes' logs are while the grid runs.
    pub logs: PathBuf,
}

impl Setup {
    pub fn file_url(&self, name: &str) -> String {
        format!("{}/v1/files/{name}", self.leader)
    }

    pub fn pids(&self) -> Vec<i32> {
        self.processes.iter().map(|(_, p)| *p).collect()
    }

    pub fn checksum(&self) -> String {
        filegrid_node::chunk::Checksum(self.crc).to_string()
    }

    pub fn failed(&self, what: String) -> BenchError {
        BenchError::Unexpected {
            what,
            logs: self.logs.display().to_string(),
        }
    }

    pub async fn delete(&self, name: &str) -> Result<(), BenchError> {
        let resp = self
            .http
            .delete(self.file_url(name))
            .send()
            .await
            .map_err(|e| self.failed(format!("DELETE {name}: {e}")))?;
        if !resp.status().is_success() {
            return Err(self.failed(format!("DELETE {name} answered {}", resp.status())));
        }
        Ok(())
    }
}

pub async fn run(options: DataOptions, bins: NodeBinaries) -> Result<(), BenchError> {
    let o = &options;
    println!(
        "FileGrid data path benchmark: {} runs; 2 heads + 3 cluster servers (replication 3, \
         chunks 8 MiB) on loopback; {} CPUs",
        o.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::fs::create_dir_all(&o.dir).map_err(BenchError::TempDir)?;
    let work = tempfile::Builder::new()
        .prefix("filegrid-bench-data-")
        .tempdir_in(&o.dir)
        .map_err(BenchError::TempDir)?;
    println!(
        "work directory (baseline files and FileGrid's data, one disk): {}",
        work.path().display()
    );
    let source = work.path().join("source");
    let (src, size) = (source.clone(), o.size);
    let crc = tokio::task::spawn_blocking(move || files::write_random(&src, size))
        .await
        .map_err(|e| BenchError::Unexpected {
            what: format!("writing the source file: {e}"),
            logs: String::new(),
        })??;
    println!(
        "large file: {} ({size} bytes); small files: {} × 4 KiB by {} clients",
        human(size),
        o.small_files,
        o.clients
    );

    if o.compare_security {
        return compare(&options, &bins, work.path(), &source, crc).await;
    }
    let security = if o.insecure {
        Security::Off
    } else {
        Security::Credentials
    };
    println!("grid: {}", security.describe());
    let grid = start_grid(&bins.node, work.path(), security).await?;
    let result = measure(&options, &grid, work.path(), &source, crc).await;
    let logs = match (&result, o.keep_logs) {
        (Ok(_), false) => None,
        _ => Some(save_logs(&grid)?),
    };
    drop(grid);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            return Err(match (e, logs) {
                (BenchError::Unexpected { what, .. }, Some(l)) => BenchError::Unexpected {
                    what,
                    logs: l.display().to_string(),
                },
                (e, _) => e,
            });
        }
    };
    println!();
    report.print();
    if let Some(l) = logs {
        println!("\nprocess logs: {}", l.display());
    }
    Ok(())
}

/// Starts the grid (the testkit panics on failure: that becomes an error here).
async fn start_grid(node: &Path, base: &Path, security: Security) -> Result<Grid, BenchError> {
    let options = GridOptions {
        heads: 2,
        cluster_servers: 3,
        chunk_size: "8MiB".into(),
        base_dir: Some(base.to_path_buf()),
        // What an operator would run: no debug output to slow the servers down.
        log_filter: Some("info,zookeeper_client=warn".into()),
        insecure: security == Security::Off,
        tls: security == Security::CredentialsAndTls,
        zk_auth: security == Security::CredentialsAndTls,
        ..GridOptions::default()
    };
    start(node, options).await
}

/// Starts a grid of `options` (off the async workers: starting waits on processes).
pub(crate) async fn start(node: &Path, options: GridOptions) -> Result<Grid, BenchError> {
    let node = node.to_path_buf();
    tokio::task::spawn_blocking(move || Grid::start(&node, options))
        .await
        .map_err(|e| BenchError::Unexpected {
            what: format!("the grid did not start: {e}"),
            logs: String::new(),
        })
}

/// Starts a grid of `options`, runs `measure` on it and stops it; its processes' logs are
/// kept (and where printed) when `measure` failed or `keep_logs` is set.
pub(crate) async fn on_grid(
    node: &Path,
    options: GridOptions,
    keep_logs: bool,
    measure: impl AsyncFnOnce(&mut Grid) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    let mut grid = start(node, options).await?;
    let result = measure(&mut grid).await;
    let logs = match (&result, keep_logs) {
        (Ok(()), false) => None,
        _ => Some(save_logs(&grid)?),
    };
    drop(grid);
    if let Some(l) = logs {
        println!("\nprocess logs: {}", l.display());
    }
    result
}

async fn measure(
    options: &DataOptions,
    grid: &Grid,
    work: &Path,
    source: &Path,
    crc: u32,
) -> Result<Report, BenchError> {
    let setup = prepare(options, grid, work, source, crc).await?;
    let mut larges = Vec::new();
    let mut smalls = Vec::new();
    for n in 1..=options.runs {
        let (l, s) = run_once(&setup, n).await?;
        larges.push(l);
        smalls.push(s);
    }
    Ok(report(&setup, &larges, &smalls))
}

/// One run: the large file, then the small files; both printed as they finish.
async fn run_once(setup: &Setup, n: u32) -> Result<(LargeRun, SmallRun), BenchError> {
    let l = large::run(setup, n).await?;
    print_large(setup, n, &l);
    let s = small::run(setup, n).await?;
    print_small(n, setup.options.runs, &s);
    Ok((l, s))
}

/// The HTTP client of the benchmark for `grid`: the admin credential, and the grid's CA
/// when it runs TLS.
pub(crate) fn http_client(pool: usize, grid: &Grid) -> Result<reqwest::Client, BenchError> {
    let unexpected = |what: String| BenchError::Unexpected {
        what,
        logs: String::new(),
    };
    let mut auth = reqwest::header::HeaderMap::new();
    if let Ok(v) = filegrid_testkit::auth::ADMIN.bearer().parse() {
        auth.insert(reqwest::header::AUTHORIZATION, v);
    }
    let mut builder = reqwest::Client::builder()
        .default_headers(auth)
        .pool_max_idle_per_host(pool);
    if let Some(tls) = &grid.tls {
        let pem = std::fs::read(&tls.ca)
            .map_err(|e| unexpected(format!("reading the grid's CA {}: {e}", tls.ca.display())))?;
        let ca = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| unexpected(format!("the grid's CA {}: {e}", tls.ca.display())))?;
        builder = builder.add_root_certificate(ca);
    }
    builder
        .build()
        .map_err(|e| unexpected(format!("HTTP client: {e}")))
}

/// What every run on `grid` needs (and the warm-up, done here).
async fn prepare(
    options: &DataOptions,
    grid: &Grid,
    work: &Path,
    source: &Path,
    crc: u32,
) -> Result<Setup, BenchError> {
    let leader = tokio::task::block_in_place(|| grid.leader_url(Duration::from_secs(30)));
    let leader_port: u16 = leader
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut processes = Vec::new();
    let mut standbys = Vec::new();
    for h in &grid.heads {
        let entry = (h.id.clone(), h.proc.pid());
        if h.port == leader_port {
            processes.insert(0, entry);
        } else {
            standbys.push(entry);
        }
    }
    processes.extend(standbys);
    processes.extend(grid.cluster.iter().map(|c| (c.id.clone(), c.proc.pid())));
    let http = http_client(options.clients, grid)?;
    let mut cpu_watch = processes.clone();
    if let Some(pid) = grid.zk.pid() {
        cpu_watch.push(("zookeeper".into(), pid));
    }
    cpu_watch.push(("clients".into(), std::process::id() as i32));
    let setup = Setup {
        options: options.clone(),
        work: work.to_path_buf(),
        source: source.to_path_buf(),
        size: options.size,
        crc,
        http,
        leader,
        data_dirs: large::data_dirs(grid),
        processes: Arc::new(processes),
        cpu_watch: Arc::new(cpu_watch),
        logs: grid.dir.path().to_path_buf(),
    };
    println!(
        "leader {} at {}; processes sampled: {}",
        setup.processes[0].0,
        setup.leader,
        setup
            .processes
            .iter()
            .map(|(n, p)| format!("{n} (pid {p})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if options.warm_up > 0 {
        let started = Instant::now();
        small::warm_up(&setup, options.warm_up).await?;
        println!(
            "warm-up: {} × 4 KiB put and got in {:.1} s (not measured)",
            options.warm_up,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(setup)
}

/// The secured grid's figures against the plain one's, run by run: at least this much.
const SECURED_RATIO_TARGET: f64 = 0.8;

/// `--compare-security`: both grids, runs alternating between them (the order swapped every
/// run), each grid's own report, then the ratios.
async fn compare(
    options: &DataOptions,
    bins: &NodeBinaries,
    work: &Path,
    source: &Path,
    crc: u32,
) -> Result<(), BenchError> {
    let kinds = [Security::Off, Security::CredentialsAndTls];
    let mut grids = Vec::new();
    for kind in kinds {
        // Each grid's baseline files and local small files in its own directory.
        let dir = work.join(match kind {
            Security::Off => "insecure",
            _ => "secured",
        });
        std::fs::create_dir_all(&dir).map_err(BenchError::TempDir)?;
        let grid = start_grid(&bins.node, &dir, kind).await?;
        grids.push((kind, dir, grid));
    }
    let result = compare_runs(options, &grids, source, crc).await;
    let logs = match (&result, options.keep_logs) {
        (Ok(_), false) => Vec::new(),
        _ => grids
            .iter()
            .map(|(_, _, g)| save_logs(g))
            .collect::<Result<Vec<_>, _>>()?,
    };
    drop(grids);
    let logs_text = logs
        .iter()
        .map(|l| l.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let reports = result.map_err(|e| match e {
        BenchError::Unexpected { what, .. } if !logs.is_empty() => BenchError::Unexpected {
            what,
            logs: logs_text.clone(),
        },
        e => e,
    })?;
    for (title, r) in &reports {
        println!("\n{title}");
        r.print();
    }
    if !logs.is_empty() {
        println!("\nprocess logs: {logs_text}");
    }
    Ok(())
}

/// The alternating runs of [`compare`]; answers the reports to print, titled.
async fn compare_runs(
    options: &DataOptions,
    grids: &[(Security, PathBuf, Grid)],
    source: &Path,
    crc: u32,
) -> Result<Vec<(String, Report)>, BenchError> {
    let mut setups = Vec::new();
    for (kind, dir, grid) in grids {
        println!("grid {}:", kind.describe());
        setups.push(prepare(options, grid, dir, source, crc).await?);
    }
    let mut larges: Vec<Vec<LargeRun>> = setups.iter().map(|_| Vec::new()).collect();
    let mut smalls: Vec<Vec<SmallRun>> = setups.iter().map(|_| Vec::new()).collect();
    for n in 1..=options.runs {
        let mut order: Vec<usize> = (0..setups.len()).collect();
        if n % 2 == 0 {
            order.reverse();
        }
        for i in order {
            println!("[{}]", grids[i].0.describe());
            let (l, s) = run_once(&setups[i], n).await?;
            larges[i].push(l);
            smalls[i].push(s);
        }
    }
    let mut reports: Vec<(String, Report)> = grids
        .iter()
        .enumerate()
        .map(|(i, (kind, _, _))| {
            (
                format!("{}:", kind.describe()),
                report(&setups[i], &larges[i], &smalls[i]),
            )
        })
        .collect();
    reports.push((
        format!(
            "{} against insecure, run by run:",
            Security::CredentialsAndTls.describe()
        ),
        security_ratios(&setups[0], &larges, &smalls),
    ));
    Ok(reports)
}

/// Which time of a large run a row shows.
type LargeFigure = fn(&LargeRun) -> Duration;
/// Which rate of a small run a row shows.
type SmallFigure = fn(&SmallRun) -> f64;

/// Throughputs of both grids and secured/plain ratios per run (index 0 plain, 1 secured).
fn security_ratios(setup: &Setup, larges: &[Vec<LargeRun>], smalls: &[Vec<SmallRun>]) -> Report {
    let size = setup.size as f64;
    let file = human(setup.size);
    let target = || {
        Target::at_least(
            SECURED_RATIO_TARGET,
            format!("≥ {SECURED_RATIO_TARGET} (median)"),
        )
        .on_median()
    };
    let mut r = Report::new();
    let large_rows: [(String, LargeFigure); 2] = [
        (format!("put {file}"), |l| l.put),
        (format!("get {file}"), |l| l.get),
    ];
    for (name, f) in large_rows {
        let rates = |runs: &[LargeRun]| -> Vec<f64> {
            runs.iter().map(|l| size / f(l).as_secs_f64()).collect()
        };
        let (plain, secured) = (rates(&larges[0]), rates(&larges[1]));
        r.row(
            Row::new(
                format!("{name}, insecure"),
                Unit::MebibytesPerSecond,
                plain.clone(),
            )
            .higher_is_better(),
        );
        r.row(
            Row::new(
                format!("{name}, secured + TLS"),
                Unit::MebibytesPerSecond,
                secured.clone(),
            )
            .higher_is_better(),
        );
        r.row(
            Row::new(
                "  ratio secured / insecure",
                Unit::Ratio,
                ratios(&plain, &secured),
            )
            .target(target()),
        );
    }
    let small_rows: [(&str, SmallFigure); 3] = [
        ("4 KiB puts", |s| s.puts.per_second),
        ("4 KiB gets", |s| s.gets.per_second),
        ("4 KiB overwrites", |s| s.overwrites.per_second),
    ];
    for (name, f) in small_rows {
        let (plain, secured): (Vec<f64>, Vec<f64>) = (
            smalls[0].iter().map(f).collect(),
            smalls[1].iter().map(f).collect(),
        );
        r.row(
            Row::new(format!("{name}, insecure"), Unit::PerSecond, plain.clone())
                .higher_is_better(),
        );
        r.row(
            Row::new(
                format!("{name}, secured + TLS"),
                Unit::PerSecond,
                secured.clone(),
            )
            .higher_is_better(),
        );
        r.row(
            Row::new(
                "  ratio secured / insecure",
                Unit::Ratio,
                ratios(&plain, &secured),
            )
            .target(target()),
        );
    }
    r
}

/// The p50 and p99 latency rows of a small-file phase, one value per run.
fn latency_rows(r: &mut Report, phases: &[small::Phase]) {
    for (label, at) in [
        (
            "  p50 latency",
            (|p| p.p50) as fn(&small::Phase) -> Duration,
        ),
        ("  p99 latency", |p| p.p99),
    ] {
        r.row(Row::new(
            label,
            Unit::Milliseconds,
            phases.iter().map(|p| at(p).as_secs_f64()).collect(),
        ));
    }
}

/// `secured[i] / plain[i]` for each run.
fn ratios(plain: &[f64], secured: &[f64]) -> Vec<f64> {
    plain.iter().zip(secured).map(|(p, s)| s / p).collect()
}

const GIB: f64 = (1u64 << 30) as f64;

fn print_large(setup: &Setup, n: u32, l: &LargeRun) {
    let runs = setup.options.runs;
    println!(
        "run {n}/{runs}: put {:.2} s vs cp ×3 + sync {:.2} s (ratio {:.2}); get {:.2} s vs cat {:.2} s (ratio {:.2})",
        l.put.as_secs_f64(),
        l.cp_sync.as_secs_f64(),
        l.cp_sync.as_secs_f64() / l.put.as_secs_f64(),
        l.get.as_secs_f64(),
        l.cat.as_secs_f64(),
        l.cat.as_secs_f64() / l.get.as_secs_f64(),
    );
    println!(
        "  CPU seconds per GiB put: {}",
        rss::format_cpu(&l.put_cpu, GIB / setup.size as f64)
    );
    println!(
        "  CPU seconds per GiB get: {}",
        rss::format_cpu(&l.get_cpu, GIB / setup.size as f64)
    );
    for (phase, peaks) in [("put", &l.put_rss), ("get", &l.get_rss)] {
        let cells: Vec<String> = setup
            .processes
            .iter()
            .zip(peaks)
            .map(|((name, _), p)| {
                format!(
                    "{name} {:.1}/{:.1}",
                    p.first_half as f64 / MIB as f64,
                    p.last_half as f64 / MIB as f64
                )
            })
            .collect();
        println!(
            "          VmRSS MiB during {phase}, max of first/last half: {}",
            cells.join(", ")
        );
    }
}

fn print_small(n: u32, runs: u32, s: &SmallRun) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "run {n}/{runs}: 4 KiB puts {:.0}/s (p50 {:.2} ms, p99 {:.2} ms; local {:.0}/s), \
         gets {:.0}/s (p50 {:.2} ms, p99 {:.2} ms; local {:.0}/s), \
         overwrites {:.0}/s (p50 {:.2} ms, p99 {:.2} ms)",
        s.puts.per_second,
        ms(s.puts.p50),
        ms(s.puts.p99),
        s.local_puts.per_second,
        s.gets.per_second,
        ms(s.gets.p50),
        ms(s.gets.p99),
        s.local_gets.per_second,
        s.overwrites.per_second,
        ms(s.overwrites.p50),
        ms(s.overwrites.p99),
    );
    println!(
        "  CPU seconds per 1,000 puts: {}",
        rss::format_cpu(&s.put_cpu, 1.0)
    );
    println!(
        "  CPU seconds per 1,000 overwrites: {}",
        rss::format_cpu(&s.overwrite_cpu, 1.0)
    );
}

fn report(setup: &Setup, larges: &[LargeRun], smalls: &[SmallRun]) -> Report {
    let size = setup.size as f64;
    let rate = |f: fn(&LargeRun) -> Duration| -> Vec<f64> {
        larges.iter().map(|l| size / f(l).as_secs_f64()).collect()
    };
    let ratio = |base: fn(&LargeRun) -> Duration, ours: fn(&LargeRun) -> Duration| -> Vec<f64> {
        larges
            .iter()
            .map(|l| base(l).as_secs_f64() / ours(l).as_secs_f64())
            .collect()
    };
    let floor =
        |limit: f64, label: &str| Target::at_least(limit, format!("{label} (median)")).on_median();
    let file = human(setup.size);
    let mut r = Report::new();
    r.row(
        Row::new(
            format!("put {file}, 3 replicas"),
            Unit::MebibytesPerSecond,
            rate(|l| l.put),
        )
        .higher_is_better(),
    );
    r.row(
        Row::new(
            "  cp ×3 + sync (baseline)",
            Unit::MebibytesPerSecond,
            rate(|l| l.cp_sync),
        )
        .higher_is_better(),
    );
    r.row(
        Row::new(
            "  ratio baseline time / FileGrid time",
            Unit::Ratio,
            ratio(|l| l.cp_sync, |l| l.put),
        )
        .target(floor(0.7, "≥ 0.7")),
    );
    r.row(
        Row::new(
            format!("get {file}"),
            Unit::MebibytesPerSecond,
            rate(|l| l.get),
        )
        .higher_is_better(),
    );
    r.row(
        Row::new(
            "  cat of one copy (baseline)",
            Unit::MebibytesPerSecond,
            rate(|l| l.cat),
        )
        .higher_is_better(),
    );
    r.row(
        Row::new(
            "  ratio baseline time / FileGrid time",
            Unit::Ratio,
            ratio(|l| l.cat, |l| l.get),
        )
        .target(floor(0.7, "≥ 0.7")),
    );

    let clients = setup.options.clients;
    let phase =
        |f: fn(&SmallRun) -> small::Phase| -> Vec<small::Phase> { smalls.iter().map(f).collect() };
    for (what, ours, local, limit, local_label) in [
        (
            "puts",
            phase(|s| s.puts),
            phase(|s| s.local_puts),
            1000.0,
            "3 copies, each fsynced",
        ),
        (
            "gets",
            phase(|s| s.gets),
            phase(|s| s.local_gets),
            5000.0,
            "read one copy",
        ),
    ] {
        r.row(
            Row::new(
                format!("4 KiB {what}, {clients} clients"),
                Unit::PerSecond,
                ours.iter().map(|p| p.per_second).collect(),
            )
            .target(floor(limit, &format!("≥ {limit:.0}/s"))),
        );
        latency_rows(&mut r, &ours);
        r.row(
            Row::new(
                format!("  local files, {clients} threads ({local_label})"),
                Unit::PerSecond,
                local.iter().map(|p| p.per_second).collect(),
            )
            .higher_is_better(),
        );
    }
    let overwrites = phase(|s| s.overwrites);
    r.row(
        Row::new(
            format!("4 KiB overwrites, {clients} clients"),
            Unit::PerSecond,
            overwrites.iter().map(|p| p.per_second).collect(),
        )
        .higher_is_better(),
    );
    latency_rows(&mut r, &overwrites);

    let limit = || Target::below(RSS_LIMIT as f64, "< 64 MiB");
    for (phase, peaks) in [
        ("put", larges.iter().map(|l| &l.put_rss).collect::<Vec<_>>()),
        ("get", larges.iter().map(|l| &l.get_rss).collect()),
    ] {
        for (i, (name, _)) in setup.processes.iter().enumerate() {
            let role = match i {
                0 => format!("{name} (leader)"),
                1 => format!("{name} (standby)"),
                _ => name.clone(),
            };
            let of = |f: fn(&rss::Peak) -> u64| -> Vec<f64> {
                peaks
                    .iter()
                    .filter_map(|p| p.get(i))
                    .map(|p| f(p) as f64)
                    .collect()
            };
            r.row(
                Row::new(
                    format!("VmRSS during {phase}: {role}"),
                    Unit::Mebibytes,
                    of(|p| p.max),
                )
                .target(limit()),
            );
            // The leader and one cluster server: is memory flat over the transfer?
            if i == 0 || i == 2 {
                r.row(Row::new(
                    "  max in the first half",
                    Unit::Mebibytes,
                    of(|p| p.first_half),
                ));
                r.row(Row::new(
                    "  max in the last half",
                    Unit::Mebibytes,
                    of(|p| p.last_half),
                ));
            }
        }
    }
    r
}

/// Copies the processes' logs out of the grid's directory (which goes with the grid).
pub(crate) fn save_logs(grid: &Grid) -> Result<PathBuf, BenchError> {
    let dir = tempfile::Builder::new()
        .prefix("filegrid-bench-data-logs-")
        .tempdir()
        .map_err(BenchError::TempDir)?
        .keep();
    let mut logs: Vec<&Path> = grid.heads.iter().map(|h| h.proc.log_path()).collect();
    logs.extend(grid.cluster.iter().map(|c| c.proc.log_path()));
    for log in logs {
        if let Some(name) = log.file_name() {
            let _ = std::fs::copy(log, dir.join(name));
        }
    }
    Ok(dir)
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}
