//! Session after session: the reconnect loop every role runs.
//!
//! An expired ZooKeeper session cannot be revived; its ephemeral nodes and watches are gone,
//! so a role keeps making new sessions until it is told to stop. The loop and the `connected`
//! and `session_expirations` metrics are the same for every role and live here; what a role
//! does within a session, at stop and after a loss is its own (`SessionRole`). Before a role
//! gets a session, the grid's root is checked (and created or adopted, see
//! [`super::access::prepare_root`]); a root this process may not use ends the loop with an
//! error, and the process stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client::Client;

use super::{Layout, ZkError, access, connect};
use crate::metrics::ZkMetrics;

/// How serving one session ended.
pub(crate) enum SessionEnd {
    /// `stop` fired; the session is still there for the cleanup.
    Stopped,
    /// The session is gone for good; a new one is needed.
    Lost(ZkError),
}

/// One role's part in each session (head election, monitor, cluster server).
pub(crate) trait SessionRole {
    /// Works within `client`'s session until it is lost or `stop` fires.
    async fn serve(&self, client: &Client, stop: &CancellationToken) -> SessionEnd;

    /// Cleans up before the process stops. Must be bounded: ZooKeeper may be gone, and the
    /// session's expiry then does the same job. The `connected` gauge is the role's to lower
    /// here, since the session may still be up.
    async fn stop(&self, client: &Client);

    /// Records a lost session (the metrics are already counted) before the next one starts.
    fn lost(&self, client: &Client, error: &ZkError);
}

/// Serves `role` session after session; returns once `stop` fires, after the role's cleanup
/// if a session was up, or with the error if this process may not use the grid's root.
pub(crate) async fn run_sessions(
    hosts: &str,
    layout: &Layout,
    session_timeout: Duration,
    metrics: &ZkMetrics,
    stop: &CancellationToken,
    role: &impl SessionRole,
) -> Result<(), ZkError> {
    // `connect` fails only when `stop` fires.
    while let Ok(client) = connect(hosts, layout.access(), session_timeout, stop).await {
        match prepare_root(&client, layout, stop).await {
            Ok(()) => {}
            Err(ZkError::Shutdown) => return Ok(()),
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "ZooKeeper session lost while checking the grid's root; connecting again");
                continue;
            }
        }
        metrics.connected.set(1);
        match role.serve(&client, stop).await {
            SessionEnd::Stopped => {
                role.stop(&client).await;
                return Ok(());
            }
            SessionEnd::Lost(e) => {
                metrics.connected.set(0);
                metrics.session_expirations.inc();
                role.lost(&client, &e);
            }
        }
    }
    Ok(())
}

/// Session ids this process held before and lost. After ZooKeeper restarts, the server keeps
/// a session the client already gave up as expired (the client expires its own session after
/// 7/5 of the session timeout without an answer) until the session timeout has passed again,
/// and with it the session's ephemeral registration: a process that waited for that node to
/// go would stay unregistered, and refuse new epochs, for a whole session timeout after
/// ZooKeeper is back. Its own dead sessions' nodes are removed instead.
#[derive(Debug, Default)]
pub(crate) struct PastSessions(std::sync::Mutex<Vec<i64>>);

/// How many lost sessions are remembered (the newest): only the last one or two can still
/// hold a node.
const PAST_SESSIONS: usize = 16;

impl PastSessions {
    /// Remembers `id` as a session of this process that is gone.
    pub(crate) fn remember(&self, id: i64) {
        if let Ok(mut past) = self.0.lock() {
            if past.len() >= PAST_SESSIONS {
                past.remove(0);
            }
            past.push(id);
        }
    }

    /// Whether `owner` is a session this process held and lost.
    pub(crate) fn contains(&self, owner: i64) -> bool {
        owner != 0 && self.0.lock().is_ok_and(|p| p.contains(&owner))
    }
}

/// [`access::prepare_root`], retried every 500 ms on errors that leave the session up; ends
/// with `Shutdown` when `stop` fires, and with the error when it is fatal or the session is
/// lost.
async fn prepare_root(
    client: &Client,
    layout: &Layout,
    stop: &CancellationToken,
) -> Result<(), ZkError> {
    loop {
        let e = tokio::select! {
            _ = stop.cancelled() => return Err(ZkError::Shutdown),
            r = access::prepare_root(client, layout) => match r {
                Ok(()) => return Ok(()),
                Err(e) if e.is_fatal() || e.is_session_lost() => return Err(e),
                Err(e) => e,
            },
        };
        tracing::warn!(zk_root = layout.root(), error = %e, "cannot check the grid's root in ZooKeeper; retrying");
        tokio::select! {
            _ = stop.cancelled() => return Err(ZkError::Shutdown),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// For session work that may be dropped at any await: runs it until it ends (the session is
/// lost) or `stop` fires.
pub(crate) async fn until_stopped(
    stop: &CancellationToken,
    work: impl Future<Output = ZkError>,
) -> SessionEnd {
    tokio::select! {
        _ = stop.cancelled() => SessionEnd::Stopped,
        e = work => SessionEnd::Lost(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_sessions_are_ours_and_only_the_newest_are_kept() {
        let past = PastSessions::default();
        assert!(!past.contains(7));
        past.remember(7);
        assert!(past.contains(7));
        // Not a session: a persistent node's owner.
        past.remember(0);
        assert!(!past.contains(0));
        for id in 100..100 + PAST_SESSIONS as i64 {
            past.remember(id);
        }
        assert!(!past.contains(7));
        assert!(past.contains(100 + PAST_SESSIONS as i64 - 1));
    }
}
