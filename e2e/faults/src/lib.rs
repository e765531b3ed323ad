//! FileGrid's fault-injection suite. A nemesis kills, pauses and restarts heads, cluster
//! servers and ZooKeeper, cuts a head off the network, fills a disk and corrupts chunk files,
//! while clients write, overwrite, delete and read files; a checker then judges the recorded
//! history. Everything runs on real processes from `filegrid-testkit`. See
//! `docs/reliability.md`.

pub mod availability;
pub mod checker;
pub mod client;
pub mod disk;
pub mod history;
pub mod nemesis;
pub mod netcut;
pub mod replication;
pub mod schedule;
pub mod workload;
