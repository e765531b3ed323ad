//! The `filegrid` command-line tool. It finds the grid through any head (`--head`) or through
//! ZooKeeper (`--zk-hosts`), prints tables for people and JSON for scripts (`--json`), and exits
//! non-zero with a one-line reason on errors.

pub mod failover;
mod transfer;

use filegrid_proto::ErrorBody;
use filegrid_proto::head::{DeleteAnswer, RepairReport, Role, ServerView, StatusView};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use crate::head::api::{HeadView, LeaderView, list_heads};
use crate::http::Outgoing;
use crate::http::tls::ReloadingCert;
use crate::zk::records::{HealthStatus, LeaderRecord};
use crate::zk::{self, Layout};

#[derive(Parser, Debug)]
#[command(name = "filegrid", version, about = "FileGrid command-line client")]
pub struct Cli {
    /// Any head's API address, e.g. http://127.0.0.1:9669 [default when --zk-hosts is not set]
    #[arg(long, env = "FILEGRID_HEAD", global = true)]
    pub head: Option<String>,
    /// Find the grid through ZooKeeper instead of a head
    #[arg(long, env = "FILEGRID_ZK_HOSTS", global = true, value_parser = crate::config::values::zk_hosts)]
    pub zk_hosts: Option<String>,
    /// Root znode of the grid
    #[arg(long, env = "FILEGRID_ZK_ROOT", global = true, default_value = "/distributed_file_grid",
          value_parser = crate::config::values::zk_root)]
    pub zk_root: String,
    /// With --zk-hosts: file holding the grid's ZooKeeper `user:password` (its zk_auth_file)
    #[arg(long, env = "FILEGRID_ZK_AUTH_FILE", global = true, value_parser = crate::config::values::path, value_name = "FILE")]
    pub zk_auth_file: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// PEM CA certificates to trust for https:// heads [default: the system's roots]
    #[arg(long, env = "FILEGRID_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for heads that require one (mutual TLS); with --client-key
    #[arg(
        long,
        env = "FILEGRID_CLIENT_CERT",
        global = true,
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert
    #[arg(
        long,
        env = "FILEGRID_CLIENT_KEY",
        global = true,
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,
    /// Give up on a request after this long
    #[arg(long, global = true, default_value = "10s", value_parser = crate::config::values::positive_duration)]
    pub timeout: Duration,
    /// Credential `<access_key>:<secret>` [default: `token` in ~/.config/filegrid/credentials]
    #[arg(long, env = "FILEGRID_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the current leader head
    Leader,
    /// List registered heads
    Heads,
    /// Health of every head, from the monitors' reports, and the cluster servers
    Status,
    /// Upload a local file (`-` for stdin)
    Put {
        local: PathBuf,
        remote: String,
        /// Store only if no file is at REMOTE (If-None-Match: *)
        #[arg(long, conflicts_with = "if_match")]
        if_absent: bool,
        /// Replace only the file with this ETag, as `stat` prints it (If-Match)
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
    },
    /// Download a file (`-` for stdout); written under a temporary name until verified
    Get { remote: String, local: PathBuf },
    /// List files under a prefix
    Ls { prefix: Option<String> },
    /// Delete a file
    Rm {
        remote: String,
        /// Delete only the file with this ETag, as `stat` prints it (If-Match)
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
    },
    /// Size, checksum, chunk count and modification time of a file
    Stat { remote: String },
    /// Bring a draining or drained cluster server back into service
    Recommission { id: String },
    /// Drain a cluster server before removing it
    Decommission {
        id: String,
        /// Wait until the server is drained, at most this long (e.g. 10m)
        #[arg(long, value_parser = crate::config::values::positive_duration)]
        wait: Option<Duration>,
    },
}

/// A failed command; printed as one line by the binary.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{0}")]
    Api(String),
    #[error("ZooKeeper: {0}")]
    Zk(#[from] zk::ZkError),
    #[error("{0}")]
    Usage(String),
}

/// Where the CLI gets its answers.
enum Target {
    Head {
        base: String,
        http: reqwest::Client,
    },
    Zk {
        client: zookeeper_client::Client,
        layout: Layout,
    },
}

