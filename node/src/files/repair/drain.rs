//! Draining (decommissioning) a cluster server, in one place: the rules the placement and the
//! repair plan follow, and the only writes of `cluster_state/<id>` and of the membership's
//! drain state. The API only records a request ([`request`]); the plan decides when draining
//! ends ([`ends`]), and the executor records it ([`mark_drained`]).
//!
//! A drained server's state is not kept for ever ([`settle`]): once it has been gone
//! `dead_after` it is forgotten, so its id can be used again; and a process that registers
//! under a drained id after the drain, holding no chunk (a new volume under a re-used name,
//! such as a StatefulSet ordinal scaled down and up again), is live again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use zookeeper_client::Client;

use crate::fencing::{FenceError, FencedOp};
use crate::files::DataPlane;
use crate::files::servers::ServerInfo;
use crate::ids::ServerId;
use crate::leadership::Leadership;
use crate::zk::records::{self, ClusterStateRecord, DrainState};
use crate::zk::{self, Layout, ZkError};

/// Whether a server may receive new chunks (uploads and repair copies): not once it is being
/// drained, nor after.
pub fn takes_new_chunks(state: Option<DrainState>) -> bool {
    state.is_none()
}

/// Whether a server's copies must move elsewhere: draining, or drained yet still listed (an
/// upload that chose it before the request).
pub fn moves_off(state: Option<DrainState>) -> bool {
    state.is_some()
}

/// Whether draining ends now: the server is draining and no manifest lists it any more.
pub fn ends(state: Option<DrainState>, listed: bool) -> bool {
    state == Some(DrainState::Draining) && !listed
}

/// Whether some server is still draining, so the repair loop should look again soon.
pub fn work_left(servers: &[ServerInfo]) -> bool {
    servers
        .iter()
        .any(|s| s.drain == Some(DrainState::Draining))
}

/// What becomes of a drained server's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Gone `dead_after` since it was drained: delete its state and forget it.
    Forget,
    /// A new, empty process registered under its id after the drain: live again.
    Revive,
}

/// Whether a drained server is forgotten or live again (see the module's doc). A drained
/// server that is still registered by the process that was drained, or by one that started
/// with chunks (its old volume), stays drained until it is recommissioned or goes away.
pub fn settle(server: &ServerInfo, now: Instant, dead_after: Duration) -> Option<Settle> {
    if server.drain != Some(DrainState::Drained) {
        return None;
    }
    if server.is_dead_at(now, dead_after) {
        return Some(Settle::Forget);
    }
    let l = &server.lifecycle;
    let started_after_drain = l.drain_since.is_some_and(|since| l.started_at > since);
    (server.registered && l.started_empty && started_after_drain).then_some(Settle::Revive)
}

/// Carries out [`settle`] for every server; answers the servers as they are afterwards.
/// A write that fails is logged and tried again at the next pass.
pub async fn settle_all(dp: &DataPlane, lead: &Leadership, now: Instant) -> Vec<ServerInfo> {
    for server in dp.membership.all() {
        match settle(&server, now, dp.config.dead_after) {
            None => {}
            Some(Settle::Revive) => {
                if let Err(e) = recommission(dp, lead, &server).await {
                    tracing::warn!(server_id = %server.id, error = %e, "could not bring a drained server that came back empty into service");
                }
            }
            Some(Settle::Forget) => {
                let op = FencedOp::Delete {
                    path: lead.layout().cluster_state(&server.id),
                    version: None,
                };
                match lead.write(&[op]).await {
                    Ok(_) | Err(FenceError::Operation { .. }) => {
                        dp.membership.forget(&server.id);
                        tracing::info!(server_id = %server.id, "drained cluster server gone: forgotten, its id may be used again");
                    }
                    Err(e) => {
                        tracing::warn!(server_id = %server.id, error = %e, "could not forget a drained server that left");
                    }
                }
            }
        }
    }
    dp.membership.all()
}

/// Records a decommission request for `server` and wakes the repair loop. A server already
/// draining or drained keeps its state, so repeating the request is harmless.
pub async fn request(
    dp: &DataPlane,
    lead: &Leadership,
    server: &ServerInfo,
) -> Result<DrainState, FenceError> {
    if let Some(state) = server.drain {
        return Ok(state);
    }
    let op = FencedOp::Create {
        path: lead.layout().cluster_state(&server.id),
        data: encode(DrainState::Draining),
        options: lead.layout().persistent(),
    };
    match lead.write(&[op]).await {
        // The node exists: an earlier request got there first.
        Ok(_) | Err(FenceError::Operation { .. }) => {}
        Err(e) => return Err(e),
    }
    dp.membership
        .set_drain(&server.id, Some(DrainState::Draining));
    dp.repairs.wake();
    tracing::info!(server_id = %server.id, "decommissioning cluster server: draining its chunks");
    Ok(DrainState::Draining)
}

