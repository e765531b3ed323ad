//! File commands of the CLI: put, get, ls, rm, stat, decommission. Transfers stream (memory
//! stays flat) and show a progress bar on a terminal for anything over a few MiB.

use filegrid_proto::head::{FileStat, ListItem, ListPage, PutAnswer, ServerState, ServerView};
use filegrid_proto::{ErrorBody, ErrorCode, headers};
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt;

use super::{CliError, Target};

/// Transfers smaller than this get no progress bar.
const PROGRESS_MIN: u64 = 4 << 20;

fn progress(len: Option<u64>, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() || len.is_some_and(|l| l < PROGRESS_MIN) {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(l) => ProgressBar::new(l),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{verb} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
    )) {
        bar.set_style(style);
    }
    bar
}

fn unreachable(url: &str, e: &reqwest::Error) -> CliError {
    CliError::Unreachable {
        url: url.to_string(),
        message: super::root_cause(e),
    }
}

/// Turns a non-success answer into a one-line error using the API's JSON message.
async fn api_error(resp: reqwest::Response) -> CliError {
    api_refusal(resp).await.1
}

/// A head's error answer: its code (when the body is FileGrid's JSON error) and the error
/// the CLI reports.
async fn api_refusal(resp: reqwest::Response) -> (Option<ErrorCode>, CliError) {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let (code, msg) = match serde_json::from_str::<ErrorBody>(&body) {
        Ok(b) => (Some(b.code), b.message),
        Err(_) => (None, body),
    };
    (code, CliError::Api(format!("{status}: {msg}")))
}

/// After a head refused a write as addressed to another leadership (`409 stale_epoch`, which
/// changed nothing): the leader to send it to now, when the grid names one of another epoch
/// than `sent_to`. `None` when it still names the same leadership: the refusal is then reported.
async fn leader_after_refusal(target: &Target, sent_to: u64) -> Option<(String, u64)> {
    match target.leader_call().await {
        Ok((base, epoch)) if epoch != sent_to => Some((base, epoch)),
        _ => None,
    }
}

/// Characters escaped in a path segment: all but RFC 3986's unreserved ones.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn file_url(base: &str, remote: &str) -> String {
    let encoded: Vec<String> = remote
        .trim_start_matches('/')
        .split('/')
        .map(|seg| percent_encoding::utf8_percent_encode(seg, SEGMENT).to_string())
        .collect();
    format!("{base}/v1/files/{}", encoded.join("/"))
}

/// How many times one upload follows a head's `307` before giving up (a standby names the
/// leader; a second hop only happens when leadership moved meanwhile).
const MAX_REDIRECTS: usize = 3;

/// The body of an upload: a local file, opened afresh for every attempt so that it can be
/// sent again after a redirect, or stdin, which can be sent only once.
async fn upload_body(local: &Path) -> Result<(reqwest::Body, Option<u64>), CliError> {
    if local == Path::new("-") {
        let stream = tokio_util::io::ReaderStream::new(tokio::io::stdin());
        return Ok((reqwest::Body::wrap_stream(stream), None));
    }
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", local.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", local.display())))?
        .len();
    let bar = progress(Some(len), "put");
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).inspect(move |chunk| {
        if let Ok(c) = chunk {
            bar.inc(c.len() as u64);
        }
    });
    Ok((reqwest::Body::wrap_stream(stream), Some(len)))
}

/// Where a `307`/`308` answer to a request for `current` sends the client: its `Location`,
/// resolved against `current`, if it is an http(s) URL. A redirect cannot be followed by
/// the HTTP client itself for a streamed body, so the upload decides here.
pub(crate) fn redirect_target(current: &str, location: Option<&str>) -> Result<String, String> {
    let location = location.ok_or("a redirect without a Location")?;
    let base = reqwest::Url::parse(current).map_err(|e| format!("{current}: {e}"))?;
    let next = base
        .join(location)
        .map_err(|e| format!("a redirect to an invalid Location {location:?}: {e}"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!("a redirect to a non-HTTP Location {location:?}"));
    }
    Ok(next.to_string())
}

