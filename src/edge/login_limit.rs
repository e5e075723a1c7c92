//! The login limit: failed sign-ins per client IP, apart from the general rate limit.
//!
//! Mattermost locks an account after `MaximumLoginAttempts` failures, which lets anyone lock a
//! user out and does nothing against one guesser trying a password on many accounts. The edge
//! limits failed sign-ins per client network instead: a sign-in request ([`is_sign_in`]) is
//! refused while the client's bucket is empty, and Mattermost's answer decides its cost: a `401`
//! or `403` (a failed attempt) takes one cell, anything else takes nothing. A whole office behind
//! one NAT address signing in at 9:00 is never refused; a guesser is, after `burst` failures,
//! then gets one attempt per refill interval.
//!
//! The bucket is a GCRA over the same bounded LRU store as the rate limit (its own `sessions`
//! bound). An attempt takes its cell when it is let through and gives it back when the answer is
//! not a failure ([`LoginLimiter::settle`]), so guesses sent in parallel cannot exceed the burst;
//! an attempt whose client went away before Mattermost answered keeps its cost.
//!
//! With a shared Redis (`rate_limit.redis`), admitting is the same atomic check-and-take in Redis
//! as the rate limit's, and the refund an atomic give-back there, so failures on one edge count
//! on every other; while Redis fails, this edge's own buckets decide (and take the refund).

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;

use governor::clock::{Clock, QuantaClock, Reference};
use governor::nanos::Nanos;
use governor::state::StateStore;
use http::{Method, StatusCode};

use super::rate_limit::{client_octets, retry_after_secs, BucketKey, ShardedLruStore};
use super::shared::{SharedBuckets, Step, LOGIN_PREFIX};
use crate::config::{LoginLimit, Rate};

/// The sign-in endpoints (`POST` only): password, MFA, account switch, password reset and
/// e-mail verification requests, SAML's assertion consumer, OAuth's token endpoint.
pub const SIGN_IN_PATHS: [&str; 8] = [
    "/api/v4/users/login",
    "/api/v4/users/login/switch",
    "/api/v4/users/mfa",
    "/api/v4/users/password/reset",
    "/api/v4/users/password/reset/send",
    "/api/v4/users/email/verify/send",
    "/login/sso/saml",
    "/oauth/access_token",
];

/// Longest path that can decode to a sign-in path (longer ones are never one).
const MAX_ENCODED_PATH: usize = 3 * 40;

/// Whether a request is a sign-in attempt: `POST` to one of [`SIGN_IN_PATHS`]. The path is
/// compared as Mattermost's router sees it: percent-decoded (`/api/v4/users/%6cogin` is the
/// login), one trailing slash ignored.
pub fn is_sign_in(method: &Method, path: &str) -> bool {
    if *method != Method::POST {
        return false;
    }
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    if !path.contains('%') {
        return SIGN_IN_PATHS.contains(&path);
    }
    if path.len() > MAX_ENCODED_PATH {
        return false;
    }
    let mut buf = [0u8; MAX_ENCODED_PATH];
    let Some(decoded) = percent_decode(path.as_bytes(), &mut buf) else {
        return false;
    };
    let decoded = decoded.strip_suffix(b"/").unwrap_or(decoded);
    SIGN_IN_PATHS.iter().any(|p| p.as_bytes() == decoded)
}

/// `%XX` sequences decoded into `buf`; `None` for a malformed one (Go refuses such a request).
fn percent_decode<'a>(path: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let (mut i, mut n) = (0, 0);
    while i < path.len() {
        let b = if path[i] == b'%' {
            let hi = hex(*path.get(i + 1)?)?;
            let lo = hex(*path.get(i + 2)?)?;
            i += 3;
            u8::try_from(hi * 16 + lo).ok()?
        } else {
            i += 1;
            path[i - 1]
        };
        *buf.get_mut(n)? = b;
        n += 1;
    }
    Some(&buf[..n])
}

