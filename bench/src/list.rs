//! The listing benchmark: one directory of many files (a million by default), pages of
//! 1,000 from random places in it on the leader and on a standby while writers keep adding
//! files to the same directory, the writers' latency with and without the listers, and how
//! soon a head that never listed the directory, and a new leader after `kill -9` of the old
//! one, serve a page.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use filegrid_proto::head::{ListPage, StatusView};
use filegrid_testkit::{Grid, GridOptions};
use rand::Rng;

use crate::binaries::NodeBinaries;
use crate::data::{http_client, on_grid};
use crate::error::BenchError;
use crate::stats;

/// The directory the files go to.
const DIR: &str = "big";

#[derive(Clone, Debug)]
pub struct ListOptions {
    pub files: u64,
    pub page: usize,
    /// Pages timed (half on the leader, half on a standby).
    pub samples: usize,
    /// Clients writing new files into the directory while pages are timed.
    pub writers: usize,
    /// Clients filling the directory.
    pub fillers: usize,
    pub zk_heap: String,
    pub dir: PathBuf,
    pub keep_logs: bool,
}

fn name(i: u64) -> String {
    format!("{DIR}/f{i:09}")
}

fn unexpected(what: String) -> BenchError {
    BenchError::Unexpected {
        what,
        logs: String::new(),
    }
}

