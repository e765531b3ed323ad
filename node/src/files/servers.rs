//! The leader's view of the cluster servers: registrations in ZooKeeper (watched), heartbeats
//! (usage, freshness) and decommissioning state.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use zookeeper_client::Client;

use super::placement::Candidate;
use super::repair::drain;
use crate::ids::ServerId;
use crate::zk::records::{ClusterRecord, ClusterStateRecord, DrainState};
use crate::zk::{self, Layout, ZkError};

pub use filegrid_proto::head::{Heartbeat, ServerState, ServerView};

#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub id: ServerId,
    pub host: String,
    pub port: u16,
    pub zone: Option<String>,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    pub chunks: u64,
    pub registered: bool,
    /// When the registration vanished (None while registered).
    pub gone_since: Option<Instant>,
    pub last_heartbeat: Option<Instant>,
    pub drain: Option<DrainState>,
    /// The `bad_chunks_found` of the server's last heartbeat.
    pub bad_chunks_found: u64,
    /// What decides whether a drained server is forgotten or back (see [`drain::settle`]).
    pub lifecycle: Lifecycle,
}

/// A server's registration and drain times, from ZooKeeper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifecycle {
    /// When the registered process started (ms since the epoch; 0 if unknown).
    pub started_at: u64,
    /// The registered process held no chunk when it started.
    pub started_empty: bool,
    /// When the drain state last changed (ms since the epoch), if there is one.
    pub drain_since: Option<u64>,
}

#[cfg(test)]
impl ServerInfo {
    /// A registered, empty server with 1 GiB free, for unit tests to adjust.
    pub(crate) fn for_tests(id: ServerId) -> Self {
        ServerInfo {
            id,
            host: "127.0.0.1".into(),
            port: 1,
            zone: None,
            capacity_bytes: 1 << 30,
            used_bytes: 0,
            free_bytes: 1 << 30,
            chunks: 0,
            registered: true,
            gone_since: None,
            last_heartbeat: None,
            drain: None,
            bad_chunks_found: 0,
            lifecycle: Lifecycle::default(),
        }
    }
}

impl ServerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Able to take and serve chunks right now.
    pub fn is_up(&self) -> bool {
        self.registered
    }

    /// Gone longer than `dead_after`: its chunks must be copied elsewhere.
    pub fn is_dead(&self, dead_after: Duration) -> bool {
        self.is_dead_at(Instant::now(), dead_after)
    }

    /// [`Self::is_dead`] as of `now`, for decisions that take the time as an input.
    pub fn is_dead_at(&self, now: Instant, dead_after: Duration) -> bool {
        !self.registered
            && self
                .gone_since
                .is_some_and(|t| now.saturating_duration_since(t) >= dead_after)
    }

    pub fn state(&self, dead_after: Duration) -> ServerState {
        match self.drain {
            Some(DrainState::Drained) => ServerState::Drained,
            Some(DrainState::Draining) => ServerState::Draining,
            None if self.is_dead(dead_after) || !self.registered => ServerState::Dead,
            None => ServerState::Live,
        }
    }
}

#[derive(Default)]
pub struct Membership {
    servers: RwLock<BTreeMap<ServerId, ServerInfo>>,
    /// The registrations have been read from ZooKeeper at least once: before that, every
    /// server looks unknown, and a head must not serve reads itself.
    loaded: std::sync::atomic::AtomicBool,
}

impl Membership {
    /// Whether the registrations have been read at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Applies the current registrations and drain states read from ZooKeeper. A server
    /// that is neither registered nor drained any more (its drain state was deleted after it
    /// left, [`drain::settle`]) is forgotten.
    pub fn apply_registrations(
        &self,
        regs: Vec<ClusterRecord>,
        drains: BTreeMap<ServerId, ClusterStateRecord>,
    ) {
        let Ok(mut servers) = self.servers.write() else {
            return;
        };
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
        let now = Instant::now();
        servers.retain(|id, s| {
            let keep = s.registered
                || regs.iter().any(|r| r.id == *id)
                || drains.contains_key(id)
                || s.drain.is_none();
            if !keep {
                tracing::info!(server_id = %id, "drained cluster server left: forgotten");
            }
            keep
        });
        for s in servers.values_mut() {
            if s.registered && !regs.iter().any(|r| r.id == s.id) {
                s.registered = false;
                s.gone_since = Some(now);
                tracing::warn!(server_id = %s.id, "cluster server registration vanished");
            }
            s.drain = drains.get(&s.id).map(|d| d.state);
            s.lifecycle.drain_since = drains.get(&s.id).map(|d| d.since);
        }
        for r in regs {
            let e = servers.entry(r.id.clone()).or_insert_with(|| {
                tracing::info!(server_id = %r.id, host = %r.host, port = r.port, zone = r.zone.as_deref(), "cluster server joined");
                ServerInfo {
                    id: r.id.clone(),
                    host: r.host.clone(),
                    port: r.port,
                    zone: r.zone.clone(),
                    capacity_bytes: r.capacity_bytes,
                    used_bytes: r.used_bytes,
                    free_bytes: r.capacity_bytes.saturating_sub(r.used_bytes),
                    chunks: 0,
                    registered: true,
                    gone_since: None,
                    last_heartbeat: None,
                    drain: None,
                    bad_chunks_found: 0,
                    lifecycle: Lifecycle::default(),
                }
            });
            if !e.registered {
                tracing::info!(server_id = %r.id, "cluster server registered again");
            }
            e.host = r.host;
            e.port = r.port;
            e.zone = r.zone;
            e.registered = true;
            e.gone_since = None;
            e.drain = drains.get(&e.id).map(|d| d.state);
            e.lifecycle = Lifecycle {
                started_at: r.started_at,
                started_empty: r.used_bytes == 0,
                drain_since: drains.get(&e.id).map(|d| d.since),
            };
        }
        // Drained servers that left before this head started watching: known, so that they
        // are shown and forgotten like the others once gone `dead_after`.
        for (id, d) in &drains {
            servers.entry(id.clone()).or_insert_with(|| ServerInfo {
                id: id.clone(),
                host: String::new(),
                port: 0,
                zone: None,
                capacity_bytes: 0,
                used_bytes: 0,
                free_bytes: 0,
                chunks: 0,
                registered: false,
                gone_since: Some(now),
                last_heartbeat: None,
                drain: Some(d.state),
                bad_chunks_found: 0,
                lifecycle: Lifecycle {
                    drain_since: Some(d.since),
                    ..Lifecycle::default()
                },
            });
        }
    }

