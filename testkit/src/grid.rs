//! A whole FileGrid on loopback: a ZooKeeper server, heads and cluster servers as real
//! processes, with knobs for the settings tests and benchmarks vary.

use filegrid_proto::head::{LeaderView, Role, ServerState, ServerView, StatusView};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{CertFiles, GridTls, Proc, ZkServer, free_port, wait_until_sync};

/// Settings of a [`Grid`].
#[derive(Clone, Debug)]
pub struct GridOptions {
    pub heads: usize,
    pub cluster_servers: usize,
    pub chunk_size: String,
    pub session_timeout: String,
    pub dead_after: String,
    pub orphan_grace: String,
    pub replication_factor: u32,
    pub min_write_replicas: u32,
    /// `--capacity` per cluster server (by index), if any.
    pub capacities: Vec<Option<String>>,
    pub extra_head_args: Vec<String>,
    /// Extra arguments for every cluster server.
    pub extra_cluster_args: Vec<String>,
    /// Directory to create the grid's temp dir (logs, data dirs) in; `$TMPDIR` when `None`.
    /// Benchmarks put it next to the files they compare against, on the same disk.
    pub base_dir: Option<PathBuf>,
    /// `RUST_LOG` of the FileGrid processes; the testkit's debug default when `None`.
    pub log_filter: Option<String>,
    /// Run without security (`--insecure`); otherwise the grid gets a cluster secret and
    /// the test principals of [`crate::auth`].
    pub insecure: bool,
    /// Let requests without a credential read.
    pub anonymous_read: bool,
    /// Start every process with `--zk-auth-file`: a digest credential (`filegrid:<random>`)
    /// generated into the grid's dir, see [`Grid::zk_auth_file`].
    pub zk_auth: bool,
    /// TLS on every listener: a CA and a certificate per process are made in the grid's temp
    /// dir (`tls/`), and every process trusts the CA for its calls.
    pub tls: bool,
    /// With `tls`, every server also requires client certificates from the CA.
    pub mutual_tls: bool,
    /// Every head also serves the S3 API (`--s3-listen` on a free port).
    pub s3: bool,
    /// ZooKeeper's Java heap (`-Xmx`), for namespaces of millions of files.
    pub zk_heap: String,
    /// `--heartbeat-interval` of every cluster server. The leader counts a server it has not
    /// heard from for three intervals as silent (and places around it); a test of what
    /// happens before that sets a long one.
    pub heartbeat_interval: String,
}

impl Default for GridOptions {
    fn default() -> Self {
        Self {
            heads: 1,
            cluster_servers: 3,
            chunk_size: "256KiB".into(),
            session_timeout: "4s".into(),
            dead_after: "3s".into(),
            orphan_grace: "10m".into(),
            replication_factor: 3,
            min_write_replicas: 2,
            capacities: Vec::new(),
            extra_head_args: Vec::new(),
            extra_cluster_args: Vec::new(),
            base_dir: None,
            log_filter: None,
            insecure: false,
            anonymous_read: false,
            zk_auth: false,
            tls: false,
            mutual_tls: false,
            s3: false,
            zk_heap: crate::zookeeper::DEFAULT_HEAP.into(),
            heartbeat_interval: "500ms".into(),
        }
    }
}

pub struct Head {
    pub id: String,
    pub port: u16,
    /// The S3 API's port, with `GridOptions::s3`.
    pub s3_port: Option<u16>,
    pub proc: Proc,
}

pub struct ClusterServer {
    pub id: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub proc: Proc,
}

