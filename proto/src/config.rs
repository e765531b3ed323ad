//! Each role's configuration file: `head.toml`, `cluster.toml` and `monitor.toml`.
//!
//! One struct per role ([`HeadFile`], [`ClusterFile`], [`MonitorFile`]) holds every setting
//! of that role as an `Option`, so the same struct describes the file, what flags and
//! environment variables set, and the defaults ([`RoleFile::defaults`]). The node layers
//! them; the operator checks the files it writes against them. Unknown keys are rejected
//! (`deny_unknown_fields`): a misspelled setting would otherwise be silently ignored.
//!
//! Values are read the way the node always read them: a string, integer, float or boolean is
//! taken as text and parsed by the rule in [`values`] (so `preempt = "yes"` and
//! `chunk_size = 4096` both work). Durations are written back as text like `6s`, sizes as
//! bytes.

pub mod values;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::ids::ServerId;
pub use values::LogFormat;

/// A FileGrid server process role: what `filegrid-node` runs (its subcommand) and which
/// configuration structure it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Head,
    Cluster,
    Monitor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Head, Role::Cluster, Role::Monitor];

    /// The subcommand, the file's name and the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Head => "head",
            Role::Cluster => "cluster",
            Role::Monitor => "monitor",
        }
    }
}

/// What the node's generic layering needs from a role's file struct.
pub trait RoleFile: Serialize + DeserializeOwned + Default {
    /// Subcommand of `filegrid-node` for this role.
    const ROLE: &'static str;
    /// Every key the file accepts: the common ones ([`COMMON_KEYS`]) first, then the role's own.
    const KEYS: &'static [&'static str];
    /// The value of every setting that has a fixed default; the rest stay `None`.
    fn defaults() -> Self;
}

/// Hands the list of settings every role has to `$callback`, so the list is written once
/// and [`CommonFile`] and each role's struct are made from it.
macro_rules! with_common_settings {
    ($callback:ident ! { $($rest:tt)* }) => {
        $callback! {
            common {
                /// ZooKeeper connect string `host:port[,host:port...]` [default: 127.0.0.1:2181]
                zk_hosts: String => "rule::zk_hosts",
                /// Root znode of this grid [default: /distributed_file_grid]
                zk_root: String => "rule::zk_root",
                /// ZooKeeper session timeout [default: 6s]
                session_timeout: Duration => "rule::positive_duration",
                /// Log format, text or json [default: text]
                log_format: LogFormat => "rule::log_format",
                /// Run without security: no cluster secret, client credentials or TLS required;
                /// logs a warning at start [default: false]
                insecure: bool => "rule::boolean",
                /// File holding the cluster secret that heads and cluster servers sign their
                /// requests to each other with. Required unless insecure.
                cluster_secret_file: PathBuf => "rule::path",
                /// File holding `user:password`, the ZooKeeper digest credential; with it every
                /// node FileGrid creates is writable by that user only [default: none]
                zk_auth_file: PathBuf => "rule::path",
                /// PEM certificate chain of every listener of this process; with tls_key turns
                /// on TLS, reloaded when the file changes [default: none]
                tls_cert: PathBuf => "rule::path",
                /// PEM private key of tls_cert [default: none]
                tls_key: PathBuf => "rule::path",
                /// PEM CA certificates client certificates must chain to (mutual TLS)
                /// [default: none, client certificates are not asked for]
                tls_client_ca: PathBuf => "rule::path",
                /// PEM CA certificates this process trusts when it calls other FileGrid
                /// servers over TLS [default: the system's roots]
                tls_ca: PathBuf => "rule::path",
                /// Connections served at once per listener; more are answered 503 with
                /// Retry-After and closed [default: 1024]
                max_connections: u32 => "rule::max_connections",
                /// Time a client has to send a request's headers [default: 10s]
                header_read_timeout: Duration => "rule::positive_duration",
                /// A connection with no request in progress is closed after this long
                /// [default: 60s]
                idle_timeout: Duration => "rule::positive_duration",
                /// Largest request head (request line and headers) accepted; larger ones get
                /// 431 [default: 64KiB]
                max_header_bytes: u64 => "rule::header_bytes",
                /// How far a signed request's time may be from this server's clock; older
                /// signatures are refused as replays [default: 30s]
                signature_window: Duration => "rule::positive_duration",
            }
            $($rest)*
        }
    };
}

