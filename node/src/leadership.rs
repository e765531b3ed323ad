//! The leadership a piece of work writes metadata under.
//!
//! A request or a repair pass takes this head's leadership once ([`Leadership::current`])
//! and every metadata write it makes is checked against that one token (see
//! [`crate::fencing`]): if the head loses leadership, even if it wins again with a newer
//! epoch meanwhile, the rest of that work is refused rather than committed under a
//! leadership it did not start with. Handlers get it from the leader-only gate in
//! [`crate::head::leader_only`]; nothing else asks the election for a token.
//!
//! Reads of committed metadata need no token: a [`ReadView`] is the leader's session, or a
//! standby's session after a ZooKeeper `sync`, so that any head serves file reads.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client::{Client, MultiWriteResult};

use crate::election::Election;
use crate::fencing::{FenceError, FencedOp, LeaderToken};
use crate::zk::Layout;

/// One leadership of this head: the ZooKeeper client, the layout and the epoch token.
#[derive(Clone)]
pub struct Leadership {
    election: Arc<Election>,
    client: Client,
    token: LeaderToken,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("server_id", &self.token.server_id)
            .field("epoch", &self.token.epoch)
            .finish()
    }
}

impl Leadership {
    /// This head's leadership right now: `None` unless it leads and is connected.
    pub fn current(election: &Arc<Election>) -> Option<Self> {
        let token = election.current_token()?;
        let client = election.client()?;
        Some(Self {
            election: election.clone(),
            client,
            token,
        })
    }

    /// The ZooKeeper client of the session that won (reads need no fence).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn layout(&self) -> &Layout {
        self.election.layout()
    }

    /// The epoch this leadership writes under (stamped on chunk writes).
    pub fn epoch(&self) -> u64 {
        self.token.epoch
    }

    pub fn token(&self) -> &LeaderToken {
        &self.token
    }

    /// A fenced metadata write: applied only while this very leadership holds.
    pub async fn write(&self, ops: &[FencedOp]) -> Result<Vec<MultiWriteResult>, FenceError> {
        self.election.write_with(&self.token, ops).await
    }
}

/// Where a read of committed metadata runs: the leader's own session (which sees every write
/// it acknowledged), or a standby's session after a `sync`, which brings the ZooKeeper server
/// it is connected to up to date with the ensemble's leader: it sees every write acknowledged
/// before the sync.
#[derive(Clone)]
pub struct ReadView {
    client: Client,
    layout: Layout,
}

impl std::fmt::Debug for ReadView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadView")
            .field("root", &self.layout.root())
            .finish()
    }
}

/// Why a standby cannot read committed metadata itself right now.
#[derive(Debug, thiserror::Error)]
pub enum ReadViewError {
    #[error("not connected to ZooKeeper")]
    NotConnected,
    #[error("ZooKeeper sync failed: {0}")]
    Sync(#[from] zookeeper_client::Error),
    #[error("ZooKeeper sync did not finish within {0:?}")]
    SyncTimeout(Duration),
}

impl ReadView {
    /// The leader's view: its own session.
    pub fn of(lead: &Leadership) -> Self {
        Self {
            client: lead.client.clone(),
            layout: lead.layout().clone(),
        }
    }

    /// This head's session, synced with ZooKeeper's leader (within `timeout`).
    pub async fn synced(election: &Election, timeout: Duration) -> Result<Self, ReadViewError> {
        if !election.status().borrow().zk_connected {
            return Err(ReadViewError::NotConnected);
        }
        let client = election.client().ok_or(ReadViewError::NotConnected)?;
        let layout = election.layout().clone();
        tokio::time::timeout(timeout, client.sync(layout.root()))
            .await
            .map_err(|_| ReadViewError::SyncTimeout(timeout))??;
        Ok(Self { client, layout })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
}
