//! Rate limiting with Mattermost's semantics.
//!
//! Mattermost limits with the GCRA of the Go `throttled` library; this module uses `governor`'s
//! GCRA, which is the same algorithm: rate `per_sec`, a fresh bucket lets `max_burst + 1` requests
//! through at once, every request costs one cell. The response headers are computed the way
//! `throttled` computes them (see [`RateLimiter::check`]). Buckets live in a bounded, sharded LRU
//! store (`store`), so memory stays bounded whatever the traffic.

mod store;

use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};

use governor::clock::{Clock, QuantaClock};
use governor::middleware::StateInformationMiddleware;
use governor::Quota;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use store::{BucketKey, ShardedLruStore};

/// `X-RateLimit-Limit`: requests a full bucket lets through (`max_burst + 1`).
pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: requests that could still pass right now.
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: whole seconds (rounded up) until the bucket is full again.
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Plain-text body of a refused (429) response, as Mattermost sends it.
pub const REFUSED_BODY: &str = "limit exceeded";

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Rate-limit settings, already validated (see the `MATTERMOST_RATE_LIMIT_*` variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Sustained requests per second per key (`MATTERMOST_RATE_LIMIT_QPS`).
    pub per_sec: NonZeroU32,
    /// Mattermost's MaxBurst: a fresh bucket passes `max_burst + 1` requests at once
    /// (`MATTERMOST_RATE_LIMIT_BURST`).
    pub max_burst: u32,
    /// Most keys held at once; beyond it the least recently used key is forgotten
    /// (`MATTERMOST_RATE_LIMIT_SESSIONS`).
    pub sessions: NonZeroUsize,
    /// Whether the client IP is part of the key (`MATTERMOST_RATE_LIMIT_BY_IP`).
    pub by_ip: bool,
    /// Headers whose lower-cased values are part of the key (`MATTERMOST_RATE_LIMIT_HEADERS`).
    pub headers: Vec<HeaderName>,
}

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
    /// Does not allocate for values up to 9999.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(X_RATELIMIT_LIMIT, numeric_header_value(self.limit.into()));
        headers.insert(
            X_RATELIMIT_REMAINING,
            numeric_header_value(self.remaining.into()),
        );
        headers.insert(X_RATELIMIT_RESET, numeric_header_value(self.reset_secs));
    }
}

/// The outcome of [`RateLimiter::check`] for one request.
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

type Gcra<C> = governor::RateLimiter<BucketKey, ShardedLruStore, C, StateInformationMiddleware>;

/// The rate limiter: built once from [`RateLimitConfig`], shared by all connections
/// (`Send + Sync`), called once per request. `C` is the time source (tests use a fake clock).
pub struct RateLimiter<C: Clock = QuantaClock> {
    gcra: Gcra<C>,
    store: ShardedLruStore,
    keys: KeyBuilder,
    /// `max_burst + 1`.
    limit: u32,
    /// Emission interval T: one cell comes back every `interval_ns`.
    interval_ns: u64,
    /// Burst tolerance: `interval_ns * max_burst`.
    tolerance_ns: u64,
}

