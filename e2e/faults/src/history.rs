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
