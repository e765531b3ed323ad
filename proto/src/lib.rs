//! FileGrid's wire model: every value that crosses a process boundary, in one place.
//!
//! HTTP bodies of the head API ([`head`]) and of the chunk API ([`chunk`]), the error body
//! every role answers with ([`error`]), header names ([`headers`]), the records kept in
//! ZooKeeper ([`zk`]; file manifests in [`manifest`]), server ids ([`ids`]) and each role's
//! configuration file ([`config`]).
//! Serde only, no I/O: the node, the operator, the CLI, the testkit and the benchmark all
//! depend on this crate, so a change to what one process sends is checked by the compiler
//! everywhere it is read.

pub mod auth;
pub mod chunk;
pub mod config;
pub mod error;
pub mod head;
pub mod headers;
pub mod ids;
pub mod manifest;
pub mod zk;

pub use error::{ErrorBody, ErrorCode};
pub use ids::ServerId;
