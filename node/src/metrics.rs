//! Prometheus metrics of every role. Each process owns one [`prometheus::Registry`], served at
//! `/metrics`; the metric names are part of FileGrid's interface (dashboards use them).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// A registry with the process collector (CPU, memory, open files) and the listeners'
/// metrics ([`connections_refused`]) already in it.
pub fn new_registry() -> Registry {
    let registry = Registry::new();
    register(&registry, connections_refused().clone());
    register(&registry, md5_hashed_bytes().clone());
    #[cfg(target_os = "linux")]
    {
        let pc = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(e) = registry.register(Box::new(pc)) {
            tracing::warn!(error = %e, "process metrics unavailable");
        }
    }
    registry
}

/// Connections a listener refused because `max_connections` were being served (answered
/// `503` or, past the answers in progress, closed), by listener address. One per process,
/// kept by the accept loop of every listener (`http::serve`).
pub fn connections_refused() -> &'static IntCounterVec {
    static REFUSED: std::sync::OnceLock<IntCounterVec> = std::sync::OnceLock::new();
    REFUSED.get_or_init(|| {
        IntCounterVec::new(
            Opts::new(
                "filegrid_connections_refused_total",
                "connections refused because max_connections were being served",
            ),
            &["listener"],
        )
        .unwrap_or_else(|_| unreachable_metric())
    })
}

/// Bytes of S3 bodies whose MD5 was computed, by pass: `lanes` (several uploads at once in
/// AVX2 registers) or `single` (one upload alone). One per process, kept by the
/// [`crate::multi_md5`] thread.
pub fn md5_hashed_bytes() -> &'static IntCounterVec {
    static HASHED: std::sync::OnceLock<IntCounterVec> = std::sync::OnceLock::new();
    HASHED.get_or_init(|| {
        IntCounterVec::new(
            Opts::new(
                "filegrid_s3_md5_bytes_total",
                "bytes of S3 bodies hashed for their ETag, by pass: several uploads at once (lanes) or one alone (single)",
            ),
            &["pass"],
        )
        .unwrap_or_else(|_| unreachable_metric())
    })
}

/// Renders the registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        tracing::warn!(error = %e, "metric registered twice");
    }
    metric
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        r,
        IntCounter::new(name, help).unwrap_or_else(|_| unreachable_metric()),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        r,
        IntGauge::new(name, help).unwrap_or_else(|_| unreachable_metric()),
    )
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|_| unreachable_metric()),
    )
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    register(
        r,
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .unwrap_or_else(|_| unreachable_metric()),
    )
}

/// Metric names and help texts are constants checked by the tests below; a bad one is a bug
/// caught before release, never a runtime condition.
fn unreachable_metric<T>() -> T {
    panic!("invalid metric definition")
}

/// ZooKeeper session state, exported by every role.
#[derive(Clone)]
pub struct ZkMetrics {
    pub connected: IntGauge,
    pub session_expirations: IntCounter,
    pub connection_losses: IntCounter,
}

impl ZkMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            connected: gauge(
                r,
                "filegrid_zk_connected",
                "1 while the ZooKeeper session is connected",
            ),
            session_expirations: counter(
                r,
                "filegrid_zk_session_expirations_total",
                "ZooKeeper sessions that expired and were replaced",
            ),
            connection_losses: counter(
                r,
                "filegrid_zk_connection_losses_total",
                "times the ZooKeeper connection was lost",
            ),
        }
    }
}

/// Election metrics of a head.
#[derive(Clone)]
pub struct HeadMetrics {
    pub zk: ZkMetrics,
    pub elections: IntCounterVec,
    pub leader_changes: IntCounter,
    pub epoch: IntGauge,
    pub is_leader: IntGauge,
    pub fenced_rejections: IntCounter,
    pub fenced_writes: IntCounterVec,
}

impl HeadMetrics {
    pub fn new(r: &Registry) -> Self {
        let m = Self::register(r);
        for result in ["won", "lost"] {
            m.elections.with_label_values(&[result]);
        }
        for result in crate::fencing::WRITE_RESULTS {
            m.fenced_writes.with_label_values(&[result]);
        }
        m
    }

