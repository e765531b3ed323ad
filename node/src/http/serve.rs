//! The accept loop every listener runs: HTTP/1.1 by hyper over TCP or TLS, with the
//! [`ListenerLimits`] enforced per listener.
//!
//! - At most `max_connections` connections are served at once. One more is accepted and
//!   answered `503` with `Retry-After` and a JSON error body, then closed; at most
//!   [`REJECTING_AT_ONCE`] such answers are in progress, and past that an extra connection is
//!   closed at once without an answer, so a flood costs a bounded number of descriptors. Every
//!   refused connection counts in `filegrid_connections_refused_total{listener}`.
//! - A client that started a request head and did not finish it within
//!   `header_read_timeout` is answered `408` (JSON body) and closed. The TLS handshake has the
//!   same time.
//! - A connection with no request in progress and nothing received for `idle_timeout` is
//!   closed.
//! - A request head (request line and headers) over `max_header_bytes` is answered `431`
//!   with a JSON error body and the connection closed. hyper detects it and writes a bare
//!   `431`; the connection's IO ([`Tracked`]) puts FileGrid's answer in its place.
//!
//! Shutdown stops accepting, lets each connection finish the request it is serving (idle
//! ones close at once) and returns when all are closed.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use filegrid_proto::{ErrorBody, ErrorCode};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::tls::ServerTls;
use crate::config::ListenerLimits;

/// Over-cap connections answered at once; more are closed without an answer.
pub const REJECTING_AT_ONCE: usize = 64;
/// Longest an over-cap answer may take (TLS handshake included).
const REJECT_WITHIN: Duration = Duration::from_secs(2);
/// The read buffer hyper would use by default; never made smaller (it also carries bodies).
const HYPER_DEFAULT_BUF: usize = 8192 + 4096 * 100;

/// How a listener serves: its limits and, when TLS is on, the process's certificates.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    pub limits: ListenerLimits,
    pub tls: Option<Arc<ServerTls>>,
}

/// Serves `router` on `listener` until `shutdown` completes, then drains the connections.
pub async fn serve_router<F>(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: F,
) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let limits = options.limits;
    let refused = crate::metrics::connections_refused().with_label_values(&[&listener
        .local_addr()
        .map_or_else(|_| "unknown".to_string(), |a| a.to_string())]);
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let rejecting = Arc::new(Semaphore::new(REJECTING_AT_ONCE));
    let closing = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut over_cap = Warned::default();
    let mut accept_errors = Warned::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: wait a little rather than spin.
                    accept_errors.warn(|n| tracing::warn!(error = %e, times = n, "cannot accept a connection"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // No Nagle: answers are written as head then body, and waiting for the peer's
        // delayed ACK between them costs 40 ms per small request.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // Answers lost in a short network cut are sent again soon after it heals.
        super::tcp::quick_retransmits(&stream);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let router = router.clone();
                let tls = options.tls.clone();
                let closing = closing.clone();
                tracker.spawn(async move {
                    serve_connection(stream, router, limits, tls, closing).await;
                    drop(permit);
                });
            }
            Err(_) => {
                refused.inc();
                over_cap.warn(|n| {
                    tracing::warn!(max_connections = limits.max_connections, refused = n, %peer,
                        "connection limit reached; refusing connections with 503")
                });
                if let Ok(slot) = rejecting.clone().try_acquire_owned() {
                    let tls = options.tls.clone();
                    tracker.spawn(async move {
                        let _ = tokio::time::timeout(REJECT_WITHIN, reject(stream, tls)).await;
                        drop(slot);
                    });
                }
                // else: dropped, which closes it.
            }
        }
    }
    drop(listener);
    closing.cancel();
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// Errors of `accept` that concern only the connection being accepted.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    )
}

/// Logs a recurring event at most every 10 s, with the count since the last log.
#[derive(Default)]
struct Warned {
    last: Option<Instant>,
    count: u64,
}

impl Warned {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        self.count += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            log(self.count);
            self.last = Some(Instant::now());
            self.count = 0;
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ListenerLimits,
    tls: Option<Arc<ServerTls>>,
    closing: CancellationToken,
) {
    let Some(tls) = tls else {
        return drive(stream, router, limits, closing).await;
    };
    let handshake = async {
        if !starts_tls(&stream).await? {
            answer_close(
                stream,
                400,
                "Bad Request",
                &[],
                ErrorCode::BadRequest,
                "this port speaks TLS: use https://",
            )
            .await;
            return Ok(None);
        }
        tls.acceptor().accept(stream).await.map(Some)
    };
    let accepted = tokio::select! {
        r = tokio::time::timeout(limits.header_read_timeout, handshake) => r,
        _ = closing.cancelled() => return,
    };
    match accepted {
        Ok(Ok(Some(mut stream))) => {
            stream.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
            drive(stream, router, limits, closing).await
        }
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake not done within header_read_timeout"),
    }
}

