//! One thread hashes the bodies of all uploads, several at once.
//!
//! Uploads hand their bytes over as they stream in ([`Md5Stream::feed`]). The thread holds a
//! stream's bytes until they are needed (the upload ends, or it holds [`HOLD`] of them, or all
//! streams together hold half of [`ROOM`]), then hashes that stream together with every other
//! stream that has bytes waiting, up to eight at a time in one AVX2 pass ([`pick`] decides).
//! Holding is what makes batches: hashed at once, each upload's bytes would mostly be hashed
//! alone. When no bytes arrive for [`IDLE`], the thread hashes what it holds anyway: the CPU
//! would otherwise sit idle.
//!
//! Memory is bounded twice: a stream is hashed once it holds [`HOLD`] bytes, and all streams
//! together hold at most [`ROOM`] (an upload waits in `feed` for room beyond that).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, oneshot};

use super::Md5;
use super::kernel::{self, BLOCK, LANES};

/// Bytes one stream holds before it is hashed without waiting for its end.
pub const HOLD: usize = 1 << 20;

/// Bytes all streams hold at most; past half of it, the largest are hashed first.
pub const ROOM: usize = 64 << 20;

/// How long the thread waits for more bytes before hashing what it holds.
pub const IDLE: Duration = Duration::from_millis(2);

/// Blocks one pass hashes per stream at most, so that streams take turns.
const PASS_BLOCKS: usize = 1024;

/// Room is counted in KiB.
const UNIT: usize = 1024;

/// The hashing thread is gone (it panicked); the digest cannot be computed.
#[derive(Debug, thiserror::Error)]
#[error("the MD5 hashing thread stopped")]
pub struct HasherGone;

/// One upload's MD5, computed by the hashing thread.
pub struct Md5Stream {
    id: u64,
    batcher: &'static Batcher,
    broken: bool,
    done: bool,
}

impl Md5Stream {
    /// A stream that continues `md5` (which may have hashed the body's first bytes already).
    pub fn start(md5: Md5) -> Self {
        let batcher = Batcher::get();
        let id = batcher.next_id.fetch_add(1, Ordering::Relaxed);
        let broken = batcher.tx.send(Msg::Open(id, Box::new(md5))).is_err();
        Self {
            id,
            batcher,
            broken,
            done: false,
        }
    }

    /// Hands `data`, the body's next bytes, to the thread; waits while all streams together
    /// hold [`ROOM`].
    pub async fn feed(&mut self, data: Bytes) {
        if self.broken || data.is_empty() {
            return;
        }
        let units = data.len().div_ceil(UNIT).min(ROOM / UNIT) as u32;
        match self.batcher.room.acquire_many(units).await {
            Ok(p) => p.forget(),
            Err(_) => {
                self.broken = true;
                return;
            }
        }
        let frame = Frame {
            data,
            units,
            used: 0,
        };
        if self.batcher.tx.send(Msg::Data(self.id, frame)).is_err() {
            self.broken = true;
        }
    }

    /// The MD5 with every byte fed hashed (but for the last unfinished block, which it keeps).
    pub async fn finish(mut self) -> Result<Md5, HasherGone> {
        self.done = true;
        if self.broken {
            return Err(HasherGone);
        }
        let (tx, rx) = oneshot::channel();
        self.batcher
            .tx
            .send(Msg::Finish(self.id, tx))
            .map_err(|_| HasherGone)?;
        rx.await.map_err(|_| HasherGone)
    }
}

impl Drop for Md5Stream {
    fn drop(&mut self) {
        if !self.done {
            // The upload failed: the thread forgets the stream and frees its room.
            let _ = self.batcher.tx.send(Msg::Abandon(self.id));
        }
    }
}

enum Msg {
    Open(u64, Box<Md5>),
    Data(u64, Frame),
    Finish(u64, oneshot::Sender<Md5>),
    Abandon(u64),
}