impl Target {
    async fn open(cli: &Cli, outgoing: &Outgoing) -> Result<Self, CliError> {
        if let (None, Some(hosts)) = (&cli.head, &cli.zk_hosts) {
            let access = zk::ZkAccess::from_file(cli.zk_auth_file.as_deref())
                .map_err(|e| CliError::Usage(format!("--zk-auth-file: {e}")))?;
            let connect = access
                .connector()
                .with_session_timeout(cli.timeout)
                .connect(hosts);
            let client = tokio::time::timeout(cli.timeout, connect)
                .await
                .map_err(|_| CliError::Unreachable {
                    url: hosts.clone(),
                    message: "ZooKeeper did not answer in time".into(),
                })?
                .map_err(|e| CliError::Unreachable {
                    url: hosts.clone(),
                    message: e.to_string(),
                })?;
            return Ok(Target::Zk {
                client,
                layout: Layout::new(cli.zk_root.clone()).with_access(access),
            });
        }
        let base = cli
            .head
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:9669".into());
        let base = if base.contains("://") {
            base
        } else {
            format!("http://{base}")
        };
        let http = outgoing
            .apply(reqwest::Client::builder())
            .timeout(cli.timeout)
            .default_headers(auth_headers(cli)?)
            .build()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        Ok(Target::Head {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let Target::Head { base, http } = self else {
            return Err(CliError::Usage("not a head target".into()));
        };
        let url = format!("{base}{path}");
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| CliError::Unreachable {
                url: url.clone(),
                message: root_cause(&e),
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| CliError::Unreachable {
            url: url.clone(),
            message: root_cause(&e),
        })?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(CliError::Api(format!("{status}: {msg}")));
        }
        serde_json::from_slice(&body)
            .map_err(|e| CliError::Api(format!("unexpected answer from {url}: {e}")))
    }

    async fn leader(&self) -> Result<LeaderView, CliError> {
        match self {
            Target::Head { .. } => self.get("/v1/leader").await,
            Target::Zk { client, layout } => {
                match zk::read::<LeaderRecord>(client, &layout.leader()).await? {
                    Some((l, _)) => Ok(l.into()),
                    None => Err(CliError::Api(
                        "no leader right now (election in progress)".into(),
                    )),
                }
            }
        }
    }

    /// The leader's API base URL: data commands talk to it directly. When the given head is
    /// the leader, or a standby that forwards to the leader, its address is kept as given, so
    /// port forwards and NAT keep working.
    async fn leader_base(&self) -> Result<String, CliError> {
        Ok(self.leader_call().await?.0)
    }

    /// [`Self::leader_base`] with the epoch of the leadership it reaches, for
    /// [`Self::deposed`].
    async fn leader_call(&self) -> Result<(String, u64), CliError> {
        if let Target::Head { base, .. } = self
            && let Ok(status) = self.get::<StatusView>("/v1/status").await
            && (status.status.role == Role::Leader
                || (status.status.role == Role::Standby && status.forwards_to_leader))
        {
            return Ok((base.clone(), status.status.epoch));
        }
        let l = self.leader().await?;
        Ok((transfer::leader_base(&l), l.epoch))
    }

    /// Resolves with the new leader (base URL, epoch) once the grid names a leader of a newer
    /// epoch than `epoch`: a write or delete sent to the leader of `epoch` that has not
    /// answered is then given up and sent there (see [`failover`]). Looks after
    /// [`failover::STALLED_AFTER`], then every [`failover::LOOK_EVERY`], asking the head given
    /// (or ZooKeeper), each look bounded by a second: a head given that is itself cut off
    /// cannot tell, and the call then waits for its own timeout.
    async fn deposed(&self, epoch: u64) -> (String, u64) {
        tokio::time::sleep(failover::STALLED_AFTER).await;
        loop {
            if let Ok(Ok(l)) = tokio::time::timeout(Duration::from_secs(1), self.leader()).await
                && failover::superseded(epoch, &l)
            {
                return (transfer::leader_base(&l), l.epoch);
            }
            tokio::time::sleep(failover::LOOK_EVERY).await;
        }
    }

    async fn heads(&self) -> Result<Vec<HeadView>, CliError> {
        match self {
            Target::Head { .. } => self.get("/v1/heads").await,
            Target::Zk { client, layout } => Ok(list_heads(client, layout).await?),
        }
    }
}

/// The `Authorization` header every request carries, from `--token`, `FILEGRID_TOKEN` or
/// the user's credentials file; none when there is no credential (anonymous or insecure grids).
fn auth_headers(cli: &Cli) -> Result<reqwest::header::HeaderMap, CliError> {
    let mut headers = reqwest::header::HeaderMap::new();
    let token = match &cli.token {
        Some(t) => Some(t.clone()),
        None => token_from_file(&credentials_path())?,
    };
    if let Some(token) = token {
        if !token.contains(':') {
            return Err(CliError::Usage(
                "the token must be <access_key>:<secret>".into(),
            ));
        }
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| CliError::Usage("the token holds characters a header cannot".into()))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

/// `$XDG_CONFIG_HOME/filegrid/credentials`, or `~/.config/filegrid/credentials`.
pub fn credentials_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("filegrid").join("credentials")
}

/// The user's credentials file: TOML with `token = "<access_key>:<secret>"`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCredentials {
    token: String,
}

