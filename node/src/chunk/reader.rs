//! Streamed, verified chunk reads.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::AsyncReadExt;

use super::checksum::Hasher;
use super::dir::ChunkDir;
use super::error::StoreError;
use super::format::TRAILER_LEN;
use super::meta::ChunkMeta;

/// Size of each read from disk, and of each item of the stream.
const READ_BUF: u64 = 256 * 1024;

/// An open, verified read of a chunk.
pub struct ChunkRead {
    /// Length and checksum of the whole chunk.
    pub meta: ChunkMeta,
    /// The byte range of the chunk that `body` yields.
    pub range: Range<u64>,
    /// The bytes of `range`. Its last item is an error if the chunk failed verification,
    /// so a consumer that sees the stream end cleanly got correct bytes.
    pub body: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl std::fmt::Debug for ChunkRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkRead")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl ChunkRead {
    /// Reads the stream to its end, discarding the bytes; fails if verification fails.
    pub async fn drain(mut self) -> Result<(), StoreError> {
        while let Some(item) = self.body.next().await {
            item?;
        }
        Ok(())
    }

    /// Collects the bytes of the range into memory (for small chunks and tests).
    pub async fn into_bytes(mut self) -> Result<Bytes, StoreError> {
        let mut out = BytesMut::with_capacity((self.range.end - self.range.start) as usize);
        while let Some(item) = self.body.next().await {
            out.extend_from_slice(&item?);
        }
        Ok(out.freeze())
    }
}

struct State {
    store: Arc<dyn ChunkDir>,
    meta: ChunkMeta,
    file: tokio::fs::File,
    range: Range<u64>,
    pos: u64,
    hasher: Hasher,
    done: bool,
    /// The whole chunk, when it was read at open.
    preread: Option<BytesMut>,
}

/// The data of a chunk of at most [`READ_BUF`] bytes, read at once (when the file has the
/// length the index says; otherwise `open` reports it); `None` for larger chunks.
pub(crate) fn read_small(
    file: &File,
    len: u64,
    file_len: u64,
) -> std::io::Result<Option<BytesMut>> {
    use std::os::unix::fs::FileExt;
    if len > READ_BUF || file_len != len + TRAILER_LEN {
        return Ok(None);
    }
    let mut buf = BytesMut::zeroed(len as usize);
    file.read_exact_at(&mut buf, 0)?;
    Ok(Some(buf))
}

/// Starts a verified read of `range` of the chunk in `file` (`file_len` bytes on disk), whose
/// data may already have been read (`data`, from [`read_small`]).
pub(crate) async fn open(
    store: Arc<dyn ChunkDir>,
    meta: ChunkMeta,
    file: File,
    file_len: u64,
    data: Option<BytesMut>,
    range: Option<Range<u64>>,
) -> Result<ChunkRead, StoreError> {
    let range = range.unwrap_or(0..meta.len);
    if range.start > range.end || range.end > meta.len {
        return Err(StoreError::RangeNotSatisfiable {
            id: meta.id,
            start: range.start,
            end: range.end,
            len: meta.len,
        });
    }
    let file = tokio::fs::File::from_std(file);
    if file_len != meta.len + TRAILER_LEN {
        let reason = format!(
            "file holds {file_len} bytes, expected {}",
            meta.len + TRAILER_LEN
        );
        store.report_bad(&meta.id, reason.clone());
        return Err(StoreError::Corrupt {
            id: meta.id,
            reason,
        });
    }
    let state = State {
        store,
        meta: meta.clone(),
        file,
        range: range.clone(),
        pos: 0,
        hasher: Hasher::default(),
        done: false,
        preread: data,
    };
    let body = stream::unfold(state, |mut st| async move {
        let item = st.next_item().await?;
        Some((item, st))
    })
    .boxed();
    Ok(ChunkRead { meta, range, body })
}

impl State {
    /// The next piece of the range, or the verification error, or `None` at a verified end.
    async fn next_item(&mut self) -> Option<Result<Bytes, StoreError>> {
        if self.done {
            return None;
        }
        while self.pos < self.meta.len {
            let (block, buf) = match self.read_block().await {
                Ok(read) => read,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let start = block.start.max(self.range.start);
            let end = block.end.min(self.range.end);
            if start < end {
                let piece = buf
                    .freeze()
                    .slice((start - block.start) as usize..(end - block.start) as usize);
                if end < self.range.end {
                    return Some(Ok(piece));
                }
                // The last piece of the range is held back until the whole chunk has been
                // verified, so a consumer never receives the complete range of a bad chunk.
                return Some(self.verify_rest().await.map(|()| piece));
            }
        }
        // An empty range: nothing to send, but the chunk is still verified.
        self.verify_rest().await.err().map(Err)
    }

    /// Reads and hashes the next block of the chunk.
    async fn read_block(&mut self) -> Result<(Range<u64>, BytesMut), StoreError> {
        let n = READ_BUF.min(self.meta.len - self.pos);
        let buf = match self.preread.take() {
            Some(buf) if self.pos == 0 && buf.len() as u64 == n => buf,
            _ => {
                let mut buf = BytesMut::zeroed(n as usize);
                if let Err(e) = self.file.read_exact(&mut buf).await {
                    return Err(self.fail(format!("read error at offset {}: {e}", self.pos)));
                }
                buf
            }
        };
        self.hasher.update(&buf);
        let block = self.pos..self.pos + n;
        self.pos += n;
        Ok((block, buf))
    }

    /// Reads and hashes the chunk to its end and checks the checksum; ends the stream.
    async fn verify_rest(&mut self) -> Result<(), StoreError> {
        self.done = true;
        while self.pos < self.meta.len {
            self.read_block().await?;
        }
        let actual = self.hasher.finish();
        if actual != self.meta.checksum {
            let reason = format!(
                "checksum mismatch: stored {}, computed {actual}",
                self.meta.checksum
            );
            return Err(self.fail(reason));
        }
        Ok(())
    }

    fn fail(&self, reason: String) -> StoreError {
        self.store.report_bad(&self.meta.id, reason.clone());
        StoreError::Corrupt {
            id: self.meta.id.clone(),
            reason,
        }
    }
}
