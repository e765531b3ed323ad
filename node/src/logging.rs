//! `tracing` set-up shared by the binaries: `RUST_LOG` filters (default `info`), text or JSON.

use std::io::IsTerminal;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = tracing_subscriber::EnvFilter::try_new(filter_directives(rust_log.as_deref()))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter_directives(None)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The filter when `RUST_LOG` is not set.
const DEFAULT: &str = "info,zookeeper_client=warn";

/// The S3 protocol layer logs every request it answers with an error at error level, a
/// client's wrong signature or unsupported call included, so anyone who can reach the S3
/// port could fill the log with errors. The head logs each such answer itself, with its
/// request id (refusals at debug, failures at warn), so the layer's own logs are off unless
/// `RUST_LOG` names `s3s`. Pure.
fn filter_directives(rust_log: Option<&str>) -> String {
    let base = rust_log.filter(|v| !v.trim().is_empty()).unwrap_or(DEFAULT);
    if base.contains("s3s") {
        base.to_string()
    } else {
        format!("{base},s3s=off")
    }
}

/// For the CLI: only warnings and errors unless `RUST_LOG` says otherwise.
pub fn init_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_layer_is_quiet_unless_named() {
        assert_eq!(filter_directives(None), format!("{DEFAULT},s3s=off"));
        assert_eq!(filter_directives(Some("")), format!("{DEFAULT},s3s=off"));
        assert_eq!(filter_directives(Some("debug")), "debug,s3s=off");
        assert_eq!(filter_directives(Some("info,s3s=debug")), "info,s3s=debug");
    }
}
