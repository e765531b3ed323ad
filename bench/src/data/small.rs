//! Many small files: puts and gets by concurrent clients, beside a local baseline that
//! does the least a replicated write must (three copies, each fsynced) with the same
//! number of threads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Setup;
use super::rss::CpuMark;
use crate::error::BenchError;
use crate::stats::percentile;

pub const FILE_SIZE: usize = 4096;

/// Throughput and latencies of one phase.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl Phase {
    fn of(latencies: &[Duration], elapsed: Duration) -> Self {
        let secs: Vec<f64> = latencies.iter().map(Duration::as_secs_f64).collect();
        let at = |p| Duration::from_secs_f64(percentile(&secs, p).unwrap_or(0.0));
        Self {
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: at(50.0),
            p99: at(99.0),
        }
    }
}

pub struct SmallRun {
    pub puts: Phase,
    /// CPU seconds each process spent per 1,000 puts: where the time of a small put goes.
    pub put_cpu: Vec<(String, f64)>,
    pub gets: Phase,
    /// The same files stored again with new contents.
    pub overwrites: Phase,
    /// CPU seconds each process spent per 1,000 overwrites.
    pub overwrite_cpu: Vec<(String, f64)>,
    pub local_puts: Phase,
    pub local_gets: Phase,
}

/// The content of file `i`: distinct per file, so a mixed-up read is caught.
fn content(i: usize) -> Bytes {
    let mut v = vec![0u8; FILE_SIZE];
    for (j, b) in v.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31).wrapping_add(j * 7) % 251) as u8;
    }
    Bytes::from(v)
}

/// Puts and gets `n` small files without measuring them, under `warm-up/`.
pub async fn warm_up(setup: &Setup, n: usize) -> Result<(), BenchError> {
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..n).map(content).collect());
    for get in [false, true] {
        fan_out(n, setup.options.clients, {
            let (setup, bodies) = (setup.clone(), bodies.clone());
            move |i| {
                let (setup, body) = (setup.clone(), bodies[i].clone());
                let name = format!("warm-up/{i:06}");
                async move {
                    if get {
                        get_small(&setup, &name, &body).await
                    } else {
                        put_small(&setup, &name, body).await
                    }
                }
            }
        })
        .await?;
    }
    Ok(())
}

pub async fn run(setup: &Setup, run: u32) -> Result<SmallRun, BenchError> {
    let n = setup.options.small_files;
    let clients = setup.options.clients;
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..n).map(content).collect());
    let prefix = format!("small/run_{run}");
    let cpu = CpuMark::take(&setup.cpu_watch);
    let puts = fan_out(n, clients, {
        let (setup, bodies, prefix) = (setup.clone(), bodies.clone(), prefix.clone());
        move |i| {
            let (setup, body) = (setup.clone(), bodies[i].clone());
            let name = format!("{prefix}/{i:06}");
            async move { put_small(&setup, &name, body).await }
        }
    })
    .await?;
    let put_cpu = per_thousand(cpu.used(), n);
    let gets = fan_out(n, clients, {
        let (setup, bodies, prefix) = (setup.clone(), bodies.clone(), prefix.clone());
        move |i| {
            let (setup, body) = (setup.clone(), bodies[i].clone());
            let name = format!("{prefix}/{i:06}");
            async move { get_small(&setup, &name, &body).await }
        }
    })
    .await?;
    // Each file again, with the contents of another: an overwrite reads the file it replaces.
    let cpu = CpuMark::take(&setup.cpu_watch);
    let overwrites = fan_out(n, clients, {
        let (setup, prefix) = (setup.clone(), prefix.clone());
        move |i| {
            let setup = setup.clone();
            let name = format!("{prefix}/{i:06}");
            async move { put_small(&setup, &name, content(i + n)).await }
        }
    })
    .await?;
    let overwrite_cpu = per_thousand(cpu.used(), n);
    let dir = setup.work.join(format!("local_small_{run}"));
    let (local_puts, local_gets) = {
        let bodies = bodies.clone();
        tokio::task::spawn_blocking(move || local(&dir, &bodies, clients))
            .await
            .map_err(|e| BenchError::Unexpected {
                what: format!("local baseline failed: {e}"),
                logs: String::new(),
            })??
    };
    Ok(SmallRun {
        puts,
        put_cpu,
        gets,
        overwrites,
        overwrite_cpu,
        local_puts,
        local_gets,
    })
}

