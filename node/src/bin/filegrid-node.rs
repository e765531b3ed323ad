//! `filegrid-node`: one binary for every FileGrid server role.

use clap::{Parser, Subcommand};
use filegrid_node::config::{ClusterArgs, HeadArgs, MonitorArgs};

#[derive(Parser)]
#[command(name = "filegrid-node", version, about = "FileGrid server processes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Head server: file API, metadata owner while leader
    Head(HeadArgs),
    /// Cluster server: stores replicated, checksummed chunks
    Cluster(ClusterArgs),
    /// Head server monitor (also installed as zk_head_server_monitor)
    Monitor(MonitorArgs),
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Head(a) => filegrid_node::run::head(a),
        Command::Cluster(a) => filegrid_node::run::cluster(a),
        Command::Monitor(a) => filegrid_node::run::monitor(a),
    }
}