pub async fn run(o: ListOptions, bins: NodeBinaries) -> Result<(), BenchError> {
    println!(
        "FileGrid listing benchmark: {} files of 0 bytes in one directory; pages of {}; \
         {} writers into the same directory while pages are timed; 2 heads + 3 cluster \
         servers on loopback, ZooKeeper heap {}; {} CPUs",
        o.files,
        o.page,
        o.writers,
        o.zk_heap,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::fs::create_dir_all(&o.dir).map_err(BenchError::TempDir)?;
    let options = GridOptions {
        heads: 2,
        cluster_servers: 3,
        base_dir: Some(o.dir.clone()),
        log_filter: Some("info,zookeeper_client=warn".into()),
        // Generous: a ZooKeeper of millions of nodes pauses for its garbage collection.
        session_timeout: "10s".into(),
        zk_heap: o.zk_heap.clone(),
        s3: true,
        ..GridOptions::default()
    };
    on_grid(&bins.node, options, o.keep_logs, async |grid| {
        measure(&o, grid).await
    })
    .await
}

async fn measure(o: &ListOptions, grid: &mut Grid) -> Result<(), BenchError> {
    let http = http_client(o.fillers.max(o.writers) + 4, grid)?;
    let leader = tokio::task::block_in_place(|| grid.leader_url(Duration::from_secs(60)));
    let standby = (0..grid.heads.len())
        .map(|i| grid.head_url(i))
        .find(|u| *u != leader)
        .ok_or_else(|| unexpected("no standby head".into()))?;

    // Fill the directory.
    let started = Instant::now();
    fill(&http, &leader, o.files, o.fillers).await?;
    let fill_secs = started.elapsed().as_secs_f64();
    println!(
        "filled {} files in {:.0} s ({:.0} files/s, {} clients)",
        o.files,
        fill_secs,
        o.files as f64 / fill_secs,
        o.fillers
    );

    // Writers alone, for the baseline of their latency.
    let quiet = writers(&http, &leader, o.writers, Duration::from_secs(10), None).await?;

    // The first page on each head loads the directory into its index.
    for (role, url) in [("leader", &leader), ("standby", &standby)] {
        let t = Instant::now();
        let page = list_page(&http, url, None, o.page).await?;
        println!(
            "first page on the {role} (loads the directory): {:.0} ms, {} files",
            t.elapsed().as_secs_f64() * 1e3,
            page.files.len()
        );
    }

    // Pages at random cursors on both heads, with the writers going.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = tokio::spawn({
        let (http, leader, n, stop) = (http.clone(), leader.clone(), o.writers, stop.clone());
        async move { writers(&http, &leader, n, Duration::from_secs(3600), Some(stop)).await }
    });
    let mut leader_ms = Vec::new();
    let mut standby_ms = Vec::new();
    let mut s3_ms = Vec::new();
    let s3 = s3_lister(grid)?;
    // Presigned URLs carry their own credential: no bearer header beside them.
    let s3_http = reqwest::Client::new();
    for i in 0..o.samples {
        let at = rand::rng().random_range(0..o.files);
        let (url, into) = if i % 2 == 0 {
            (&leader, &mut leader_ms)
        } else {
            (&standby, &mut standby_ms)
        };
        let t = Instant::now();
        let page = list_page(&http, url, Some(&name(at)), o.page).await?;
        into.push(t.elapsed().as_secs_f64() * 1e3);
        check_page(&page, &name(at), o.page)?;
        // And the same through S3 (the directory is a bucket), on the head of this turn.
        let (bucket_url, creds) = &s3;
        let key = name(at)[DIR.len() + 1..].to_string();
        let t = Instant::now();
        let keys = s3_page(&s3_http, &bucket_url[i % 2], creds, &key, o.page).await?;
        s3_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let ordered = keys.windows(2).all(|w| w[0] < w[1]) && keys.first().is_none_or(|k| *k > key);
        if !ordered || keys.len() != o.page {
            return Err(unexpected(format!(
                "an S3 page after {key} is out of order"
            )));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let loaded = busy
        .await
        .map_err(|e| unexpected(format!("writers: {e}")))??;

    println!();
    println!(
        "pages of {} at random places, with {} writers (the native API; and S3 \
         ListObjectsV2 of the directory as a bucket, with start-after):",
        o.page, o.writers
    );
    for (role, ms) in [
        ("leader", &leader_ms),
        ("standby", &standby_ms),
        ("S3 (both)", &s3_ms),
    ] {
        println!(
            "  {role:8} {} pages: median {:.1} ms, 99th percentile {:.1} ms, worst {:.1} ms",
            ms.len(),
            stats::percentile(ms, 50.0).unwrap_or(f64::NAN),
            stats::percentile(ms, 99.0).unwrap_or(f64::NAN),
            stats::percentile(ms, 100.0).unwrap_or(f64::NAN),
        );
    }
    println!(
        "writers' put latency: median {:.1} ms alone ({} puts), {:.1} ms beside the listers ({} puts)",
        quiet.median_ms(),
        quiet.count(),
        loaded.median_ms(),
        loaded.count()
    );

    let rss: Vec<String> = grid
        .heads
        .iter()
        .map(|h| {
            let mib = h
                .proc
                .rss_bytes()
                .map_or(f64::NAN, |b| b as f64 / (1 << 20) as f64);
            format!("{} {mib:.0} MiB", h.id)
        })
        .collect();
    println!(
        "heads' resident memory with the directory indexed: {}",
        rss.join(", ")
    );

    takeover(o, grid, &http, &leader, &standby).await
}

/// `kill -9` of the leader: how soon the standby leads, and lists as leader.
async fn takeover(
    o: &ListOptions,
    grid: &mut Grid,
    http: &reqwest::Client,
    leader: &str,
    standby: &str,
) -> Result<(), BenchError> {
    let index = (0..grid.heads.len())
        .find(|i| grid.head_url(*i) == leader)
        .ok_or_else(|| unexpected("the leader is not one of the grid's heads".into()))?;
    let killed = Instant::now();
    grid.heads[index].proc.kill9();
    let deadline = killed + Duration::from_secs(120);
    loop {
        if Instant::now() > deadline {
            return Err(unexpected(
                "the standby did not take over within 120 s".into(),
            ));
        }
        let status: Option<StatusView> = match http.get(format!("{standby}/v1/status")).send().await
        {
            Ok(r) => r.json().await.ok(),
            Err(_) => None,
        };
        if status.is_some_and(|s| s.status.role == filegrid_proto::head::Role::Leader) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leads = killed.elapsed();
    list_page(http, standby, Some(&name(o.files / 2)), o.page).await?;
    println!(
        "kill -9 of the leader: the standby leads after {:.2} s and has served a page at {:.2} s",
        leads.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );

    // A head that never listed the directory: restarted, it loads it on its first page.
    tokio::task::block_in_place(|| grid.restart_head(index));
    let restarted = grid.head_url(index);
    let t = Instant::now();
    let deadline = t + Duration::from_secs(120);
    let first = loop {
        match list_page(http, &restarted, Some(&name(o.files / 2)), o.page).await {
            Ok(_) => break t.elapsed(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => return Err(e),
        }
    };
    let t = Instant::now();
    list_page(http, &restarted, Some(&name(o.files / 3)), o.page).await?;
    println!(
        "a restarted head serves its first page {:.2} s after it starts (the next in {:.0} ms)",
        first.as_secs_f64(),
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// The bucket URLs of the two heads' S3 listeners and the credentials to sign with.
fn s3_lister(grid: &Grid) -> Result<([rusty_s3::Bucket; 2], rusty_s3::Credentials), BenchError> {
    let bucket = |i: usize| {
        let url = grid
            .s3_url(i)
            .parse()
            .map_err(|e| unexpected(format!("S3 endpoint: {e}")))?;
        rusty_s3::Bucket::new(
            url,
            rusty_s3::UrlStyle::Path,
            DIR.to_string(),
            "us-east-1".to_string(),
        )
        .map_err(|e| unexpected(format!("S3 bucket: {e}")))
    };
    let p = filegrid_testkit::auth::READER;
    Ok((
        [bucket(0)?, bucket(1)?],
        rusty_s3::Credentials::new(p.access_key, p.secret),
    ))
}

/// One ListObjectsV2 page of `max` keys after `after`.
async fn s3_page(
    http: &reqwest::Client,
    bucket: &rusty_s3::Bucket,
    creds: &rusty_s3::Credentials,
    after: &str,
    max: usize,
) -> Result<Vec<String>, BenchError> {
    use rusty_s3::S3Action;
    let mut action = bucket.list_objects_v2(Some(creds));
    action.with_start_after(after);
    action.with_max_keys(max);
    let url = action.sign(Duration::from_secs(600));
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| unexpected(format!("S3 listing: {e}")))?;
    if !resp.status().is_success() {
        return Err(unexpected(format!("S3 listing answered {}", resp.status())));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| unexpected(format!("S3 listing: {e}")))?;
    let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
        .map_err(|e| unexpected(format!("S3 listing: {e}")))?;
    Ok(page.contents.into_iter().map(|c| c.key).collect())
}

/// Every page starts right after its cursor and is in order.
fn check_page(page: &ListPage, after: &str, size: usize) -> Result<(), BenchError> {
    let paths: Vec<&str> = page.files.iter().map(|f| f.path.as_str()).collect();
    let ordered = paths.windows(2).all(|w| w[0] < w[1]) && paths.first().is_none_or(|p| *p > after);
    if !ordered || (paths.len() < size && page.next_cursor.is_some()) {
        return Err(unexpected(format!(
            "a page after {after} is out of order or short: {} files, next {:?}",
            paths.len(),
            page.next_cursor
        )));
    }
    Ok(())
}

async fn list_page(
    http: &reqwest::Client,
    base: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<ListPage, BenchError> {
    let mut req = http
        .get(format!("{base}/v1/files"))
        .query(&[("prefix", format!("{DIR}/")), ("limit", limit.to_string())]);
    if let Some(c) = cursor {
        req = req.query(&[("cursor", c)]);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unexpected(format!("listing on {base}: {e}")))?;
    if !resp.status().is_success() {
        return Err(unexpected(format!(
            "listing on {base} answered {}",
            resp.status()
        )));
    }
    resp.json()
        .await
        .map_err(|e| unexpected(format!("listing on {base}: {e}")))
}

async fn put_empty(http: &reqwest::Client, base: &str, path: &str) -> Result<(), BenchError> {
    for attempt in 0..5u32 {
        match http
            .put(format!("{base}/v1/files/{path}"))
            .body("")
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if attempt < 4 && r.status().is_server_error() => {}
            Ok(r) => return Err(unexpected(format!("PUT {path} answered {}", r.status()))),
            Err(_) if attempt < 4 => {}
            Err(e) => return Err(unexpected(format!("PUT {path}: {e}"))),
        }
        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
    }
    Err(unexpected(format!("PUT {path} kept failing")))
}

async fn fill(
    http: &reqwest::Client,
    base: &str,
    files: u64,
    clients: usize,
) -> Result<(), BenchError> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (http, base, next) = (http.clone(), base.to_string(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files {
                    return Ok::<(), BenchError>(());
                }
                put_empty(&http, &base, &name(i)).await?;
                if i > 0 && i % 100_000 == 0 {
                    println!("  {i} files after {:.0} s", started.elapsed().as_secs_f64());
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| unexpected(format!("filling: {e}")))??;
    }
    Ok(())
}

/// Put latencies of the writers.
struct Latencies(Vec<f64>);

impl Latencies {
    fn median_ms(&self) -> f64 {
        stats::percentile(&self.0, 50.0).unwrap_or(f64::NAN)
    }
    fn count(&self) -> usize {
        self.0.len()
    }
}

/// `n` clients putting new files into the directory for `period` or until `stop`.
async fn writers(
    http: &reqwest::Client,
    base: &str,
    n: usize,
    period: Duration,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Latencies, BenchError> {
    let until = Instant::now() + period;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..n {
        let (http, base, stop) = (http.clone(), base.to_string(), stop.clone());
        tasks.spawn(async move {
            let mut ms = Vec::new();
            let mut i = 0u64;
            while Instant::now() < until
                && !stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
            {
                let path = format!("{DIR}/w{w}-{}-{i}", rand::rng().random::<u32>());
                let t = Instant::now();
                put_empty(&http, &base, &path).await?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                i += 1;
            }
            Ok::<Vec<f64>, BenchError>(ms)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.map_err(|e| unexpected(format!("writer: {e}")))??);
    }
    Ok(Latencies(all))
}
