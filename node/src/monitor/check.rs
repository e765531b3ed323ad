//! One health check of a head: a TCP connect, then `GET /health` over that same connection,
//! both within the timeout.

use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The outcome of one check.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    pub latency: Duration,
    /// `None` when healthy; otherwise which step failed and why.
    pub error: Option<String>,
}

impl CheckOutcome {
    pub fn healthy(&self) -> bool {
        self.error.is_none()
    }
}

/// Checks `host:port` within `timeout`.
pub async fn check(host: &str, port: u16, timeout: Duration) -> CheckOutcome {
    let start = Instant::now();
    let error = match tokio::time::timeout(timeout, probe(host, port)).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    };
    CheckOutcome {
        latency: start.elapsed(),
        error,
    }
}

async fn probe(host: &str, port: u16) -> Result<(), String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("tcp connect to {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get("/health")
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("http request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("http /health: {e}"));
    driver.abort();
    let status = resp?.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("http /health answered {status}"))
    }
}