impl RateLimiter {
    /// A limiter on the process's monotonic clock.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self::with_clock(cfg, QuantaClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter on the given clock (for tests: `governor::clock::FakeRelativeClock`).
    pub fn with_clock(cfg: &RateLimitConfig, clock: C) -> Self {
        let limit = NonZeroU32::MIN.saturating_add(cfg.max_burst);
        let quota = Quota::per_second(cfg.per_sec).allow_burst(limit);
        // governor never uses an interval below 1ns (per_sec above 10^9).
        let interval_ns = u64::try_from(quota.replenish_interval().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let store = ShardedLruStore::new(cfg.sessions);
        Self {
            gcra: governor::RateLimiter::new(quota, store.clone(), clock),
            store,
            keys: KeyBuilder::new(cfg.by_ip, &cfg.headers),
            limit: limit.get(),
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(cfg.max_burst.into()),
        }
    }

    /// Takes one cell from the bucket of this request's key (`client_ip` from
    /// [`ClientIp::resolve`](super::client_ip::ClientIp::resolve)) and says whether it may pass.
    ///
    /// Header values follow `throttled`: with T the emission interval and `ttl` the time until the
    /// bucket is full again, Remaining is `floor((limit*T - ttl) / T)` (0 when refused), Reset is
    /// `ceil(ttl)` in seconds, Retry-After is the wait until the next allowed request, rounded up.
    #[must_use]
    pub fn check(&self, client_ip: IpAddr, headers: &HeaderMap) -> Decision {
        let key = self.keys.key(client_ip, headers);
        match self.gcra.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // governor's snapshot does not expose `ttl`, only `remaining` =
                // floor((limit*T - ttl) / T), so (limit - remaining) * T is `ttl` rounded up to
                // a whole interval. Rounded up to seconds, that equals ceil(ttl) whenever T
                // divides one second (per_sec divides 10^9: 1, 2, 4, 5, 8, 10, 16, 20, 25, ...);
                // otherwise it can exceed it by 1s only when ttl is within 1ns of a whole second.
                let missing = u64::from(self.limit.saturating_sub(remaining));
                Decision::Allowed(RateHeaders {
                    limit: self.limit,
                    remaining,
                    reset_secs: ceil_secs(missing.saturating_mul(self.interval_ns)),
                })
            }
            Err(not_until) => {
                // The decision was taken a few ns before this clock reading; only visible if the
                // exact wait is within those ns above a whole second.
                let wait = not_until.wait_time_from(self.gcra.clock().now());
                let wait_ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
                Decision::Refused {
                    headers: RateHeaders {
                        limit: self.limit,
                        remaining: 0,
                        // The bucket is full `tolerance` after the next cell would conform.
                        reset_secs: ceil_secs(wait_ns.saturating_add(self.tolerance_ns)),
                    },
                    retry_after_secs: ceil_secs(wait_ns).max(1),
                }
            }
        }
    }

    /// Number of keys in the store now (never more than `sessions`).
    pub fn held_keys(&self) -> usize {
        self.store.len()
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limit", &self.limit)
            .field("interval_ns", &self.interval_ns)
            .field("by_ip", &self.keys.by_ip)
            .field("headers", &self.keys.headers)
            .field("shards", &self.store.shards())
            .finish_non_exhaustive()
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS_PER_SEC)
}

/// Builds bucket keys without allocating.
///
/// A key is the client IP (exact, when `by_ip`) plus a 64-bit SipHash-1-3 digest, under a random
/// per-process key (`RandomState`), of the IP and the lower-cased values of the configured headers.
/// Hashing instead of storing the values keeps keys fixed-size (no per-request allocation, 24
/// bytes per held key whatever the header sizes). The trade-off is that two different header
/// tuples on the same IP could share a bucket if their digests collide: with 64 bits and at most
/// `sessions` live keys the chance is about sessions^2 / 2^65 (10^-11 for 10,000 keys), and since
/// the hash key is secret and SipHash is a keyed PRF, a client cannot search for a colliding value
/// offline. A collision would only make two clients share one bucket (stricter limiting), never
/// let anyone past the limit. Different IPs never share a bucket: the IP is compared exactly.
struct KeyBuilder {
    by_ip: bool,
    headers: Box<[HeaderName]>,
    seed: RandomState,
    /// With neither IP nor headers, every request shares this one key.
    shared: Option<BucketKey>,
}

impl KeyBuilder {
    fn new(by_ip: bool, headers: &[HeaderName]) -> Self {
        let mut builder = Self {
            by_ip,
            headers: headers.into(),
            seed: RandomState::new(),
            shared: None,
        };
        if !by_ip && headers.is_empty() {
            builder.shared = Some(builder.key(IpAddr::from([0, 0, 0, 0]), &HeaderMap::new()));
        }
        builder
    }

    fn key(&self, ip: IpAddr, headers: &HeaderMap) -> BucketKey {
        if let Some(shared) = self.shared {
            return shared;
        }
        let ip = if self.by_ip { ip_octets(ip) } else { [0; 16] };
        let mut hasher = self.seed.build_hasher();
        hasher.write(&ip);
        let mut digest = LowercaseDigest::new(hasher);
        for name in self.headers.iter() {
            // Like Go's `Header.Get`: the first value; a missing header is an empty value.
            let value = headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
            let len = digest.push_lowercase(value);
            // Length after each value keeps ("ab", "c") and ("a", "bc") apart.
            digest.push_bytes(&(len as u64).to_le_bytes());
        }
        BucketKey::new(ip, digest.finish())
    }
}

