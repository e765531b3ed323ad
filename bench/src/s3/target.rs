//! Where the workloads go: FileGrid's native API, or an S3 endpoint (FileGrid's or a peer's)
//! through presigned URLs, with the same HTTP client.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::Method;
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

    /// A `PUT`, `GET` or `DELETE` of object `key`: the native file, or a presigned S3 URL.
    fn request(&self, method: Method, key: &str) -> reqwest::RequestBuilder {
        match self {
            Endpoint::Native { http, base, auth } => http
                .request(method, format!("{base}/v1/files/bench/{key}"))
                .header(AUTHORIZATION, auth),
            Endpoint::S3 {
                http,
                bucket,
                creds,
                ..
            } => {
                let creds = Some(creds);
                let url = match method {
                    Method::PUT => bucket.put_object(creds, key).sign(VALID),
                    Method::DELETE => bucket.delete_object(creds, key).sign(VALID),
                    _ => bucket.get_object(creds, key).sign(VALID),
                };
                http.request(method, url)
            }
        }
    }

    fn put_request(&self, key: &str) -> reqwest::RequestBuilder {
        self.request(Method::PUT, key)
    }

    fn get_request(&self, key: &str) -> reqwest::RequestBuilder {
        self.request(Method::GET, key)
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

    /// Puts the file at `path` the way S3 clients send a large file: a multipart upload of
    /// `part_size` parts, `concurrency` at a time (aws-cli: 8 MiB parts, 10 at a time). The
    /// native API has no multipart upload: it puts the file in one stream.
    pub async fn put_file_multipart(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        part_size: u64,
        concurrency: usize,
    ) -> Result<(), BenchError> {
        let Endpoint::S3 {
            http,
            bucket,
            creds,
            ..
        } = self
        else {
            return self.put_file(key, path, size).await;
        };
        let url = bucket.create_multipart_upload(Some(creds), key).sign(VALID);
        let resp = http
            .post(url)
            .send()
            .await
            .map_err(|e| self.failed(key, e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.failed(key, e))?;
        if !status.is_success() {
            return Err(self.failed(key, format!("create multipart upload: {status}: {text}")));
        }
        let created = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map_err(|e| self.failed(key, format!("create multipart upload answer: {e}")))?;
        let upload_id = created.upload_id().to_string();
        let parts = size.div_ceil(part_size).max(1);
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (e, next, key, upload_id, path) = (
                self.clone(),
                next.clone(),
                key.to_string(),
                upload_id.clone(),
                path.to_path_buf(),
            );
            tasks.spawn(async move {
                let mut etags = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= parts {
                        return Ok::<_, BenchError>(etags);
                    }
                    let offset = i * part_size;
                    let len = part_size.min(size - offset.min(size));
                    let body = read_at(&path, offset, len)
                        .await
                        .map_err(|err| e.failed(&key, err))?;
                    let etag = e.upload_part(&key, &upload_id, i + 1, body).await?;
                    etags.push((i, etag));
                }
            });
        }
        let mut etags = Vec::new();
        while let Some(r) = tasks.join_next().await {
            etags.extend(r.map_err(|e| BenchError::Failed(format!("part task: {e}")))??);
        }
        etags.sort();
        let action = bucket.complete_multipart_upload(
            Some(creds),
            key,
            &upload_id,
            etags.iter().map(|(_, t)| t.as_str()),
        );
        let url = action.sign(VALID);
        let resp = http
            .post(url)
            .body(action.body())
            .send()
            .await
            .map_err(|e| self.failed(key, e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.failed(key, e))?;
        // CompleteMultipartUpload may answer 200 with an error in the body.
        if !status.is_success() || text.contains("<Error>") {
            return Err(self.failed(key, format!("complete multipart upload: {status}: {text}")));
        }
        Ok(())
    }

    /// Uploads one part; its ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u64,
        body: Bytes,
    ) -> Result<String, BenchError> {
        let Endpoint::S3 {
            http,
            bucket,
            creds,
            ..
        } = self
        else {
            return Err(self.failed(key, "the native API has no parts"));
        };
        let number = u16::try_from(number).map_err(|_| self.failed(key, "over 10,000 parts"))?;
        let url = bucket
            .upload_part(Some(creds), key, number, upload_id)
            .sign(VALID);
        let resp = http
            .put(url)
            .body(body)
            .send()
            .await
            .map_err(|e| self.failed(key, e))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(self.failed(key, format!("part {number}: {status}: {text}")));
        }
        resp.headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| self.failed(key, format!("part {number}: no ETag")))
    }

    /// Deletes `key` (untimed clean-up, so runs of large objects do not fill the disk).
    pub async fn delete(&self, key: &str) -> Result<(), BenchError> {
        let resp = self
            .request(Method::DELETE, key)
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

/// `len` bytes of the file at `path` from `offset`.
async fn read_at(path: &Path, offset: u64, len: u64) -> std::io::Result<Bytes> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).await?;
    Ok(Bytes::from(buf))
}
