//! The sorted children of the directories this head lists, kept current by one persistent
//! recursive ZooKeeper watch on `files/`, so that a page of a listing costs a range of the
//! page's size, not a read of the whole directory.
//!
//! ZooKeeper has no paged `getChildren`: a directory of a million files is a million names
//! in one answer. A directory is therefore read once, when it is first listed, and from then
//! on changed by the watch's created and deleted events.
//!
//! Why the names are never older than an acknowledged write: one task owns the watch, the
//! loaded directories and the answers. ZooKeeper delivers a session's watch events before
//! any answer to a request it handled after the change, so once a `sync` (or a load) has
//! returned, every event of every change before it is already in the watch's channel. The
//! task drains that channel before it answers, and loads a directory itself, between events,
//! so a load and the events around it apply in the order ZooKeeper sent them. Re-applying an
//! event that a load already reflects is harmless: for each name the last event decides.
//! Events are lost while the session is disconnected, so a disconnection forgets every
//! directory (they are loaded again on demand); a session that ends starts the index over
//! on the next one.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use zookeeper_client::{AddWatchMode, Client, EventType, PersistentWatcher, SessionState};

/// Names kept over all loaded directories before the least recently listed are forgotten
/// (a bound on memory: about 60 bytes a name).
const MAX_NAMES: usize = 4_000_000;
/// Loaded directories kept (an empty one still costs its entry).
const MAX_DIRS: usize = 100_000;
/// Longest wait for the `sync` that makes an answer fresh.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);
/// Requests waiting for the task; past this a lister gets `Busy`.
const QUEUE: usize = 1024;

/// Why the index cannot answer now; the listing fails with a retryable error.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no ZooKeeper session to list from")]
    NoSession,
    #[error("the directory index is busy; retry shortly")]
    Busy,
    #[error("ZooKeeper sync failed: {0}")]
    Sync(String),
    #[error("reading a directory from ZooKeeper failed: {0}")]
    Load(#[from] zookeeper_client::Error),
    #[error("the directory index stopped")]
    Stopped,
}

/// One range of a directory's children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamesQuery {
    /// The directory, relative to `files/` (`""` for the top).
    pub dir: String,
    /// Only names after this one.
    pub after: Option<String>,
    /// Only names that start with this.
    pub starts_with: String,
    pub max: usize,
    /// Sync with ZooKeeper first (the first call of a listing; later calls of the same
    /// listing need not pay for it again).
    pub fresh: bool,
}

struct Request {
    query: NamesQuery,
    reply: oneshot::Sender<Result<Vec<String>, IndexError>>,
}

/// A handle on the head's directory index (cheap to clone).
#[derive(Clone, Debug)]
pub struct DirIndex {
    requests: mpsc::Sender<Request>,
}

impl DirIndex {
    /// Starts the index task, which follows `client`'s sessions (the head's) until every
    /// handle is dropped.
    pub fn spawn(client: watch::Receiver<Option<Client>>, files_root: String) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(supervise(client, files_root, rx));
        Self { requests: tx }
    }

    /// The children of `q.dir` in byte order, as `q` restricts them.
    pub async fn names(&self, query: NamesQuery) -> Result<Vec<String>, IndexError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(Request { query, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => IndexError::Busy,
                mpsc::error::TrySendError::Closed(_) => IndexError::Stopped,
            })?;
        answer.await.map_err(|_| IndexError::Stopped)?
    }
}

/// Runs the index, starting it again should it ever panic (it serves every listing).
async fn supervise(
    client: watch::Receiver<Option<Client>>,
    files_root: String,
    requests: mpsc::Receiver<Request>,
) {
    let requests = Arc::new(tokio::sync::Mutex::new(requests));
    loop {
        let task = tokio::spawn(run(client.clone(), files_root.clone(), requests.clone()));
        match task.await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "the directory index failed; starting it again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Why serving one session's index ended.
enum Ended {
    /// Every handle is gone (or the head's election is): the index is no longer needed.
    Stop,
    Session,
}

async fn run(
    mut client: watch::Receiver<Option<Client>>,
    files_root: String,
    requests: Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>,
) {
    let mut requests = requests.lock().await;
    loop {
        // Wait for a session, refusing requests meanwhile.
        let current = loop {
            if let Some(c) = client.borrow_and_update().clone() {
                break c;
            }
            tokio::select! {
                changed = client.changed() => if changed.is_err() { return },
                req = requests.recv() => match req {
                    Some(r) => { let _ = r.reply.send(Err(IndexError::NoSession)); }
                    None => return,
                },
            }
        };
        let watcher = match current
            .watch(&files_root, AddWatchMode::PersistentRecursive)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the namespace; retrying");
                if !refuse_for(&mut requests, Duration::from_millis(500)).await {
                    return;
                }
                continue;
            }
        };
        let mut session = Session {
            client: current,
            watcher,
            root: files_root.clone(),
            dirs: Dirs::default(),
        };
        match session.serve(&mut requests, &mut client).await {
            Ended::Stop => return,
            Ended::Session => {
                tracing::info!("the ZooKeeper session ended; the directory index starts over");
            }
        }
    }
}

