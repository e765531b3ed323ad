//! Reused buffers for whole chunks.
//!
//! A head holds every chunk it uploads or reads in one buffer of up to the chunk size (8 MiB
//! by default). Buffers that large are mapped by the allocator and handed back to the system
//! when freed (see [`LARGE`]), so each fresh one costs a page fault for every 4 KiB written to
//! it: about a quarter of a head's CPU on a large read. A [`BufferPool`] keeps a bounded
//! number of freed buffers to be filled again instead.
//!
//! A fresh buffer (the pool had none to give) has its first `len` bytes mapped in one call
//! ([`populate`]) rather than one page fault per 4 KiB as it is written: measured here, that
//! cuts what fresh memory costs from about 0.6 to 0.35 ms per MiB, which a head pays on every
//! upload while its read cache fills.
//!
//! A buffer only ever exposes the bytes written to it since it was taken (it is a `Vec`
//! cleared on return), so nothing of an earlier chunk can leak into a later answer.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Allocations of this size and more are mapped from the system and unmapped when freed
/// (the allocator's mmap threshold, set at start-up); only those are worth pooling.
pub const LARGE: usize = 1 << 20;

/// Freed large buffers, most recently returned last, holding at most `retain` bytes of
/// capacity in all.
#[derive(Debug)]
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    retain: usize,
}

impl BufferPool {
    /// A pool that keeps at most `retain` bytes of freed buffers.
    pub fn new(retain: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(Vec::new()),
            retain,
        })
    }

    /// An empty buffer that holds `len` bytes without growing: a pooled one when `len` is
    /// large, else a plain allocation of exactly `len`.
    pub fn take(self: &Arc<Self>, len: usize) -> PooledBuf {
        let Some(class) = class_of(len) else {
            return PooledBuf {
                data: Vec::with_capacity(len),
                pool: None,
            };
        };
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            free.iter()
                .rposition(|b| b.capacity() == class)
                .map(|i| free.remove(i))
        };
        let data = reused.unwrap_or_else(|| {
            let fresh = Vec::with_capacity(class);
            populate(&fresh, len);
            fresh
        });
        PooledBuf {
            data,
            pool: Some(self.clone()),
        }
    }

    /// Keeps `data` for a later [`take`](Self::take), dropping the least recently returned
    /// buffers when the pool would hold more than `retain` bytes.
    fn give(&self, mut data: Vec<u8>) {
        let cap = data.capacity();
        if class_of(cap) != Some(cap) || cap > self.retain {
            return;
        }
        data.clear();
        let evicted = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            free.push(data);
            let mut held: usize = free.iter().map(Vec::capacity).sum();
            let mut evict = 0;
            while held > self.retain {
                held -= free[evict].capacity();
                evict += 1;
            }
            free.drain(..evict).collect::<Vec<_>>()
        };
        // Unmapped outside the lock.
        drop(evicted);
    }

    /// Bytes of capacity the pool holds now.
    pub fn held(&self) -> usize {
        let free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        free.iter().map(Vec::capacity).sum()
    }
}

