//! Head server election through ZooKeeper.
//!
//! Rules (see `docs/election.md` for the reasoning):
//! - A head registers `head_servers/<id>` (ephemeral) and takes part while its session lives.
//! - With no `leader` node, the lowest eligible id (natural order; not excluded by a monitor,
//!   not a hand-made registration) claims leadership with one multi-op that bumps `epoch` and
//!   creates the ephemeral `leader` node. Only one such transaction can succeed.
//! - Leadership is sticky: a lower id that comes back stays standby, unless `preempt` is set,
//!   in which case it displaces the leader in one multi-op (delete, bump, create).
//! - If the lowest candidate does not claim within the session timeout (it may be hung), the
//!   next candidates claim anyway; the atomic create still picks exactly one winner.
//! - Connection loss suspends leadership at once (no leader duties without proof); if the same
//!   session comes back, the head finds its own `leader` node (by session id) and resumes with
//!   the same epoch, so a blip costs no election. Session expiry deletes the node; the head
//!   registers again with a new session and rejoins as a candidate.
//! - A lost reply to the claim is resolved the same way: the node names the session that made it.
//!
//! The rules themselves are the pure [`decide::decide`]; this module does the I/O around it:
//! sessions and registration, reading what a round needs, claiming, resuming and watching.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, select_all};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zookeeper_client::{
    Client, Error as ZkClientError, MultiWriteError, MultiWriteResult, OneshotWatcher, SessionState,
};

use crate::fencing::{self, FenceError, FencedOp, LeaderToken};
use crate::ids::ServerId;
use crate::metrics::HeadMetrics;
use crate::zk::records::{self, EpochRecord, HeadRecord, LeaderRecord};
use crate::zk::{self, Layout, SessionEnd, SessionRole, ZkError};

pub mod decide;

use decide::{Decision, LeaderSeen, Owner, Registration, RoundView, Rules, decide};

/// What a head is doing, and its view of the election (wire types: its `/v1/status`).
pub use filegrid_proto::head::{HeadStatus, Role};

/// Where a head can be reached; written into its registration and the leader node.
#[derive(Clone, Debug)]
pub struct HeadIdentity {
    pub server_id: ServerId,
    pub host: String,
    pub api_port: u16,
    pub metrics_port: Option<u16>,
    /// The head's listeners speak TLS.
    pub tls: bool,
    /// Port of the head's S3 API, if it serves one.
    pub s3_port: Option<u16>,
}

/// Runs one head's part in the election.
pub struct Election {
    me: HeadIdentity,
    layout: Layout,
    zk_hosts: String,
    session_timeout: Duration,
    /// The election rules this head applies in every round.
    rules: Rules,
    /// When this head first registered in ZooKeeper: the cold-start grace is measured from
    /// here, not from process start, so a head that waited long for ZooKeeper does not claim
    /// before heads that started with it have had the grace to register.
    registered_at: std::sync::OnceLock<std::time::Instant>,
    metrics: HeadMetrics,
    status: watch::Sender<HeadStatus>,
    client: watch::Sender<Option<Client>>,
    /// The current (or last) leadership token; kept after stepping down so that the admin
    /// fence probe can demonstrate that it no longer works.
    token: std::sync::Mutex<Option<LeaderToken>>,
    /// Set when the lowest candidate failed to claim in time: claim regardless of order.
    force_claim: AtomicBool,
    /// Session ids this process held before and gave up as expired. Their ephemeral nodes may
    /// outlive them on the server for a while (e.g. after a ZooKeeper restart); they are ours
    /// and dead, so we remove them instead of waiting.
    old_sessions: std::sync::Mutex<Vec<i64>>,
    /// Client writes this head is serving as leader (from admission to answer): a stopping
    /// leader lets them finish before it releases leadership.
    writes: Arc<std::sync::atomic::AtomicUsize>,
    /// Set once the head is stopping: it admits no new write, so that the ones in progress
    /// drain and leadership is released soon, not after [`crate::head`]'s whole handover
    /// wait (under a steady load, new writes would keep the count from reaching zero).
    handing_over: AtomicBool,
}

