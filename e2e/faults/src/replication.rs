//! After healing, every file must be back to full replication: each chunk of each file's
//! manifest (read from ZooKeeper) names at least `replication_factor` servers, and each of
//! them lists the chunk, not marked corrupt, in its block report (asked directly, signed
//! with the cluster secret as a peer) and serves it whole with the manifest's checksum (a
//! flipped byte the scrubber has not found yet counts as a missing copy). The judgement is
//! pure; the gathering is I/O.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use filegrid_node::auth::peer::Signed;
use filegrid_node::auth::{ClusterSecret, PeerSigner};
use filegrid_proto::chunk::ListResponse;
use filegrid_proto::headers::PEER_AUTH;
use filegrid_proto::manifest::Entry;
use filegrid_testkit::Grid;

/// One chunk as a manifest names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkSeen {
    pub file: String,
    pub id: String,
    /// `crc32c:<hex>` from the manifest.
    pub checksum: String,
    pub replicas: Vec<String>,
}

/// What a server's block report says of its chunks: id → corrupt.
pub type BlockReport = HashMap<String, bool>;

/// The shortfalls (empty when every chunk has `rf` good, listed copies). Pure.
pub fn shortfalls(
    chunks: &[ChunkSeen],
    reports: &HashMap<String, BlockReport>,
    rf: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for c in chunks {
        let distinct: HashSet<&String> = c.replicas.iter().collect();
        let good = distinct
            .iter()
            .filter(|s| {
                reports
                    .get(s.as_str())
                    .and_then(|r| r.get(&c.id))
                    .is_some_and(|corrupt| !corrupt)
            })
            .count();
        if good < rf {
            out.push(format!(
                "{} chunk {}: {good} good listed copies of {rf} (manifest names {:?})",
                c.file, c.id, c.replicas
            ));
        }
    }
    out
}

/// What the last look found.
#[derive(Debug, Default)]
pub struct Replication {
    pub shortfalls: Vec<String>,
    /// Chunks the files' manifests name.
    pub chunks: usize,
    /// Chunk files the servers' block reports list, all servers together (copies of live
    /// chunks and orphans not collected yet).
    pub listed: usize,
}

