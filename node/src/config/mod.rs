//! Settings for every role, from flags, `FILEGRID_*` environment variables and a TOML file.
//!
//! Flags and environment are parsed by clap (flags win); the TOML file fills what they leave
//! unset; defaults fill the rest. The layers are merged generically: each is a table of the
//! role's file struct from `filegrid_proto::config` (the flags by serializing the args struct,
//! the defaults from [`RoleFile::defaults`]), so a setting is declared once per layer and
//! nowhere listed by hand. Every value goes through the same parser in [`values`] wherever it
//! comes from, and every error names the setting. See `docs/configuration.md`.

pub mod env;
pub mod values;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use filegrid_proto::config::{ClusterFile, HeadFile, MonitorFile, RoleFile, rule};
use serde::Serialize;

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
    #[error(
        "environment variable {name} is not a setting of the {role}{}",
        suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default()
    )]
    UnknownEnv {
        name: String,
        role: &'static str,
        suggestion: Option<String>,
    },
    /// A value from flags or environment that the file format cannot carry (a non-UTF-8 path).
    #[error("settings: {message}")]
    Layering { message: String },
}

/// Settings shared by every role.
#[derive(Args, Debug, Clone, Default, Serialize)]
pub struct CommonArgs {
    /// TOML file with settings (keys are setting names, e.g. zk_hosts)
    #[arg(long, env = "FILEGRID_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// ZooKeeper connect string host:port[,host:port...] [default: 127.0.0.1:2181]
    #[arg(long, env = "FILEGRID_ZK_HOSTS", value_parser = values::zk_hosts)]
    pub zk_hosts: Option<String>,
    /// Root znode of this grid [default: /distributed_file_grid]
    #[arg(long, env = "FILEGRID_ZK_ROOT", value_parser = values::zk_root)]
    pub zk_root: Option<String>,
    /// ZooKeeper session timeout [default: 6s]
    #[arg(long, env = "FILEGRID_SESSION_TIMEOUT", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub session_timeout: Option<Duration>,
    /// Log format: text or json [default: text]
    #[arg(long, env = "FILEGRID_LOG_FORMAT", value_parser = values::log_format)]
    #[serde(serialize_with = "rule::serialize")]
    pub log_format: Option<LogFormat>,
    /// Run without security (no cluster secret, client credentials or TLS); logs a warning
    #[arg(long, env = "FILEGRID_INSECURE", num_args = 0..=1, default_missing_value = "true", value_parser = values::boolean)]
    pub insecure: Option<bool>,
    /// File holding the cluster secret heads and cluster servers sign requests with
    #[arg(long, env = "FILEGRID_CLUSTER_SECRET_FILE", value_parser = values::path, value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// File holding `user:password`, the ZooKeeper digest credential
    #[arg(long, env = "FILEGRID_ZK_AUTH_FILE", value_parser = values::path, value_name = "FILE")]
    pub zk_auth_file: Option<PathBuf>,
    /// PEM certificate chain of this process's listeners (TLS on with --tls-key)
    #[arg(long, env = "FILEGRID_TLS_CERT", value_parser = values::path, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "FILEGRID_TLS_KEY", value_parser = values::path, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates client certificates must chain to (mutual TLS)
    #[arg(long, env = "FILEGRID_TLS_CLIENT_CA", value_parser = values::path, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// PEM CA certificates trusted when calling other FileGrid servers over TLS
    #[arg(long, env = "FILEGRID_TLS_CA", value_parser = values::path, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Connections served at once per listener; more get 503 [default: 1024]
    #[arg(long, env = "FILEGRID_MAX_CONNECTIONS", value_parser = values::max_connections)]
    pub max_connections: Option<u32>,
    /// Time a client has to send a request's headers [default: 10s]
    #[arg(long, env = "FILEGRID_HEADER_READ_TIMEOUT", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub header_read_timeout: Option<Duration>,
    /// A connection with no request in progress is closed after this long [default: 60s]
    #[arg(long, env = "FILEGRID_IDLE_TIMEOUT", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub idle_timeout: Option<Duration>,
    /// Largest request head accepted; larger ones get 431 [default: 64KiB]
    #[arg(long, env = "FILEGRID_MAX_HEADER_BYTES", value_parser = values::header_bytes)]
    #[serde(serialize_with = "rule::serialize")]
    pub max_header_bytes: Option<u64>,
    /// How far a signed request's time may be from this server's clock [default: 30s]
    #[arg(long, env = "FILEGRID_SIGNATURE_WINDOW", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub signature_window: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub zk_hosts: String,
    pub zk_root: String,
    pub session_timeout: Duration,
    pub log_format: LogFormat,
    pub security: SecurityConfig,
    pub limits: ListenerLimits,
}

