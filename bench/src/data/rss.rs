//! Resident memory of processes, sampled from `/proc/<pid>/status` (VmRSS) on a thread of
//! its own while a transfer runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const INTERVAL: Duration = Duration::from_millis(50);

/// Samples of one process: (time since the start, bytes).
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub samples: Vec<(Duration, u64)>,
}

/// Highest resident memory overall and in each half of the sampling period.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peak {
    pub max: u64,
    pub first_half: u64,
    pub last_half: u64,
}

impl Series {
    pub fn peak(&self) -> Peak {
        let end = self.samples.last().map_or(Duration::ZERO, |(t, _)| *t);
        let mut p = Peak::default();
        for &(t, v) in &self.samples {
            p.max = p.max.max(v);
            if t * 2 <= end {
                p.first_half = p.first_half.max(v);
            } else {
                p.last_half = p.last_half.max(v);
            }
        }
        p
    }
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Series>>,
}

impl Sampler {
    /// Starts sampling `pids` every [`INTERVAL`].
    pub fn start(pids: Vec<i32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut series = vec![Series::default(); pids.len()];
            loop {
                let t = start.elapsed();
                for (s, pid) in series.iter_mut().zip(&pids) {
                    if let Some(v) = vm_rss(*pid) {
                        s.samples.push((t, v));
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    return series;
                }
                std::thread::sleep(INTERVAL);
            }
        });
        Self { stop, thread }
    }

    /// Takes a last sample and returns every process's series, in the order of the pids.
    pub fn finish(self) -> Vec<Series> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// VmRSS of `pid` in bytes.
pub fn vm_rss(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// CPU seconds each of `processes` used between two calls: `let mark = CpuMark::take(..)`,
/// then `mark.used()`.
pub struct CpuMark {
    processes: Vec<(String, i32)>,
    before: Vec<f64>,
}

impl CpuMark {
    pub fn take(processes: &[(String, i32)]) -> Self {
        let before = processes
            .iter()
            .map(|(_, pid)| cpu_seconds(*pid).unwrap_or(0.0))
            .collect();
        Self {
            processes: processes.to_vec(),
            before,
        }
    }

    /// `(name, seconds)` per process since the mark was taken.
    pub fn used(&self) -> Vec<(String, f64)> {
        self.processes
            .iter()
            .zip(&self.before)
            .map(|((name, pid), before)| {
                let now = cpu_seconds(*pid).unwrap_or(*before);
                (name.clone(), now - before)
            })
            .collect()
    }
}

/// `name 1.23, other 0.45` with every value scaled by `scale`.
pub fn format_cpu(used: &[(String, f64)], scale: f64) -> String {
    used.iter()
        .map(|(name, secs)| format!("{name} {:.2}", secs * scale))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_split_at_the_middle_of_the_period() {
        let ms = Duration::from_millis;
        let s = Series {
            samples: vec![
                (ms(0), 5),
                (ms(50), 9),
                (ms(100), 7),
                (ms(150), 8),
                (ms(200), 6),
            ],
        };
        let p = s.peak();
        assert_eq!((p.max, p.first_half, p.last_half), (9, 9, 8));
    }

    #[test]
    fn our_cpu_time_grows_while_we_work() {
        let me = std::process::id() as i32;
        let before = cpu_seconds(me).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_seconds(me).unwrap() - before >= 0.1);
    }

    #[test]
    fn reads_our_own_rss() {
        let rss = vm_rss(std::process::id() as i32).unwrap();
        assert!(rss > 0);
    }
}
