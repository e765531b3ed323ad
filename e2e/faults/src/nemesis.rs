//! The nemesis: carries a planned round's fault out on the grid's real processes and heals
//! it. Holds are the plan's (the fault lasts that long on purpose); every wait for the grid
//! to come back is on a condition with a deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use filegrid_proto::head::{LeaderView, ServerState, ServerView};
use filegrid_proto::manifest::Entry;
use filegrid_testkit::Grid;
use filegrid_testkit::grid::http_get;

use crate::disk::Ballast;
use crate::netcut::Cut;
use crate::schedule::{FaultKind, Round};
use crate::workload;

#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("no leader within {0:?}")]
    NoLeader(Duration),
    #[error("the grid did not come back within {0:?}: {1}")]
    NotHealed(Duration, String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("network cut: {0}")]
    Cut(String),
}

/// What a round did, for the report.
#[derive(Debug)]
pub struct Done {
    pub victim: String,
    /// Some faults find nothing to act on (no file with chunks yet to corrupt).
    pub skipped: bool,
}

pub struct Nemesis {
    pub keys: usize,
    rt: tokio::runtime::Runtime,
    /// The cluster server whose data dir is a small tmpfs, for `FillDisk`.
    pub fill_target: Option<(usize, PathBuf)>,
}

impl Nemesis {
    pub fn new(keys: usize, fill_target: Option<(usize, PathBuf)>) -> std::io::Result<Self> {
        Ok(Self {
            keys,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            fill_target,
        })
    }

    /// Injects the round's fault, holds it, heals it.
    pub fn run(&mut self, grid: &mut Grid, round: &Round) -> Result<Done, NemesisError> {
        let hold = round.hold;
        let v = round.victim;
        match round.kind {
            FaultKind::KillLeader => {
                let i = leader_index(grid, Duration::from_secs(30))?;
                grid.heads[i].proc.kill9();
                std::thread::sleep(hold);
                grid.restart_head(i);
                Ok(done(&grid.heads[i].id))
            }
            FaultKind::TermLeader => {
                let i = leader_index(grid, Duration::from_secs(30))?;
                grid.heads[i].proc.terminate();
                if grid.heads[i]
                    .proc
                    .wait_exit(Duration::from_secs(15))
                    .is_none()
                {
                    // Did not exit on SIGTERM in time: note it and go on with a kill.
                    tracing::warn!(head = %grid.heads[i].id, "no exit within 15s of SIGTERM");
                    grid.heads[i].proc.kill9();
                }
                std::thread::sleep(hold);
                grid.restart_head(i);
                Ok(done(&grid.heads[i].id))
            }
            FaultKind::PauseLeader => {
                let i = leader_index(grid, Duration::from_secs(30))?;
                grid.heads[i].proc.pause();
                std::thread::sleep(hold);
                grid.heads[i].proc.resume();
                Ok(done(&grid.heads[i].id))
            }
            FaultKind::KillStandby => {
                let l = leader_index(grid, Duration::from_secs(30))?;
                let others: Vec<usize> = (0..grid.heads.len()).filter(|&i| i != l).collect();
                let Some(&i) = others.get((v % others.len().max(1) as u64) as usize) else {
                    return Ok(skipped("no standby"));
                };
                grid.heads[i].proc.kill9();
                std::thread::sleep(hold);
                grid.restart_head(i);
                Ok(done(&grid.heads[i].id))
            }
            FaultKind::KillClusterServer => {
                let i = (v % grid.cluster.len() as u64) as usize;
                grid.cluster[i].proc.kill9();
                std::thread::sleep(hold);
                grid.restart_cluster_server(i);
                Ok(done(&grid.cluster[i].id))
            }
            FaultKind::PauseClusterServer => {
                let i = (v % grid.cluster.len() as u64) as usize;
                grid.cluster[i].proc.pause();
                std::thread::sleep(hold);
                grid.cluster[i].proc.resume();
                Ok(done(&grid.cluster[i].id))
            }
            FaultKind::KillZooKeeper => {
                grid.zk.stop();
                std::thread::sleep(hold);
                // How long the server takes to answer once started (a JVM): part of every
                // ZooKeeper outage, and none of FileGrid's doing.
                let started = std::time::Instant::now();
                grid.zk.start_again();
                Ok(done(&format!(
                    "zookeeper (answered {:.1}s after its start)",
                    started.elapsed().as_secs_f64()
                )))
            }
            FaultKind::CorruptChunk => {
                let mut hit = Vec::new();
                for n in 0..3 {
                    let step = n * (self.keys as u64 / 3).max(1);
                    if let Some(what) = self.corrupt(grid, v.wrapping_add(step))?
                        && !hit.contains(&what)
                    {
                        hit.push(what);
                    }
                }
                std::thread::sleep(hold);
                Ok(if hit.is_empty() {
                    skipped("no file with chunks")
                } else {
                    done(&hit.join(", "))
                })
            }
            FaultKind::FillDisk => {
                let Some((i, dir)) = self.fill_target.clone() else {
                    return Ok(skipped("no tmpfs data dir (needs root)"));
                };
                let ballast = Ballast::fill(&dir)?;
                std::thread::sleep(hold);
                ballast.free()?;
                Ok(done(&grid.cluster[i].id))
            }
            FaultKind::CutLeader => {
                let i = leader_index(grid, Duration::from_secs(30))?;
                let cut = Cut::isolate(grid.heads[i].proc.pid(), grid.heads[i].port)
                    .map_err(|e| NemesisError::Cut(e.to_string()))?;
                std::thread::sleep(hold);
                cut.heal().map_err(|e| NemesisError::Cut(e.to_string()))?;
                Ok(done(&grid.heads[i].id))
            }
        }
    }

