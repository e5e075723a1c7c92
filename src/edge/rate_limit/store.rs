//! The bounded, sharded LRU state store behind the rate limiter.
//!
//! governor's own keyed stores (DashMap, HashMap) grow with every new key; a flood of distinct
//! keys (random header values, a /64 of IPv6 addresses) would grow the process without bound.
//! This store holds at most `sessions` keys, like Mattermost's LRU `MemoryStoreSize`: a new key
//! beyond that evicts the least recently used one, which later comes back as a fresh, full bucket.
//!
//! There is no global lock: keys are spread over a power-of-two number of shards, each a
//! `parking_lot::Mutex<lru::LruCache>`, and the shard capacities add up to exactly `sessions`.
//! The price of sharding is that eviction is LRU *within a shard*: a new key evicts the least
//! recently used key of its own shard, so the store can start evicting a little before all
//! `sessions` slots are in use. Shards are kept at least [`MIN_KEYS_PER_SHARD`] keys large so this
//! stays a small effect.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Arc;

use governor::nanos::Nanos;
use governor::state::StateStore;
use lru::LruCache;
use parking_lot::Mutex;

/// Shards are not made smaller than this, so per-shard LRU stays close to a global LRU.
const MIN_KEYS_PER_SHARD: usize = 256;
/// Shards per CPU core: enough that two cores rarely want the same shard at once.
const SHARDS_PER_CORE: usize = 4;

/// One rate-limit bucket's identity: the client IP (all zeros when the IP is not part of the key)
/// and a keyed 64-bit digest of the IP and the lower-cased header values (see `KeyBuilder`).
/// `Copy` and 24 bytes: building one does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketKey {
    ip: [u8; 16],
    digest: u64,
}

impl BucketKey {
    /// A key from the IP octets (IPv4 in mapped form) and the digest.
    pub(in crate::edge) fn new(ip: [u8; 16], digest: u64) -> Self {
        Self { ip, digest }
    }

    /// The digest (also picks the key's Redis connection).
    pub(in crate::edge) fn digest(&self) -> u64 {
        self.digest
    }

    /// The client IP octets (all zeros when the IP is not part of the key).
    pub(in crate::edge) fn ip(&self) -> &[u8; 16] {
        &self.ip
    }

    /// `prefix` followed by the key's 24 bytes (IP octets, digest little-endian), written into
    /// `buf` (at least `prefix.len() + 24` long); returns the bytes written. Redis keys are
    /// binary-safe.
    pub(in crate::edge) fn write_redis_key<'a>(
        &self,
        prefix: &[u8],
        buf: &'a mut [u8],
    ) -> &'a [u8] {
        let n = prefix.len() + 24;
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()..prefix.len() + 16].copy_from_slice(&self.ip);
        buf[prefix.len() + 16..n].copy_from_slice(&self.digest.to_le_bytes());
        &buf[..n]
    }

    /// The shard index bits; independent of the bits hashbrown uses inside a shard (the low bits
    /// select a bucket, the top 7 bits are the control tag).
    fn shard_bits(&self) -> usize {
        (self.digest >> 32) as usize
    }
}

impl Hash for BucketKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already a keyed SipHash of everything that identifies the key.
        state.write_u64(self.digest);
    }
}

/// A `Hasher` that passes the precomputed digest through, so a key is hashed once per request.
/// Only `BucketKey` (which writes a single u64) is ever hashed with it; other input is folded in
/// so it is still a (weak) hash rather than a silent constant.
#[derive(Default)]
pub(super) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = LruCache<BucketKey, Nanos, BuildHasherDefault<DigestHasher>>;

/// governor `StateStore` holding at most `sessions` buckets (theoretical arrival times) in
/// power-of-two shards of LRU caches. Clones share the same shards (governor's `RateLimiter` owns
/// one handle; the limiter keeps another to count keys).
#[derive(Clone)]
pub(in crate::edge) struct ShardedLruStore {
    shards: Arc<[Mutex<Shard>]>,
    mask: usize,
}

impl ShardedLruStore {
    /// A store for at most `sessions` keys, sharded for this machine's core count.
    pub(in crate::edge) fn new(sessions: NonZeroUsize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::with_shards(sessions, shard_count(sessions.get(), cores))
    }

    /// A store with `shards` shards (a power of two, at most `sessions`).
    fn with_shards(sessions: NonZeroUsize, shards: usize) -> Self {
        debug_assert!(shards.is_power_of_two() && shards <= sessions.get());
        let shards: Arc<[Mutex<Shard>]> = shard_capacities(sessions.get(), shards)
            .map(|cap| {
                // cap >= 1 because shards <= sessions.
                let cap = NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN);
                Mutex::new(LruCache::with_hasher(cap, BuildHasherDefault::default()))
            })
            .collect();
        let mask = shards.len() - 1;
        Self { shards, mask }
    }

    /// Number of keys held right now (takes each shard's lock in turn).
    pub(in crate::edge) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Number of shards.
    pub(super) fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Sum of the shard capacities (always equal to `sessions`).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().cap().get()).sum()
    }

    fn shard(&self, key: &BucketKey) -> &Mutex<Shard> {
        &self.shards[key.shard_bits() & self.mask]
    }
}

