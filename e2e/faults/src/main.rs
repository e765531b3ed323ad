//! `filegrid-faults`: runs the fault-injection suite and prints its report. Exits non-zero
//! when the checker finds a violation (a lost acknowledged write, a stale or invented read,
//! an epoch out of order), when a final read cannot be made, when the grid does not come
//! back from a fault, or when a file is not back to full replication after healing.
//! Availability figures are printed, not judged.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use filegrid_faults::availability::{self, Window};
use filegrid_faults::history::{Clock, LeaderSeen, Recorder};
use filegrid_faults::schedule::{self, FaultKind, Timeouts};
use filegrid_faults::{checker, disk, nemesis, netcut, replication, workload};
use filegrid_proto::head::LeaderView;
use filegrid_testkit::grid::http_get;
use filegrid_testkit::{Grid, GridOptions, auth};

#[derive(Parser, Debug)]
#[command(about = "FileGrid's fault-injection suite (real processes on loopback)")]
struct Args {
    /// Number of faults, one per round.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Seed of the fault plan and the workload; a random one (printed) when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// Client threads.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Files the clients share.
    #[arg(long, default_value_t = 24)]
    keys: usize,
    #[arg(long, default_value_t = 3)]
    heads: usize,
    #[arg(long, default_value_t = 4)]
    cluster_servers: usize,
    /// Only these faults (comma-separated names as in the report's first column, e.g.
    /// `KillLeader,CorruptChunk`); all by default.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Write the history (JSON) here.
    #[arg(long)]
    history: Option<PathBuf>,
    /// The suite's self-check: after the run, delete one acknowledged file's manifest from
    /// ZooKeeper behind FileGrid's back; the checker must then report a lost write and the
    /// run fail.
    #[arg(long)]
    sabotage: bool,
    /// `filegrid-node` to run; by default the one next to this program.
    #[arg(long, env = "FILEGRID_NODE_BIN")]
    node_bin: Option<PathBuf>,
}

const CHUNK: usize = 64 * 1024;
const SESSION: Duration = Duration::from_secs(4);
const DEAD_AFTER: Duration = Duration::from_secs(3);
const REPLICATION: usize = 3;
/// Overwrites and deletes leave orphans: a short grace, so that they are collected during a run.
const ORPHAN_GRACE: Duration = Duration::from_secs(20);

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,zookeeper_client=error,filegrid_faults=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(true) => println!("RESULT: PASS"),
        Ok(false) => {
            println!("RESULT: FAIL");
            std::process::exit(1);
        }
        Err(e) => {
            println!("RESULT: ERROR: {e}");
            std::process::exit(2);
        }
    }
}

fn node_bin(args: &Args) -> Result<PathBuf, String> {
    let bin = match &args.node_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("own path: {e}"))?
            .with_file_name("filegrid-node"),
    };
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: run `cargo build -p filegrid-node --bins` (same profile) or set FILEGRID_NODE_BIN",
            bin.display()
        ))
    }
}

