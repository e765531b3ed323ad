//! A standalone ZooKeeper server from Debian's `zookeeper` package, in a temp dir, on a free
//! loopback port. Stop and start it again on the same port and data to simulate an outage.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs ZooKeeper's jar (its manifest names the dependencies).
const DEBIAN_JAR: &str = "/usr/share/java/zookeeper.jar";

/// The Java heap a test's ZooKeeper gets (`-Xmx`): ample for test namespaces.
pub const DEFAULT_HEAP: &str = "256m";

pub struct ZkServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    heap: String,
}

impl ZkServer {
    /// Starts a server and waits until it answers `ruok`.
    pub fn start() -> Self {
        Self::start_with_heap(DEFAULT_HEAP)
    }

    /// [`ZkServer::start`] with a Java heap of `heap` (`-Xmx`, e.g. `2g`).
    pub fn start_with_heap(heap: &str) -> Self {
        let jar = std::env::var("FILEGRID_ZK_CLASSPATH").unwrap_or_else(|_| DEBIAN_JAR.into());
        if !Path::new(jar.split(':').next().unwrap_or_default()).exists() {
            panic!(
                "ZooKeeper is not installed ({jar} missing): run `sudo apt-get install zookeeper default-jre-headless` \
                 or set FILEGRID_ZK_CLASSPATH"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("filegrid-zk-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let port = crate::free_port();
        let mut zk = Self {
            port,
            dir,
            child: None,
            heap: heap.to_string(),
        };
        zk.write_config();
        zk.start_again();
        zk
    }

    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Process id of the server, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("zoo.cfg")
    }

    fn write_config(&self) {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("zk data dir: {e}"));
        // A short tick lets tests use session timeouts from 500 ms up to 60 s.
        let cfg = format!(
            "tickTime=250\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nmaxSessionTimeout=60000\nmaxClientCnxns=0\n\
             4lw.commands.whitelist=ruok,srvr,mntr,cons\n",
            data.display(),
            self.port
        );
        std::fs::write(self.config_path(), cfg).unwrap_or_else(|e| panic!("zoo.cfg: {e}"));
    }

    /// (Re)starts the server on the same port and data, and waits until it serves.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let jar = std::env::var("FILEGRID_ZK_CLASSPATH").unwrap_or_else(|_| DEBIAN_JAR.into());
        let log = std::fs::File::create(self.dir.path().join("zookeeper.log"))
            .unwrap_or_else(|e| panic!("zk log: {e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("zk log: {e}"));
        let child = Command::new("java")
            .arg(format!("-Xmx{}", self.heap))
            .args([
                "-XX:+UseSerialGC",
                "-Dzookeeper.admin.enableServer=false",
                "-cp",
                &jar,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start java for ZooKeeper: {e}"));
        self.child = Some(child);
        let start = Instant::now();
        while !self.answers_ruok() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "ZooKeeper exited with {status} at start: {}",
                    std::fs::read_to_string(self.dir.path().join("zookeeper.log"))
                        .unwrap_or_default()
                );
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!("ZooKeeper did not answer ruok within 60s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (SIGKILL): an abrupt outage; data stays for [`Self::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn answers_ruok(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"ruok").is_err() {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf == "imok"
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.stop();
    }
}