/// Where a process finds its secrets and certificates (the files are read at start).
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// Security was turned off on purpose.
    pub insecure: bool,
    pub cluster_secret_file: Option<PathBuf>,
    pub zk_auth_file: Option<PathBuf>,
    /// How to authenticate to ZooKeeper and which ACL nodes get: the credential of
    /// `zk_auth_file`, read once when the settings are resolved (open without it).
    pub zk_access: crate::zk::ZkAccess,
    /// The listeners' certificate and key, when TLS is on.
    pub tls: Option<TlsFiles>,
    pub tls_ca: Option<PathBuf>,
    pub signature_window: Duration,
}

/// A listener's certificate chain and key, and the CA client certificates must chain to.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// What one listener allows a client before it answers with an error or closes.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    pub max_connections: u32,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: u64,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 << 10,
        }
    }
}

/// Head server flags (`filegrid-node head`).
#[derive(Args, Debug, Clone, Default, Serialize)]
pub struct HeadArgs {
    #[command(flatten)]
    #[serde(flatten)]
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
    #[serde(serialize_with = "rule::serialize")]
    pub startup_grace: Option<Duration>,
    /// Replicas per chunk [default: 3]
    #[arg(long, env = "FILEGRID_REPLICATION_FACTOR", value_parser = values::replication_factor)]
    pub replication_factor: Option<u32>,
    /// Fewest replicas a write may be acknowledged with [default: 2]
    #[arg(long, env = "FILEGRID_MIN_WRITE_REPLICAS", value_parser = values::replication_factor)]
    pub min_write_replicas: Option<u32>,
    /// Chunk size [default: 8MiB]
    #[arg(long, env = "FILEGRID_CHUNK_SIZE", value_parser = values::positive_size)]
    #[serde(serialize_with = "rule::serialize")]
    pub chunk_size: Option<u64>,
    /// A cluster server silent this long is dead and its chunks are re-replicated [default: 30s]
    #[arg(long, env = "FILEGRID_DEAD_AFTER", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub dead_after: Option<Duration>,
    /// Chunks no file references are deleted after this long [default: 10m]
    #[arg(long, env = "FILEGRID_ORPHAN_GRACE", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub orphan_grace: Option<Duration>,
    /// Longest a head waits on a cluster server's answer to a chunk call other than an
    /// upload [default: 30s]
    #[arg(long, env = "FILEGRID_CHUNK_TIMEOUT", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub chunk_timeout: Option<Duration>,
    /// An upload's pipeline hop that moves no byte for this long, times the hops from it to
    /// the end of the pipeline, is given up [default: 10s]
    #[arg(long, env = "FILEGRID_HOP_PROGRESS_TIMEOUT", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub hop_progress_timeout: Option<Duration>,
    /// Bytes per second re-replication may copy [default: 64MiB]
    #[arg(long, env = "FILEGRID_REPAIR_RATE", value_parser = values::positive_size)]
    #[serde(serialize_with = "rule::serialize")]
    pub repair_rate: Option<u64>,
    /// Largest file accepted [default: 1TiB]
    #[arg(long, env = "FILEGRID_MAX_FILE_SIZE", value_parser = values::positive_size)]
    #[serde(serialize_with = "rule::serialize")]
    pub max_file_size: Option<u64>,
    /// File naming each client principal, its secret and its role (read, write, admin)
    #[arg(long, env = "FILEGRID_CREDENTIALS_FILE", value_parser = values::path, value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,
    /// Let clients without credentials read (GET, HEAD, list) [default: false]
    #[arg(long, env = "FILEGRID_ANONYMOUS_READ", num_args = 0..=1, default_missing_value = "true", value_parser = values::boolean)]
    pub anonymous_read: Option<bool>,
    /// Uploads in progress at once on this head; more get 503 with Retry-After [default: 64]
    #[arg(long, env = "FILEGRID_MAX_UPLOADS", value_parser = values::max_uploads)]
    pub max_uploads: Option<u32>,
    /// Memory for recently read or written small chunks, served without asking a cluster
    /// server; 0 turns the cache off [default: 1/16 of the memory the head may use, at most 2GiB]
    #[arg(long, env = "FILEGRID_READ_CACHE_SIZE", value_parser = values::size)]
    #[serde(serialize_with = "rule::serialize")]
    pub read_cache_size: Option<u64>,
    /// Largest chunk the read cache keeps (larger ones, of large files, pass it by) [default: 4MiB]
    #[arg(long, env = "FILEGRID_READ_CACHE_MAX_CHUNK", value_parser = values::positive_size)]
    #[serde(serialize_with = "rule::serialize")]
    pub read_cache_max_chunk: Option<u64>,
    /// S3 API address (e.g. 0.0.0.0:9000) [default: none, no S3 API]
    #[arg(long, env = "FILEGRID_S3_LISTEN", value_parser = values::socket_addr)]
    pub s3_listen: Option<SocketAddr>,
    /// Domain for virtual-host style S3 requests (<bucket>.<domain>) [default: path style only]
    #[arg(long, env = "FILEGRID_S3_DOMAIN", value_parser = values::host)]
    pub s3_domain: Option<String>,
    /// Region the S3 API reports; requests signed for any region are accepted [default: us-east-1]
    #[arg(long, env = "FILEGRID_S3_REGION")]
    pub s3_region: Option<String>,
    /// Multipart uploads neither completed nor aborted are collected after this long [default: 24h]
    #[arg(long, env = "FILEGRID_S3_MULTIPART_MAX_AGE", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub s3_multipart_max_age: Option<Duration>,
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
    pub chunk_timeout: Duration,
    pub hop_progress_timeout: Duration,
    pub repair_rate: u64,
    pub max_file_size: u64,
    /// `None` only when insecure.
    pub credentials_file: Option<PathBuf>,
    pub anonymous_read: bool,
    pub max_uploads: u32,
    /// `None`: sized from the memory the head may use.
    pub read_cache_size: Option<u64>,
    pub read_cache_max_chunk: u64,
    pub s3: S3Settings,
}

