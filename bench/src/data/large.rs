//! One large file: FileGrid put and get beside `cp` ×3 + `sync` and `cat`, each side reading
//! from disk, with the resident memory of every FileGrid process sampled meanwhile.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::io::ReaderStream;

use super::Setup;
use super::files::{cp_and_sync, evict, evict_tree, timed};
use super::rss::{CpuMark, Peak, Sampler};
use crate::error::BenchError;

/// Bytes per read of the source file while uploading.
const READ_BUF: usize = 256 * 1024;

/// Figures of one run.
pub struct LargeRun {
    pub put: Duration,
    pub cp_sync: Duration,
    pub get: Duration,
    pub cat: Duration,
    /// Per process (in [`Setup::processes`] order): the peak during the put and the get.
    pub put_rss: Vec<Peak>,
    /// CPU seconds per process (and ZooKeeper, and the client) during the put.
    pub put_cpu: Vec<(String, f64)>,
    pub get_rss: Vec<Peak>,
    /// CPU seconds per process (and ZooKeeper, and the client) during the get.
    pub get_cpu: Vec<(String, f64)>,
}

pub async fn run(setup: &Setup, run: u32) -> Result<LargeRun, BenchError> {
    let copies: Vec<PathBuf> = (1..=3)
        .map(|i| setup.work.join(format!("copy_{i}")))
        .collect();
    let src = setup.source.clone();
    let cp_sync = blocking(move || {
        evict(&src)?;
        cp_and_sync(&src, &copies)
    })
    .await?;

    let name = format!("large/run_{run}");
    evict(&setup.source)?;
    let sampler = Sampler::start(setup.pids());
    let cpu = CpuMark::take(&setup.cpu_watch);
    let start = Instant::now();
    let put = put(setup, &name).await;
    let put_time = start.elapsed();
    let put_cpu = cpu.used();
    let put_rss = peaks(sampler);
    put?;

    let copy = setup.work.join("copy_1");
    let cat = blocking(move || {
        evict(&copy)?;
        timed("cat", &[copy.as_path()])
    })
    .await?;

    for dir in &setup.data_dirs {
        evict_tree(dir)?;
    }
    let sampler = Sampler::start(setup.pids());
    let cpu = CpuMark::take(&setup.cpu_watch);
    let start = Instant::now();
    let got = get(setup, &name).await;
    let get_time = start.elapsed();
    let get_cpu = cpu.used();
    let get_rss = peaks(sampler);
    got?;

    for i in 1..=3 {
        let _ = std::fs::remove_file(setup.work.join(format!("copy_{i}")));
    }
    setup.delete(&name).await?;
    Ok(LargeRun {
        put: put_time,
        cp_sync,
        get: get_time,
        cat,
        put_rss,
        put_cpu,
        get_rss,
        get_cpu,
    })
}

fn peaks(sampler: Sampler) -> Vec<Peak> {
    sampler.finish().iter().map(|s| s.peak()).collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BenchError> + Send + 'static,
) -> Result<T, BenchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BenchError::Unexpected {
            what: format!("baseline task failed: {e}"),
            logs: String::new(),
        })?
}

/// Streams the source file to FileGrid and checks the answer's size and checksum.
async fn put(setup: &Setup, name: &str) -> Result<(), BenchError> {
    let file = tokio::fs::File::open(&setup.source)
        .await
        .map_err(|e| BenchError::Io(format!("opening {}", setup.source.display()), e))?;
    let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, READ_BUF));
    let resp = setup
        .http
        .put(setup.file_url(name))
        .header(reqwest::header::CONTENT_LENGTH, setup.size)
        .body(body)
        .send()
        .await
        .map_err(|e| setup.failed(format!("PUT {name}: {e}")))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status != reqwest::StatusCode::CREATED {
        return Err(setup.failed(format!("PUT {name} answered {status}: {text}")));
    }
    let answer: filegrid_proto::head::PutAnswer = serde_json::from_str(&text)
        .map_err(|e| setup.failed(format!("PUT {name}: unreadable answer {text:?}: {e}")))?;
    let want = setup.checksum();
    if answer.size != setup.size || answer.checksum != want.as_str() {
        return Err(setup.failed(format!(
            "PUT {name} stored {answer:?}, expected {} bytes with {want}",
            setup.size
        )));
    }
    Ok(())
}

/// Streams the file back, discarding the bytes after checking their count and checksum.
async fn get(setup: &Setup, name: &str) -> Result<(), BenchError> {
    let mut resp = setup
        .http
        .get(setup.file_url(name))
        .send()
        .await
        .map_err(|e| setup.failed(format!("GET {name}: {e}")))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(setup.failed(format!("GET {name} answered {}", resp.status())));
    }
    let mut len = 0u64;
    let mut crc = 0u32;
    while let Some(piece) = resp
        .chunk()
        .await
        .map_err(|e| setup.failed(format!("GET {name} broke off after {len} bytes: {e}")))?
    {
        len += piece.len() as u64;
        crc = crc32c::crc32c_append(crc, &piece);
    }
    if len != setup.size || crc != setup.crc {
        return Err(setup.failed(format!(
            "GET {name} returned {len} bytes with crc32c {crc:08x}, expected {} with {:08x}",
            setup.size, setup.crc
        )));
    }
    Ok(())
}

/// The data directories of the cluster servers, to evict their chunks before a read.
pub fn data_dirs(grid: &filegrid_testkit::Grid) -> Vec<PathBuf> {
    grid.cluster.iter().map(|c| c.data_dir.clone()).collect()
}
