//! Availability through each fault, from the history: the share of reads and of writes
//! (writes and deletes) in progress during the fault's window that succeeded (an operation
//! stalled across the whole window counts in it), and the longest time in
//! the window without an acknowledged write, against the fault's target. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::history::{Op, OpKind, Outcome};
use crate::schedule::FaultKind;

/// When one fault was in force: from its injection until the grid was whole again.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    pub round: usize,
    pub kind: FaultKind,
    /// Microseconds since the run began.
    pub start: u64,
    pub end: u64,
    pub target: Duration,
}

/// The figures of one fault kind over every window of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub windows: usize,
    pub reads: u64,
    pub reads_ok: u64,
    pub writes: u64,
    pub writes_ok: u64,
    /// The longest gap without an acknowledged write in any window, in microseconds.
    pub worst_gap_us: u64,
    /// Windows whose gap exceeded their target.
    pub gaps_over_target: usize,
    /// The gap of each window, in microseconds.
    pub gaps_us: Vec<u64>,
    /// The largest target of any window (targets of held faults grow with the hold).
    pub max_target_us: u64,
}

impl Figures {
    pub fn read_pct(&self) -> f64 {
        pct(self.reads_ok, self.reads)
    }

    pub fn write_pct(&self) -> f64 {
        pct(self.writes_ok, self.writes)
    }

    /// The median of the windows' gaps (the upper one of an even count), in microseconds.
    pub fn median_gap_us(&self) -> u64 {
        let mut g = self.gaps_us.clone();
        g.sort_unstable();
        g.get(g.len() / 2).copied().unwrap_or(0)
    }
}

fn pct(ok: u64, all: u64) -> f64 {
    if all == 0 {
        100.0
    } else {
        100.0 * ok as f64 / all as f64
    }
}

/// The longest stretch of `[start, end]` with no time in `acks` (sorted).
pub fn longest_gap(acks: &[u64], start: u64, end: u64) -> u64 {
    let mut last = start;
    let mut worst = 0;
    let from = acks.partition_point(|&a| a < start);
    for &a in acks[from..].iter().take_while(|&&a| a <= end) {
        worst = worst.max(a - last);
        last = a;
    }
    worst.max(end.saturating_sub(last))
}

/// Figures per fault kind.
pub fn by_fault(ops: &[Op], windows: &[Window]) -> BTreeMap<FaultKind, Figures> {
    let mut acks: Vec<u64> = ops
        .iter()
        .filter(|o| o.is_mutation() && o.outcome == Outcome::Ok)
        .map(|o| o.complete)
        .collect();
    acks.sort_unstable();
    let mut out: BTreeMap<FaultKind, Figures> = BTreeMap::new();
    for w in windows {
        let f = out.entry(w.kind).or_default();
        f.windows += 1;
        for op in ops
            .iter()
            .filter(|o| !o.final_read && o.invoke <= w.end && o.complete >= w.start)
        {
            let ok = op.outcome == Outcome::Ok;
            if matches!(op.kind, OpKind::Read { .. }) {
                f.reads += 1;
                f.reads_ok += u64::from(ok);
            } else {
                f.writes += 1;
                f.writes_ok += u64::from(ok);
            }
        }
        let gap = longest_gap(&acks, w.start, w.end);
        f.worst_gap_us = f.worst_gap_us.max(gap);
        f.gaps_us.push(gap);
        f.max_target_us = f.max_target_us.max(w.target.as_micros() as u64);
        if gap > w.target.as_micros() as u64 {
            f.gaps_over_target += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op::on("k", kind, invoke, complete, outcome)
    }

    #[test]
    fn the_gap_counts_from_the_window_edges() {
        assert_eq!(longest_gap(&[], 10, 50), 40);
        assert_eq!(longest_gap(&[5, 20, 30, 60], 10, 50), 20);
        assert_eq!(longest_gap(&[12, 48], 10, 50), 36);
    }

    #[test]
    fn figures_count_ops_in_progress_in_the_window() {
        let w = |kind, start, end| Window {
            round: 0,
            kind,
            start,
            end,
            target: Duration::from_micros(15),
        };
        let write = |i, c, o| {
            op(
                OpKind::Write {
                    digest: "d".into(),
                    size: 0,
                },
                i,
                c,
                o,
            )
        };
        let ops = vec![
            write(0, 5, Outcome::Ok),
            write(12, 14, Outcome::Ok),
            write(15, 40, Outcome::Unknown),
            op(OpKind::Read { seen: None }, 16, 18, Outcome::Failed),
            op(OpKind::Delete, 20, 30, Outcome::Ok),
            write(200, 210, Outcome::Ok),
            // stalled across the second window
            op(OpKind::Read { seen: None }, 90, 120, Outcome::Failed),
        ];
        let f = by_fault(
            &ops,
            &[
                w(FaultKind::KillLeader, 10, 50),
                w(FaultKind::KillLeader, 100, 110),
            ],
        );
        let k = &f[&FaultKind::KillLeader];
        assert_eq!(k.windows, 2);
        assert_eq!((k.writes, k.writes_ok), (3, 2));
        assert_eq!((k.reads, k.reads_ok), (2, 0));
        assert_eq!(k.worst_gap_us, 20);
        assert_eq!(k.gaps_us, vec![20, 10]);
        assert_eq!(k.median_gap_us(), 20);
        // 50 - 30 = 20 > 15 in the first window; 10 in the second.
        assert_eq!(k.gaps_over_target, 1);
        assert!((k.write_pct() - 66.666).abs() < 0.01);
    }
}
