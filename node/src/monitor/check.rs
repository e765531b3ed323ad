//! One health check of a head: a TCP connect (and a TLS handshake when the head speaks TLS),
//! then `GET /health` over that same connection, all within the timeout.

use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

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

/// Checks `host:port` within `timeout`, over TLS when `tls` is given.
pub async fn check(
    host: &str,
    port: u16,
    tls: Option<&TlsConnector>,
    timeout: Duration,
) -> CheckOutcome {
    let start = Instant::now();
    let error = match tokio::time::timeout(timeout, probe(host, port, tls)).await {
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

async fn probe(host: &str, port: u16, tls: Option<&TlsConnector>) -> Result<(), String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("tcp connect to {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    match tls {
        None => get_health(host, port, stream).await,
        Some(connector) => {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("tls: {host} is not a server name: {e}"))?;
            let stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("tls handshake with {host}:{port}: {e}"))?;
            get_health(host, port, stream).await
        }
    }
}

async fn get_health<S>(host: &str, port: u16, stream: S) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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
