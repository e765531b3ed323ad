//! The nemesis's plan: which fault each round brings and how long it is held, drawn from a
//! seeded RNG so a run is reproducible by its seed. Pure: no process is touched here.

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde::Serialize;
use std::time::Duration;

/// A fault of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum FaultKind {
    /// `kill -9` of the leading head, restarted after the hold.
    KillLeader,
    /// `SIGTERM` of the leading head (it resigns), restarted after the hold.
    TermLeader,
    /// `SIGSTOP` of the leading head for the hold, then `SIGCONT`.
    PauseLeader,
    /// `kill -9` of a standby head, restarted after the hold.
    KillStandby,
    /// `kill -9` of a cluster server, restarted on its data after the hold.
    KillClusterServer,
    /// `SIGSTOP` of a cluster server for the hold, then `SIGCONT`.
    PauseClusterServer,
    /// `kill -9` of ZooKeeper, restarted on its data after the hold.
    KillZooKeeper,
    /// One byte flipped in one replica's chunk file of each of up to three files, left for
    /// the hold for reads to meet.
    CorruptChunk,
    /// A cluster server's disk filled to the last byte for the hold, then freed.
    FillDisk,
    /// The leading head cut off from everything (its ports dropped by iptables) for the hold.
    CutLeader,
}

impl FaultKind {
    pub const ALL: [FaultKind; 10] = [
        FaultKind::KillLeader,
        FaultKind::TermLeader,
        FaultKind::PauseLeader,
        FaultKind::KillStandby,
        FaultKind::KillClusterServer,
        FaultKind::PauseClusterServer,
        FaultKind::KillZooKeeper,
        FaultKind::CorruptChunk,
        FaultKind::FillDisk,
        FaultKind::CutLeader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill -9 leader head",
            FaultKind::TermLeader => "SIGTERM leader head",
            FaultKind::PauseLeader => "SIGSTOP leader head",
            FaultKind::KillStandby => "kill -9 standby head",
            FaultKind::KillClusterServer => "kill -9 cluster server",
            FaultKind::PauseClusterServer => "SIGSTOP cluster server",
            FaultKind::KillZooKeeper => "kill -9 ZooKeeper",
            FaultKind::CorruptChunk => "corrupt a chunk file",
            FaultKind::FillDisk => "fill a cluster server's disk",
            FaultKind::CutLeader => "cut the leader off (iptables)",
        }
    }

    /// The longest the grid may go without acknowledging a write through this fault: its
    /// failover target (see `docs/reliability.md` for where each comes from).
    pub fn target(self, hold: Duration, t: &Timeouts) -> Duration {
        let s = Duration::from_secs(1);
        match self {
            // A resigning leader hands over at once.
            FaultKind::TermLeader => s,
            // The session has to expire before another head may claim.
            FaultKind::KillLeader => t.session + s,
            // A pause or cut shorter than the session costs the pause; longer, a failover.
            FaultKind::PauseLeader | FaultKind::CutLeader => hold.min(t.session) + s,
            // A dead or hung server is skipped once declared dead; meanwhile uploads that
            // picked it fail over within the request.
            FaultKind::KillClusterServer | FaultKind::PauseClusterServer => t.dead_after + s,
            // No metadata can be written without ZooKeeper; once it is back the heads'
            // sessions reconnect (or expire and are made anew) within a session timeout.
            FaultKind::KillZooKeeper => hold + t.session,
            // Faults that should not stop writes at all.
            FaultKind::KillStandby | FaultKind::CorruptChunk | FaultKind::FillDisk => s,
        }
    }

    /// Faults that need root (mounts, iptables).
    pub fn needs_root(self) -> bool {
        matches!(self, FaultKind::FillDisk | FaultKind::CutLeader)
    }
}

/// The grid's timeouts the targets depend on.
#[derive(Clone, Debug)]
pub struct Timeouts {
    pub session: Duration,
    pub dead_after: Duration,
}

/// One round of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Round {
    pub index: usize,
    pub kind: FaultKind,
    pub hold: Duration,
    /// Picks the victim among the candidates of the fault (a server, a file, a replica).
    pub victim: u64,
}

/// `rounds` rounds from `seed`, each fault in `kinds` equally likely, holds of 1–6 s.
pub fn plan(seed: u64, rounds: usize, kinds: &[FaultKind]) -> Vec<Round> {
    let mut rng = StdRng::seed_from_u64(seed);
    if kinds.is_empty() {
        return Vec::new();
    }
    (0..rounds)
        .map(|index| {
            // The first rounds go through every kind once, so a short run covers them all.
            let kind = if index < kinds.len() {
                kinds[index]
            } else {
                kinds[rng.random_range(0..kinds.len())]
            };
            Round {
                index,
                kind,
                hold: Duration::from_millis(rng.random_range(1000..=6000)),
                victim: rng.random(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_plan_and_another_seed_another() {
        let kinds = &FaultKind::ALL;
        assert_eq!(plan(7, 50, kinds), plan(7, 50, kinds));
        assert_ne!(plan(7, 50, kinds), plan(8, 50, kinds));
    }

    #[test]
    fn the_first_rounds_cover_every_fault() {
        let kinds = &FaultKind::ALL[..8];
        let p = plan(1, 20, kinds);
        assert_eq!(p.len(), 20);
        let first: Vec<FaultKind> = p[..8].iter().map(|r| r.kind).collect();
        assert_eq!(first, kinds.to_vec());
        assert!(p.iter().all(|r| kinds.contains(&r.kind)));
        assert!(
            p.iter()
                .all(|r| r.hold >= Duration::from_secs(1) && r.hold <= Duration::from_secs(6))
        );
        assert!(plan(1, 5, &[]).is_empty());
    }

    #[test]
    fn targets_follow_the_timeouts() {
        let t = Timeouts {
            session: Duration::from_secs(4),
            dead_after: Duration::from_secs(3),
        };
        let hold = Duration::from_secs(2);
        assert_eq!(
            FaultKind::KillLeader.target(hold, &t),
            Duration::from_secs(5)
        );
        assert_eq!(
            FaultKind::PauseLeader.target(hold, &t),
            Duration::from_secs(3)
        );
        assert_eq!(
            FaultKind::PauseLeader.target(Duration::from_secs(6), &t),
            Duration::from_secs(5)
        );
        assert_eq!(
            FaultKind::KillZooKeeper.target(hold, &t),
            Duration::from_secs(6)
        );
        assert_eq!(
            FaultKind::TermLeader.target(hold, &t),
            Duration::from_secs(1)
        );
    }
}