/// A sign-in attempt let through: its cell is taken until [`LoginLimiter::settle`] says whether
/// it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    key: BucketKey,
    /// Taken in the shared Redis (else in this process).
    shared: bool,
}

/// The failed-sign-in buckets, built once from `[login_limit]`. `C` is the time source (tests
/// use a fake clock).
pub struct LoginLimiter<C: Clock = QuantaClock> {
    store: ShardedLruStore,
    clock: C,
    start: C::Instant,
    seed: RandomState,
    ipv6_prefix: u8,
    /// One failure comes back every `interval_ns`.
    interval_ns: u64,
    /// `interval_ns * (burst - 1)`: how far ahead the bucket may be and still let one through.
    tolerance_ns: u64,
    /// The Redis the buckets are shared through, if any.
    shared: Option<SharedBuckets>,
}

impl LoginLimiter {
    /// A limiter at `rate` on the process's monotonic clock; IPv6 clients keyed by
    /// `ipv6_prefix` bits.
    pub fn new(cfg: &LoginLimit, rate: Rate, ipv6_prefix: u8) -> Self {
        Self::with_clock(cfg, rate, ipv6_prefix, QuantaClock::default())
    }
}

impl<C: Clock> LoginLimiter<C> {
    /// A limiter on the given clock.
    pub fn with_clock(cfg: &LoginLimit, rate: Rate, ipv6_prefix: u8, clock: C) -> Self {
        let interval_ns = u64::try_from(rate.interval().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let start = clock.now();
        Self {
            store: ShardedLruStore::new(cfg.sessions),
            clock,
            start,
            seed: RandomState::new(),
            ipv6_prefix,
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(cfg.burst.get() - 1)),
            shared: None,
        }
    }

    /// The same limiter with its buckets in `shared` (this process's while Redis fails).
    pub fn with_shared(mut self, shared: Option<SharedBuckets>) -> Self {
        self.shared = shared;
        self
    }

    fn key(&self, ip: IpAddr) -> BucketKey {
        let octets = client_octets(ip, self.ipv6_prefix);
        BucketKey::new(octets, self.seed.hash_one(octets))
    }

    fn now_ns(&self) -> u64 {
        self.clock.now().duration_since(self.start).as_u64()
    }

    /// Lets a sign-in attempt from `ip` through, taking one cell, or refuses it with the
    /// seconds until the next attempt would pass (at least 1).
    pub async fn admit(&self, ip: IpAddr) -> Result<Attempt, u64> {
        let key = self.key(ip);
        if let Some(shared) = &self.shared {
            let mut buf = [0u8; LOGIN_PREFIX.len() + 16];
            let redis_key = login_key(&key, &mut buf);
            let (t, tolerance) = (self.interval_ns, self.tolerance_ns);
            // Boxed, like every Redis round trip on the request path (see `Buckets::take`).
            match Box::pin(shared.take(redis_key, key.digest(), t, tolerance)).await {
                Some(Step::Taken { .. }) => return Ok(Attempt { key, shared: true }),
                Some(Step::Refused { wait_ns }) => return Err(retry_after_secs(wait_ns)),
                None => {}
            }
        }
        self.admit_local(key)
    }

    /// [`LoginLimiter::admit`] in this process's buckets.
    fn admit_local(&self, key: BucketKey) -> Result<Attempt, u64> {
        let now = self.now_ns();
        let (t, tolerance) = (self.interval_ns, self.tolerance_ns);
        self.store
            .measure_and_replace(&key, |tat| {
                let tat = tat.map_or(now, u64::from).max(now);
                let ahead = tat - now;
                if ahead > tolerance {
                    Err(retry_after_secs(ahead - tolerance))
                } else {
                    Ok(((), Nanos::new(tat.saturating_add(t))))
                }
            })
            .map(|()| Attempt { key, shared: false })
    }

