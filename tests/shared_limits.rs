//! Shared limits (`MM_EDGE_RATE_LIMIT_REDIS`): several edges keep their rate-limit and
//! login-limit buckets in one real `redis-server` (tests/common/redis_server.rs, on a unix
//! socket), decide locally while it is gone, and share again when it is back. Also the Lua
//! script's answers against the local store's, the keys' expiry, and the URL's checks.
//!
//! No test waits on time: buckets refill at 1 per second (rate) or 1 per hour (login) and are
//! drained by counting; waits are for events (log lines), bounded by `PATIENCE`. A rate-limit
//! sequence that took a second or more (a stalled machine) checks only the bounds that hold at
//! any speed, and says so.

mod common;

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use common::redis_server::{wait_for_log_count, RedisServer};
use common::{run, sample, scrape_metrics, Backend, Edge};
use governor::clock::FakeRelativeClock;
use http::HeaderMap;
use mm_edge::config::{RateLimit, Redis};
use mm_edge::edge::rate_limit::{Buckets, Decision, LocalStore, RateLimiter};
use mm_edge::edge::shared::SharedBuckets;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use reqwest::{Client, StatusCode};

const PING: &str = "/api/v4/system/ping";
const LOGIN: &str = "/api/v4/users/login";
/// Logged when every connection to Redis answers (at start, and after an outage).
const ANSWERS: &str = "shared limits: Redis answers";
/// Logged once per outage.
const UNREACHABLE: &str = "shared limits: Redis unreachable";
/// Most requests sent to drain one bucket before the test gives up.
const MAX_TRIES: usize = 30;

/// Two edges in front of one backend, sharing `redis`, with `env`; both have their Redis
/// connections up (and a metrics listener).
fn two_edges(backend: &Backend, redis: &RedisServer, env: &[(&str, &str)]) -> [Edge; 2] {
    let url = redis.url();
    let mut all: Vec<(&str, &str)> = vec![
        ("MM_EDGE_RATE_LIMIT_REDIS", &url),
        ("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0"),
    ];
    all.extend_from_slice(env);
    let edges = [Edge::start(backend, &all), Edge::start(backend, &all)];
    for e in &edges {
        e.wait_for_log(ANSWERS);
    }
    edges
}

/// A client of `edge` whose connections come from `ip` (127.0.0.0/8).
fn client_from(edge: &Edge, ip: &str) -> Client {
    let ip: IpAddr = ip.parse().expect("ip");
    edge.client_builder()
        .local_address(ip)
        .build()
        .expect("client")
}

/// A rate limit of 1/s with `burst`.
const RATE: [(&str, &str); 2] = [
    ("MATTERMOST_RATE_LIMIT_QPS", "1"),
    ("MM_EDGE_LOGIN_LIMIT", "off"),
];

/// Sends GET PING from `ip`, in turn to each of `edges` (request i to edge i % n), until the
/// first 429; returns the `X-RateLimit-Remaining` of each pass and the time it took.
async fn drain(edges: &[&Edge], ip: &str) -> (Vec<u64>, Duration) {
    let clients: Vec<Client> = edges.iter().map(|e| client_from(e, ip)).collect();
    let start = Instant::now();
    let mut remaining = Vec::new();
    for i in 0..MAX_TRIES {
        let n = i % edges.len();
        let resp = clients[n]
            .get(edges[n].url(PING))
            .send()
            .await
            .expect("request");
        let value = |name: &str| -> u64 {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {:?}", resp.headers()))
        };
        match resp.status() {
            StatusCode::OK => remaining.push(value("x-ratelimit-remaining")),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(value("x-ratelimit-remaining"), 0);
                return (remaining, start.elapsed());
            }
            other => panic!("request {i}: unexpected {other}"),
        }
    }
    panic!("{MAX_TRIES} requests and none refused: the bucket is not limited")
}

/// `limit` requests passed with Remaining limit-1 .. 0 when the drain took under a second; on a
/// stalled machine, at least `limit` and at most one more per elapsed second.
fn assert_exactly(limit: u64, (remaining, elapsed): &(Vec<u64>, Duration), what: &str) {
    let passes = remaining.len() as u64;
    if *elapsed < Duration::from_millis(900) {
        let expected: Vec<u64> = (0..limit).rev().collect();
        assert_eq!(remaining, &expected, "{what}");
    } else {
        eprintln!("slow run: {what} took {elapsed:?}: only its bounds checked");
        let extra = (*elapsed + Duration::from_millis(100)).as_secs();
        assert!(
            passes >= limit && passes <= limit + extra,
            "{what}: {passes} passed"
        );
    }
}