    /// Flips one byte in the middle of one replica of one chunk of an existing file.
    fn corrupt(&self, grid: &Grid, v: u64) -> Result<Option<String>, NemesisError> {
        for step in 0..self.keys as u64 {
            let key = workload::key(((v + step) % self.keys as u64) as usize);
            let Some(chunks) = self.chunks_of(grid, &key) else {
                continue;
            };
            let Some((id, replicas)) = chunks.get((v % chunks.len().max(1) as u64) as usize) else {
                continue;
            };
            let Some(server) = replicas
                .get((v / 7 % replicas.len().max(1) as u64) as usize)
                .and_then(|r| grid.cluster.iter().position(|c| &c.id == r))
            else {
                continue;
            };
            let path = grid.chunk_file(server, id);
            let Ok(mut bytes) = std::fs::read(&path) else {
                continue;
            };
            if bytes.is_empty() {
                continue;
            }
            let at = bytes.len() / 2;
            bytes[at] ^= 0x5a;
            // Written in place, as bit rot would leave it (same inode).
            std::fs::write(&path, &bytes)?;
            return Ok(Some(format!(
                "{key} chunk {id} on {}",
                grid.cluster[server].id
            )));
        }
        Ok(None)
    }

    /// The chunks of a file and their replicas, from its manifest in ZooKeeper.
    fn chunks_of(&self, grid: &Grid, key: &str) -> Option<Vec<(String, Vec<String>)>> {
        let hosts = grid.zk.hosts();
        let path = format!("/distributed_file_grid/files/{key}");
        self.rt.block_on(async move {
            let c = tokio::time::timeout(
                Duration::from_secs(5),
                zookeeper_client::Client::connect(&hosts),
            )
            .await
            .ok()?
            .ok()?;
            let (data, _) = c.get_data(&path).await.ok()?;
            let entry: Entry = serde_json::from_slice(&data).ok()?;
            let chunks = entry.file?.chunks;
            Some(
                chunks
                    .into_iter()
                    .filter(|c| c.len > 0)
                    .map(|c| (c.id, c.replicas.into_iter().map(String::from).collect()))
                    .collect(),
            )
        })
    }
}

fn done(victim: &str) -> Done {
    Done {
        victim: victim.into(),
        skipped: false,
    }
}

fn skipped(why: &str) -> Done {
    Done {
        victim: why.into(),
        skipped: true,
    }
}

/// The leader as the heads that answer name it.
pub fn leader(grid: &Grid) -> Option<LeaderView> {
    grid.heads.iter().find_map(|h| {
        let body = http_get(h.port, "/v1/leader")?;
        serde_json::from_str(&body).ok()
    })
}

fn leader_index(grid: &Grid, timeout: Duration) -> Result<usize, NemesisError> {
    let start = Instant::now();
    loop {
        if let Some(l) = leader(grid)
            && let Some(i) = grid
                .heads
                .iter()
                .position(|h| h.id == l.server_id.to_string())
        {
            return Ok(i);
        }
        if start.elapsed() > timeout {
            return Err(NemesisError::NoLeader(timeout));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the grid is whole: ZooKeeper answers, every head is up and agrees on one
/// leader, and the leader lists every cluster server as live.
pub fn wait_healed(grid: &Grid, timeout: Duration) -> Result<(), NemesisError> {
    let start = Instant::now();
    let mut why;
    loop {
        why = healed(grid);
        match &why {
            None => return Ok(()),
            Some(_) if start.elapsed() > timeout => {
                return Err(NemesisError::NotHealed(timeout, why.unwrap_or_default()));
            }
            Some(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `None` when whole, else what is missing.
fn healed(grid: &Grid) -> Option<String> {
    if !grid.zk.answers_ruok() {
        return Some("ZooKeeper does not answer".into());
    }
    let mut named = Vec::new();
    for h in &grid.heads {
        let Some(body) = http_get(h.port, "/v1/leader") else {
            return Some(format!("{} names no leader", h.id));
        };
        let Ok(l) = serde_json::from_str::<LeaderView>(&body) else {
            return Some(format!("{} answers an unreadable leader", h.id));
        };
        named.push((l.server_id.to_string(), l.epoch, l.api_port));
    }
    named.dedup();
    let [(_, _, port)] = named[..] else {
        return Some(format!("heads disagree on the leader: {named:?}"));
    };
    let Some(body) = http_get(port, "/v1/cluster") else {
        return Some("the leader does not list the cluster".into());
    };
    let Ok(servers) = serde_json::from_str::<Vec<ServerView>>(&body) else {
        return Some("the leader's cluster list is unreadable".into());
    };
    let live = servers
        .iter()
        .filter(|s| s.state == ServerState::Live)
        .count();
    (live < grid.cluster.len())
        .then(|| format!("{live} of {} cluster servers live", grid.cluster.len()))
}