struct Frame {
    data: Bytes,
    /// Room this frame took, given back once it is hashed.
    units: u32,
    /// Bytes of `data` hashed so far.
    used: usize,
}

impl Frame {
    fn rest(&self) -> &[u8] {
        &self.data[self.used..]
    }
}

struct Batcher {
    tx: mpsc::Sender<Msg>,
    room: Arc<Semaphore>,
    next_id: AtomicU64,
}

impl Batcher {
    fn get() -> &'static Batcher {
        static BATCHER: OnceLock<Batcher> = OnceLock::new();
        BATCHER.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let room = Arc::new(Semaphore::new(ROOM / UNIT));
            let thread_room = room.clone();
            let spawned = std::thread::Builder::new()
                .name("md5-batcher".into())
                .spawn(move || run(rx, thread_room));
            if let Err(e) = spawned {
                // Uploads then fail with `HasherGone` rather than wait forever.
                tracing::error!(error = %e, "could not start the MD5 hashing thread");
                room.close();
            }
            Batcher {
                tx,
                room,
                next_id: AtomicU64::new(0),
            }
        })
    }
}

/// A stream as the thread sees it.
struct Stream {
    md5: Md5,
    frames: VecDeque<Frame>,
    /// Bytes in `frames` not hashed yet.
    held: usize,
    finish: Option<oneshot::Sender<Md5>>,
}

/// What [`pick`] needs to know of a stream.
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    pub held: usize,
    pub finishing: bool,
}

/// The streams to hash in the next pass, most urgent first, at most [`LANES`]: none while
/// no stream must be hashed now and the thread is not idle; otherwise the urgent ones (ending,
/// or holding [`HOLD`], or any while all hold half of [`ROOM`]), then the others holding most.
pub fn pick(streams: &[Waiting], total: usize, idle: bool) -> Vec<usize> {
    let pressed = total >= ROOM / 2;
    let urgent = |w: &Waiting| w.held > 0 && (w.finishing || w.held >= HOLD || pressed);
    if !idle && !streams.iter().any(urgent) {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..streams.len())
        .filter(|&i| streams[i].held > 0)
        .collect();
    order.sort_by_key(|&i| (!urgent(&streams[i]), std::cmp::Reverse(streams[i].held)));
    order.truncate(LANES);
    order
}

/// Gives the room of hashed frames back.
struct Room(Arc<Semaphore>);

impl Room {
    fn free(&self, units: u32) {
        self.0.add_permits(units as usize);
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        // The thread ends only by panicking: waiting feeds fail instead of waiting forever.
        self.0.close();
    }
}

fn run(rx: mpsc::Receiver<Msg>, room: Arc<Semaphore>) {
    let room = Room(room);
    let mut streams: HashMap<u64, Stream> = HashMap::new();
    let mut total = 0usize;
    let mut idle = false;
    loop {
        while let Ok(m) = rx.try_recv() {
            idle = false;
            take(m, &mut streams, &mut total, &room);
        }
        let ids: Vec<u64> = streams.keys().copied().collect();
        let waiting: Vec<Waiting> = ids
            .iter()
            .map(|id| Waiting {
                held: streams[id].held,
                finishing: streams[id].finish.is_some(),
            })
            .collect();
        let chosen = pick(&waiting, total, idle);
        if chosen.is_empty() {
            // Nothing held: sleep until an upload sends something. Bytes held: hash them
            // anyway if nothing more comes for a while.
            let next = if total == 0 {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(IDLE)
            };
            match next {
                Ok(m) => {
                    idle = false;
                    take(m, &mut streams, &mut total, &room);
                }
                Err(RecvTimeoutError::Timeout) => idle = true,
                Err(RecvTimeoutError::Disconnected) => return,
            }
            continue;
        }
        let chosen: Vec<u64> = chosen.into_iter().map(|i| ids[i]).collect();
        total -= hash_pass(&mut streams, &chosen, &room);
        for id in chosen {
            finish_if_done(&mut streams, id);
        }
    }
}