/// The S3 API's settings of a head.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `None`: no S3 listener.
    pub listen: Option<SocketAddr>,
    pub domain: Option<String>,
    pub region: String,
    pub multipart_max_age: Duration,
}

/// Cluster server flags (`filegrid-node cluster`).
#[derive(Args, Debug, Clone, Default, Serialize)]
pub struct ClusterArgs {
    #[command(flatten)]
    #[serde(flatten)]
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
    #[serde(serialize_with = "rule::serialize")]
    pub capacity: Option<u64>,
    /// Background scrubber rate in bytes/s [default: 16MiB]
    #[arg(long, env = "FILEGRID_SCRUB_RATE", value_parser = values::positive_size)]
    #[serde(serialize_with = "rule::serialize")]
    pub scrub_rate: Option<u64>,
    /// Pause between two scrubber passes over every chunk [default: 1m]
    #[arg(long, env = "FILEGRID_SCRUB_INTERVAL", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub scrub_interval: Option<Duration>,
    /// Time between heartbeats to the leader head [default: 2s]
    #[arg(long, env = "FILEGRID_HEARTBEAT_INTERVAL", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
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
    pub scrub_interval: Duration,
    pub heartbeat_interval: Duration,
}

/// Monitor flags (`filegrid-node monitor`, `zk_head_server_monitor`).
#[derive(Args, Debug, Clone, Default, Serialize)]
pub struct MonitorArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Unique id of this monitor [default: <hostname>-<pid>]
    #[arg(long, env = "FILEGRID_MONITOR_ID", value_parser = values::server_id)]
    pub monitor_id: Option<ServerId>,
    /// Time between health checks of each head [default: 10s]
    #[arg(long, env = "FILEGRID_INTERVAL", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub interval: Option<Duration>,
    /// Time allowed for one check, TCP connect plus HTTP /health [default: 2s]
    #[arg(long, env = "FILEGRID_TIMEOUT", value_parser = values::positive_duration)]
    #[serde(serialize_with = "rule::serialize")]
    pub timeout: Option<Duration>,
    /// Failed checks in a row after which a hung leader is excluded [default: 3]
    #[arg(long, env = "FILEGRID_FAILURE_THRESHOLD", value_parser = values::failure_threshold)]
    pub failure_threshold: Option<u32>,
    /// Address for /metrics, /health and /ready [default: 0.0.0.0:9092]
    #[arg(long, env = "FILEGRID_METRICS_LISTEN", value_parser = values::socket_addr)]
    pub metrics_listen: Option<SocketAddr>,
    /// Interactive mode: read commands from stdin (works with pipes)
    #[arg(short = 'i', long)]
    #[serde(skip)]
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

