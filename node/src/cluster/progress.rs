//! Watching an upload's progress: when its hop last took a piece of the body. A hop that
//! takes nothing for a while (or, once it has every piece, gives no answer) is hung, however
//! long a healthy transfer of the whole chunk would take.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;

/// Pieces an upload body is cut into, so that progress is seen within a chunk.
const PIECE: usize = 64 * 1024;

/// When an upload's body last moved, shared between the body and the watchdog.
#[derive(Clone, Debug)]
pub struct Watch {
    start: Instant,
    /// Milliseconds from `start` to the last piece taken.
    last_ms: Arc<AtomicU64>,
}

impl Default for Watch {
    fn default() -> Self {
        Self::new()
    }
}

impl Watch {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the body last moved.
    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// `data` as a body in pieces; each piece the connection takes counts as progress (the
    /// connection takes the next only once it has written the last), and so does its end.
    pub fn stream(&self, data: Bytes) -> impl Stream<Item = Result<Bytes, std::io::Error>> + use<> {
        let pieces: Vec<Bytes> = (0..data.len())
            .step_by(PIECE)
            .map(|at| data.slice(at..(at + PIECE).min(data.len())))
            .collect();
        let watch = self.clone();
        futures::stream::unfold(
            (pieces.into_iter(), watch),
            |(mut pieces, watch)| async move {
                watch.touch();
                let next = pieces.next()?;
                Some((Ok(next), (pieces, watch)))
            },
        )
    }

    /// Resolves once nothing moved for `limit` (answers how long that was); never
    /// otherwise.
    pub async fn stalled(&self, limit: Duration) -> Duration {
        loop {
            let idle = self.idle();
            if idle >= limit {
                return idle;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_body_that_moves_is_never_stalled_and_one_that_stops_is() {
        let watch = Watch::new();
        let data = Bytes::from(vec![7u8; 5 * PIECE + 10]);
        let mut body = Box::pin(watch.stream(data.clone()));
        let limit = Duration::from_secs(1);
        let mut got = Vec::new();
        // A piece every 300 ms: longer in total than the limit, but always moving.
        while let Some(piece) = body.next().await {
            got.extend_from_slice(&piece.unwrap());
            let stalled =
                tokio::time::timeout(Duration::from_millis(300), watch.stalled(limit)).await;
            assert!(stalled.is_err(), "stalled while moving");
        }
        assert_eq!(got, data);
        // Nothing moves any more: stalled once the limit has passed since the end.
        let idle = tokio::time::timeout(Duration::from_secs(10), watch.stalled(limit))
            .await
            .unwrap();
        assert!(idle >= limit);
    }
}
