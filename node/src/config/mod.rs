//! Settings for every role, from flags, `FILEGRID_*` environment variables and a TOML file.
//!
//! Flags and environment are parsed by clap (flags win); the TOML file fills what they leave
//! unset; defaults fill the rest. Every value goes through the same parser in [`values`]
//! wherever it comes from, and every error names the setting. See `docs/configuration.md`.

pub mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::ids::ServerId;
pub use values::LogFormat;

/// A setting could not be read or is invalid; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: unknown setting `{key}` (known settings for this role: {known})")]
    UnknownKey {
        path: PathBuf,
        key: String,
        known: String,
    },
    #[error("setting `{setting}`: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
    #[error(
        "setting `{setting}` is required: pass --{flag}, set FILEGRID_{env}, or put `{setting}` in the config file"
    )]
    Missing {
        setting: &'static str,
        flag: String,
        env: String,
    },
}

/// Settings shared by every role.
#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    /// TOML file with settings (keys are setting names, e.g. zk_hosts)
    #[arg(long, env = "FILEGRID_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// ZooKeeper connect string host:port[,host:port...] [default: 127.0.0.1:2181]
    #[arg(long, env = "FILEGRID_ZK_HOSTS", value_parser = values::zk_hosts)]
    pub zk_hosts: Option<String>,
    /// Root znode of this grid [default: /distributed_file_grid]
    #[arg(long, env = "FILEGRID_ZK_ROOT", value_parser = values::zk_root)]
    pub zk_root: Option<String>,
    /// ZooKeeper session timeout [default: 6s]
    #[arg(long, env = "FILEGRID_SESSION_TIMEOUT", value_parser = values::positive_duration)]
    pub session_timeout: Option<Duration>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "FILEGRID_LOG_FORMAT", value_parser = values::log_format)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub zk_hosts: String,
    pub zk_root: String,
    pub session_timeout: Duration,
    pub log_format: LogFormat,
}

pub const COMMON_KEYS: &[&str] = &["zk_hosts", "zk_root", "session_timeout", "log_format"];

/// Head server flags (`filegrid-node head`).
#[derive(Args, Debug, Clone, Default)]
pub struct HeadArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Unique id, e.g. head_server_1; the lowest id (natural order) leads
    #[arg(long, env = "FILEGRID_SERVER_ID", value_parser = values::server_id)]
    pub server_id: Option<ServerId>,
    /// Client API address [default: 0.0.0.0:9669]
    #[arg(long, env = "FILEGRID_LISTEN", value_parser = values::socket_addr)]
    pub listen: Option<SocketAddr>,
    /// Extra listener for /metrics, /health and /ready
    #[arg(long, env = "FILEGRID_METRICS_LISTEN", value_parser = values::socket_addr)]
    pub metrics_listen: Option<SocketAddr>,
    /// Host other processes use to reach this server [default: listen IP or host name]
    #[arg(long, env = "FILEGRID_ADVERTISE_HOST", value_parser = values::host)]
    pub advertise_host: Option<String>,
    /// Take leadership back from a higher id when this head is the lowest healthy one
    #[arg(long, env = "FILEGRID_PREEMPT", num_args = 0..=1, default_missing_value = "true", value_parser = values::boolean)]
    pub preempt: Option<bool>,
    /// On a standby, forward leader-only calls to the leader instead of redirecting the client
    /// there (for clients that cannot reach the leader's advertised address) [default: false]
    #[arg(long, env = "FILEGRID_STANDBY_PROXY", num_args = 0..=1, default_missing_value = "true", value_parser = values::boolean)]
    pub standby_proxy: Option<bool>,
    /// At start, how long the lowest head waits for lower ids to register before claiming [default: 1s]
    #[arg(long, env = "FILEGRID_STARTUP_GRACE", value_parser = values::duration)]
    pub startup_grace: Option<Duration>,
    /// Replicas per chunk [default: 3]
    #[arg(long, env = "FILEGRID_REPLICATION_FACTOR", value_parser = values::replication_factor)]
    pub replication_factor: Option<u32>,
    /// Fewest replicas a write may be acknowledged with [default: 2]
    #[arg(long, env = "FILEGRID_MIN_WRITE_REPLICAS", value_parser = values::replication_factor)]
    pub min_write_replicas: Option<u32>,
    /// Chunk size [default: 8MiB]
    #[arg(long, env = "FILEGRID_CHUNK_SIZE", value_parser = values::positive_size)]
    pub chunk_size: Option<u64>,
    /// A cluster server silent this long is dead and its chunks are re-replicated [default: 30s]
    #[arg(long, env = "FILEGRID_DEAD_AFTER", value_parser = values::positive_duration)]
    pub dead_after: Option<Duration>,
    /// Chunks no file references are deleted after this long [default: 10m]
    #[arg(long, env = "FILEGRID_ORPHAN_GRACE", value_parser = values::positive_duration)]
    pub orphan_grace: Option<Duration>,
    /// Bytes per second re-replication may copy [default: 64MiB]
    #[arg(long, env = "FILEGRID_REPAIR_RATE", value_parser = values::positive_size)]
    pub repair_rate: Option<u64>,
    /// Largest file accepted [default: 1TiB]
    #[arg(long, env = "FILEGRID_MAX_FILE_SIZE", value_parser = values::positive_size)]
    pub max_file_size: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct HeadConfig {
    pub common: CommonConfig,
    pub server_id: ServerId,
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub advertise_host: String,
    pub preempt: bool,
    pub standby_proxy: bool,
    pub startup_grace: Duration,
    pub replication_factor: u32,
    pub min_write_replicas: u32,
    pub chunk_size: u64,
    pub dead_after: Duration,
    pub orphan_grace: Duration,
    pub repair_rate: u64,
    pub max_file_size: u64,
}

