//! The results table: median and worst of each measurement, and whether the target was met
//! (by the worst round, or by the median where the benchmark says so).

use crate::stats::median_and_worst_by;

#[derive(Clone, Copy)]
pub enum Unit {
    Seconds,
    Milliseconds,
    Ratio,
    Megabytes,
    /// Binary megabytes (2²⁰ bytes), given in bytes.
    Mebibytes,
    /// Binary megabytes per second, given in bytes per second.
    MebibytesPerSecond,
    PerSecond,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Seconds => format!("{v:.3} s"),
            Unit::Milliseconds => format!("{:.2} ms", v * 1e3),
            Unit::Ratio => format!("{v:.2}"),
            Unit::Megabytes => format!("{v:.1} MB"),
            Unit::Mebibytes => format!("{:.1} MiB", v / MIB),
            Unit::MebibytesPerSecond => format!("{:.0} MiB/s", v / MIB),
            Unit::PerSecond => format!("{v:.0}/s"),
        }
    }
}

const MIB: f64 = (1u64 << 20) as f64;

/// Which of a row's figures a target is judged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judge {
    /// Every round must meet it.
    Worst,
    /// The median over the rounds must meet it.
    Median,
}

/// A limit the worst round (or the median) must meet.
pub struct Target {
    limit: f64,
    inclusive: bool,
    /// Higher figures are better (a floor rather than a ceiling).
    floor: bool,
    judge: Judge,
    label: String,
}

impl Target {
    /// Strictly below `limit`.
    pub fn below(limit: f64, label: impl Into<String>) -> Self {
        Self {
            limit,
            inclusive: false,
            floor: false,
            judge: Judge::Worst,
            label: label.into(),
        }
    }

    /// At most `limit`.
    pub fn at_most(limit: f64, label: impl Into<String>) -> Self {
        Self {
            inclusive: true,
            ..Self::below(limit, label)
        }
    }

    /// At least `limit` (higher is better).
    pub fn at_least(limit: f64, label: impl Into<String>) -> Self {
        Self {
            inclusive: true,
            floor: true,
            ..Self::below(limit, label)
        }
    }

    /// Judged on the median over the rounds instead of the worst round.
    pub fn on_median(mut self) -> Self {
        self.judge = Judge::Median;
        self
    }

    fn met_by(&self, v: f64) -> bool {
        match (self.floor, self.inclusive) {
            (true, true) => v >= self.limit,
            (true, false) => v > self.limit,
            (false, true) => v <= self.limit,
            (false, false) => v < self.limit,
        }
    }
}

pub struct Row {
    name: String,
    unit: Unit,
    samples: Vec<f64>,
    target: Option<Target>,
    /// Higher figures are better, so the worst round is the lowest.
    higher_is_better: bool,
}

