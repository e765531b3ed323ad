//! The failover benchmark: rounds of election and failover against a real ZooKeeper server,
//! three head processes and a monitor process on loopback.

mod grid;
mod round;

use std::path::PathBuf;
use std::time::Duration;

use filegrid_testkit::ZkServer;
use zookeeper_client::Client;

use crate::binaries::NodeBinaries;
use crate::error::BenchError;
use crate::report::{Report, Row, Target, Unit};
use round::RoundResult;

/// Settings of a benchmark run.
#[derive(Clone, Debug)]
pub struct FailoverOptions {
    pub rounds: u32,
    pub session_timeout: Duration,
    pub interval: Duration,
    pub failure_threshold: u32,
    pub check_timeout: Duration,
    pub startup_grace: Duration,
    pub keep_logs: bool,
}

impl FailoverOptions {
    /// Time after which the monitor gives up on a hung leader.
    pub fn detection(&self) -> Duration {
        self.interval * self.failure_threshold
    }

    /// Rejects settings under which a hang would be ended by session expiry rather than the
    /// monitor, which would make the hang figures meaningless.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.session_timeout <= self.detection() {
            return Err(BenchError::BadOptions(format!(
                "--session-timeout ({:?}) must be longer than --interval × --failure-threshold ({:?}), \
                 so that the monitor, not session expiry, ends a hung leader",
                self.session_timeout,
                self.detection()
            )));
        }
        Ok(())
    }
}

/// What every round shares.
pub struct Context {
    pub options: FailoverOptions,
    pub bins: NodeBinaries,
    pub zk_hosts: String,
    pub zk: Client,
    pub http: reqwest::Client,
    /// Where each round's process logs go.
    pub logs: PathBuf,
}

pub async fn run(options: &FailoverOptions, bins: NodeBinaries) -> Result<(), BenchError> {
    let o = options;
    println!(
        "FileGrid failover benchmark: {} rounds; 3 heads + 1 monitor on loopback; {} CPUs",
        o.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "session timeout {:?}; monitor interval {:?} × threshold {} = {:?} (check timeout {:?}); startup grace {:?}",
        o.session_timeout,
        o.interval,
        o.failure_threshold,
        o.detection(),
        o.check_timeout,
        o.startup_grace
    );
    let zk_server = ZkServer::start();
    let logs = tempfile::Builder::new()
        .prefix("filegrid-bench-")
        .tempdir()
        .map_err(BenchError::TempDir)?;
    let zk = Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&zk_server.hosts())
        .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .map_err(|e| BenchError::Unexpected {
            what: format!("HTTP client: {e}"),
            logs: String::new(),
        })?;
    let ctx = Context {
        options: o.clone(),
        bins,
        zk_hosts: zk_server.hosts(),
        zk,
        http,
        logs: logs.path().to_path_buf(),
    };
    let mut results = Vec::new();
    for n in 1..=o.rounds {
        match round::run(&ctx, n).await {
            Ok(r) => {
                print_round(n, o.rounds, &r);
                results.push(r);
            }
            Err(e) => {
                // Keep the logs for the error message to point at.
                let _ = logs.keep();
                return Err(e);
            }
        }
    }
    println!();
    report(o, &results).print();
    if o.keep_logs {
        println!("\nprocess logs: {}", logs.keep().display());
    }
    Ok(())
}

fn print_round(n: u32, rounds: u32, r: &RoundResult) {
    println!(
        "round {n:>2}/{rounds}: cold start {:>6.3} s, SIGTERM {:>6.3} s, kill -9 {:>6.3} s, \
         kill -9 with monitor {:>6.3} s ({}), hang {:>6.3} s; RSS monitor {:.1} MB, head {:.1} MB",
        r.cold_start.as_secs_f64(),
        r.graceful.as_secs_f64(),
        r.crash.as_secs_f64(),
        r.crash_monitored.as_secs_f64(),
        if r.crash_monitored_forced {
            "monitor"
        } else {
            "session expiry"
        },
        r.hang.as_secs_f64(),
        r.monitor_rss as f64 / 1e6,
        r.head_rss as f64 / 1e6,
    );
    for note in &r.notes {
        println!("          note: {note}");
    }
}

fn report(o: &FailoverOptions, results: &[RoundResult]) -> Report {
    let secs = |f: fn(&RoundResult) -> Duration| -> Vec<f64> {
        results.iter().map(|r| f(r).as_secs_f64()).collect()
    };
    let session = o.session_timeout.as_secs_f64();
    let detection = o.detection().as_secs_f64();
    let crash = secs(|r| r.crash);
    let hang = secs(|r| r.hang);
    let forced = results.iter().filter(|r| r.crash_monitored_forced).count();
    let mut report = Report::new();
    report.row(Row::new(
        "election from a cold start",
        Unit::Seconds,
        secs(|r| r.cold_start),
    ));
    report.row(
        Row::new(
            "failover after SIGTERM",
            Unit::Seconds,
            secs(|r| r.graceful),
        )
        .target(Target::below(1.0, "< 1 s")),
    );
    report.row(
        Row::new("failover after kill -9", Unit::Seconds, crash.clone()).target(Target::at_most(
            session + 1.0,
            format!("≤ session timeout + 1 s = {:.1} s", session + 1.0),
        )),
    );
    report.row(Row::new(
        "  as a ratio to the session timeout",
        Unit::Ratio,
        crash.iter().map(|c| c / session).collect(),
    ));
    report.row(
        Row::new(
            format!(
                "failover after kill -9, monitor running ({forced}/{} by the monitor)",
                results.len()
            ),
            Unit::Seconds,
            secs(|r| r.crash_monitored),
        )
        .target(Target::at_most(
            session + 1.0,
            format!("≤ session timeout + 1 s = {:.1} s", session + 1.0),
        )),
    );
    report.row(
        Row::new(
            "failover after a hang (SIGSTOP)",
            Unit::Seconds,
            hang.clone(),
        )
        .target(Target::at_most(
            detection + 1.0,
            format!("≤ interval × threshold + 1 s = {:.1} s", detection + 1.0),
        )),
    );
    report.row(Row::new(
        "  as a ratio to interval × threshold",
        Unit::Ratio,
        hang.iter().map(|h| h / detection).collect(),
    ));
    report.row(
        Row::new(
            "monitor resident memory (VmRSS)",
            Unit::Megabytes,
            results.iter().map(|r| r.monitor_rss as f64 / 1e6).collect(),
        )
        .target(Target::below(20.0, "< 20 MB")),
    );
    report.row(Row::new(
        "head resident memory (VmRSS, new leader)",
        Unit::Megabytes,
        results.iter().map(|r| r.head_rss as f64 / 1e6).collect(),
    ));
    report
}