const HEAD_KEYS: &[&str] = &[
    "server_id",
    "listen",
    "metrics_listen",
    "advertise_host",
    "preempt",
    "standby_proxy",
    "startup_grace",
    "replication_factor",
    "min_write_replicas",
    "chunk_size",
    "dead_after",
    "orphan_grace",
    "repair_rate",
    "max_file_size",
];

/// Cluster server flags (`filegrid-node cluster`).
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Unique id, e.g. cluster_server_1
    #[arg(long, env = "FILEGRID_SERVER_ID", value_parser = values::server_id)]
    pub server_id: Option<ServerId>,
    /// Chunk API address [default: 0.0.0.0:9700]
    #[arg(long, env = "FILEGRID_LISTEN", value_parser = values::socket_addr)]
    pub listen: Option<SocketAddr>,
    /// Extra listener for /metrics, /health and /ready
    #[arg(long, env = "FILEGRID_METRICS_LISTEN", value_parser = values::socket_addr)]
    pub metrics_listen: Option<SocketAddr>,
    /// Host other processes use to reach this server [default: listen IP or host name]
    #[arg(long, env = "FILEGRID_ADVERTISE_HOST", value_parser = values::host)]
    pub advertise_host: Option<String>,
    /// Directory where chunks are stored
    #[arg(long, env = "FILEGRID_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Failure zone label used by placement
    #[arg(long, env = "FILEGRID_ZONE", value_parser = values::zone)]
    pub zone: Option<String>,
    /// Bytes this server may use [default: the data disk's size]
    #[arg(long, env = "FILEGRID_CAPACITY", value_parser = values::positive_size)]
    pub capacity: Option<u64>,
    /// Background scrubber rate in bytes/s [default: 16MiB]
    #[arg(long, env = "FILEGRID_SCRUB_RATE", value_parser = values::positive_size)]
    pub scrub_rate: Option<u64>,
    /// Time between heartbeats to the leader head [default: 2s]
    #[arg(long, env = "FILEGRID_HEARTBEAT_INTERVAL", value_parser = values::positive_duration)]
    pub heartbeat_interval: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub common: CommonConfig,
    pub server_id: ServerId,
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub advertise_host: String,
    pub data_dir: PathBuf,
    pub zone: Option<String>,
    pub capacity: Option<u64>,
    pub scrub_rate: u64,
    pub heartbeat_interval: Duration,
}

const CLUSTER_KEYS: &[&str] = &[
    "server_id",
    "listen",
    "metrics_listen",
    "advertise_host",
    "data_dir",
    "zone",
    "capacity",
    "scrub_rate",
    "heartbeat_interval",
];