/// Fields drop in declaration order: the processes stop first, then ZooKeeper, and the
/// directory they all write to goes last.
pub struct Grid {
    pub heads: Vec<Head>,
    pub cluster: Vec<ClusterServer>,
    pub zk: ZkServer,
    pub options: GridOptions,
    /// The grid's CA, when `options.tls`.
    pub tls: Option<GridTls>,
    node_bin: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Grid {
    /// Starts ZooKeeper, the heads and the cluster servers, and waits until a leader sees
    /// every cluster server.
    pub fn start(node_bin: &Path, options: GridOptions) -> Self {
        let zk = ZkServer::start_with_heap(&options.zk_heap);
        let mut builder = tempfile::Builder::new();
        builder.prefix("filegrid-grid-");
        // TESTKIT_KEEP_DIRS=1 keeps each grid's logs and data for a look afterwards.
        if std::env::var_os("TESTKIT_KEEP_DIRS").is_some() {
            builder.disable_cleanup(true);
        }
        let dir = match &options.base_dir {
            Some(base) => builder.tempdir_in(base),
            None => builder.tempdir(),
        }
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let tls = options.tls.then(|| {
            let tls = GridTls::new(&dir.path().join("tls"), "FileGrid test CA");
            tls.issue("client");
            tls
        });
        let mut grid = Grid {
            tls,
            zk,
            dir,
            heads: Vec::new(),
            cluster: Vec::new(),
            options: options.clone(),
            node_bin: node_bin.to_path_buf(),
        };
        if options.zk_auth {
            let password = random_hex(16);
            std::fs::write(
                grid.dir.path().join(ZK_AUTH_FILE),
                format!("filegrid:{password}\n"),
            )
            .unwrap_or_else(|e| panic!("writing the ZooKeeper credential: {e}"));
        }
        for i in 1..=options.heads {
            grid.start_head(&format!("head_server_{i}"));
        }
        for i in 1..=options.cluster_servers {
            grid.start_cluster_server(&format!("cluster_server_{i}"));
        }
        grid.wait_cluster_live(options.cluster_servers, Duration::from_secs(30));
        grid
    }

    pub fn start_head(&mut self, id: &str) {
        let port = free_port();
        let index = self.heads.len();
        self.spawn_head(id, port, index);
    }

    /// Restarts head `index` (stopped or killed) on the same id and port, so clients that
    /// know its address find it again.
    pub fn restart_head(&mut self, index: usize) {
        let (id, port) = {
            let h = &self.heads[index];
            (h.id.clone(), h.port)
        };
        self.spawn_head(&id, port, index);
    }

    fn spawn_head(&mut self, id: &str, port: u16, index: usize) {
        let o = &self.options;
        let mut args: Vec<String> = vec![
            "head".into(),
            "--server-id".into(),
            id.into(),
            "--zk-hosts".into(),
            self.zk.hosts(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--session-timeout".into(),
            o.session_timeout.clone(),
            "--chunk-size".into(),
            o.chunk_size.clone(),
            "--dead-after".into(),
            o.dead_after.clone(),
            "--orphan-grace".into(),
            o.orphan_grace.clone(),
            "--replication-factor".into(),
            o.replication_factor.to_string(),
            "--min-write-replicas".into(),
            o.min_write_replicas.to_string(),
            "--startup-grace".into(),
            "0s".into(),
        ];
        args.extend(self.security_args(true));
        if o.anonymous_read {
            args.push("--anonymous-read".into());
        }
        args.extend(self.zk_auth_args());
        args.extend(self.tls_args(id));
        // A restarted head keeps its S3 port.
        let s3_port = match self.heads.get(index) {
            Some(h) => h.s3_port,
            None => o.s3.then(free_port),
        };
        if let Some(p) = s3_port {
            args.push("--s3-listen".into());
            args.push(format!("127.0.0.1:{p}"));
        }
        args.extend(o.extra_head_args.iter().cloned());
        let proc = self.spawn(id, &args);
        let head = Head {
            id: id.into(),
            port,
            s3_port,
            proc,
        };
        if index < self.heads.len() {
            self.heads[index] = head;
        } else {
            self.heads.push(head);
        }
    }

    pub fn start_cluster_server(&mut self, id: &str) {
        let index = self.cluster.len();
        let port = free_port();
        let data_dir = self.dir.path().join(id);
        self.spawn_cluster_server(id, port, data_dir, index);
    }

    fn spawn_cluster_server(&mut self, id: &str, port: u16, data_dir: PathBuf, index: usize) {
        let mut args: Vec<String> = vec![
            "cluster".into(),
            "--server-id".into(),
            id.into(),
            "--zk-hosts".into(),
            self.zk.hosts(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--session-timeout".into(),
            self.options.session_timeout.clone(),
            "--heartbeat-interval".into(),
            self.options.heartbeat_interval.clone(),
        ];
        args.extend(self.security_args(false));
        if let Some(Some(c)) = self.options.capacities.get(index) {
            args.push("--capacity".into());
            args.push(c.clone());
        }
        args.extend(self.zk_auth_args());
        args.extend(self.tls_args(id));
        args.extend(self.options.extra_cluster_args.iter().cloned());
        let proc = self.spawn(id, &args);
        let server = ClusterServer {
            id: id.into(),
            port,
            data_dir,
            proc,
        };
        if index < self.cluster.len() {
            self.cluster[index] = server;
        } else {
            self.cluster.push(server);
        }
    }

    /// The flags that give a process the grid's secrets (or `--insecure`).
    fn security_args(&self, head: bool) -> Vec<String> {
        if self.options.insecure {
            return vec!["--insecure".into()];
        }
        let dir = self.dir.path();
        let secret = dir.join("cluster-secret");
        let credentials = dir.join("credentials.toml");
        if !secret.exists() {
            crate::auth::write_cluster_secret(&secret);
            crate::auth::write_credentials(&credentials);
        }
        let mut args = vec!["--cluster-secret-file".into(), secret.display().to_string()];
        if head {
            args.push("--credentials-file".into());
            args.push(credentials.display().to_string());
        }
        args
    }

    /// Path of the grid's cluster secret (absent when insecure).
    pub fn cluster_secret_file(&self) -> PathBuf {
        self.dir.path().join("cluster-secret")
    }

    /// The TLS flags of process `id`; its certificate is made on first use.
    fn tls_args(&self, id: &str) -> Vec<String> {
        let Some(tls) = &self.tls else {
            return Vec::new();
        };
        let files = tls.files(id);
        let files = if files.cert.exists() {
            files
        } else {
            tls.issue(id)
        };
        tls.server_args(&files, self.options.mutual_tls)
    }

    /// `https` when the grid runs TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The certificate test clients present (`client`, issued by the grid's CA).
    pub fn client_cert(&self) -> Option<CertFiles> {
        self.tls.as_ref().map(|t| t.files("client"))
    }

    /// A reqwest-independent GET of `path` on a loopback port of this grid (TLS when on);
    /// `None` unless 200.
    pub fn get(&self, port: u16, path: &str) -> Option<String> {
        match &self.tls {
            None => http_get(port, path),
            Some(tls) => {
                let config = tls.client_config(Some(&tls.files("client")));
                crate::tls::https_get(&config, port, path)
            }
        }
    }

    fn spawn(&self, id: &str, args: &[String]) -> Proc {
        match &self.options.log_filter {
            Some(filter) => Proc::spawn_with(
                id,
                &self.node_bin,
                args,
                self.dir.path(),
                &[("RUST_LOG", filter.as_str())],
                std::process::Stdio::null(),
            ),
            None => Proc::spawn(id, &self.node_bin, args, self.dir.path()),
        }
    }

    /// The credential file every process gets (with [`GridOptions::zk_auth`]).
    pub fn zk_auth_file(&self) -> Option<PathBuf> {
        self.options
            .zk_auth
            .then(|| self.dir.path().join(ZK_AUTH_FILE))
    }

    /// `--zk-auth-file <file>` when the grid has a credential, for any FileGrid process.
    pub fn zk_auth_args(&self) -> Vec<String> {
        match self.zk_auth_file() {
            Some(f) => vec!["--zk-auth-file".into(), f.display().to_string()],
            None => Vec::new(),
        }
    }

    /// Restarts a stopped cluster server on the same port and data.
    pub fn restart_cluster_server(&mut self, index: usize) {
        let (id, port, dir) = {
            let c = &self.cluster[index];
            (c.id.clone(), c.port, c.data_dir.clone())
        };
        self.spawn_cluster_server(&id, port, dir, index);
    }

    /// `http://127.0.0.1:<port>` of head `i` (`https://` when the grid runs TLS).
    pub fn head_url(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.heads[i].port)
    }

    /// The S3 endpoint of head `i` (with `GridOptions::s3`).
    pub fn s3_url(&self, i: usize) -> String {
        let port = self.heads[i]
            .s3_port
            .unwrap_or_else(|| panic!("head {i} serves no S3 API: set GridOptions::s3"));
        format!("{}://127.0.0.1:{port}", self.scheme())
    }

    pub fn cluster_url(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.cluster[i].port)
    }

    /// The leader's URL, asking any head that answers.
    pub fn leader_url(&self, timeout: Duration) -> String {
        wait_until_sync(timeout, "a leader", || {
            self.heads.iter().find_map(|h| {
                let body = self.get(h.port, "/v1/leader")?;
                let l: LeaderView = serde_json::from_str(&body).ok()?;
                let scheme = if l.tls { "https" } else { "http" };
                Some(format!("{scheme}://{}:{}", l.host, l.api_port))
            })
        })
    }

    /// The index of a head that is a standby and knows the leader, waiting for one.
    pub fn standby(&self, timeout: Duration) -> usize {
        wait_until_sync(timeout, "a standby that knows the leader", || {
            self.heads.iter().position(|h| {
                self.get(h.port, "/v1/status")
                    .and_then(|body| serde_json::from_str::<StatusView>(&body).ok())
                    .is_some_and(|st| st.status.role == Role::Standby && st.status.leader.is_some())
            })
        })
    }

    /// Waits until the leader lists `n` cluster servers as live.
    pub fn wait_cluster_live(&self, n: usize, timeout: Duration) {
        wait_until_sync(timeout, &format!("{n} live cluster servers"), || {
            let leader = self.leader_url(timeout);
            let port: u16 = leader.rsplit(':').next()?.parse().ok()?;
            let body = self.get(port, "/v1/cluster")?;
            let servers: Vec<ServerView> = serde_json::from_str(&body).ok()?;
            let live = servers
                .iter()
                .filter(|s| s.state == ServerState::Live)
                .count();
            (live >= n).then_some(())
        })
    }

    /// The chunk ids and replica servers of the file at `path`, read from ZooKeeper directly
    /// (see [`Self::manifest_chunks`]); empty for a directory. Panics when there is no such
    /// file: for tests.
    pub fn manifest(&self, path: &str) -> Vec<(String, Vec<String>)> {
        self.manifest_chunks(path)
    }

    /// The chunk ids and replica servers of the file at `path`, read from ZooKeeper directly,
    /// whether its chunk list is inline or split into parts under `manifests/<file_id>/`.
    /// Panics when there is no such file or a part is missing: for tests.
    pub fn manifest_chunks(&self, path: &str) -> Vec<(String, Vec<String>)> {
        let (inline, parts) = self.read_manifest(path);
        inline
            .into_iter()
            .chain(parts.into_iter().flat_map(|(_, p)| p.chunks))
            .map(|c| (c.id, c.replicas.into_iter().map(String::from).collect()))
            .collect()
    }

    /// The parts of the file at `path` whose chunk list is split under
    /// `manifests/<file_id>/`: each part's data version in ZooKeeper (how often it was
    /// rewritten) and its chunk ids, in order; empty for an inline list. Panics when there is
    /// no such file: for tests.
    pub fn manifest_parts(&self, path: &str) -> Vec<(i32, Vec<String>)> {
        self.read_manifest(path)
            .1
            .into_iter()
            .map(|(version, p)| (version, p.chunks.into_iter().map(|c| c.id).collect()))
            .collect()
    }

    /// The file node's inline chunk list and its manifest parts with their data versions,
    /// read from ZooKeeper; both empty for a directory.
    fn read_manifest(
        &self,
        path: &str,
    ) -> (
        Vec<filegrid_proto::manifest::ChunkRef>,
        Vec<(i32, filegrid_proto::manifest::Part)>,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the ZooKeeper read");
        rt.block_on(async {
            let c = zookeeper_client::Client::connect(&self.zk.hosts())
                .await
                .expect("connect to the grid's ZooKeeper");
            let (data, _) = c
                .get_data(&format!("/distributed_file_grid/files/{path}"))
                .await
                .unwrap_or_else(|e| panic!("no file node for {path}: {e}"));
            let entry: filegrid_proto::manifest::Entry =
                serde_json::from_slice(&data).expect("a file node FileGrid wrote");
            let Some(file) = entry.file else {
                return (Vec::new(), Vec::new());
            };
            let mut parts = Vec::new();
            for i in 0..file.parts {
                let part = format!("/distributed_file_grid/manifests/{}/{i:06}", file.file_id);
                let (data, stat) = c
                    .get_data(&part)
                    .await
                    .unwrap_or_else(|e| panic!("no manifest part {part}: {e}"));
                let part: filegrid_proto::manifest::Part =
                    serde_json::from_slice(&data).expect("a manifest part FileGrid wrote");
                parts.push((stat.version, part));
            }
            (file.chunks, parts)
        })
    }

    /// The children of `path` (below the grid's root, e.g. `manifests`) in ZooKeeper; empty
    /// when it does not exist.
    pub fn zk_children(&self, path: &str) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the ZooKeeper read");
        rt.block_on(async {
            let c = zookeeper_client::Client::connect(&self.zk.hosts())
                .await
                .expect("connect to the grid's ZooKeeper");
            match c
                .list_children(&format!("/distributed_file_grid/{path}"))
                .await
            {
                Ok(names) => names,
                Err(zookeeper_client::Error::NoNode) => Vec::new(),
                Err(e) => panic!("children of {path}: {e}"),
            }
        })
    }

    /// Path of a chunk's file on a cluster server's disk.
    pub fn chunk_file(&self, server: usize, chunk_id: &str) -> PathBuf {
        self.cluster[server].data_dir.join("chunks").join(chunk_id)
    }
}

/// Name of the generated credential file in the grid's dir.
const ZK_AUTH_FILE: &str = "zk-auth";

/// `bytes` random bytes from the kernel, as hex.
fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .unwrap_or_else(|e| panic!("/dev/urandom: {e}"));
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A plain blocking HTTP GET on loopback with the test admin credential; `None` unless 200.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        crate::auth::ADMIN.token()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    // Bodies of these small JSON answers come with Content-Length (no chunked encoding).
    Some(body.to_string())
}
