//! The S3 benchmark: the same workloads through FileGrid's native API and its S3 API on one
//! grid, runs alternating between them, and the S3/native ratios; optionally the same S3
//! workloads against a 3-node Garage on loopback (`--peer-garage PATH`), alternating too.
//!
//! Workloads: one large object put and got (`--size`, default 1 GiB) by one client, put
//! twice: once in one request, once as S3 clients send a large file (a multipart upload of
//! 8 MiB parts, 10 at a time, aws-cli's defaults; the native API, which has no multipart
//! upload, puts it in one stream again); 4 KiB objects put and got by 16 clients; 1 MiB
//! objects put and got by 8 clients. S3 requests
//! are presigned (`rusty-s3`), so the client spends no time hashing bodies and both servers
//! see the same requests.

mod garage;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use filegrid_testkit::{Grid, GridOptions};

use crate::binaries::NodeBinaries;
use crate::error::BenchError;
use crate::report::{Report, Row, Target, Unit};
use target::Endpoint;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct S3Options {
    pub runs: u32,
    /// Size of the large object.
    pub size: u64,
    /// Number of 4 KiB objects per run.
    pub small: usize,
    /// Number of 1 MiB objects per run.
    pub medium: usize,
    pub dir: PathBuf,
    /// A `garage` binary: run the S3 workloads against a 3-node Garage too.
    pub garage: Option<PathBuf>,
    pub keep_logs: bool,
}

const SMALL: usize = 4096;
const SMALL_CLIENTS: usize = 16;
const MEDIUM: usize = 1 << 20;
const MEDIUM_CLIENTS: usize = 8;
/// Parts of the multipart large put, and how many go at once: aws-cli's defaults
/// (`multipart_chunksize` 8 MiB, `max_concurrent_requests` 10).
const PART: u64 = 8 << 20;
const PART_CLIENTS: usize = 10;

/// One run's figures for one endpoint: bytes per second for the large and 1 MiB
/// workloads, objects per second for the 4 KiB ones.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    large_put: f64,
    /// The large object put as S3 clients send it (multipart); the native API's one stream.
    large_multipart: f64,
    large_get: f64,
    small_put: f64,
    small_get: f64,
    medium_put: f64,
    medium_get: f64,
    /// The FileGrid leader's CPU seconds per MiB of 1 MiB puts (none for a peer).
    medium_put_cpu: Option<f64>,
    /// The FileGrid leader's CPU seconds per MiB of the large (one stream) put.
    large_put_cpu: Option<f64>,
}

pub async fn run(options: S3Options, bins: NodeBinaries) -> Result<(), BenchError> {
    let work = tempfile::Builder::new()
        .prefix("filegrid-bench-s3-")
        .tempdir_in(&options.dir)
        .map_err(|e| BenchError::Setup(format!("work dir in {}: {e}", options.dir.display())))?;
    println!(
        "S3 benchmark: {} run(s), large object {} MiB, {} × 4 KiB by {SMALL_CLIENTS} clients, {} × 1 MiB by {MEDIUM_CLIENTS} clients",
        options.runs,
        options.size >> 20,
        options.small,
        options.medium
    );
    let grid = {
        let node = bins.node.clone();
        let base = work.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            Grid::start(
                &node,
                GridOptions {
                    heads: 2,
                    cluster_servers: 3,
                    chunk_size: "8MiB".into(),
                    session_timeout: "6s".into(),
                    base_dir: Some(base),
                    log_filter: Some("info".into()),
                    s3: true,
                    ..Default::default()
                },
            )
        })
        .await
        .map_err(|e| BenchError::Setup(format!("starting the grid: {e}")))?
    };
    let leader = tokio::task::block_in_place(|| grid.leader_url(Duration::from_secs(30)));
    let leader_index = (0..grid.heads.len())
        .find(|&i| grid.head_url(i) == leader)
        .unwrap_or(0);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| BenchError::Setup(format!("HTTP client: {e}")))?;
    let principal = filegrid_testkit::auth::WRITER;
    let mut endpoints = vec![
        Endpoint::native(http.clone(), &leader, &principal.bearer()),
        Endpoint::s3(
            http.clone(),
            "filegrid-s3",
            &grid.s3_url(leader_index),
            "us-east-1",
            principal.access_key,
            principal.secret,
            "bench",
        )?,
    ];
    // Whose CPU time the large and 1 MiB puts are charged: the FileGrid leader, for both FileGrid
    // endpoints (it is what S3 adds work to); none for a peer.
    let leader_pid = grid.heads.get(leader_index).map(|h| h.proc.pid());
    let mut cpu_pids = vec![leader_pid, leader_pid];
    let mut peer = None;
    if let Some(bin) = &options.garage {
        let g = garage::Garage::start(bin, &work.path().join("garage")).await?;
        endpoints.push(Endpoint::s3(
            http.clone(),
            "garage",
            &g.s3_url(),
            garage::REGION,
            &g.key_id,
            &g.secret,
            "bench",
        )?);
        cpu_pids.push(None);
        peer = Some(g);
    }
    for e in &endpoints {
        e.prepare().await?;
    }
    let source = work.path().join("large.bin");
    write_source(&source, options.size)?;

    let mut figures: Vec<Vec<Figures>> = vec![Vec::new(); endpoints.len()];
    for run in 0..options.runs as usize {
        // Alternate which endpoint goes first, so neither always meets a cold or warm disk.
        let n = endpoints.len();
        for k in 0..n {
            let i = (run + k) % n;
            let e = &endpoints[i];
            let f = measure(e, cpu_pids[i], &source, options.size, &options, run).await?;
            let mib = |v: f64| v / (1u64 << 20) as f64;
            println!(
                "run {}/{} {:<12} large put {:>6.0} MiB/s{} multipart {:>6.0} MiB/s get {:>6.0} MiB/s | 4 KiB put {:>6.0}/s get {:>6.0}/s | 1 MiB put {:>5.0} MiB/s{} get {:>5.0} MiB/s",
                run + 1,
                options.runs,
                e.name(),
                mib(f.large_put),
                f.large_put_cpu
                    .map(|c| format!(" ({:.2} ms/MiB)", c * 1e3))
                    .unwrap_or_default(),
                mib(f.large_multipart),
                mib(f.large_get),
                f.small_put,
                f.small_get,
                mib(f.medium_put),
                f.medium_put_cpu
                    .map(|c| format!(" ({:.2} leader CPU ms/MiB)", c * 1e3))
                    .unwrap_or_default(),
                mib(f.medium_get)
            );
            figures[i].push(f);
        }
    }
    report(&endpoints, &figures).print();
    drop(peer);
    if options.keep_logs {
        let kept = work.keep();
        println!("logs and data kept in {}", kept.display());
    }
    drop(grid);
    Ok(())
}

