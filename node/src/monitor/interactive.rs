//! Interactive mode (`zk_head_server_monitor -i`): commands on stdin, one answer per command.
//! Works with a pipe as well as a terminal; the prompt is shown only on a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;
use zookeeper_client::Error as ZkClientError;

use super::Monitor;
use crate::ids::ServerId;
use crate::zk;
use crate::zk::records::{self, HeadRecord, HealthReport, LeaderRecord};

const HELP: &str = "commands:
  register <id> <host> <port>  register a head by hand (health-checked, never elected)
  unregister <id>              remove a head registered by hand
  status                       heads known to this monitor and their last check
  leader                       the current leader
  reports                      health reports of every head in ZooKeeper
  help                         this text
  quit                         stop the monitor";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Register {
        id: ServerId,
        host: String,
        port: u16,
    },
    Unregister(ServerId),
    Status,
    Leader,
    Reports,
    Help,
    Quit,
    Empty,
}

/// Parses one line; the error is the one-line message shown to the user.
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let usage = |u: &str| Err(format!("usage: {u}"));
    match words.as_slice() {
        [] => Ok(Command::Empty),
        ["register", id, host, port] => Ok(Command::Register {
            id: ServerId::new(*id).map_err(|e| format!("bad id {id:?}: {e}"))?,
            host: crate::config::values::host(host)?,
            port: port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port {port:?}: expected 1-65535"))?,
        }),
        ["register", ..] => usage("register <id> <host> <port>"),
        ["unregister", id] => Ok(Command::Unregister(
            ServerId::new(*id).map_err(|e| format!("bad id {id:?}: {e}"))?,
        )),
        ["unregister", ..] => usage("unregister <id>"),
        ["status"] => Ok(Command::Status),
        ["leader"] => Ok(Command::Leader),
        ["reports"] => Ok(Command::Reports),
        ["help"] | ["?"] => Ok(Command::Help),
        ["quit"] | ["exit"] => Ok(Command::Quit),
        [cmd, ..] if ["status", "leader", "reports", "help", "quit", "exit"].contains(cmd) => {
            Err(format!("{cmd} takes no arguments"))
        }
        [cmd, ..] => Err(format!("unknown command {cmd:?}; type help")),
    }
}

/// Reads commands until `quit`, end of input or `stop`.
pub async fn run(monitor: Arc<Monitor>, stop: CancellationToken) {
    let tty = std::io::stdin().is_terminal();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    loop {
        if tty {
            let _ = out.write_all(b"zk> ").await;
            let _ = out.flush().await;
        }
        let line = tokio::select! {
            _ = stop.cancelled() => return,
            l = lines.next_line() => l,
        };
        let Ok(Some(line)) = line else { return };
        let reply = match parse(&line) {
            Ok(Command::Quit) => return,
            Ok(Command::Empty) => continue,
            Ok(cmd) => execute(&monitor, cmd)
                .await
                .unwrap_or_else(|e| format!("error: {e}")),
            Err(e) => format!("error: {e}"),
        };
        let _ = out.write_all(reply.as_bytes()).await;
        let _ = out.write_all(b"\n").await;
        let _ = out.flush().await;
    }
}

