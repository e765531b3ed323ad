//! A file client as FileGrid's users run one: writes go to the leader (asked of any head
//! that answers), reads to any head, and a call that meets a broken connection, a timeout or
//! a `503` is retried with backoff, following a new leader, until its deadline.
//!
//! A call that does not answer is handled as `filegrid_node::cli::failover` says (the CLI
//! does the same): a write or delete whose answer has not come after
//! [`failover::STALLED_AFTER`] makes the client ask the other heads who leads, every
//! [`failover::LOOK_EVERY`], and it is given up, to be sent to the new leader, as soon as one
//! names a leader of a newer epoch than the one called (a cut-off or stopped leader is
//! replaced when its session expires; its calls then cannot commit any more). A read that
//! has not answered after that long is asked of the next head as well, and the first answer
//! taken. Each call still has its own timeout (5 s, 10 s for an upload) as a last resort.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use filegrid_node::cli::failover;

use filegrid_proto::head::{LeaderView, PutAnswer};
use filegrid_proto::{ErrorBody, ErrorCode};
use reqwest::blocking::{Client as Http, Response};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::history::{Outcome, Seen, digest};

/// How a call is retried.
#[derive(Clone, Debug)]
pub struct Retry {
    /// A call gives up (outcome unknown or failed) after this long.
    pub deadline: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(15),
            first_backoff: Duration::from_millis(100),
            // A client waiting out a failover (a crashed leader is named until its session
            // expires) asks for the leader as often as one whose call stalled does.
            max_backoff: failover::LOOK_EVERY,
        }
    }
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    /// Certainly changed nothing; do not retry (a 4xx).
    Refused(String),
    /// Try again (connection error, timeout, 5xx, redirect to a new leader).
    Again {
        maybe_applied: bool,
        why: String,
    },
}

pub struct FileClient {
    http: Http,
    /// Base URLs of every head.
    heads: Vec<String>,
    /// The leader's base URL and the epoch a head named it under.
    leader: Option<(String, u64)>,
    retry: Retry,
    /// Rotates reads over the heads.
    next_head: usize,
    /// Why the latest attempt that did not succeed failed.
    last_error: Option<String>,
}

/// The result of a mutation: its outcome and, when acknowledged, the epoch it committed under.
pub struct Written {
    pub outcome: Outcome,
    pub epoch: Option<u64>,
}

