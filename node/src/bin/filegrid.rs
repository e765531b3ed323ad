//! `filegrid`: the FileGrid command-line client.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = filegrid_node::cli::Cli::parse();
    filegrid_node::logging::init_quiet();
    match filegrid_node::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filegrid: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
