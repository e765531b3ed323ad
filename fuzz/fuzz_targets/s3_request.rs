//! Any HTTP request through the S3 protocol layer FileGrid serves with (s3s with FileGrid's
//! key lookup): SigV4 headers and presigned query strings, `aws-chunked` bodies and XML
//! bodies (DeleteObjects, CompleteMultipartUpload, ...) are parsed, and nothing panics.
//! The operations behind it answer NotImplemented, so only parsing is exercised.
#![no_main]

use std::sync::OnceLock;

use filegrid_node::auth::credentials::{Credentials, LiveCredentials};
use filegrid_node::s3::auth::Keys;
use libfuzzer_sys::fuzz_target;
use s3s::service::{S3Service, S3ServiceBuilder};

struct Nothing;

#[async_trait::async_trait]
impl s3s::S3 for Nothing {}

/// Lets every request through, so anonymous requests reach the body parsers.
struct Open;

#[async_trait::async_trait]
impl s3s::access::S3Access for Open {
    async fn check(&self, _cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        Ok(())
    }
}

fn service() -> &'static S3Service {
    static S: OnceLock<S3Service> = OnceLock::new();
    S.get_or_init(|| {
        let creds = Credentials::parse(
            "[[principal]]\nname = \"f\"\naccess_key = \"FUZZKEY\"\nsecret = \"fuzz-secret-0123456789\"\nrole = \"admin\"\n",
        )
        .expect("a valid credentials file");
        let mut b = S3ServiceBuilder::new(Nothing);
        b.set_auth(Keys {
            credentials: LiveCredentials::fixed(creds),
        });
        b.set_access(Open);
        b.build()
    })
}

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

fuzz_target!(|data: &[u8]| {
    // method byte, then `target\n`, then `name: value\n` lines up to an empty line, then the body.
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let text_end = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(rest.len());
    let (head, body) = rest.split_at(text_end);
    let body = body.get(2..).unwrap_or_default().to_vec();
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let mut lines = head.split('\n');
    let target = lines.next().unwrap_or("/");
    let mut req = axum::http::Request::builder()
        .method(METHODS[m as usize % METHODS.len()])
        .uri(target);
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = req.body(http_body_util::Full::new(axum::body::Bytes::from(body))) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut svc = service().clone();
    let _ = rt.block_on(tower_call(&mut svc, req));
});

async fn tower_call(
    svc: &mut S3Service,
    req: axum::http::Request<http_body_util::Full<axum::body::Bytes>>,
) -> Result<s3s::HttpResponse, s3s::HttpError> {
    use tower::Service;
    svc.call(req).await
}
