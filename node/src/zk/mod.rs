//! ZooKeeper access shared by every role: connecting (authenticated with `zk_auth_file`),
//! the session-after-session loop, the grid's znode layout and ACL, and the records stored
//! in it.

pub mod access;
pub mod layout;
pub mod records;
mod session;

use backon::{ConstantBuilder, ExponentialBuilder, Retryable};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use zookeeper_client::Client;

pub use access::{AccessError, ZkAccess};
pub use layout::Layout;
pub(crate) use session::{PastSessions, SessionEnd, SessionRole, run_sessions, until_stopped};
pub use zookeeper_client as client;

/// Errors talking to ZooKeeper or reading what it holds.
#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error("ZooKeeper: {0}")]
    Zk(#[from] zookeeper_client::Error),
    #[error("znode {path} holds an unreadable record: {message}")]
    BadRecord { path: String, message: String },
    #[error("shutting down")]
    Shutdown,
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl ZkError {
    /// The session is gone for good; a new one is needed.
    pub fn is_session_lost(&self) -> bool {
        matches!(
            self,
            ZkError::Zk(
                zookeeper_client::Error::SessionExpired | zookeeper_client::Error::ClientClosed
            )
        )
    }

    /// This process cannot use the grid's root (see [`access::prepare_root`]): it stops.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ZkError::Access(_))
    }
}

/// The session id as the hex string stored in records.
pub fn session_id(client: &Client) -> String {
    client.session_id().to_string()
}

/// Longest pause between two attempts to open a session. Short: while ZooKeeper is down
/// (a restart) every process of the grid keeps trying, and the pause it is in when
/// ZooKeeper answers again delays its return (and, for the head that is to lead, every
/// write) by up to this long; with 2 s, the leader-to-be came back 1.5 s after the others in
/// the fault suite. A refused connection costs ZooKeeper nothing.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Connects, retrying with capped exponential backoff (100 ms doubling to
/// [`CONNECT_BACKOFF_MAX`]) until ZooKeeper answers or `cancel` fires. With a credential the
/// session authenticates before anything else, and again after every reconnect.
pub async fn connect(
    hosts: &str,
    access: &ZkAccess,
    session_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<Client, ZkError> {
    let attempt = || async move {
        access
            .connector()
            .with_session_timeout(session_timeout)
            .connect(hosts)
            .await
    };
    let retried = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(CONNECT_BACKOFF_MAX)
                .without_max_times(),
        )
        .notify(|e, _| {
            tracing::warn!(zk_hosts = hosts, error = %e, "cannot connect to ZooKeeper; retrying");
        });
    tokio::select! {
        _ = cancel.cancelled() => Err(ZkError::Shutdown),
        result = retried => {
            let client = result?;
            tracing::info!(session = %client.session_id(), zk_hosts = hosts, "connected to ZooKeeper");
            Ok(client)
        }
    }
}

/// Retries `register` every 500 ms until it succeeds or the session is lost (then its
/// error is returned: the caller starts a new session).
pub async fn register_until_done<F, Fut>(what: &str, register: F) -> Result<(), ZkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ZkError>>,
{
    register
        .retry(
            ConstantBuilder::default()
                .with_delay(Duration::from_millis(500))
                .without_max_times(),
        )
        .when(|e: &ZkError| !e.is_session_lost())
        .notify(|e, _| tracing::warn!(error = %e, "cannot register {what}; retrying"))
        .await
}

/// Creates the grid's persistent directories and the epoch counter if they are missing.
pub async fn ensure_layout(client: &Client, layout: &Layout) -> Result<(), ZkError> {
    for dir in layout.directories() {
        client.mkdir(&dir, &layout.persistent()).await?;
    }
    let epoch = records::EpochRecord {
        v: records::RECORD_VERSION,
        epoch: 0,
    };
    match client
        .create(
            &layout.epoch(),
            &records::encode(&epoch),
            &layout.persistent(),
        )
        .await
    {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads and decodes a record, `None` if the node does not exist.
pub async fn read<T: for<'de> serde::Deserialize<'de>>(
    client: &Client,
    path: &str,
) -> Result<Option<(T, zookeeper_client::Stat)>, ZkError> {
    match client.get_data(path).await {
        Ok((data, stat)) => Ok(Some((records::decode(path, &data)?, stat))),
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates (with the grid's ACL) or overwrites a persistent record.
pub async fn upsert<T: serde::Serialize>(
    client: &Client,
    layout: &Layout,
    path: &str,
    value: &T,
) -> Result<(), ZkError> {
    let data = records::encode(value);
    match client.set_data(path, &data, None).await {
        Ok(_) => Ok(()),
        Err(zookeeper_client::Error::NoNode) => {
            match client.create(path, &data, &layout.persistent()).await {
                Ok(_) => Ok(()),
                Err(zookeeper_client::Error::NodeExists) => {
                    client.set_data(path, &data, None).await?;
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the ephemeral registration `path` for this session. If the node is held by another
/// session it is removed when `is_own_dead_session(owner)` says that session was ours and is
/// gone; otherwise this waits (up to `wait`, then looks again) for it to disappear: a previous
/// run whose session has not expired yet, or a second process with the same id.
pub async fn register_ephemeral(
    client: &Client,
    layout: &Layout,
    path: &str,
    data: &[u8],
    wait: Duration,
    is_own_dead_session: impl Fn(i64) -> bool,
) -> Result<(), ZkError> {
    loop {
        match client.create(path, data, &layout.ephemeral()).await {
            Ok(_) => return Ok(()),
            Err(zookeeper_client::Error::NodeExists) => {
                let (stat, watcher) = client.check_and_watch_stat(path).await?;
                match stat {
                    Some(s) if s.ephemeral_owner == client.session_id().0 => return Ok(()),
                    Some(s) if is_own_dead_session(s.ephemeral_owner) => {
                        tracing::info!(
                            path,
                            owner = format!("{:#x}", s.ephemeral_owner),
                            "removing the registration left by this process's expired session"
                        );
                        match client.delete(path, Some(s.version)).await {
                            Ok(())
                            | Err(
                                zookeeper_client::Error::NoNode
                                | zookeeper_client::Error::BadVersion,
                            ) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Some(s) => {
                        tracing::warn!(
                            path,
                            owner = format!("{:#x}", s.ephemeral_owner),
                            "id still registered by another session (a previous run, or a second process with the same id); waiting for it to go"
                        );
                        let _ = tokio::time::timeout(wait, watcher.changed()).await;
                    }
                    None => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The registration records of the cluster servers named `names` (children of
/// `cluster_servers/`); a name that is not a server id or whose record is gone or unreadable
/// is skipped (unreadable ones are logged).
pub async fn cluster_registrations(
    client: &Client,
    layout: &Layout,
    names: Vec<String>,
) -> Vec<records::ClusterRecord> {
    let mut regs = Vec::new();
    for name in names {
        let Ok(id) = crate::ids::ServerId::new(name) else {
            continue;
        };
        match read::<records::ClusterRecord>(client, &layout.cluster_server(&id)).await {
            Ok(Some((r, _))) => regs.push(r),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(server_id = %id, error = %e, "unreadable cluster server registration")
            }
        }
    }
    regs
}
