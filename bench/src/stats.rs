//! Median, worst and percentiles of a series of samples.

/// Median and worst of `samples` (the minimum when higher is better, else the maximum);
/// `None` when there are none.
pub fn median_and_worst_by(samples: &[f64], higher_is_better: bool) -> Option<(f64, f64)> {
    let s = sorted(samples);
    let n = s.len();
    if n == 0 {
        return None;
    }
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    let worst = if higher_is_better { s[0] } else { s[n - 1] };
    Some((median, worst))
}

/// The `p`-th percentile (0–100) of `samples` by the nearest-rank method.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let s = sorted(samples);
    if s.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_empty() {
        assert_eq!(
            median_and_worst_by(&[3.0, 1.0, 2.0], false),
            Some((2.0, 3.0))
        );
        assert_eq!(
            median_and_worst_by(&[4.0, 1.0, 2.0, 3.0], false),
            Some((2.5, 4.0))
        );
        assert_eq!(median_and_worst_by(&[], false), None);
        assert_eq!(
            median_and_worst_by(&[f64::NAN, 5.0], false),
            Some((5.0, 5.0))
        );
        assert_eq!(
            median_and_worst_by(&[3.0, 1.0, 2.0], true),
            Some((2.0, 1.0))
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), Some(50.0));
        assert_eq!(percentile(&s, 99.0), Some(99.0));
        assert_eq!(percentile(&s, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