/// Monitor flags (`filegrid-node monitor`, `zk_head_server_monitor`).
#[derive(Args, Debug, Clone, Default)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Unique id of this monitor [default: <hostname>-<pid>]
    #[arg(long, env = "FILEGRID_MONITOR_ID", value_parser = values::server_id)]
    pub monitor_id: Option<ServerId>,
    /// Time between health checks of each head [default: 10s]
    #[arg(long, env = "FILEGRID_INTERVAL", value_parser = values::positive_duration)]
    pub interval: Option<Duration>,
    /// Time allowed for one check, TCP connect plus HTTP /health [default: 2s]
    #[arg(long, env = "FILEGRID_TIMEOUT", value_parser = values::positive_duration)]
    pub timeout: Option<Duration>,
    /// Failed checks in a row after which a hung leader is excluded [default: 3]
    #[arg(long, env = "FILEGRID_FAILURE_THRESHOLD", value_parser = values::failure_threshold)]
    pub failure_threshold: Option<u32>,
    /// Address for /metrics, /health and /ready [default: 0.0.0.0:9092]
    #[arg(long, env = "FILEGRID_METRICS_LISTEN", value_parser = values::socket_addr)]
    pub metrics_listen: Option<SocketAddr>,
    /// Interactive mode: read commands from stdin (works with pipes)
    #[arg(short = 'i', long)]
    pub interactive: bool,
}

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub common: CommonConfig,
    pub monitor_id: ServerId,
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub metrics_listen: SocketAddr,
    pub interactive: bool,
}

const MONITOR_KEYS: &[&str] = &[
    "monitor_id",
    "interval",
    "timeout",
    "failure_threshold",
    "metrics_listen",
];

/// The TOML file's values, checked against the keys a role knows.
struct FileLayer {
    path: PathBuf,
    table: toml::Table,
}

impl FileLayer {
    fn load(path: Option<&Path>, role_keys: &[&str]) -> Result<Option<Self>, ConfigError> {
        let Some(path) = path else { return Ok(None) };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_owned(),
                    message: e.to_string().trim().replace('\n', " "),
                })?;
        for key in table.keys() {
            if !COMMON_KEYS.contains(&key.as_str()) && !role_keys.contains(&key.as_str()) {
                let mut known: Vec<&str> = COMMON_KEYS.iter().chain(role_keys).copied().collect();
                known.sort_unstable();
                return Err(ConfigError::UnknownKey {
                    path: path.to_owned(),
                    key: key.clone(),
                    known: known.join(", "),
                });
            }
        }
        Ok(Some(Self {
            path: path.to_owned(),
            table,
        }))
    }
}

/// Resolves one setting: the flag/env value if set, else the file's, parsed by `parse`.
fn layer<T>(
    file: &Option<FileLayer>,
    setting: &'static str,
    cli: Option<T>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    if cli.is_some() {
        return Ok(cli);
    }
    let Some(file) = file else { return Ok(None) };
    let Some(value) = file.table.get(setting) else {
        return Ok(None);
    };
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => {
            return Err(ConfigError::Invalid {
                setting,
                message: format!(
                    "in {}: expected a string, number or boolean, got {}",
                    file.path.display(),
                    other.type_str()
                ),
            });
        }
    };
    parse(&text)
        .map(Some)
        .map_err(|message| ConfigError::Invalid {
            setting,
            message: format!("in {}: {message}", file.path.display()),
        })
}

fn required<T>(setting: &'static str, v: Option<T>) -> Result<T, ConfigError> {
    v.ok_or_else(|| ConfigError::Missing {
        setting,
        flag: setting.replace('_', "-"),
        env: setting.to_ascii_uppercase(),
    })
}

fn common(args: CommonArgs, file: &Option<FileLayer>) -> Result<CommonConfig, ConfigError> {
    Ok(CommonConfig {
        zk_hosts: layer(file, "zk_hosts", args.zk_hosts, values::zk_hosts)?
            .unwrap_or_else(|| "127.0.0.1:2181".into()),
        zk_root: layer(file, "zk_root", args.zk_root, values::zk_root)?
            .unwrap_or_else(|| "/distributed_file_grid".into()),
        session_timeout: layer(
            file,
            "session_timeout",
            args.session_timeout,
            values::positive_duration,
        )?
        .unwrap_or(Duration::from_secs(6)),
        log_format: layer(file, "log_format", args.log_format, values::log_format)?
            .unwrap_or_default(),
    })
}

/// The host name peers should use when a server listens on `listen` and no host was given.
pub fn default_advertise_host(listen: &SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    } else {
        listen.ip().to_string()
    }
}

/// The settings every server role has: who it is and where it listens.
struct ServerSettings {
    server_id: ServerId,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    advertise_host: String,
}