/// CPU seconds per process over `n` operations, scaled to 1,000 operations.
fn per_thousand(used: Vec<(String, f64)>, n: usize) -> Vec<(String, f64)> {
    used.into_iter()
        .map(|(name, secs)| (name, secs * 1000.0 / n.max(1) as f64))
        .collect()
}

/// Runs `op(0..n)` on `clients` concurrent tasks; returns the throughput and latencies.
async fn fan_out<F, Fut>(n: usize, clients: usize, op: F) -> Result<Phase, BenchError>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), BenchError>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (next, op) = (next.clone(), op.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, BenchError>(latencies);
                }
                let t = Instant::now();
                op(i).await?;
                latencies.push(t.elapsed());
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        let r = r.map_err(|e| BenchError::Unexpected {
            what: format!("client task failed: {e}"),
            logs: String::new(),
        })?;
        all.extend(r?);
    }
    Ok(Phase::of(&all, start.elapsed()))
}

async fn put_small(setup: &Setup, name: &str, body: Bytes) -> Result<(), BenchError> {
    let resp = setup
        .http
        .put(setup.file_url(name))
        .timeout(Duration::from_secs(30))
        .body(body)
        .send()
        .await
        .map_err(|e| setup.failed(format!("PUT {name}: {e}")))?;
    let status = resp.status();
    if status != reqwest::StatusCode::CREATED {
        let text = resp.text().await.unwrap_or_default();
        return Err(setup.failed(format!("PUT {name} answered {status}: {text}")));
    }
    // Read the answer so the connection goes back to the pool.
    resp.bytes()
        .await
        .map_err(|e| setup.failed(format!("PUT {name}: {e}")))?;
    Ok(())
}

async fn get_small(setup: &Setup, name: &str, want: &[u8]) -> Result<(), BenchError> {
    let resp = setup
        .http
        .get(setup.file_url(name))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| setup.failed(format!("GET {name}: {e}")))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| setup.failed(format!("GET {name}: {e}")))?;
    if status != reqwest::StatusCode::OK || body.as_ref() != want {
        return Err(setup.failed(format!(
            "GET {name} answered {status} with {} bytes that {} the {} stored",
            body.len(),
            if body.as_ref() == want {
                "match"
            } else {
                "differ from"
            },
            want.len()
        )));
    }
    Ok(())
}

/// The local baseline: `clients` threads write each file as three copies, each fsynced
/// (a replicated write's least work), then read one copy of each back.
fn local(dir: &Path, bodies: &[Bytes], clients: usize) -> Result<(Phase, Phase), BenchError> {
    let io = |what: String| move |e| BenchError::Io(what, e);
    for copy in 0..3 {
        std::fs::create_dir_all(dir.join(copy.to_string()))
            .map_err(io(format!("creating {}", dir.display())))?;
    }
    let path =
        |copy: usize, i: usize| -> PathBuf { dir.join(copy.to_string()).join(i.to_string()) };
    let puts = threads(bodies.len(), clients, |i| {
        for copy in 0..3 {
            let p = path(copy, i);
            let mut f =
                std::fs::File::create(&p).map_err(io(format!("creating {}", p.display())))?;
            f.write_all(&bodies[i])
                .map_err(io(format!("writing {}", p.display())))?;
            f.sync_all().map_err(io(format!("fsync {}", p.display())))?;
        }
        Ok(())
    })?;
    let gets = threads(bodies.len(), clients, |i| {
        let p = path(0, i);
        let mut buf = Vec::with_capacity(FILE_SIZE);
        std::fs::File::open(&p)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(io(format!("reading {}", p.display())))?;
        if buf != bodies[i] {
            return Err(BenchError::Unexpected {
                what: format!("{} does not hold what was written", p.display()),
                logs: String::new(),
            });
        }
        Ok(())
    })?;
    // The files stay until the work directory goes at the end: deleting thousands of files
    // here would slow the next run's FileGrid writes (for about 30 s after an inode is freed,
    // ext4 scans past it whenever it allocates a new one), charging the baseline's clean-up
    // to FileGrid.
    Ok((puts, gets))
}

fn threads(
    n: usize,
    clients: usize,
    op: impl Fn(usize) -> Result<(), BenchError> + Sync,
) -> Result<Phase, BenchError> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let results: Vec<Result<Vec<Duration>, BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(latencies);
                        }
                        let t = Instant::now();
                        op(i)?;
                        latencies.push(t.elapsed());
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(BenchError::Unexpected {
                        what: "a baseline thread panicked".into(),
                        logs: String::new(),
                    })
                })
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let mut all = Vec::with_capacity(n);
    for r in results {
        all.extend(r?);
    }
    Ok(Phase::of(&all, elapsed))
}