    /// Mattermost answered an attempt with `status`: a `401` or `403` keeps its cost (returns
    /// true: a failed sign-in); anything else gives the cell back, where it was taken (a refund
    /// Redis does not answer in time is lost: that attempt keeps its cost).
    pub async fn settle(&self, attempt: Attempt, status: StatusCode) -> bool {
        if is_failure(status) {
            return true;
        }
        match (&self.shared, attempt.shared) {
            (Some(shared), true) => {
                let mut buf = [0u8; LOGIN_PREFIX.len() + 16];
                let redis_key = login_key(&attempt.key, &mut buf);
                Box::pin(shared.give_back(redis_key, attempt.key.digest(), self.interval_ns)).await;
            }
            _ => {
                let t = self.interval_ns;
                let _: Result<(), ()> =
                    self.store
                        .measure_and_replace(&attempt.key, |tat| match tat {
                            Some(tat) => Ok(((), Nanos::new(u64::from(tat).saturating_sub(t)))),
                            None => Err(()),
                        });
            }
        }
        false
    }

    /// Client networks held now (never more than `sessions`).
    pub fn held_keys(&self) -> usize {
        self.store.len()
    }
}

/// Mattermost's answers to a failed sign-in: wrong credentials (`401`), a locked or
/// deactivated account, a wrong MFA code (`401`/`403`).
pub fn is_failure(status: StatusCode) -> bool {
    status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// The Redis key of a client network: the prefix and its 16 octets (the same on every edge).
fn login_key<'a>(key: &BucketKey, buf: &'a mut [u8; LOGIN_PREFIX.len() + 16]) -> &'a [u8] {
    let (prefix, octets) = buf.split_at_mut(LOGIN_PREFIX.len());
    prefix.copy_from_slice(LOGIN_PREFIX);
    octets.copy_from_slice(key.ip());
    &buf[..]
}