/// One role's settings after layering flags and environment over the file over the defaults.
struct Layered<F> {
    merged: F,
    /// The file and the keys whose values came from it, to say so in errors found later.
    file: Option<(PathBuf, BTreeSet<String>)>,
}

impl<F: RoleFile> Layered<F> {
    /// Merges the layers as tables of the role's file struct; later layers win key by key.
    fn gather(config: Option<&Path>, cli: &impl Serialize) -> Result<Self, ConfigError> {
        let cli = table(cli)?;
        let mut merged = table(&F::defaults())?;
        let mut file = None;
        if let Some(path) = config {
            // A value the flags override is not read, as if the file did not have it.
            let values: toml::Table = load_file::<F>(path)?
                .into_iter()
                .filter(|(key, _)| !cli.contains_key(key))
                .collect();
            typed::<F>(&values, &format!("in {}: ", path.display()))?;
            file = Some((path.to_owned(), values.keys().cloned().collect()));
            merged.extend(values);
        }
        merged.extend(cli);
        Ok(Self {
            merged: typed::<F>(&merged, "")?,
            file,
        })
    }

    /// An invalid value found after merging; says which file it came from, if one.
    fn invalid(&self, setting: &'static str, message: String) -> ConfigError {
        let message = match &self.file {
            Some((path, keys)) if keys.contains(setting) => {
                format!("in {}: {message}", path.display())
            }
            _ => message,
        };
        ConfigError::Invalid { setting, message }
    }

    /// Resolves an address setting (host names are looked up here, once).
    fn addr(&self, setting: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
        values::socket_addr(text).map_err(|m| self.invalid(setting, m))
    }
}

/// A layer as a table: `None` fields are left out.
fn table(layer: &impl Serialize) -> Result<toml::Table, ConfigError> {
    toml::Table::try_from(layer).map_err(|e| ConfigError::Layering {
        message: e.to_string(),
    })
}

/// The file's table, with every key checked against the role's.
fn load_file<F: RoleFile>(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
    if let Some(key) = table.keys().find(|k| !F::KEYS.contains(&k.as_str())) {
        let mut known = F::KEYS.to_vec();
        known.sort_unstable();
        return Err(ConfigError::UnknownKey {
            path: path.to_owned(),
            key: key.clone(),
            known: known.join(", "),
        });
    }
    Ok(table)
}

