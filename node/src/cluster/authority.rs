//! Who may ask a cluster server to do what, decided from what ZooKeeper says.
//!
//! The cluster server process follows ZooKeeper's `leader` node and the `cluster_servers/`
//! registrations into a [`Directory`]; the chunk API checks each signed request against it.
//! A request never changes what the server believes: an epoch newer than ZooKeeper's is
//! waited for briefly (the watch may lag the new leader's first write) and then refused.

use std::collections::HashMap;
use std::sync::Arc;

use filegrid_proto::ErrorCode;

use crate::auth::{PeerSigner, PeerVerifier};
use crate::http::ApiError;

/// The leader and the registered cluster servers, as ZooKeeper last said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// The leading head's id and the epoch it leads under.
    pub leader: Option<(String, u64)>,
    /// Registered cluster servers: `host:port` → id.
    pub servers: HashMap<String, String>,
}

/// The [`View`], shared between the ZooKeeper follower that writes it and the handlers, who
/// may wait for it to change.
#[derive(Clone, Debug)]
pub struct Directory(Arc<tokio::sync::watch::Sender<View>>);

impl Default for Directory {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(View::default())))
    }
}

impl Directory {
    pub fn view(&self) -> View {
        self.0.borrow().clone()
    }

    pub fn set_leader(&self, leader: Option<(String, u64)>) {
        self.0.send_if_modified(|v| {
            let changed = v.leader != leader;
            v.leader = leader;
            changed
        });
    }

    pub fn set_servers(&self, servers: HashMap<String, String>) {
        self.0.send_if_modified(|v| {
            let changed = v.servers != servers;
            v.servers = servers;
            changed
        });
    }

    /// The id registered at `addr`.
    pub fn server_at(&self, addr: &str) -> Option<String> {
        self.0.borrow().servers.get(addr).cloned()
    }

    /// [`permit`] against the view, waiting up to `wait` for the view to catch up while it
    /// names an older leadership than `epoch` ([`leader_lags`]): the epoch fence (the `epoch`
    /// node) and the leader record (the `leader` node) are followed by two watches, and a new
    /// leader's first writes may arrive between the two.
    pub async fn permit_waiting(
        &self,
        signer: &str,
        act: Act,
        epoch: Option<u64>,
        wait: std::time::Duration,
    ) -> Result<(), ApiError> {
        let mut rx = self.0.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let view = rx.borrow_and_update().clone();
            match permit(&view, signer, act, epoch) {
                Err(e) if leader_lags(&view, act, epoch) => {
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(Ok(())) => continue,
                        _ => return Err(e),
                    }
                }
                verdict => return verdict,
            }
        }
    }
}

/// Whether `view` may not know yet the leadership a request of `epoch` comes from: it names
/// no leader, or one of an older epoch. Reads are not checked against the leader.
pub fn leader_lags(view: &View, act: Act, epoch: Option<u64>) -> bool {
    match (act, epoch) {
        (Act::Read, _) | (_, None) => false,
        (_, Some(e)) => view.leader.as_ref().is_none_or(|(_, lead)| *lead < e),
    }
}

/// What a cluster server needs to check and make signed requests.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    pub verifier: PeerVerifier,
    /// Signs this server's own requests (pipeline hops, replication) and acknowledgements.
    pub signer: PeerSigner,
    pub directory: Directory,
    /// Longest pipeline accepted (the largest replication factor).
    pub max_pipeline: usize,
}

/// What a signed request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// Store a chunk: the leader, or a cluster server forwarding the leader's write.
    Write,
    /// Delete a chunk or copy it elsewhere: the leader only.
    LeaderOnly,
    /// Read: any FileGrid server.
    Read,
}

/// Whether `signer` may do `act` at `epoch` (for reads the epoch is not looked at).
pub fn permit(view: &View, signer: &str, act: Act, epoch: Option<u64>) -> Result<(), ApiError> {
    let is_leader = |e: Option<u64>| match (&view.leader, e) {
        (Some((id, lead_epoch)), Some(e)) => id == signer && *lead_epoch == e,
        _ => false,
    };
    let is_cluster_server = view.servers.values().any(|id| id == signer);
    let allowed = match act {
        Act::Read => true,
        Act::Write => is_leader(epoch) || is_cluster_server,
        Act::LeaderOnly => is_leader(epoch),
    };
    if allowed {
        Ok(())
    } else {
        let leader = view
            .leader
            .as_ref()
            .map_or("no head".to_string(), |(id, e)| {
                format!("{id} at epoch {e}")
            });
        Err(ApiError::new(
            ErrorCode::NotLeaderPeer,
            format!("{signer} may not do this: ZooKeeper says {leader} leads"),
        ))
    }
}

