//! Draining (decommissioning) a cluster server, in one place: the rules the placement and the
//! repair plan follow, and the only writes of `cluster_state/<id>` and of the membership's
//! drain state. The API only records a request ([`request`]); the plan decides when draining
//! ends ([`ends`]), and the executor records it ([`mark_drained`]).

use std::collections::BTreeMap;

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
) -> Result<BTreeMap<ServerId, DrainState>, ZkError> {
    let mut out = BTreeMap::new();
    for name in client.list_children(&layout.cluster_state_dir()).await? {
        let Ok(id) = ServerId::new(name) else {
            continue;
        };
        if let Some((r, _)) =
            zk::read::<ClusterStateRecord>(client, &layout.cluster_state(&id)).await?
        {
            out.insert(id, r.state);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
