//! Judges a history. Each file is a register: a write sets its content, a delete makes it
//! absent, and before anything it is absent. The rules, per key:
//!
//! * a read (or the final read after healing) may return the value of a mutation `W` only if
//!   `W` was invoked before the read completed, and no acknowledged mutation `W2` both
//!   began after `W` completed and completed before the read began (then `W` was certainly
//!   replaced). A mutation whose outcome is unknown may take effect at any time after its
//!   invocation, so nothing replaces it for certain. A final read that breaks this rule is
//!   a *lost acknowledged write*; an earlier one a *stale read*.
//! * a read may only return content some write of that key, not refused for certain, wrote
//!   (else *never written*: invented or corrupted bytes, or a refused write that took effect).
//! * acknowledged writes carry the committing leader's epoch: a write acknowledged before
//!   another began must not carry a newer epoch (else a deposed leader committed after its
//!   successor), and every epoch is led by one head (from the `/v1/leader` answers seen).

use std::collections::{BTreeMap, HashMap};

use crate::history::{LeaderSeen, Op, OpKind, Outcome, Seen};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    LostWrite {
        key: String,
        read_at: u64,
        seen: Seen,
        /// The acknowledged mutation the final read should have reflected (at least).
        replaced_by: Seen,
    },
    StaleRead {
        key: String,
        read_at: u64,
        seen: Seen,
        replaced_by: Seen,
    },
    NeverWritten {
        key: String,
        read_at: u64,
        seen: Seen,
    },
    EpochWentBack {
        key: String,
        earlier_epoch: u64,
        later_key: String,
        later_epoch: u64,
        at: u64,
    },
    EpochTwoHeads {
        epoch: u64,
        heads: Vec<String>,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::LostWrite {
                key,
                read_at,
                seen,
                replaced_by,
            } => write!(
                f,
                "LOST acknowledged write: final read of {key} at {read_at}us saw {seen:?}, but {replaced_by:?} was acknowledged after it"
            ),
            Violation::StaleRead {
                key,
                read_at,
                seen,
                replaced_by,
            } => write!(
                f,
                "STALE read of {key} at {read_at}us: saw {seen:?}, already replaced by acknowledged {replaced_by:?}"
            ),
            Violation::NeverWritten { key, read_at, seen } => write!(
                f,
                "NEVER WRITTEN: read of {key} at {read_at}us saw {seen:?}, which no write of that key could have made"
            ),
            Violation::EpochWentBack {
                key,
                earlier_epoch,
                later_key,
                later_epoch,
                at,
            } => write!(
                f,
                "EPOCH went back: write of {key} acknowledged under epoch {earlier_epoch}, yet write of {later_key} begun later (at {at}us) was committed under epoch {later_epoch}"
            ),
            Violation::EpochTwoHeads { epoch, heads } => {
                write!(f, "EPOCH {epoch} named two leaders: {heads:?}")
            }
        }
    }
}

/// Every violation in the history (empty when it is valid).
pub fn check(ops: &[Op], leaders: &[LeaderSeen]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut by_key: HashMap<&str, Vec<&Op>> = HashMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut keys: Vec<&&str> = by_key.keys().collect();
    keys.sort();
    for key in keys {
        check_key(key, &by_key[*key], &mut out);
    }
    out.extend(check_epoch_order(ops));
    out.extend(check_epoch_heads(leaders));
    out
}

/// A mutation as the register rules see it: its value, when it may have started to count and
/// when it had certainly taken effect (`None`: never certainly).
struct Mutation {
    value: Seen,
    invoke: u64,
    acked_at: Option<u64>,
    invoked_at_complete: u64,
}