/// Why an upload from stdin that a head does not take cannot go on.
fn stdin_redirected(base: &str, leader_url: &str) -> CliError {
    CliError::Api(format!(
        "the head at {base} does not lead and redirects the upload to {leader_url}; an \
         upload from stdin cannot be sent twice, so nothing was stored. Point --head at the \
         leader (`filegrid leader`), save the input to a file first, or turn on the heads' \
         standby_proxy"
    ))
}

/// The URL of `remote` on the leader, as the head at `base` names it (`None` if it cannot).
async fn leader_file_url(http: &reqwest::Client, base: &str, remote: &str) -> Option<String> {
    let resp = http.get(format!("{base}/v1/leader")).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let l: filegrid_proto::head::LeaderView = resp.json().await.ok()?;
    Some(file_url(&leader_base(&l), remote))
}

/// The API base URL of the leader `l`.
pub(crate) fn leader_base(l: &filegrid_proto::head::LeaderView) -> String {
    format!(
        "{}://{}:{}",
        crate::http::Outgoing::scheme(l.tls),
        l.host,
        l.api_port
    )
}

/// What a `put` or `rm` requires of the file it replaces or deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// No file at the path (`--if-absent`).
    Absent,
    /// The file with this ETag, quoted (`--if-match`).
    Matches(String),
}

impl Condition {
    /// From the flags; an ETag may be given with or without its quotes.
    pub fn of(if_absent: bool, if_match: Option<&str>) -> Result<Option<Self>, CliError> {
        match (if_absent, if_match) {
            (true, Some(_)) => Err(CliError::Usage(
                "--if-absent and --if-match exclude each other".into(),
            )),
            (true, None) => Ok(Some(Self::Absent)),
            (false, None) => Ok(None),
            (false, Some(tag)) => {
                let bare = tag.trim().trim_matches('"');
                if bare.is_empty() || bare.contains(['"', ',', '*']) || !bare.is_ascii() {
                    return Err(CliError::Usage(format!(
                        "--if-match: {tag:?} is not an ETag as `filegrid stat` prints it"
                    )));
                }
                Ok(Some(Self::Matches(format!("\"{bare}\""))))
            }
        }
    }

    /// The request header that carries it.
    pub fn header(&self) -> (reqwest::header::HeaderName, String) {
        match self {
            Self::Absent => (reqwest::header::IF_NONE_MATCH, "*".into()),
            Self::Matches(tag) => (reqwest::header::IF_MATCH, tag.clone()),
        }
    }
}

/// The error for a `412`: the condition did not hold, so nothing changed. When the call was
/// sent again after a leader change, the first sending may have been the change that made it
/// fail.
fn not_met(err: CliError, sent_again: bool) -> CliError {
    if sent_again {
        CliError::Api(format!(
            "{err} (the call was sent again after the leader changed: the first sending may \
             have made the change; check with `filegrid stat`)"
        ))
    } else {
        err
    }
}

