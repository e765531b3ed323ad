//! The chunk store on a real data directory: restart recovery, torn temp files, aborted
//! writes, the directory lock and the scrubber.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use filegrid_node::chunk::{
    ChunkId, ChunkStore, ScrubConfig, ScrubHandle, StoreConfig, StoreError, format::TRAILER_LEN,
};
use rand::RngCore;

const DEADLINE: Duration = Duration::from_secs(10);

fn id(s: &str) -> ChunkId {
    ChunkId::new(s).unwrap()
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

async fn open(dir: &Path, capacity: Option<u64>) -> Arc<ChunkStore> {
    let (store, _) = open_with_report(dir, capacity).await;
    store
}

async fn open_with_report(
    dir: &Path,
    capacity: Option<u64>,
) -> (Arc<ChunkStore>, filegrid_node::chunk::OpenReport) {
    ChunkStore::open(StoreConfig {
        data_dir: dir.to_path_buf(),
        capacity,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn restart_finds_chunks_and_removes_torn_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = random_bytes(300_000);
    let b = random_bytes(17);
    {
        let store = open(dir.path(), None).await;
        store.put(id("a-0-0"), &a).await.unwrap();
        store.put(id("b-0-0"), &b).await.unwrap();
        // A write in flight: its temp file is on disk until the write ends.
        let mut w = store.writer(id("c-0-0"), None).await.unwrap();
        w.write(&random_bytes(4096)).await.unwrap();
        let names = std::fs::read_dir(dir.path().join("chunks"))
            .unwrap()
            .count();
        assert_eq!(names, 3);
    }
    let chunks = dir.path().join("chunks");
    // Temp files left by writes that a crash interrupted (the process died, so nothing
    // removed them), one of them with no data yet.
    std::fs::write(chunks.join(".c-0-0.4242-7.tmp"), random_bytes(4096)).unwrap();
    std::fs::write(chunks.join(".d-0-0.4242-8.tmp"), b"").unwrap();
    // And a chunk whose trailer is damaged is set aside, not served.
    std::fs::write(chunks.join("e-0-0"), b"not a chunk file at all, just bytes").unwrap();

    let (store, report) = open_with_report(dir.path(), None).await;
    assert_eq!(report.chunks, 2);
    assert_eq!(report.temp_files_removed, 2);
    assert_eq!(report.quarantined, vec!["e-0-0".to_string()]);
    let mut names: Vec<String> = std::fs::read_dir(&chunks)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["a-0-0", "b-0-0"]);
    assert!(dir.path().join("quarantine").read_dir().unwrap().count() == 1);

    let usage = store.usage().unwrap();
    assert_eq!(usage.chunks, 2);
    assert_eq!(usage.used_bytes, 300_000 + 17 + 2 * TRAILER_LEN);
    let got = store
        .read(&id("a-0-0"), None)
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert_eq!(blake3::hash(&got), blake3::hash(&a));
    let got = store
        .read(&id("b-0-0"), Some(3..9))
        .await
        .unwrap()
        .into_bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &b[3..9]);
    assert!(matches!(
        store.read(&id("c-0-0"), None).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn capacity_counts_existing_chunks_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), Some(1_000_000)).await;
        store
            .put(id("a-0-0"), &random_bytes(600_000))
            .await
            .unwrap();
    }
    let store = open(dir.path(), Some(1_000_000)).await;
    let err = store
        .put(id("b-0-0"), &random_bytes(500_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StorageFull(_)), "{err}");
    store
        .put(id("b-0-0"), &random_bytes(300_000))
        .await
        .unwrap();
    // A rewrite needs room for the new copy while the old one still exists...
    let err = store
        .put(id("b-0-0"), &random_bytes(200_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::StorageFull(_)), "{err}");
    // ...and then replaces the old copy's space instead of adding to it.
    store.put(id("b-0-0"), &random_bytes(50_000)).await.unwrap();
    let usage = store.usage().unwrap();
    assert_eq!(usage.chunks, 2);
    assert_eq!(usage.used_bytes, 650_000 + 2 * TRAILER_LEN);
    assert_eq!(usage.capacity_bytes, 1_000_000);
    assert_eq!(usage.free_bytes, 1_000_000 - 650_000 - 2 * TRAILER_LEN);
}