fn check_key(key: &str, ops: &[&Op], out: &mut Vec<Violation>) {
    // The initial state is an acknowledged "absent" at time 0.
    let mut mutations = vec![Mutation {
        value: Seen::Absent,
        invoke: 0,
        acked_at: Some(0),
        invoked_at_complete: 0,
    }];
    for op in ops.iter().filter(|o| o.is_mutation()) {
        if op.outcome == Outcome::Failed {
            continue;
        }
        let Some(value) = op.written() else { continue };
        mutations.push(Mutation {
            value,
            invoke: op.invoke,
            acked_at: (op.outcome == Outcome::Ok).then_some(op.complete),
            invoked_at_complete: op.complete,
        });
    }
    for read in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let OpKind::Read { seen: Some(seen) } = &read.kind else {
            continue;
        };
        let candidates: Vec<&Mutation> = mutations.iter().filter(|m| &m.value == seen).collect();
        if candidates.is_empty() {
            out.push(Violation::NeverWritten {
                key: key.into(),
                read_at: read.invoke,
                seen: seen.clone(),
            });
            continue;
        }
        let replacer = |m: &Mutation| -> Option<&Mutation> {
            let done = m.acked_at?;
            mutations
                .iter()
                .find(|w2| w2.invoke > done && w2.acked_at.is_some_and(|a| a < read.invoke))
        };
        let possible = candidates
            .iter()
            .any(|m| m.invoke < read.complete && replacer(m).is_none());
        if possible {
            continue;
        }
        // Name the newest acknowledged mutation that replaced the value seen.
        let replaced_by = mutations
            .iter()
            .filter(|w| w.acked_at.is_some_and(|a| a < read.invoke))
            .max_by_key(|w| w.invoked_at_complete)
            .map(|w| w.value.clone())
            .unwrap_or(Seen::Absent);
        let seen = seen.clone();
        out.push(if read.final_read {
            Violation::LostWrite {
                key: key.into(),
                read_at: read.invoke,
                seen,
                replaced_by,
            }
        } else {
            Violation::StaleRead {
                key: key.into(),
                read_at: read.invoke,
                seen,
                replaced_by,
            }
        });
    }
}

/// No acknowledged write carries an older epoch than a write acknowledged before it began.
fn check_epoch_order(ops: &[Op]) -> Vec<Violation> {
    let mut acked: Vec<&Op> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok && o.epoch.is_some())
        .collect();
    acked.sort_by_key(|o| o.complete);
    // prefix[i]: the op with the largest epoch among acked[..=i].
    let mut prefix: Vec<&Op> = Vec::with_capacity(acked.len());
    for op in &acked {
        let best = match prefix.last() {
            Some(b) if b.epoch >= op.epoch => *b,
            _ => *op,
        };
        prefix.push(best);
    }
    let mut out = Vec::new();
    for later in &acked {
        let before = acked.partition_point(|o| o.complete < later.invoke);
        if before == 0 {
            continue;
        }
        let earlier = prefix[before - 1];
        if let (Some(e), Some(l)) = (earlier.epoch, later.epoch)
            && e > l
        {
            out.push(Violation::EpochWentBack {
                key: earlier.key.clone(),
                earlier_epoch: e,
                later_key: later.key.clone(),
                later_epoch: l,
                at: later.invoke,
            });
        }
    }
    out
}

