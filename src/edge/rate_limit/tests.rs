use super::*;
use governor::clock::FakeRelativeClock;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::time::Duration;

fn config(per_sec: u32, max_burst: u32, sessions: usize) -> RateLimit {
    RateLimit {
        enable: true,
        per_sec: NonZeroU32::new(per_sec).unwrap(),
        max_burst,
        sessions: NonZeroUsize::new(sessions).unwrap(),
        by_ip: true,
        headers: Vec::new(),
        ipv6_prefix: 128,
        redis: None,
    }
}

type FakeLimiter = RateLimiter<LocalStore<FakeRelativeClock>>;

fn fake(cfg: &RateLimit) -> (FakeLimiter, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let store = LocalStore::with_clock(cfg, clock.clone());
    (RateLimiter::with_store(cfg, store), clock)
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
    let keys = KeyBuilder::new(true, 128, &names(&["x-user", "x-team"]));
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
    let keys = KeyBuilder::new(true, 128, &names(&["x-user"]));
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
    let keys = KeyBuilder::new(false, 128, &names(&["x-user"]));
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
    let keys = KeyBuilder::new(false, 128, &names(&["x-user"]));
    let h = headers(&[("x-user", "alice")]);
    assert_eq!(
        keys.key(ip("192.0.2.1"), &h),
        keys.key(ip("2001:db8::1"), &h)
    );
}

#[test]
fn neither_ip_nor_headers_is_one_shared_bucket() {
    let keys = KeyBuilder::new(false, 128, &[]);
    assert_eq!(
        keys.key(ip("192.0.2.1"), &HeaderMap::new()),
        keys.key(ip("2001:db8::1"), &headers(&[("x-user", "bob")]))
    );
}

#[test]
fn ipv4_mapped_ipv6_is_the_same_key_as_ipv4() {
    let keys = KeyBuilder::new(true, 128, &[]);
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

#[test]
fn ipv6_clients_share_a_bucket_per_prefix() {
    let keys = KeyBuilder::new(true, 64, &[]);
    let h = HeaderMap::new();
    // One /64 is one client: every address in it is the same key.
    assert_eq!(
        keys.key(ip("2001:db8:1:2::1"), &h),
        keys.key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), &h)
    );
    // The next /64 is another client.
    assert_ne!(
        keys.key(ip("2001:db8:1:2::1"), &h),
        keys.key(ip("2001:db8:1:3::1"), &h)
    );
    // IPv4 (also IPv4-mapped) is never masked.
    assert_ne!(keys.key(ip("192.0.2.1"), &h), keys.key(ip("192.0.2.2"), &h));
    assert_eq!(
        keys.key(ip("::ffff:192.0.2.1"), &h),
        keys.key(ip("192.0.2.1"), &h)
    );
    // Odd prefix lengths mask inside an octet.
    assert_eq!(
        key::client_octets(ip("2001:db8:ffff::"), 33)[..5],
        [0x20, 0x01, 0x0d, 0xb8, 0x80]
    );
    assert_eq!(
        key::client_octets(ip("2001:db8::1"), 128),
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
    );
}

#[test]
fn a_fresh_address_in_the_same_prefix_gets_no_fresh_bucket() {
    let mut cfg = config(1, 1, 100);
    cfg.ipv6_prefix = 64;
    let (rl, _clock) = fake(&cfg);
    let h = HeaderMap::new();
    assert!(rl.check_now(ip("2001:db8::1"), &h).is_allowed());
    assert!(rl.check_now(ip("2001:db8::2"), &h).is_allowed());
    assert!(!rl.check_now(ip("2001:db8::3"), &h).is_allowed());
    assert!(rl.check_now(ip("2001:db8:0:1::1"), &h).is_allowed());
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
        assert_eq!(
            rl.check_now(a, &h),
            allowed(101, 100 - i, reset),
            "request {i}"
        );
    }
    // Next cell conforms in 100ms; bucket full in 10.1s.
    assert_eq!(rl.check_now(a, &h), refused(101, 11, 1));
    assert_eq!(rl.check_now(a, &h), refused(101, 11, 1));
    clock.advance(Duration::from_millis(100));
    assert_eq!(rl.check_now(a, &h), allowed(101, 0, 11));
    assert_eq!(rl.check_now(a, &h), refused(101, 11, 1));
    // Partial replenishment: 350ms later 3 cells are back (ttl 9.85s after this one).
    clock.advance(Duration::from_millis(350));
    assert_eq!(rl.check_now(a, &h), allowed(101, 2, 10));
    // Another client is unaffected.
    assert_eq!(rl.check_now(ip("192.0.2.2"), &h), allowed(101, 100, 1));
    // Long idle: full again.
    clock.advance(Duration::from_secs(11));
    for i in 0..101u32 {
        assert!(rl.check_now(a, &h).is_allowed(), "request {i} after refill");
    }
    assert!(!rl.check_now(a, &h).is_allowed());
}