async fn execute(monitor: &Monitor, cmd: Command) -> Result<String, String> {
    if cmd == Command::Help {
        return Ok(HELP.into());
    }
    if cmd == Command::Status {
        return Ok(status(monitor));
    }
    let client = monitor
        .wait_client(monitor.session_timeout())
        .await
        .ok_or("not connected to ZooKeeper; try again")?;
    let layout = monitor.layout();
    let zkerr = |e: zk::ZkError| e.to_string();
    match cmd {
        Command::Register { id, host, port } => {
            let record = HeadRecord {
                v: records::RECORD_VERSION,
                id: id.clone(),
                host: host.clone(),
                api_port: port,
                metrics_port: None,
                version: String::new(),
                started_at: records::now_ms(),
                registered_by: Some(monitor.id().to_string()),
                // A head of this grid speaks TLS when the grid does.
                tls: monitor.outgoing().https(),
                s3_port: None,
            };
            match client
                .create(
                    &layout.head(&id),
                    &records::encode(&record),
                    &layout.ephemeral(),
                )
                .await
            {
                Ok(_) => Ok(format!("registered {id} at {host}:{port}")),
                Err(ZkClientError::NodeExists) => Err(format!("{id} is already registered")),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Unregister(id) => {
            let path = layout.head(&id);
            let Some((rec, stat)) = zk::read::<HeadRecord>(&client, &path)
                .await
                .map_err(zkerr)?
            else {
                return Err(format!("{id} is not registered"));
            };
            if rec.registered_by.is_none() {
                return Err(format!(
                    "{id} registered itself; stop that head to unregister it"
                ));
            }
            match client.delete(&path, Some(stat.version)).await {
                Ok(()) => Ok(format!("unregistered {id}")),
                Err(ZkClientError::NoNode) => Err(format!("{id} is not registered")),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Leader => match zk::read::<LeaderRecord>(&client, &layout.leader())
            .await
            .map_err(zkerr)?
        {
            Some((l, _)) => Ok(format!(
                "leader: {} at {}:{} epoch {}",
                l.server_id, l.host, l.api_port, l.epoch
            )),
            None => Ok("leader: none (election in progress)".into()),
        },
        Command::Reports => {
            let mut names = client
                .list_children(&layout.health_reports_dir())
                .await
                .map_err(|e| e.to_string())?;
            names.sort_by(|a, b| crate::ids::natural_cmp(a, b));
            let mut lines = Vec::new();
            for name in names {
                let Ok(id) = ServerId::new(name) else {
                    continue;
                };
                if let Some((r, _)) = zk::read::<HealthReport>(&client, &layout.health_report(&id))
                    .await
                    .map_err(zkerr)?
                {
                    lines.push(format!(
                        "{id}: {} latency={}ms consecutive_failures={} reporter={} checked_at={}",
                        serde_json::to_value(r.status)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default(),
                        r.latency_ms,
                        r.consecutive_failures,
                        r.reporter,
                        r.checked_at
                    ));
                }
            }
            if lines.is_empty() {
                Ok("no reports yet".into())
            } else {
                Ok(lines.join("\n"))
            }
        }
        Command::Status | Command::Help | Command::Quit | Command::Empty => Ok(String::new()),
    }
}

fn status(monitor: &Monitor) -> String {
    let heads = monitor.heads();
    if heads.is_empty() {
        return "no heads registered".into();
    }
    heads
        .iter()
        .map(|(id, h)| {
            let last = match &h.last {
                None => "not checked yet".to_string(),
                Some(o) if o.healthy() => format!("healthy latency={}ms", o.latency.as_millis()),
                Some(o) => format!(
                    "unhealthy ({}) failures={}",
                    o.error.as_deref().unwrap_or("?"),
                    h.consecutive_failures
                ),
            };
            let manual = if h.record.registered_by.is_some() {
                " [registered by hand]"
            } else {
                ""
            };
            format!(
                "{id} {}:{} {last}{manual}",
                h.record.host, h.record.api_port
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_rejects_malformed_ones() {
        assert_eq!(parse("  "), Ok(Command::Empty));
        assert_eq!(parse("status"), Ok(Command::Status));
        assert!(matches!(
            parse("register head_server_9 127.0.0.1 9000"),
            Ok(Command::Register { port: 9000, .. })
        ));
        assert!(
            parse("register head_server_9 127.0.0.1")
                .unwrap_err()
                .starts_with("usage")
        );
        assert!(
            parse("register h 127.0.0.1 99999")
                .unwrap_err()
                .contains("bad port")
        );
        assert!(parse("register a/b h 1").unwrap_err().contains("bad id"));
        assert!(parse("frobnicate").unwrap_err().contains("unknown command"));
        assert!(parse("leader now").unwrap_err().contains("no arguments"));
    }
}
