//! Epoch fencing: refuse requests from a deposed leader.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The newest leader epoch this server has seen, shared by every request handler.
///
/// Each new leader bumps the epoch in ZooKeeper and stamps its requests with it. A request
/// with an older epoch comes from a leader that has since been replaced and is refused, so
/// a paused or partitioned old leader cannot write or delete chunks. The value only grows.
#[derive(Clone, Debug, Default)]
pub struct EpochFence(Arc<AtomicU64>);

/// A request stamped with an epoch older than the newest seen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("epoch {got} is older than the newest epoch seen, {newest}")]
pub struct StaleEpoch {
    /// Epoch of the refused request.
    pub got: u64,
    /// Newest epoch seen.
    pub newest: u64,
}

impl EpochFence {
    /// A fence that has seen `initial` (for example the epoch read from ZooKeeper at start).
    pub fn new(initial: u64) -> Self {
        Self(Arc::new(AtomicU64::new(initial)))
    }

    /// The newest epoch seen.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Admits a request stamped with `epoch` if it is not older than the newest seen,
    /// raising the fence when it is newer.
    pub fn check(&self, epoch: u64) -> Result<(), StaleEpoch> {
        let previous = self.0.fetch_max(epoch, Ordering::SeqCst);
        if epoch < previous {
            Err(StaleEpoch {
                got: epoch,
                newest: previous,
            })
        } else {
            Ok(())
        }
    }

    /// Raises the fence to `epoch` (a no-op if it is not newer), e.g. when a watch on the
    /// leader's epoch fires. Returns the newest epoch seen.
    pub fn observe(&self, epoch: u64) -> u64 {
        self.0.fetch_max(epoch, Ordering::SeqCst).max(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_epochs_are_refused_and_newer_raise_the_fence() {
        let fence = EpochFence::new(3);
        assert_eq!(fence.check(2), Err(StaleEpoch { got: 2, newest: 3 }));
        assert_eq!(fence.check(3), Ok(()));
        assert_eq!(fence.check(5), Ok(()));
        assert_eq!(fence.current(), 5);
        assert_eq!(fence.check(4), Err(StaleEpoch { got: 4, newest: 5 }));
        assert_eq!(fence.observe(4), 5);
        assert_eq!(fence.observe(9), 9);
        assert!(fence.clone().check(8).is_err(), "clones share the fence");
    }
}