/// Refuses requests for `period` (no session to serve them from); `false` once every
/// handle is gone.
async fn refuse_for(requests: &mut mpsc::Receiver<Request>, period: Duration) -> bool {
    let until = tokio::time::sleep(period);
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => return true,
            req = requests.recv() => match req {
                Some(r) => { let _ = r.reply.send(Err(IndexError::NoSession)); }
                None => return false,
            },
        }
    }
}

/// What an event means for the index.
enum Flow {
    Go,
    End,
}

struct Session {
    client: Client,
    watcher: PersistentWatcher,
    /// `files/` as the client names it.
    root: String,
    dirs: Dirs,
}

impl Session {
    async fn serve(
        &mut self,
        requests: &mut mpsc::Receiver<Request>,
        client: &mut watch::Receiver<Option<Client>>,
    ) -> Ended {
        loop {
            tokio::select! {
                // The head made a new session (or has none): this one's events stop.
                _ = client.changed() => return Ended::Session,
                event = self.watcher.changed() => {
                    if let Flow::End = self.on_event(event.event_type, event.session_state, &event.path) {
                        return Ended::Session;
                    }
                }
                req = requests.recv() => {
                    let Some(first) = req else { return Ended::Stop };
                    let mut batch = vec![first];
                    while batch.len() < QUEUE {
                        match requests.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if let Flow::End = self.answer(batch).await {
                        return Ended::Session;
                    }
                }
            }
        }
    }

    /// Answers a batch of requests: one sync for all that want a fresh answer, then every
    /// event that arrived before it, then each range.
    async fn answer(&mut self, batch: Vec<Request>) -> Flow {
        if batch.iter().any(|r| r.query.fresh) {
            let synced = tokio::time::timeout(SYNC_TIMEOUT, self.client.sync(&self.root)).await;
            let failed = match synced {
                Ok(Ok(())) => None,
                // No `files/` yet: nothing to list, but the sync itself went through.
                Ok(Err(zookeeper_client::Error::NoNode)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {SYNC_TIMEOUT:?}")),
            };
            if let Some(why) = failed {
                for r in batch {
                    let _ = r.reply.send(Err(IndexError::Sync(why.clone())));
                }
                return Flow::Go;
            }
        }
        if let Flow::End = self.drain() {
            for r in batch {
                let _ = r.reply.send(Err(IndexError::NoSession));
            }
            return Flow::End;
        }
        for r in batch {
            let answer = self.range(&r.query).await;
            let _ = r.reply.send(answer);
        }
        Flow::Go
    }

    /// Applies every event already delivered.
    fn drain(&mut self) -> Flow {
        while let Some(event) = self.watcher.changed().now_or_never() {
            if let Flow::End = self.on_event(event.event_type, event.session_state, &event.path) {
                return Flow::End;
            }
        }
        Flow::Go
    }

    async fn range(&mut self, q: &NamesQuery) -> Result<Vec<String>, IndexError> {
        if let Some(names) = self.dirs.range(q) {
            return Ok(names);
        }
        let node = if q.dir.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{}", self.root, q.dir)
        };
        let started = std::time::Instant::now();
        let names = match self.client.list_children(&node).await {
            Ok(names) => names,
            Err(zookeeper_client::Error::NoNode) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if names.len() >= 10_000 {
            tracing::info!(dir = %q.dir, names = names.len(), elapsed_ms = started.elapsed().as_millis() as u64,
                "loaded a large directory into the index");
        }
        self.dirs.load(&q.dir, names);
        self.dirs.evict(MAX_NAMES, MAX_DIRS, &q.dir);
        Ok(self.dirs.range(q).unwrap_or_default())
    }

    fn on_event(&mut self, kind: EventType, state: SessionState, path: &str) -> Flow {
        match kind {
            EventType::Session => {
                if state.is_terminated() {
                    return Flow::End;
                }
                // Events are lost while disconnected (and a reconnect does not replay them):
                // forget everything; directories load again when next listed.
                self.dirs.clear();
            }
            EventType::NodeCreated | EventType::NodeDeleted => {
                let Some(rel) = relative(&self.root, path) else {
                    return Flow::Go;
                };
                let change = if kind == EventType::NodeCreated {
                    Change::Created
                } else {
                    Change::Deleted
                };
                self.dirs.apply(change, rel);
            }
            EventType::NodeDataChanged | EventType::NodeChildrenChanged => {}
        }
        Flow::Go
    }
}

/// `path` relative to `root` (`""` for the root itself), if it lies below.
fn relative<'p>(root: &str, path: &'p str) -> Option<&'p str> {
    let rest = path.strip_prefix(root)?;
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_prefix('/')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Created,
    Deleted,
}