/// Makes [`CommonFile`] from the list of common settings.
macro_rules! common_file {
    (
        common { $( $(#[$cmeta:meta])* $cfield:ident: $cty:ty => $crule:tt, )* }
    ) => {
        /// The settings every role has; each role's struct has the same fields.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct CommonFile {
            $( $(#[$cmeta])* pub $cfield: Option<$cty>, )*
        }

        /// Keys of the settings every role has.
        pub const COMMON_KEYS: &[&str] = &[$(stringify!($cfield)),*];
    };
}

with_common_settings!(common_file! {});

impl CommonFile {
    /// Defaults shared by every role.
    pub fn defaults() -> Self {
        Self {
            zk_hosts: Some("127.0.0.1:2181".into()),
            zk_root: Some("/distributed_file_grid".into()),
            session_timeout: Some(Duration::from_secs(6)),
            log_format: Some(LogFormat::Text),
            insecure: Some(false),
            max_connections: Some(1024),
            header_read_timeout: Some(Duration::from_secs(10)),
            idle_timeout: Some(Duration::from_secs(60)),
            max_header_bytes: Some(64 << 10),
            signature_window: Some(Duration::from_secs(30)),
            ..Self::default()
        }
    }
}

/// Defines a role's file struct: the common fields (serde's `flatten` does not work with
/// `deny_unknown_fields`, so they are repeated in each struct) followed by the role's own,
/// each an `Option` read through a rule module of [`rule`]; and its [`RoleFile::KEYS`].
macro_rules! role_file_with {
    (
        common { $( $(#[$cmeta:meta])* $cfield:ident: $cty:ty => $crule:tt, )* }
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident: $ty:ty => $rule:tt, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$cmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none", with = $crule)]
                pub $cfield: Option<$cty>,
            )*
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none", with = $rule)]
                pub $field: Option<$ty>,
            )*
        }

        impl $name {
            /// The common settings of this file.
            pub fn common(&self) -> CommonFile {
                CommonFile { $( $cfield: self.$cfield.clone(), )* }
            }

            /// This file with its common settings replaced by `common`.
            pub fn with_common(self, common: CommonFile) -> Self {
                Self { $( $cfield: common.$cfield, )* ..self }
            }

            /// Every key this file accepts.
            pub const KEYS: &'static [&'static str] = &[
                $(stringify!($cfield),)*
                $(stringify!($field)),*
            ];
        }
    };
}

/// Defines a role's file struct with the common settings; see [`role_file_with`].
macro_rules! role_file {
    ($($body:tt)*) => {
        with_common_settings!(role_file_with! { $($body)* });
    };
}

role_file! {
    /// `head.toml`: settings of a head server (`filegrid-node head`).
    pub struct HeadFile {
        /// Unique id, e.g. head_server_1; the lowest id (natural order) leads. Required.
        pub server_id: ServerId => "rule::server_id",
        /// Client API address `host:port` [default: 0.0.0.0:9669]
        pub listen: String => "rule::text",
        /// Extra listener for /metrics, /health and /ready [default: none]
        pub metrics_listen: String => "rule::text",
        /// Host other processes use to reach this server [default: listen IP or host name]
        pub advertise_host: String => "rule::host",
        /// Take leadership back from a higher id [default: false]
        pub preempt: bool => "rule::boolean",
        /// Standbys forward leader-only calls instead of redirecting [default: false]
        pub standby_proxy: bool => "rule::boolean",
        /// How long the lowest head waits for lower ids at start [default: 1s]
        pub startup_grace: Duration => "rule::duration",
        /// Replicas per chunk, 1 to 5 [default: 3]
        pub replication_factor: u32 => "rule::replication_factor",
        /// Fewest replicas a write may be acknowledged with [default: the smaller of 2 and
        /// replication_factor]
        pub min_write_replicas: u32 => "rule::replication_factor",
        /// Chunk size, 4KiB to 1GiB [default: 8MiB]
        pub chunk_size: u64 => "rule::positive_size",
        /// A cluster server silent this long is dead [default: 30s]
        pub dead_after: Duration => "rule::positive_duration",
        /// Chunks no file references are deleted after this long [default: 10m]
        pub orphan_grace: Duration => "rule::positive_duration",
        /// Longest a head waits on a cluster server in a chunk call other than an upload
        /// (uploads are watched for progress: `hop_progress_timeout`): for the answer from
        /// the moment the call is sent, then between pieces of it [default: 30s]
        pub chunk_timeout: Duration => "rule::positive_duration",
        /// An upload's pipeline hop that takes no byte (or, once it has them all, gives no
        /// answer) for this long, times the hops from it to the end of the pipeline, is
        /// given up and placed again without it [default: 10s]
        pub hop_progress_timeout: Duration => "rule::positive_duration",
        /// Bytes per second re-replication may copy [default: 64MiB]
        pub repair_rate: u64 => "rule::positive_size",
        /// Largest file accepted [default: 1TiB]
        pub max_file_size: u64 => "rule::positive_size",
        /// File naming each client principal, its secret and its role (read, write or
        /// admin). Required unless insecure.
        pub credentials_file: PathBuf => "rule::path",
        /// Let clients without credentials read (GET, HEAD, list) [default: false]
        pub anonymous_read: bool => "rule::boolean",
        /// Uploads in progress at once on this head; more get 503 with Retry-After
        /// [default: 64]
        pub max_uploads: u32 => "rule::max_uploads",
        /// Memory for recently read or written small chunks, served without asking a
        /// cluster server; 0 turns the cache off [default: 1/16 of the memory the head may
        /// use (its cgroup's limit, else the machine's), at most 2GiB]
        pub read_cache_size: u64 => "rule::size",
        /// Largest chunk the read cache keeps; chunks of large files pass it by
        /// [default: 4MiB]
        pub read_cache_max_chunk: u64 => "rule::positive_size",
        /// S3 API address `host:port` [default: none, no S3 API]
        pub s3_listen: String => "rule::text",
        /// Domain for virtual-host style S3 requests (`<bucket>.<domain>`) [default: none,
        /// path style only]
        pub s3_domain: String => "rule::host",
        /// Region the S3 API reports; requests signed for any region are accepted
        /// [default: us-east-1]
        pub s3_region: String => "rule::text",
        /// Multipart uploads neither completed nor aborted are collected after this long
        /// [default: 24h]
        pub s3_multipart_max_age: Duration => "rule::positive_duration",
    }
}

impl RoleFile for HeadFile {
    const ROLE: &'static str = "head";
    const KEYS: &'static [&'static str] = HeadFile::KEYS;
    fn defaults() -> Self {
        Self {
            listen: Some("0.0.0.0:9669".into()),
            preempt: Some(false),
            standby_proxy: Some(false),
            startup_grace: Some(Duration::from_secs(1)),
            replication_factor: Some(3),
            chunk_size: Some(8 << 20),
            dead_after: Some(Duration::from_secs(30)),
            orphan_grace: Some(Duration::from_secs(600)),
            chunk_timeout: Some(Duration::from_secs(30)),
            hop_progress_timeout: Some(Duration::from_secs(10)),
            repair_rate: Some(64 << 20),
            max_file_size: Some(1 << 40),
            anonymous_read: Some(false),
            max_uploads: Some(64),
            read_cache_max_chunk: Some(4 << 20),
            s3_region: Some("us-east-1".into()),
            s3_multipart_max_age: Some(Duration::from_secs(24 * 3600)),
            ..Self::default()
        }
        .with_common(CommonFile::defaults())
    }
}

role_file! {
    /// `cluster.toml`: settings of a cluster server (`filegrid-node cluster`).
    pub struct ClusterFile {
        /// Unique id, e.g. cluster_server_1. Required.
        pub server_id: ServerId => "rule::server_id",
        /// Chunk API address `host:port` [default: 0.0.0.0:9700]
        pub listen: String => "rule::text",
        /// Extra listener for /metrics, /health and /ready [default: none]
        pub metrics_listen: String => "rule::text",
        /// Host other processes use to reach this server [default: listen IP or host name]
        pub advertise_host: String => "rule::host",
        /// Directory where chunks are stored. Required.
        pub data_dir: PathBuf => "rule::data_dir",
        /// Failure zone label used by placement [default: none]
        pub zone: String => "rule::zone",
        /// Bytes this server may use [default: the data disk's size]
        pub capacity: u64 => "rule::positive_size",
        /// Background scrubber rate in bytes/s [default: 16MiB]
        pub scrub_rate: u64 => "rule::positive_size",
        /// Pause between two scrubber passes over every chunk [default: 1m]
        pub scrub_interval: Duration => "rule::positive_duration",
        /// Time between heartbeats to the leader head [default: 2s]
        pub heartbeat_interval: Duration => "rule::positive_duration",
    }
}

impl RoleFile for ClusterFile {
    const ROLE: &'static str = "cluster";
    const KEYS: &'static [&'static str] = ClusterFile::KEYS;
    fn defaults() -> Self {
        Self {
            listen: Some("0.0.0.0:9700".into()),
            scrub_rate: Some(16 << 20),
            scrub_interval: Some(Duration::from_secs(60)),
            heartbeat_interval: Some(Duration::from_secs(2)),
            ..Self::default()
        }
        .with_common(CommonFile::defaults())
    }
}

role_file! {
    /// `monitor.toml`: settings of the head server monitor (`filegrid-node monitor`).
    pub struct MonitorFile {
        /// Unique id of this monitor [default: <hostname>-<pid>]
        pub monitor_id: ServerId => "rule::server_id",
        /// Time between health checks of each head [default: 10s]
        pub interval: Duration => "rule::positive_duration",
        /// Time allowed for one check, at most interval [default: 2s]
        pub timeout: Duration => "rule::positive_duration",
        /// Failed checks in a row after which a hung leader is excluded, 1 to 1000 [default: 3]
        pub failure_threshold: u32 => "rule::failure_threshold",
        /// Address for /metrics, /health and /ready [default: 0.0.0.0:9092]
        pub metrics_listen: String => "rule::text",
    }
}

impl RoleFile for MonitorFile {
    const ROLE: &'static str = "monitor";
    const KEYS: &'static [&'static str] = MonitorFile::KEYS;
    fn defaults() -> Self {
        Self {
            interval: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_secs(2)),
            failure_threshold: Some(3),
            metrics_listen: Some("0.0.0.0:9092".into()),
            ..Self::default()
        }
        .with_common(CommonFile::defaults())
    }
}

