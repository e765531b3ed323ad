//! A 3-node Garage on loopback for the S3 benchmark's peer mode: replication factor 3, data
//! and metadata fsynced (as FileGrid fsyncs every replica), one S3 key and one bucket.
//! Garage is driven through its own CLI (`garage -c <config> ...`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filegrid_testkit::free_port;

use crate::error::BenchError;

pub const REGION: &str = "garage";
const NODES: usize = 3;

pub struct Garage {
    bin: PathBuf,
    configs: Vec<PathBuf>,
    s3_port: u16,
    children: Vec<Child>,
    pub key_id: String,
    pub secret: String,
}

impl Drop for Garage {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn fail(what: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(format!("garage: {what}"))
}

impl Garage {
    /// Starts the nodes in `dir`, joins them, lays out a cluster with every node, and makes
    /// a key that owns a bucket named `bench`.
    pub async fn start(bin: &Path, dir: &Path) -> Result<Self, BenchError> {
        let bin = bin.to_path_buf();
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || Self::start_blocking(&bin, &dir))
            .await
            .map_err(fail)?
    }

    fn start_blocking(bin: &Path, dir: &Path) -> Result<Self, BenchError> {
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let mut g = Garage {
            bin: bin.to_path_buf(),
            configs: Vec::new(),
            s3_port: 0,
            children: Vec::new(),
            key_id: String::new(),
            secret: String::new(),
        };
        let mut rpc = Vec::new();
        for i in 0..NODES {
            let node = dir.join(format!("node{i}"));
            std::fs::create_dir_all(node.join("meta")).map_err(fail)?;
            std::fs::create_dir_all(node.join("data")).map_err(fail)?;
            let (rpc_port, s3_port, admin_port) = (free_port(), free_port(), free_port());
            if i == 0 {
                g.s3_port = s3_port;
            }
            rpc.push(rpc_port);
            let config = node.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\n\
                     replication_factor = 3\nmetadata_fsync = true\ndata_fsync = true\n\
                     rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                     rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"{REGION}\"\n\
                     api_bind_addr = \"127.0.0.1:{s3_port}\"\nroot_domain = \".s3.garage.localhost\"\n\n\
                     [admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n",
                    meta = node.join("meta").display(),
                    data = node.join("data").display(),
                ),
            )
            .map_err(fail)?;
            let log = std::fs::File::create(node.join("garage.log")).map_err(fail)?;
            let err = log.try_clone().map_err(fail)?;
            let child = Command::new(bin)
                .arg("-c")
                .arg(&config)
                .arg("server")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| fail(format!("cannot start {}: {e}", bin.display())))?;
            g.children.push(child);
            g.configs.push(config);
        }
        // Every node's id, once each answers its CLI.
        let mut ids = Vec::new();
        for i in 0..NODES {
            let out = g.retry(i, &["node", "id", "-q"], Duration::from_secs(30))?;
            let id = out
                .lines()
                .map(str::trim)
                .find(|l| l.contains('@'))
                .ok_or_else(|| fail(format!("node {i} printed no id: {out}")))?
                .to_string();
            ids.push(id);
        }
        for id in &ids[1..] {
            g.retry(0, &["node", "connect", id], Duration::from_secs(30))?;
        }
        for id in &ids {
            let short = id.split('@').next().unwrap_or(id);
            g.retry(
                0,
                &["layout", "assign", "-z", "dc1", "-c", "10G", short],
                Duration::from_secs(30),
            )?;
        }
        g.retry(
            0,
            &["layout", "apply", "--version", "1"],
            Duration::from_secs(30),
        )?;
        let key = g.retry(0, &["key", "create", "bench"], Duration::from_secs(30))?;
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .ok_or_else(|| fail(format!("`key create` printed no {name}: {key}")))
        };
        g.key_id = field("Key ID:")?;
        g.secret = field("Secret key:")?;
        g.retry(0, &["bucket", "create", "bench"], Duration::from_secs(30))?;
        g.retry(
            0,
            &[
                "bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench",
            ],
            Duration::from_secs(30),
        )?;
        Ok(g)
    }

    pub fn s3_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Runs a CLI command against node `i` until it succeeds or `within` passes.
    fn retry(&self, i: usize, args: &[&str], within: Duration) -> Result<String, BenchError> {
        let start = Instant::now();
        loop {
            let out = Command::new(&self.bin)
                .arg("-c")
                .arg(&self.configs[i])
                .args(args)
                .env("RUST_LOG", "warn")
                .output()
                .map_err(|e| fail(format!("{}: {e}", self.bin.display())))?;
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            if start.elapsed() > within {
                return Err(fail(format!(
                    "`garage {}` failed: {}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