fn server_settings(
    file: &Option<FileLayer>,
    server_id: Option<ServerId>,
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    advertise_host: Option<String>,
    default_port: u16,
) -> Result<ServerSettings, ConfigError> {
    let server_id = required(
        "server_id",
        layer(file, "server_id", server_id, values::server_id)?,
    )?;
    let listen = layer(file, "listen", listen, values::socket_addr)?
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port)));
    let metrics_listen = layer(file, "metrics_listen", metrics_listen, values::socket_addr)?;
    let advertise_host = layer(file, "advertise_host", advertise_host, values::host)?
        .unwrap_or_else(|| default_advertise_host(&listen));
    Ok(ServerSettings {
        server_id,
        listen,
        metrics_listen,
        advertise_host,
    })
}

impl HeadArgs {
    pub fn resolve(self) -> Result<HeadConfig, ConfigError> {
        let file = FileLayer::load(self.common.config.as_deref(), HEAD_KEYS)?;
        let common = common(self.common, &file)?;
        let ServerSettings {
            server_id,
            listen,
            metrics_listen,
            advertise_host,
        } = server_settings(
            &file,
            self.server_id,
            self.listen,
            self.metrics_listen,
            self.advertise_host,
            9669,
        )?;
        let preempt = layer(&file, "preempt", self.preempt, values::boolean)?.unwrap_or(false);
        let standby_proxy =
            layer(&file, "standby_proxy", self.standby_proxy, values::boolean)?.unwrap_or(false);
        let startup_grace = layer(&file, "startup_grace", self.startup_grace, values::duration)?
            .unwrap_or(Duration::from_secs(1));
        let replication_factor = layer(
            &file,
            "replication_factor",
            self.replication_factor,
            values::replication_factor,
        )?
        .unwrap_or(3);
        let min_write_replicas = layer(
            &file,
            "min_write_replicas",
            self.min_write_replicas,
            values::replication_factor,
        )?
        .unwrap_or(replication_factor.min(2));
        if min_write_replicas > replication_factor {
            return Err(ConfigError::Invalid {
                setting: "min_write_replicas",
                message: format!(
                    "{min_write_replicas} is more than replication_factor ({replication_factor})"
                ),
            });
        }
        let chunk_size =
            layer(&file, "chunk_size", self.chunk_size, values::positive_size)?.unwrap_or(8 << 20);
        if !(4096..=(1 << 30)).contains(&chunk_size) {
            return Err(ConfigError::Invalid {
                setting: "chunk_size",
                message: format!("must be between 4KiB and 1GiB, got {chunk_size} bytes"),
            });
        }
        let dead_after = layer(
            &file,
            "dead_after",
            self.dead_after,
            values::positive_duration,
        )?
        .unwrap_or(Duration::from_secs(30));
        let orphan_grace = layer(
            &file,
            "orphan_grace",
            self.orphan_grace,
            values::positive_duration,
        )?
        .unwrap_or(Duration::from_secs(600));
        let repair_rate = layer(
            &file,
            "repair_rate",
            self.repair_rate,
            values::positive_size,
        )?
        .unwrap_or(64 << 20);
        let max_file_size = layer(
            &file,
            "max_file_size",
            self.max_file_size,
            values::positive_size,
        )?
        .unwrap_or(1 << 40);
        Ok(HeadConfig {
            common,
            server_id,
            listen,
            metrics_listen,
            advertise_host,
            preempt,
            standby_proxy,
            startup_grace,
            replication_factor,
            min_write_replicas,
            chunk_size,
            dead_after,
            orphan_grace,
            repair_rate,
            max_file_size,
        })
    }
}

impl ClusterArgs {
    pub fn resolve(self) -> Result<ClusterConfig, ConfigError> {
        let file = FileLayer::load(self.common.config.as_deref(), CLUSTER_KEYS)?;
        let common = common(self.common, &file)?;
        let ServerSettings {
            server_id,
            listen,
            metrics_listen,
            advertise_host,
        } = server_settings(
            &file,
            self.server_id,
            self.listen,
            self.metrics_listen,
            self.advertise_host,
            9700,
        )?;
        let data_dir = required(
            "data_dir",
            layer(&file, "data_dir", self.data_dir, |s| {
                if s.trim().is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(PathBuf::from(s))
                }
            })?,
        )?;
        Ok(ClusterConfig {
            common,
            server_id,
            listen,
            metrics_listen,
            advertise_host,
            data_dir,
            zone: layer(&file, "zone", self.zone, values::zone)?,
            capacity: layer(&file, "capacity", self.capacity, values::positive_size)?,
            scrub_rate: layer(&file, "scrub_rate", self.scrub_rate, values::positive_size)?
                .unwrap_or(16 << 20),
            heartbeat_interval: layer(
                &file,
                "heartbeat_interval",
                self.heartbeat_interval,
                values::positive_duration,
            )?
            .unwrap_or(Duration::from_secs(2)),
        })
    }
}

