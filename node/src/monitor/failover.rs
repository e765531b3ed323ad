//! Forced failover of a hung leader, and letting an excluded head back.

use zookeeper_client::{Client, Error as ZkClientError, MultiWriteError};

use crate::ids::ServerId;
use crate::metrics::MonitorMetrics;
use crate::zk::records::{self, EpochRecord, ExclusionRecord, LeaderRecord};
use crate::zk::{self, Layout, ZkError};

/// If `id` leads, excludes it and deletes `leader` so the other heads elect a new one.
///
/// One transaction: check the epoch is still the one the leader node names, create
/// `excluded/<id>`, delete `leader` at the version read. If another monitor already did it, or
/// a new leader was elected meanwhile, the transaction fails as a whole and nothing changes:
/// one failover per hang however many monitors watch.
pub async fn force_if_leader(
    client: &Client,
    layout: &Layout,
    id: &ServerId,
    failures: u32,
    reporter: &ServerId,
    metrics: &MonitorMetrics,
) -> Result<bool, ZkError> {
    let Some((leader, lstat)) = zk::read::<LeaderRecord>(client, &layout.leader()).await? else {
        return Ok(false);
    };
    if &leader.server_id != id {
        return Ok(false);
    }
    let Some((epoch, estat)) = zk::read::<EpochRecord>(client, &layout.epoch()).await? else {
        return Ok(false);
    };
    if epoch.epoch != leader.epoch {
        return Ok(false);
    }
    let exclusion = ExclusionRecord {
        v: records::RECORD_VERSION,
        server_id: id.clone(),
        excluded_at: records::now_ms(),
        reporter: reporter.to_string(),
        consecutive_failures: failures,
        epoch: leader.epoch,
    };
    let mut multi = client.new_multi_writer();
    multi.add_check_version(&layout.epoch(), estat.version)?;
    multi.add_create(
        &layout.excluded(id),
        &records::encode(&exclusion),
        &layout.persistent(),
    )?;
    multi.add_delete(&layout.leader(), Some(lstat.version))?;
    match multi.commit().await {
        Ok(_) => {
            metrics.forced_failovers.inc();
            tracing::warn!(server_id = %id, epoch = leader.epoch, failures, monitor_id = %reporter,
                "forced failover: excluded the hung leader and deleted the leader node");
            Ok(true)
        }
        Err(MultiWriteError::OperationFailed { source, .. })
            if matches!(
                source,
                ZkClientError::NodeExists | ZkClientError::BadVersion | ZkClientError::NoNode
            ) =>
        {
            tracing::info!(server_id = %id, epoch = leader.epoch, reason = %source,
                "failover already handled (by another monitor or a new election)");
            Ok(false)
        }
        Err(e) => Err(ZkError::Zk(e.into())),
    }
}

/// Deletes `excluded/<id>` once the head has passed `successes` checks in a row.
pub async fn lift_exclusion(
    client: &Client,
    layout: &Layout,
    id: &ServerId,
    successes: u32,
    metrics: &MonitorMetrics,
) -> Result<bool, ZkError> {
    let path = layout.excluded(id);
    let Some(stat) = client.check_stat(&path).await? else {
        return Ok(false);
    };
    match client.delete(&path, Some(stat.version)).await {
        Ok(()) => {
            metrics.exclusions_lifted.inc();
            tracing::info!(server_id = %id, successes, "lifted exclusion: head is healthy again");
            Ok(true)
        }
        Err(ZkClientError::NoNode | ZkClientError::BadVersion) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