    fn register(r: &Registry) -> Self {
        Self {
            zk: ZkMetrics::new(r),
            elections: counter_vec(
                r,
                "filegrid_elections_total",
                "leadership claims made by this head, by result (won, lost)",
                &["result"],
            ),
            leader_changes: counter(
                r,
                "filegrid_leader_changes_total",
                "changes of the leader (server or epoch) seen by this head",
            ),
            epoch: gauge(r, "filegrid_epoch", "newest leader epoch seen by this head"),
            is_leader: gauge(r, "filegrid_is_leader", "1 while this head acts as leader"),
            fenced_rejections: counter(
                r,
                "filegrid_fenced_writes_rejected_total",
                "metadata writes rejected because this head's leadership had ended",
            ),
            fenced_writes: counter_vec(
                r,
                "filegrid_fenced_writes_total",
                "fenced metadata transactions sent to ZooKeeper by this head, by result (ok; \
                 failed: a condition of the transaction did not hold; deposed; error)",
                &["result"],
            ),
        }
    }
}

/// Data-path metrics of a head (the `heartbeat_*` names are those of the original system, so
/// existing dashboards keep working).
#[derive(Clone)]
pub struct DataMetrics {
    pub heartbeat_active: IntGauge,
    pub heartbeat_received: IntCounter,
    pub heartbeat_seconds: prometheus::Histogram,
    pub heartbeat_errors: IntCounter,
    pub servers_live: IntGauge,
    pub under_replicated: IntGauge,
    pub repairs: IntCounterVec,
    pub repair_chunks_left: IntGauge,
    pub repair_bytes_left: IntGauge,
    pub repair_rate_bytes: IntGauge,
    pub repair_eta_seconds: IntGauge,
    pub files: IntGauge,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub replica_failures: IntCounterVec,
    pub read_hedges: IntCounter,
    pub orphans_deleted: IntCounter,
    pub read_cache: crate::files::cache::CacheMetrics,
}

impl DataMetrics {
    pub fn new(r: &Registry) -> Self {
        let m = Self::register(r);
        // Known label values exist from the start, so dashboards show 0 rather than no data.
        for reason in ["dead", "damaged", "decommission", "read", "under"] {
            m.repairs.with_label_values(&[reason]);
        }
        for op in ["read", "write"] {
            m.replica_failures.with_label_values(&[op]);
        }
        m
    }

    fn register(r: &Registry) -> Self {
        Self {
            heartbeat_active: gauge(
                r,
                "heartbeat_active_connections",
                "cluster servers whose heartbeats arrive (within dead_after)",
            ),
            heartbeat_received: counter(
                r,
                "heartbeat_messages_received_total",
                "heartbeats received from cluster servers",
            ),
            heartbeat_seconds: register(
                r,
                prometheus::Histogram::with_opts(
                    HistogramOpts::new(
                        "heartbeat_processing_time_seconds",
                        "time to process one heartbeat",
                    )
                    .buckets(vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1]),
                )
                .unwrap_or_else(|_| unreachable_metric()),
            ),
            heartbeat_errors: counter(
                r,
                "heartbeat_errors_total",
                "heartbeats rejected (malformed, unknown server, not leader)",
            ),
            servers_live: gauge(
                r,
                "filegrid_cluster_servers_live",
                "cluster servers registered and heartbeating",
            ),
            under_replicated: gauge(
                r,
                "filegrid_under_replicated_chunks",
                "chunks with fewer live replicas than the replication factor",
            ),
            repairs: counter_vec(
                r,
                "filegrid_repairs_total",
                "chunk copies made to restore replication, by reason (dead, damaged, decommission, read, under)",
                &["reason"],
            ),
            repair_chunks_left: gauge(
                r,
                "filegrid_repair_chunks_left",
                "chunk copies the leader's repair pass planned and has not made yet",
            ),
            repair_bytes_left: gauge(
                r,
                "filegrid_repair_bytes_left",
                "bytes of the chunk copies the repair pass has not made yet",
            ),
            repair_rate_bytes: gauge(
                r,
                "filegrid_repair_rate_bytes",
                "bytes per second the current or last repair pass copied",
            ),
            repair_eta_seconds: gauge(
                r,
                "filegrid_repair_eta_seconds",
                "estimated seconds until the repair pass's copies are made (0 when none are left)",
            ),
            files: gauge(
                r,
                "filegrid_files",
                "files in the namespace (as last counted by the leader)",
            ),
            bytes_in: counter(
                r,
                "filegrid_file_bytes_in_total",
                "file bytes received by uploads",
            ),
            bytes_out: counter(
                r,
                "filegrid_file_bytes_out_total",
                "file bytes sent by downloads",
            ),
            replica_failures: counter_vec(
                r,
                "filegrid_replica_failures_total",
                "failed chunk writes or reads on a replica, by operation",
                &["op"],
            ),
            read_hedges: counter(
                r,
                "filegrid_read_hedges_total",
                "chunk reads that asked another replica as well because the first had not answered in time",
            ),
            orphans_deleted: counter(
                r,
                "filegrid_orphans_deleted_total",
                "orphaned chunk copies (no file names them) the leader deleted after their grace",
            ),
            read_cache: crate::files::cache::CacheMetrics {
                hits: counter(
                    r,
                    "filegrid_read_cache_hits_total",
                    "chunk reads served from the head's read cache",
                ),
                misses: counter(
                    r,
                    "filegrid_read_cache_misses_total",
                    "reads of chunks small enough for the read cache that were not in it",
                ),
                bytes: gauge(
                    r,
                    "filegrid_read_cache_bytes",
                    "memory the head's read cache holds (at most read_cache_size)",
                ),
            },
        }
    }
}

