//! The chunk HTTP API over real sockets on 127.0.0.1: round trips, the replica pipeline,
//! epoch fencing, corruption, full disks, malformed uploads and range reads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use filegrid_node::chunk::{ChunkId, ChunkStore, StoreConfig};
use filegrid_node::cluster::{self, ApiOptions, EpochFence};
use filegrid_proto::chunk::{
    DeleteRequest, DeleteResponse, ListResponse, MAX_DELETE_BATCH, PutResponse, ReplicateRequest,
};
use filegrid_proto::{ErrorBody, ErrorCode, headers};
use prometheus::Registry;
use rand::RngCore;
use reqwest::StatusCode;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const DEADLINE: Duration = Duration::from_secs(10);

/// A cluster server's chunk API on a loopback port with its own data directory.
struct Server {
    addr: String,
    store: Arc<ChunkStore>,
    dir: TempDir,
    registry: Registry,
    readiness: cluster::Readiness,
    _stop: oneshot::Sender<()>,
}

impl Server {
    /// A server whose ZooKeeper says epoch 1.
    async fn start() -> Self {
        Self::start_with(None, EpochFence::new(1)).await
    }

    async fn start_with(capacity: Option<u64>, fence: EpochFence) -> Self {
        Self::start_full(capacity, fence, Duration::from_secs(5)).await
    }