fn take(msg: Msg, streams: &mut HashMap<u64, Stream>, total: &mut usize, room: &Room) {
    match msg {
        Msg::Open(id, md5) => {
            streams.insert(
                id,
                Stream {
                    md5: *md5,
                    frames: VecDeque::new(),
                    held: 0,
                    finish: None,
                },
            );
        }
        Msg::Data(id, frame) => match streams.get_mut(&id) {
            Some(s) => {
                s.held += frame.data.len();
                *total += frame.data.len();
                s.frames.push_back(frame);
            }
            None => room.free(frame.units),
        },
        Msg::Finish(id, reply) => {
            if let Some(s) = streams.get_mut(&id) {
                s.finish = Some(reply);
            }
            finish_if_done(streams, id);
        }
        Msg::Abandon(id) => {
            if let Some(s) = streams.remove(&id) {
                *total -= s.held;
                for f in s.frames {
                    room.free(f.units);
                }
            }
        }
    }
}

fn finish_if_done(streams: &mut HashMap<u64, Stream>, id: u64) {
    if streams
        .get(&id)
        .is_some_and(|s| s.held == 0 && s.finish.is_some())
        && let Some(s) = streams.remove(&id)
        && let Some(reply) = s.finish
    {
        // The upload may have gone meanwhile; then nobody wants the digest.
        let _ = reply.send(s.md5);
    }
}

/// Brings a stream to a block boundary: completes its unfinished block from its frames and
/// moves a frame's last bytes short of a block into it. Afterwards the front frame, if any,
/// holds at least one whole block. Returns the bytes consumed.
fn align(s: &mut Stream, room: &Room) -> usize {
    let mut used = 0;
    while let Some(front) = s.frames.front_mut() {
        let rest = front.rest();
        let after = s.md5.fill_partial(rest);
        let mut n = rest.len() - after.len();
        if s.md5.partial_len == 0 && after.len() < BLOCK {
            s.md5.keep_partial(after);
            n += after.len();
        }
        front.used += n;
        used += n;
        if front.rest().is_empty() {
            if let Some(f) = s.frames.pop_front() {
                room.free(f.units);
            }
            continue;
        }
        if s.md5.partial_len == 0 {
            break;
        }
    }
    s.held -= used;
    used
}

