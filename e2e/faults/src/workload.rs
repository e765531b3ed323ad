//! The clients: threads that write, overwrite, delete and read a small set of shared files
//! of sizes from 0 B to several chunks, each operation recorded with its times and outcome.
//! Each thread's choices come from the run's seed and its index.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};

use crate::client::{FileClient, Retry};
use crate::history::{Clock, Op, OpKind, Outcome, Recorder, digest};

#[derive(Clone, Debug)]
pub struct Workload {
    pub clients: usize,
    pub keys: usize,
    pub chunk_size: usize,
    pub seed: u64,
}

/// The path of key `i`.
pub fn key(i: usize) -> String {
    format!("faults/k{i:03}")
}

/// A size from 0 B to a little over three chunks, with the chunk edges favoured.
pub fn pick_size(rng: &mut impl Rng, chunk: usize) -> usize {
    match rng.random_range(0..8) {
        0 => 0,
        1 => rng.random_range(1..64),
        2 => rng.random_range(64..4096),
        3 => chunk - 1,
        4 => chunk,
        5 => chunk + 1,
        _ => rng.random_range(chunk..3 * chunk + 7),
    }
}

/// Starts the clients; they run until `stop` is set.
pub fn start(
    w: &Workload,
    heads: &[String],
    token: &str,
    clock: Clock,
    rec: Recorder,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    (0..w.clients)
        .map(|c| {
            let w = w.clone();
            let heads = heads.to_vec();
            let token = token.to_string();
            let rec = rec.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let Ok(mut client) = FileClient::new(heads, &token, Retry::default()) else {
                    tracing::error!(client = c, "cannot build an HTTP client");
                    return;
                };
                let mut rng = StdRng::seed_from_u64(w.seed ^ (0x9e37_79b9 * (c as u64 + 1)));
                while !stop.load(Ordering::Relaxed) {
                    let k = key(rng.random_range(0..w.keys));
                    let invoke = clock.now();
                    let (kind, outcome, epoch) = match rng.random_range(0..20) {
                        0..9 => {
                            let (outcome, seen) = client.read(&k, false);
                            (OpKind::Read { seen }, outcome, None)
                        }
                        9..17 => {
                            let mut body = vec![0u8; pick_size(&mut rng, w.chunk_size)];
                            rng.fill_bytes(&mut body);
                            let d = digest(&body);
                            let r = client.write(&k, &body);
                            let kind = OpKind::Write {
                                digest: d,
                                size: body.len() as u64,
                            };
                            (kind, r.outcome, r.epoch)
                        }
                        _ => (OpKind::Delete, client.delete(&k), None),
                    };
                    rec.op(Op {
                        client: c,
                        key: k,
                        kind,
                        invoke,
                        complete: clock.now(),
                        outcome,
                        epoch,
                        final_read: false,
                        note: (outcome != Outcome::Ok)
                            .then(|| client.last_error())
                            .flatten(),
                    });
                }
            })
        })
        .collect()
}

/// Reads every key once through the leader after healing, as the final reads.
pub fn final_reads(w: &Workload, heads: &[String], token: &str, clock: Clock, rec: &Recorder) {
    let Ok(mut client) = FileClient::new(heads.to_vec(), token, Retry::default()) else {
        tracing::error!("cannot build an HTTP client for the final reads");
        return;
    };
    for i in 0..w.keys {
        let k = key(i);
        let invoke = clock.now();
        let (outcome, seen) = client.read(&k, true);
        rec.op(Op {
            client: usize::MAX,
            key: k,
            kind: OpKind::Read { seen },
            invoke,
            complete: clock.now(),
            outcome,
            epoch: None,
            final_read: true,
            note: (outcome != Outcome::Ok)
                .then(|| client.last_error())
                .flatten(),
        });
        if outcome != Outcome::Ok {
            tracing::warn!(key = i, "final read failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_span_empty_to_several_chunks() {
        let mut rng = StdRng::seed_from_u64(3);
        let c = 64 * 1024;
        let sizes: Vec<usize> = (0..2000).map(|_| pick_size(&mut rng, c)).collect();
        assert!(sizes.contains(&0) && sizes.iter().any(|&s| (1..64).contains(&s)));
        assert!(sizes.contains(&(c - 1)) && sizes.contains(&c) && sizes.contains(&(c + 1)));
        assert!(sizes.iter().any(|&s| s > 2 * c));
        assert!(sizes.iter().all(|&s| s < 3 * c + 7));
    }
}