#[tokio::test]
async fn two_edges_sharing_redis_let_burst_plus_one_through_to_a_client_alternating() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let backend = Backend::start().await;
    let env = [RATE[0], RATE[1], ("MATTERMOST_RATE_LIMIT_BURST", "4")];
    let [a, b] = two_edges(&backend, &redis, &env);
    let drained = drain(&[&a, &b], "127.0.0.2").await;
    assert_exactly(5, &drained, "alternating between two edges");
    // Each edge alone is limited by the same bucket: empty for this client on both.
    for edge in [&a, &b] {
        let resp = client_from(edge, "127.0.0.2")
            .get(edge.url(PING))
            .send()
            .await
            .expect("request");
        if drained.1 < Duration::from_millis(900) {
            assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        }
    }
    // Another client has its own shared bucket.
    assert_exactly(5, &drain(&[&b, &a], "127.0.0.3").await, "a second client");
    for edge in [&a, &b] {
        let m = scrape_metrics(edge).await;
        assert_eq!(sample(&m, "mm_edge_rate_limit_redis_up"), 1.0, "{m}");
        assert_eq!(sample(&m, "mm_edge_rate_limit_redis_fallbacks_total"), 0.0);
        assert!(!edge.log().contains(UNREACHABLE), "{}", edge.log());
    }
}

#[tokio::test]
async fn without_redis_requests_keep_flowing_limited_locally_then_shared_again() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let backend = Backend::start().await;
    let env = [RATE[0], RATE[1], ("MATTERMOST_RATE_LIMIT_BURST", "2")];
    let [a, b] = two_edges(&backend, &redis, &env);
    assert_exactly(3, &drain(&[&a, &b], "127.0.0.2").await, "shared, before");

    redis.stop();
    // Each edge decides alone: a fresh client gets a full local bucket on each of them.
    assert_exactly(3, &drain(&[&a], "127.0.0.3").await, "edge A alone");
    assert_exactly(3, &drain(&[&b], "127.0.0.3").await, "edge B alone");
    for edge in [&a, &b] {
        // More requests (other clients, other connections) while Redis is gone: still one line.
        for i in 10..20 {
            let ip = format!("127.0.0.{i}");
            let resp = client_from(edge, &ip)
                .get(edge.url(PING))
                .send()
                .await
                .expect("request while Redis is down");
            assert_eq!(resp.status(), StatusCode::OK);
        }
        let log = edge.log();
        assert_eq!(log.matches(UNREACHABLE).count(), 1, "logged once:\n{log}");
        let m = scrape_metrics(edge).await;
        assert_eq!(sample(&m, "mm_edge_rate_limit_redis_up"), 0.0, "{m}");
        assert!(
            sample(&m, "mm_edge_rate_limit_redis_fallbacks_total") >= 14.0,
            "every local decision counted: {m}"
        );
    }

    redis.restart();
    for edge in [&a, &b] {
        wait_for_log_count(edge, ANSWERS, 2);
    }
    // Shared again: a fresh client alternating gets one bucket, not one per edge.
    assert_exactly(3, &drain(&[&a, &b], "127.0.0.4").await, "shared, after");
    for edge in [&a, &b] {
        let m = scrape_metrics(edge).await;
        assert_eq!(sample(&m, "mm_edge_rate_limit_redis_up"), 1.0, "{m}");
        assert_eq!(edge.log().matches(UNREACHABLE).count(), 1);
    }
}

#[tokio::test]
async fn a_redis_that_stops_answering_is_waited_for_at_most_the_timeout() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let backend = Backend::start().await;
    let env = [RATE[0], RATE[1], ("MATTERMOST_RATE_LIMIT_BURST", "2")];
    let [a, _b] = two_edges(&backend, &redis, &env);
    // Frozen: connections stay open, no answer comes.
    redis.signal("STOP");
    assert_exactly(3, &drain(&[&a], "127.0.0.2").await, "decided alone");
    a.wait_for_log("no answer within 50ms");
    assert_eq!(a.log().matches(UNREACHABLE).count(), 1, "{}", a.log());
    redis.signal("CONT");
    wait_for_log_count(&a, ANSWERS, 2);
    let m = scrape_metrics(&a).await;
    assert_eq!(sample(&m, "mm_edge_rate_limit_redis_up"), 1.0, "{m}");
    assert!(
        sample(&m, "mm_edge_rate_limit_redis_fallbacks_total") >= 4.0,
        "{m}"
    );
}

async fn sign_in(client: &Client, edge: &Edge, password: &str) -> StatusCode {
    common::sign_in(client, edge, LOGIN, password)
        .await
        .status()
}

#[tokio::test]
async fn failed_sign_ins_on_one_edge_count_on_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let backend = Backend::start().await;
    let env = [
        ("MM_EDGE_LOGIN_LIMIT", "1/h"),
        ("MM_EDGE_LOGIN_LIMIT_BURST", "3"),
        ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
    ];
    let [a, b] = two_edges(&backend, &redis, &env);
    let (ca, cb) = (client_from(&a, "127.0.0.2"), client_from(&b, "127.0.0.2"));
    // Successes cost nothing on either edge: each one's cell is given back in Redis.
    for _ in 0..10 {
        assert_eq!(sign_in(&ca, &a, "right").await, StatusCode::OK);
        assert_eq!(sign_in(&cb, &b, "right").await, StatusCode::OK);
    }
    // Three failures in all, spread over both edges, empty the client's one bucket.
    assert_eq!(sign_in(&ca, &a, "wrong").await, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&cb, &b, "wrong").await, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&ca, &a, "wrong").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        sign_in(&cb, &b, "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in(&ca, &a, "right").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another network is not affected.
    let other = client_from(&b, "127.0.0.3");
    assert_eq!(sign_in(&other, &b, "right").await, StatusCode::OK);
    for edge in [&a, &b] {
        let m = scrape_metrics(edge).await;
        assert_eq!(sample(&m, "mm_edge_rate_limit_redis_fallbacks_total"), 0.0);
    }
}