#[tokio::test]
async fn unfinished_and_mismatched_writes_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(10_000_000)).await;
    let files = || {
        std::fs::read_dir(dir.path().join("chunks"))
            .unwrap()
            .count()
    };

    // A chunk of a block or more has its temp file from the start (smaller ones only at
    // `finish`).
    let mut w = store.writer(id("a-0-0"), Some(2_000_000)).await.unwrap();
    w.write(&[1; 600]).await.unwrap();
    assert_eq!(files(), 1, "the temp file exists while writing");
    let err = w.finish(None).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::LengthMismatch {
            expected: 2_000_000,
            actual: 600
        }
    ));
    // A small one that comes up short leaves nothing either.
    let mut w = store.writer(id("a-0-0"), Some(1000)).await.unwrap();
    w.write(&[1; 600]).await.unwrap();
    assert!(matches!(
        w.finish(None).await.unwrap_err(),
        StoreError::LengthMismatch {
            expected: 1000,
            actual: 600
        }
    ));

    let mut w = store.writer(id("a-0-0"), Some(10)).await.unwrap();
    assert!(w.write(&[1; 11]).await.is_err());
    drop(w);

    let mut w = store.writer(id("a-0-0"), None).await.unwrap();
    w.write(&[1; 5000]).await.unwrap();
    drop(w);

    assert_eq!(files(), 0);
    assert!(store.list().is_empty());
    assert_eq!(
        store.usage().unwrap().free_bytes,
        10_000_000,
        "reservations released"
    );
}

#[tokio::test]
async fn a_data_directory_serves_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path(), None).await;
    let err = ChunkStore::open(StoreConfig {
        data_dir: dir.path().to_path_buf(),
        capacity: None,
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("another cluster server"), "{err}");
}