/// Bytes of a large answer encrypted per write to the socket (rustls's default is 64 KiB).
const TLS_SEND_BUFFER: usize = 1 << 20;

/// Whether the client's first byte is a TLS handshake record (a plain HTTP request starts
/// with a letter).
async fn starts_tls(stream: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; 1];
    let n = stream.peek(&mut first).await?;
    Ok(n == 0 || first[0] == 0x16)
}

/// Serves HTTP/1.1 on one connection, enforcing the header and idle timeouts.
async fn drive<S>(io: S, router: Router, limits: ListenerLimits, closing: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState::new());
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::begin(state.clone());
            let router = router.clone();
            async move {
                let resp = match router.oneshot(req.map(Body::new)).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(resp.map(|body| Guarded {
                    inner: body,
                    _guard: guard,
                }))
            }
        })
    };
    let header_bytes = usize::try_from(limits.max_header_bytes).unwrap_or(usize::MAX);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .header_read_timeout(None)
        .max_header_size(header_bytes)
        .max_buf_size(header_bytes.max(HYPER_DEFAULT_BUF));
    let tracked = Tracked {
        inner: io,
        state: state.clone(),
        replaced: None,
        linger: None,
    };
    let mut conn = builder.serve_connection(TokioIo::new(tracked), service);
    let mut shutting_down = false;
    loop {
        let (deadline, waiting_for_head) = state.deadline(&limits);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = closing.cancelled(), if !shutting_down => {
                state.closing_quietly.store(true, Ordering::Release);
                Pin::new(&mut conn).graceful_shutdown();
                shutting_down = true;
            }
            _ = state.changed.notified() => {}
            _ = sleep => {
                // Look again: a request may have started meanwhile.
                let (deadline, head) = state.deadline(&limits);
                if deadline.is_none_or(|d| d > Instant::now()) || head != waiting_for_head {
                    continue;
                }
                if head {
                    let io = conn.into_parts().io.into_inner().inner;
                    answer_close(io, 408, "Request Timeout", &[], ErrorCode::BadRequest,
                        "the request head was not received within header_read_timeout").await;
                    return;
                }
                if shutting_down {
                    return;
                }
                // Idle: closes the connection (there is no request to finish).
                state.closing_quietly.store(true, Ordering::Release);
                Pin::new(&mut conn).graceful_shutdown();
                shutting_down = true;
            }
        }
    }
}

/// What the watchdog of one connection knows, updated by its IO and its requests.
struct ConnState {
    origin: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `origin` since which no request is in progress.
    idle_since: AtomicU64,
    /// Milliseconds from `origin` of the first byte received while idle; `NONE` when none.
    head_started: AtomicU64,
    changed: Notify,
    /// The server ends the connection as idle or to stop (no linger on close).
    closing_quietly: AtomicBool,
}

const NONE: u64 = u64::MAX;

impl ConnState {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            changed: Notify::new(),
            closing_quietly: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// When the connection is to be cut off, and whether that is for an unfinished head
    /// (else for idleness); no deadline while a request is in progress.
    fn deadline(&self, limits: &ListenerLimits) -> (Option<Instant>, bool) {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return (None, false);
        }
        match self.head_started.load(Ordering::Acquire) {
            NONE => (
                Some(self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout),
                false,
            ),
            started => (Some(self.at(started) + limits.header_read_timeout), true),
        }
    }

    /// Whether a request head is being received and no request is in progress: what hyper
    /// writes then is its own answer to a head it refused.
    fn refusing_head(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) != NONE
    }

    fn received(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self
                .head_started
                .compare_exchange(NONE, self.now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }
}

/// A request in progress on a connection, from its head until its answer's body is done.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn begin(state: Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        state.head_started.store(NONE, Ordering::Release);
        state.changed.notify_one();
        Self(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        s.idle_since.store(s.now_ms(), Ordering::Release);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
        s.changed.notify_one();
    }
}