/// Hashes the streams `ids` together; returns the bytes hashed.
fn hash_pass(streams: &mut HashMap<u64, Stream>, ids: &[u64], room: &Room) -> usize {
    let mut used = 0;
    let mut lanes: Vec<&mut Stream> = Vec::with_capacity(LANES);
    for (id, s) in streams.iter_mut() {
        if ids.contains(id) {
            used += align(s, room);
            if s.frames.front().is_some_and(|f| f.rest().len() >= BLOCK) {
                lanes.push(s);
            }
        }
    }
    let Some(blocks) = lanes
        .iter()
        .filter_map(|s| s.frames.front().map(|f| f.rest().len() / BLOCK))
        .min()
        .map(|b| b.min(PASS_BLOCKS))
    else {
        return used;
    };
    let bytes = blocks * BLOCK;
    {
        let mut args: Vec<(&mut [u32; 4], &[u8])> = Vec::with_capacity(lanes.len());
        for s in lanes.iter_mut() {
            let Stream { md5, frames, .. } = &mut **s;
            if let Some(f) = frames.front() {
                args.push((&mut md5.state, f.rest()));
            }
        }
        kernel::compress_lanes(&mut args, blocks);
    }
    let pass = if lanes.len() > 1 && kernel::lanes_available() {
        "lanes"
    } else {
        "single"
    };
    crate::metrics::md5_hashed_bytes()
        .with_label_values(&[pass])
        .inc_by((bytes * lanes.len()) as u64);
    for s in lanes {
        s.md5.hashed_blocks(blocks);
        s.held -= bytes;
        used += bytes;
        if let Some(front) = s.frames.front_mut() {
            front.used += bytes;
            if front.rest().is_empty()
                && let Some(f) = s.frames.pop_front()
            {
                room.free(f.units);
            }
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn w(held: usize, finishing: bool) -> Waiting {
        Waiting { held, finishing }
    }

    #[test]
    fn nothing_is_hashed_before_it_must_be_unless_idle() {
        let streams = [w(1000, false), w(HOLD - 1, false)];
        assert!(pick(&streams, HOLD, false).is_empty());
        assert_eq!(pick(&streams, HOLD, true), vec![1, 0]);
        assert!(pick(&[w(0, true)], 0, true).is_empty(), "nothing held");
    }

    #[test]
    fn an_urgent_stream_brings_the_others_along() {
        let streams = [
            w(10, false),
            w(5, true),
            w(HOLD, false),
            w(0, false),
            w(70, false),
        ];
        assert_eq!(pick(&streams, HOLD + 85, false), vec![2, 1, 4, 0]);
    }

    #[test]
    fn at_most_eight_lanes_and_under_pressure_the_largest_first() {
        let streams: Vec<Waiting> = (1..=12).map(|i| w(i * 1000, false)).collect();
        let got = pick(&streams, ROOM / 2, false);
        assert_eq!(got, vec![11, 10, 9, 8, 7, 6, 5, 4]);
    }

    async fn hash_all(bodies: &[Vec<u8>], frame: usize) -> Vec<[u8; 16]> {
        let mut streams: Vec<Md5Stream> = bodies
            .iter()
            .map(|_| Md5Stream::start(Md5::new()))
            .collect();
        let longest = bodies.iter().map(Vec::len).max().unwrap_or(0);
        let mut at = 0;
        while at < longest {
            for (s, b) in streams.iter_mut().zip(bodies) {
                if at < b.len() {
                    let end = (at + frame).min(b.len());
                    s.feed(Bytes::copy_from_slice(&b[at..end])).await;
                }
            }
            at += frame;
        }
        let mut out = Vec::new();
        for s in streams {
            out.push(s.finish().await.expect("the thread runs").finalize());
        }
        out
    }

    #[tokio::test]
    async fn concurrent_streams_get_the_digests_of_their_own_bytes() {
        let bodies: Vec<Vec<u8>> = (0..11)
            .map(|k| {
                (0..(k * 150_001 + 17))
                    .map(|i: usize| (i.wrapping_mul(2654435761) >> (k % 7)) as u8)
                    .collect()
            })
            .collect();
        let want: Vec<[u8; 16]> = bodies.iter().map(|b| md5::Md5::digest(b).into()).collect();
        let lanes = || {
            crate::metrics::md5_hashed_bytes()
                .with_label_values(&["lanes"])
                .get()
        };
        let before = lanes();
        for frame in [1, 100, 4096, 16_411, 300_000] {
            if frame == 1 {
                // Byte by byte only for the short bodies: it is slow, not different.
                let short: Vec<Vec<u8>> = bodies.iter().take(2).cloned().collect();
                assert_eq!(hash_all(&short, 1).await, want[..2]);
                continue;
            }
            assert_eq!(hash_all(&bodies, frame).await, want, "frames of {frame}");
        }
        if kernel::lanes_available() {
            assert!(
                lanes() > before,
                "streams held together are hashed in lanes"
            );
        }
    }

    #[tokio::test]
    async fn an_abandoned_stream_gives_its_room_back() {
        let before = Batcher::get().room.available_permits();
        let mut s = Md5Stream::start(Md5::new());
        s.feed(Bytes::from(vec![7u8; 3 * UNIT])).await;
        drop(s);
        // A later stream's digest comes back only after the thread took the abandonment.
        let mut t = Md5Stream::start(Md5::new());
        t.feed(Bytes::from_static(b"abc")).await;
        let got = t.finish().await.expect("the thread runs").finalize();
        assert_eq!(got, <[u8; 16]>::from(md5::Md5::digest(b"abc")));
        assert_eq!(Batcher::get().room.available_permits(), before);
    }
}