/// Takes a string, integer, float or boolean as text, the way every setting is read.
struct ScalarText;

impl<'de> Visitor<'de> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// How a setting's value is written back: durations as text, numbers and booleans as such.
pub trait SettingValue {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
}

impl SettingValue for Duration {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&duration_text(*self))
    }
}

impl SettingValue for u64 {
    /// Sizes beyond what TOML integers hold are written as text, which reads back the same.
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(*self) {
            Ok(n) => s.serialize_i64(n),
            Err(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl SettingValue for u32 {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(*self)
    }
}

impl SettingValue for bool {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*self)
    }
}

impl SettingValue for String {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

impl SettingValue for ServerId {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl SettingValue for PathBuf {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
}

impl SettingValue for LogFormat {
    fn serialize_setting<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A duration as the files write it, e.g. `6s`, `10m` or `1s 500ms`.
pub fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Serde `with` modules, one per value rule of [`values`], for `Option` fields.
pub mod rule {
    use super::*;

    /// Serializes a present value the way files write it (for `serialize_with`).
    pub fn serialize<T: SettingValue, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => v.serialize_setting(s),
            None => s.serialize_none(),
        }
    }

    macro_rules! rules {
        ($($name:ident: $ty:ty = $parse:path;)*) => {$(
            #[doc = concat!("Reads a value with [`", stringify!($parse), "`].")]
            pub mod $name {
                use super::*;

                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<$ty>, D::Error> {
                    let text = d.deserialize_any(ScalarText)?;
                    $parse(&text).map(Some).map_err(de::Error::custom)
                }

                pub fn serialize<S: Serializer>(v: &Option<$ty>, s: S) -> Result<S::Ok, S::Error> {
                    super::serialize(v, s)
                }
            }
        )*};
    }

