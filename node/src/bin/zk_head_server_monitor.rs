//! `zk_head_server_monitor`: the head server monitor under the name users of the original
//! system know; the same as `filegrid-node monitor`.

use clap::Parser;
use filegrid_node::config::MonitorArgs;

#[derive(Parser)]
#[command(
    name = "zk_head_server_monitor",
    version,
    about = "FileGrid head server monitor"
)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    filegrid_node::run::monitor(cli.args)
}
