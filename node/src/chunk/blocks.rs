//! Page-aligned write buffers and the pool that keeps idle ones for the next chunk writes.

use aligned_vec::{AVec, ConstAlign};

/// Bytes gathered before they are handed to the disk in one write; a multiple of [`ALIGN`].
pub(crate) const BLOCK: usize = 1024 * 1024;
/// Alignment `O_DIRECT` asks of buffers, offsets and lengths (the page size covers every
/// common logical block size).
pub(crate) const ALIGN: usize = 4096;

pub(crate) type Block = AVec<u8, ConstAlign<ALIGN>>;

pub(crate) fn new_block(capacity: usize) -> Block {
    Block::with_capacity(ALIGN, capacity)
}

/// Idle whole-block buffers kept for the next chunk writes: a fresh 1 MiB buffer costs 256
/// page faults and zeroed pages, a noticeable part of a server's CPU when chunks stream in.
#[derive(Debug, Default)]
pub(crate) struct BlockPool {
    idle: std::sync::Mutex<Vec<Block>>,
}

/// Buffers the pool keeps at most (8 MiB): enough for a few concurrent writes.
const POOL_MAX: usize = 8;

impl BlockPool {
    pub(crate) fn take(&self) -> Block {
        self.idle
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_else(|| new_block(BLOCK))
    }

    pub(crate) fn give(&self, mut block: Block) {
        if block.capacity() < BLOCK {
            return;
        }
        block.clear();
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL_MAX
        {
            idle.push(block);
        }
    }
}