impl MonitorArgs {
    pub fn resolve(self) -> Result<MonitorConfig, ConfigError> {
        let file = FileLayer::load(self.common.config.as_deref(), MONITOR_KEYS)?;
        let common = common(self.common, &file)?;
        let monitor_id = match layer(&file, "monitor_id", self.monitor_id, values::server_id)? {
            Some(id) => id,
            None => {
                let host = default_advertise_host(&SocketAddr::from(([0, 0, 0, 0], 0)));
                let short = host.split('.').next().unwrap_or("monitor").to_string();
                values::server_id(&format!("{short}-{}", std::process::id())).map_err(
                    |message| ConfigError::Invalid {
                        setting: "monitor_id",
                        message: format!("cannot derive one from the host name: {message}"),
                    },
                )?
            }
        };
        let interval = layer(&file, "interval", self.interval, values::positive_duration)?
            .unwrap_or(Duration::from_secs(10));
        let timeout = layer(&file, "timeout", self.timeout, values::positive_duration)?
            .unwrap_or(Duration::from_secs(2));
        if timeout > interval {
            return Err(ConfigError::Invalid {
                setting: "timeout",
                message: format!(
                    "{} is longer than interval ({}); a check must finish before the next starts",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            });
        }
        Ok(MonitorConfig {
            common,
            monitor_id,
            interval,
            timeout,
            failure_threshold: layer(
                &file,
                "failure_threshold",
                self.failure_threshold,
                values::failure_threshold,
            )?
            .unwrap_or(3),
            metrics_listen: layer(
                &file,
                "metrics_listen",
                self.metrics_listen,
                values::socket_addr,
            )?
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 9092))),
            interactive: self.interactive,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn file_fills_what_flags_leave_unset() {
        let f = file(
            "server_id = \"head_server_3\"\nlisten = \"127.0.0.1:7000\"\nsession_timeout = \"3s\"\npreempt = true\n",
        );
        let args = HeadArgs {
            common: CommonArgs {
                config: Some(f.path().into()),
                ..Default::default()
            },
            listen: Some("127.0.0.1:8000".parse().unwrap()),
            ..Default::default()
        };
        let cfg = args.resolve().unwrap();
        assert_eq!(cfg.server_id.as_str(), "head_server_3");
        assert_eq!(cfg.listen.port(), 8000, "flag wins over file");
        assert_eq!(cfg.common.session_timeout, Duration::from_secs(3));
        assert!(cfg.preempt);
        assert_eq!(cfg.advertise_host, "127.0.0.1");
        assert_eq!(cfg.common.zk_root, "/distributed_file_grid");
    }

    #[test]
    fn unknown_key_is_named() {
        let f = file("server_id = \"h1\"\nlisten_addr = \"x\"\n");
        let args = HeadArgs {
            common: CommonArgs {
                config: Some(f.path().into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("unknown setting `listen_addr`"), "{err}");
    }

    #[test]
    fn bad_file_value_is_named() {
        let f = file("interval = \"0s\"\n");
        let args = MonitorArgs {
            common: CommonArgs {
                config: Some(f.path().into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("setting `interval`"), "{err}");
        assert!(err.contains("greater than zero"), "{err}");
    }

    #[test]
    fn missing_server_id_is_named() {
        let err = HeadArgs::default().resolve().unwrap_err().to_string();
        assert!(err.contains("`server_id` is required"), "{err}");
        assert!(err.contains("FILEGRID_SERVER_ID"), "{err}");
    }

    #[test]
    fn timeout_longer_than_interval_is_rejected() {
        let args = MonitorArgs {
            interval: Some(Duration::from_secs(1)),
            timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("setting `timeout`"), "{err}");
    }

    #[test]
    fn min_write_replicas_cannot_exceed_replication_factor() {
        let args = HeadArgs {
            server_id: Some(ServerId::new("h").unwrap()),
            replication_factor: Some(2),
            min_write_replicas: Some(3),
            ..Default::default()
        };
        let err = args.resolve().unwrap_err().to_string();
        assert!(err.contains("min_write_replicas"), "{err}");
    }
}
