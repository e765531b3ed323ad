//! A head's cache of small whole chunks, in memory, bounded by `read_cache_size`.
//!
//! A read of a small file costs a request to a cluster server, a disk read there (chunks are
//! written with `O_DIRECT`, so they are rarely in its page cache) and a second network hop
//! back; the cache saves all three for chunks read or written recently. Large files pass it
//! by (`read_cache_max_chunk`), so one big download cannot flush it.
//!
//! Only verified bytes enter it: a chunk read whole whose checksum matched its manifest, or a
//! chunk the head itself uploaded once its replicas acknowledged it. Chunk ids are never
//! reused for other bytes (each upload draws a new file id), and an entry is served only for
//! a manifest naming the same length and checksum, so a hit returns exactly what a replica
//! would. Eviction is quick_cache's (S3-FIFO-like: scan resistant, no background thread).

use bytes::Bytes;
use prometheus::{IntCounter, IntGauge};

use super::manifest::ChunkRef;
use crate::chunk::Checksum;

/// Memory an entry costs beyond its buffer (key, bookkeeping), so that no entry weighs zero
/// (quick_cache never evicts those).
const ENTRY_OVERHEAD: u64 = 128;

/// Share of the cache kept for chunks read more than once; the rest holds new ones until they
/// are read again. Lower than quick_cache's default (97%): a chunk written and read back soon
/// after, the commonest pattern of an object store, must not be pushed out by the next few
/// uploads before its first read.
const HOT_SHARE: f64 = 0.5;

/// Largest number of shards (each has its own lock and a share of the capacity).
const MAX_SHARDS: u64 = 16;

/// Share of the head's memory the cache takes when `read_cache_size` is not set.
const AUTO_SHARE: u64 = 16;
/// The most the cache takes when `read_cache_size` is not set.
const AUTO_MAX: u64 = 2 << 30;
/// The cache's size when `read_cache_size` is not set and the memory cannot be read.
const AUTO_UNKNOWN: u64 = 256 << 20;

/// The cache's size when `read_cache_size` is not set, for a head that may use `memory`
/// bytes: a sixteenth of it, at most [`AUTO_MAX`].
pub fn auto_size(memory: Option<u64>) -> u64 {
    memory.map_or(AUTO_UNKNOWN, |m| (m / AUTO_SHARE).min(AUTO_MAX))
}

/// How a chunk would enter the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Too large (or the cache is off): not kept.
    No,
    /// Kept in the buffer it is in.
    Share,
    /// Kept in a copy of its own size: its buffer is much larger than its bytes (the short
    /// last chunk of an upload that did not announce its length sits in a whole chunk's
    /// buffer).
    Copy,
}

/// Whether a chunk of `len` bytes, held in a buffer of `held` bytes and named by a key of
/// `key_len` bytes, enters a cache whose shards hold `shard_capacity` bytes each and which
/// keeps chunks of at most `max_chunk`.
pub fn admit(len: u64, held: u64, key_len: u64, max_chunk: u64, shard_capacity: u64) -> Admit {
    if len == 0 || len > max_chunk {
        return Admit::No;
    }
    // A buffer up to twice the bytes is the pool's rounding to a power of two.
    let copy = held > len.saturating_mul(2);
    let weight = entry_weight(if copy { len } else { held }, key_len);
    // quick_cache refuses an entry over a fraction of its shard; better not to try.
    if weight > shard_capacity / 4 {
        return Admit::No;
    }
    if copy { Admit::Copy } else { Admit::Share }
}

/// What an entry weighs: the memory its bytes hold, its key, and the bookkeeping around them.
fn entry_weight(held: u64, key_len: u64) -> u64 {
    held.saturating_add(key_len).saturating_add(ENTRY_OVERHEAD)
}

/// Shards for a cache of `capacity` bytes keeping chunks up to `max_chunk`: as many as the
/// cores would contend for, but each large enough for a few dozen of the largest chunks.
pub fn shards_for(capacity: u64, max_chunk: u64) -> usize {
    let by_size = capacity / max_chunk.max(1).saturating_mul(32);
    let n = by_size.clamp(1, MAX_SHARDS);
    // A power of two (quick_cache rounds up otherwise), no more than `n`.
    (1u64 << (63 - n.leading_zeros())) as usize
}