fn token_from_file(path: &std::path::Path) -> Result<Option<String>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::Usage(format!("{}: {e}", path.display()))),
    };
    let file: UserCredentials = toml::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{}: {}", path.display(), e.message())))?;
    Ok(Some(file.token))
}

fn data_client(
    timeout: Duration,
    outgoing: &Outgoing,
    auth: &reqwest::header::HeaderMap,
) -> Result<reqwest::Client, CliError> {
    outgoing
        .apply(reqwest::Client::builder())
        .default_headers(auth.clone())
        .connect_timeout(timeout)
        .read_timeout(timeout.max(Duration::from_secs(60)))
        // reqwest sets TCP_USER_TIMEOUT to 30 s by default: an upload whose data waits that
        // long on a stopped leader's full window would be cut off (ETIMEDOUT) before the
        // leader's session ends and a successor takes it (see `failover`). The read
        // timeout and the failover logic decide when a call is given up instead.
        .tcp_user_timeout(None)
        .build()
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// The TLS the CLI's calls use: `--ca-cert` trusted, `--client-cert` presented.
fn cli_tls(cli: &Cli) -> Result<Outgoing, CliError> {
    let identity = match (&cli.client_cert, &cli.client_key) {
        (Some(cert), Some(key)) => Some(
            ReloadingCert::from_files(cert, key)
                .map_err(|e| CliError::Usage(client_flags(e.to_string())))?
                as Arc<dyn rustls::client::ResolvesClientCert>,
        ),
        _ => None,
    };
    Outgoing::new(cli.ca_cert.as_deref(), identity, false)
        .map_err(|e| CliError::Usage(client_flags(e.to_string())))
}

/// Errors about TLS files name the CLI's flags, not the servers' settings.
fn client_flags(message: String) -> String {
    message
        .replace("setting `tls_ca`", "--ca-cert")
        .replace("setting `tls_cert`", "--client-cert")
        .replace("setting `tls_key`", "--client-key")
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn print_json<T: Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into())
    );
}

