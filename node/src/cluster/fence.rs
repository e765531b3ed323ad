//! Epoch fencing: refuse requests from a deposed leader, and never learn an epoch from one.

use std::time::Duration;

use tokio::sync::watch;

/// The newest leader epoch ZooKeeper has told this server, shared by every request handler.
///
/// Each new leader bumps the epoch in ZooKeeper and stamps its requests with it. A request
/// with an older epoch comes from a leader that has since been replaced and is refused, so
/// a paused or partitioned old leader cannot write or delete chunks. Only the ZooKeeper
/// follower raises the value ([`EpochFence::observe`]): a request stamped with a newer
/// epoch waits briefly for ZooKeeper to confirm it and is refused otherwise, so no request
/// can move the fence (an epoch of 2^64-1 would otherwise lock every leader out).
#[derive(Clone, Debug)]
pub struct EpochFence(watch::Sender<u64>);

impl Default for EpochFence {
    fn default() -> Self {
        Self::new(0)
    }
}

/// Why a request's epoch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EpochError {
    /// Older than the newest epoch: a deposed leader.
    #[error("epoch {got} is older than the newest epoch seen, {newest}")]
    Stale { got: u64, newest: u64 },
    /// Newer than anything ZooKeeper said within the wait.
    #[error("epoch {got} is newer than ZooKeeper's, {newest}; refused")]
    Unconfirmed { got: u64, newest: u64 },
}

/// Kept for callers that name the stale case.
pub type StaleEpoch = EpochError;

impl EpochFence {
    /// A fence that has seen `initial` (for example the epoch read from ZooKeeper at start).
    pub fn new(initial: u64) -> Self {
        Self(watch::Sender::new(initial))
    }

    /// The newest epoch seen.
    pub fn current(&self) -> u64 {
        *self.0.borrow()
    }

    /// Admits a request stamped with `epoch`: the current epoch passes, an older one is
    /// stale, a newer one waits up to `wait` for ZooKeeper to reach it.
    pub async fn admit(&self, epoch: u64, wait: Duration) -> Result<(), EpochError> {
        let mut rx = self.0.subscribe();
        let judge = |newest: u64| match epoch.cmp(&newest) {
            std::cmp::Ordering::Less => Some(Err(EpochError::Stale { got: epoch, newest })),
            std::cmp::Ordering::Equal => Some(Ok(())),
            std::cmp::Ordering::Greater => None,
        };
        let waited = tokio::time::timeout(wait, async {
            loop {
                if let Some(verdict) = judge(*rx.borrow_and_update()) {
                    return verdict;
                }
                if rx.changed().await.is_err() {
                    return Err(EpochError::Unconfirmed {
                        got: epoch,
                        newest: self.current(),
                    });
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            Err(EpochError::Unconfirmed {
                got: epoch,
                newest: self.current(),
            })
        })
    }

    /// Raises the fence to `epoch` (a no-op if it is not newer), when ZooKeeper says so.
    /// Returns the newest epoch seen.
    pub fn observe(&self, epoch: u64) -> u64 {
        self.0.send_if_modified(|cur| {
            if epoch > *cur {
                *cur = epoch;
                true
            } else {
                false
            }
        });
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn older_epochs_are_stale_and_requests_never_raise_the_fence() {
        let fence = EpochFence::new(3);
        assert_eq!(
            fence.admit(2, WAIT).await,
            Err(EpochError::Stale { got: 2, newest: 3 })
        );
        assert_eq!(fence.admit(3, WAIT).await, Ok(()));
        assert_eq!(
            fence.admit(u64::MAX, WAIT).await,
            Err(EpochError::Unconfirmed {
                got: u64::MAX,
                newest: 3
            })
        );
        assert_eq!(fence.current(), 3, "a request did not move the fence");
        assert_eq!(fence.admit(3, WAIT).await, Ok(()));
        assert_eq!(fence.observe(2), 3);
        assert_eq!(fence.observe(9), 9);
        assert!(
            fence.clone().admit(8, WAIT).await.is_err(),
            "clones share the fence"
        );
    }

    #[tokio::test]
    async fn a_newer_epoch_passes_once_zookeeper_confirms_it() {
        let fence = EpochFence::new(1);
        let waiting = {
            let fence = fence.clone();
            tokio::spawn(async move { fence.admit(2, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        fence.observe(2);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }
}
