//! Rate limiting with Mattermost's semantics.
//!
//! Mattermost limits with the GCRA of the Go `throttled` library; the local store uses
//! `governor`'s GCRA, which is the same algorithm: rate `per_sec`, a fresh bucket lets
//! `max_burst + 1` requests through at once, every request costs one cell. The response headers
//! are computed the way `throttled` computes them (see [`LocalStore::take_now`]).
//!
//! A request's key ([`key`]) is looked up in a [`BucketStore`]: the bounded, sharded LRU store in
//! this process ([`store`]), or the Redis that several edges share ([`redis_store`]), which
//! falls back to the local store while Redis fails.

mod key;
mod redis_store;
mod store;

pub(in crate::edge) use key::client_octets;
pub use redis_store::{Buckets, RedisStore};
pub(in crate::edge) use store::ShardedLruStore;

#[cfg(test)]
mod tests;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, QuantaClock};
use governor::middleware::StateInformationMiddleware;
use governor::Quota;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::shared::{SharedBuckets, Step};
use crate::config::RateLimit;
use key::KeyBuilder;
pub use store::BucketKey;

/// `X-RateLimit-Limit`: requests a full bucket lets through (`max_burst + 1`).
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: requests that could still pass right now.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: whole seconds (rounded up) until the bucket is full again.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// The `X-RateLimit-*` values for one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `X-RateLimit-Limit`: `max_burst + 1`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: seconds until the bucket is full again, rounded up.
    pub reset_secs: u64,
}

impl RateHeaders {
    /// Writes X-RateLimit-Limit/Remaining/Reset (and nothing else), replacing any present.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(self.limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(self.remaining));
        headers.insert(X_RATELIMIT_RESET, HeaderValue::from(self.reset_secs));
    }
}

/// The outcome of a rate-limit check for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward the request; add the headers to its response.
    Allowed(RateHeaders),
    /// Answer 429 `limit exceeded` with these headers and `Retry-After: retry_after_secs`.
    Refused {
        /// The `X-RateLimit-*` values (remaining is 0).
        headers: RateHeaders,
        /// Seconds until a request with this key would be allowed, rounded up, at least 1.
        retry_after_secs: u64,
    },
}

impl Decision {
    /// Whether the request may go upstream.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }

    /// The `X-RateLimit-*` values, whatever the outcome.
    pub fn headers(&self) -> &RateHeaders {
        match self {
            Decision::Allowed(headers) | Decision::Refused { headers, .. } => headers,
        }
    }
}

/// Where the buckets live. `take` may wait (a store shared over the network), so it is async;
/// the local store answers at once.
pub trait BucketStore: Send + Sync + 'static {
    /// Takes one cell from `key`'s bucket and says whether the request may pass.
    fn take(&self, key: &BucketKey) -> impl Future<Output = Decision> + Send;
}

type Gcra<C> = governor::RateLimiter<BucketKey, ShardedLruStore, C, StateInformationMiddleware>;

/// Buckets in this process: governor's GCRA over a bounded, sharded LRU store (at most
/// `sessions` keys). `C` is the time source (tests use a fake clock).
pub struct LocalStore<C: Clock = QuantaClock> {
    gcra: Gcra<C>,
    store: ShardedLruStore,
    cells: Cells,
}

/// A bucket's size and refill, and the `X-RateLimit-*` arithmetic of `throttled` over a GCRA
/// [`Step`], wherever the GCRA ran (here or in Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells {
    /// `max_burst + 1`.
    pub limit: u32,
    /// Emission interval T: one cell comes back every `interval_ns`.
    pub interval_ns: u64,
    /// Burst tolerance tau: `interval_ns * max_burst`.
    pub tolerance_ns: u64,
}

impl Cells {
    /// The buckets of `cfg`, with governor's interval (never below 1ns, `per_sec` above 10^9).
    pub fn new(cfg: &RateLimit) -> Self {
        let limit = NonZeroU32::MIN.saturating_add(cfg.max_burst);
        let quota = Quota::per_second(cfg.per_sec).allow_burst(limit);
        let interval_ns = u64::try_from(quota.replenish_interval().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Self {
            limit: limit.get(),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(cfg.max_burst.into()),
        }
    }

    /// The answer to a request the GCRA stepped.
    ///
    /// Header values follow `throttled`: with T the emission interval and `ttl` the time until
    /// the bucket is full again, Remaining is `floor((limit*T - ttl) / T)` (0 when refused), Reset
    /// is `ceil(ttl)` in seconds, Retry-After is the wait until the next allowed request, rounded
    /// up.
    pub fn decision(&self, step: Step) -> Decision {
        match step {
            Step::Taken { remaining } => {
                // The GCRA gives `remaining` = floor((limit*T - ttl) / T), not `ttl`, so
                // (limit - remaining) * T is `ttl` rounded up to a whole interval. Rounded up to
                // seconds, that equals ceil(ttl) whenever T divides one second (per_sec divides
                // 10^9: 1, 2, 4, 5, 8, 10, 16, 20, 25, ...); otherwise it can exceed it by 1s only
                // when ttl is within 1ns of a whole second.
                let missing = u64::from(self.limit.saturating_sub(remaining));
                Decision::Allowed(RateHeaders {
                    limit: self.limit,
                    remaining,
                    reset_secs: ceil_secs(missing.saturating_mul(self.interval_ns)),
                })
            }
            Step::Refused { wait_ns } => Decision::Refused {
                headers: RateHeaders {
                    limit: self.limit,
                    remaining: 0,
                    // The bucket is full `tolerance` after the next cell would conform.
                    reset_secs: ceil_secs(wait_ns.saturating_add(self.tolerance_ns)),
                },
                retry_after_secs: retry_after_secs(wait_ns),
            },
        }
    }
}

impl LocalStore {
    /// A store on the process's monotonic clock.
    pub fn new(cfg: &RateLimit) -> Self {
        Self::with_clock(cfg, QuantaClock::default())
    }
}

impl<C: Clock> LocalStore<C> {
    /// A store on the given clock (for tests: `governor::clock::FakeRelativeClock`).
    pub fn with_clock(cfg: &RateLimit, clock: C) -> Self {
        let limit = NonZeroU32::MIN.saturating_add(cfg.max_burst);
        let quota = Quota::per_second(cfg.per_sec).allow_burst(limit);
        let store = ShardedLruStore::new(cfg.sessions);
        Self {
            gcra: governor::RateLimiter::new(quota, store.clone(), clock),
            store,
            cells: Cells::new(cfg),
        }
    }