/// Uploads `local` (or stdin for `-`) to `remote`. A head that does not lead (a standby
/// without `standby_proxy`, reached through a Service or load balancer that picks any head)
/// answers `307` to the leader; the upload is then sent again there, the file re-opened from
/// its start (also when that answer was lost because the head closed the connection while
/// the body was still being sent: the leader is then asked for, once). Stdin cannot be read twice, so an upload from stdin that meets a redirect fails
/// with an error that says so; nothing is stored.
pub async fn put(
    http: &reqwest::Client,
    leader: (String, u64),
    local: &Path,
    remote: &str,
    target: &Target,
    condition: Option<&Condition>,
) -> Result<PutAnswer, CliError> {
    let from_stdin = local == Path::new("-");
    let (base, mut epoch) = leader;
    let base = base.as_str();
    let mut url = file_url(base, remote);
    let mut hops = 0;
    let mut resent = false;
    loop {
        let (body, len) = upload_body(local).await?;
        // Addressed to this leadership: held up and sent again elsewhere, it is refused
        // rather than stored a second time later (see `headers::LEADER_EPOCH`).
        let mut req = http
            .put(&url)
            .header(filegrid_proto::headers::LEADER_EPOCH, epoch)
            .timeout(Duration::from_secs(24 * 3600));
        if let Some((name, value)) = condition.map(Condition::header) {
            req = req.header(name, value);
        }
        if let Some(l) = len {
            req = req.header(reqwest::header::CONTENT_LENGTH, l);
        }
        // A leader that does not answer and is replaced meanwhile can no longer commit the
        // upload (see `failover`): it is sent again to the new leader.
        let sent = tokio::select! {
            r = req.body(body).send() => r,
            (next, newer) = target.deposed(epoch) => {
                let next = file_url(&next, remote);
                if from_stdin {
                    return Err(CliError::Api(format!(
                        "the leader at {url} stopped answering and {next} leads now; an upload \
                         from stdin cannot be sent twice, and it may or may not have been \
                         stored: check with `filegrid stat`"
                    )));
                }
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(CliError::Api(format!(
                        "the leader changed {MAX_REDIRECTS} times during the upload; retry shortly"
                    )));
                }
                tracing::debug!(from = %url, to = %next, "the leader did not answer the upload and was replaced; sending it again to the new leader");
                (url, epoch) = (next, newer);
                continue;
            }
        };
        let resp = match sent {
            Ok(resp) => resp,
            // A head that does not lead answers `307` at once and closes the connection;
            // while the body is still being sent, the answer can be lost with it (a reset or
            // a broken pipe). A file is then sent once more, to the leader the grid names.
            Err(e) if !resent && !e.is_timeout() => {
                resent = true;
                match leader_file_url(http, base, remote).await {
                    Some(next) if next != url && from_stdin => {
                        return Err(stdin_redirected(base, &next));
                    }
                    Some(next) if next != url => {
                        tracing::debug!(from = %url, to = %next, error = %e, "upload cut off; sending it again to the leader");
                        url = next;
                        continue;
                    }
                    _ => return Err(unreachable(&url, &e)),
                }
            }
            Err(e) => return Err(unreachable(&url, &e)),
        };
        let status = resp.status();
        if status == reqwest::StatusCode::TEMPORARY_REDIRECT
            || status == reqwest::StatusCode::PERMANENT_REDIRECT
        {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok());
            let next = redirect_target(&url, location)
                .map_err(|m| CliError::Api(format!("{status} from {url}: {m}")))?;
            if from_stdin {
                return Err(stdin_redirected(base, &next));
            }
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(CliError::Api(format!(
                    "{status}: still redirected after {MAX_REDIRECTS} attempts (last to {next}); \
                     the grid may be electing a leader, retry shortly"
                )));
            }
            tracing::debug!(from = %url, to = %next, "upload redirected to the leader; sending it again");
            url = next;
            continue;
        }
        if !status.is_success() {
            let (code, err) = api_refusal(resp).await;
            if code == Some(ErrorCode::StaleEpoch)
                && let Some((next, newer)) = leader_after_refusal(target, epoch).await
            {
                let next = file_url(&next, remote);
                if from_stdin {
                    return Err(CliError::Api(format!(
                        "leadership changed since the upload started ({next} leads now); an \
                         upload from stdin cannot be sent twice, so nothing was stored: retry"
                    )));
                }
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(err);
                }
                tracing::debug!(from = %url, to = %next, "upload refused as sent to an earlier leadership; sending it to the leader now");
                (url, epoch) = (next, newer);
                continue;
            }
            if code == Some(ErrorCode::PreconditionFailed) {
                return Err(not_met(err, hops > 0 || resent));
            }
            return Err(err);
        }
        return resp
            .json()
            .await
            .map_err(|e| CliError::Api(format!("unexpected answer: {e}")));
    }
}