/// Health-check and failover metrics of a monitor.
#[derive(Clone)]
pub struct MonitorMetrics {
    pub zk: ZkMetrics,
    pub check_seconds: HistogramVec,
    pub check_failures: IntCounterVec,
    pub forced_failovers: IntCounter,
    pub exclusions_lifted: IntCounter,
    pub heads_known: IntGauge,
    pub heads_healthy: IntGauge,
}

impl MonitorMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            zk: ZkMetrics::new(r),
            check_seconds: histogram_vec(
                r,
                "filegrid_health_check_seconds",
                "latency of health checks (TCP connect + HTTP /health) per head",
                &["server_id"],
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            check_failures: counter_vec(
                r,
                "filegrid_health_check_failures_total",
                "failed health checks per head",
                &["server_id"],
            ),
            forced_failovers: counter(
                r,
                "filegrid_forced_failovers_total",
                "hung leaders this monitor excluded to force a new election",
            ),
            exclusions_lifted: counter(
                r,
                "filegrid_exclusions_lifted_total",
                "excluded heads this monitor let back after they were healthy again",
            ),
            heads_known: gauge(r, "filegrid_heads_known", "heads registered in ZooKeeper"),
            heads_healthy: gauge(r, "filegrid_heads_healthy", "heads whose last check passed"),
        }
    }
}

/// Per-route HTTP metrics, exported by every role's HTTP servers.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: IntCounterVec,
    pub seconds: HistogramVec,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
}

impl HttpMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            requests: counter_vec(
                r,
                "filegrid_http_requests_total",
                "HTTP requests served, by route, method and status code",
                &["route", "method", "code"],
            ),
            seconds: histogram_vec(
                r,
                "filegrid_http_request_seconds",
                "HTTP request latency by route (until the response head is sent)",
                &["route"],
                prometheus::exponential_buckets(0.0005, 2.5, 14).unwrap_or_default(),
            ),
            bytes_in: counter(
                r,
                "filegrid_http_bytes_in_total",
                "request body bytes received (by Content-Length)",
            ),
            bytes_out: counter(
                r,
                "filegrid_http_bytes_out_total",
                "response body bytes sent (by Content-Length)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_registers_its_metrics_without_clashes() {
        let r = new_registry();
        HeadMetrics::new(&r)
            .elections
            .with_label_values(&["won"])
            .inc();
        HttpMetrics::new(&r);
        let text = render(&r);
        assert!(text.contains("filegrid_elections_total{result=\"won\"} 1"));
        assert!(text.contains("filegrid_is_leader 0"));
        let m = new_registry();
        MonitorMetrics::new(&m)
            .check_seconds
            .with_label_values(&["h1"])
            .observe(0.01);
        assert!(render(&m).contains("filegrid_health_check_seconds_bucket"));
    }

    #[test]
    fn every_registry_shows_the_refused_connections_of_the_process() {
        connections_refused()
            .with_label_values(&["192.0.2.1:1"])
            .inc();
        for r in [new_registry(), new_registry()] {
            let text = render(&r);
            assert!(
                text.contains("filegrid_connections_refused_total{listener=\"192.0.2.1:1\"} 1"),
                "{text}"
            );
        }
    }
}