/// Gathers manifests and block reports until nothing falls short or `timeout` passes;
/// returns the last look.
pub fn wait_full(grid: &Grid, keys: &[String], rf: usize, timeout: Duration) -> Replication {
    let start = Instant::now();
    loop {
        let look = match gather(grid, keys) {
            Ok((chunks, reports)) => Replication {
                shortfalls: shortfalls(&chunks, &reports, rf),
                chunks: chunks.len(),
                listed: reports.values().map(|r| r.len()).sum(),
            },
            Err(e) => Replication {
                shortfalls: vec![e],
                ..Default::default()
            },
        };
        if look.shortfalls.is_empty() || start.elapsed() > timeout {
            return look;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Copies the servers list where no manifest places them: orphans not collected yet. Pure.
pub fn uncollected(chunks: &[ChunkSeen], reports: &HashMap<String, BlockReport>) -> usize {
    let named: HashSet<(&str, &str)> = chunks
        .iter()
        .flat_map(|c| c.replicas.iter().map(|s| (s.as_str(), c.id.as_str())))
        .collect();
    reports
        .iter()
        .map(|(server, r)| {
            r.keys()
                .filter(|id| !named.contains(&(server.as_str(), id.as_str())))
                .count()
        })
        .sum()
}

/// Waits until the servers hold no orphan; `Err` says how many are left at `timeout`.
pub fn wait_collected(grid: &Grid, keys: &[String], timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let left = match gather(grid, keys) {
            Ok((chunks, reports)) => Ok(uncollected(&chunks, &reports)),
            Err(e) => Err(e),
        };
        match left {
            Ok(0) => return Ok(()),
            _ if start.elapsed() < timeout => {}
            Ok(n) => return Err(format!("{n} orphaned copies left after {timeout:?}")),
            Err(e) => return Err(e),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn gather(
    grid: &Grid,
    keys: &[String],
) -> Result<(Vec<ChunkSeen>, HashMap<String, BlockReport>), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let hosts = grid.zk.hosts();
    let chunks = rt.block_on(async {
        let c = zookeeper_client::Client::connect(&hosts)
            .await
            .map_err(|e| format!("ZooKeeper: {e}"))?;
        let mut out = Vec::new();
        for key in keys {
            let path = format!("/distributed_file_grid/files/{key}");
            let data = match c.get_data(&path).await {
                Ok((data, _)) => data,
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(format!("reading {path}: {e}")),
            };
            let entry: Entry =
                serde_json::from_slice(&data).map_err(|e| format!("manifest of {key}: {e}"))?;
            let Some(file) = entry.file else { continue };
            if file.parts > 0 {
                return Err(format!("{key}: chunk list kept in parts, not checked"));
            }
            out.extend(file.chunks.into_iter().map(|ch| ChunkSeen {
                file: key.clone(),
                id: ch.id,
                checksum: ch.checksum,
                replicas: ch.replicas.into_iter().map(String::from).collect(),
            }));
        }
        Ok::<_, String>(out)
    })?;
    let secret = ClusterSecret::load(&grid.cluster_secret_file())
        .map_err(|e| format!("cluster secret: {e}"))?;
    let signer = PeerSigner::new("faults-checker", secret);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let mut reports: HashMap<String, BlockReport> = HashMap::new();
    for (i, server) in grid.cluster.iter().enumerate() {
        let path = "/v1/chunks";
        let header = signer.header(&Signed {
            method: "GET",
            path_and_query: path,
            ..Signed::default()
        });
        let list: ListResponse = http
            .get(format!("{}{path}", grid.cluster_url(i)))
            .header(PEER_AUTH, header)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .map_err(|e| format!("block report of {}: {e}", server.id))?;
        reports.insert(
            server.id.clone(),
            list.chunks.into_iter().map(|c| (c.id, c.corrupt)).collect(),
        );
    }
    // Every copy a report calls good is read back and checked; a bad one counts as corrupt.
    for c in &chunks {
        for server in &c.replicas {
            let Some(i) = grid.cluster.iter().position(|s| &s.id == server) else {
                continue;
            };
            let Some(report) = reports.get_mut(server) else {
                continue;
            };
            if report.get(&c.id) != Some(&false) {
                continue;
            }
            let path = format!("/v1/chunks/{}", c.id);
            let header = signer.header(&Signed {
                method: "GET",
                path_and_query: &path,
                ..Signed::default()
            });
            let body = http
                .get(format!("{}{path}", grid.cluster_url(i)))
                .header(PEER_AUTH, header)
                .send()
                .and_then(|r| r.error_for_status())
                .and_then(|r| r.bytes());
            let good =
                body.is_ok_and(|b| format!("crc32c:{:08x}", crc32c::crc32c(&b)) == c.checksum);
            if !good {
                report.insert(c.id.clone(), true);
            }
        }
    }
    Ok((chunks, reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, replicas: &[&str]) -> ChunkSeen {
        ChunkSeen {
            file: "f".into(),
            id: id.into(),
            checksum: String::new(),
            replicas: replicas.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn report(entries: &[(&str, bool)]) -> BlockReport {
        entries.iter().map(|(i, c)| (i.to_string(), *c)).collect()
    }

    #[test]
    fn full_replication_needs_listed_good_distinct_copies() {
        let reports: HashMap<String, BlockReport> = [
            ("a".to_string(), report(&[("c1", false), ("c2", false)])),
            ("b".to_string(), report(&[("c1", false), ("c2", true)])),
            ("c".to_string(), report(&[("c1", false)])),
        ]
        .into();
        assert!(shortfalls(&[chunk("c1", &["a", "b", "c"])], &reports, 3).is_empty());
        // corrupt on b, missing on c
        assert_eq!(
            shortfalls(&[chunk("c2", &["a", "b", "c"])], &reports, 3).len(),
            1
        );
        // the same server named twice counts once
        assert_eq!(
            shortfalls(&[chunk("c1", &["a", "a", "b"])], &reports, 3).len(),
            1
        );
        // a server that gave no report holds nothing we know of
        assert_eq!(
            shortfalls(&[chunk("c1", &["a", "b", "z"])], &reports, 3).len(),
            1
        );
    }

    #[test]
    fn an_orphan_is_a_listed_copy_no_manifest_places_on_its_server() {
        let reports: HashMap<String, BlockReport> = [
            ("a".to_string(), report(&[("c1", false), ("old", false)])),
            ("b".to_string(), report(&[("c1", false), ("c2", true)])),
        ]
        .into();
        let chunks = [chunk("c1", &["a", "b"]), chunk("c2", &["a"])];
        // "old" on a (no manifest), c2 on b (its manifest places it on a only).
        assert_eq!(uncollected(&chunks, &reports), 2);
        let chunks = [
            chunk("c1", &["a", "b"]),
            chunk("c2", &["b"]),
            chunk("old", &["a"]),
        ];
        assert_eq!(uncollected(&chunks, &reports), 0);
        assert_eq!(uncollected(&[], &HashMap::new()), 0);
    }
}
