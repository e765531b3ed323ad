//! When a client stops waiting for a call that does not answer. A write or delete sent to the
//! leader is never given up merely for being slow: it may still commit, and a copy sent again
//! elsewhere could then be overtaken by it. It is given up once another head names a leader
//! of a newer epoch: the head called has been deposed, and every write it could still make is
//! refused by the epoch fence (ZooKeeper's and the cluster servers'), so the call can no
//! longer commit and the write is sent again to the new leader. A read changes nothing, so a
//! read that does not answer is simply asked of another head as well.

use std::time::Duration;

use filegrid_proto::head::LeaderView;

/// How long a call waits for its answer before the client starts asking who leads (a write
/// or delete) or asks another head too (a read). A healthy head answers a small call well
/// within it; a stopped or cut-off one never does.
pub const STALLED_AFTER: Duration = Duration::from_secs(1);

/// How often a client whose call to the leader has stalled asks who leads.
pub const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Whether a call sent to the leader of `called_epoch` is to be given up now that a head
/// names `named` as the leader: only a newer epoch deposes the head called (the same epoch is
/// the same leadership, and an older one a head that has not caught up).
pub fn superseded(called_epoch: u64, named: &LeaderView) -> bool {
    named.epoch > called_epoch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(epoch: u64) -> LeaderView {
        LeaderView {
            server_id: crate::ids::ServerId::new("head_server_2").unwrap(),
            host: "127.0.0.1".into(),
            api_port: 9669,
            epoch,
            elected_at: 0,
            tls: false,
            s3_port: None,
        }
    }

    #[test]
    fn only_a_newer_epoch_deposes_the_leader_called() {
        assert!(superseded(4, &led(5)));
        // The same leadership, or a head still naming an older one: keep waiting.
        assert!(!superseded(5, &led(5)));
        assert!(!superseded(5, &led(4)));
    }
}