/// Downloads `remote` to `local` (or stdout for `-`), verifying the whole-file checksum.
/// A file is written under a temporary name and renamed only when complete and verified.
pub async fn get(
    http: &reqwest::Client,
    base: &str,
    remote: &str,
    local: &Path,
) -> Result<u64, CliError> {
    let url = file_url(base, remote);
    let resp = http
        .get(&url)
        .timeout(Duration::from_secs(24 * 3600))
        .send()
        .await
        .map_err(|e| unreachable(&url, &e))?;
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    let expected = resp
        .headers()
        .get("x-filegrid-checksum")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let len = resp.content_length();
    let bar = progress(len, "get");
    let to_stdout = local == Path::new("-");
    let tmp = local.with_file_name(format!(
        ".{}.filegrid-part",
        local
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("download")
    ));
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", tmp.display())))?,
        )
    };
    let mut crc = 0u32;
    let mut total = 0u64;
    let mut stream = resp.bytes_stream();
    let result: Result<(), CliError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                CliError::Api(format!(
                    "download broke off after {total} bytes: {}",
                    super::root_cause(&e)
                ))
            })?;
            crc = crc32c::crc32c_append(crc, &chunk);
            total += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
            out.write_all(&chunk)
                .await
                .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", local.display())))?;
        }
        out.flush()
            .await
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", local.display())))?;
        if let Some(exp) = &expected {
            let got = format!("crc32c:{crc:08x}");
            if *exp != got {
                return Err(CliError::Api(format!(
                    "checksum mismatch: expected {exp}, got {got}"
                )));
            }
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    drop(out);
    if to_stdout {
        return result.map(|()| total);
    }
    match result {
        Ok(()) => {
            tokio::fs::rename(&tmp, local)
                .await
                .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", local.display())))?;
            Ok(total)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

pub async fn stat(http: &reqwest::Client, base: &str, remote: &str) -> Result<FileStat, CliError> {
    let url = file_url(base, remote);
    let resp = http
        .head(&url)
        .send()
        .await
        .map_err(|e| unreachable(&url, &e))?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(CliError::Api(if status == reqwest::StatusCode::NOT_FOUND {
            format!("{status}: {remote} not found")
        } else {
            status.to_string()
        }));
    }
    let h = resp.headers();
    let text = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let num = |k: &str| text(k).parse::<u64>().unwrap_or(0);
    Ok(FileStat {
        path: remote.trim_start_matches('/').to_string(),
        size: num("content-length"),
        checksum: text(headers::CHECKSUM),
        chunks: num(headers::CHUNKS),
        mtime: num(headers::MTIME),
        etag: text("etag"),
    })
}

/// Deletes `remote` on the leader (`leader`: its base URL and epoch). A delete the leader does
/// not answer is sent to the new leader once `target` names one of a newer epoch (see
/// [`super::failover`]); a `404` to that second delete means the first took effect.
pub async fn rm(
    http: &reqwest::Client,
    leader: (String, u64),
    remote: &str,
    target: &Target,
    condition: Option<&Condition>,
) -> Result<(), CliError> {
    let (mut base, mut epoch) = leader;
    let mut resent = false;
    for _ in 0..=MAX_REDIRECTS {
        let url = file_url(&base, remote);
        let mut req = http
            .delete(&url)
            .header(filegrid_proto::headers::LEADER_EPOCH, epoch);
        if let Some((name, value)) = condition.map(Condition::header) {
            req = req.header(name, value);
        }
        let resp = tokio::select! {
            r = req.send() => r.map_err(|e| unreachable(&url, &e))?,
            (next, newer) = target.deposed(epoch) => {
                tracing::debug!(from = %base, to = %next, "the leader did not answer the delete and was replaced; sending it to the new leader");
                (base, epoch, resent) = (next, newer, true);
                continue;
            }
        };
        if resent && resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !resp.status().is_success() {
            let (code, err) = api_refusal(resp).await;
            // Refused as sent to an earlier leadership, the delete changed nothing: it is
            // sent to the leader now. (A `404` there still means the file is gone, but not
            // necessarily by this delete, so it is reported as for any first delete.)
            if code == Some(ErrorCode::StaleEpoch)
                && let Some((next, newer)) = leader_after_refusal(target, epoch).await
            {
                tracing::debug!(from = %base, to = %next, "delete refused as sent to an earlier leadership; sending it to the leader now");
                (base, epoch) = (next, newer);
                continue;
            }
            if code == Some(ErrorCode::PreconditionFailed) {
                return Err(not_met(err, resent));
            }
            return Err(err);
        }
        return Ok(());
    }
    Err(CliError::Api(format!(
        "the leader changed {MAX_REDIRECTS} times during the delete; retry shortly"
    )))
}

/// Every file under `prefix`, following cursors.
pub async fn ls(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
) -> Result<Vec<ListItem>, CliError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = http
            .get(format!("{base}/v1/files"))
            .query(&[("prefix", prefix), ("limit", "1000")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c.as_str())]);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(&format!("{base}/v1/files"), &e))?;
        if !resp.status().is_success() {
            return Err(api_error(resp).await);
        }
        let page: ListPage = resp
            .json()
            .await
            .map_err(|e| CliError::Api(format!("unexpected answer: {e}")))?;
        out.extend(page.files);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