/// A client write admitted on the leader; counted until dropped (see
/// [`Election::write_admitted`]).
pub struct WriteInFlight(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WriteInFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What to wait for before the next election round.
struct Wait {
    watchers: Vec<OneshotWatcher>,
    timeout: Option<Duration>,
    /// Whether a timeout means the lowest candidate failed to claim.
    claim_on_timeout: bool,
}

impl Wait {
    fn on(watchers: Vec<OneshotWatcher>) -> Self {
        Self {
            watchers,
            timeout: None,
            claim_on_timeout: false,
        }
    }
    fn retry_after(d: Duration) -> Self {
        Self {
            watchers: Vec::new(),
            timeout: Some(d),
            claim_on_timeout: false,
        }
    }
    fn now() -> Self {
        Self::retry_after(Duration::ZERO)
    }

    /// Resolves to `true` if the timeout (not a watch) ended the wait.
    fn event(self) -> BoxFuture<'static, bool> {
        let mut futs: Vec<BoxFuture<'static, bool>> = self
            .watchers
            .into_iter()
            .map(|w| async move { w.changed().await }.map(|_| false).boxed())
            .collect();
        if let Some(t) = self.timeout {
            futs.push(tokio::time::sleep(t).map(|_| true).boxed());
        }
        if futs.is_empty() {
            return futures::future::pending().boxed();
        }
        select_all(futs).map(|(timed_out, _, _)| timed_out).boxed()
    }
}