fn kinds(args: &Args) -> Result<Vec<FaultKind>, String> {
    let mut kinds: Vec<FaultKind> = if args.faults.is_empty() {
        FaultKind::ALL.to_vec()
    } else {
        args.faults
            .iter()
            .map(|n| {
                FaultKind::ALL
                    .into_iter()
                    .find(|k| format!("{k:?}").eq_ignore_ascii_case(n.trim()))
                    .ok_or_else(|| format!("unknown fault {n:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    kinds.retain(|k| {
        let ok = match k {
            FaultKind::FillDisk => root,
            FaultKind::CutLeader => netcut::available(),
            _ => true,
        };
        if !ok {
            println!(
                "NOTE: fault {k:?} left out: it needs root (and iptables, cgroup v2 for cuts)"
            );
        }
        ok
    });
    Ok(kinds)
}

fn run(args: &Args) -> Result<bool, String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let kinds = kinds(args)?;
    let plan = schedule::plan(seed, args.rounds, &kinds);
    println!(
        "filegrid-faults: seed {seed}, {} rounds, {} clients, {} files, {} heads, {} cluster servers",
        args.rounds, args.clients, args.keys, args.heads, args.cluster_servers
    );
    println!(
        "reproduce: filegrid-faults --rounds {} --seed {seed}",
        args.rounds
    );
    let bin = node_bin(args)?;
    let mut grid = Grid::start(
        &bin,
        GridOptions {
            heads: args.heads,
            cluster_servers: args.cluster_servers,
            chunk_size: "64KiB".into(),
            session_timeout: "4s".into(),
            dead_after: "3s".into(),
            // Overwrites leave orphans; collect them soon so a small disk does not fill.
            orphan_grace: format!("{}s", ORPHAN_GRACE.as_secs()),
            replication_factor: REPLICATION as u32,
            min_write_replicas: 2,
            log_filter: Some("info,zookeeper_client=warn".into()),
            ..Default::default()
        },
    );
    let timeouts = Timeouts {
        session: SESSION,
        dead_after: DEAD_AFTER,
    };
    // A real full disk: the last cluster server's data dir becomes a small tmpfs.
    let mut tmpfs = None;
    if kinds.contains(&FaultKind::FillDisk) {
        let i = grid.cluster.len() - 1;
        grid.cluster[i].proc.kill9();
        let dir = grid.cluster[i].data_dir.clone();
        tmpfs = Some(disk::Tmpfs::mount_over(&dir, "256m").map_err(|e| format!("tmpfs: {e}"))?);
        grid.restart_cluster_server(i);
    }
    let fill_target = tmpfs.as_ref().map(|_| {
        (
            grid.cluster.len() - 1,
            grid.cluster[grid.cluster.len() - 1].data_dir.clone(),
        )
    });
    nemesis::wait_healed(&grid, Duration::from_secs(60)).map_err(|e| e.to_string())?;

    let heads: Vec<String> = (0..grid.heads.len()).map(|i| grid.head_url(i)).collect();
    let ports: Vec<u16> = grid.heads.iter().map(|h| h.port).collect();
    let clock = Clock::start();
    let rec = Recorder::default();
    let stop = Arc::new(AtomicBool::new(false));
    let observer = observe_leaders(ports, clock, rec.clone(), stop.clone());
    let w = workload::Workload {
        clients: args.clients,
        keys: args.keys,
        chunk_size: CHUNK,
        seed,
    };
    let clients = workload::start(
        &w,
        &heads,
        &auth::ADMIN.token(),
        clock,
        rec.clone(),
        stop.clone(),
    );

    // The first fault comes once the clients are writing.
    let warm = std::time::Instant::now();
    while rec.acked_since(0) < 20 {
        if warm.elapsed() > Duration::from_secs(60) {
            stop.store(true, Ordering::Relaxed);
            return Err("the clients acknowledged no 20 writes within 60s of the start".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut nem = nemesis::Nemesis::new(args.keys, fill_target).map_err(|e| e.to_string())?;
    let mut windows = Vec::new();
    let mut healthy = true;
    for round in &plan {
        // The grid settles for a moment between faults (planned, not awaited).
        std::thread::sleep(Duration::from_millis(500));
        if let Err(e) = nemesis::wait_healed(&grid, Duration::from_secs(90)) {
            println!(
                "round {:>3}: grid not whole before the fault: {e}",
                round.index
            );
            healthy = false;
            break;
        }
        let start = clock.now();
        let done = match nem.run(&mut grid, round) {
            Ok(d) => d,
            Err(e) => {
                println!(
                    "round {:>3}: {:?} could not be carried out: {e}",
                    round.index, round.kind
                );
                healthy = false;
                break;
            }
        };
        // Whole again once the grid says so and a client write is acknowledged again: the
        // tail of an outage (clients backing off, sessions coming back) belongs to it.
        let healed = nemesis::wait_healed(&grid, Duration::from_secs(90))
            .and_then(|()| wait_ack_after(&rec, clock.now(), Duration::from_secs(60)));
        let end = clock.now();
        println!(
            "round {:>3}: {:<32} hold {:>5.1}s  back after {:>5.1}s  {}{}",
            round.index,
            round.kind.name(),
            round.hold.as_secs_f64(),
            (end - start) as f64 / 1e6,
            if done.skipped { "skipped: " } else { "" },
            done.victim
        );
        if !done.skipped {
            windows.push(Window {
                round: round.index,
                kind: round.kind,
                start,
                end,
                target: round.kind.target(round.hold, &timeouts),
            });
        }
        if let Err(e) = healed {
            println!("round {:>3}: the grid did not come back: {e}", round.index);
            healthy = false;
            break;
        }
    }

    stop.store(true, Ordering::Relaxed);
    let stopped = Instant::now();
    for c in clients {
        let _ = c.join();
    }
    let _ = observer.join();

    // Healing: the grid whole, every file fully replicated, then the final reads.
    let mut ok = healthy;
    if let Err(e) = nemesis::wait_healed(&grid, Duration::from_secs(90)) {
        println!("after the run the grid is not whole: {e}");
        ok = false;
    }
    let keys: Vec<String> = (0..args.keys).map(workload::key).collect();
    if args.sabotage {
        match sabotage(&grid, &keys, &rec.ops()) {
            Some(k) => println!("sabotage: deleted the manifest of {k} in ZooKeeper"),
            None => println!("sabotage: found no file to delete"),
        }
    }
    let look = replication::wait_full(&grid, &keys, REPLICATION, Duration::from_secs(180));
    let short = look.shortfalls;
    println!(
        "chunk files: the manifests name {} chunks; the cluster servers list {} chunk files in all",
        look.chunks, look.listed
    );
    if short.is_empty() {
        println!("replication: every chunk of every file has {REPLICATION} good copies");
    } else {
        ok = false;
        println!("replication: {} chunks short after healing:", short.len());
        for s in short.iter().take(20) {
            println!("  {s}");
        }
    }
    // Garbage: every orphan collected once its grace has run out (a leadership change
    // starts the grace over, and the new leader first warms up).
    match replication::wait_collected(&grid, &keys, ORPHAN_GRACE * 3 + Duration::from_secs(30)) {
        Ok(()) => println!(
            "garbage: no orphaned copy left {:.1} s after the workload stopped (orphan grace {} s)",
            stopped.elapsed().as_secs_f64(),
            ORPHAN_GRACE.as_secs()
        ),
        Err(e) => {
            ok = false;
            println!("garbage: {e}");
        }
    }
    workload::final_reads(&w, &heads, &auth::ADMIN.token(), clock, &rec);

    let ops = rec.ops();
    let leaders = rec.leaders();
    let failed_finals = ops
        .iter()
        .filter(|o| o.final_read && o.outcome != filegrid_faults::history::Outcome::Ok)
        .count();
    if failed_finals > 0 {
        ok = false;
        println!("final reads: {failed_finals} could not be made (those files are unjudged)");
    }
    if let Some(path) = &args.history {
        let json = serde_json::json!({
            "seed": seed, "ops": ops, "leaders": leaders, "windows": windows,
        });
        std::fs::write(path, json.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("history written to {}", path.display());
    }
    report(&ops, &windows);
    let violations = checker::check(&ops, &leaders);
    println!("checker: {} violations", violations.len());
    for v in violations.iter().take(50) {
        println!("  {v}");
    }
    // Processes first: the grid's temp dir (dropped before them) is theirs to write in.
    for h in &mut grid.heads {
        h.proc.kill9();
    }
    for c in &mut grid.cluster {
        c.proc.kill9();
    }
    grid.zk.stop();
    drop(tmpfs);
    drop(grid);
    Ok(ok && violations.is_empty())
}

/// Waits until some write or delete begun after `t` (microseconds) is acknowledged.
fn wait_ack_after(rec: &Recorder, t: u64, timeout: Duration) -> Result<(), nemesis::NemesisError> {
    let start = std::time::Instant::now();
    loop {
        if rec.acked_since(t) > 0 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(nemesis::NemesisError::NotHealed(
                timeout,
                "no write acknowledged".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deletes the manifest of a file that must exist ([`filegrid_faults::history::surely_present`]),
/// so that its absence is a lost write to the checker; returns its key.
fn sabotage(grid: &Grid, keys: &[String], ops: &[filegrid_faults::history::Op]) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let c = zookeeper_client::Client::connect(&grid.zk.hosts())
            .await
            .ok()?;
        for key in keys {
            if !filegrid_faults::history::surely_present(ops, key) {
                continue;
            }
            let path = format!("/distributed_file_grid/files/{key}");
            if c.delete(&path, None).await.is_ok() {
                return Some(key.clone());
            }
        }
        None
    })
}

/// Records what every head says of the leader, every 100 ms, until `stop`.
fn observe_leaders(
    ports: Vec<u16>,
    clock: Clock,
    rec: Recorder,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last: Vec<Option<(u64, String)>> = vec![None; ports.len()];
        while !stop.load(Ordering::Relaxed) {
            for (i, port) in ports.iter().enumerate() {
                let Some(l) = http_get(*port, "/v1/leader")
                    .and_then(|b| serde_json::from_str::<LeaderView>(&b).ok())
                else {
                    continue;
                };
                let now = Some((l.epoch, l.server_id.to_string()));
                if last[i] != now {
                    rec.leader(LeaderSeen {
                        at: clock.now(),
                        epoch: l.epoch,
                        server_id: l.server_id.to_string(),
                    });
                    last[i] = now;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

fn report(ops: &[filegrid_faults::history::Op], windows: &[Window]) {
    let total_reads = ops
        .iter()
        .filter(|o| !o.final_read && !o.is_mutation())
        .count();
    let total_writes = ops.iter().filter(|o| o.is_mutation()).count();
    let ok = |o: &&filegrid_faults::history::Op| o.outcome == filegrid_faults::history::Outcome::Ok;
    let reads_ok = ops
        .iter()
        .filter(|o| !o.final_read && !o.is_mutation())
        .filter(ok)
        .count();
    let writes_ok = ops.iter().filter(|o| o.is_mutation()).filter(ok).count();
    println!(
        "operations: {total_reads} reads ({reads_ok} ok), {total_writes} writes and deletes ({writes_ok} acknowledged)"
    );
    println!(
        "{:<20} {:>7} {:>17} {:>17} {:>11} {:>10} {:>11} {:>12}",
        "fault",
        "rounds",
        "reads ok",
        "writes ok",
        "median gap",
        "worst gap",
        "max target",
        "over target"
    );
    // Why operations did not succeed, most common first.
    let mut notes: std::collections::BTreeMap<String, usize> = Default::default();
    for o in ops
        .iter()
        .filter(|o| o.outcome != filegrid_faults::history::Outcome::Ok)
    {
        let why = o.note.clone().unwrap_or_else(|| "deadline".into());
        *notes.entry(why.chars().take(120).collect()).or_default() += 1;
    }
    let mut notes: Vec<(String, usize)> = notes.into_iter().collect();
    notes.sort_by_key(|n| std::cmp::Reverse(n.1));
    for (why, n) in notes.iter().take(10) {
        println!("  not ok x{n}: {why}");
    }
    for (kind, f) in availability::by_fault(ops, windows) {
        println!(
            "{:<20} {:>7} {:>9.2}% {:>7} {:>9.2}% {:>7} {:>10.1}s {:>9.1}s {:>10.1}s {:>12}",
            format!("{kind:?}"),
            f.windows,
            f.read_pct(),
            f.reads,
            f.write_pct(),
            f.writes,
            f.median_gap_us() as f64 / 1e6,
            f.worst_gap_us as f64 / 1e6,
            f.max_target_us as f64 / 1e6,
            f.gaps_over_target
        );
    }
}