/// Undoes a decommission: deletes `server`'s drain state so it is live again and takes
/// new chunks. Answers the state it had (`None`: it was not being drained).
pub async fn recommission(
    dp: &DataPlane,
    lead: &Leadership,
    server: &ServerInfo,
) -> Result<Option<DrainState>, FenceError> {
    let Some(was) = server.drain else {
        return Ok(None);
    };
    let op = FencedOp::Delete {
        path: lead.layout().cluster_state(&server.id),
        version: None,
    };
    match lead.write(&[op]).await {
        // Already gone: an earlier request got there first.
        Ok(_) | Err(FenceError::Operation { .. }) => {}
        Err(e) => return Err(e),
    }
    dp.membership.set_drain(&server.id, None);
    dp.repairs.wake();
    tracing::info!(server_id = %server.id, was = ?was, "recommissioned cluster server: live again");
    Ok(Some(was))
}

/// Records that `id` is drained (the plan found no manifest listing it).
pub async fn mark_drained(
    dp: &DataPlane,
    lead: &Leadership,
    id: &ServerId,
) -> Result<(), FenceError> {
    let op = FencedOp::SetData {
        path: lead.layout().cluster_state(id),
        data: encode(DrainState::Drained),
        version: None,
    };
    lead.write(&[op]).await?;
    dp.membership.set_drain(id, Some(DrainState::Drained));
    tracing::info!(server_id = %id, "cluster server drained: no chunk needs it any more");
    Ok(())
}

fn encode(state: DrainState) -> Vec<u8> {
    records::encode(&ClusterStateRecord {
        v: records::RECORD_VERSION,
        state,
        since: records::now_ms(),
    })
}

/// The drain state of every server that has one, as recorded in `cluster_state/`.
pub async fn read_all(
    client: &Client,
    layout: &Layout,
) -> Result<BTreeMap<ServerId, ClusterStateRecord>, ZkError> {
    let mut out = BTreeMap::new();
    for name in client.list_children(&layout.cluster_state_dir()).await? {
        let Ok(id) = ServerId::new(name) else {
            continue;
        };
        if let Some((r, _)) =
            zk::read::<ClusterStateRecord>(client, &layout.cluster_state(&id)).await?
        {
            out.insert(id, r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::servers::Lifecycle;

    #[test]
    fn draining_servers_take_no_new_chunks_and_end_only_when_unlisted() {
        assert!(takes_new_chunks(None));
        assert!(!takes_new_chunks(Some(DrainState::Draining)));
        assert!(!takes_new_chunks(Some(DrainState::Drained)));
        assert!(!moves_off(None));
        assert!(moves_off(Some(DrainState::Draining)));
        assert!(moves_off(Some(DrainState::Drained)));
        assert!(ends(Some(DrainState::Draining), false));
        assert!(!ends(Some(DrainState::Draining), true));
        assert!(!ends(Some(DrainState::Drained), false), "already drained");
        assert!(!ends(None, false), "never asked to drain");
    }

    fn server(drain: Option<DrainState>, registered: bool) -> ServerInfo {
        ServerInfo {
            registered,
            drain,
            lifecycle: Lifecycle {
                started_at: 1_000,
                started_empty: true,
                drain_since: drain.map(|_| 2_000),
            },
            ..ServerInfo::for_tests(ServerId::new("demo-cluster-3").unwrap())
        }
    }

    #[test]
    fn a_drained_server_gone_dead_after_is_forgotten() {
        let t0 = Instant::now();
        let dead_after = Duration::from_secs(30);
        let mut s = server(Some(DrainState::Drained), false);
        s.gone_since = Some(t0);
        assert_eq!(settle(&s, t0 + Duration::from_secs(29), dead_after), None);
        assert_eq!(
            settle(&s, t0 + dead_after, dead_after),
            Some(Settle::Forget)
        );
        // Never a draining or live one: their chunks (or state) still matter.
        s.drain = Some(DrainState::Draining);
        assert_eq!(settle(&s, t0 + dead_after, dead_after), None);
        s.drain = None;
        assert_eq!(settle(&s, t0 + dead_after, dead_after), None);
    }

    #[test]
    fn only_an_empty_process_started_after_the_drain_revives_a_drained_id() {
        let now = Instant::now();
        let d = Duration::from_secs(30);
        let mut s = server(Some(DrainState::Drained), true);
        // The process that was drained, still registered: stays drained.
        assert_eq!(settle(&s, now, d), None);
        // A new process after the drain, empty: live again.
        s.lifecycle.started_at = 3_000;
        assert_eq!(settle(&s, now, d), Some(Settle::Revive));
        // A new process with its old chunks: stays drained.
        s.lifecycle.started_empty = false;
        assert_eq!(settle(&s, now, d), None);
        // Draining, not drained: the drain goes on.
        s.lifecycle.started_empty = true;
        s.drain = Some(DrainState::Draining);
        assert_eq!(settle(&s, now, d), None);
        // Unknown times never revive.
        let mut s = server(Some(DrainState::Drained), true);
        s.lifecycle.drain_since = None;
        s.lifecycle.started_at = u64::MAX;
        assert_eq!(settle(&s, now, d), None);
    }
}