/// The 16 octets of an address, IPv4 (and IPv4-mapped IPv6) in mapped form.
fn ip_octets(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Feeds bytes to a hasher through a small stack buffer, so equal byte streams hash equally
/// however they were produced, without allocating.
struct LowercaseDigest<H> {
    hasher: H,
    buf: [u8; 64],
    len: usize,
}

impl<H: Hasher> LowercaseDigest<H> {
    fn new(hasher: H) -> Self {
        Self {
            hasher,
            buf: [0; 64],
            len: 0,
        }
    }

    /// Pushes `bytes`, each passed through `map`, a buffer-full at a time.
    fn push_mapped(&mut self, mut bytes: &[u8], map: impl Fn(u8) -> u8) {
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.hasher.write(&self.buf);
                self.len = 0;
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            let (now, rest) = bytes.split_at(n);
            for (dst, &src) in self.buf[self.len..self.len + n].iter_mut().zip(now) {
                *dst = map(src);
            }
            self.len += n;
            bytes = rest;
        }
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        self.push_mapped(bytes, |b| b);
    }

    /// Pushes `value` lower-cased as Go's `strings.ToLower` would (Unicode for UTF-8 text, ASCII
    /// otherwise); returns the number of bytes pushed.
    fn push_lowercase(&mut self, value: &[u8]) -> usize {
        if !value.is_ascii() {
            if let Ok(text) = std::str::from_utf8(value) {
                let mut pushed = 0;
                let mut utf8 = [0; 4];
                for c in text.chars().flat_map(char::to_lowercase) {
                    let encoded = c.encode_utf8(&mut utf8);
                    self.push_bytes(encoded.as_bytes());
                    pushed += encoded.len();
                }
                return pushed;
            }
        }
        self.push_mapped(value, |b| b.to_ascii_lowercase());
        value.len()
    }

    fn finish(mut self) -> u64 {
        self.hasher.write(&self.buf[..self.len]);
        self.hasher.finish()
    }
}

/// Largest number served from the static table.
const TABLE_MAX: usize = 9999;
/// Decimal digits of 0..=9999 written one after another ("0123...9101112...").
static DIGITS: [u8; digits_offset(TABLE_MAX + 1)] = table_digits();

/// Decimal width of `n` (n <= 9999).
const fn digits_width(n: usize) -> usize {
    if n < 10 {
        1
    } else if n < 100 {
        2
    } else if n < 1000 {
        3
    } else {
        4
    }
}

/// Where `n` (n <= 10000) starts in [`DIGITS`].
const fn digits_offset(n: usize) -> usize {
    if n < 10 {
        n
    } else if n < 100 {
        10 + (n - 10) * 2
    } else if n < 1000 {
        190 + (n - 100) * 3
    } else {
        2890 + (n - 1000) * 4
    }
}