/// Checks a pipeline: every hop a registered cluster server, none twice, none this server,
/// at most `max` long.
pub fn check_pipeline(view: &View, own: &str, hops: &[String], max: usize) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::BadPipeline, m);
    if hops.len() > max {
        return Err(bad(format!(
            "{} hops; at most {max} are accepted",
            hops.len()
        )));
    }
    for (i, hop) in hops.iter().enumerate() {
        if hop == own || hops[..i].contains(hop) {
            return Err(bad(format!("{hop} appears twice in the pipeline")));
        }
        if !view.servers.contains_key(hop) {
            return Err(bad(format!("{hop} is not a registered cluster server")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_of_an_older_leadership_lags_a_newer_request() {
        let v = view();
        assert!(leader_lags(&v, Act::Write, Some(8)));
        assert!(leader_lags(&v, Act::LeaderOnly, Some(8)));
        // The same leadership (or an older one) is judged as it is.
        assert!(!leader_lags(&v, Act::Write, Some(7)));
        assert!(!leader_lags(&v, Act::LeaderOnly, Some(6)));
        // Reads are not checked against the leader.
        assert!(!leader_lags(&v, Act::Read, Some(8)));
        assert!(leader_lags(&View::default(), Act::Write, Some(1)));
    }

    #[tokio::test]
    async fn a_new_leaders_write_waits_for_the_leader_record_to_catch_up() {
        let dir = Directory::default();
        dir.set_leader(Some(("head_server_1".into(), 7)));
        let later = dir.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            later.set_leader(Some(("head_server_2".into(), 8)));
        });
        let wait = std::time::Duration::from_secs(10);
        dir.permit_waiting("head_server_2", Act::Write, Some(8), wait)
            .await
            .unwrap();
        // Another head claiming the same epoch is refused at once.
        let refused = dir
            .permit_waiting("head_server_3", Act::Write, Some(8), wait)
            .await;
        assert!(refused.is_err());
    }

    fn view() -> View {
        View {
            leader: Some(("head_server_1".into(), 7)),
            servers: [("h:1", "cs1"), ("h:2", "cs2"), ("h:3", "cs3")]
                .into_iter()
                .map(|(a, i)| (a.to_string(), i.to_string()))
                .collect(),
        }
    }

    #[test]
    fn only_the_leader_at_its_epoch_deletes_and_servers_may_forward_writes() {
        let v = view();
        assert!(permit(&v, "head_server_1", Act::LeaderOnly, Some(7)).is_ok());
        assert!(permit(&v, "head_server_1", Act::LeaderOnly, Some(6)).is_err());
        assert!(permit(&v, "head_server_2", Act::LeaderOnly, Some(7)).is_err());
        assert!(permit(&v, "cs1", Act::LeaderOnly, Some(7)).is_err());
        assert!(permit(&v, "cs1", Act::Write, Some(7)).is_ok());
        assert!(permit(&v, "head_server_2", Act::Write, Some(7)).is_err());
        assert!(permit(&v, "head_server_2", Act::Read, None).is_ok());
        let none = View::default();
        let err = permit(&none, "head_server_1", Act::Write, Some(1)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotLeaderPeer);
        assert!(err.message().contains("no head leads"), "{}", err.message());
    }

    #[test]
    fn pipelines_name_registered_servers_once_and_are_short() {
        let v = view();
        let hops = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_pipeline(&v, "h:1", &hops(&["h:2", "h:3"]), 4).is_ok());
        assert!(check_pipeline(&v, "h:1", &[], 4).is_ok());
        let e = check_pipeline(&v, "h:1", &hops(&["h:2", "h:2"]), 4).unwrap_err();
        assert!(e.message().contains("twice"));
        assert!(check_pipeline(&v, "h:1", &hops(&["h:1"]), 4).is_err());
        let e = check_pipeline(&v, "h:1", &hops(&["evil:80"]), 4).unwrap_err();
        assert!(e.message().contains("not a registered"));
        let many: Vec<String> = std::iter::repeat_n("h:2".to_string(), 300).collect();
        let e = check_pipeline(&v, "h:1", &many, 4).unwrap_err();
        assert!(e.message().contains("300 hops"));
    }
}
