//! How far the copies of a repair pass have got: chunks and bytes left, the rate measured
//! and the time left. [`Tally`] is plain arithmetic (the clock is an input), so the
//! estimate is tested without copying anything; the pass publishes it to `GET /v1/repair`
//! and the metrics after every copy.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::PassReport;
use super::plan::{Action, ChunkRepair};
use crate::metrics::DataMetrics;

/// The copies one pass planned and how many of them are done.
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    planned_chunks: u64,
    planned_bytes: u64,
    done_chunks: u64,
    done_bytes: u64,
    /// Bytes actually copied (a failed copy is done but copied nothing).
    copied_bytes: u64,
    started: Instant,
}

/// What [`Tally::view`] tells: the figures of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub chunks_left: u64,
    pub bytes_left: u64,
    pub rate_bytes_per_sec: u64,
    pub eta_seconds: Option<u64>,
}

impl Tally {
    /// The copies `actions` will make (one per new replica), from `started`.
    pub fn of(actions: &[Action], started: Instant) -> Self {
        let (mut chunks, mut bytes) = (0u64, 0u64);
        for a in actions {
            if let Action::RepairFile(f) = a {
                for step in &f.chunks {
                    if let ChunkRepair::Copy(c) = step {
                        let n = c.to.len() as u64;
                        chunks += n;
                        bytes = bytes.saturating_add(c.len.saturating_mul(n));
                    }
                }
            }
        }
        Self {
            planned_chunks: chunks,
            planned_bytes: bytes,
            done_chunks: 0,
            done_bytes: 0,
            copied_bytes: 0,
            started,
        }
    }

    /// One planned copy of `len` bytes to `targets` servers ended, `copied` of them made.
    pub fn copy_ended(&mut self, len: u64, targets: u64, copied: u64) {
        self.done_chunks = self.done_chunks.saturating_add(targets);
        self.done_bytes = self.done_bytes.saturating_add(len.saturating_mul(targets));
        self.copied_bytes = self.copied_bytes.saturating_add(len.saturating_mul(copied));
    }

    /// Copies planned and not yet made, the rate so far and the time left at `now`.
    /// Before any byte was copied, the estimate uses `repair_rate`; the measured rate
    /// includes throttling, so it never exceeds `repair_rate` for long.
    pub fn view(&self, now: Instant, repair_rate: u64) -> View {
        let chunks_left = self.planned_chunks.saturating_sub(self.done_chunks);
        let bytes_left = self.planned_bytes.saturating_sub(self.done_bytes);
        let elapsed = now.saturating_duration_since(self.started);
        let rate = if elapsed >= Duration::from_millis(1) {
            (self.copied_bytes as f64 / elapsed.as_secs_f64()) as u64
        } else {
            0
        };
        let eta_rate = if rate > 0 { rate } else { repair_rate.max(1) };
        let eta_seconds = (chunks_left > 0).then(|| bytes_left.div_ceil(eta_rate));
        View {
            chunks_left,
            bytes_left,
            rate_bytes_per_sec: rate,
            eta_seconds,
        }
    }
}

/// Publishes a pass's [`Tally`] to the shared report and the metrics as copies end.
pub struct Tracker<'a> {
    tally: Tally,
    report: &'a Mutex<PassReport>,
    metrics: &'a DataMetrics,
    repair_rate: u64,
}

impl<'a> Tracker<'a> {
    /// Starts tracking the copies of `actions` and publishes that a pass is copying.
    pub fn start(
        actions: &[Action],
        report: &'a Mutex<PassReport>,
        metrics: &'a DataMetrics,
        repair_rate: u64,
    ) -> Self {
        let t = Self {
            tally: Tally::of(actions, Instant::now()),
            report,
            metrics,
            repair_rate,
        };
        t.publish(true);
        t
    }

    /// One planned copy of `len` bytes to `targets` servers ended, `copied` of them made.
    pub fn copy_ended(&mut self, len: u64, targets: u64, copied: u64) {
        self.tally.copy_ended(len, targets, copied);
        self.publish(true);
    }

    /// The figures as they stand, for the pass's final report.
    pub fn finish(&self) -> View {
        self.publish(false);
        self.tally.view(Instant::now(), self.repair_rate)
    }

    fn publish(&self, in_progress: bool) {
        let v = self.tally.view(Instant::now(), self.repair_rate);
        if let Ok(mut r) = self.report.lock() {
            v.apply(&mut r, self.repair_rate);
            r.in_progress = in_progress;
        }
        let m = self.metrics;
        m.repair_chunks_left.set(gauge(v.chunks_left));
        m.repair_bytes_left.set(gauge(v.bytes_left));
        m.repair_rate_bytes.set(gauge(v.rate_bytes_per_sec));
        m.repair_eta_seconds.set(gauge(v.eta_seconds.unwrap_or(0)));
    }
}

impl View {
    /// Writes the figures into a report.
    pub fn apply(&self, r: &mut PassReport, repair_rate: u64) {
        r.chunks_left = self.chunks_left;
        r.bytes_left = self.bytes_left;
        r.rate_bytes_per_sec = self.rate_bytes_per_sec;
        r.eta_seconds = self.eta_seconds;
        r.repair_rate = repair_rate;
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::repair::plan::{ChunkCopy, CopyReason, FileRepair};
    use crate::ids::ServerId;

    fn copy(chunk: &str, len: u64, to: &[&str]) -> ChunkRepair {
        ChunkRepair::Copy(ChunkCopy {
            chunk: chunk.into(),
            len,
            checksum: "crc32c:00000000".into(),
            from: ServerId::new("a").unwrap(),
            to: to.iter().map(|t| ServerId::new(*t).unwrap()).collect(),
            reason: CopyReason::Dead,
            replicas: crate::files::repair::plan::NextReplicas::unchanged_for_tests(),
        })
    }

    #[test]
    fn counts_one_copy_per_new_replica_and_estimates_at_the_rate_measured() {
        let t0 = Instant::now();
        let actions = vec![
            Action::RepairFile(FileRepair {
                path: "p".into(),
                file_id: "f".into(),
                chunks: vec![copy("f-0", 1000, &["b", "c"]), copy("f-1", 500, &["b"])],
            }),
            Action::MarkDrained(ServerId::new("z").unwrap()),
        ];
        let mut t = Tally::of(&actions, t0);
        // Nothing copied yet: the estimate is at repair_rate.
        assert_eq!(
            t.view(t0, 100),
            View {
                chunks_left: 3,
                bytes_left: 2500,
                rate_bytes_per_sec: 0,
                eta_seconds: Some(25),
            }
        );
        // 2000 bytes in 4 s: 500 B/s, 500 bytes left take 1 s.
        t.copy_ended(1000, 2, 2);
        let v = t.view(t0 + Duration::from_secs(4), 100);
        assert_eq!(v.chunks_left, 1);
        assert_eq!(v.bytes_left, 500);
        assert_eq!(v.rate_bytes_per_sec, 500);
        assert_eq!(v.eta_seconds, Some(1));
        // A failed copy is no longer left (the next pass plans it again) and copied nothing.
        t.copy_ended(500, 1, 0);
        let v = t.view(t0 + Duration::from_secs(5), 100);
        assert_eq!(v.chunks_left, 0);
        assert_eq!(v.bytes_left, 0);
        assert_eq!(v.rate_bytes_per_sec, 400);
        assert_eq!(v.eta_seconds, None);
    }
}