/// The loaded directories (pure: no I/O).
#[derive(Debug, Default)]
struct Dirs {
    loaded: HashMap<String, Loaded>,
    /// Names over all loaded directories.
    names: usize,
    /// Bumped by each use, for least-recently-used eviction.
    tick: u64,
}

#[derive(Debug)]
struct Loaded {
    names: BTreeSet<Box<str>>,
    used: u64,
}

/// Splits `a/b/c` into (`a/b`, `c`) and `c` into (``, `c`).
fn split(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

impl Dirs {
    fn clear(&mut self) {
        self.loaded.clear();
        self.names = 0;
    }

    /// Replaces `dir`'s children with `names` as just read.
    fn load(&mut self, dir: &str, names: Vec<String>) {
        self.tick += 1;
        let set: BTreeSet<Box<str>> = names.into_iter().map(String::into_boxed_str).collect();
        self.names += set.len();
        if let Some(old) = self.loaded.insert(
            dir.to_string(),
            Loaded {
                names: set,
                used: self.tick,
            },
        ) {
            self.names -= old.names.len();
        }
    }

    /// Applies a created or deleted node at `rel` (relative to `files/`).
    fn apply(&mut self, change: Change, rel: &str) {
        if rel.is_empty() {
            if change == Change::Deleted {
                self.forget("");
            }
            return;
        }
        if change == Change::Deleted {
            // A deleted directory had no children left; forget its (empty) set.
            self.forget(rel);
        }
        let (parent, name) = split(rel);
        let Some(dir) = self.loaded.get_mut(parent) else {
            return;
        };
        match change {
            Change::Created => {
                if dir.names.insert(name.into()) {
                    self.names += 1;
                }
            }
            Change::Deleted => {
                if dir.names.remove(name) {
                    self.names -= 1;
                }
            }
        }
    }

    fn forget(&mut self, dir: &str) {
        if let Some(old) = self.loaded.remove(dir) {
            self.names -= old.names.len();
        }
    }

    /// The names `q` asks for, or `None` if `q.dir` is not loaded.
    fn range(&mut self, q: &NamesQuery) -> Option<Vec<String>> {
        self.tick += 1;
        let dir = self.loaded.get_mut(&q.dir)?;
        dir.used = self.tick;
        let from: Bound<&str> = match q.after.as_deref() {
            Some(a) if a >= q.starts_with.as_str() => Bound::Excluded(a),
            _ => Bound::Included(q.starts_with.as_str()),
        };
        Some(
            dir.names
                .range::<str, _>((from, Bound::Unbounded))
                .take_while(|n| n.starts_with(q.starts_with.as_str()))
                .take(q.max)
                .map(|n| n.to_string())
                .collect(),
        )
    }

    /// Forgets the least recently listed directories (never `keep`) until at most
    /// `max_names` names and `max_dirs` directories are loaded.
    fn evict(&mut self, max_names: usize, max_dirs: usize, keep: &str) {
        if self.names <= max_names && self.loaded.len() <= max_dirs {
            return;
        }
        let mut by_age: Vec<(u64, String)> = self
            .loaded
            .iter()
            .filter(|(d, _)| d.as_str() != keep)
            .map(|(d, l)| (l.used, d.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, dir) in by_age {
            // Evict a tenth below the limits at once, so that a full index does not scan
            // itself on every load.
            if self.names <= max_names - max_names / 10
                && self.loaded.len() <= max_dirs - max_dirs / 10
            {
                break;
            }
            self.forget(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(dir: &str, after: Option<&str>, starts_with: &str, max: usize) -> NamesQuery {
        NamesQuery {
            dir: dir.into(),
            after: after.map(Into::into),
            starts_with: starts_with.into(),
            max,
            fresh: false,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ranges_start_after_the_cursor_and_keep_to_the_prefix() {
        let mut d = Dirs::default();
        d.load("a", names(&["c", "b1", "b2", "b", "a"]));
        assert_eq!(
            d.range(&q("a", None, "", 10)).unwrap(),
            names(&["a", "b", "b1", "b2", "c"])
        );
        assert_eq!(
            d.range(&q("a", Some("b"), "", 2)).unwrap(),
            names(&["b1", "b2"])
        );
        assert_eq!(
            d.range(&q("a", None, "b", 10)).unwrap(),
            names(&["b", "b1", "b2"])
        );
        // A cursor before the prefix starts at the prefix; one inside it, after itself.
        assert_eq!(
            d.range(&q("a", Some("a"), "b", 10)).unwrap(),
            names(&["b", "b1", "b2"])
        );
        assert_eq!(
            d.range(&q("a", Some("b1"), "b", 10)).unwrap(),
            names(&["b2"])
        );
        assert_eq!(
            d.range(&q("a", Some("z"), "", 10)).unwrap(),
            Vec::<String>::new()
        );
        assert!(d.range(&q("other", None, "", 10)).is_none());
    }

    #[test]
    fn events_change_only_loaded_directories() {
        let mut d = Dirs::default();
        d.load("", names(&["a"]));
        d.load("a", names(&["x"]));
        d.apply(Change::Created, "a/y");
        d.apply(Change::Created, "b/z"); // `b` is not loaded
        d.apply(Change::Created, "b");
        d.apply(Change::Deleted, "a/x");
        assert_eq!(d.range(&q("a", None, "", 10)).unwrap(), names(&["y"]));
        assert_eq!(d.range(&q("", None, "", 10)).unwrap(), names(&["a", "b"]));
        assert!(d.range(&q("b", None, "", 10)).is_none());
        assert_eq!(d.names, 3);
    }

    #[test]
    fn replayed_events_leave_what_the_last_one_says() {
        // A load that already saw `x` created and deleted, then both events applied late.
        let mut d = Dirs::default();
        d.load("", names(&[]));
        d.apply(Change::Created, "x");
        d.apply(Change::Deleted, "x");
        // And one that saw `y` created, then its event again.
        d.load("", names(&["y"]));
        d.apply(Change::Created, "y");
        assert_eq!(d.range(&q("", None, "", 10)).unwrap(), names(&["y"]));
        assert_eq!(d.names, 1);
    }

    #[test]
    fn a_deleted_directory_is_forgotten_and_loads_again() {
        let mut d = Dirs::default();
        d.load("", names(&["a"]));
        d.load("a", names(&[]));
        d.apply(Change::Deleted, "a");
        assert!(d.range(&q("a", None, "", 10)).is_none());
        assert_eq!(d.range(&q("", None, "", 10)).unwrap(), Vec::<String>::new());
        // Children created while it is not loaded are not tracked: its next load reads them.
        d.apply(Change::Created, "a");
        d.apply(Change::Created, "a/new");
        assert!(d.range(&q("a", None, "", 10)).is_none());
        d.apply(Change::Deleted, "");
        assert!(d.range(&q("", None, "", 10)).is_none());
        assert_eq!(d.names, 0);
    }

    #[test]
    fn the_least_recently_listed_directories_go_first() {
        let mut d = Dirs::default();
        d.load("old", names(&["1", "2", "3", "4"]));
        d.load("mid", names(&["1", "2", "3", "4"]));
        d.load("new", names(&["1", "2", "3", "4"]));
        d.range(&q("old", None, "", 1)); // used again: now the newest
        d.evict(10, 100, "new");
        assert!(d.range(&q("mid", None, "", 1)).is_none());
        assert!(d.range(&q("old", None, "", 1)).is_some());
        assert_eq!(d.names, 8);
        // The directory being listed stays, however large.
        d.evict(1, 100, "new");
        assert!(d.range(&q("new", None, "", 1)).is_some());
        assert_eq!(d.loaded.len(), 1);
    }

    #[test]
    fn paths_below_the_root_only() {
        assert_eq!(relative("/fg/files", "/fg/files"), Some(""));
        assert_eq!(relative("/fg/files", "/fg/files/a/b"), Some("a/b"));
        assert_eq!(relative("/fg/files", "/fg/filesx"), None);
        assert_eq!(relative("/fg/files", "/fg/manifests/x"), None);
    }
}