    rules! {
        zk_hosts: String = values::zk_hosts;
        zk_root: String = values::zk_root;
        positive_duration: Duration = values::positive_duration;
        duration: Duration = values::duration;
        positive_size: u64 = values::positive_size;
        size: u64 = values::size;
        log_format: LogFormat = values::log_format;
        server_id: ServerId = values::server_id;
        host: String = values::host;
        boolean: bool = values::boolean;
        replication_factor: u32 = values::replication_factor;
        failure_threshold: u32 = values::failure_threshold;
        zone: String = values::zone;
        data_dir: PathBuf = values::data_dir;
        path: PathBuf = values::path;
        max_connections: u32 = values::max_connections;
        header_bytes: u64 = values::header_bytes;
        max_uploads: u32 = values::max_uploads;
        text: String = values::text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<F: RoleFile>(v: serde_json::Value) -> Result<F, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_keys_are_rejected_in_every_role() {
        let err = read::<HeadFile>(json!({"server_id": "h1", "listen_addr": "x"})).unwrap_err();
        assert!(err.contains("unknown field `listen_addr`"), "{err}");
        // A setting of another role is unknown too.
        let err = read::<HeadFile>(json!({"data_dir": "/d"})).unwrap_err();
        assert!(err.contains("unknown field `data_dir`"), "{err}");
        let err = read::<ClusterFile>(json!({"zk_hosts": "a:1", "preempt": true})).unwrap_err();
        assert!(err.contains("unknown field `preempt`"), "{err}");
        let err = read::<MonitorFile>(json!({"server_id": "m"})).unwrap_err();
        assert!(err.contains("unknown field `server_id`"), "{err}");
    }

    #[test]
    fn common_settings_are_in_every_role() {
        let common = json!({"zk_hosts": "zk:2181", "zk_root": "/g", "session_timeout": "3s", "log_format": "json"});
        let head: HeadFile = read(common.clone()).unwrap();
        let cluster: ClusterFile = read(common.clone()).unwrap();
        let monitor: MonitorFile = read(common).unwrap();
        assert_eq!(head.common(), cluster.common());
        assert_eq!(cluster.common(), monitor.common());
        assert_eq!(head.session_timeout, Some(Duration::from_secs(3)));
        assert_eq!(head.log_format, Some(LogFormat::Json));
    }

    #[test]
    fn any_scalar_is_read_as_text() {
        let f: HeadFile = read(json!({
            "preempt": "yes",
            "standby_proxy": 1,
            "replication_factor": "2",
            "chunk_size": 4096,
            "server_id": 12,
            "startup_grace": "0s",
        }))
        .unwrap();
        assert_eq!(f.preempt, Some(true));
        assert_eq!(f.standby_proxy, Some(true));
        assert_eq!(f.replication_factor, Some(2));
        assert_eq!(f.chunk_size, Some(4096));
        assert_eq!(f.server_id.unwrap().as_str(), "12");
        assert_eq!(f.startup_grace, Some(Duration::ZERO));
    }

    #[test]
    fn values_are_checked_with_the_rule_message() {
        let err = read::<MonitorFile>(json!({"interval": "0s"})).unwrap_err();
        assert_eq!(err, "must be greater than zero");
        let err = read::<HeadFile>(json!({"replication_factor": 9})).unwrap_err();
        assert_eq!(err, "must be between 1 and 5, got 9");
        let err = read::<ClusterFile>(json!({"data_dir": " "})).unwrap_err();
        assert_eq!(err, "must not be empty");
        let err = read::<HeadFile>(json!({"listen": ["a"]})).unwrap_err();
        assert!(err.contains("a string, number or boolean"), "{err}");
    }

    #[test]
    fn defaults_read_back_unchanged() {
        fn round_trip<F: RoleFile + PartialEq + fmt::Debug>() {
            let d = F::defaults();
            let back: F = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
            assert_eq!(back, d, "{}", F::ROLE);
        }
        round_trip::<HeadFile>();
        round_trip::<ClusterFile>();
        round_trip::<MonitorFile>();
        assert_eq!(
            serde_json::to_value(HeadFile::defaults()).unwrap()["orphan_grace"],
            "10m"
        );
    }

    #[test]
    fn keys_are_the_serialized_field_names() {
        let head = HeadFile {
            server_id: Some(ServerId::new("h").unwrap()),
            metrics_listen: Some("0.0.0.0:1".into()),
            advertise_host: Some("h".into()),
            min_write_replicas: Some(1),
            cluster_secret_file: Some("/s".into()),
            credentials_file: Some("/c".into()),
            zk_auth_file: Some("/z".into()),
            tls_cert: Some("/t".into()),
            tls_key: Some("/k".into()),
            tls_client_ca: Some("/ca".into()),
            tls_ca: Some("/ca".into()),
            s3_listen: Some("127.0.0.1:9000".into()),
            s3_domain: Some("s3.example".into()),
            read_cache_size: Some(1 << 20),
            ..HeadFile::defaults()
        };
        let v = serde_json::to_value(head).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut expected = HeadFile::KEYS.to_vec();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        let n = COMMON_KEYS.len();
        assert_eq!(&ClusterFile::KEYS[..n], &HeadFile::KEYS[..n]);
        assert_eq!(&MonitorFile::KEYS[..n], COMMON_KEYS);
        assert!(MonitorFile::KEYS.contains(&"failure_threshold"));
    }

    #[test]
    fn huge_sizes_are_written_as_text_and_read_back() {
        let f = ClusterFile {
            capacity: Some(u64::MAX),
            ..ClusterFile::default()
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["capacity"], u64::MAX.to_string());
        assert_eq!(read::<ClusterFile>(v).unwrap(), f);
    }
}