fn rate_config(per_sec: u32, max_burst: u32, redis: &RedisServer) -> RateLimit {
    RateLimit {
        enable: true,
        per_sec: NonZeroU32::new(per_sec).expect("rate"),
        max_burst,
        sessions: NonZeroUsize::new(100).expect("sessions"),
        by_ip: true,
        headers: Vec::new(),
        ipv6_prefix: 64,
        redis: Some(Redis {
            url: redis.url(),
            password: None,
            timeout: Duration::from_secs(5),
        }),
    }
}

/// The library's shared store, connected (every connection up).
async fn connected(cfg: &RateLimit) -> RateLimiter<Buckets> {
    let shared = SharedBuckets::new(cfg.redis.as_ref().expect("redis")).expect("client");
    let up = Gauge::default();
    shared.connect(Counter::default(), up.clone());
    let start = Instant::now();
    while up.get() != 1 {
        assert!(start.elapsed() < common::PATIENCE, "Redis never answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    RateLimiter::shared_or_local(cfg, Some(shared))
}

#[tokio::test]
async fn the_script_answers_as_the_local_store_does() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // T = 1s (divides a second) and T = 1/3 s (does not); sequences well inside one interval,
    // so Redis's clock moving meanwhile changes no answer: the local store's clock stands still.
    for (n, (per_sec, burst)) in [(1, 0), (1, 4), (3, 5), (1, 100)].into_iter().enumerate() {
        let cfg = rate_config(per_sec, burst, &redis);
        let shared = connected(&cfg).await;
        let local = RateLimiter::with_store(
            &cfg,
            LocalStore::with_clock(&cfg, FakeRelativeClock::default()),
        );
        let headers = HeaderMap::new();
        // Clients of their own in each round: the buckets of earlier rounds are still in Redis.
        for client in [format!("192.0.2.{n}"), format!("2001:db8:{n}::1")] {
            let ip: IpAddr = client.parse().expect("ip");
            let start = Instant::now();
            let mut seen = Vec::new();
            for _ in 0..burst + 3 {
                let (r, l) = (
                    shared.check(ip, &headers).await,
                    local.check_now(ip, &headers),
                );
                seen.push((r, l));
            }
            let elapsed = start.elapsed();
            let interval = Duration::from_secs(1) / per_sec;
            if elapsed >= interval / 2 {
                eprintln!("slow run: {elapsed:?} for one sequence, not compared");
                continue;
            }
            for (i, (r, l)) in seen.iter().enumerate() {
                assert_eq!(r, l, "per_sec {per_sec} burst {burst} request {i}");
            }
            let refused = seen
                .iter()
                .filter(|(r, _)| matches!(r, Decision::Refused { .. }))
                .count();
            assert_eq!(refused, 2, "burst + 1 pass, then refusals");
        }
    }
}

#[tokio::test]
async fn keys_are_namespaced_and_expire_when_the_bucket_is_full_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let cfg = rate_config(1, 9, &redis);
    let limiter = connected(&cfg).await;
    let ip: IpAddr = "192.0.2.7".parse().expect("ip");
    for _ in 0..3 {
        assert!(limiter.check(ip, &HeaderMap::new()).await.is_allowed());
    }
    let client = redis::Client::open(redis.url()).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "one bucket");
    let key = &keys[0];
    assert!(key.starts_with(b"mm-edge:rl:"), "{key:?}");
    assert_eq!(key.len(), "mm-edge:rl:".len() + 24);
    // Three cells taken at 1/s: full again in just under 3 s.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut con)
        .await
        .expect("PTTL");
    assert!((2000..=3000).contains(&pttl), "PTTL {pttl}");
}

#[test]
fn the_redis_url_is_checked_and_check_redacts_its_password() {
    let out = run(
        &[("MM_EDGE_RATE_LIMIT_REDIS", "http://:hunter2@redis:6379")],
        &["check"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("MM_EDGE_RATE_LIMIT_REDIS=http://:<redacted>@redis:6379"),
        "{err}"
    );
    assert!(err.contains("expected redis://"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let out = run(
        &[
            (
                "MM_EDGE_RATE_LIMIT_REDIS",
                "redis://edge:hunter2@redis:6379/0",
            ),
            ("MM_EDGE_RATE_LIMIT_REDIS_PASSWORD", "swordfish"),
            ("MM_EDGE_STATE_DIR", "/tmp"),
        ],
        &["check"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(r#"rate_limit.redis = "redis://edge:<redacted>@redis:6379/0""#),
        "{text}"
    );
    assert!(
        text.contains(r#"rate_limit.redis_password = "<redacted>""#),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !text.contains("swordfish"),
        "{text}"
    );
}
