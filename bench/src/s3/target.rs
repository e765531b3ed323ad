//! Where the workloads go: FileGrid's native API, or an S3 endpoint (FileGrid's or a peer's)
//! through presigned URLs, with the same HTTP client.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::error::BenchError;

/// How long a presigned URL stays valid.
const VALID: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub enum Endpoint {
    Native {
        http: reqwest::Client,
        base: String,
        auth: String,
    },
    S3 {
        http: reqwest::Client,
        name: &'static str,
        bucket: Bucket,
        creds: Credentials,
    },
}

impl Endpoint {
    pub fn native(http: reqwest::Client, base: &str, auth: &str) -> Self {
        Endpoint::Native {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth: auth.to_string(),
        }
    }

    pub fn s3(
        http: reqwest::Client,
        name: &'static str,
        url: &str,
        region: &str,
        key: &str,
        secret: &str,
        bucket: &str,
    ) -> Result<Self, BenchError> {
        let endpoint = url
            .parse()
            .map_err(|e| BenchError::Setup(format!("S3 endpoint {url}: {e}")))?;
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            bucket.to_string(),
            region.to_string(),
        )
        .map_err(|e| BenchError::Setup(format!("S3 bucket: {e}")))?;
        Ok(Endpoint::S3 {
            http,
            name,
            bucket,
            creds: Credentials::new(key, secret),
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Endpoint::Native { .. } => "native",
            Endpoint::S3 { name, .. } => name,
        }
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> BenchError {
        BenchError::Failed(format!("{}: {what}: {e}", self.name()))
    }

    /// Creates the bucket the S3 workloads use.
    pub async fn prepare(&self) -> Result<(), BenchError> {
        let Endpoint::S3 {
            http,
            bucket,
            creds,
            ..
        } = self
        else {
            return Ok(());
        };
        let url = bucket.create_bucket(creds).sign(VALID);
        let resp = http
            .put(url)
            .send()
            .await
            .map_err(|e| self.failed("create bucket", e))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() || body.contains("BucketAlreadyOwnedByYou") {
            Ok(())
        } else {
            Err(self.failed("create bucket", format!("{status}: {body}")))
        }
    }

    fn put_request(&self, key: &str) -> reqwest::RequestBuilder {
        match self {
            Endpoint::Native { http, base, auth } => http
                .put(format!("{base}/v1/files/bench/{key}"))
                .header(AUTHORIZATION, auth),
            Endpoint::S3 {
                http,
                bucket,
                creds,
                ..
            } => http.put(bucket.put_object(Some(creds), key).sign(VALID)),
        }
    }

    fn get_request(&self, key: &str) -> reqwest::RequestBuilder {
        match self {
            Endpoint::Native { http, base, auth } => http
                .get(format!("{base}/v1/files/bench/{key}"))
                .header(AUTHORIZATION, auth),
            Endpoint::S3 {
                http,
                bucket,
                creds,
                ..
            } => http.get(bucket.get_object(Some(creds), key).sign(VALID)),
        }
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), BenchError> {
        let resp = self
            .put_request(key)
            .body(body)
            .send()
            .await
            .map_err(|e| self.failed(key, e))?;
        check(self, key, resp).await
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, BenchError> {
        let resp = self
            .get_request(key)
            .send()
            .await
            .map_err(|e| self.failed(key, e))?;
        if !resp.status().is_success() {
            return Err(self.failed(key, resp.status()));
        }
        resp.bytes().await.map_err(|e| self.failed(key, e))
    }

    /// Puts the file at `path` (of `size` bytes), streamed from disk.
    pub async fn put_file(&self, key: &str, path: &Path, size: u64) -> Result<(), BenchError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| self.failed(&path.display().to_string(), e))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        let resp = self
            .put_request(key)
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| self.failed(key, e))?;
        check(self, key, resp).await
    }

    /// Gets `key`, streamed and thrown away; the number of bytes read.
    pub async fn get_len(&self, key: &str) -> Result<u64, BenchError> {
        let resp = self
            .get_request(key)
            .send()
            .await
            .map_err(|e| self.failed(key, e))?;
        if !resp.status().is_success() {
            return Err(self.failed(key, resp.status()));
        }
        let mut n = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            n += chunk.map_err(|e| self.failed(key, e))?.len() as u64;
        }
        Ok(n)
    }
}

async fn check(e: &Endpoint, key: &str, resp: reqwest::Response) -> Result<(), BenchError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    Err(e.failed(key, format!("{status}: {body}")))
}
