//! The leadership a piece of work writes metadata under.
//!
//! A request or a repair pass takes this head's leadership once ([`Leadership::current`])
//! and every metadata write it makes is checked against that one token (see
//! [`crate::fencing`]): if the head loses leadership, even if it wins again with a newer
//! epoch meanwhile, the rest of that work is refused rather than committed under a
//! leadership it did not start with. Handlers get it from the leader-only gate in
//! [`crate::head::leader_only`]; nothing else asks the election for a client or a token.

use std::sync::Arc;

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