#[derive(Clone)]
struct Entry {
    data: Bytes,
    checksum: Checksum,
    weight: u64,
}

#[derive(Clone)]
struct ByWeight;

impl quick_cache::Weighter<String, Entry> for ByWeight {
    fn weight(&self, _key: &String, e: &Entry) -> u64 {
        e.weight
    }
}

type Inner = quick_cache::sync::Cache<String, Entry, ByWeight>;

/// Cache hits, misses and the bytes held, as the head's metrics show them.
#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub bytes: IntGauge,
}

/// The cache; a disabled one (`read_cache_size = 0`) keeps nothing and costs nothing.
pub struct ChunkCache {
    inner: Option<Inner>,
    max_chunk: u64,
    shard_capacity: u64,
    metrics: CacheMetrics,
}

impl ChunkCache {
    /// A cache of at most `capacity` bytes for chunks of at most `max_chunk` bytes.
    pub fn new(capacity: u64, max_chunk: u64, metrics: CacheMetrics) -> Self {
        let shards = shards_for(capacity, max_chunk);
        tracing::info!(
            bytes = capacity,
            max_chunk,
            "read cache of small chunks{}",
            if capacity == 0 { " off" } else { "" }
        );
        let inner = (capacity > 0).then(|| {
            quick_cache::OptionsBuilder::new()
                .shards(shards)
                .hot_allocation(HOT_SHARE)
                .estimated_items_capacity(
                    usize::try_from(capacity / max_chunk.clamp(1, 1 << 20)).unwrap_or(1 << 16),
                )
                .weight_capacity(capacity)
                .build()
                .ok()
                .map(|o| Inner::with_options(o, ByWeight, Default::default(), Default::default()))
        });
        Self {
            inner: inner.flatten(),
            max_chunk,
            shard_capacity: capacity / shards as u64,
            metrics,
        }
    }

    /// The whole chunk when it is cached as the bytes `chunk` names (same length and
    /// checksum).
    pub fn get(&self, chunk: &ChunkRef) -> Option<Bytes> {
        let inner = self.inner.as_ref()?;
        if chunk.len > self.max_chunk {
            return None;
        }
        let hit = inner.get(&chunk.id).filter(|e| {
            e.data.len() as u64 == chunk.len
                && chunk.checksum.parse::<Checksum>().ok() == Some(e.checksum)
        });
        match hit {
            Some(e) => {
                self.metrics.hits.inc();
                Some(e.data)
            }
            None => {
                self.metrics.misses.inc();
                None
            }
        }
    }

    /// Keeps `data`, the verified bytes of the whole chunk `id` with `checksum`, held in a
    /// buffer of `held` bytes.
    pub fn keep(&self, id: &str, checksum: Checksum, data: &Bytes, held: usize) {
        let Some(inner) = &self.inner else { return };
        let len = data.len() as u64;
        let key_len = id.len() as u64;
        let admitted = admit(
            len,
            held as u64,
            key_len,
            self.max_chunk,
            self.shard_capacity,
        );
        let (data, held) = match admitted {
            Admit::No => return,
            Admit::Share => (data.clone(), held as u64),
            Admit::Copy => (Bytes::copy_from_slice(data), len),
        };
        let weight = entry_weight(held, key_len);
        inner.insert(
            id.to_string(),
            Entry {
                data,
                checksum,
                weight,
            },
        );
        self.metrics
            .bytes
            .set(i64::try_from(inner.weight()).unwrap_or(i64::MAX));
    }