const fn table_digits() -> [u8; digits_offset(TABLE_MAX + 1)] {
    let mut out = [0; digits_offset(TABLE_MAX + 1)];
    let mut n = 0;
    while n <= TABLE_MAX {
        let start = digits_offset(n);
        let mut i = digits_width(n);
        let mut rest = n;
        while i > 0 {
            i -= 1;
            out[start + i] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        n += 1;
    }
    out
}

/// A header value holding the decimal `n` (for `Retry-After` too). Values up to 9999 come from a
/// static table and do not allocate; `HeaderValue::from(u64)` allocates every time.
pub fn numeric_header_value(n: u64) -> HeaderValue {
    if let Ok(small) = usize::try_from(n) {
        if small <= TABLE_MAX {
            let start = digits_offset(small);
            let digits = &DIGITS[start..start + digits_width(small)];
            if let Ok(text) = std::str::from_utf8(digits) {
                return HeaderValue::from_static(text);
            }
        }
    }
    HeaderValue::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    fn config(per_sec: u32, max_burst: u32, sessions: usize) -> RateLimitConfig {
        RateLimitConfig {
            per_sec: NonZeroU32::new(per_sec).unwrap(),
            max_burst,
            sessions: NonZeroUsize::new(sessions).unwrap(),
            by_ip: true,
            headers: Vec::new(),
        }
    }

    fn fake(cfg: &RateLimitConfig) -> (RateLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (RateLimiter::with_clock(cfg, clock.clone()), clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn allowed(limit: u32, remaining: u32, reset_secs: u64) -> Decision {
        Decision::Allowed(RateHeaders {
            limit,
            remaining,
            reset_secs,
        })
    }

    fn refused(limit: u32, reset_secs: u64, retry_after_secs: u64) -> Decision {
        Decision::Refused {
            headers: RateHeaders {
                limit,
                remaining: 0,
                reset_secs,
            },
            retry_after_secs,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
        }
        map
    }

    fn names(list: &[&'static str]) -> Vec<HeaderName> {
        list.iter().copied().map(HeaderName::from_static).collect()
    }

    // ---- key building ----

    #[test]
    fn key_is_ip_plus_lowercased_header_values() {
        let keys = KeyBuilder::new(true, &names(&["x-user", "x-team"]));
        let a = ip("192.0.2.1");
        let base = keys.key(a, &headers(&[("x-user", "Alice"), ("x-team", "Blue")]));
        assert_eq!(
            base,
            keys.key(a, &headers(&[("x-user", "ALICE"), ("x-team", "blue")]))
        );
        // Other headers do not matter; only the first value of a listed header does.
        assert_eq!(
            base,
            keys.key(
                a,
                &headers(&[
                    ("x-team", "blue"),
                    ("x-other", "1"),
                    ("x-user", "alice"),
                    ("x-user", "mallory")
                ])
            )
        );
        assert_ne!(
            base,
            keys.key(a, &headers(&[("x-user", "bob"), ("x-team", "blue")]))
        );
        assert_ne!(
            base,
            keys.key(
                ip("192.0.2.2"),
                &headers(&[("x-user", "alice"), ("x-team", "blue")])
            )
        );
        // Values are delimited: ("ab", "c") is not ("a", "bc"); order of the setting matters.
        assert_ne!(
            keys.key(a, &headers(&[("x-user", "ab"), ("x-team", "c")])),
            keys.key(a, &headers(&[("x-user", "a"), ("x-team", "bc")]))
        );
        assert_ne!(
            keys.key(a, &headers(&[("x-user", "x")])),
            keys.key(a, &headers(&[("x-team", "x")]))
        );
    }

    #[test]
    fn missing_header_is_an_empty_value() {
        let keys = KeyBuilder::new(true, &names(&["x-user"]));
        let a = ip("192.0.2.1");
        assert_eq!(
            keys.key(a, &HeaderMap::new()),
            keys.key(a, &headers(&[("x-user", "")]))
        );
        assert_ne!(
            keys.key(a, &HeaderMap::new()),
            keys.key(a, &headers(&[("x-user", " ")]))
        );
    }

    #[test]
    fn lowercasing_follows_unicode_for_text_and_ascii_for_bytes() {
        let keys = KeyBuilder::new(false, &names(&["x-user"]));
        let a = ip("192.0.2.1");
        let k = |v: &str| keys.key(a, &headers(&[("x-user", v)]));
        assert_eq!(k("ÉCOLE"), k("école"));
        // KELVIN SIGN lower-cases to an ASCII 'k', as in Go's strings.ToLower.
        assert_eq!(k("\u{212a}ey"), k("key"));
        assert_ne!(k("école"), k("ecole"));
        // Long values cross the 64-byte buffer.
        assert_eq!(k(&"AbC".repeat(50)), k(&"abc".repeat(50)));
        assert_ne!(k(&"abc".repeat(50)), k(&"abc".repeat(51)));
        // Not UTF-8: bytes, ASCII-lower-cased.
        let raw = |v: &[u8]| {
            let mut map = HeaderMap::new();
            map.insert("x-user", HeaderValue::from_bytes(v).unwrap());
            keys.key(a, &map)
        };
        assert_eq!(raw(b"AB\xff"), raw(b"ab\xff"));
        assert_ne!(raw(b"ab\xff"), raw(b"ab\xfe"));
    }

    #[test]
    fn by_ip_off_ignores_the_address() {
        let keys = KeyBuilder::new(false, &names(&["x-user"]));
        let h = headers(&[("x-user", "alice")]);
        assert_eq!(
            keys.key(ip("192.0.2.1"), &h),
            keys.key(ip("2001:db8::1"), &h)
        );
    }

    #[test]
    fn neither_ip_nor_headers_is_one_shared_bucket() {
        let keys = KeyBuilder::new(false, &[]);
        assert_eq!(
            keys.key(ip("192.0.2.1"), &HeaderMap::new()),
            keys.key(ip("2001:db8::1"), &headers(&[("x-user", "bob")]))
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_same_key_as_ipv4() {
        let keys = KeyBuilder::new(true, &[]);
        let h = HeaderMap::new();
        assert_eq!(
            keys.key(ip("::ffff:192.0.2.1"), &h),
            keys.key(ip("192.0.2.1"), &h)
        );
        assert_ne!(
            keys.key(ip("::192.0.2.1"), &h),
            keys.key(ip("192.0.2.1"), &h)
        );
        assert_ne!(
            keys.key(ip("2001:db8::1"), &h),
            keys.key(ip("2001:db8::2"), &h)
        );
    }

    // ---- GCRA arithmetic ----

    #[test]
    fn mattermost_defaults_burst_then_refuse_then_replenish() {
        // QPS 10 (T = 100ms), MaxBurst 100.
        let (rl, clock) = fake(&config(10, 100, 10_000));
        let (a, h) = (ip("192.0.2.1"), HeaderMap::new());
        for i in 0..101u32 {
            // ttl = (i+1) * 100ms.
            let reset = u64::from(i + 1).div_ceil(10);
            assert_eq!(rl.check(a, &h), allowed(101, 100 - i, reset), "request {i}");
        }
        // Next cell conforms in 100ms; bucket full in 10.1s.
        assert_eq!(rl.check(a, &h), refused(101, 11, 1));
        assert_eq!(rl.check(a, &h), refused(101, 11, 1));
        clock.advance(Duration::from_millis(100));
        assert_eq!(rl.check(a, &h), allowed(101, 0, 11));
        assert_eq!(rl.check(a, &h), refused(101, 11, 1));
        // Partial replenishment: 350ms later 3 cells are back (ttl 9.85s after this one).
        clock.advance(Duration::from_millis(350));
        assert_eq!(rl.check(a, &h), allowed(101, 2, 10));
        // Another client is unaffected.
        assert_eq!(rl.check(ip("192.0.2.2"), &h), allowed(101, 100, 1));
        // Long idle: full again.
        clock.advance(Duration::from_secs(11));
        for i in 0..101u32 {
            assert!(rl.check(a, &h).is_allowed(), "request {i} after refill");
        }
        assert!(!rl.check(a, &h).is_allowed());
    }

    #[test]
    fn no_burst_one_per_second() {
        let (rl, clock) = fake(&config(1, 0, 100));
        let (a, h) = (ip("2001:db8::1"), HeaderMap::new());
        assert_eq!(rl.check(a, &h), allowed(1, 0, 1));
        assert_eq!(rl.check(a, &h), refused(1, 1, 1));
        clock.advance(Duration::from_millis(500));
        // Exact wait is 0.5s: rounded up to 1.
        assert_eq!(rl.check(a, &h), refused(1, 1, 1));
        clock.advance(Duration::from_millis(500));
        assert_eq!(rl.check(a, &h), allowed(1, 0, 1));
    }

    #[test]
    fn retry_after_and_reset_round_up() {
        // T = 1s, burst 2: three at once, then wait.
        let (rl, clock) = fake(&config(1, 2, 100));
        let (a, h) = (ip("192.0.2.1"), HeaderMap::new());
        assert_eq!(rl.check(a, &h), allowed(3, 2, 1));
        assert_eq!(rl.check(a, &h), allowed(3, 1, 2));
        assert_eq!(rl.check(a, &h), allowed(3, 0, 3));
        clock.advance(Duration::from_millis(300));
        // tat 3s, now 0.3s: next cell at 1s (wait 0.7s), full at 3s (2.7s).
        assert_eq!(rl.check(a, &h), refused(3, 3, 1));
        clock.advance(Duration::from_millis(700));
        assert_eq!(rl.check(a, &h), allowed(3, 0, 3));
        // Slow limit: 1 per 4 s is not expressible; 4 per second with burst 0: Retry-After >= 1.
        let (rl, _) = fake(&config(4, 0, 100));
        assert!(rl.check(a, &h).is_allowed());
        assert_eq!(rl.check(a, &h), refused(1, 1, 1));
    }

    /// `throttled`'s GCRARateLimiter.RateLimit, transcribed from Go (integer nanoseconds).
    struct Throttled {
        t: i64,
        dvt: i64,
        tat: Option<i64>,
    }

    impl Throttled {
        fn new(per_sec: i64, max_burst: i64) -> Self {
            let t = 1_000_000_000 / per_sec;
            Self {
                t,
                dvt: t * (max_burst + 1),
                tat: None,
            }
        }

        /// (limited, remaining, reset_after_ns, retry_after_ns)
        fn rate_limit(&mut self, now: i64) -> (bool, i64, i64, Option<i64>) {
            let tat = self.tat.unwrap_or(now);
            let new_tat = if now > tat {
                now + self.t
            } else {
                tat + self.t
            };
            let allow_at = new_tat - self.dvt;
            let diff = now - allow_at;
            let (limited, ttl, retry) = if diff < 0 {
                (true, tat - now, Some(-diff))
            } else {
                self.tat = Some(new_tat);
                (false, new_tat - now, None)
            };
            let next = self.dvt - ttl;
            let remaining = if next > -self.t { next / self.t } else { 0 };
            (limited, remaining, ttl, retry)
        }
    }

    #[test]
    fn matches_throttled_on_random_traffic() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for (per_sec, burst) in [
            (10, 100),
            (1, 0),
            (4, 3),
            (1000, 5),
            (8, 1),
            (2, 20),
            (3, 7),
            (7, 2),
        ] {
            let (rl, clock) = fake(&config(per_sec, burst, 100));
            let mut model = Throttled::new(per_sec.into(), burst.into());
            let t = model.t as u64;
            let (a, h) = (ip("192.0.2.1"), HeaderMap::new());
            let mut now = 0i64;
            for step in 0..3000 {
                // Mostly faster than the rate, sometimes idle for a while.
                let advance = match next() % 10 {
                    0 => next() % (t * (u64::from(burst) + 3)),
                    1..=3 => 0,
                    _ => next() % t,
                };
                clock.advance(Duration::from_nanos(advance));
                now += advance as i64;
                let (limited, remaining, reset, retry) = model.rate_limit(now);
                let ceil = |ns: i64| (ns as u64).div_ceil(NANOS_PER_SEC);
                let want = if limited {
                    refused(burst + 1, ceil(reset), ceil(retry.unwrap()))
                } else {
                    allowed(burst + 1, remaining as u32, ceil(reset))
                };
                assert_eq!(
                    rl.check(a, &h),
                    want,
                    "{per_sec}/s burst {burst} step {step}"
                );
            }
        }
    }

    #[test]
    fn threads_share_one_bucket_exactly() {
        let (rl, _clock) = fake(&config(1, 49, 100));
        let (a, h) = (ip("192.0.2.1"), HeaderMap::new());
        let passed: usize = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter(|_| rl.check(a, &h).is_allowed()).count()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(passed, 50);
    }

    #[test]
    fn limiter_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<RateLimiter>();
        assert_send_sync::<RateLimiter<FakeRelativeClock>>();
    }

    // ---- bounded store ----

    #[test]
    fn least_recently_used_key_is_evicted_and_comes_back_full() {
        // sessions 3 -> a single shard, so eviction is exact LRU.
        let (rl, _clock) = fake(&config(1, 0, 3));
        let h = HeaderMap::new();
        let (a, b, c, d) = (
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("10.0.0.3"),
            ip("10.0.0.4"),
        );
        for client in [a, b, c] {
            assert!(rl.check(client, &h).is_allowed());
        }
        assert_eq!(rl.held_keys(), 3);
        // A refused request still makes `a` recently used.
        assert!(!rl.check(a, &h).is_allowed());
        assert!(rl.check(d, &h).is_allowed());
        assert_eq!(rl.held_keys(), 3);
        // `b` was evicted: it comes back as a fresh bucket (evicting `c`).
        assert_eq!(rl.check(b, &h), allowed(1, 0, 1));
        assert!(!rl.check(a, &h).is_allowed(), "a was kept");
        assert!(!rl.check(d, &h).is_allowed(), "d was kept");
        assert!(rl.check(c, &h).is_allowed(), "c was evicted");
        assert_eq!(rl.held_keys(), 3);
    }

    #[test]
    fn a_million_distinct_keys_never_hold_more_than_sessions() {
        let mut cfg = config(10, 100, 10_000);
        cfg.headers = names(&["x-junk"]);
        let (rl, _clock) = fake(&cfg);
        let mut h = HeaderMap::new();
        let fixed = ip("192.0.2.1");
        for i in 0..1_000_000u64 {
            let client = if i % 2 == 0 {
                // Half the flood: every address of one IPv6 /64.
                IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i)))
            } else {
                // The other half: random header values from one address.
                h.insert("x-junk", HeaderValue::from(i));
                fixed
            };
            assert!(rl.check(client, &h).is_allowed(), "key {i} is new");
            if i % 1000 == 999 {
                assert!(
                    rl.held_keys() <= 10_000,
                    "{} keys after {i}",
                    rl.held_keys()
                );
            }
        }
        assert_eq!(rl.held_keys(), 10_000);
    }

    // ---- headers ----

    #[test]
    fn apply_writes_exactly_the_three_headers() {
        let mut map = headers(&[("x-ratelimit-limit", "999"), ("content-type", "text/plain")]);
        RateHeaders {
            limit: 101,
            remaining: 0,
            reset_secs: 11,
        }
        .apply(&mut map);
        assert_eq!(map.len(), 4);
        assert_eq!(map["x-ratelimit-limit"], "101");
        assert_eq!(map.get_all("x-ratelimit-limit").iter().count(), 1);
        assert_eq!(map["x-ratelimit-remaining"], "0");
        assert_eq!(map["x-ratelimit-reset"], "11");
        assert_eq!(map["content-type"], "text/plain");
    }

    #[test]
    fn numeric_header_values_are_decimal() {
        for n in (0..=10_050).chain([u32::MAX.into(), u64::MAX]) {
            assert_eq!(numeric_header_value(n).to_str().unwrap(), n.to_string());
        }
    }

    // ---- micro-benchmark ----

    /// ns per `check` on the real clock. Run:
    /// `cargo test --release -- --ignored --nocapture bench_check`
    #[test]
    #[ignore = "benchmark; run with --release --ignored --nocapture"]
    fn bench_check() {
        use std::time::Instant;
        let n = 2_000_000u32;
        let report = |name: &str, cfg: RateLimitConfig, keys: u32, with_header: bool| {
            let rl = RateLimiter::new(&cfg);
            let mut h = HeaderMap::new();
            if with_header {
                h.insert("x-user", HeaderValue::from_static("Some-User-Token-1234"));
            }
            let start = Instant::now();
            let mut allowed = 0u32;
            for i in 0..n {
                let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % keys)));
                let decision = rl.check(client, &h);
                allowed += u32::from(decision.is_allowed());
                std::hint::black_box(decision);
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
            println!("{name}: {ns:.1} ns/check ({allowed} allowed of {n})");
            let mut out = HeaderMap::new();
            let start = Instant::now();
            for _ in 0..n {
                out.clear();
                rl.check(std::hint::black_box(IpAddr::from([10, 0, 0, 1])), &h)
                    .headers()
                    .apply(&mut out);
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
            println!("{name}: {ns:.1} ns/check+apply (one key)");
        };
        let mut cfg = config(10, 100, 10_000);
        report("by ip, 1 key", cfg.clone(), 1, false);
        report("by ip, 5000 keys", cfg.clone(), 5000, false);
        report("by ip, 100000 keys (evicting)", cfg.clone(), 100_000, false);
        cfg.headers = names(&["x-user"]);
        report("by ip + 1 header, 5000 keys", cfg.clone(), 5000, true);
        cfg.by_ip = false;
        cfg.headers.clear();
        report("shared bucket", cfg, 1, false);
    }
}