/// Runs one command; the binary maps the error to a one-line message and exit code 1.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let outgoing = cli_tls(&cli)?;
    let target = Target::open(&cli, &outgoing).await?;
    let auth = auth_headers(&cli)?;
    match cli.command {
        Command::Leader => {
            let l = target.leader().await?;
            if cli.json {
                print_json(&l);
            } else {
                println!(
                    "{} at {}:{} (epoch {})",
                    l.server_id, l.host, l.api_port, l.epoch
                );
            }
        }
        Command::Heads => {
            let heads = target.heads().await?;
            if cli.json {
                print_json(&heads);
            } else {
                for h in heads {
                    println!(
                        "{:<20} {}:{}{}{}",
                        h.id,
                        h.host,
                        h.api_port,
                        if h.is_leader { "  leader" } else { "" },
                        if h.excluded { "  excluded" } else { "" }
                    );
                }
            }
        }
        Command::Status => {
            let heads = target.heads().await?;
            let (servers, repair): (Option<Vec<ServerView>>, Option<RepairReport>) =
                match target.leader_base().await {
                    Ok(base) => {
                        let http = data_client(cli.timeout, &outgoing, &auth)?;
                        let get = |path: &str| http.get(format!("{base}{path}")).send();
                        let servers = match get("/v1/cluster").await {
                            Ok(r) if r.status().is_success() => r.json().await.ok(),
                            _ => None,
                        };
                        let repair = match get("/v1/repair").await {
                            Ok(r) if r.status().is_success() => r.json().await.ok(),
                            _ => None,
                        };
                        (servers, repair)
                    }
                    Err(_) => (None, None),
                };
            if cli.json {
                print_json(&serde_json::json!({
                    "heads": heads,
                    "cluster_servers": servers,
                    "repair": repair,
                }));
                return Ok(());
            }
            let now = crate::zk::records::now_ms();
            println!(
                "{:<20} {:<8} {:<10} {:>8} {:>9} {:>10}  reporter",
                "head", "role", "health", "latency", "failures", "checked"
            );
            for h in heads {
                let role = if h.is_leader {
                    "leader"
                } else if h.excluded {
                    "excluded"
                } else {
                    "standby"
                };
                match h.health {
                    Some(r) => println!(
                        "{:<20} {:<8} {:<10} {:>6}ms {:>9} {:>9}s  {}",
                        h.id,
                        role,
                        match r.status {
                            HealthStatus::Healthy => "healthy",
                            HealthStatus::Unhealthy => "unhealthy",
                        },
                        r.latency_ms,
                        r.consecutive_failures,
                        now.saturating_sub(r.checked_at) / 1000,
                        r.reporter
                    ),
                    None => println!("{:<20} {:<8} {:<10}", h.id, role, "unknown"),
                }
            }
            if let Some(list) = &servers {
                println!();
                println!(
                    "{:<20} {:<9} {:<8} {:>8} {:>12} {:>12}",
                    "cluster server", "state", "zone", "chunks", "used", "capacity"
                );
                for s in list {
                    println!(
                        "{:<20} {:<9} {:<8} {:>8} {:>12} {:>12}",
                        s.id.as_str(),
                        s.state.as_str(),
                        s.zone.as_deref().unwrap_or("-"),
                        s.chunks,
                        bytesize::ByteSize(s.used_bytes).to_string(),
                        bytesize::ByteSize(s.capacity_bytes).to_string(),
                    );
                }
            }
            if let Some(r) = &repair {
                println!();
                println!("{}", repair_line(r));
            }
        }
        Command::Put {
            local,
            remote,
            if_absent,
            if_match,
        } => {
            let condition = transfer::Condition::of(if_absent, if_match.as_deref())?;
            let leader = target.leader_call().await?;
            let r = transfer::put(
                &data_client(cli.timeout, &outgoing, &auth)?,
                leader,
                &local,
                &remote,
                &target,
                condition.as_ref(),
            )
            .await?;
            if cli.json {
                print_json(&r);
            } else {
                println!(
                    "stored {} ({} bytes, {}, etag {})",
                    r.path, r.size, r.checksum, r.etag
                );
            }
        }
        Command::Get { remote, local } => {
            let base = target.leader_base().await?;
            let n = transfer::get(
                &data_client(cli.timeout, &outgoing, &auth)?,
                &base,
                &remote,
                &local,
            )
            .await?;
            if cli.json {
                print_json(&serde_json::json!({"path": remote, "local": local, "size": n}));
            } else if local != std::path::Path::new("-") {
                println!("fetched {remote} to {} ({n} bytes)", local.display());
            }
        }
        Command::Ls { prefix } => {
            let base = target.leader_base().await?;
            let files = transfer::ls(
                &data_client(cli.timeout, &outgoing, &auth)?,
                &base,
                prefix.as_deref().unwrap_or(""),
            )
            .await?;
            if cli.json {
                print_json(&files);
            } else {
                for f in files {
                    println!("{:>14}  {}", f.size, f.path);
                }
            }
        }
        Command::Rm { remote, if_match } => {
            let condition = transfer::Condition::of(false, if_match.as_deref())?;
            let leader = target.leader_call().await?;
            transfer::rm(
                &data_client(cli.timeout, &outgoing, &auth)?,
                leader,
                &remote,
                &target,
                condition.as_ref(),
            )
            .await?;
            if cli.json {
                print_json(&DeleteAnswer {
                    path: remote.clone(),
                    deleted: true,
                });
            } else {
                println!("deleted {remote}");
            }
        }
        Command::Stat { remote } => {
            let base = target.leader_base().await?;
            let st = transfer::stat(&data_client(cli.timeout, &outgoing, &auth)?, &base, &remote)
                .await?;
            if cli.json {
                print_json(&st);
            } else {
                println!(
                    "{}: {} bytes, {} chunks, {}, etag {}, modified {}",
                    st.path,
                    st.size,
                    st.chunks,
                    st.checksum,
                    st.etag,
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + Duration::from_millis(st.mtime)
                    )
                );
            }
        }
        Command::Recommission { id } => {
            let base = target.leader_base().await?;
            let state =
                transfer::recommission(&data_client(cli.timeout, &outgoing, &auth)?, &base, &id)
                    .await?;
            if cli.json {
                print_json(&serde_json::json!({"id": id, "state": state}));
            } else {
                println!("{id}: {state}");
            }
        }
        Command::Decommission { id, wait } => {
            let base = target.leader_base().await?;
            let state = transfer::decommission(
                &data_client(cli.timeout, &outgoing, &auth)?,
                &base,
                &id,
                wait,
            )
            .await?;
            if cli.json {
                print_json(&serde_json::json!({"id": id, "state": state}));
            } else {
                println!("{id}: {state}");
            }
        }
    }
    Ok(())
}

