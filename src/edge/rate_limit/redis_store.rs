//! The rate limit's buckets in a Redis shared by several edges, and the store the edge uses:
//! local or shared.

use std::fmt;
use std::future::Future;

use super::{BucketKey, BucketStore, Cells, Decision, LocalStore};
use crate::config::RateLimit;
use crate::edge::shared::{SharedBuckets, RATE_PREFIX};

/// Buckets in Redis ([`SharedBuckets`]): the GCRA runs there, the `X-RateLimit-*` arithmetic here
/// ([`Cells::decision`], the same as the local store's). While Redis fails, the same bounded
/// [`LocalStore`] as without Redis decides.
pub struct RedisStore {
    shared: SharedBuckets,
    local: LocalStore,
    cells: Cells,
}

impl RedisStore {
    /// Buckets of `cfg` in `shared`, falling back to a local store of `cfg`.
    pub fn new(cfg: &RateLimit, shared: SharedBuckets) -> Self {
        Self {
            shared,
            local: LocalStore::new(cfg),
            cells: Cells::new(cfg),
        }
    }

    /// Takes one cell from `key`'s bucket in Redis, or locally when Redis fails.
    pub async fn take_shared(&self, key: &BucketKey) -> Decision {
        let mut buf = [0u8; RATE_PREFIX.len() + 24];
        let redis_key = key.write_redis_key(RATE_PREFIX, &mut buf);
        let (t, tau) = (self.cells.interval_ns, self.cells.tolerance_ns);
        match self.shared.take(redis_key, key.digest(), t, tau).await {
            Some(step) => self.cells.decision(step),
            None => self.local.take_now(key),
        }
    }

    /// The Redis connections.
    pub fn shared(&self) -> &SharedBuckets {
        &self.shared
    }
}

impl BucketStore for RedisStore {
    fn take(&self, key: &BucketKey) -> impl Future<Output = Decision> + Send {
        let key = *key;
        async move { self.take_shared(&key).await }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("shared", &self.shared)
            .field("local", &self.local)
            .finish()
    }
}

/// The edge's rate-limit store: this process's, or Redis's with this process's as fallback.
#[derive(Debug)]
pub enum Buckets {
    /// Buckets in this process only.
    Local(LocalStore),
    /// Buckets shared through Redis.
    Shared(RedisStore),
}

impl BucketStore for Buckets {
    fn take(&self, key: &BucketKey) -> impl Future<Output = Decision> + Send {
        let key = *key;
        async move {
            match self {
                Buckets::Local(local) => local.take_now(&key),
                // Boxed: the Redis round trip's future is ~1.9 KB, and every request's
                // future (moved several times per request) would otherwise carry it.
                Buckets::Shared(shared) => Box::pin(shared.take_shared(&key)).await,
            }
        }
    }
}
