//! The parts of a multipart object, for `partNumber` reads.
//!
//! Completing a multipart upload assembles the parts' chunk lists into one object; what is
//! kept of the parts is their sizes, in order, as runs of equal sizes (`[size, count]` in the
//! object's attributes): a few bytes for the common case of equal parts and a shorter last one,
//! at most 10,000 runs otherwise. Part `N` is then the byte span after the first `N - 1` parts.
//! The runs are read back from ZooKeeper, so they are checked against the object before any
//! span is cut from them.

use std::ops::Range;

/// The most parts an object may have (S3's limit).
pub const MAX_PARTS: u32 = 10_000;

/// Runs of equal sizes of `sizes`, in order (pure).
pub fn runs_of(sizes: impl IntoIterator<Item = u64>) -> Vec<(u64, u32)> {
    let mut runs: Vec<(u64, u32)> = Vec::new();
    for s in sizes {
        match runs.last_mut() {
            Some((size, n)) if *size == s => *n += 1,
            _ => runs.push((s, 1)),
        }
    }
    runs
}

/// Where a part lies in its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Its bytes, and how many parts the object has.
    At { bytes: Range<u64>, count: u32 },
    /// The object has fewer parts than the number asked for.
    Beyond { count: u32 },
}

/// Part `number` (from 1) of an object of `size` bytes whose parts are `runs` (pure). `None`
/// when the runs cannot be this object's (no parts, a run of none, more than [`MAX_PARTS`], or
/// sizes that do not add up to `size`): damaged or hostile attributes never cut a read.
pub fn locate(runs: &[(u64, u32)], size: u64, number: u32) -> Option<Part> {
    let mut count: u32 = 0;
    let mut total: u64 = 0;
    for &(part_size, n) in runs {
        if n == 0 {
            return None;
        }
        count = count.checked_add(n).filter(|&c| c <= MAX_PARTS)?;
        total = total.checked_add(part_size.checked_mul(u64::from(n))?)?;
    }
    if count == 0 || total != size {
        return None;
    }
    if number == 0 || number > count {
        return Some(Part::Beyond { count });
    }
    // Parts before `number`, run by run.
    let mut before = number - 1;
    let mut start: u64 = 0;
    for &(part_size, n) in runs {
        if before < n {
            start += part_size * u64::from(before);
            return Some(Part::At {
                bytes: start..start + part_size,
                count,
            });
        }
        start += part_size * u64::from(n);
        before -= n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn equal_parts_and_a_short_last_one_take_two_runs() {
        assert_eq!(
            runs_of([5 * MIB, 5 * MIB, 2 * MIB]),
            vec![(5 * MIB, 2), (2 * MIB, 1)]
        );
        assert_eq!(runs_of([7, 8, 8, 7]), vec![(7, 1), (8, 2), (7, 1)]);
        assert_eq!(runs_of([0]), vec![(0, 1)]);
        assert!(runs_of([]).is_empty());
    }

    #[test]
    fn each_part_is_found_where_the_parts_before_it_end() {
        let runs = runs_of([5 * MIB, 5 * MIB, 2 * MIB]);
        let size = 12 * MIB;
        let at = |n| locate(&runs, size, n);
        assert_eq!(
            at(1),
            Some(Part::At {
                bytes: 0..5 * MIB,
                count: 3
            })
        );
        assert_eq!(
            at(2),
            Some(Part::At {
                bytes: 5 * MIB..10 * MIB,
                count: 3
            })
        );
        assert_eq!(
            at(3),
            Some(Part::At {
                bytes: 10 * MIB..12 * MIB,
                count: 3
            })
        );
        assert_eq!(at(4), Some(Part::Beyond { count: 3 }));
        assert_eq!(at(0), Some(Part::Beyond { count: 3 }));

        let runs = runs_of([7, 8, 8, 7]);
        assert_eq!(
            locate(&runs, 30, 3),
            Some(Part::At {
                bytes: 15..23,
                count: 4
            })
        );
        assert_eq!(
            locate(&runs, 30, 4),
            Some(Part::At {
                bytes: 23..30,
                count: 4
            })
        );
    }

    #[test]
    fn runs_that_cannot_be_the_objects_are_not_used() {
        // Sizes that do not add up.
        assert_eq!(locate(&[(5, 2)], 11, 1), None);
        // No parts, or a run of none.
        assert_eq!(locate(&[], 0, 1), None);
        assert_eq!(locate(&[(5, 0), (5, 1)], 5, 1), None);
        // More than S3 allows, or numbers that overflow.
        assert_eq!(
            locate(&[(1, MAX_PARTS + 1)], u64::from(MAX_PARTS) + 1, 1),
            None
        );
        assert_eq!(locate(&[(u64::MAX, 2)], u64::MAX, 1), None);
        assert_eq!(locate(&[(1, u32::MAX), (1, 2)], 1, 1), None);
        // The most parts allowed is fine.
        assert_eq!(
            locate(&[(1, MAX_PARTS)], u64::from(MAX_PARTS), MAX_PARTS),
            Some(Part::At {
                bytes: 9_999..10_000,
                count: MAX_PARTS
            })
        );
    }
}