/// An answer's body that keeps its request counted as in progress until it is done.
struct Guarded {
    inner: Body,
    _guard: InFlight,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's IO, noting when bytes arrive, putting FileGrid's `431` answer (with
/// its JSON body) in place of hyper's bare one, and closing it with a linger.
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
    /// FileGrid's answer written in place of hyper's, and how much of it is written; what
    /// hyper writes afterwards is dropped.
    replaced: Option<(Vec<u8>, usize)>,
    /// Set once the write side is shut down: the drain that follows.
    linger: Option<Linger>,
}

/// How long a connection closed by the server goes on reading (and discarding) what the
/// client still sends, and how much of it at most. An answer given before a request's body
/// was read (a refusal, say `409 stale_epoch` to an upload) ends the connection; closing the
/// socket while the client is still sending makes the kernel reset the connection, and a
/// reset destroys the answer in the client's receive buffer before the client reads it, so
/// the client sees "connection reset" instead of the refusal. Reading until the client
/// stops, for a bounded time, lets the answer through (a "lingering close", the staged close
/// RFC 9112 section 9.6 asks of servers).
const LINGER_FOR: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 64 << 20;

struct Linger {
    until: Pin<Box<tokio::time::Sleep>>,
    drained: u64,
}

/// How hyper's answer to a request head over `max_header_bytes` starts.
const HYPER_431: &[u8] = b"HTTP/1.1 431 ";

/// FileGrid's answer to a request head over `max_header_bytes`.
fn too_large_answer() -> Vec<u8> {
    error_answer(
        431,
        "Request Header Fields Too Large",
        &[],
        ErrorCode::BadRequest,
        "the request head is larger than max_header_bytes",
    )
}

impl<S: AsyncWrite + Unpin> Tracked<S> {
    /// Writes what is left of the replacement answer.
    fn poll_replaced(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some((answer, written)) = &mut self.replaced else {
            return Poll::Ready(Ok(()));
        };
        while *written < answer.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `len` bytes hyper writes while the replacement is (or starts being) written in
    /// their place.
    fn swallow(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<std::io::Result<usize>> {
        if self.replaced.is_none() {
            self.replaced = Some((too_large_answer(), 0));
        }
        match self.poll_replaced(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // Pending: flush and shutdown finish writing it.
            _ => Poll::Ready(Ok(len)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.received();
        }
        r
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Tracked<S> {
    /// Reads and discards what the client still sends until it closes its side, stops for
    /// [`LINGER_FOR`], or sent [`LINGER_BYTES`]; the connection may then be closed.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Tracked { inner, linger, .. } = self;
        let Some(l) = linger else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if l.drained >= LINGER_BYTES || l.until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => l.drained += buf.filled().len() as u64,
                // Reset or broken: nothing left to protect.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replaced.is_some() || (buf.starts_with(HYPER_431) && this.state.refusing_head()) {
            return this.swallow(cx, buf.len());
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match this.poll_replaced(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.inner).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            match this.poll_replaced(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            match Pin::new(&mut this.inner).poll_shutdown(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            // A connection the server closes as idle, or to stop, has no request data on
            // its way: no linger.
            if this.state.closing_quietly.load(Ordering::Acquire) {
                return Poll::Ready(Ok(()));
            }
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(LINGER_FOR)),
                drained: 0,
            });
        }
        this.poll_linger(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.replaced.is_some()
            || (first.is_some_and(|b| b.starts_with(HYPER_431)) && this.state.refusing_head())
        {
            let len = bufs.iter().map(|b| b.len()).sum();
            return this.swallow(cx, len);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Answers an over-cap connection `503` with `Retry-After` (through TLS when on).
async fn reject(stream: TcpStream, tls: Option<Arc<ServerTls>>) {
    const MESSAGE: &str = "too many connections to this server; retry shortly";
    let retry = [("Retry-After", "1")];
    match tls {
        None => {
            answer_close(
                stream,
                503,
                "Service Unavailable",
                &retry,
                ErrorCode::Unavailable,
                MESSAGE,
            )
            .await
        }
        Some(tls) => {
            if let Ok(s) = tls.acceptor().accept(stream).await {
                answer_close(
                    s,
                    503,
                    "Service Unavailable",
                    &retry,
                    ErrorCode::Unavailable,
                    MESSAGE,
                )
                .await
            }
        }
    }
}

/// The bytes of a complete answer with a JSON [`ErrorBody`] that closes the connection.
pub fn error_answer(
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    code: ErrorCode,
    message: &str,
) -> Vec<u8> {
    let body = serde_json::to_vec(&ErrorBody::new(code, message)).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Writes an error answer and closes. What the client already sent of its request is read
/// first (briefly), so that closing does not reset the connection before the client reads
/// the answer.
async fn answer_close<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    code: ErrorCode,
    message: &str,
) {
    let mut buf = vec![0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        let mut seen = Vec::new();
        while seen.len() < 64 << 10 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let answer = error_answer(status, reason, headers, code, message);
    if io.write_all(&answer).await.is_err() {
        return;
    }
    let _ = io.flush().await;
    let _ = io.shutdown().await;
    // Let the client read the answer before the socket goes away.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}
