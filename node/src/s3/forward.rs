//! Forwarding an S3 request from a standby to the leader exactly as it came: the request
//! target is sent byte for byte (an HTTP client library would normalize `a/../b` or
//! re-encode the path, and the client's signature covers both the path and `Host`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::head::leader_only::{FORWARDED_BY_HEADER, without_hop_by_hop};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the request target cannot be forwarded")]
    Target,
}

/// Sends requests on to the leader's S3 listener, one connection per request.
#[derive(Clone)]
pub struct Forwarder {
    /// TLS for leaders that speak it.
    pub tls: TlsConnector,
}

impl Forwarder {
    /// Sends `req` to `host:port`, marked as forwarded by `me`, and streams the answer back.
    pub async fn send(
        &self,
        host: &str,
        port: u16,
        tls: bool,
        me: &str,
        req: Request,
    ) -> Result<Response, ForwardError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| ForwardError::Connect(format!("{host}:{port} timed out")))?
            .map_err(|e| ForwardError::Connect(format!("{host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        // A call sent into a short cut of the leader goes again soon after it heals.
        crate::http::tcp::quick_retransmits(&tcp);
        let (parts, body) = req.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut headers = without_hop_by_hop(&parts.headers);
        if let Some(h) = parts.headers.get(header::HOST) {
            headers.insert(header::HOST, h.clone());
        }
        if let Ok(v) = HeaderValue::from_str(me) {
            headers.insert(FORWARDED_BY_HEADER, v);
        }
        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = target.parse::<Uri>().map_err(|_| ForwardError::Target)?;
        *out.headers_mut() = headers;
        let answer = if tls {
            let name = rustls_pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| ForwardError::Tls(e.to_string()))?;
            let stream = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| ForwardError::Tls(e.to_string()))?;
            exchange(TokioIo::new(stream), out).await?
        } else {
            exchange(TokioIo::new(tcp), out).await?
        };
        let (mut parts, body) = answer.into_parts();
        parts.headers = without_hop_by_hop(&parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }
}

async fn exchange<IO>(
    io: IO,
    req: Request,
) -> Result<hyper::Response<hyper::body::Incoming>, ForwardError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // The connection is driven until the answer's body has been read (or dropped).
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "forwarded S3 connection ended with an error");
        }
    });
    Ok(sender.send_request(req).await?)
}
