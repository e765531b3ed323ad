//! What the clients did: every operation with its invoke and complete times (microseconds
//! since the run began) and its outcome. The checker judges this record and nothing else.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A file's content as the checker knows it: a digest of the bytes (several writes of the
/// same bytes, e.g. every empty file, share one).
pub type Digest = String;

/// The digest the suite gives a body.
pub fn digest(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(bytes)[..16])
}

/// What a read saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    /// `404`: no such file.
    Absent,
    /// A complete body with this digest.
    Content(Digest),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    Write {
        digest: Digest,
        size: u64,
    },
    Delete,
    /// `seen` is set when the read succeeded.
    Read {
        seen: Option<Seen>,
    },
}

/// How an operation ended, as the client can know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Acknowledged (2xx; for a delete also 404) or, for a read, answered.
    Ok,
    /// Refused for certain: every attempt got an answer that says nothing was changed.
    Failed,
    /// May or may not have taken effect (a timeout, a broken connection, a 5xx).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub kind: OpKind,
    /// Microseconds since the run began.
    pub invoke: u64,
    pub complete: u64,
    pub outcome: Outcome,
    /// The epoch of the leader that committed an acknowledged write (from its answer).
    #[serde(default)]
    pub epoch: Option<u64>,
    /// A read made after every fault was healed and every writer had stopped.
    #[serde(default)]
    pub final_read: bool,
    /// Why the last attempt of an operation that did not succeed failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Op {
    pub fn is_mutation(&self) -> bool {
        matches!(self.kind, OpKind::Write { .. } | OpKind::Delete)
    }

    /// The value a mutation leaves the key with.
    pub fn written(&self) -> Option<Seen> {
        match &self.kind {
            OpKind::Write { digest, .. } => Some(Seen::Content(digest.clone())),
            OpKind::Delete => Some(Seen::Absent),
            OpKind::Read { .. } => None,
        }
    }
}

#[cfg(test)]
impl Op {
    /// An operation of client 0 on `key`, for tests of the functions that judge histories.
    pub(crate) fn on(key: &str, kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op {
            client: 0,
            key: key.into(),
            kind,
            invoke,
            complete,
            outcome,
            epoch: None,
            final_read: false,
            note: None,
        }
    }
}

/// Whether `key` must exist at the end of a run, whatever order concurrent operations took:
/// none of its writes and deletes has an unknown outcome, and an acknowledged write began
/// after every acknowledged delete had ended. (A write concurrent with a delete may come
/// before it, and a write of unknown outcome may never have happened: the checker excuses the
/// key's absence in both cases.)
pub fn surely_present(ops: &[Op], key: &str) -> bool {
    let mine = || ops.iter().filter(|o| o.key == key && o.is_mutation());
    if mine().any(|o| o.outcome == Outcome::Unknown) {
        return false;
    }
    let deleted = mine()
        .filter(|o| o.kind == OpKind::Delete && o.outcome == Outcome::Ok)
        .map(|o| o.complete)
        .max();
    mine().any(|o| {
        matches!(o.kind, OpKind::Write { .. })
            && o.outcome == Outcome::Ok
            && deleted.is_none_or(|d| o.invoke > d)
    })
}

/// Which head a `/v1/leader` answer named for an epoch, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderSeen {
    pub at: u64,
    pub epoch: u64,
    pub server_id: String,
}

/// The clock every record is stamped with.
#[derive(Clone, Copy, Debug)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn now(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// The shared, append-only record of a run.
#[derive(Clone, Default)]
pub struct Recorder {
    ops: Arc<Mutex<Vec<Op>>>,
    leaders: Arc<Mutex<Vec<LeaderSeen>>>,
}

impl Recorder {
    pub fn op(&self, op: Op) {
        // A poisoned lock means a client thread panicked; its record is still good.
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    pub fn leader(&self, seen: LeaderSeen) {
        self.leaders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(seen);
    }

    /// How many writes and deletes begun at or after `t` were acknowledged.
    pub fn acked_since(&self, t: u64) -> usize {
        self.ops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|o| o.is_mutation() && o.invoke >= t && o.outcome == Outcome::Ok)
            .count()
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn leaders(&self) -> Vec<LeaderSeen> {
        self.leaders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: OpKind, invoke: u64, complete: u64, outcome: Outcome) -> Op {
        Op::on("k", kind, invoke, complete, outcome)
    }

    fn write(invoke: u64, complete: u64, outcome: Outcome) -> Op {
        let kind = OpKind::Write {
            digest: digest(b"v"),
            size: 1,
        };
        op(kind, invoke, complete, outcome)
    }

    #[test]
    fn only_a_write_begun_after_every_delete_ended_makes_a_key_surely_present() {
        let delete = |i, c| op(OpKind::Delete, i, c, Outcome::Ok);
        assert!(surely_present(&[write(0, 10, Outcome::Ok)], "k"));
        assert!(!surely_present(&[write(0, 10, Outcome::Ok)], "other"));
        assert!(surely_present(
            &[delete(0, 10), write(11, 20, Outcome::Ok)],
            "k"
        ));
        // Overlapping the delete, the write may have come first.
        assert!(!surely_present(
            &[write(5, 20, Outcome::Ok), delete(0, 10)],
            "k"
        ));
        // A refused write changed nothing.
        assert!(!surely_present(
            &[delete(0, 10), write(11, 20, Outcome::Failed)],
            "k"
        ));
        // Any write or delete of unknown outcome makes the end state uncertain.
        assert!(!surely_present(
            &[write(0, 10, Outcome::Ok), write(11, 20, Outcome::Unknown)],
            "k"
        ));
        assert!(!surely_present(
            &[
                write(0, 10, Outcome::Ok),
                op(OpKind::Delete, 11, 20, Outcome::Unknown)
            ],
            "k"
        ));
    }
}