    /// Records a heartbeat; `None` if the server is not registered, else whether it found
    /// damaged or missing chunks since its previous heartbeat.
    pub fn heartbeat(&self, hb: &Heartbeat) -> Option<bool> {
        let Ok(mut servers) = self.servers.write() else {
            return None;
        };
        let s = servers.get_mut(&hb.id)?;
        let damage = new_damage(s.bad_chunks_found, hb.bad_chunks_found);
        s.bad_chunks_found = hb.bad_chunks_found;
        s.capacity_bytes = hb.capacity_bytes;
        s.used_bytes = hb.used_bytes;
        s.free_bytes = hb.free_bytes;
        s.chunks = hb.chunks;
        s.last_heartbeat = Some(Instant::now());
        Some(damage)
    }

    pub fn get(&self, id: &ServerId) -> Option<ServerInfo> {
        self.servers.read().ok()?.get(id).cloned()
    }

    pub fn all(&self) -> Vec<ServerInfo> {
        self.servers
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Servers that may receive new replicas: see [`candidates`].
    pub fn placement_candidates(&self) -> Vec<Candidate> {
        candidates(&self.all())
    }

    pub fn views(&self, dead_after: Duration) -> Vec<ServerView> {
        self.all()
            .into_iter()
            .map(|s| ServerView {
                state: s.state(dead_after),
                id: s.id,
                host: s.host,
                port: s.port,
                zone: s.zone,
                capacity_bytes: s.capacity_bytes,
                used_bytes: s.used_bytes,
                chunks: s.chunks,
            })
            .collect()
    }

    /// `(registered, heartbeating within `within`)` counts, for the gauges.
    pub fn counts(&self, within: Duration) -> (usize, usize) {
        let all = self.all();
        let up = all.iter().filter(|s| s.is_up()).count();
        let beating = all
            .iter()
            .filter(|s| s.is_up() && s.last_heartbeat.is_some_and(|t| t.elapsed() < within))
            .count();
        (up, beating)
    }

    /// Only [`drain`] changes drain states, besides the registration watch that reads them.
    pub(in crate::files) fn set_drain(&self, id: &ServerId, state: Option<DrainState>) {
        if let Ok(mut servers) = self.servers.write()
            && let Some(s) = servers.get_mut(id)
        {
            s.drain = state;
            s.lifecycle.drain_since = state.map(|_| crate::zk::records::now_ms());
        }
    }

    /// Forgets a server that left after it was drained (only [`drain`] calls this).
    pub(in crate::files) fn forget(&self, id: &ServerId) {
        if let Ok(mut servers) = self.servers.write() {
            servers.remove(id);
        }
    }
}

/// Whether a server's count of bad chunks found says it found new ones: the count grew, or
/// it restarted (the count starts again from zero) and found some already.
fn new_damage(before: u64, now: u64) -> bool {
    now != before && now > 0
}

/// Servers that may receive new replicas: up and not being drained.
pub fn candidates(servers: &[ServerInfo]) -> Vec<Candidate> {
    servers
        .iter()
        .filter(|s| s.is_up() && drain::takes_new_chunks(s.drain))
        .map(|s| Candidate {
            id: s.id.clone(),
            zone: s.zone.clone(),
            free_bytes: s.free_bytes,
        })
        .collect()
}

/// Keeps `membership` in step with `cluster_servers/` (child watch) and `cluster_state/`.
pub async fn watch_registrations(
    client: Client,
    layout: Layout,
    membership: std::sync::Arc<Membership>,
) -> ZkError {
    loop {
        let (names, _, watch) = match client
            .get_and_watch_children(&layout.cluster_servers())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let e = ZkError::from(e);
                if e.is_session_lost() {
                    return e;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let regs = zk::cluster_registrations(&client, &layout, names).await;
        let drains = drain::read_all(&client, &layout).await.unwrap_or_default();
        membership.apply_registrations(regs, drains);
        // Re-read at least every few seconds so drain-state changes and dead timers are seen.
        let _ = tokio::time::timeout(Duration::from_secs(2), watch.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_new_when_the_count_grows_or_restarts_above_zero() {
        assert!(!new_damage(0, 0));
        assert!(new_damage(0, 1));
        assert!(!new_damage(3, 3));
        assert!(new_damage(3, 4));
        // Restarted: counting from zero again, with one found already.
        assert!(new_damage(3, 1));
        assert!(!new_damage(3, 0));
    }
}
