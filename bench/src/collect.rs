//! The orphan-collection benchmark: files of several chunks are put and then deleted, and the
//! cluster servers' chunk counts are watched until every copy of their chunks is gone. It
//! measures how fast the leader deletes orphaned chunks once their grace has run out, which
//! decides whether collection keeps up with a workload of overwrites and deletes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use filegrid_testkit::{Grid, GridOptions};

use crate::binaries::NodeBinaries;
use crate::data::{http_client, on_grid};
use crate::error::BenchError;
use crate::stats;

/// The grid's chunk size: small, so that many chunks cost little data.
const CHUNK_SIZE: u64 = 64 * 1024;
/// The grid's orphan grace.
const GRACE: Duration = Duration::from_secs(1);
/// Copies of every chunk.
const REPLICAS: u64 = 3;

#[derive(Clone, Debug)]
pub struct CollectOptions {
    pub runs: u32,
    pub files: u64,
    /// Chunks per file.
    pub chunks: u64,
    pub clients: usize,
    pub dir: PathBuf,
    pub keep_logs: bool,
}

fn unexpected(what: String) -> BenchError {
    BenchError::Unexpected {
        what,
        logs: String::new(),
    }
}

pub async fn run(o: CollectOptions, bins: NodeBinaries) -> Result<(), BenchError> {
    let orphans = o.files * o.chunks * REPLICAS;
    println!(
        "FileGrid orphan-collection benchmark: {} files of {} chunks of {} KiB put by {} \
         clients, then deleted: {orphans} chunk copies to collect per run; orphan grace {} s; \
         2 heads + 3 cluster servers on loopback, secured, TLS on every listener; {} CPUs",
        o.files,
        o.chunks,
        CHUNK_SIZE / 1024,
        o.clients,
        GRACE.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::fs::create_dir_all(&o.dir).map_err(BenchError::TempDir)?;
    let options = GridOptions {
        heads: 2,
        cluster_servers: 3,
        base_dir: Some(o.dir.clone()),
        log_filter: Some("info,zookeeper_client=warn".into()),
        chunk_size: format!("{}KiB", CHUNK_SIZE / 1024),
        orphan_grace: format!("{}s", GRACE.as_secs()),
        tls: true,
        zk_auth: true,
        ..GridOptions::default()
    };
    on_grid(&bins.node, options, o.keep_logs, async |grid| {
        measure(&o, grid).await
    })
    .await
}

/// One run's figures.
struct Run {
    /// Seconds from the last delete's answer to the last copy gone.
    after_deletes: f64,
    /// Copies deleted per second, from the first copy gone to the last.
    rate: f64,
}

async fn measure(o: &CollectOptions, grid: &mut Grid) -> Result<(), BenchError> {
    let http = http_client(o.clients + 4, grid)?;
    let leader = tokio::task::block_in_place(|| grid.leader_url(Duration::from_secs(60)));
    let body = bytes::Bytes::from(vec![0x5au8; (CHUNK_SIZE * o.chunks) as usize]);
    let orphans = o.files * o.chunks * REPLICAS;
    let mut runs = Vec::new();
    for run in 0..o.runs {
        let before = stored(grid).await?;
        let t = Instant::now();
        each_file(&http, &leader, o, run, Some(body.clone())).await?;
        let put_secs = t.elapsed().as_secs_f64();
        let full = before + orphans;
        wait_stored(grid, Duration::from_secs(120), |n| n >= full).await?;
        let t = Instant::now();
        each_file(&http, &leader, o, run, None).await?;
        let delete_secs = t.elapsed().as_secs_f64();
        let deleted = Instant::now();
        // Every copy gone: the first time fewer are stored than were, and the last.
        let first = wait_stored(grid, Duration::from_secs(120), |n| n < full).await?;
        let last = wait_stored(grid, Duration::from_secs(1800), |n| n <= before).await?;
        let r = Run {
            after_deletes: last.saturating_duration_since(deleted).as_secs_f64(),
            rate: orphans as f64
                / last
                    .saturating_duration_since(first)
                    .as_secs_f64()
                    .max(1e-3),
        };
        println!(
            "run {}: put {} files in {put_secs:.1} s, deleted them in {delete_secs:.1} s; \
             all {orphans} copies gone {:.1} s after the last delete, {:.0} copies/s \
             from the first gone to the last",
            run + 1,
            o.files,
            r.after_deletes,
            r.rate
        );
        runs.push(r);
    }
    let after: Vec<f64> = runs.iter().map(|r| r.after_deletes).collect();
    let rate: Vec<f64> = runs.iter().map(|r| r.rate).collect();
    println!();
    println!(
        "median of {} runs: {:.1} s from the last delete to the last copy gone (grace {} s), \
         {:.0} copies deleted per second",
        o.runs,
        stats::percentile(&after, 50.0).unwrap_or(f64::NAN),
        GRACE.as_secs(),
        stats::percentile(&rate, 50.0).unwrap_or(f64::NAN),
    );
    Ok(())
}

/// Puts (with `body`) or deletes every file of `run`, by `o.clients` clients.
async fn each_file(
    http: &reqwest::Client,
    base: &str,
    o: &CollectOptions,
    run: u32,
    body: Option<bytes::Bytes>,
) -> Result<(), BenchError> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..o.clients.max(1) {
        let (http, base, next, body) = (http.clone(), base.to_string(), next.clone(), body.clone());
        let files = o.files;
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return Ok::<(), BenchError>(());
                }
                let url = format!("{base}/v1/files/collect/r{run}/f{i:07}");
                let req = match &body {
                    Some(b) => http.put(&url).body(b.clone()),
                    None => http.delete(&url),
                };
                let r = req
                    .send()
                    .await
                    .map_err(|e| unexpected(format!("{url}: {e}")))?;
                if !r.status().is_success() {
                    return Err(unexpected(format!("{url} answered {}", r.status())));
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| unexpected(format!("a client: {e}")))??;
    }
    Ok(())
}

/// Chunk copies stored on all cluster servers together.
async fn stored(grid: &Grid) -> Result<u64, BenchError> {
    tokio::task::block_in_place(|| {
        let mut total = 0u64;
        for c in &grid.cluster {
            let text = grid
                .get(c.port, "/metrics")
                .ok_or_else(|| unexpected(format!("no metrics from {}", c.id)))?;
            let n = text
                .lines()
                .find_map(|l| l.strip_prefix("filegrid_chunks_stored "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| unexpected(format!("{} reports no filegrid_chunks_stored", c.id)))?;
            total += n as u64;
        }
        Ok(total)
    })
}

/// When the stored count first satisfied `done`, polling every 50 ms up to `timeout`.
async fn wait_stored(
    grid: &Grid,
    timeout: Duration,
    done: impl Fn(u64) -> bool,
) -> Result<Instant, BenchError> {
    let deadline = Instant::now() + timeout;
    loop {
        let at = Instant::now();
        let n = stored(grid).await?;
        if done(n) {
            return Ok(at);
        }
        if at >= deadline {
            return Err(BenchError::Timeout {
                what: format!("the chunk count to change ({n} stored)"),
                timeout,
                logs: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
