//! Entry points of the binaries: resolve settings (exit 2 naming the bad one), set up logs,
//! start the runtime, run the role.

use std::process::ExitCode;

use crate::config::env::{KnownVariables, Role};
use crate::config::{ClusterArgs, CommonConfig, ConfigError, HeadArgs, MonitorArgs};

fn start<C>(
    env_role: Role,
    resolve: impl FnOnce() -> Result<C, ConfigError>,
    common: impl Fn(&C) -> &CommonConfig,
    role: impl FnOnce(C) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>,
) -> ExitCode {
    let names = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned());
    let checked = KnownVariables::from_flags()
        .check(env_role, names)
        .and_then(|warnings| Ok((warnings, resolve()?)));
    let (warnings, cfg) = match checked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(common(&cfg).log_format);
    for w in warnings {
        tracing::warn!("{w}");
    }
    if common(&cfg).security.insecure {
        tracing::warn!(
            "running WITHOUT SECURITY (insecure = true): anyone who reaches this process's ports \
             can read, change and delete data; see docs/security.md"
        );
    }
    match common(&cfg).security.zk_access.user() {
        Some(user) => tracing::info!(
            zk_user = user,
            "authenticating to ZooKeeper with digest credentials (zk_auth_file); the grid's nodes are this user's only"
        ),
        None => tracing::warn!(
            "ZooKeeper is unauthenticated (no zk_auth_file): anyone who reaches ZooKeeper can \
             read the grid's metadata, move leadership and register servers; see docs/security.md"
        ),
    }
    return_large_buffers_to_the_os();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(role(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn head(args: HeadArgs) -> ExitCode {
    start(
        Role::Head,
        || args.resolve(),
        |c| &c.common,
        |c| Box::pin(crate::head::run(c)),
    )
}

pub fn monitor(args: MonitorArgs) -> ExitCode {
    start(
        Role::Monitor,
        || args.resolve(),
        |c| &c.common,
        |c| Box::pin(crate::monitor::run(c)),
    )
}

pub fn cluster(args: ClusterArgs) -> ExitCode {
    start(
        Role::Cluster,
        || args.resolve(),
        |c| &c.common,
        |c| Box::pin(crate::cluster_server::run(c)),
    )
}

/// Chunks pass through the processes as multi-MiB buffers. glibc's malloc would keep freed ones
/// in its heaps (its mmap threshold grows with every large free) and resident memory would
/// settle far above what is in use; a fixed threshold makes large buffers mmap'd and returned to
/// the system when freed, and two arenas keep worker threads from each holding a heap. (The
/// chunk buffers a head fills again and again come from a bounded [`crate::buffers`] pool.)
fn return_large_buffers_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters; called once at start-up
    // before the runtime's threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, crate::buffers::LARGE as libc::c_int);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
