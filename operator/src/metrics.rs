//! The operator's own Prometheus metrics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Reconcile counters and timings, registered in their own registry.
pub struct Metrics {
    pub registry: Registry,
    pub reconciliations: IntCounter,
    pub failures: IntCounterVec,
    pub duration: Histogram,
    pub is_leader: IntGauge,
    /// 1 while a grid carries `filegrid.io/paused: "true"`.
    pub paused: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("filegrid_operator".to_string()), None)?;
        let reconciliations = IntCounter::new("reconciliations_total", "reconciliations started")?;
        let failures = IntCounterVec::new(
            Opts::new(
                "reconcile_failures_total",
                "failed reconciliations by error kind",
            ),
            &["error"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new("reconcile_duration_seconds", "time one reconciliation took")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let is_leader = IntGauge::new("leader", "1 while this replica holds the leader lease")?;
        let paused = IntGaugeVec::new(
            Opts::new(
                "paused",
                "1 while the grid's reconciliation is paused by the filegrid.io/paused annotation",
            ),
            &["namespace", "name"],
        )?;
        registry.register(Box::new(paused.clone()))?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(is_leader.clone()))?;
        Ok(Self {
            registry,
            reconciliations,
            failures,
            duration,
            is_leader,
            paused,
        })
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}
