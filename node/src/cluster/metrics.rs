//! Prometheus metrics of a cluster server's chunk storage and chunk API.

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::chunk::{ChunkStore, ScrubProgress, format::TRAILER_LEN};

/// The chunk metrics, registered into the process's registry by [`ClusterMetrics::register`].
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    /// `filegrid_chunks_stored`
    pub chunks_stored: IntGauge,
    /// `filegrid_chunk_bytes_stored`: chunk data bytes (without trailers).
    pub chunk_bytes_stored: IntGauge,
    /// `filegrid_checksum_failures_total`: verification failures by reads, verify and scrubbing.
    pub checksum_failures_total: IntCounter,
    /// `filegrid_scrub_bytes_verified_total`
    pub scrub_bytes_verified_total: IntCounter,
    /// `filegrid_scrub_progress_ratio`: fraction of the current scrub pass done.
    pub scrub_progress_ratio: Gauge,
    /// `filegrid_disk_free_bytes`: bytes still writable (capacity limit and disk).
    pub disk_free_bytes: IntGauge,
    /// `filegrid_disk_used_bytes`: bytes taken by chunk files.
    pub disk_used_bytes: IntGauge,
    /// `filegrid_disk_capacity_bytes`: the capacity limit, or the disk size.
    pub disk_capacity_bytes: IntGauge,
    /// `filegrid_chunk_requests_total{op,code}`
    pub requests_total: IntCounterVec,
    /// `filegrid_chunk_bytes_in_total`: chunk bytes received by PUT.
    pub bytes_in_total: IntCounter,
    /// `filegrid_chunk_bytes_out_total`: chunk bytes sent by GET.
    pub bytes_out_total: IntCounter,
    /// `filegrid_chunk_request_seconds{op}`: time to the response head.
    pub request_seconds: HistogramVec,
}

impl ClusterMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            chunks_stored: IntGauge::new("filegrid_chunks_stored", "Chunks stored on this server")?,
            chunk_bytes_stored: IntGauge::new(
                "filegrid_chunk_bytes_stored",
                "Bytes of chunk data stored on this server",
            )?,
            checksum_failures_total: IntCounter::new(
                "filegrid_checksum_failures_total",
                "Chunks found corrupt by reads, verification or the scrubber",
            )?,
            scrub_bytes_verified_total: IntCounter::new(
                "filegrid_scrub_bytes_verified_total",
                "Bytes re-verified by the background scrubber",
            )?,
            scrub_progress_ratio: Gauge::new(
                "filegrid_scrub_progress_ratio",
                "Fraction of the current scrub pass completed",
            )?,
            disk_free_bytes: IntGauge::new(
                "filegrid_disk_free_bytes",
                "Bytes still writable under the capacity limit and the disk's free space",
            )?,
            disk_used_bytes: IntGauge::new(
                "filegrid_disk_used_bytes",
                "Bytes taken by chunk files on the data disk",
            )?,
            disk_capacity_bytes: IntGauge::new(
                "filegrid_disk_capacity_bytes",
                "Configured capacity, or the data disk's size",
            )?,
            requests_total: IntCounterVec::new(
                Opts::new("filegrid_chunk_requests_total", "Chunk API requests"),
                &["op", "code"],
            )?,
            bytes_in_total: IntCounter::new(
                "filegrid_chunk_bytes_in_total",
                "Chunk bytes received",
            )?,
            bytes_out_total: IntCounter::new("filegrid_chunk_bytes_out_total", "Chunk bytes sent")?,
            request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "filegrid_chunk_request_seconds",
                    "Chunk API request time until the response head",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
                &["op"],
            )?,
        };
        registry.register(Box::new(m.chunks_stored.clone()))?;
        registry.register(Box::new(m.chunk_bytes_stored.clone()))?;
        registry.register(Box::new(m.checksum_failures_total.clone()))?;
        registry.register(Box::new(m.scrub_bytes_verified_total.clone()))?;
        registry.register(Box::new(m.scrub_progress_ratio.clone()))?;
        registry.register(Box::new(m.disk_free_bytes.clone()))?;
        registry.register(Box::new(m.disk_used_bytes.clone()))?;
        registry.register(Box::new(m.disk_capacity_bytes.clone()))?;
        registry.register(Box::new(m.requests_total.clone()))?;
        registry.register(Box::new(m.bytes_in_total.clone()))?;
        registry.register(Box::new(m.bytes_out_total.clone()))?;
        registry.register(Box::new(m.request_seconds.clone()))?;
        Ok(m)
    }

    /// Copies the store's and the scrubber's current figures into the gauges and counters.
    pub fn refresh(&self, store: &ChunkStore, scrub: Option<ScrubProgress>) {
        match store.usage() {
            Ok(u) => {
                self.chunks_stored.set(clamp(u.chunks));
                self.chunk_bytes_stored
                    .set(clamp(u.used_bytes.saturating_sub(u.chunks * TRAILER_LEN)));
                self.disk_used_bytes.set(clamp(u.used_bytes));
                self.disk_free_bytes.set(clamp(u.free_bytes));
                self.disk_capacity_bytes.set(clamp(u.capacity_bytes));
            }
            Err(e) => tracing::warn!(error = %e, "could not read disk usage for metrics"),
        }
        catch_up(&self.checksum_failures_total, store.checksum_failures());
        if let Some(p) = scrub {
            catch_up(&self.scrub_bytes_verified_total, p.bytes_verified_total);
            self.scrub_progress_ratio.set(p.ratio());
        }
    }
}

/// Advances a counter that mirrors a monotonic source to the source's value.
fn catch_up(counter: &IntCounter, source: u64) {
    let current = counter.get();
    if source > current {
        counter.inc_by(source - current);
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
