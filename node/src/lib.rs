//! FileGrid node: head servers, cluster servers, the head server monitor and the user CLI.
//!
//! Where things are: [`election`] (who leads), [`fencing`] (why a deposed leader cannot write),
//! [`monitor`] (health checks and forced failover), [`head`] (the head process and its API),
//! [`zk`] (ZooKeeper layout and records), [`config`] (settings), [`cli`] (the `filegrid` tool).

pub mod auth;
pub mod buffers;
pub mod chunk;
pub mod cli;
pub mod cluster;
pub mod cluster_server;
pub mod config;
pub mod election;
pub mod fencing;
pub mod files;
pub mod head;
pub mod http;
pub mod ids;
pub mod leadership;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod monitor;
pub mod multi_md5;
pub mod run;
pub mod s3;
pub mod signals;
pub mod zk;
