//! Seeing a new leader the moment ZooKeeper does: an exists-watch on `<root>/leader`, read
//! back on every change. The time taken is when the watch reported the node's creation.

use std::time::{Duration, Instant};

use filegrid_node::zk::records::LeaderRecord;
use zookeeper_client::{Client, EventType};

/// The leader node as seen at some instant.
#[derive(Clone, Debug)]
pub struct LeaderSeen {
    pub server_id: String,
    /// When the watch (or the first look) showed this node.
    pub at: Instant,
}

/// Why no matching leader appeared.
pub enum WatchError {
    Timeout,
    Zk(zookeeper_client::Error),
}

impl From<zookeeper_client::Error> for WatchError {
    fn from(e: zookeeper_client::Error) -> Self {
        WatchError::Zk(e)
    }
}

/// Waits up to `timeout` for a leader node for which `accept` holds.
pub async fn wait_for_leader(
    client: &Client,
    path: &str,
    timeout: Duration,
    accept: impl Fn(&LeaderRecord) -> bool,
) -> Result<LeaderSeen, WatchError> {
    let deadline = Instant::now() + timeout;
    // When the last watch event announced a created or changed node, that instant; otherwise
    // the node (if any) is first known when the look below returns.
    let mut announced: Option<Instant> = None;
    loop {
        let (stat, watcher) = client.check_and_watch_stat(path).await?;
        let looked = Instant::now();
        if stat.is_some() {
            match client.get_data(path).await {
                Ok((data, _)) => {
                    if let Ok(leader) = serde_json::from_slice::<LeaderRecord>(&data)
                        && accept(&leader)
                    {
                        return Ok(LeaderSeen {
                            server_id: leader.server_id.to_string(),
                            at: announced.unwrap_or(looked),
                        });
                    }
                }
                Err(zookeeper_client::Error::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let event = tokio::time::timeout(left, watcher.changed())
            .await
            .map_err(|_| WatchError::Timeout)?;
        announced = matches!(
            event.event_type,
            EventType::NodeCreated | EventType::NodeDataChanged
        )
        .then(Instant::now);
    }
}

/// The current leader node, if any.
pub async fn current_leader(
    client: &Client,
    path: &str,
) -> Result<Option<LeaderRecord>, zookeeper_client::Error> {
    match client.get_data(path).await {
        Ok((data, _)) => Ok(serde_json::from_slice(&data).ok()),
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}