/// Brings a draining or drained server back; answers what it was.
pub async fn recommission(
    http: &reqwest::Client,
    base: &str,
    id: &str,
) -> Result<String, CliError> {
    let url = format!("{base}/v1/cluster/{id}/recommission");
    let resp = http
        .post(&url)
        .send()
        .await
        .map_err(|e| unreachable(&url, &e))?;
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    let answer: filegrid_proto::head::RecommissionAnswer = resp
        .json()
        .await
        .map_err(|e| CliError::Api(format!("unexpected answer: {e}")))?;
    Ok(match answer.was {
        Some(was) => format!("live again (was {was:?})").to_lowercase(),
        None => "live (was not being drained)".into(),
    })
}

pub async fn decommission(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    wait: Option<Duration>,
) -> Result<String, CliError> {
    let url = format!("{base}/v1/cluster/{id}/decommission");
    let resp = http
        .post(&url)
        .send()
        .await
        .map_err(|e| unreachable(&url, &e))?;
    if !resp.status().is_success() {
        return Err(api_error(resp).await);
    }
    let Some(wait) = wait else {
        return Ok("draining".into());
    };
    let deadline = std::time::Instant::now() + wait;
    loop {
        let resp = http
            .get(format!("{base}/v1/cluster"))
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let servers: Vec<ServerView> = resp
            .json()
            .await
            .map_err(|e| CliError::Api(format!("unexpected answer: {e}")))?;
        let state = servers
            .iter()
            .find(|s| s.id.as_str() == id)
            .map(|s| s.state);
        if state == Some(ServerState::Drained) {
            return Ok("drained".into());
        }
        let state = state.map_or("unknown", ServerState::as_str);
        if std::time::Instant::now() > deadline {
            return Err(CliError::Api(format!(
                "{id} is still {state} after {}",
                humantime::format_duration(wait)
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{CliError, Condition, redirect_target};

    #[test]
    fn conditions_from_the_flags() {
        assert_eq!(Condition::of(false, None).unwrap(), None);
        assert_eq!(Condition::of(true, None).unwrap(), Some(Condition::Absent));
        let quoted = Some(Condition::Matches("\"abc\"".into()));
        assert_eq!(Condition::of(false, Some("abc")).unwrap(), quoted);
        assert_eq!(Condition::of(false, Some("\"abc\"")).unwrap(), quoted);
        for bad in ["", "\"\"", "*", "a,b", "a\"b", "é"] {
            assert!(
                matches!(Condition::of(false, Some(bad)), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Condition::of(true, Some("abc")),
            Err(CliError::Usage(_))
        ));
        let (name, value) = Condition::Absent.header();
        assert_eq!((name.as_str(), value.as_str()), ("if-none-match", "*"));
        let (name, value) = Condition::Matches("\"abc\"".into()).header();
        assert_eq!((name.as_str(), value.as_str()), ("if-match", "\"abc\""));
    }

    #[test]
    fn a_redirect_goes_to_its_location_resolved_against_the_request() {
        assert_eq!(
            redirect_target(
                "http://svc:9669/v1/files/a",
                Some("http://10.0.0.7:9669/v1/files/a")
            )
            .as_deref(),
            Ok("http://10.0.0.7:9669/v1/files/a")
        );
        assert_eq!(
            redirect_target("https://svc:9669/v1/files/a", Some("/v1/files/b")).as_deref(),
            Ok("https://svc:9669/v1/files/b")
        );
    }

    #[test]
    fn a_redirect_without_a_usable_location_is_refused() {
        assert!(redirect_target("http://svc/v1/files/a", None).is_err());
        assert!(redirect_target("http://svc/v1/files/a", Some("file:///etc/passwd")).is_err());
        assert!(redirect_target("http://svc/v1/files/a", Some("http://[::1")).is_err());
    }
}