impl StateStore for ShardedLruStore {
    type Key = BucketKey;

    fn measure_and_replace<T, F, E>(&self, key: &BucketKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The GCRA step `f` is a few arithmetic operations: running it under the shard lock is
        // cheaper than a compare-and-swap retry loop and makes read-modify-write atomic.
        let mut shard = self.shard(key).lock();
        if let Some(tat) = shard.get_mut(key) {
            // `get_mut` also marks the key most recently used, refused or not (as Mattermost's
            // LRU store does on every lookup).
            let (outcome, next) = f(Some(*tat))?;
            *tat = next;
            return Ok(outcome);
        }
        let (outcome, next) = f(None)?;
        // At capacity this evicts the shard's least recently used key and reuses its node, so a
        // full store does not allocate.
        shard.push(*key, next);
        Ok(outcome)
    }
}

/// How many shards for `sessions` keys on `cores` cores: a power of two near
/// `SHARDS_PER_CORE * cores`, reduced until each shard holds at least `MIN_KEYS_PER_SHARD` keys
/// (one shard for small stores). Never more than `sessions`.
fn shard_count(sessions: usize, cores: usize) -> usize {
    let mut shards = cores
        .max(1)
        .saturating_mul(SHARDS_PER_CORE)
        .checked_next_power_of_two()
        .unwrap_or(1 << (usize::BITS - 1));
    while shards > 1 && sessions / shards < MIN_KEYS_PER_SHARD {
        shards /= 2;
    }
    shards
}

/// Capacities of `shards` shards that add up to exactly `sessions`, differing by at most one.
fn shard_capacities(sessions: usize, shards: usize) -> impl Iterator<Item = usize> {
    let base = sessions / shards;
    let extra = sessions % shards;
    (0..shards).map(move |i| base + usize::from(i < extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn shard_count_is_a_power_of_two_scaled_to_cores_and_sessions() {
        assert_eq!(shard_count(10_000, 2), 8);
        assert_eq!(shard_count(10_000, 3), 16);
        assert_eq!(shard_count(10_000, 64), 32); // 10_000 / 32 >= 256 > 10_000 / 64
        assert_eq!(shard_count(1_000_000, 64), 256);
        assert_eq!(shard_count(511, 8), 1);
        assert_eq!(shard_count(512, 8), 2);
        assert_eq!(shard_count(1, 8), 1);
        assert_eq!(shard_count(10_000, 0), 4);
        for sessions in [1, 2, 3, 255, 256, 1000, 10_000, 12_345, 1 << 20] {
            for cores in [1, 2, 3, 4, 7, 16, 128] {
                let n = shard_count(sessions, cores);
                assert!(n.is_power_of_two() && n <= sessions, "{sessions} {cores}");
            }
        }
    }

    #[test]
    fn shard_capacities_add_up_exactly() {
        for (sessions, shards) in [(10_000, 8), (12_345, 16), (1, 1), (513, 2), (1 << 20, 256)] {
            let caps: Vec<usize> = shard_capacities(sessions, shards).collect();
            assert_eq!(caps.len(), shards);
            assert_eq!(caps.iter().sum::<usize>(), sessions);
            let (min, max) = (caps.iter().min().unwrap(), caps.iter().max().unwrap());
            assert!(max - min <= 1);
            assert_eq!(
                ShardedLruStore::with_shards(nz(sessions), shards).capacity(),
                sessions
            );
        }
        assert_eq!(ShardedLruStore::new(nz(10_000)).capacity(), 10_000);
    }

    /// Stores `tat` for `key` unconditionally.
    fn set(store: &ShardedLruStore, key: BucketKey, tat: u64) {
        let r: Result<(), ()> = store.measure_and_replace(&key, |_| Ok(((), Nanos::new(tat))));
        assert!(r.is_ok());
    }

    fn get(store: &ShardedLruStore, key: BucketKey) -> Option<u64> {
        let seen = std::cell::Cell::new(None);
        let _: Result<(), ()> = store.measure_and_replace(&key, |old| {
            seen.set(old.map(u64::from));
            Err(())
        });
        seen.get()
    }

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let store = ShardedLruStore::with_shards(nz(3), 1);
        let key = |n: u8| BucketKey::new([n; 16], u64::from(n));
        set(&store, key(1), 10);
        set(&store, key(2), 20);
        set(&store, key(3), 30);
        // A refused check (Err) still counts as a use.
        assert_eq!(get(&store, key(1)), Some(10));
        set(&store, key(4), 40);
        assert_eq!(store.len(), 3);
        assert_eq!(get(&store, key(2)), None, "2 was least recently used");
        assert_eq!(get(&store, key(1)), Some(10));
        assert_eq!(get(&store, key(4)), Some(40));
        // A refused first check does not insert.
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn keys_equal_only_with_same_ip_and_digest() {
        let store = ShardedLruStore::with_shards(nz(8), 1);
        set(&store, BucketKey::new([1; 16], 7), 1);
        assert_eq!(get(&store, BucketKey::new([2; 16], 7)), None);
        assert_eq!(get(&store, BucketKey::new([1; 16], 8)), None);
        assert_eq!(get(&store, BucketKey::new([1; 16], 7)), Some(1));
    }
}