#[tokio::test]
async fn scrubber_finds_a_corrupted_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), None).await;
    for i in 0..5 {
        store
            .put(id(&format!("s-{i}-0")), &random_bytes(200_000))
            .await
            .unwrap();
    }
    let path = dir.path().join("chunks").join("s-3-0");
    let mut raw = std::fs::read(&path).unwrap();
    raw[123_456] ^= 0x10;
    std::fs::write(&path, &raw).unwrap();

    let mut bad = store.subscribe_bad();
    let scrub = ScrubHandle::spawn(
        store.clone(),
        ScrubConfig {
            rate_bytes_per_sec: 4_000_000,
            pause_between_passes: Duration::from_secs(3600),
        },
    );
    let report = tokio::time::timeout(DEADLINE, bad.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.id.as_str(), "s-3-0");

    let start = Instant::now();
    while scrub.progress().passes_completed == 0 {
        assert!(start.elapsed() < DEADLINE, "scrub pass did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let p = scrub.progress();
    assert_eq!(p.bad_chunks_found, 1);
    assert_eq!(p.pass_bytes_total, 1_000_000);
    assert_eq!(p.ratio(), 1.0);
    // Good chunks are verified in full; the bad one up to where its stream failed.
    assert!(p.bytes_verified_total >= 800_000, "{p:?}");
    assert!(store.list().iter().filter(|c| c.corrupt).count() == 1);
}

#[tokio::test]
async fn scrubber_keeps_to_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), None).await;
    store
        .put(id("r-0-0"), &random_bytes(2_000_000))
        .await
        .unwrap();
    let started = Instant::now();
    let scrub = ScrubHandle::spawn(
        store.clone(),
        ScrubConfig {
            rate_bytes_per_sec: 4_000_000,
            pause_between_passes: Duration::from_secs(3600),
        },
    );
    while scrub.progress().passes_completed == 0 {
        assert!(started.elapsed() < DEADLINE, "scrub pass did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 2 MB at 4 MB/s takes at least ~0.5 s (the last piece's pause included).
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(scrub.progress().bytes_verified_total, 2_000_000);
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs failed (this test needs root)"
        );
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test]
#[ignore = "mounts a 2 MiB tmpfs, so it needs root: cargo test -p filegrid-node --test chunk_store -- --ignored"]
async fn a_really_full_disk_is_storage_full_and_leaves_nothing() {
    let fs = Tmpfs::mount("2m");
    let store = open(fs.0.path(), None).await;
    let usage = store.usage().unwrap();
    assert!(usage.capacity_bytes <= 2 * 1024 * 1024, "{usage:?}");

    // Larger than the disk: refused up front by the free-space check.
    let err = store
        .put(id("big-0-0"), &random_bytes(3 * 1024 * 1024))
        .await;
    assert!(matches!(err, Err(StoreError::StorageFull(_))), "{err:?}");

    // Fits when it starts, but the disk fills up under it: ENOSPC becomes StorageFull.
    let mut w = store.writer(id("late-0-0"), Some(1_500_000)).await.unwrap();
    std::fs::write(fs.0.path().join("filler"), random_bytes(1024 * 1024)).unwrap();
    let mut result = Ok(());
    for piece in random_bytes(1_500_000).chunks(64 * 1024) {
        result = w.write(piece).await;
        if result.is_err() {
            break;
        }
    }
    let result = match result {
        Ok(()) => w.finish(None).await.map(|_| ()),
        Err(e) => {
            drop(w);
            Err(e)
        }
    };
    assert!(
        matches!(result, Err(StoreError::StorageFull(_))),
        "{result:?}"
    );
    assert_eq!(
        std::fs::read_dir(fs.0.path().join("chunks"))
            .unwrap()
            .count(),
        0
    );
    assert!(store.list().is_empty());

    // Once space is back, writes work again.
    std::fs::remove_file(fs.0.path().join("filler")).unwrap();
    store
        .put(id("late-0-0"), &random_bytes(500_000))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_chunk_file_gone_or_replaced_by_a_directory_is_reported_forgotten_and_rewritable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), None).await;
    let data = random_bytes(100_000);
    for name in ["gone-0", "dir-0", "fine-0"] {
        store.put(id(name), &data).await.unwrap();
    }
    let chunks = dir.path().join("chunks");
    std::fs::remove_file(chunks.join("gone-0")).unwrap();
    std::fs::remove_file(chunks.join("dir-0")).unwrap();
    std::fs::create_dir(chunks.join("dir-0")).unwrap();
    std::fs::write(chunks.join("dir-0").join("inside"), b"x").unwrap();
    let used_before = store.usage().unwrap().used_bytes;

    let mut bad = store.subscribe_bad();
    let _scrub = ScrubHandle::spawn(
        store.clone(),
        ScrubConfig {
            rate_bytes_per_sec: 100_000_000,
            pause_between_passes: Duration::from_secs(3600),
        },
    );
    let mut found = Vec::new();
    for _ in 0..2 {
        let report = tokio::time::timeout(DEADLINE, bad.recv())
            .await
            .unwrap()
            .unwrap();
        found.push(report.id.as_str().to_string());
    }
    found.sort();
    assert_eq!(found, ["dir-0", "gone-0"]);
    assert_eq!(store.checksum_failures(), 2);
    // Both are forgotten: the block report no longer lists them, their space is free.
    let listed: Vec<String> = store
        .list()
        .iter()
        .map(|c| c.meta.id.as_str().to_string())
        .collect();
    assert_eq!(listed, ["fine-0"]);
    assert_eq!(
        store.usage().unwrap().used_bytes,
        used_before - 2 * (data.len() as u64 + TRAILER_LEN)
    );
    assert!(matches!(
        store.read(&id("gone-0"), None).await,
        Err(StoreError::NotFound(_))
    ));
    // The directory was moved aside, so a good copy can be written in its place.
    assert!(!chunks.join("dir-0").exists());
    store.put(id("dir-0"), &data).await.unwrap();
    store.verify(&id("dir-0")).await.unwrap();

    // A directory where a new chunk is installed is moved aside too.
    std::fs::create_dir(chunks.join("new-0")).unwrap();
    std::fs::write(chunks.join("new-0").join("inside"), b"x").unwrap();
    store.put(id("new-0"), &data).await.unwrap();
    assert_eq!(store.verify(&id("new-0")).await.unwrap().len, 100_000);
    // And deleting a chunk whose path became a directory succeeds.
    std::fs::remove_file(chunks.join("fine-0")).unwrap();
    std::fs::create_dir(chunks.join("fine-0")).unwrap();
    store.delete(&id("fine-0")).await.unwrap();
    assert!(!chunks.join("fine-0").exists());
}
