//! Fenced metadata writes: the only way a leader changes shared metadata.
//!
//! A write is one ZooKeeper multi-op that first checks two versions this head recorded when it
//! won: the `epoch` node's (bumped by every new leader) and the `leader` node's (gone once the
//! leader is deposed). If either moved, ZooKeeper rejects the whole transaction, so a deposed
//! leader (expired session, GC pause, partition, forced failover) cannot change anything, even
//! if it still believes it leads. Both checks are needed: a re-created `leader` node starts at
//! version 0 again, and between a forced failover and the next election the epoch has not moved
//! yet. See `docs/election.md`.

use zookeeper_client::{
    Client, CreateOptions, Error as ZkClientError, MultiWriteError, MultiWriteResult,
};

use crate::ids::ServerId;
use crate::zk::Layout;

/// Proof of one leadership term, as recorded at the moment of winning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderToken {
    pub server_id: ServerId,
    pub epoch: u64,
    /// Data version of the `epoch` node right after this leader bumped it.
    pub epoch_version: i32,
    /// Data version of the `leader` node this leader created.
    pub leader_version: i32,
    /// The ZooKeeper session that won (the `leader` node's ephemeral owner). Leadership ends
    /// with it: a head that gave the session up may still see the node (ZooKeeper restores
    /// sessions across a restart), but never writes with this token from another session.
    pub session: i64,
}

/// One operation inside a fenced write.
#[derive(Clone, Debug)]
pub enum FencedOp {
    Create {
        path: String,
        data: Vec<u8>,
        options: CreateOptions<'static>,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// Why a fenced write did not land. Nothing of it was applied in every case.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(
        "deposed: the leadership of {server_id} at epoch {epoch} has ended; the write was rejected"
    )]
    Deposed { server_id: ServerId, epoch: u64 },
    #[error("fenced write operation {index} failed: {source}")]
    Operation { index: usize, source: ZkClientError },
    #[error("ZooKeeper: {0}")]
    Zk(ZkClientError),
}

/// Applies `ops` atomically if and only if `token`'s leadership is still current: written
/// through the session that won it, and neither the epoch nor the leader node has moved.
pub async fn write(
    client: &Client,
    layout: &Layout,
    token: &LeaderToken,
    ops: &[FencedOp],
) -> Result<Vec<MultiWriteResult>, FenceError> {
    if !same_session(token, client.session_id().0) {
        return Err(FenceError::Deposed {
            server_id: token.server_id.clone(),
            epoch: token.epoch,
        });
    }
    let mut multi = client.new_multi_writer();
    let zk = FenceError::Zk;
    multi
        .add_check_version(&layout.epoch(), token.epoch_version)
        .map_err(zk)?;
    multi
        .add_check_version(&layout.leader(), token.leader_version)
        .map_err(zk)?;
    for op in ops {
        match op {
            FencedOp::Create {
                path,
                data,
                options,
            } => multi.add_create(path, data, options),
            FencedOp::SetData {
                path,
                data,
                version,
            } => multi.add_set_data(path, data, *version),
            FencedOp::Delete { path, version } => multi.add_delete(path, *version),
            FencedOp::Check { path, version } => multi.add_check_version(path, *version),
        }
        .map_err(zk)?;
    }
    match multi.commit().await {
        Ok(mut results) => Ok(results.split_off(2.min(results.len()))),
        Err(MultiWriteError::OperationFailed {
            index: 0 | 1,
            source: ZkClientError::BadVersion | ZkClientError::NoNode,
        }) => Err(FenceError::Deposed {
            server_id: token.server_id.clone(),
            epoch: token.epoch,
        }),
        Err(MultiWriteError::OperationFailed { index, source }) => Err(FenceError::Operation {
            index: index.saturating_sub(2),
            source,
        }),
        Err(MultiWriteError::RequestFailed { source }) => Err(FenceError::Zk(source)),
    }
}

/// The values of [`write_result`], for metrics.
pub const WRITE_RESULTS: [&str; 4] = ["ok", "failed", "deposed", "error"];

/// How a fenced write ended, as a metric label (pure): `failed` when one of its own
/// operations' conditions did not hold (a file already there, a version that moved).
pub fn write_result<T>(result: &Result<T, FenceError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(FenceError::Operation { .. }) => "failed",
        Err(FenceError::Deposed { .. }) => "deposed",
        Err(_) => "error",
    }
}

/// Whether a write through session `session` may use `token` (pure): only the session that
/// won the leadership may write under it.
pub fn same_session(token: &LeaderToken, session: i64) -> bool {
    token.session == session
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(session: i64) -> LeaderToken {
        LeaderToken {
            server_id: ServerId::new("head_server_1").unwrap(),
            epoch: 7,
            epoch_version: 6,
            leader_version: 0,
            session,
        }
    }

    #[test]
    fn every_write_result_has_its_label() {
        let results: [Result<(), FenceError>; 4] = [
            Ok(()),
            Err(FenceError::Operation {
                index: 1,
                source: ZkClientError::NodeExists,
            }),
            Err(FenceError::Deposed {
                server_id: ServerId::new("head_server_1").unwrap(),
                epoch: 3,
            }),
            Err(FenceError::Zk(ZkClientError::ConnectionLoss)),
        ];
        let labels: Vec<&str> = results.iter().map(write_result).collect();
        // Each its own label, and all of them registered up front.
        assert_eq!(labels, WRITE_RESULTS);
    }

    #[test]
    fn only_the_session_that_won_writes_under_its_token() {
        assert!(same_session(&token(0x1234), 0x1234));
        // The head gave the session up and registered under a new one: the old session's
        // leader node may still be there, but the token is not used from the new session.
        assert!(!same_session(&token(0x1234), 0x5678));
    }
}