impl FileClient {
    pub fn new(heads: Vec<String>, token: &str, retry: Retry) -> Result<Self, reqwest::Error> {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            h.insert(AUTHORIZATION, v);
        }
        let http = Http::builder()
            .default_headers(h)
            // Redirects are followed here, so a new leader is remembered.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            heads,
            leader: None,
            retry,
            next_head: 0,
            last_error: None,
        })
    }

    /// Why the latest failed attempt failed (taken: the next call starts afresh).
    pub fn last_error(&mut self) -> Option<String> {
        self.last_error.take()
    }

    /// The leader's URL as a head that answers says it; `None` if none answers.
    fn find_leader(&mut self) -> Option<String> {
        for i in 0..self.heads.len() {
            let head = self.heads[(self.next_head + i) % self.heads.len()].clone();
            if let Some(l) = ask_leader(&self.http, &head) {
                let url = leader_url(&l);
                self.leader = Some((url.clone(), l.epoch));
                return Some(url);
            }
        }
        self.next_head += 1;
        None
    }

    /// Runs `attempt` against the leader until it is done, refused, or the deadline passes.
    /// Each attempt runs on a thread of its own, so that a stalled one can be left behind
    /// once the leader it was sent to is deposed (see the module's doc).
    fn with_retries<T: Send + 'static>(
        &mut self,
        attempt: impl Fn(&Http, &str, u64) -> Attempt<T> + Clone + Send + 'static,
    ) -> (Result<T, Outcome>, bool) {
        let start = Instant::now();
        let mut backoff = self.retry.first_backoff;
        let mut maybe = false;
        loop {
            let leader = match self.leader.clone() {
                Some((l, _)) => Some(l),
                None => self.find_leader(),
            };
            if let Some(base) = leader {
                let epoch = self.leader.as_ref().map_or(0, |(_, e)| *e);
                match self.watched(&base, epoch, attempt.clone()) {
                    Attempt::Done(v) => return (Ok(v), maybe),
                    Attempt::Refused(why) => {
                        self.last_error = Some(why);
                        let o = if maybe {
                            Outcome::Unknown
                        } else {
                            Outcome::Failed
                        };
                        return (Err(o), maybe);
                    }
                    Attempt::Again { maybe_applied, why } => {
                        self.last_error = Some(why);
                        maybe |= maybe_applied;
                        self.leader = None;
                    }
                }
            }
            if start.elapsed() + backoff > self.retry.deadline {
                let o = if maybe {
                    Outcome::Unknown
                } else {
                    Outcome::Failed
                };
                return (Err(o), maybe);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }

    /// One attempt at the leader `base` (named under `epoch`), given up when another head
    /// names a leader of a newer epoch while it has not answered.
    fn watched<T: Send + 'static>(
        &self,
        base: &str,
        epoch: u64,
        attempt: impl FnOnce(&Http, &str, u64) -> Attempt<T> + Send + 'static,
    ) -> Attempt<T> {
        let (tx, rx) = mpsc::channel();
        let http = self.http.clone();
        let url = base.to_string();
        std::thread::spawn(move || {
            let _ = tx.send(attempt(&http, &url, epoch));
        });
        let mut wait = failover::STALLED_AFTER;
        loop {
            match rx.recv_timeout(wait) {
                Ok(a) => return a,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Attempt::Again {
                        maybe_applied: true,
                        why: "the call's thread ended without an answer".into(),
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            // Stalled: do the other heads name a newer leader?
            for head in self.heads.iter().filter(|h| h.as_str() != base) {
                if let Some(l) = ask_leader(&self.http, head)
                    && failover::superseded(epoch, &l)
                {
                    return Attempt::Again {
                        // Fenced from here on, but it may have committed before.
                        maybe_applied: true,
                        why: format!(
                            "no answer from the leader of epoch {epoch} at {base}; {head} names {} at epoch {}",
                            l.server_id, l.epoch
                        ),
                    };
                }
            }
            wait = failover::LOOK_EVERY;
        }
    }

    /// `PUT /v1/files/{key}`.
    pub fn write(&mut self, key: &str, body: &[u8]) -> Written {
        let body = std::sync::Arc::new(body.to_vec());
        let key = key.to_string();
        let (r, _) = self.with_retries(move |http, base, epoch| {
            let resp = addressed(http.put(format!("{base}/v1/files/{key}")), epoch)
                .body(body.as_ref().clone())
                .timeout(Duration::from_secs(10))
                .send();
            match judge(resp) {
                Judged::Answer(r) => match r.json::<PutAnswer>() {
                    Ok(a) => Attempt::Done(Some(a.epoch)),
                    // Acknowledged, but the answer was cut: it committed.
                    Err(_) => Attempt::Done(None),
                },
                Judged::Refused(why) => Attempt::Refused(why),
                Judged::Again { maybe_applied, why } => Attempt::Again { maybe_applied, why },
                Judged::NotFound => Attempt::Refused("404".into()),
            }
        });
        match r {
            Ok(epoch) => Written {
                outcome: Outcome::Ok,
                epoch,
            },
            Err(o) => Written {
                outcome: o,
                epoch: None,
            },
        }
    }

    /// `DELETE /v1/files/{key}`; `404` counts as done (the file is absent either way).
    pub fn delete(&mut self, key: &str) -> Outcome {
        let key = key.to_string();
        let (r, _) = self.with_retries(move |http, base, epoch| {
            match judge(addressed(http.delete(format!("{base}/v1/files/{key}")), epoch).send()) {
                Judged::Answer(_) | Judged::NotFound => Attempt::Done(()),
                Judged::Refused(why) => Attempt::Refused(why),
                Judged::Again { maybe_applied, why } => Attempt::Again { maybe_applied, why },
            }
        });
        match r {
            Ok(()) => Outcome::Ok,
            Err(o) => o,
        }
    }

    /// `GET /v1/files/{key}` from a head (rotating over them), retried on another head.
    /// With `leader_only`, from the leader (the final reads). A head that has not answered
    /// after [`failover::STALLED_AFTER`] is joined by the next head, and so on; the first
    /// answer is taken.
    pub fn read(&mut self, key: &str, leader_only: bool) -> (Outcome, Option<Seen>) {
        let start = Instant::now();
        let mut backoff = self.retry.first_backoff;
        loop {
            let base = if leader_only {
                self.leader
                    .clone()
                    .map(|(l, _)| l)
                    .or_else(|| self.find_leader())
            } else {
                self.next_head = (self.next_head + 1) % self.heads.len().max(1);
                self.heads.get(self.next_head).cloned()
            };
            if let Some(base) = base {
                match self.read_hedged(key, &base, leader_only) {
                    ReadAnswer::Seen(seen) => return (Outcome::Ok, Some(seen)),
                    ReadAnswer::Refused(why) => {
                        self.last_error = Some(why);
                        return (Outcome::Failed, None);
                    }
                    ReadAnswer::Again(why) => {
                        self.last_error = Some(why);
                        if leader_only {
                            self.leader = None;
                        }
                    }
                }
            }
            if start.elapsed() + backoff > self.retry.deadline {
                return (Outcome::Failed, None);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }

    /// Reads `key` from `base`, then also from the next heads one by one while none has
    /// answered (not with `leader_only`); the first answer that is not a retry is taken.
    fn read_hedged(&mut self, key: &str, base: &str, leader_only: bool) -> ReadAnswer {
        let (tx, rx) = mpsc::channel();
        let ask = |head: &str| {
            let (tx, http) = (tx.clone(), self.http.clone());
            let url = format!("{head}/v1/files/{key}");
            std::thread::spawn(move || {
                let _ = tx.send(read_once(&http, &url));
            });
        };
        ask(base);
        let mut asked = 1;
        let mut pending = 1;
        let mut last = ReadAnswer::Again("no answer".into());
        loop {
            match rx.recv_timeout(failover::STALLED_AFTER) {
                Ok(ReadAnswer::Again(why)) => {
                    pending -= 1;
                    last = ReadAnswer::Again(why);
                    if pending == 0 {
                        return last;
                    }
                }
                Ok(answer) => return answer,
                Err(mpsc::RecvTimeoutError::Timeout)
                    if !leader_only && asked < self.heads.len() =>
                {
                    self.next_head = (self.next_head + 1) % self.heads.len();
                    ask(&self.heads[self.next_head]);
                    asked += 1;
                    pending += 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return last,
            }
        }
    }
}

/// `req` addressed to the leader of `epoch` (when known): a request held up on its way, that
/// the client has since sent again to a newer leader, is then refused rather than taking
/// effect a second time later.
fn addressed(
    req: reqwest::blocking::RequestBuilder,
    epoch: u64,
) -> reqwest::blocking::RequestBuilder {
    if epoch == 0 {
        return req;
    }
    req.header(filegrid_proto::headers::LEADER_EPOCH, epoch)
}

/// What one read from one head came to.
enum ReadAnswer {
    Seen(Seen),
    Refused(String),
    Again(String),
}

/// `GET url` once: the whole body (a body cut short is a failed read, never a short file).
fn read_once(http: &Http, url: &str) -> ReadAnswer {
    match judge(http.get(url).send()) {
        Judged::Answer(r) => match r.bytes() {
            Ok(bytes) => ReadAnswer::Seen(Seen::Content(digest(&bytes))),
            Err(e) => ReadAnswer::Again(format!("body: {e}")),
        },
        Judged::NotFound => ReadAnswer::Seen(Seen::Absent),
        Judged::Refused(why) => ReadAnswer::Refused(why),
        Judged::Again { why, .. } => ReadAnswer::Again(why),
    }
}

/// The leader as the head at `head` names it, asked with a short timeout.
fn ask_leader(http: &Http, head: &str) -> Option<LeaderView> {
    http.get(format!("{head}/v1/leader"))
        .timeout(Duration::from_secs(1))
        .send()
        .ok()?
        .json::<LeaderView>()
        .ok()
}

/// The base URL of the leader `l`.
fn leader_url(l: &LeaderView) -> String {
    let scheme = if l.tls { "https" } else { "http" };
    format!("{scheme}://{}:{}", l.host, l.api_port)
}

enum Judged {
    Answer(Response),
    NotFound,
    Refused(String),
    Again { maybe_applied: bool, why: String },
}

/// Sorts an answer: 2xx, 404, other 4xx (nothing changed), or worth another try. A redirect
/// (a standby's 307) is tried again at the leader; it changed nothing.
fn judge(resp: Result<Response, reqwest::Error>) -> Judged {
    match resp {
        Err(e) => Judged::Again {
            // A request that never connected changed nothing.
            maybe_applied: !e.is_connect(),
            why: error_chain(&e),
        },
        Ok(r) => {
            let s = r.status();
            if s.is_success() {
                Judged::Answer(r)
            } else if s.as_u16() == 404 {
                Judged::NotFound
            } else if s.is_redirection() {
                Judged::Again {
                    maybe_applied: false,
                    why: s.to_string(),
                }
            } else if s.is_client_error() && s.as_u16() != 408 && s.as_u16() != 429 {
                let (code, why) = refusal(r);
                if code == Some(ErrorCode::StaleEpoch) {
                    // Addressed to a leadership that has ended: refused, nothing changed;
                    // sent again to the leader the grid names now.
                    Judged::Again {
                        maybe_applied: false,
                        why,
                    }
                } else {
                    Judged::Refused(why)
                }
            } else {
                // 5xx: `no_leader` or `too_many_uploads` changed nothing, but `unavailable`
                // may come after a commit whose answer ZooKeeper lost; count all as maybe.
                Judged::Again {
                    maybe_applied: true,
                    why: answer(r),
                }
            }
        }
    }
}

/// `<status> <body>` of an error answer (the body is FileGrid's small JSON error).
fn answer(r: Response) -> String {
    refusal(r).1
}

/// An error answer's code (when the body is FileGrid's JSON error) and [`answer`]'s line.
fn refusal(r: Response) -> (Option<ErrorCode>, String) {
    let status = r.status();
    let body = r.text().unwrap_or_default();
    let code = serde_json::from_str::<ErrorBody>(&body)
        .ok()
        .map(|b| b.code);
    let line = format!("{status} {}", body.chars().take(200).collect::<String>());
    (code, line)
}

/// An error with its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}