/// Reads `table` into the role's struct, one key at a time first so an error names its
/// setting; `prefix` says where the values came from.
fn typed<F: RoleFile>(table: &toml::Table, prefix: &str) -> Result<F, ConfigError> {
    for (key, value) in table {
        let Some(setting) = F::KEYS.iter().copied().find(|k| k == key) else {
            return Err(ConfigError::Layering {
                message: format!("`{key}` is not a {} setting", F::ROLE),
            });
        };
        let scalar = matches!(
            value,
            toml::Value::String(_)
                | toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
        );
        if !scalar {
            return Err(ConfigError::Invalid {
                setting,
                message: format!(
                    "{prefix}expected a string, number or boolean, got {}",
                    value.type_str()
                ),
            });
        }
        let one: toml::Table = [(key.clone(), value.clone())].into_iter().collect();
        if let Err(e) = one.try_into::<F>() {
            return Err(ConfigError::Invalid {
                setting,
                message: format!("{prefix}{}", e.message()),
            });
        }
    }
    table
        .clone()
        .try_into::<F>()
        .map_err(|e| ConfigError::Layering {
            message: e.message().to_string(),
        })
}

fn required<T>(setting: &'static str, v: Option<T>) -> Result<T, ConfigError> {
    v.ok_or_else(|| ConfigError::Missing {
        setting,
        flag: setting.replace('_', "-"),
        env: setting.to_ascii_uppercase(),
    })
}

fn common(file: filegrid_proto::config::CommonFile) -> Result<CommonConfig, ConfigError> {
    let tls = match (file.tls_cert, file.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            client_ca: file.tls_client_ca,
        }),
        (None, None) if file.tls_client_ca.is_some() => {
            return Err(ConfigError::Invalid {
                setting: "tls_client_ca",
                message: "needs tls_cert and tls_key: client certificates are asked for over TLS"
                    .into(),
            });
        }
        (None, None) => None,
        (Some(_), None) => return Err(needs("tls_cert", "tls_key")),
        (None, Some(_)) => return Err(needs("tls_key", "tls_cert")),
    };
    let zk_access = crate::zk::ZkAccess::from_file(file.zk_auth_file.as_deref()).map_err(|e| {
        ConfigError::Invalid {
            setting: "zk_auth_file",
            message: e.to_string(),
        }
    })?;
    Ok(CommonConfig {
        zk_hosts: required("zk_hosts", file.zk_hosts)?,
        zk_root: required("zk_root", file.zk_root)?,
        session_timeout: required("session_timeout", file.session_timeout)?,
        log_format: required("log_format", file.log_format)?,
        security: SecurityConfig {
            insecure: required("insecure", file.insecure)?,
            cluster_secret_file: file.cluster_secret_file,
            zk_auth_file: file.zk_auth_file,
            zk_access,
            tls,
            tls_ca: file.tls_ca,
            signature_window: required("signature_window", file.signature_window)?,
        },
        limits: ListenerLimits {
            max_connections: required("max_connections", file.max_connections)?,
            header_read_timeout: required("header_read_timeout", file.header_read_timeout)?,
            idle_timeout: required("idle_timeout", file.idle_timeout)?,
            max_header_bytes: required("max_header_bytes", file.max_header_bytes)?,
        },
    })
}

fn needs(setting: &'static str, other: &str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: format!("needs {other} too"),
    }
}

