//! Session after session: the reconnect loop every role runs.
//!
//! An expired ZooKeeper session cannot be revived; its ephemeral nodes and watches are gone,
//! so a role keeps making new sessions until it is told to stop. The loop and the `connected`
//! and `session_expirations` metrics are the same for every role and live here; what a role
//! does within a session, at stop and after a loss is its own (`SessionRole`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client::Client;

use super::{ZkError, connect};
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
/// if a session was up.
pub(crate) async fn run_sessions(
    hosts: &str,
    session_timeout: Duration,
    metrics: &ZkMetrics,
    stop: &CancellationToken,
    role: &impl SessionRole,
) {
    // `connect` fails only when `stop` fires.
    while let Ok(client) = connect(hosts, session_timeout, stop).await {
        metrics.connected.set(1);
        match role.serve(&client, stop).await {
            SessionEnd::Stopped => {
                role.stop(&client).await;
                return;
            }
            SessionEnd::Lost(e) => {
                metrics.connected.set(0);
                metrics.session_expirations.inc();
                role.lost(&client, &e);
            }
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