    /// Bytes the cache holds now.
    pub fn held(&self) -> u64 {
        self.inner.as_ref().map_or(0, Inner::weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn metrics() -> CacheMetrics {
        CacheMetrics {
            hits: IntCounter::new("h", "h").unwrap(),
            misses: IntCounter::new("m", "m").unwrap(),
            bytes: IntGauge::new("b", "b").unwrap(),
        }
    }

    fn chunk(id: &str, data: &[u8]) -> ChunkRef {
        ChunkRef {
            id: id.into(),
            len: data.len() as u64,
            checksum: Checksum::of(data).to_string(),
            replicas: Vec::new(),
        }
    }

    #[test]
    fn small_chunks_are_kept_in_their_buffer_large_ones_not_at_all() {
        let shard = 64 * MIB;
        assert_eq!(admit(MIB, MIB, 40, 4 * MIB, shard), Admit::Share);
        // The pool rounds 1 MiB + 1 up to 2 MiB: still shared.
        assert_eq!(admit(MIB + 1, 2 * MIB, 40, 4 * MIB, shard), Admit::Share);
        assert_eq!(admit(4096, 4096, 40, 4 * MIB, shard), Admit::Share);
        assert_eq!(admit(8 * MIB, 8 * MIB, 40, 4 * MIB, shard), Admit::No);
        assert_eq!(admit(0, 0, 40, 4 * MIB, shard), Admit::No);
    }

    #[test]
    fn a_short_chunk_in_a_whole_chunk_buffer_is_copied() {
        assert_eq!(admit(MIB, 8 * MIB, 40, 4 * MIB, 64 * MIB), Admit::Copy);
        assert_eq!(admit(100, 8 * MIB, 40, 4 * MIB, 64 * MIB), Admit::Copy);
    }

    #[test]
    fn nothing_heavier_than_a_quarter_shard_is_tried() {
        assert_eq!(admit(4 * MIB, 4 * MIB, 40, 4 * MIB, 8 * MIB), Admit::No);
        assert_eq!(admit(MIB, MIB, 40, 4 * MIB, 8 * MIB), Admit::Share);
    }

    #[test]
    fn the_automatic_size_is_a_sixteenth_of_memory_up_to_two_gib() {
        assert_eq!(auto_size(Some(1 << 30)), 64 * MIB);
        assert_eq!(auto_size(Some(8 << 30)), 512 * MIB);
        assert_eq!(auto_size(Some(24 << 30)), 1536 * MIB);
        assert_eq!(auto_size(Some(1 << 40)), 2048 * MIB);
        assert_eq!(auto_size(None), 256 * MIB);
    }

    #[test]
    fn shards_are_powers_of_two_large_enough_for_big_chunks() {
        assert_eq!(shards_for(256 * MIB, 4 * MIB), 2);
        assert_eq!(shards_for(4096 * MIB, 4 * MIB), 16);
        assert_eq!(shards_for(16 * MIB, 4 * MIB), 1);
        assert_eq!(shards_for(0, 4 * MIB), 1);
        assert_eq!(shards_for(3 * 128 * MIB, 4 * MIB), 2);
        assert_eq!(shards_for(u64::MAX, 0), 16);
    }

    #[test]
    fn a_hit_needs_the_length_and_checksum_the_manifest_names() {
        let cache = ChunkCache::new(64 * MIB, 4 * MIB, metrics());
        let data = Bytes::from(vec![7u8; 5000]);
        let c = chunk("f-0", &data);
        assert!(cache.get(&c).is_none());
        cache.keep("f-0", Checksum::of(&data), &data, data.len());
        assert_eq!(cache.get(&c).as_deref(), Some(&data[..]));
        assert!(cache.held() >= 5000);

        let other = chunk("f-0", &[8u8; 5000]);
        assert!(cache.get(&other).is_none(), "another checksum");
        let mut shorter = c.clone();
        shorter.len = 4999;
        assert!(cache.get(&shorter).is_none(), "another length");
        let mut unparsable = c.clone();
        unparsable.checksum = "nonsense".into();
        assert!(cache.get(&unparsable).is_none(), "no checksum to compare");
        assert_eq!(cache.metrics.hits.get(), 1);
        assert_eq!(cache.metrics.misses.get(), 4);
    }

    #[test]
    fn the_cache_stays_within_its_size() {
        let cache = ChunkCache::new(8 * MIB, MIB, metrics());
        for i in 0..64 {
            let data = Bytes::from(vec![i as u8; MIB as usize / 2]);
            cache.keep(&format!("f-{i}"), Checksum::of(&data), &data, data.len());
        }
        assert!(cache.held() <= 8 * MIB, "{}", cache.held());
        assert!(cache.held() > 0);
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = ChunkCache::new(0, 4 * MIB, metrics());
        let data = Bytes::from_static(b"abc");
        cache.keep("f-0", Checksum::of(&data), &data, 3);
        assert!(cache.get(&chunk("f-0", b"abc")).is_none());
        assert_eq!(cache.held(), 0);
    }
}