/// A setting security needs: present, or `insecure` turned on.
fn secure_required<T>(
    security: &SecurityConfig,
    setting: &'static str,
    v: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match v {
        Some(v) => Ok(Some(v)),
        None if security.insecure => Ok(None),
        None => Err(ConfigError::Invalid {
            setting,
            message: format!(
                "is required: pass --{}, set FILEGRID_{}, or put `{setting}` in the config file \
                 (see docs/security.md); to run without security set insecure = true",
                setting.replace('_', "-"),
                setting.to_ascii_uppercase()
            ),
        }),
    }
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

fn server_settings<F: RoleFile>(
    layered: &Layered<F>,
    server_id: Option<ServerId>,
    listen: Option<String>,
    metrics_listen: Option<String>,
    advertise_host: Option<String>,
) -> Result<ServerSettings, ConfigError> {
    let server_id = required("server_id", server_id)?;
    let listen = layered.addr("listen", &required("listen", listen)?)?;
    let metrics_listen = metrics_listen
        .map(|m| layered.addr("metrics_listen", &m))
        .transpose()?;
    let advertise_host = advertise_host.unwrap_or_else(|| default_advertise_host(&listen));
    Ok(ServerSettings {
        server_id,
        listen,
        metrics_listen,
        advertise_host,
    })
}

impl HeadArgs {
    pub fn resolve(self) -> Result<HeadConfig, ConfigError> {
        let layered = Layered::<HeadFile>::gather(self.common.config.as_deref(), &self)?;
        let f = layered.merged.clone();
        let common = common(f.common())?;
        let ServerSettings {
            server_id,
            listen,
            metrics_listen,
            advertise_host,
        } = server_settings(
            &layered,
            f.server_id,
            f.listen,
            f.metrics_listen,
            f.advertise_host,
        )?;
        let replication_factor = required("replication_factor", f.replication_factor)?;
        let min_write_replicas = f.min_write_replicas.unwrap_or(replication_factor.min(2));
        if min_write_replicas > replication_factor {
            return Err(ConfigError::Invalid {
                setting: "min_write_replicas",
                message: format!(
                    "{min_write_replicas} is more than replication_factor ({replication_factor})"
                ),
            });
        }
        let chunk_size = required("chunk_size", f.chunk_size)?;
        if !(4096..=(1 << 30)).contains(&chunk_size) {
            return Err(ConfigError::Invalid {
                setting: "chunk_size",
                message: format!("must be between 4KiB and 1GiB, got {chunk_size} bytes"),
            });
        }
        secure_required(
            &common.security,
            "cluster_secret_file",
            common.security.cluster_secret_file.as_ref(),
        )?;
        Ok(HeadConfig {
            server_id,
            listen,
            metrics_listen,
            advertise_host,
            preempt: required("preempt", f.preempt)?,
            standby_proxy: required("standby_proxy", f.standby_proxy)?,
            startup_grace: required("startup_grace", f.startup_grace)?,
            replication_factor,
            min_write_replicas,
            chunk_size,
            dead_after: required("dead_after", f.dead_after)?,
            orphan_grace: required("orphan_grace", f.orphan_grace)?,
            chunk_timeout: required("chunk_timeout", f.chunk_timeout)?,
            hop_progress_timeout: required("hop_progress_timeout", f.hop_progress_timeout)?,
            repair_rate: required("repair_rate", f.repair_rate)?,
            max_file_size: required("max_file_size", f.max_file_size)?,
            credentials_file: secure_required(
                &common.security,
                "credentials_file",
                f.credentials_file,
            )?,
            anonymous_read: required("anonymous_read", f.anonymous_read)?,
            max_uploads: required("max_uploads", f.max_uploads)?,
            read_cache_size: f.read_cache_size,
            read_cache_max_chunk: required("read_cache_max_chunk", f.read_cache_max_chunk)?,
            s3: S3Settings {
                listen: f
                    .s3_listen
                    .map(|a| layered.addr("s3_listen", &a))
                    .transpose()?,
                domain: f.s3_domain,
                region: required("s3_region", f.s3_region)?,
                multipart_max_age: required("s3_multipart_max_age", f.s3_multipart_max_age)?,
            },
            common,
        })
    }
}

impl ClusterArgs {
    pub fn resolve(self) -> Result<ClusterConfig, ConfigError> {
        let layered = Layered::<ClusterFile>::gather(self.common.config.as_deref(), &self)?;
        let f = layered.merged.clone();
        let common = common(f.common())?;
        let ServerSettings {
            server_id,
            listen,
            metrics_listen,
            advertise_host,
        } = server_settings(
            &layered,
            f.server_id,
            f.listen,
            f.metrics_listen,
            f.advertise_host,
        )?;
        secure_required(
            &common.security,
            "cluster_secret_file",
            common.security.cluster_secret_file.as_ref(),
        )?;
        Ok(ClusterConfig {
            common,
            server_id,
            listen,
            metrics_listen,
            advertise_host,
            data_dir: required("data_dir", f.data_dir)?,
            zone: f.zone,
            capacity: f.capacity,
            scrub_rate: required("scrub_rate", f.scrub_rate)?,
            scrub_interval: required("scrub_interval", f.scrub_interval)?,
            heartbeat_interval: required("heartbeat_interval", f.heartbeat_interval)?,
        })
    }
}

impl MonitorArgs {
    pub fn resolve(self) -> Result<MonitorConfig, ConfigError> {
        let interactive = self.interactive;
        let layered = Layered::<MonitorFile>::gather(self.common.config.as_deref(), &self)?;
        let f = layered.merged.clone();
        let common = common(f.common())?;
        let monitor_id = match f.monitor_id {
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
        let interval = required("interval", f.interval)?;
        let timeout = required("timeout", f.timeout)?;
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
            failure_threshold: required("failure_threshold", f.failure_threshold)?,
            metrics_listen: layered.addr(
                "metrics_listen",
                &required("metrics_listen", f.metrics_listen)?,
            )?,
            interactive,
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
            "server_id = \"head_server_3\"\nlisten = \"127.0.0.1:7000\"\nsession_timeout = \"3s\"\npreempt = true\ninsecure = true\n",
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

    fn with_file<A>(
        text: &str,
        args: impl FnOnce(CommonArgs) -> A,
    ) -> (tempfile::NamedTempFile, A) {
        let f = file(text);
        let common = CommonArgs {
            config: Some(f.path().into()),
            ..Default::default()
        };
        let a = args(common);
        (f, a)
    }

    #[test]
    fn file_errors_name_setting_and_file_exactly() {
        let (f, args) = with_file("replication_factor = 9\n", |common| HeadArgs {
            common,
            ..Default::default()
        });
        let err = args.resolve().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "setting `replication_factor`: in {}: must be between 1 and 5, got 9",
                f.path().display()
            )
        );
        let (f, args) = with_file("zone = [1]\nserver_id = \"c\"\n", |common| ClusterArgs {
            common,
            ..Default::default()
        });
        let err = args.resolve().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "setting `zone`: in {}: expected a string, number or boolean, got array",
                f.path().display()
            )
        );
        let (f, args) = with_file("metrics_listen = 9092\n", |common| MonitorArgs {
            common,
            ..Default::default()
        });
        let err = args.resolve().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "setting `metrics_listen`: in {}: \"9092\" is not host:port",
                f.path().display()
            )
        );
    }

    #[test]
    fn unknown_key_lists_the_roles_settings() {
        let (f, args) = with_file("preempt = true\n", |common| MonitorArgs {
            common,
            ..Default::default()
        });
        let err = args.resolve().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "config file {}: unknown setting `preempt` (known settings for this role: \
                 cluster_secret_file, failure_threshold, header_read_timeout, idle_timeout, \
                 insecure, interval, log_format, max_connections, max_header_bytes, \
                 metrics_listen, monitor_id, session_timeout, signature_window, timeout, \
                 tls_ca, tls_cert, tls_client_ca, tls_key, zk_auth_file, zk_hosts, zk_root)",
                f.path().display()
            )
        );
    }

    #[test]
    fn a_flag_overrides_a_bad_file_value_without_reading_it() {
        let (_f, args) = with_file("interval = \"0s\"\nfailure_threshold = \"7\"\n", |common| {
            MonitorArgs {
                common,
                interval: Some(Duration::from_secs(4)),
                ..Default::default()
            }
        });
        let cfg = args.resolve().unwrap();
        assert_eq!(cfg.interval, Duration::from_secs(4));
        assert_eq!(cfg.failure_threshold, 7);
    }

    #[test]
    fn security_settings_are_required_unless_insecure() {
        let head = |common: CommonArgs, credentials: Option<PathBuf>| HeadArgs {
            common,
            server_id: Some(ServerId::new("h1").unwrap()),
            credentials_file: credentials,
            ..Default::default()
        };
        let err = head(CommonArgs::default(), Some("/c".into()))
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("setting `cluster_secret_file`: is required"),
            "{err}"
        );
        assert!(err.contains("insecure = true"), "{err}");
        let secret = CommonArgs {
            cluster_secret_file: Some("/s".into()),
            ..Default::default()
        };
        let err = head(secret.clone(), None)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("setting `credentials_file`: is required"),
            "{err}"
        );
        let cfg = head(secret, Some("/c".into())).resolve().unwrap();
        assert_eq!(cfg.credentials_file, Some(PathBuf::from("/c")));
        assert!(!cfg.anonymous_read);
        assert_eq!(cfg.max_uploads, 64);
        let insecure = CommonArgs {
            insecure: Some(true),
            ..Default::default()
        };
        let cfg = head(insecure, None).resolve().unwrap();
        assert!(cfg.common.security.insecure);
        assert_eq!(cfg.common.limits.max_header_bytes, 64 << 10);
        // The monitor signs nothing: it needs no cluster secret.
        assert!(MonitorArgs::default().resolve().is_ok());
    }

    #[test]
    fn tls_needs_both_certificate_and_key() {
        let cluster = |common: CommonArgs| ClusterArgs {
            common: CommonArgs {
                insecure: Some(true),
                ..common
            },
            server_id: Some(ServerId::new("c1").unwrap()),
            data_dir: Some("/data".into()),
            ..Default::default()
        };
        let err = cluster(CommonArgs {
            tls_cert: Some("/cert.pem".into()),
            ..Default::default()
        })
        .resolve()
        .unwrap_err()
        .to_string();
        assert_eq!(err, "setting `tls_cert`: needs tls_key too");
        let err = cluster(CommonArgs {
            tls_client_ca: Some("/ca.pem".into()),
            ..Default::default()
        })
        .resolve()
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("setting `tls_client_ca`: needs tls_cert"),
            "{err}"
        );
        let cfg = cluster(CommonArgs {
            tls_cert: Some("/cert.pem".into()),
            tls_key: Some("/key.pem".into()),
            ..Default::default()
        })
        .resolve()
        .unwrap();
        let tls = cfg.common.security.tls.unwrap();
        assert_eq!(tls.key, PathBuf::from("/key.pem"));
        assert!(tls.client_ca.is_none());
    }

    #[test]
    fn defaults_without_file_or_flags() {
        let cfg = ClusterArgs {
            server_id: Some(ServerId::new("c1").unwrap()),
            data_dir: Some("/data".into()),
            capacity: Some(u64::MAX),
            common: CommonArgs {
                cluster_secret_file: Some("/secret".into()),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(cfg.listen, SocketAddr::from(([0, 0, 0, 0], 9700)));
        assert_eq!(cfg.scrub_rate, 16 << 20);
        assert_eq!(cfg.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(
            cfg.capacity,
            Some(u64::MAX),
            "sizes beyond i64 survive layering"
        );
        assert_eq!(cfg.common.zk_hosts, "127.0.0.1:2181");
        assert_eq!(cfg.common.session_timeout, Duration::from_secs(6));
        let head = HeadArgs {
            server_id: Some(ServerId::new("h").unwrap()),
            replication_factor: Some(1),
            startup_grace: Some(Duration::from_millis(1500)),
            common: CommonArgs {
                insecure: Some(true),
                ..Default::default()
            },
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(head.min_write_replicas, 1);
        assert_eq!(head.startup_grace, Duration::from_millis(1500));
        assert_eq!(head.chunk_size, 8 << 20);
        assert_eq!(head.orphan_grace, Duration::from_secs(600));
        assert_eq!(head.max_file_size, 1 << 40);
        let monitor = MonitorArgs::default().resolve().unwrap();
        assert_eq!(monitor.metrics_listen.port(), 9092);
        assert_eq!(monitor.interval, Duration::from_secs(10));
    }

    #[test]
    fn every_setting_has_a_flag_and_every_flag_a_setting() {
        use clap::{Args, Command};
        fn longs<A: Args>() -> Vec<String> {
            let mut v: Vec<String> = A::augment_args(Command::new("x"))
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| !matches!(*l, "config" | "interactive"))
                .map(|l| l.replace('-', "_"))
                .collect();
            v.sort_unstable();
            v
        }
        fn keys(k: &[&str]) -> Vec<String> {
            let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            v.sort_unstable();
            v
        }
        assert_eq!(longs::<HeadArgs>(), keys(HeadFile::KEYS));
        assert_eq!(longs::<ClusterArgs>(), keys(ClusterFile::KEYS));
        assert_eq!(longs::<MonitorArgs>(), keys(MonitorFile::KEYS));
    }
}