/// Writes `size` random-looking bytes (cheap to make, not compressible).
fn write_source(path: &std::path::Path, size: u64) -> Result<(), BenchError> {
    use std::io::Write;
    let f = std::fs::File::create(path)
        .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n])
            .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))?;
        left -= n as u64;
    }
    w.flush()
        .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))
}

/// Distinct content per object, so a mixed-up read is caught.
fn content(i: usize, len: usize) -> Bytes {
    let mut v = vec![0u8; len];
    for (j, b) in v.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(j * 7) % 251) as u8;
    }
    Bytes::from(v)
}

async fn measure(
    e: &Endpoint,
    cpu_pid: Option<i32>,
    source: &std::path::Path,
    size: u64,
    o: &S3Options,
    run: usize,
) -> Result<Figures, BenchError> {
    let cpu = || cpu_pid.and_then(crate::data::rss::cpu_seconds);
    let key = format!("large-{run}");
    let cpu_before = cpu();
    let t = Instant::now();
    e.put_file(&key, source, size).await?;
    let large_put = size as f64 / t.elapsed().as_secs_f64();
    let large_put_cpu = cpu()
        .zip(cpu_before)
        .map(|(after, before)| (after - before) / (size as f64 / (1u64 << 20) as f64));
    let mkey = format!("large-multipart-{run}");
    let t = Instant::now();
    e.put_file_multipart(&mkey, source, size, PART, PART_CLIENTS)
        .await?;
    let large_multipart = size as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let got = e.get_len(&key).await?;
    let large_get = size as f64 / t.elapsed().as_secs_f64();
    if got != size {
        return Err(BenchError::Failed(format!(
            "{}: large get returned {got} of {size} bytes",
            e.name()
        )));
    }
    // Clean-up only: a refusal costs disk, not the measurement.
    for k in [&key, &mkey] {
        if let Err(err) = e.delete(k).await {
            eprintln!("filegrid-bench: warning: could not delete {k}: {err}");
        }
    }
    let (small_put, small_get, _) = many(
        e,
        &format!("small-{run}"),
        o.small,
        SMALL,
        SMALL_CLIENTS,
        None,
    )
    .await?;
    let (medium_put, medium_get, medium_cpu) = many(
        e,
        &format!("medium-{run}"),
        o.medium,
        MEDIUM,
        MEDIUM_CLIENTS,
        cpu_pid,
    )
    .await?;
    Ok(Figures {
        large_put,
        large_multipart,
        large_get,
        small_put,
        small_get,
        medium_put: medium_put * MEDIUM as f64,
        medium_get: medium_get * MEDIUM as f64,
        medium_put_cpu: medium_cpu
            .map(|c| c / (o.medium as f64 * MEDIUM as f64 / (1u64 << 20) as f64)),
        large_put_cpu,
    })
}