#[test]
fn no_burst_one_per_second() {
    let (rl, clock) = fake(&config(1, 0, 100));
    let (a, h) = (ip("2001:db8::1"), HeaderMap::new());
    assert_eq!(rl.check_now(a, &h), allowed(1, 0, 1));
    assert_eq!(rl.check_now(a, &h), refused(1, 1, 1));
    clock.advance(Duration::from_millis(500));
    // Exact wait is 0.5s: rounded up to 1.
    assert_eq!(rl.check_now(a, &h), refused(1, 1, 1));
    clock.advance(Duration::from_millis(500));
    assert_eq!(rl.check_now(a, &h), allowed(1, 0, 1));
}

#[test]
fn retry_after_and_reset_round_up() {
    // T = 1s, burst 2: three at once, then wait.
    let (rl, clock) = fake(&config(1, 2, 100));
    let (a, h) = (ip("192.0.2.1"), HeaderMap::new());
    assert_eq!(rl.check_now(a, &h), allowed(3, 2, 1));
    assert_eq!(rl.check_now(a, &h), allowed(3, 1, 2));
    assert_eq!(rl.check_now(a, &h), allowed(3, 0, 3));
    clock.advance(Duration::from_millis(300));
    // tat 3s, now 0.3s: next cell at 1s (wait 0.7s), full at 3s (2.7s).
    assert_eq!(rl.check_now(a, &h), refused(3, 3, 1));
    clock.advance(Duration::from_millis(700));
    assert_eq!(rl.check_now(a, &h), allowed(3, 0, 3));
    // Slow limit: 1 per 4 s is not expressible; 4 per second with burst 0: Retry-After >= 1.
    let (rl, _) = fake(&config(4, 0, 100));
    assert!(rl.check_now(a, &h).is_allowed());
    assert_eq!(rl.check_now(a, &h), refused(1, 1, 1));
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
                rl.check_now(a, &h),
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
            .map(|_| {
                s.spawn(|| {
                    (0..100)
                        .filter(|_| rl.check_now(a, &h).is_allowed())
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(passed, 50);
}

#[test]
fn limiter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RateLimiter>();
    assert_send_sync::<FakeLimiter>();
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
        assert!(rl.check_now(client, &h).is_allowed());
    }
    assert_eq!(rl.held_keys(), 3);
    // A refused request still makes `a` recently used.
    assert!(!rl.check_now(a, &h).is_allowed());
    assert!(rl.check_now(d, &h).is_allowed());
    assert_eq!(rl.held_keys(), 3);
    // `b` was evicted: it comes back as a fresh bucket (evicting `c`).
    assert_eq!(rl.check_now(b, &h), allowed(1, 0, 1));
    assert!(!rl.check_now(a, &h).is_allowed(), "a was kept");
    assert!(!rl.check_now(d, &h).is_allowed(), "d was kept");
    assert!(rl.check_now(c, &h).is_allowed(), "c was evicted");
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
        assert!(rl.check_now(client, &h).is_allowed(), "key {i} is new");
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
fn header_values_are_decimal() {
    for n in [0u64, 9, 10, 9999, 10_000, u64::from(u32::MAX), u64::MAX] {
        let mut map = HeaderMap::new();
        RateHeaders {
            limit: u32::try_from(n.min(u64::from(u32::MAX))).unwrap(),
            remaining: 0,
            reset_secs: n,
        }
        .apply(&mut map);
        assert_eq!(map["x-ratelimit-reset"].to_str().unwrap(), n.to_string());
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
    let report = |name: &str, cfg: RateLimit, keys: u32, with_header: bool| {
        let rl = RateLimiter::new(&cfg);
        let mut h = HeaderMap::new();
        if with_header {
            h.insert("x-user", HeaderValue::from_static("Some-User-Token-1234"));
        }
        let start = Instant::now();
        let mut allowed = 0u32;
        for i in 0..n {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % keys)));
            let decision = rl.check_now(client, &h);
            allowed += u32::from(decision.is_allowed());
            std::hint::black_box(decision);
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!("{name}: {ns:.1} ns/check ({allowed} allowed of {n})");
        let mut out = HeaderMap::new();
        let start = Instant::now();
        for _ in 0..n {
            out.clear();
            rl.check_now(std::hint::black_box(IpAddr::from([10, 0, 0, 1])), &h)
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
