//! Real parts for tests and benchmarks: a ZooKeeper server from Debian's `zookeeper` package on
//! a free loopback port, FileGrid processes with their logs, signals, and waiting on conditions
//! with deadlines. Nothing here simulates ZooKeeper.
//!
//! Failures panic with a message saying what was awaited: this crate is for test code only.

pub mod auth;
pub mod grid;
mod process;
pub mod tls;
mod wait;
mod zookeeper;

pub use grid::{Grid, GridOptions};
pub use process::{Proc, free_port};
pub use tls::{CertFiles, GridTls};
pub use wait::{wait_until, wait_until_sync};
pub use zookeeper::ZkServer;