impl Row {
    pub fn new(name: impl Into<String>, unit: Unit, samples: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            unit,
            samples,
            target: None,
            higher_is_better: false,
        }
    }

    /// A target; a floor also makes the lowest round the worst.
    pub fn target(mut self, t: Target) -> Self {
        self.higher_is_better |= t.floor;
        self.target = Some(t);
        self
    }

    /// The lowest round is the worst (throughputs, ratios).
    pub fn higher_is_better(mut self) -> Self {
        self.higher_is_better = true;
        self
    }

    fn median_and_worst(&self) -> Option<(f64, f64)> {
        median_and_worst_by(&self.samples, self.higher_is_better)
    }
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// The table as text, and the rows whose worst round missed the target.
    pub fn render(&self) -> (String, Vec<String>) {
        let mut lines = vec![[
            "measurement".to_string(),
            "median".into(),
            "worst".into(),
            "target".into(),
            "result".into(),
        ]];
        let mut misses = Vec::new();
        for row in &self.rows {
            let figures = row.median_and_worst();
            let (median, worst) = match figures {
                Some((m, w)) => (row.unit.format(m), row.unit.format(w)),
                None => ("-".into(), "-".into()),
            };
            let judged = |t: &Target, (m, w): (f64, f64)| match t.judge {
                Judge::Worst => ("worst", w),
                Judge::Median => ("median", m),
            };
            let (target, result) = match (&row.target, figures) {
                (Some(t), Some(f)) if t.met_by(judged(t, f).1) => (t.label.clone(), "PASS".into()),
                (Some(t), Some(f)) => {
                    let (which, v) = judged(t, f);
                    let over = row.samples.iter().filter(|v| !t.met_by(**v)).count();
                    misses.push(format!(
                        "{}: {which} {} misses {} ({over} of {} rounds)",
                        row.name.trim(),
                        row.unit.format(v),
                        t.label,
                        row.samples.len()
                    ));
                    (t.label.clone(), "MISS".into())
                }
                (Some(t), None) => (t.label.clone(), "-".into()),
                (None, _) => (String::new(), String::new()),
            };
            lines.push([row.name.clone(), median, worst, target, result]);
        }
        let widths: Vec<usize> = (0..5)
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, w))| {
                    let pad = w - cell.chars().count();
                    // Numbers right-aligned, text left-aligned.
                    if c == 1 || c == 2 {
                        format!("{}{cell}", " ".repeat(pad))
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        (out, misses)
    }

    pub fn print(&self) {
        let (table, misses) = self.render();
        print!("{table}");
        let by_median = self
            .rows
            .iter()
            .any(|r| r.target.as_ref().is_some_and(|t| t.judge == Judge::Median));
        let rule = if by_median {
            "a target marked (median) is met by the median, the others by every round"
        } else {
            "a target is met when every round meets it"
        };
        if misses.is_empty() {
            println!("\nall targets met ({rule})");
        } else {
            println!("\n{} target(s) MISSED:", misses.len());
            for m in misses {
                println!("  MISS {m}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_judged_on_the_worst_round() {
        let mut r = Report::new();
        r.row(Row::new("fast", Unit::Seconds, vec![0.1, 0.2]).target(Target::below(1.0, "< 1 s")));
        r.row(Row::new("slow", Unit::Seconds, vec![0.1, 1.0]).target(Target::below(1.0, "< 1 s")));
        r.row(Row::new("edge", Unit::Seconds, vec![1.0]).target(Target::at_most(1.0, "≤ 1 s")));
        let (table, misses) = r.render();
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("fast") && l.ends_with("PASS"))
        );
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("slow") && l.ends_with("MISS"))
        );
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("edge") && l.ends_with("PASS"))
        );
        assert_eq!(misses.len(), 1);
        assert!(misses[0].contains("1 of 2 rounds"), "{}", misses[0]);
    }

    #[test]
    fn floors_judge_the_lowest_round_or_the_median() {
        let mut r = Report::new();
        let floor = || Target::at_least(0.7, "≥ 0.7");
        r.row(Row::new("high", Unit::Ratio, vec![0.9, 0.8, 0.75]).target(floor()));
        r.row(Row::new("dip", Unit::Ratio, vec![0.9, 0.8, 0.6]).target(floor()));
        r.row(Row::new("med", Unit::Ratio, vec![0.9, 0.8, 0.6]).target(floor().on_median()));
        r.row(Row::new("low", Unit::Ratio, vec![0.5, 0.8, 0.6]).target(floor().on_median()));
        let (table, misses) = r.render();
        let result = |name: &str| {
            table
                .lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
        };
        assert_eq!(result("high").as_deref(), Some("PASS"));
        assert_eq!(result("dip").as_deref(), Some("MISS"));
        assert_eq!(result("med").as_deref(), Some("PASS"));
        assert_eq!(result("low").as_deref(), Some("MISS"));
        // The worst column of a floor is the lowest round.
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("dip") && l.contains("0.60"))
        );
        assert_eq!(misses.len(), 2);
        assert!(misses[1].contains("median 0.60"), "{}", misses[1]);
    }
}