/// Every epoch is named with one leader.
fn check_epoch_heads(leaders: &[LeaderSeen]) -> Vec<Violation> {
    let mut heads: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for l in leaders {
        let h = heads.entry(l.epoch).or_default();
        if !h.contains(&l.server_id) {
            h.push(l.server_id.clone());
        }
    }
    heads
        .into_iter()
        .filter(|(_, h)| h.len() > 1)
        .map(|(epoch, heads)| Violation::EpochTwoHeads { epoch, heads })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op::on(key, kind, invoke, complete, outcome)
    }

    fn write(key: &str, v: &str, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        op(
            key,
            OpKind::Write {
                digest: v.into(),
                size: 1,
            },
            invoke,
            complete,
            outcome,
        )
    }

    fn read(key: &str, seen: Seen, invoke: u64, complete: u64) -> Op {
        op(
            key,
            OpKind::Read { seen: Some(seen) },
            invoke,
            complete,
            Outcome::Ok,
        )
    }

    fn content(v: &str) -> Seen {
        Seen::Content(v.into())
    }

    #[test]
    fn a_plain_sequence_is_valid() {
        let h = vec![
            read("k", Seen::Absent, 0, 5),
            write("k", "a", 10, 20, Outcome::Ok),
            read("k", content("a"), 30, 40),
            op("k", OpKind::Delete, 50, 60, Outcome::Ok),
            read("k", Seen::Absent, 70, 80),
        ];
        assert_eq!(check(&h, &[]), vec![]);
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        let h = vec![
            write("k", "a", 10, 20, Outcome::Ok),
            write("k", "b", 30, 60, Outcome::Ok),
            read("k", content("a"), 40, 50),
            read("k", content("b"), 40, 50),
        ];
        assert_eq!(check(&h, &[]), vec![]);
    }

    #[test]
    fn a_replaced_value_read_later_is_stale() {
        let h = vec![
            write("k", "a", 10, 20, Outcome::Ok),
            write("k", "b", 30, 40, Outcome::Ok),
            read("k", content("a"), 50, 60),
        ];
        assert_eq!(
            check(&h, &[]),
            vec![Violation::StaleRead {
                key: "k".into(),
                read_at: 50,
                seen: content("a"),
                replaced_by: content("b"),
            }]
        );
    }

    #[test]
    fn an_acknowledged_write_missing_at_the_end_is_lost() {
        let mut last = read("k", Seen::Absent, 100, 110);
        last.final_read = true;
        let h = vec![write("k", "a", 10, 20, Outcome::Ok), last];
        assert_eq!(
            check(&h, &[]),
            vec![Violation::LostWrite {
                key: "k".into(),
                read_at: 100,
                seen: Seen::Absent,
                replaced_by: content("a"),
            }]
        );
    }

    #[test]
    fn an_acknowledged_delete_undone_is_lost() {
        let mut last = read("k", content("a"), 100, 110);
        last.final_read = true;
        let h = vec![
            write("k", "a", 10, 20, Outcome::Ok),
            op("k", OpKind::Delete, 30, 40, Outcome::Ok),
            last,
        ];
        assert!(matches!(check(&h, &[])[..], [Violation::LostWrite { .. }]));
    }

    #[test]
    fn an_unknown_write_may_appear_late_or_never() {
        let mut late = read("k", content("u"), 100, 110);
        late.final_read = true;
        let h = vec![
            write("k", "u", 10, 20, Outcome::Unknown),
            write("k", "a", 30, 40, Outcome::Ok),
            read("k", content("a"), 50, 60),
            late,
        ];
        assert_eq!(check(&h, &[]), vec![]);
        let never = vec![
            write("k", "u", 10, 20, Outcome::Unknown),
            read("k", Seen::Absent, 50, 60),
        ];
        assert_eq!(check(&never, &[]), vec![]);
    }

    #[test]
    fn a_value_read_before_its_write_began_was_never_written_then() {
        let h = vec![
            read("k", content("a"), 0, 5),
            write("k", "a", 10, 20, Outcome::Ok),
        ];
        assert!(matches!(check(&h, &[])[..], [Violation::StaleRead { .. }]));
    }

    #[test]
    fn invented_or_refused_content_is_never_written() {
        let h = vec![
            write("k", "a", 10, 20, Outcome::Ok),
            write("k", "refused", 30, 40, Outcome::Failed),
            read("k", content("garbage"), 50, 60),
            read("k", content("refused"), 50, 60),
            // Another key's value is not this key's.
            write("j", "x", 10, 20, Outcome::Ok),
            read("k", content("x"), 50, 60),
        ];
        let v = check(&h, &[]);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v.iter()
                .all(|v| matches!(v, Violation::NeverWritten { .. }))
        );
    }

    #[test]
    fn failed_and_unanswered_reads_judge_nothing() {
        let h = vec![
            write("k", "a", 10, 20, Outcome::Ok),
            op("k", OpKind::Read { seen: None }, 30, 40, Outcome::Unknown),
        ];
        assert_eq!(check(&h, &[]), vec![]);
    }

    #[test]
    fn an_older_epoch_committed_after_a_newer_one_is_flagged() {
        let mut a = write("k", "a", 10, 20, Outcome::Ok);
        a.epoch = Some(5);
        let mut b = write("j", "b", 30, 40, Outcome::Ok);
        b.epoch = Some(4);
        let mut c = write("i", "c", 15, 50, Outcome::Ok);
        c.epoch = Some(4); // concurrent with a: allowed
        let v = check(&[a.clone(), b, c], &[]);
        assert_eq!(
            v,
            vec![Violation::EpochWentBack {
                key: "k".into(),
                earlier_epoch: 5,
                later_key: "j".into(),
                later_epoch: 4,
                at: 30,
            }]
        );
        let mut d = write("j", "d", 30, 40, Outcome::Ok);
        d.epoch = Some(6);
        assert_eq!(check(&[a, d], &[]), vec![]);
    }

    #[test]
    fn one_epoch_with_two_leaders_is_flagged() {
        let seen = |epoch, id: &str| LeaderSeen {
            at: 0,
            epoch,
            server_id: id.into(),
        };
        let ok = [seen(1, "h1"), seen(1, "h1"), seen(2, "h2")];
        assert_eq!(check(&[], &ok), vec![]);
        let bad = [seen(1, "h1"), seen(2, "h2"), seen(2, "h3")];
        assert_eq!(
            check(&[], &bad),
            vec![Violation::EpochTwoHeads {
                epoch: 2,
                heads: vec!["h2".into(), "h3".into()],
            }]
        );
    }
}
