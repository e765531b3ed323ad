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
    /// How often the server says it heartbeats (from its heartbeats; `None` before the first
    /// or from an older server).
    pub heartbeat_interval: Option<Duration>,
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
            heartbeat_interval: None,
            drain: None,
            bad_chunks_found: 0,
            lifecycle: Lifecycle::default(),
        }
    }
}

/// Heartbeat intervals a registered server may go unheard, while the leader hears others,
/// before it counts as silent.
pub const SILENT_BEATS: u32 = 3;

impl ServerInfo {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Able to take and serve chunks right now.
    pub fn is_up(&self) -> bool {
        self.registered
    }

    /// Registered, but not heard from for more than [`SILENT_BEATS`] of its heartbeat
    /// intervals before `freshest`, the latest heartbeat the leader took from any server: a
    /// stopped or hung process, which keeps its ZooKeeper registration until its session
    /// expires. New replicas avoid it, reads try it last, and an upload through it is placed
    /// again. Measured against the other servers' heartbeats, not the clock, so a leader
    /// that was itself stopped, or cut off from every server (or from ZooKeeper, which every
    /// heartbeat reads first), finds no server silent. A server not yet heard from (a leader
    /// just elected, an older server that does not say its interval) is not judged.
    pub fn is_silent(&self, freshest: Option<Instant>) -> bool {
        match (self.last_heartbeat, self.heartbeat_interval, freshest) {
            (Some(last), Some(every), Some(fresh)) => {
                self.registered
                    && fresh.saturating_duration_since(last) > every.saturating_mul(SILENT_BEATS)
            }
            _ => false,
        }
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
                    heartbeat_interval: None,
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
                heartbeat_interval: None,
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
        s.heartbeat_interval = hb.interval_ms.map(Duration::from_millis);
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
    pub fn placement_candidates(&self, wanted: usize) -> Vec<Candidate> {
        candidates(&self.all(), wanted)
    }

    /// The registered servers of `ids` that are silent now (see [`ServerInfo::is_silent`]).
    pub fn silent(&self, ids: &[ServerId]) -> Vec<ServerId> {
        let all = self.all();
        let freshest = freshest_heartbeat(&all);
        ids.iter()
            .filter(|id| all.iter().any(|s| &s.id == *id && s.is_silent(freshest)))
            .cloned()
            .collect()
    }

    /// Resolves, with those servers, once one of `ids` leaves the grid (its registration ends
    /// or it is unknown) or falls silent, unless it was already silent in `silent_before`
    /// (a server placed on or read from for want of others). Looks every [`GONE_CHECK`].
    pub async fn until_gone(&self, ids: &[ServerId], silent_before: &[ServerId]) -> Vec<ServerId> {
        loop {
            let g = gone(ids, &self.all(), silent_before);
            if !g.is_empty() {
                return g;
            }
            tokio::time::sleep(GONE_CHECK).await;
        }
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

/// How often [`Membership::until_gone`] looks.
const GONE_CHECK: Duration = Duration::from_millis(200);

/// The latest heartbeat taken from any registered server.
fn freshest_heartbeat(servers: &[ServerInfo]) -> Option<Instant> {
    servers
        .iter()
        .filter(|s| s.registered)
        .filter_map(|s| s.last_heartbeat)
        .max()
}

/// The servers of `ids` that `servers` does not know, knows as no longer registered, or
/// finds silent without their being in `silent_before`.
fn gone(ids: &[ServerId], servers: &[ServerInfo], silent_before: &[ServerId]) -> Vec<ServerId> {
    let freshest = freshest_heartbeat(servers);
    ids.iter()
        .filter(|id| match servers.iter().find(|s| &s.id == *id) {
            None => true,
            Some(s) => !s.is_up() || (s.is_silent(freshest) && !silent_before.contains(id)),
        })
        .cloned()
        .collect()
}

/// Servers that may receive new replicas: up and not being drained; silent ones (see
/// [`ServerInfo::is_silent`]) only while fewer than `wanted` others are left, so that a
/// false alarm never leaves a chunk fewer places than it had before.
pub fn candidates(servers: &[ServerInfo], wanted: usize) -> Vec<Candidate> {
    let freshest = freshest_heartbeat(servers);
    let open: Vec<&ServerInfo> = servers
        .iter()
        .filter(|s| s.is_up() && drain::takes_new_chunks(s.drain))
        .collect();
    let heard = open.iter().filter(|s| !s.is_silent(freshest)).count();
    open.into_iter()
        .filter(|s| heard < wanted || !s.is_silent(freshest))
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

    fn sid(i: u32) -> ServerId {
        ServerId::new(format!("cluster_server_{i}")).unwrap()
    }

    /// Server `i`, heartbeating every 500 ms, last heard `ago_ms` before `now`.
    fn heard(i: u32, now: Instant, ago_ms: Option<u64>) -> ServerInfo {
        ServerInfo {
            last_heartbeat: ago_ms.map(|ms| now - Duration::from_millis(ms)),
            heartbeat_interval: Some(Duration::from_millis(500)),
            ..ServerInfo::for_tests(sid(i))
        }
    }

    #[test]
    fn a_server_unheard_for_three_intervals_while_others_are_heard_is_silent() {
        let now = Instant::now() + Duration::from_secs(60);
        let servers = [
            heard(1, now, Some(100)),
            heard(2, now, Some(1_500)),
            heard(3, now, Some(1_700)),
            heard(4, now, None),
        ];
        let freshest = freshest_heartbeat(&servers);
        let silent: Vec<bool> = servers.iter().map(|s| s.is_silent(freshest)).collect();
        // 1.4 s behind the freshest is within three intervals; 1.6 s is not; never heard is
        // not judged.
        assert_eq!(silent, [false, false, true, false]);
        // Without its interval (an older server), a server is not judged either.
        let old = ServerInfo {
            heartbeat_interval: None,
            ..servers[2].clone()
        };
        assert!(!old.is_silent(freshest));
        // An interval no clock can count (a hostile heartbeat) is no reason to panic.
        let huge = ServerInfo {
            heartbeat_interval: Some(Duration::from_millis(u64::MAX)),
            ..servers[2].clone()
        };
        assert!(!huge.is_silent(freshest));
    }

    #[test]
    fn when_every_server_is_unheard_none_is_silent() {
        // The leader was stopped, or cut off, or ZooKeeper was down: nobody heartbeated.
        let now = Instant::now() + Duration::from_secs(60);
        let servers = [heard(1, now, Some(9_000)), heard(2, now, Some(9_300))];
        let freshest = freshest_heartbeat(&servers);
        assert!(servers.iter().all(|s| !s.is_silent(freshest)));
    }

    #[test]
    fn silent_servers_are_placed_on_only_for_want_of_others() {
        let now = Instant::now() + Duration::from_secs(60);
        let servers = [
            heard(1, now, Some(0)),
            heard(2, now, Some(100)),
            heard(3, now, Some(200)),
            heard(4, now, Some(5_000)),
        ];
        let ids = |c: Vec<Candidate>| c.into_iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(candidates(&servers, 3)), [sid(1), sid(2), sid(3)]);
        // Four wanted, three heard: the silent one too, rather than fewer copies.
        assert_eq!(ids(candidates(&servers, 4)).len(), 4);
    }

    #[test]
    fn a_pipeline_server_is_gone_when_it_leaves_or_newly_falls_silent() {
        let now = Instant::now() + Duration::from_secs(60);
        let mut servers = vec![
            heard(1, now, Some(0)),
            heard(2, now, Some(5_000)),
            heard(3, now, Some(100)),
        ];
        assert_eq!(gone(&[sid(1), sid(2)], &servers, &[]), [sid(2)]);
        // Already silent when the attempt began: placed there for want of others.
        assert!(gone(&[sid(1), sid(2)], &servers, &[sid(2)]).is_empty());
        servers[2].registered = false;
        assert_eq!(gone(&[sid(3)], &servers, &[]), [sid(3)]);
        // Unknown.
        assert_eq!(gone(&[sid(9)], &servers, &[]), [sid(9)]);
    }

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