/// Maps in the whole pages among the first `len` bytes of `buf`'s spare capacity at once,
/// zero-filled, so that writing them later takes no page faults. Best effort: a kernel
/// without `MADV_POPULATE_WRITE` (before Linux 5.14) or memory pressure leaves the pages
/// to be faulted in as they are written, as they would be anyway.
fn populate(buf: &Vec<u8>, len: usize) {
    #[cfg(target_os = "linux")]
    {
        let Some((start, span)) =
            whole_pages(buf.as_ptr() as usize, len.min(buf.capacity()), page_size())
        else {
            return;
        };
        // SAFETY: `start..start + span` lies within `buf`'s allocation (whole pages between
        // its start and its first `len` bytes' end), which stays mapped while `buf` lives;
        // MADV_POPULATE_WRITE only faults in those pages (zero-filled if never touched) and
        // changes no byte the program can observe: the spare capacity is uninitialised to
        // Rust, and the `Vec` is empty.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, span, libc::MADV_POPULATE_WRITE) };
        if rc != 0 {
            tracing::trace!(error = %std::io::Error::last_os_error(), "madvise(MADV_POPULATE_WRITE) refused");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (buf, len);
}

/// The system's page size (4 KiB where it cannot be read).
#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the running system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n)
        .ok()
        .filter(|&n| n.is_power_of_two())
        .unwrap_or(4096)
}

/// The whole pages of size `page` inside `addr..addr + len`, as (first page's address,
/// length), or `None` when the range holds no whole page.
fn whole_pages(addr: usize, len: usize, page: usize) -> Option<(usize, usize)> {
    let start = addr.checked_add(page - 1)? & !(page - 1);
    let end = addr.checked_add(len)? & !(page - 1);
    (end > start).then(|| (start, end - start))
}

/// Memory a buffer taken for `len` bytes holds: its pool class, or `len` when not pooled.
pub fn footprint(len: usize) -> usize {
    class_of(len).unwrap_or(len)
}

/// The capacity a pooled buffer for `len` bytes has (the next power of two), or `None` when
/// `len` is too small to pool.
fn class_of(len: usize) -> Option<usize> {
    (len >= LARGE)
        .then(|| len.checked_next_power_of_two())
        .flatten()
}

/// A buffer taken from a [`BufferPool`]; it goes back to the pool when it, or the last
/// [`Bytes`] made from it, is dropped.
#[derive(Debug)]
pub struct PooledBuf {
    data: Vec<u8>,
    pool: Option<Arc<BufferPool>>,
}

impl PooledBuf {
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Bytes of memory the buffer holds, written or not.
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }

    /// The bytes written, shared and immutable from now on.
    pub fn freeze(mut self) -> Bytes {
        if self.pool.is_none() {
            return Bytes::from(std::mem::take(&mut self.data));
        }
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give(std::mem::take(&mut self.data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn classes_are_powers_of_two_from_large() {
        assert_eq!(class_of(4096), None);
        assert_eq!(class_of(LARGE - 1), None);
        assert_eq!(class_of(LARGE), Some(LARGE));
        assert_eq!(class_of(LARGE + 1), Some(2 * LARGE));
        assert_eq!(class_of(8 * MIB), Some(8 * MIB));
        assert_eq!(class_of(usize::MAX), None);
    }

    #[test]
    fn a_freed_buffer_is_taken_again_and_holds_only_new_bytes() {
        let pool = BufferPool::new(64 * MIB);
        let mut a = pool.take(8 * MIB);
        a.extend_from_slice(&[7u8; 100]);
        let first = a.data.as_ptr();
        let bytes = a.freeze();
        let copy = bytes.slice(10..20);
        drop(bytes);
        // Still referenced by the slice.
        assert_eq!(pool.held(), 0);
        drop(copy);
        assert_eq!(pool.held(), 8 * MIB);

        let mut b = pool.take(8 * MIB - 5);
        assert_eq!(b.data.as_ptr(), first);
        assert!(b.is_empty());
        b.extend_from_slice(b"new");
        assert_eq!(&b.freeze()[..], b"new");
    }

    #[test]
    fn only_whole_pages_inside_the_range_are_populated() {
        const PAGE: usize = 4096;
        // Aligned: all of it.
        assert_eq!(
            whole_pages(8 * PAGE, 2 * PAGE, PAGE),
            Some((8 * PAGE, 2 * PAGE))
        );
        // An allocator's header before the data: from the next page, to the last whole one.
        assert_eq!(
            whole_pages(8 * PAGE + 16, 2 * PAGE, PAGE),
            Some((9 * PAGE, PAGE))
        );
        assert_eq!(whole_pages(8 * PAGE + 16, PAGE, PAGE), None);
        assert_eq!(whole_pages(8 * PAGE, 0, PAGE), None);
        assert_eq!(whole_pages(usize::MAX - 10, PAGE, PAGE), None);
    }

    #[test]
    fn a_fresh_buffer_is_usable_whatever_the_kernel_did_with_its_pages() {
        let pool = BufferPool::new(64 * MIB);
        for len in [MIB, 3 * MIB + 7, 8 * MIB] {
            let mut a = pool.take(len);
            assert!(a.is_empty());
            a.extend_from_slice(&vec![0xA5; len]);
            let bytes = a.freeze();
            assert_eq!(bytes.len(), len);
            assert!(bytes.iter().all(|&b| b == 0xA5));
        }
    }

    #[test]
    fn small_buffers_are_not_pooled() {
        let pool = BufferPool::new(64 * MIB);
        let mut a = pool.take(4096);
        a.extend_from_slice(b"small");
        assert_eq!(&a.freeze()[..], b"small");
        assert_eq!(pool.held(), 0);
    }

    #[test]
    fn the_pool_keeps_at_most_retain_bytes_dropping_the_oldest() {
        let pool = BufferPool::new(10 * MIB);
        let one = pool.take(MIB);
        let eight = pool.take(8 * MIB);
        let two = pool.take(2 * MIB);
        let two_ptr = two.data.as_ptr();
        drop(one);
        drop(eight);
        drop(two);
        // 1 + 8 + 2 MiB is over 10: the oldest (1 MiB) went.
        assert_eq!(pool.held(), 10 * MIB);
        let again = pool.take(2 * MIB);
        assert_eq!(again.data.as_ptr(), two_ptr);
        assert_eq!(pool.held(), 8 * MIB);
        drop(again);
        // A buffer larger than the whole pool is never kept.
        drop(pool.take(16 * MIB));
        assert!(pool.held() <= 10 * MIB);
    }

    #[test]
    fn a_buffer_that_grew_past_its_class_goes_back_by_its_new_capacity() {
        let pool = BufferPool::new(64 * MIB);
        let mut a = pool.take(MIB);
        a.extend_from_slice(&vec![1u8; MIB + 1]);
        let cap = a.data.capacity();
        drop(a);
        assert_eq!(
            pool.held(),
            if class_of(cap) == Some(cap) { cap } else { 0 }
        );
    }
}