impl Election {
    pub fn new(
        me: HeadIdentity,
        layout: Layout,
        zk_hosts: String,
        session_timeout: Duration,
        preempt: bool,
        startup_grace: Duration,
        metrics: HeadMetrics,
    ) -> Arc<Self> {
        let status = HeadStatus {
            server_id: me.server_id.clone(),
            role: Role::Starting,
            leader: None,
            epoch: 0,
            session_id: None,
            zk_connected: false,
            excluded: false,
        };
        let rules = Rules {
            me: me.server_id.clone(),
            preempt,
            startup_grace,
            session_timeout,
        };
        Arc::new(Self {
            me,
            layout,
            zk_hosts,
            session_timeout,
            rules,
            registered_at: std::sync::OnceLock::new(),
            writes: Arc::default(),
            handing_over: AtomicBool::new(false),
            metrics,
            status: watch::channel(status).0,
            client: watch::channel(None).0,
            token: std::sync::Mutex::new(None),
            force_claim: AtomicBool::new(false),
            old_sessions: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Counts a client write this head admitted as leader until the guard is dropped; `None`
    /// once the head is handing over (see [`Election::begin_handover`]): the client is to
    /// retry, and finds the next leader.
    pub fn write_admitted(&self) -> Option<WriteInFlight> {
        // Counted before the flag is read, and the flag set before the count is read: a
        // write is either refused or seen by the handover.
        self.writes.fetch_add(1, Ordering::SeqCst);
        let counted = WriteInFlight(self.writes.clone());
        (!self.handing_over.load(Ordering::SeqCst)).then_some(counted)
    }

    /// The head is stopping: no new write is admitted from now on.
    pub fn begin_handover(&self) {
        self.handing_over.store(true, Ordering::SeqCst);
    }

    /// Client writes admitted as leader and not answered yet.
    pub fn writes_in_flight(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    pub fn status(&self) -> watch::Receiver<HeadStatus> {
        self.status.subscribe()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The current ZooKeeper client, if connected once.
    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    /// The head's ZooKeeper client as it changes with each session (`None` between them).
    pub fn clients(&self) -> watch::Receiver<Option<Client>> {
        self.client.subscribe()
    }

    /// The token of the current leadership, only while this head acts as leader.
    pub fn current_token(&self) -> Option<LeaderToken> {
        if self.status.borrow().role != Role::Leader {
            return None;
        }
        self.last_token()
    }

    /// The token of the most recent leadership of this head, current or not.
    pub fn last_token(&self) -> Option<LeaderToken> {
        self.token.lock().ok().and_then(|t| t.clone())
    }

    /// A fenced metadata write with the current leadership (see [`crate::fencing`]).
    pub async fn fenced_write(
        &self,
        ops: &[FencedOp],
    ) -> Result<Vec<MultiWriteResult>, FenceError> {
        let token = self.current_token().ok_or_else(|| FenceError::Deposed {
            server_id: self.me.server_id.clone(),
            epoch: self.status.borrow().epoch,
        })?;
        self.write_with(&token, ops).await
    }

    /// A fenced write with an explicit token; counts rejections.
    pub async fn write_with(
        &self,
        token: &LeaderToken,
        ops: &[FencedOp],
    ) -> Result<Vec<MultiWriteResult>, FenceError> {
        let client = self
            .client()
            .ok_or(FenceError::Zk(ZkClientError::ConnectionLoss))?;
        let result = fencing::write(&client, &self.layout, token, ops).await;
        self.metrics
            .fenced_writes
            .with_label_values(&[fencing::write_result(&result)])
            .inc();
        if let Err(FenceError::Deposed { epoch, .. }) = &result {
            self.metrics.fenced_rejections.inc();
            tracing::warn!(server_id = %self.me.server_id, epoch, "fenced write rejected: leadership has ended");
        }
        result
    }

    /// Takes part in elections until `shutdown` fires, then releases leadership and the
    /// registration before returning; fails at once if this head may not use the grid's root
    /// (see [`zk::access::prepare_root`]).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), ZkError> {
        zk::run_sessions(
            &self.zk_hosts,
            &self.layout,
            self.session_timeout,
            &self.metrics.zk,
            &shutdown,
            &*self,
        )
        .await
    }

    fn is_old_session(&self, id: i64) -> bool {
        self.old_sessions.lock().is_ok_and(|o| o.contains(&id))
    }

    /// Registers, then runs election rounds. `shutdown` is looked at only between steps, so a
    /// claim is never cut off after it may have committed (its leader node would then outlive
    /// the release).
    async fn serve_session(&self, client: &Client, shutdown: &CancellationToken) -> SessionEnd {
        let mut states = client.state_watcher();
        loop {
            let wait = match self.register(client).await {
                Ok(()) => {
                    self.registered_at.get_or_init(std::time::Instant::now);
                    break;
                }
                Err(e) if e.is_session_lost() => return SessionEnd::Lost(e),
                Err(ZkError::Shutdown) => return SessionEnd::Stopped,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register head; retrying");
                    Wait::retry_after(Duration::from_millis(500))
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return SessionEnd::Stopped,
                _ = wait.event() => {}
            }
        }
        loop {
            let wait = match self.round(client).await {
                Ok(w) => w,
                Err(e) if e.is_session_lost() => return SessionEnd::Lost(e),
                Err(e) => {
                    tracing::debug!(error = %e, "election round interrupted");
                    Wait::retry_after(Duration::from_millis(200))
                }
            };
            let claim_on_timeout = wait.claim_on_timeout;
            tokio::select! {
                _ = shutdown.cancelled() => return SessionEnd::Stopped,
                timed_out = wait.event() => {
                    if timed_out && claim_on_timeout {
                        tracing::warn!(server_id = %self.me.server_id,
                            "no leader was elected in time; claiming regardless of id order");
                        self.force_claim.store(true, Ordering::Relaxed);
                    }
                }
                state = states.changed() => match state {
                    SessionState::Disconnected => {
                        self.on_disconnect();
                        loop {
                            tokio::select! {
                                _ = shutdown.cancelled() => return SessionEnd::Stopped,
                                s = states.changed() => match s {
                                    SessionState::SyncConnected | SessionState::ConnectedReadOnly => break,
                                    s if s.is_terminated() => return SessionEnd::Lost(ZkClientError::SessionExpired.into()),
                                    _ => {}
                                },
                            }
                        }
                        self.metrics.zk.connected.set(1);
                        self.update(|s| s.zk_connected = true);
                        tracing::info!(server_id = %self.me.server_id, "ZooKeeper connection restored with the same session");
                    }
                    s if s.is_terminated() => return SessionEnd::Lost(ZkClientError::SessionExpired.into()),
                    _ => {}
                },
            }
        }
    }

    /// Registers `head_servers/<id>`, waiting out a registration left by a previous run whose
    /// session has not expired yet.
    async fn register(&self, client: &Client) -> Result<(), ZkError> {
        zk::ensure_layout(client, &self.layout).await?;
        let path = self.layout.head(&self.me.server_id);
        let record = HeadRecord {
            v: records::RECORD_VERSION,
            id: self.me.server_id.clone(),
            host: self.me.host.clone(),
            api_port: self.me.api_port,
            metrics_port: self.me.metrics_port,
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: records::now_ms(),
            registered_by: None,
            tls: self.me.tls,
            s3_port: self.me.s3_port,
        };
        let data = records::encode(&record);
        zk::register_ephemeral(
            client,
            &self.layout,
            &path,
            &data,
            self.session_timeout * 2,
            |owner| self.is_old_session(owner),
        )
        .await?;
        tracing::info!(server_id = %self.me.server_id, session = %client.session_id(), "registered head");
        Ok(())
    }

    /// One look at the election state: reads what [`decide`] needs (no more, in the order that
    /// keeps watches meaningful), then carries out its decision. Returns what to wait for before
    /// the next look.
    async fn round(&self, client: &Client) -> Result<Wait, ZkError> {
        let me = &self.me.server_id;
        let leader_path = self.layout.leader();
        let mut view = RoundView {
            leader: None,
            excluded: false,
            candidates: Vec::new(),
            age: Duration::ZERO,
            seen_leader: false,
            force_claim: false,
        };
        let mut heads_watch = None;
        let mut excl_watch = None;
        let (stat, leader_watch) = client.check_and_watch_stat(&leader_path).await?;
        if stat.is_some() {
            let Some((record, lstat)) = zk::read::<LeaderRecord>(client, &leader_path).await?
            else {
                return Ok(Wait::now());
            };
            self.observe_leader(&record);
            let owner = if record.session_id == zk::session_id(client) {
                Owner::CurrentSession
            } else if self.is_old_session(lstat.ephemeral_owner) {
                Owner::OldSession
            } else {
                Owner::Other
            };
            let seen = LeaderSeen {
                record,
                version: lstat.version,
                owner,
            };
            if self.rules.would_preempt(&seen) {
                view.excluded = self.is_excluded(client).await?;
            }
            view.leader = Some(seen);
        } else {
            let (excl, watch) = client
                .check_and_watch_stat(&self.layout.excluded(me))
                .await?;
            view.excluded = excl.is_some();
            self.update(|st| st.excluded = view.excluded);
            excl_watch = Some(watch);
            // An excluded head stands aside whoever the candidates are.
            if !view.excluded {
                let (candidates, watch) = self.candidates(client).await?;
                view.candidates = candidates;
                heads_watch = Some(watch);
            }
        }
        view.age = self
            .registered_at
            .get()
            .map_or(Duration::ZERO, |t| t.elapsed());
        view.seen_leader = self.status.borrow().epoch > 0;
        view.force_claim = self.force_claim.load(Ordering::Relaxed);

        let decision = decide(&view, &self.rules);
        let RoundView {
            leader, candidates, ..
        } = view;
        // Every watch this round set.
        let all_watches = |leader_watch| -> Vec<OneshotWatcher> {
            [Some(leader_watch), heads_watch, excl_watch]
                .into_iter()
                .flatten()
                .collect()
        };
        match (decision, leader) {
            (Decision::Resume, Some(seen)) => {
                self.resume(client, seen.record, seen.version, leader_watch)
                    .await
            }
            (Decision::RemoveOwnStaleLeader, Some(seen)) => {
                tracing::info!(server_id = %me, epoch = seen.record.epoch,
                    "removing the leader node left by this head's expired session");
                match client.delete(&leader_path, Some(seen.version)).await {
                    Ok(()) | Err(ZkClientError::NoNode | ZkClientError::BadVersion) => {}
                    Err(e) => return Err(e.into()),
                }
                Ok(Wait::now())
            }
            (Decision::Preempt { displace }, Some(seen)) => {
                tracing::info!(server_id = %me, leader = %seen.record.server_id, "preempting a higher-id leader");
                self.claim(client, Some(displace)).await
            }
            (Decision::Follow(_), Some(seen)) => {
                self.become_follower(Role::Standby, Some(seen.record));
                Ok(Wait::on(vec![leader_watch]))
            }
            (Decision::StandAsideExcluded, _) => {
                tracing::info!(server_id = %me, "excluded by a monitor; not standing for election until healthy again");
                self.become_follower(Role::Candidate, None);
                Ok(Wait::on(all_watches(leader_watch)))
            }
            (Decision::WaitGrace(remaining), _) => {
                self.become_follower(Role::Candidate, None);
                Ok(Wait {
                    watchers: all_watches(leader_watch),
                    timeout: Some(remaining),
                    claim_on_timeout: false,
                })
            }
            (Decision::Claim { forced }, _) => {
                if forced {
                    self.force_claim.store(false, Ordering::Relaxed);
                }
                self.claim(client, None).await
            }
            (
                Decision::WaitForLower {
                    timeout,
                    claim_on_timeout,
                },
                _,
            ) => {
                tracing::debug!(server_id = %me, lowest = ?candidates.first(), "waiting for a lower id to claim leadership");
                self.become_follower(Role::Candidate, None);
                Ok(Wait {
                    watchers: all_watches(leader_watch),
                    timeout: Some(timeout),
                    claim_on_timeout,
                })
            }
            // `decide` names a leader node only when the round read one.
            (
                Decision::Resume
                | Decision::RemoveOwnStaleLeader
                | Decision::Preempt { .. }
                | Decision::Follow(_),
                None,
            ) => Ok(Wait::now()),
        }
    }

    /// Registered heads that may lead, lowest first, and a watch on the registrations. Only
    /// registrations of heads without an exclusion are read.
    async fn candidates(
        &self,
        client: &Client,
    ) -> Result<(Vec<ServerId>, OneshotWatcher), ZkError> {
        let (names, _, watch) = client
            .get_and_watch_children(&self.layout.head_servers())
            .await?;
        let excluded = client.list_children(&self.layout.excluded_dir()).await?;
        let mut registrations = Vec::new();
        for id in decide::standing(names, &excluded) {
            let registration = match zk::read::<HeadRecord>(client, &self.layout.head(&id)).await {
                Ok(Some((rec, _))) => Registration::Record(rec),
                Ok(None) => Registration::Gone,
                Err(ZkError::BadRecord { path, message }) => {
                    tracing::warn!(path, message, "ignoring unreadable head registration");
                    Registration::Unreadable
                }
                Err(e) => return Err(e),
            };
            registrations.push((id, registration));
        }
        Ok((decide::eligible(registrations), watch))
    }

    async fn is_excluded(&self, client: &Client) -> Result<bool, ZkError> {
        let excluded = client
            .check_stat(&self.layout.excluded(&self.me.server_id))
            .await?
            .is_some();
        self.update(|s| s.excluded = excluded);
        Ok(excluded)
    }

    /// Claims leadership: bump `epoch` and create `leader` in one transaction (deleting the
    /// current leader node first when preempting).
    async fn claim(&self, client: &Client, displace: Option<i32>) -> Result<Wait, ZkError> {
        let epoch_path = self.layout.epoch();
        let leader_path = self.layout.leader();
        let Some((epoch, estat)) = zk::read::<EpochRecord>(client, &epoch_path).await? else {
            zk::ensure_layout(client, &self.layout).await?;
            return Ok(Wait::now());
        };
        let next = epoch.epoch + 1;
        let record = LeaderRecord {
            v: records::RECORD_VERSION,
            server_id: self.me.server_id.clone(),
            host: self.me.host.clone(),
            api_port: self.me.api_port,
            epoch: next,
            elected_at: records::now_ms(),
            session_id: zk::session_id(client),
            tls: self.me.tls,
            s3_port: self.me.s3_port,
        };
        let epoch_data = records::encode(&EpochRecord {
            v: records::RECORD_VERSION,
            epoch: next,
        });
        let leader_data = records::encode(&record);
        let mut multi = client.new_multi_writer();
        if let Some(v) = displace {
            multi.add_delete(&leader_path, Some(v))?;
        }
        multi.add_set_data(&epoch_path, &epoch_data, Some(estat.version))?;
        multi.add_create(&leader_path, &leader_data, &self.layout.ephemeral())?;
        match multi.commit().await {
            Ok(results) => {
                let epoch_version = results
                    .iter()
                    .find_map(|r| match r {
                        MultiWriteResult::SetData { stat } => Some(stat.version),
                        _ => None,
                    })
                    .unwrap_or(estat.version + 1);
                self.metrics.elections.with_label_values(&["won"]).inc();
                tracing::info!(server_id = %self.me.server_id, epoch = next, "won the election");
                let token = LeaderToken {
                    server_id: self.me.server_id.clone(),
                    epoch: next,
                    epoch_version,
                    leader_version: 0,
                    session: client.session_id().0,
                };
                let (_, watch) = client.check_and_watch_stat(&leader_path).await?;
                self.observe_leader(&record);
                self.become_leader(token, record);
                Ok(Wait::on(vec![watch]))
            }
            Err(MultiWriteError::OperationFailed { source, .. })
                if matches!(
                    source,
                    ZkClientError::NodeExists | ZkClientError::BadVersion | ZkClientError::NoNode
                ) =>
            {
                self.metrics.elections.with_label_values(&["lost"]).inc();
                tracing::debug!(server_id = %self.me.server_id, epoch = next, reason = %source, "lost the claim race");
                Ok(Wait::now())
            }
            // A lost reply: the next round reads the leader node back and recognises it by
            // the session id in it.
            Err(e) => Err(ZkError::Zk(e.into())),
        }
    }

    /// The leader node is ours (lost claim reply, or the connection came back): resume.
    async fn resume(
        &self,
        client: &Client,
        leader: LeaderRecord,
        leader_version: i32,
        watch: OneshotWatcher,
    ) -> Result<Wait, ZkError> {
        let Some((epoch, estat)) = zk::read::<EpochRecord>(client, &self.layout.epoch()).await?
        else {
            return Ok(Wait::now());
        };
        if epoch.epoch != leader.epoch {
            tracing::warn!(server_id = %self.me.server_id, leader_epoch = leader.epoch, epoch = epoch.epoch,
                "own leader node does not match the epoch counter; giving it up");
            match client
                .delete(&self.layout.leader(), Some(leader_version))
                .await
            {
                Ok(()) | Err(ZkClientError::NoNode | ZkClientError::BadVersion) => {}
                Err(e) => return Err(e.into()),
            }
            return Ok(Wait::now());
        }
        let token = LeaderToken {
            server_id: self.me.server_id.clone(),
            epoch: leader.epoch,
            epoch_version: estat.version,
            leader_version,
            session: client.session_id().0,
        };
        let was = self.status.borrow().role;
        if was != Role::Leader {
            tracing::info!(server_id = %self.me.server_id, epoch = leader.epoch, previous_role = ?was,
                "resumed leadership: own leader node found under this session");
        }
        self.become_leader(token, leader);
        Ok(Wait::on(vec![watch]))
    }

    fn become_leader(&self, token: LeaderToken, record: LeaderRecord) {
        self.metrics.is_leader.set(1);
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token);
        }
        self.update(|s| {
            s.role = Role::Leader;
            s.leader = Some(record);
            s.excluded = false;
        });
    }

    fn become_follower(&self, role: Role, leader: Option<LeaderRecord>) {
        let was = self.status.borrow().role;
        if matches!(was, Role::Leader | Role::Suspended) {
            tracing::warn!(server_id = %self.me.server_id, new_leader = ?leader.as_ref().map(|l| l.server_id.to_string()),
                "no longer leader: the leader node was removed or replaced");
        }
        self.metrics.is_leader.set(0);
        self.update(|s| {
            s.role = role;
            s.leader = leader;
        });
    }

    /// Tracks the newest leader and epoch seen, logging each change once.
    fn observe_leader(&self, leader: &LeaderRecord) {
        let changed = {
            let s = self.status.borrow();
            s.leader.as_ref().map(|l| (&l.server_id, l.epoch))
                != Some((&leader.server_id, leader.epoch))
                && leader.epoch > s.epoch
        };
        if changed {
            self.metrics.leader_changes.inc();
            self.metrics.epoch.set(leader.epoch as i64);
            tracing::info!(server_id = %self.me.server_id, leader = %leader.server_id, epoch = leader.epoch,
                "leader changed");
            self.update(|s| s.epoch = s.epoch.max(leader.epoch));
        }
    }

    fn on_disconnect(&self) {
        self.metrics.zk.connected.set(0);
        self.metrics.zk.connection_losses.inc();
        self.metrics.is_leader.set(0);
        let was = self.status.borrow().role;
        if was == Role::Leader {
            tracing::warn!(server_id = %self.me.server_id,
                "ZooKeeper connection lost: leadership suspended until the session is proven");
        } else {
            tracing::warn!(server_id = %self.me.server_id, "ZooKeeper connection lost");
        }
        self.update(|s| {
            s.zk_connected = false;
            s.role = if was == Role::Leader {
                Role::Suspended
            } else {
                Role::Disconnected
            };
        });
    }

    /// Graceful stop: give up leadership first (so failover is immediate), then the
    /// registration. Both are fenced/conditional so nothing of a newer leader is touched.
    async fn release(&self, client: &Client) {
        let was = self.status.borrow().role;
        self.update(|s| s.role = Role::Stopping);
        self.metrics.is_leader.set(0);
        if was == Role::Leader
            && let Some(token) = self.last_token()
        {
            let op = FencedOp::Delete {
                path: self.layout.leader(),
                version: Some(token.leader_version),
            };
            match fencing::write(client, &self.layout, &token, &[op]).await {
                Ok(_) => {
                    tracing::info!(server_id = %self.me.server_id, epoch = token.epoch, "released leadership")
                }
                Err(e) => {
                    tracing::warn!(server_id = %self.me.server_id, error = %e, "could not release leadership")
                }
            }
        }
        let path = self.layout.head(&self.me.server_id);
        if let Ok(Some(stat)) = client.check_stat(&path).await
            && stat.ephemeral_owner == client.session_id().0
        {
            let _ = client.delete(&path, Some(stat.version)).await;
        }
    }

    fn update(&self, f: impl FnOnce(&mut HeadStatus)) {
        self.status.send_modify(f);
    }
}

/// The election's part in each ZooKeeper session; [`zk::run_sessions`] does the reconnecting.
impl SessionRole for Election {
    async fn serve(&self, client: &Client, shutdown: &CancellationToken) -> SessionEnd {
        self.client.send_replace(Some(client.clone()));
        let sid = zk::session_id(client);
        self.update(|s| {
            s.session_id = Some(sid);
            s.zk_connected = true;
        });
        self.serve_session(client, shutdown).await
    }

    async fn stop(&self, client: &Client) {
        // Bounded: with ZooKeeper gone the release cannot complete, and the session's expiry
        // does the same job.
        let limit = self.session_timeout.min(Duration::from_secs(5));
        if tokio::time::timeout(limit, self.release(client))
            .await
            .is_err()
        {
            tracing::warn!(server_id = %self.me.server_id,
                "could not release leadership in time; ZooKeeper will expire the session");
        }
        self.client.send_replace(None);
    }

    /// Leadership ended with the session; remember it as ours so that its leftover nodes are
    /// removed rather than waited out.
    fn lost(&self, client: &Client, _error: &ZkError) {
        self.metrics.is_leader.set(0);
        let was = self.status.borrow().role;
        tracing::warn!(server_id = %self.me.server_id, session = %client.session_id(), previous_role = ?was,
            "ZooKeeper session expired; registering again with a new session");
        if let Ok(mut old) = self.old_sessions.lock() {
            old.push(client.session_id().0);
        }
        self.client.send_replace(None);
        self.update(|s| {
            s.role = Role::Starting;
            s.zk_connected = false;
        });
    }
}
