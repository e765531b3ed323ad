//! `filegrid-operator`: run the controller, print the CRD, or render manifests offline.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use filegrid_operator::{crd, render, run};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "filegrid-operator",
    version,
    about = "Kubernetes operator for FileGrid"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile FileGrid resources (one replica at a time holds the leader Lease).
    Run {
        /// Address of /health and /metrics.
        #[arg(long, env = "FILEGRID_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Namespace of the leader-election Lease (the operator's own).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Identity in the Lease; the pod name.
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Log as JSON.
        #[arg(long, env = "FILEGRID_OPERATOR_LOG_JSON")]
        log_json: bool,
        /// Apply the operator's own FileGrid CRD (server-side apply) once leading, so that
        /// upgrading the operator upgrades the CRD.
        #[arg(long, env = "FILEGRID_OPERATOR_APPLY_CRD", default_value_t = true,
              action = clap::ArgAction::Set, value_name = "BOOL")]
        apply_crd: bool,
    },
    /// Print the FileGrid CustomResourceDefinition as YAML.
    Crd,
    /// Write the install manifests, the strict JSON schema and every child of every sample.
    Render {
        #[arg(long, default_value = "crds/samples")]
        samples: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check one FileGrid file against the CEL rules and the operator's validation.
    CheckSample { file: PathBuf },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            listen,
            namespace,
            identity,
            log_json,
            apply_crd,
        } => {
            let filter =
                EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
            // Colour codes only on a terminal: container logs are files and log collectors.
            let ansi = std::io::stdout().is_terminal();
            if log_json {
                tracing_subscriber::fmt()
                    .json()
                    .with_ansi(false)
                    .with_env_filter(filter)
                    .init();
            } else {
                tracing_subscriber::fmt()
                    .with_ansi(ansi)
                    .with_env_filter(filter)
                    .init();
            }
            let identity =
                identity.unwrap_or_else(|| format!("filegrid-operator-{}", std::process::id()));
            match run::run(run::RunOptions {
                listen,
                namespace,
                identity,
                apply_crd,
            })
            .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Crd => match crd::crd_yaml() {
            Ok(y) => {
                print!("{y}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Render { samples, out } => match render::render(&samples, &out) {
            Ok(files) => {
                println!("wrote {} files under {}", files.len(), out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CheckSample { file } => match render::check_sample(&file) {
            Ok(_) => {
                println!("{}: valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{e}");
                ExitCode::from(1)
            }
        },
    }
}