/// The repair line of `filegrid status`: what the leader's repair has left to copy.
fn repair_line(r: &RepairReport) -> String {
    let state = if r.in_progress {
        "copying"
    } else if r.finished_at == 0 {
        "no pass yet"
    } else {
        "idle"
    };
    let mut line = format!(
        "repair: {state}, {} under-replicated of {} chunks",
        r.under_replicated, r.chunks
    );
    if r.chunks_left > 0 {
        let rate = if r.rate_bytes_per_sec > 0 {
            format!("{}/s", bytesize::ByteSize(r.rate_bytes_per_sec))
        } else {
            format!("up to {}/s", bytesize::ByteSize(r.repair_rate))
        };
        line.push_str(&format!(
            ", {} copies ({}) left at {rate}",
            r.chunks_left,
            bytesize::ByteSize(r.bytes_left),
        ));
        if let Some(eta) = r.eta_seconds {
            line.push_str(&format!(
                ", about {} to go",
                humantime::format_duration(std::time::Duration::from_secs(eta))
            ));
        }
    }
    if r.orphans_deleted > 0 {
        line.push_str(&format!(
            "; the last pass deleted {} orphaned copies",
            r.orphans_deleted
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repair_line_says_what_is_left_and_when_it_is_done() {
        let idle = RepairReport {
            chunks: 10,
            finished_at: 1,
            ..RepairReport::default()
        };
        assert_eq!(
            repair_line(&idle),
            "repair: idle, 0 under-replicated of 10 chunks"
        );
        let copying = RepairReport {
            chunks: 10,
            under_replicated: 4,
            in_progress: true,
            chunks_left: 4,
            bytes_left: 4 << 20,
            rate_bytes_per_sec: 1 << 20,
            eta_seconds: Some(4),
            repair_rate: 64 << 20,
            ..RepairReport::default()
        };
        let line = repair_line(&copying);
        assert!(
            line.starts_with("repair: copying, 4 under-replicated of 10 chunks, 4 copies ("),
            "{line}"
        );
        assert!(
            line.ends_with("left at 1.0 MiB/s, about 4s to go"),
            "{line}"
        );
        let starting = RepairReport {
            rate_bytes_per_sec: 0,
            ..copying
        };
        assert!(
            repair_line(&starting).contains("left at up to 64.0 MiB/s"),
            "{}",
            repair_line(&starting)
        );
        let collected = RepairReport {
            orphans_deleted: 768,
            ..idle
        };
        assert_eq!(
            repair_line(&collected),
            "repair: idle, 0 under-replicated of 10 chunks; the last pass deleted 768 orphaned copies"
        );
    }
}
