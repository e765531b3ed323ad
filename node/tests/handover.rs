//! A leader stopped gracefully (SIGTERM, as Kubernetes stops a pod) hands over without failing
//! the writes it is serving: real ZooKeeper, two real heads, real cluster servers.

use std::io::Read;
use std::time::{Duration, Instant};

use filegrid_testkit::{Grid, GridOptions, wait_until_sync};

mod common;
use common::{admin_http, node_bin, random};

/// A body that arrives in `pieces`, `pause` apart: a slow client's upload.
struct Slow {
    data: Vec<u8>,
    sent: usize,
    piece: usize,
    pause: Duration,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent == self.data.len() {
            return Ok(0);
        }
        if self.sent > 0 && self.sent.is_multiple_of(self.piece) {
            std::thread::sleep(self.pause);
        }
        let end = (self.sent - self.sent % self.piece + self.piece).min(self.data.len());
        let n = (end - self.sent).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}

#[test]
fn a_stopping_leader_finishes_the_uploads_it_is_receiving_before_it_hands_over() {
    let mut grid = Grid::start(
        node_bin(),
        GridOptions {
            heads: 2,
            ..Default::default()
        },
    );
    let base = grid.leader_url(Duration::from_secs(30));
    let leader = (0..grid.heads.len())
        .find(|&i| grid.head_url(i) == base)
        .expect("the leader is one of the heads");
    let other = 1 - leader;

    // An upload that takes about 3 s, under way when the leader is told to stop.
    let data = random(600_000);
    let slow = Slow {
        data: data.clone(),
        sent: 0,
        piece: 100_000,
        pause: Duration::from_millis(500),
    };
    let url = format!("{base}/v1/files/handover/slow");
    let upload = std::thread::spawn(move || {
        let started = Instant::now();
        let r = admin_http()
            .put(url)
            .body(reqwest::blocking::Body::sized(slow, 600_000))
            .send();
        (
            r.map(|r| (r.status().as_u16(), r.text().unwrap_or_default())),
            started.elapsed(),
        )
    });
    std::thread::sleep(Duration::from_millis(700));
    grid.heads[leader].proc.terminate();

    // While it drains, the stopping leader admits no new write: under a steady load it would
    // otherwise never get to zero writes in progress, and hold leadership for its whole wait.
    let refused = wait_until_sync(Duration::from_secs(10), "a new write refused", || {
        let r = admin_http()
            .put(format!("{base}/v1/files/handover/late"))
            .body(random(100))
            .send()
            .ok()?;
        (r.status() == 503).then(|| r.text().unwrap_or_default())
    });
    assert!(refused.contains("no_leader"), "{refused}");

    let (answer, took) = upload.join().unwrap();
    let (status, text) = answer.expect("an answer to the upload");
    assert_eq!(
        status, 201,
        "the upload under way failed at the handover: {text}"
    );
    eprintln!("upload answered 201 after {took:?}");
    assert!(
        grid.heads[leader]
            .proc
            .wait_exit(Duration::from_secs(30))
            .is_some(),
        "the stopped head exited"
    );
    assert!(
        grid.heads[leader]
            .proc
            .log()
            .contains("letting the writes in progress finish"),
        "the head waited for the upload"
    );

    // The other head leads and serves the file.
    let new_base = grid.head_url(other);
    let back = wait_until_sync(
        Duration::from_secs(30),
        "the other head to serve it",
        || {
            let r = admin_http()
                .get(format!("{new_base}/v1/files/handover/slow"))
                .send()
                .ok()?;
            (r.status() == 200).then(|| r.bytes().ok()).flatten()
        },
    );
    assert!(
        back.as_ref() == data.as_slice(),
        "the file reads back whole"
    );
}