/// Puts then gets `n` objects of `len` bytes with `clients` concurrent clients; objects
/// per second of each phase, and the CPU seconds process `cpu_pid` used during the puts
/// (none without a process, or when its CPU time cannot be read).
async fn many(
    e: &Endpoint,
    prefix: &str,
    n: usize,
    len: usize,
    clients: usize,
    cpu_pid: Option<i32>,
) -> Result<(f64, f64, Option<f64>), BenchError> {
    let cpu = || cpu_pid.and_then(crate::data::rss::cpu_seconds);
    let mut put_cpu = None;
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..n).map(|i| content(i, len)).collect());
    let mut rates = [0.0; 2];
    for (phase, rate) in rates.iter_mut().enumerate() {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cpu_before = cpu();
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let (e, bodies, next, prefix) =
                (e.clone(), bodies.clone(), next.clone(), prefix.to_string());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= bodies.len() {
                        return Ok::<(), BenchError>(());
                    }
                    let key = format!("{prefix}/{i:06}");
                    if phase == 0 {
                        e.put(&key, bodies[i].clone()).await?;
                    } else {
                        let got = e.get(&key).await?;
                        if got != bodies[i] {
                            return Err(BenchError::Failed(format!(
                                "{}: {key} read back different bytes",
                                e.name()
                            )));
                        }
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| BenchError::Failed(format!("client task: {e}")))??;
        }
        *rate = n as f64 / t.elapsed().as_secs_f64();
        if phase == 0 {
            put_cpu = cpu().zip(cpu_before).map(|(after, before)| after - before);
        }
    }
    Ok((rates[0], rates[1], put_cpu))
}

/// Medians per endpoint, then S3/native ratios (target 0.85) and, with a peer, FileGrid
/// S3 / Garage ratios (targets: puts 2.0, gets 1.0).
fn report(endpoints: &[Endpoint], figures: &[Vec<Figures>]) -> Report {
    type Pick = fn(&Figures) -> f64;
    // (name, unit, pick, is a put, judged against the targets). The multipart put is shown
    // beside them (it is how aws-cli and boto3 send a file over 8 MiB) without a target:
    // the workloads the targets are set for are single requests.
    let workloads: [(&str, Unit, Pick, bool, bool); 7] = [
        (
            "large put",
            Unit::MebibytesPerSecond,
            |f| f.large_put,
            true,
            true,
        ),
        (
            "large put, multipart",
            Unit::MebibytesPerSecond,
            |f| f.large_multipart,
            true,
            false,
        ),
        (
            "large get",
            Unit::MebibytesPerSecond,
            |f| f.large_get,
            false,
            true,
        ),
        ("4 KiB puts", Unit::PerSecond, |f| f.small_put, true, true),
        ("4 KiB gets", Unit::PerSecond, |f| f.small_get, false, true),
        (
            "1 MiB puts",
            Unit::MebibytesPerSecond,
            |f| f.medium_put,
            true,
            true,
        ),
        (
            "1 MiB gets",
            Unit::MebibytesPerSecond,
            |f| f.medium_get,
            false,
            true,
        ),
    ];
    let mut r = Report::new();
    // Where the puts' time goes on the leader: what S3 adds per byte (the ETag's MD5),
    // steadier than the throughputs on a shared machine.
    for (e, f) in endpoints.iter().zip(figures).take(2) {
        r.row(Row::new(
            format!("large put: leader CPU ms per MiB, {}", e.name()),
            Unit::Milliseconds,
            f.iter().filter_map(|f| f.large_put_cpu).collect(),
        ));
    }
    for (e, f) in endpoints.iter().zip(figures).take(2) {
        r.row(Row::new(
            format!("1 MiB puts: leader CPU ms per MiB, {}", e.name()),
            Unit::Milliseconds,
            f.iter().filter_map(|f| f.medium_put_cpu).collect(),
        ));
    }
    for (name, unit, pick, is_put, judged) in workloads {
        let series: Vec<Vec<f64>> = figures
            .iter()
            .map(|f| f.iter().map(pick).collect())
            .collect();
        let label = name;
        for (e, s) in endpoints.iter().zip(&series) {
            r.row(Row::new(format!("{label}: {}", e.name()), unit, s.clone()).higher_is_better());
        }
        let ratio = Row::new(
            format!("{label}: S3 / native"),
            Unit::Ratio,
            ratios(&series[1], &series[0]),
        )
        .higher_is_better();
        r.row(if judged {
            ratio.target(Target::at_least(0.85, "S3 at least 0.85 of native").on_median())
        } else {
            ratio
        });
        if series.len() > 2 {
            let (limit, label_t) = if is_put {
                (2.0, "FileGrid S3 at least 2x Garage")
            } else {
                (1.0, "FileGrid S3 not behind Garage")
            };
            let ratio = Row::new(
                format!("{label}: FileGrid S3 / Garage"),
                Unit::Ratio,
                ratios(&series[1], &series[2]),
            )
            .higher_is_better();
            r.row(if judged {
                ratio.target(Target::at_least(limit, label_t).on_median())
            } else {
                ratio
            });
        }
    }
    r
}

/// Per-run ratios `a[i] / b[i]` (runs are paired: they ran back to back).
fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, b)| **b > 0.0)
        .map(|(a, b)| a / b)
        .collect()
}