    /// Takes one cell from `key`'s bucket; the headers are [`Cells::decision`]'s.
    pub fn take_now(&self, key: &BucketKey) -> Decision {
        match self.gcra.check_key(key) {
            Ok(snapshot) => self.cells.decision(Step::Taken {
                remaining: snapshot.remaining_burst_capacity(),
            }),
            Err(not_until) => {
                // The decision was taken a few ns before this clock reading; only visible if the
                // exact wait is within those ns above a whole second.
                let wait = not_until.wait_time_from(self.gcra.clock().now());
                self.cells.decision(Step::Refused {
                    wait_ns: u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX),
                })
            }
        }
    }

    /// The bucket arithmetic (limit, T, tau) of this store.
    pub fn cells(&self) -> Cells {
        self.cells
    }

    /// Number of keys in the store now (never more than `sessions`).
    pub fn held_keys(&self) -> usize {
        self.store.len()
    }
}

impl<C: Clock + Send + Sync + 'static> BucketStore for LocalStore<C>
where
    C::Instant: Send + Sync,
{
    fn take(&self, key: &BucketKey) -> impl Future<Output = Decision> + Send {
        std::future::ready(self.take_now(key))
    }
}

impl<C: Clock> fmt::Debug for LocalStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("limit", &self.cells.limit)
            .field("interval_ns", &self.cells.interval_ns)
            .field("shards", &self.store.shards())
            .finish_non_exhaustive()
    }
}

/// The rate limiter: builds each request's key and asks the store. Built once from the
/// `[rate_limit]` settings, shared by all connections.
pub struct RateLimiter<S = LocalStore> {
    keys: KeyBuilder,
    store: S,
}

impl RateLimiter {
    /// A limiter over buckets in this process.
    pub fn new(cfg: &RateLimit) -> Self {
        Self::with_store(cfg, LocalStore::new(cfg))
    }
}

impl RateLimiter<Buckets> {
    /// A limiter over buckets in `shared` (falling back to this process's while it fails), or
    /// in this process only.
    pub fn shared_or_local(cfg: &RateLimit, shared: Option<SharedBuckets>) -> Self {
        match shared {
            Some(shared) => Self {
                // Every edge must make the same key of the same request.
                keys: KeyBuilder::shared(cfg.by_ip, cfg.ipv6_prefix, &cfg.headers),
                store: Buckets::Shared(RedisStore::new(cfg, shared)),
            },
            None => Self::with_store(cfg, Buckets::Local(LocalStore::new(cfg))),
        }
    }
}

impl<S> RateLimiter<S> {
    /// A limiter over the given store (keys digested under a secret per-process seed).
    pub fn with_store(cfg: &RateLimit, store: S) -> Self {
        Self {
            keys: KeyBuilder::new(cfg.by_ip, cfg.ipv6_prefix, &cfg.headers),
            store,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The bucket key of a request from `client_ip` (from
    /// [`ClientIp::resolve`](super::client_ip::ClientIp::resolve)) with `headers`.
    pub fn key(&self, client_ip: IpAddr, headers: &HeaderMap) -> BucketKey {
        self.keys.key(client_ip, headers)
    }
}

impl<S: BucketStore> RateLimiter<S> {
    /// Takes one cell from this request's bucket and says whether it may pass.
    pub async fn check(&self, client_ip: IpAddr, headers: &HeaderMap) -> Decision {
        let key = self.keys.key(client_ip, headers);
        self.store.take(&key).await
    }
}

impl<C: Clock> RateLimiter<LocalStore<C>> {
    /// [`RateLimiter::check`] on the local store, without a future.
    pub fn check_now(&self, client_ip: IpAddr, headers: &HeaderMap) -> Decision {
        self.store.take_now(&self.keys.key(client_ip, headers))
    }

    /// Number of keys held now.
    pub fn held_keys(&self) -> usize {
        self.store.held_keys()
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimiter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("by_ip", &self.keys.by_ip)
            .field("ipv6_prefix", &self.keys.ipv6_prefix)
            .field("headers", &self.keys.headers)
            .field("store", &self.store)
            .finish()
    }
}

/// `Retry-After` for a wait of `wait_ns`: whole seconds, rounded up, at least 1 (both limits).
pub(in crate::edge) fn retry_after_secs(wait_ns: u64) -> u64 {
    ceil_secs(wait_ns).max(1)
}

/// Whole seconds, rounded up.
fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}