impl<C: Clock> fmt::Debug for LoginLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("interval_ns", &self.interval_ns)
            .field("tolerance_ns", &self.tolerance_ns)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use governor::clock::FakeRelativeClock;
    use std::num::{NonZeroU32, NonZeroUsize};
    use std::time::Duration;

    fn limiter(
        count: u32,
        period: u64,
        burst: u32,
    ) -> (LoginLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let cfg = LoginLimit {
            rate: None,
            burst: NonZeroU32::new(burst).unwrap(),
            sessions: NonZeroUsize::new(100).unwrap(),
        };
        let rate = Rate {
            count: NonZeroU32::new(count).unwrap(),
            period: Duration::from_secs(period),
        };
        let clock = FakeRelativeClock::default();
        (
            LoginLimiter::with_clock(&cfg, rate, 64, clock.clone()),
            clock,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The local limiter never waits: its futures are ready at once.
    trait Now {
        fn admit_now(&self, ip: IpAddr) -> Result<Attempt, u64>;
        fn settle_now(&self, attempt: Attempt, status: StatusCode) -> bool;
    }

    impl Now for LoginLimiter<FakeRelativeClock> {
        fn admit_now(&self, ip: IpAddr) -> Result<Attempt, u64> {
            self.admit(ip).now_or_never().expect("local: ready")
        }
        fn settle_now(&self, attempt: Attempt, status: StatusCode) -> bool {
            self.settle(attempt, status)
                .now_or_never()
                .expect("local: ready")
        }
    }

    fn fail(l: &LoginLimiter<FakeRelativeClock>, from: &str) -> Result<(), u64> {
        let a = l.admit_now(ip(from))?;
        assert!(l.settle_now(a, StatusCode::UNAUTHORIZED));
        Ok(())
    }

    #[test]
    fn burst_failures_then_one_per_interval() {
        // 3/min, burst 3: failures 1-3 pass, the 4th attempt within the minute is refused.
        let (l, clock) = limiter(3, 60, 3);
        for _ in 0..3 {
            assert_eq!(fail(&l, "192.0.2.1"), Ok(()));
        }
        assert_eq!(l.admit_now(ip("192.0.2.1")), Err(20));
        // Another network is not affected.
        assert_eq!(fail(&l, "192.0.2.2"), Ok(()));
        clock.advance(Duration::from_secs(19));
        assert_eq!(l.admit_now(ip("192.0.2.1")), Err(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(fail(&l, "192.0.2.1"), Ok(()));
        assert!(l.admit_now(ip("192.0.2.1")).is_err());
    }

    #[test]
    fn successes_never_cost() {
        let (l, _clock) = limiter(3, 60, 3);
        for _ in 0..1000 {
            let a = l
                .admit_now(ip("198.51.100.7"))
                .expect("a success never empties the bucket");
            assert!(!l.settle_now(a, StatusCode::OK));
        }
        // Other answers (Mattermost down, a 400) are not failed sign-ins either.
        for status in [StatusCode::BAD_GATEWAY, StatusCode::BAD_REQUEST] {
            let a = l.admit_now(ip("198.51.100.7")).unwrap();
            assert!(!l.settle_now(a, status));
        }
        for _ in 0..3 {
            assert_eq!(fail(&l, "198.51.100.7"), Ok(()));
        }
        assert!(l.admit_now(ip("198.51.100.7")).is_err());
    }

    #[test]
    fn parallel_attempts_cannot_exceed_the_burst() {
        let (l, _clock) = limiter(1, 3600, 2);
        let a = l.admit_now(ip("192.0.2.9")).unwrap();
        let b = l.admit_now(ip("192.0.2.9")).unwrap();
        assert!(
            l.admit_now(ip("192.0.2.9")).is_err(),
            "two in flight hold the burst"
        );
        // One of them succeeds: its cell comes back.
        l.settle_now(a, StatusCode::OK);
        assert!(l.settle_now(b, StatusCode::FORBIDDEN));
        assert!(l.admit_now(ip("192.0.2.9")).is_ok());
    }

    #[test]
    fn ipv6_is_limited_by_prefix() {
        let (l, _clock) = limiter(1, 3600, 1);
        assert_eq!(fail(&l, "2001:db8:0:1::1"), Ok(()));
        assert!(l.admit_now(ip("2001:db8:0:1::2")).is_err(), "same /64");
        assert_eq!(fail(&l, "2001:db8:0:2::1"), Ok(()));
        assert_eq!(fail(&l, "::ffff:192.0.2.1"), Ok(()));
        assert!(l.admit_now(ip("192.0.2.1")).is_err(), "IPv4-mapped is IPv4");
    }

    #[test]
    fn the_store_holds_at_most_sessions_networks() {
        let (l, _clock) = limiter(1, 3600, 1);
        for i in 0..1000u32 {
            let [_, _, a, b] = i.to_be_bytes();
            let _ = fail(&l, &format!("10.0.{a}.{b}"));
        }
        assert_eq!(l.held_keys(), 100);
        // The least recently used were forgotten: the first client is fresh again.
        assert_eq!(fail(&l, "10.0.0.0"), Ok(()));
    }

    #[test]
    fn sign_in_paths_as_mattermost_routes_them() {
        let post = Method::POST;
        for p in SIGN_IN_PATHS {
            assert!(is_sign_in(&post, p), "{p}");
        }
        assert!(is_sign_in(&post, "/api/v4/users/login/"));
        assert!(is_sign_in(&post, "/api/v4/users/%6cogin"));
        assert!(is_sign_in(&post, "/api/v4/users/%6C%6f%67%69%6E"));
        assert!(is_sign_in(&post, "/oauth%2Faccess_token"));
        assert!(!is_sign_in(&Method::GET, "/api/v4/users/login"));
        assert!(!is_sign_in(&Method::PUT, "/api/v4/users/login"));
        for p in [
            "/api/v4/users/logout",
            "/api/v4/users/login/sso",
            "/api/v4/users/me",
            "/api/v4/users/%zzlogin",
            "/api/v4/users/login%",
            "/API/v4/users/login",
            "/",
            "",
        ] {
            assert!(!is_sign_in(&post, p), "{p}");
        }
        assert!(!is_sign_in(&post, &"%41".repeat(100)));
    }
}