    async fn start_full(
        capacity: Option<u64>,
        fence: EpochFence,
        downstream_timeout: Duration,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(StoreConfig {
            data_dir: dir.path().to_path_buf(),
            capacity,
        })
        .await
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let registry = Registry::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let mut options = ApiOptions::new(addr.clone());
        options.downstream_timeout = downstream_timeout;
        options.epoch_wait = EPOCH_WAIT;
        fences().insert(addr.clone(), fence.clone());
        let readiness = options.readiness.clone();
        tokio::spawn(cluster::serve(
            listener,
            store.clone(),
            fence,
            registry.clone(),
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            store,
            dir,
            registry,
            readiness,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn chunk_file(&self, id: &str) -> std::path::PathBuf {
        self.dir.path().join("chunks").join(id)
    }

    /// Names of all files in the chunk directory, temp files included.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("chunks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Current value of a counter or gauge, 0 if it has no sample yet.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        for family in self.registry.gather() {
            if family.name() != name {
                continue;
            }
            for m in family.get_metric() {
                let matches = labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                });
                if matches {
                    return if m.counter.is_some() {
                        m.get_counter().value()
                    } else {
                        m.get_gauge().value()
                    };
                }
            }
        }
        0.0
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

/// How long a request with an epoch ZooKeeper has not confirmed waits.
const EPOCH_WAIT: Duration = Duration::from_millis(300);

/// Each test server's epoch fence by address: what the server's ZooKeeper follower feeds.
fn fences() -> std::sync::MutexGuard<'static, std::collections::HashMap<String, EpochFence>> {
    static FENCES: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, EpochFence>>,
    > = std::sync::OnceLock::new();
    FENCES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// What ZooKeeper tells the servers at `addrs`: epoch `epoch` began.
fn zk_says(addrs: &[&str], epoch: u64) {
    let fences = fences();
    for a in addrs {
        if let Some(f) = fences.get(*a) {
            f.observe(epoch);
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn put(
    server: &Server,
    id: &str,
    epoch: u64,
    pipeline: &[&str],
    data: Vec<u8>,
) -> reqwest::Response {
    // The leader that stamps `epoch` has been elected: ZooKeeper says so to every server.
    let mut all = vec![server.addr.as_str()];
    all.extend_from_slice(pipeline);
    zk_says(&all, epoch);
    client()
        .put(server.url(&format!("/v1/chunks/{id}")))
        .header(headers::EPOCH, epoch)
        .header(headers::PIPELINE, pipeline.join(","))
        .body(data)
        .send()
        .await
        .unwrap()
}

async fn get(server: &Server, id: &str) -> reqwest::Response {
    client()
        .get(server.url(&format!("/v1/chunks/{id}")))
        .send()
        .await
        .unwrap()
}

async fn error_code(resp: reqwest::Response) -> ErrorCode {
    let body: ErrorBody = resp.json().await.unwrap();
    assert!(!body.message.is_empty(), "{body:?}");
    body.code
}

/// The body of a replicate request.
fn replicate(targets: &[&str], epoch: u64) -> ReplicateRequest {
    zk_says(targets, epoch);
    ReplicateRequest {
        targets: targets.iter().map(|t| t.to_string()).collect(),
        epoch,
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An address nobody listens on.
async fn dead_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn round_trip_random_contents() {
    let s = Server::start().await;
    for (i, len) in [0usize, 1, 65_537, 3 * 1024 * 1024 + 7, 9 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let id = format!("file-{i}-0");
        let data = random_bytes(len);
        let resp = put(&s, &id, 1, &[], data.clone()).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let stored: PutResponse = resp.json().await.unwrap();
        assert_eq!(stored.len, len as u64);
        assert_eq!(stored.stored, vec![s.addr.clone()]);
        assert!(stored.failed.is_empty());

        let resp = get(&s, &id).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[headers::CHECKSUM].to_str().unwrap(),
            stored.checksum
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(blake3::hash(&body), blake3::hash(&data), "size {len}");

        let head = client()
            .head(s.url(&format!("/v1/chunks/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()["content-length"], len.to_string().as_str());
        assert_eq!(head.headers()[headers::CHECKSUM], stored.checksum.as_str());
    }

    let list: ListResponse = client()
        .get(s.url("/v1/chunks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chunks = &list.chunks;
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[4].id, "file-4-0");
    assert_eq!(chunks[4].len, 9 * 1024 * 1024);
    assert_eq!(list.usage.chunks, 5);
    assert_eq!(s.files().len(), 5, "no temp files left: {:?}", s.files());
    assert_eq!(
        s.metric(
            "filegrid_chunk_requests_total",
            &[("op", "put"), ("code", "201")]
        ),
        5.0
    );
    assert_eq!(s.metric("filegrid_chunks_stored", &[]), 5.0);

    // Delete is fenced and durable.
    let resp = client()
        .delete(s.url("/v1/chunks/file-1-0"))
        .header(headers::EPOCH, 1)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&s, "file-1-0").await.status(), StatusCode::NOT_FOUND);
    assert!(!s.chunk_file("file-1-0").exists());
    assert_eq!(s.store.list().len(), 4);
}

#[tokio::test]
async fn pipeline_of_three_stores_three_copies() {
    let (a, b, c) = (
        Server::start().await,
        Server::start().await,
        Server::start().await,
    );
    let data = random_bytes(5 * 1024 * 1024 + 3);
    let resp = put(&a, "f-0-1", 7, &[&b.addr, &c.addr], data.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: PutResponse = resp.json().await.unwrap();
    assert_eq!(
        stored.stored,
        vec![a.addr.clone(), b.addr.clone(), c.addr.clone()]
    );
    assert!(stored.failed.is_empty(), "{:?}", stored.failed);
    for server in [&a, &b, &c] {
        let body = get(server, "f-0-1").await.bytes().await.unwrap();
        assert_eq!(blake3::hash(&body), blake3::hash(&data));
        // Every hop received the chunk exactly once.
        assert_eq!(
            server.metric("filegrid_chunk_bytes_in_total", &[]),
            data.len() as f64
        );
    }
    // Every server of the pipeline is at that epoch: an older one is refused everywhere.
    let resp = put(&c, "other-0-0", 6, &[], vec![1]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn dead_downstream_does_not_fail_the_local_write() {
    let (a, c) = (Server::start().await, Server::start().await);
    let dead = dead_addr().await;
    let data = random_bytes(2 * 1024 * 1024);
    let resp = put(&a, "f-1-1", 1, &[&dead, &c.addr], data.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: PutResponse = resp.json().await.unwrap();
    assert_eq!(stored.stored, vec![a.addr.clone()]);
    let failed: Vec<&str> = stored.failed.iter().map(|f| f.addr.as_str()).collect();
    assert_eq!(failed, vec![dead.as_str(), c.addr.as_str()]);
    assert!(stored.failed.iter().all(|f| !f.error.is_empty()));
    let body = get(&a, "f-1-1").await.bytes().await.unwrap();
    assert_eq!(blake3::hash(&body), blake3::hash(&data));
    assert!(c.store.list().is_empty());

    // A downstream that refuses (stale epoch there) is reported; the local copy stays.
    let fenced = Server::start_with(None, EpochFence::new(9)).await;
    let resp = put(&a, "f-1-2", 2, &[&fenced.addr], vec![5; 1000]).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: PutResponse = resp.json().await.unwrap();
    assert_eq!(stored.stored, vec![a.addr.clone()]);
    assert_eq!(stored.failed.len(), 1);
    assert!(
        stored.failed[0].error.contains("stale_epoch"),
        "{:?}",
        stored.failed
    );

    // A full downstream is reported too, and keeps no partial copy.
    let full = Server::start_with(Some(64 * 1024), EpochFence::default()).await;
    let resp = put(&a, "f-1-3", 2, &[&full.addr], random_bytes(100_000)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: PutResponse = resp.json().await.unwrap();
    assert_eq!(stored.stored, vec![a.addr.clone()]);
    assert!(
        stored.failed[0].error.contains("storage_full"),
        "{:?}",
        stored.failed
    );
    assert!(full.files().is_empty());
}

#[tokio::test]
async fn stale_epoch_is_rejected() {
    let s = Server::start().await;
    assert_eq!(
        put(&s, "e-0-0", 5, &[], vec![1; 10]).await.status(),
        StatusCode::CREATED
    );
    let resp = put(&s, "e-1-0", 4, &[], vec![2; 10]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(resp).await, ErrorCode::StaleEpoch);
    assert!(s.store.meta(&ChunkId::new("e-1-0").unwrap()).is_err());

    let resp = client()
        .delete(s.url("/v1/chunks/e-0-0"))
        .header(headers::EPOCH, 3)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(get(&s, "e-0-0").await.status(), StatusCode::OK);

    let resp = client()
        .put(s.url("/v1/chunks/e-2-0"))
        .body(vec![1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, ErrorCode::MissingEpoch);

    // Once ZooKeeper has a newer epoch, the older one is refused.
    assert_eq!(
        put(&s, "e-3-0", 8, &[], vec![3]).await.status(),
        StatusCode::CREATED
    );
    let resp = put(&s, "e-4-0", 5, &[], vec![3]).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);

    // A request never raises the fence: an epoch ZooKeeper has not confirmed is refused
    // after a short wait and changes nothing (2^64-1 would otherwise lock out every leader).
    for (method, id) in [
        (reqwest::Method::PUT, "e-5-0"),
        (reqwest::Method::DELETE, "e-3-0"),
    ] {
        let resp = client()
            .request(method, s.url(&format!("/v1/chunks/{id}")))
            .header(headers::EPOCH, u64::MAX)
            .body(vec![4])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(error_code(resp).await, ErrorCode::BadEpoch);
    }
    assert_eq!(get(&s, "e-3-0").await.status(), StatusCode::OK);
    assert_eq!(
        put(&s, "e-6-0", 8, &[], vec![3]).await.status(),
        StatusCode::CREATED,
        "the current leader still writes"
    );
}

/// `POST /v1/chunk-deletions` as the leader's orphan collection sends it.
async fn delete_batch(s: &Server, epoch: u64, chunks: &[&str]) -> reqwest::Response {
    client()
        .post(s.url("/v1/chunk-deletions"))
        .json(&DeleteRequest {
            epoch,
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
        })
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_deletion_batch_deletes_what_it_names_and_bad_batches_change_nothing() {
    let s = Server::start().await;
    for id in ["b-0-0", "b-0-1", "b-0-2", "b-1-0"] {
        assert_eq!(
            put(&s, id, 2, &[], vec![7; 1000]).await.status(),
            StatusCode::CREATED
        );
    }
    // Refused whole: an invalid id, a chunk named twice, too many, a stale or unconfirmed
    // epoch, a body that is not a batch.
    let too_many: Vec<String> = (0..=MAX_DELETE_BATCH).map(|i| format!("b-9-{i}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
    for (epoch, chunks, status, code) in [
        (2, &["b-0-0", "../b-0-1"][..], 400, ErrorCode::BadChunkId),
        (2, &["b-0-0", "b-0-0"][..], 400, ErrorCode::BadRequest),
        (2, &too_many[..], 413, ErrorCode::TooLarge),
        (1, &["b-0-0"][..], 409, ErrorCode::StaleEpoch),
        (u64::MAX, &["b-0-0"][..], 409, ErrorCode::BadEpoch),
    ] {
        let resp = delete_batch(&s, epoch, chunks).await;
        assert_eq!(resp.status().as_u16(), status, "{chunks:?} at {epoch}");
        assert_eq!(error_code(resp).await, code);
    }
    let resp = client()
        .post(s.url("/v1/chunk-deletions"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(r#"{"epoch": 2, "chunks": "b-0-0"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.store.list().len(), 4, "a refused batch deleted nothing");

    // A good batch: what is held is deleted, durably; what is not is reported missing.
    let resp = delete_batch(&s, 2, &["b-0-0", "b-0-2", "b-7-0", "b-1-0"]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let done: DeleteResponse = resp.json().await.unwrap();
    assert_eq!(done.deleted, ["b-0-0", "b-0-2", "b-1-0"]);
    assert_eq!(done.missing, ["b-7-0"]);
    assert!(done.failed.is_empty(), "{:?}", done.failed);
    for id in ["b-0-0", "b-0-2", "b-1-0"] {
        assert_eq!(get(&s, id).await.status(), StatusCode::NOT_FOUND);
        assert!(!s.chunk_file(id).exists());
    }
    assert_eq!(get(&s, "b-0-1").await.status(), StatusCode::OK);
    assert_eq!(s.metric("filegrid_chunks_stored", &[]), 1.0);
    assert_eq!(
        s.metric(
            "filegrid_chunk_requests_total",
            &[("op", "delete_batch"), ("code", "200")]
        ),
        1.0
    );
}

/// Waits for chunk `id` to be reported bad, skipping reports of other chunks.
async fn expect_bad(
    rx: &mut tokio::sync::broadcast::Receiver<filegrid_node::chunk::BadChunk>,
    id: &str,
) -> filegrid_node::chunk::BadChunk {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let report = rx.recv().await.unwrap();
            if report.id.as_str() == id {
                return report;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{id} was not reported bad"))
}

#[tokio::test]
async fn flipped_byte_on_disk_fails_reads_and_is_reported() {
    let s = Server::start().await;
    let mut bad = s.store.subscribe_bad();
    let data = random_bytes(1024 * 1024 + 11);
    assert_eq!(
        put(&s, "c-0-0", 1, &[], data.clone()).await.status(),
        StatusCode::CREATED
    );

    let path = s.chunk_file("c-0-0");
    let mut raw = std::fs::read(&path).unwrap();
    raw[700_000] ^= 0x01;
    std::fs::write(&path, &raw).unwrap();

    let resp = get(&s, "c-0-0").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "corruption is only known at the end"
    );
    assert!(
        resp.bytes().await.is_err(),
        "the client must see a broken body"
    );
    let report = expect_bad(&mut bad, "c-0-0").await;
    assert!(
        report.reason.contains("checksum mismatch"),
        "{}",
        report.reason
    );

    // Known bad now: reads fail at once with a clear error.
    let resp = get(&s, "c-0-0").await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(resp).await, ErrorCode::ChunkCorrupt);

    let id = ChunkId::new("c-0-0").unwrap();
    let err = s.store.verify(&id).await.unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(s.store.list()[0].corrupt);

    // A range read verifies the whole chunk: bytes before the damage are not trusted either.
    let other = random_bytes(600_000);
    assert_eq!(
        put(&s, "c-1-0", 1, &[], other).await.status(),
        StatusCode::CREATED
    );
    let path = s.chunk_file("c-1-0");
    let mut raw = std::fs::read(&path).unwrap();
    raw[599_999] ^= 0x80;
    std::fs::write(&path, &raw).unwrap();
    let result = client()
        .get(s.url("/v1/chunks/c-1-0"))
        .header("range", "bytes=0-9")
        .send()
        .await;
    // The range is a single piece, held back until verification failed: the connection is
    // cut before or right after the response head, never with the ten bytes delivered.
    if let Ok(resp) = result {
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert!(resp.bytes().await.is_err());
    }
    expect_bad(&mut bad, "c-1-0").await;

    // Rewriting the chunk (read repair) makes it good again.
    assert_eq!(
        put(&s, "c-0-0", 1, &[], data.clone()).await.status(),
        StatusCode::CREATED
    );
    let body = get(&s, "c-0-0").await.bytes().await.unwrap();
    assert_eq!(blake3::hash(&body), blake3::hash(&data));
    s.store.verify(&id).await.unwrap();

    s.store.checksum_failures();
    wait_until("checksum failure metric", || {
        s.metric("filegrid_checksum_failures_total", &[]) >= 2.0
    })
    .await;
}

#[tokio::test]
async fn full_store_answers_507_and_keeps_nothing() {
    let s = Server::start_with(Some(1024 * 1024), EpochFence::default()).await;
    // Known length: refused before the body is read.
    let resp = put(&s, "big-0-0", 1, &[], random_bytes(2 * 1024 * 1024)).await;
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(error_code(resp).await, ErrorCode::StorageFull);

    // Unknown length (chunked upload): refused when the data outgrows the limit.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(random_bytes(256 * 1024))).collect();
    let resp = client()
        .put(s.url("/v1/chunks/big-1-0"))
        .header(headers::EPOCH, 1)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(error_code(resp).await, ErrorCode::StorageFull);
    assert!(s.store.list().is_empty());
    assert!(s.files().is_empty(), "partial files left: {:?}", s.files());
    assert_eq!(s.store.usage().unwrap().used_bytes, 0);

    // What fits is still accepted, and the reservation of the failed writes was released.
    assert_eq!(
        put(&s, "small-0-0", 1, &[], random_bytes(512 * 1024))
            .await
            .status(),
        StatusCode::CREATED
    );
    let resp = put(&s, "small-1-0", 1, &[], random_bytes(600 * 1024)).await;
    assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(s.store.list().len(), 1);
}

/// Sends a raw HTTP request and returns whatever the server answered before closing.
async fn raw_request(addr: &str, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn truncated_body_stores_nothing_anywhere() {
    let (a, b) = (Server::start().await, Server::start().await);
    let head = format!(
        "PUT /v1/chunks/t-0-0 HTTP/1.1\r\nhost: x\r\nx-filegrid-epoch: 1\r\n\
         x-filegrid-pipeline: {}\r\ncontent-length: 3000000\r\n\r\n",
        b.addr
    );
    let mut upload = TcpStream::connect(&a.addr).await.unwrap();
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&random_bytes(40_000)).await.unwrap();
    // Break off only once the chunk is being written on both servers (a chunk this large has
    // its temp file from the start).
    wait_until("the upload to reach both servers", || {
        a.files().len() == 1 && b.files().len() == 1
    })
    .await;
    drop(upload);
    wait_until("the broken upload to be answered", || {
        a.metric(
            "filegrid_chunk_requests_total",
            &[("op", "put"), ("code", "400")],
        ) == 1.0
    })
    .await;
    // The downstream hop saw its upload break off too.
    wait_until("the downstream upload to end", || {
        b.metric(
            "filegrid_chunk_requests_total",
            &[("op", "put"), ("code", "400")],
        ) == 1.0
    })
    .await;
    for s in [&a, &b] {
        assert!(s.store.list().is_empty());
        assert!(s.files().is_empty(), "left behind: {:?}", s.files());
    }

    // A malformed Content-Length is refused by the HTTP layer.
    let answer = raw_request(
        &a.addr,
        "PUT /v1/chunks/t-1-0 HTTP/1.1\r\nhost: x\r\nx-filegrid-epoch: 1\r\ncontent-length: 12x\r\n\r\n",
        b"hello",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(a.store.list().is_empty());
}

#[tokio::test]
async fn expected_checksum_is_enforced() {
    let s = Server::start().await;
    let data = random_bytes(100_000);
    let good = format!("crc32c:{:08x}", crc32c::crc32c(&data));
    let resp = client()
        .put(s.url("/v1/chunks/k-0-0"))
        .header(headers::EPOCH, 1)
        .header(headers::CHECKSUM, "crc32c:00000000")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(resp).await, ErrorCode::ChecksumMismatch);
    assert!(s.files().is_empty());

    let resp = client()
        .put(s.url("/v1/chunks/k-0-0"))
        .header(headers::EPOCH, 1)
        .header(headers::CHECKSUM, "sha1:nope")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, ErrorCode::BadChecksum);

    let resp = client()
        .put(s.url("/v1/chunks/k-0-0"))
        .header(headers::EPOCH, 1)
        .header(headers::CHECKSUM, &good)
        .body(data)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: PutResponse = resp.json().await.unwrap();
    assert_eq!(stored.checksum, good);
}

#[tokio::test]
async fn bad_ids_and_pipelines_are_refused() {
    let s = Server::start().await;
    for id in ["a.b", "a%20b", "a%2Fb", &"x".repeat(129)] {
        let resp = put(&s, id, 1, &[], vec![1]).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{id}");
        assert_eq!(error_code(resp).await, ErrorCode::BadChunkId);
    }
    let resp = put(&s, "p-0-0", 1, &["http://x:1/"], vec![1]).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, ErrorCode::BadPipeline);
    assert!(s.files().is_empty());
}

#[tokio::test]
async fn range_reads() {
    let s = Server::start().await;
    let data = random_bytes(1_000_003);
    assert_eq!(
        put(&s, "r-0-0", 1, &[], data.clone()).await.status(),
        StatusCode::CREATED
    );
    let cases: [(&str, std::ops::Range<usize>); 6] = [
        ("bytes=0-0", 0..1),
        ("bytes=262143-262144", 262_143..262_145),
        ("bytes=999999-", 999_999..1_000_003),
        ("bytes=-5", 999_998..1_000_003),
        ("bytes=10-99999999", 10..1_000_003),
        ("bytes=0-1000002", 0..1_000_003),
    ];
    for (header, want) in cases {
        let resp = client()
            .get(s.url("/v1/chunks/r-0-0"))
            .header("range", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{header}");
        let expect_range = format!("bytes {}-{}/{}", want.start, want.end - 1, data.len());
        assert_eq!(resp.headers()["content-range"], expect_range.as_str());
        let body = resp.bytes().await.unwrap();
        assert_eq!(&body[..], &data[want], "{header}");
    }
    let resp = client()
        .get(s.url("/v1/chunks/r-0-0"))
        .header("range", "bytes=1000003-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.headers()["content-range"], "bytes */1000003");
    let resp = client()
        .get(s.url("/v1/chunks/r-0-0"))
        .header("range", "bytes=5-2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, ErrorCode::BadRange);
}

#[tokio::test]
async fn replicate_copies_to_live_targets_and_reports_dead_ones() {
    let (a, b, c) = (
        Server::start().await,
        Server::start().await,
        Server::start().await,
    );
    let data = random_bytes(3 * 1024 * 1024);
    assert_eq!(
        put(&a, "x-0-0", 4, &[], data.clone()).await.status(),
        StatusCode::CREATED
    );
    let dead = dead_addr().await;
    let resp = client()
        .post(a.url("/v1/chunks/x-0-0/replicate"))
        .json(&replicate(&[&dead, &b.addr, &c.addr], 4))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let result: PutResponse = resp.json().await.unwrap();
    assert_eq!(result.stored, vec![b.addr.clone(), c.addr.clone()]);
    assert_eq!(result.failed.len(), 1);
    assert_eq!(result.failed[0].addr, dead);
    for server in [&b, &c] {
        let body = get(server, "x-0-0").await.bytes().await.unwrap();
        assert_eq!(blake3::hash(&body), blake3::hash(&data));
    }

    let resp = client()
        .post(a.url("/v1/chunks/x-0-0/replicate"))
        .json(&replicate(&[&b.addr], 3))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let resp = client()
        .post(a.url("/v1/chunks/missing-0-0/replicate"))
        .json(&replicate(&[&b.addr], 4))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = client()
        .post(a.url("/v1/chunks/x-0-0/replicate"))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(resp).await, ErrorCode::BadRequest);
}

#[tokio::test]
async fn health_and_readiness() {
    let s = Server::start().await;
    let status = |path: &'static str| {
        let url = s.url(path);
        async move { client().get(url).send().await.unwrap().status() }
    };
    assert_eq!(status("/health").await, StatusCode::OK);
    assert_eq!(status("/ready").await, StatusCode::OK);
    s.readiness.set(false);
    assert_eq!(status("/ready").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(status("/health").await, StatusCode::OK);
    s.readiness.set(true);
    assert_eq!(status("/ready").await, StatusCode::OK);
}

#[tokio::test]
async fn a_stalled_downstream_is_given_up_after_the_timeout() {
    let a = Server::start_full(None, EpochFence::default(), Duration::from_millis(500)).await;
    let c = Server::start().await;
    // Accepts connections (the kernel does) but never reads a byte.
    let stalled = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_addr = stalled.local_addr().unwrap().to_string();
    let data = random_bytes(16 * 1024 * 1024);
    let started = Instant::now();
    let resp = put(&a, "h-0-0", 1, &[&stalled_addr, &c.addr], data.clone()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let stored: PutResponse = resp.json().await.unwrap();
    assert!(started.elapsed() < DEADLINE);
    assert_eq!(stored.stored, vec![a.addr.clone()]);
    assert_eq!(stored.failed.len(), 2);
    assert_eq!(stored.failed[0].addr, stalled_addr);
    assert!(
        stored.failed[0].error.contains("took no data"),
        "{:?}",
        stored.failed
    );
    let body = get(&a, "h-0-0").await.bytes().await.unwrap();
    assert_eq!(blake3::hash(&body), blake3::hash(&data));
    drop(stalled);
}

#[tokio::test]
async fn replicating_a_corrupt_chunk_leaves_no_copy() {
    let (a, b) = (Server::start().await, Server::start().await);
    assert_eq!(
        put(&a, "y-0-0", 1, &[], random_bytes(4 * 1024 * 1024))
            .await
            .status(),
        StatusCode::CREATED
    );
    let path = a.chunk_file("y-0-0");
    let mut raw = std::fs::read(&path).unwrap();
    // Damage at the very end: the pieces before it are more than the forwarding queue
    // holds, so the target is certainly receiving the upload when the copy aborts.
    raw[4 * 1024 * 1024 - 1] ^= 0x04;
    std::fs::write(&path, &raw).unwrap();
    let resp = client()
        .post(a.url("/v1/chunks/y-0-0/replicate"))
        .json(&replicate(&[&b.addr], 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(resp).await, ErrorCode::ChunkCorrupt);
    wait_until("the target's upload to break off", || {
        b.metric(
            "filegrid_chunk_requests_total",
            &[("op", "put"), ("code", "400")],
        ) == 1.0
    })
    .await;
    assert!(b.store.list().is_empty());
    assert!(b.files().is_empty(), "{:?}", b.files());
}
