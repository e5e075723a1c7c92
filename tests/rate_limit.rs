//! Rate limiting through the real proxy (issue 3): GCRA buckets keyed by client IP and/or
//! headers, the X-RateLimit-* headers, 429 `limit exceeded` with Retry-After, refused requests
//! never reaching Mattermost, trusted-proxy client IPs, WebSocket upgrades costing a cell, the
//! edge's own endpoints unlimited, and invalid settings exiting 2.
//!
//! Every limited edge here runs at 1 request per second, so no cell comes back within a second.
//! The tests never wait on time: buckets are drained by sending until the first 429 (bounded by
//! [`MAX_TRIES`]), which holds whatever the machine's speed. Exact counts and header sequences are
//! checked against the elapsed time: when the whole sequence took under a second (the normal
//! case) they must be exact; on a stalled machine the output says so ("slow run: ...") and the
//! bounds that hold at any speed are still checked (at least burst + 1 passes, at most one
//! extra per elapsed second, every refusal a proper one).

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::Edge;
use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode, Version};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::Connector;

/// A limited API path the fake Mattermost answers.
const PING: &str = "/api/v4/system/ping";
/// The fake's header echo.
const ECHO: &str = "/api/v4/headers";
/// The edge's own health endpoint.
const HEALTHZ: &str = "/.mm-edge/healthz";
/// Most requests sent to drain one bucket before the test gives up (no 429 = not limited).
const MAX_TRIES: usize = 30;

// ---------------------------------------------------------------------------------------------
// helpers

/// The X-RateLimit-* values of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rate {
    limit: u64,
    remaining: u64,
    reset: u64,
}

fn num(headers: &HeaderMap, name: &str) -> u64 {
    let value = headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing in {headers:?}"));
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not a number: {value:?}"))
}

fn rate(headers: &HeaderMap) -> Rate {
    Rate {
        limit: num(headers, "x-ratelimit-limit"),
        remaining: num(headers, "x-ratelimit-remaining"),
        reset: num(headers, "x-ratelimit-reset"),
    }
}

fn assert_no_rate_headers(headers: &HeaderMap, what: &str) {
    for name in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "retry-after",
    ] {
        assert!(
            !headers.contains_key(name),
            "{what}: unexpected {name} in {headers:?}"
        );
    }
}

/// Environment of a limited edge: 1 request per second, `burst` = MATTERMOST_RATE_LIMIT_BURST.
fn limited<'a>(burst: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("MATTERMOST_ENABLE_RATE_LIMIT", "true"),
        ("MATTERMOST_RATE_LIMIT_QPS", "1"),
        ("MATTERMOST_RATE_LIMIT_BURST", burst),
    ];
    env.extend_from_slice(extra);
    env
}

/// A client whose connections come from `ip` (127.0.0.0/8).
fn client_from(edge: &Edge, ip: [u8; 4]) -> Client {
    edge.client_builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()
        .expect("client")
}

/// Extra passes a 1/s bucket may have granted during `elapsed`: one per whole second, with a
/// margin for the edge's clock not being ours.
fn refills(elapsed: Duration) -> u64 {
    (elapsed + Duration::from_millis(100)).as_secs()
}

/// Says in the test's output that the run was too slow for the exact sequence: cells came back
/// meanwhile, so only the bounds that hold at any speed were checked.
fn slow_run(what: &str, elapsed: Duration) {
    eprintln!(
        "slow run: {what} took {elapsed:?} (a cell comes back every second): exact sequence not \
         checked, only its bounds"
    );
}

/// The response to a request sent right after a sequence (begun at `start`) emptied a bucket of
/// `burst` in which `passes` requests passed: a proper refusal unless a cell came back meanwhile;
/// whatever the speed, at least `burst + 1` and at most `burst + 1` plus one per elapsed second
/// passed in all. Returns the passes including this request's.
async fn after_the_drain(
    resp: reqwest::Response,
    start: Instant,
    burst: u64,
    passes: usize,
) -> usize {
    let extra = refills(start.elapsed());
    let status = resp.status();
    let passes = match status {
        StatusCode::OK => passes + 1,
        _ => {
            Refused::read(resp).await.check(burst);
            passes
        }
    };
    if extra == 0 {
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "the bucket is still empty"
        );
    } else {
        slow_run("the drain and the request after it", start.elapsed());
    }
    let passes_u64 = passes as u64;
    assert!(
        passes_u64 > burst && passes_u64 <= burst + 1 + extra,
        "{passes} passed in all, burst {burst} (+{extra} refilled)"
    );
    passes
}

/// A 429 as read by the client.
#[derive(Debug)]
struct Refused {
    version: Version,
    headers: HeaderMap,
    body: String,
}

impl Refused {
    async fn read(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let version = resp.version();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("429 body");
        Self {
            version,
            headers,
            body,
        }
    }

    /// The refusal is Mattermost's: body, Retry-After, X-RateLimit-* of an empty 1/s bucket.
    fn check(&self, burst: u64) {
        assert_eq!(self.body.trim_end(), "limit exceeded", "429 body");
        // The next cell comes back within T = 1s: rounded up, at least 1.
        assert_eq!(num(&self.headers, "retry-after"), 1, "{:?}", self.headers);
        let r = rate(&self.headers);
        assert_eq!(r.limit, burst + 1, "X-RateLimit-Limit is max_burst + 1");
        assert_eq!(r.remaining, 0, "X-RateLimit-Remaining of a refusal");
        // Full again `wait + burst * T` from now, with 0 < wait <= T.
        assert!(
            (burst..=burst + 1).contains(&r.reset),
            "X-RateLimit-Reset {} for burst {burst}",
            r.reset
        );
    }
}

/// What draining one bucket produced.
#[derive(Debug)]
struct Drained {
    /// Rate headers of the allowed responses, in order.
    passed: Vec<Rate>,
    /// The first refusal.
    refused: Refused,
    /// From the start of the sequence (`start` given to [`drain`]) to the refusal.
    elapsed: Duration,
}

/// Sends `request(i)` for i = 0, 1, ... until the first 429 and returns what happened.
async fn drain(start: Instant, mut request: impl FnMut(usize) -> RequestBuilder) -> Drained {
    let mut passed = Vec::new();
    for i in 0..MAX_TRIES {
        let resp = request(i).send().await.expect("request through the edge");
        match resp.status() {
            StatusCode::OK => passed.push(rate(resp.headers())),
            StatusCode::TOO_MANY_REQUESTS => {
                return Drained {
                    passed,
                    refused: Refused::read(resp).await,
                    elapsed: start.elapsed(),
                }
            }
            other => panic!("request {i}: unexpected {other}"),
        }
    }
    panic!("{MAX_TRIES} requests and none refused: the bucket is not limited")
}

impl Drained {
    /// Checks a drain of a 1/s bucket of `burst` that had `used` cells taken before `start`'s
    /// sequence reached it: `burst + 1 - used` passes (more only if a second went by), each with
    /// consistent headers, then a proper refusal.
    fn check(&self, burst: u64, used: u64) {
        let extra = refills(self.elapsed);
        let passes = self.passed.len() as u64;
        let want = burst + 1 - used;
        assert!(
            passes >= want && passes <= want + extra,
            "{passes} passed, expected {want} (+{extra} refilled in {:?}): {:?}",
            self.elapsed,
            self.passed
        );
        for (i, r) in self.passed.iter().enumerate() {
            assert_eq!(r.limit, burst + 1, "X-RateLimit-Limit of pass {i}");
            assert!(r.remaining <= burst, "pass {i}: {r:?}");
            // At 1/s, the bucket is full again one second per missing cell.
            assert_eq!(r.reset, r.limit - r.remaining, "pass {i}: {r:?}");
        }
        if extra == 0 {
            let remaining: Vec<u64> = self.passed.iter().map(|r| r.remaining).collect();
            let expected: Vec<u64> = (0..want).rev().collect();
            assert_eq!(remaining, expected, "X-RateLimit-Remaining sequence");
        } else {
            slow_run("draining the bucket", self.elapsed);
        }
        self.refused.check(burst);
    }
}

/// The forwarding headers the fake Mattermost received for one request through the edge.
async fn forwarded(req: RequestBuilder) -> (Rate, Vec<String>, Vec<String>) {
    let resp = req.send().await.expect("request through the edge");
    assert_eq!(resp.status(), StatusCode::OK);
    let r = rate(resp.headers());
    let echo: serde_json::Value = resp.json().await.expect("json echo");
    let values = |name: &str| -> Vec<String> {
        echo["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    (r, values("x-forwarded-for"), values("x-real-ip"))
}

/// Asserts Mattermost was told `ip` is the client, and nothing else.
fn assert_client_ip(seen: &(Rate, Vec<String>, Vec<String>), ip: &str) {
    assert_eq!(seen.1, [ip], "X-Forwarded-For upstream");
    assert_eq!(seen.2, [ip], "X-Real-IP upstream");
}

/// Opens a wss connection through the edge: Ok(101 headers) with the first message read, or
/// Err(the refusal).
async fn websocket(edge: &Edge) -> Result<HeaderMap, (StatusCode, HeaderMap, String)> {
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        edge.wss_url("/api/v4/websocket"),
        None,
        false,
        Some(Connector::Rustls(edge.rustls_config())),
    );
    match tokio::time::timeout(common::PATIENCE, connect)
        .await
        .expect("handshake in time")
    {
        Ok((mut ws, resp)) => {
            assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
            let hello = tokio::time::timeout(common::PATIENCE, ws.next())
                .await
                .expect("hello in time");
            assert!(
                matches!(hello, Some(Ok(Message::Text(_)))),
                "hello from Mattermost through the tunnel: {hello:?}"
            );
            Ok(resp.headers().clone())
        }
        Err(tungstenite::Error::Http(resp)) => {
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default());
            Err((resp.status(), resp.headers().clone(), body.into_owned()))
        }
        Err(e) => panic!("websocket through the edge: {e}"),
    }
}

/// The edge's own endpoints and the plain listener's redirect answer without limits.
async fn assert_unlimited(edge: &Edge, client: &Client) {
    for i in 0..5 {
        for url in [edge.url(HEALTHZ), edge.http_url(HEALTHZ)] {
            let resp = client.get(&url).send().await.expect("health");
            assert_eq!(resp.status(), StatusCode::OK, "{url} #{i}");
            assert_no_rate_headers(resp.headers(), &url);
        }
        let url = edge.http_url(PING);
        let resp = client.get(&url).send().await.expect("redirect");
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY, "{url} #{i}");
        assert_no_rate_headers(resp.headers(), &url);
    }
}

// ---------------------------------------------------------------------------------------------
// tests

/// burst + 1 requests pass with X-RateLimit-* counting down; the next gets 429 `limit exceeded`
/// with Retry-After and never reaches Mattermost.
#[tokio::test]
async fn burst_plus_one_pass_then_429_which_never_reaches_mattermost() {
    let edge = common::start_edge(&limited("4", &[])).await;
    let client = edge.client_h1();
    let start = Instant::now();
    let drained = drain(start, |_| client.get(edge.url(PING))).await;
    drained.check(4, 0);
    assert_eq!(drained.passed[0].remaining, 4, "a fresh bucket");
    assert_eq!(drained.refused.version, Version::HTTP_11);
    assert_eq!(
        edge.backend.requests(),
        drained.passed.len(),
        "only the allowed requests reached Mattermost"
    );
}

/// HTTP/2 requests are limited like HTTP/1.1 ones, also when multiplexed concurrently: exactly
/// burst + 1 of a simultaneous batch pass, the rest get 429, and only the passes reach Mattermost.
#[tokio::test]
async fn http2_requests_are_limited_the_same_way() {
    let edge = common::start_edge(&limited("4", &[])).await;
    let client = edge.client();
    let start = Instant::now();
    let batch = 12;
    let responses =
        futures_util::future::join_all((0..batch).map(|_| client.get(edge.url(PING)).send())).await;
    let mut passed = Vec::new();
    let mut refused = Vec::new();
    for resp in responses {
        let resp = resp.expect("request through the edge");
        assert_eq!(resp.version(), Version::HTTP_2);
        match resp.status() {
            StatusCode::OK => passed.push(rate(resp.headers())),
            StatusCode::TOO_MANY_REQUESTS => refused.push(Refused::read(resp).await),
            other => panic!("unexpected {other}"),
        }
    }
    let extra = refills(start.elapsed()) as usize;
    assert!(
        passed.len() >= 5 && passed.len() <= 5 + extra,
        "{} of {batch} passed (burst 4, +{extra} refilled): {passed:?}",
        passed.len()
    );
    assert_eq!(passed.len() + refused.len(), batch);
    for r in &passed {
        assert_eq!((r.limit, r.reset), (5, 5 - r.remaining), "{r:?}");
    }
    if extra == 0 {
        let mut remaining: Vec<u64> = passed.iter().map(|r| r.remaining).collect();
        remaining.sort_unstable();
        assert_eq!(remaining, [0, 1, 2, 3, 4], "each pass took its own cell");
    } else {
        slow_run("the concurrent batch", start.elapsed());
    }
    for r in &refused {
        assert_eq!(r.version, Version::HTTP_2);
        r.check(4);
    }
    assert_eq!(edge.backend.requests(), passed.len());

    // And one at a time on the same (now empty) bucket: refused over HTTP/2 as well, unless a
    // cell came back meanwhile.
    let resp = client.get(edge.url(PING)).send().await.expect("request");
    assert_eq!(resp.version(), Version::HTTP_2);
    let passes = after_the_drain(resp, start, 4, passed.len()).await;
    assert_eq!(edge.backend.requests(), passes);
}

/// Two source addresses have separate buckets: draining 127.0.0.2's leaves 127.0.0.3's full,
/// and Mattermost is told each one's own address.
#[tokio::test]
async fn each_source_address_has_its_own_bucket() {
    let edge = common::start_edge(&limited("2", &[])).await;
    let a = client_from(&edge, [127, 0, 0, 2]);
    let b = client_from(&edge, [127, 0, 0, 3]);

    let start = Instant::now();
    let seen = forwarded(a.get(edge.url(ECHO))).await;
    assert_client_ip(&seen, "127.0.0.2");
    assert_eq!(seen.0.remaining, 2, "a fresh bucket for 127.0.0.2");
    drain(start, |_| a.get(edge.url(PING))).await.check(2, 1);

    let start = Instant::now();
    let seen = forwarded(b.get(edge.url(ECHO))).await;
    assert_client_ip(&seen, "127.0.0.3");
    assert_eq!(
        seen.0.remaining, 2,
        "127.0.0.3 is not charged for 127.0.0.2"
    );
    drain(start, |_| b.get(edge.url(PING))).await.check(2, 1);
}

/// Without trusted proxies, X-Forwarded-For / X-Real-IP sent by the client are ignored: a new
/// spoofed address on every request still drains the peer's single bucket, and Mattermost sees
/// the TCP peer.
#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_gets_no_bucket() {
    let edge = common::start_edge(&limited("4", &[])).await;
    let client = edge.client_h1();
    let start = Instant::now();
    let seen = forwarded(
        client
            .get(edge.url(ECHO))
            .header("x-forwarded-for", "203.0.113.1")
            .header("x-real-ip", "203.0.113.1"),
    )
    .await;
    assert_client_ip(&seen, "127.0.0.1");
    assert_eq!(seen.0.remaining, 4);
    let drained = drain(start, |i| {
        let spoof = format!("203.0.113.{}", i + 2);
        client
            .get(edge.url(PING))
            .header("x-forwarded-for", format!("198.51.100.{}, {spoof}", i + 2))
            .header("x-real-ip", spoof)
    })
    .await;
    drained.check(4, 1);
    assert_eq!(edge.backend.requests(), drained.passed.len() + 1);
}

/// From a trusted proxy (MM_EDGE_TRUSTED_PROXIES=127.0.0.1/32) the rightmost untrusted
/// X-Forwarded-For entry is the client: it gets its own bucket (whatever is spoofed left of it),
/// X-Real-IP is the fallback, and Mattermost is told that address. A peer outside the trusted
/// list (127.0.0.2) is still not believed.
#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_gets_its_own_bucket() {
    let edge = common::start_edge(&limited(
        "2",
        &[("MM_EDGE_TRUSTED_PROXIES", "127.0.0.1/32")],
    ))
    .await;
    let lb = edge.client_h1();

    // The proxy's own requests (no header): its own bucket, drained.
    drain(Instant::now(), |_| lb.get(edge.url(PING)))
        .await
        .check(2, 0);

    // A client behind it: a fresh bucket, and Mattermost sees that client.
    let start = Instant::now();
    let seen = forwarded(
        lb.get(edge.url(ECHO))
            .header("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
    )
    .await;
    assert_client_ip(&seen, "203.0.113.7");
    assert_eq!(seen.0.remaining, 2, "203.0.113.7 has a bucket of its own");
    // Whatever that client puts in front, it is the same client.
    drain(start, |i| {
        lb.get(edge.url(PING))
            .header("x-forwarded-for", format!("6.6.6.{i}, 203.0.113.7"))
    })
    .await
    .check(2, 1);

    // X-Real-IP when there is no X-Forwarded-For.
    let seen = forwarded(lb.get(edge.url(ECHO)).header("x-real-ip", "203.0.113.8")).await;
    assert_client_ip(&seen, "203.0.113.8");
    assert_eq!(seen.0.remaining, 2, "203.0.113.8 has a bucket of its own");

    // An untrusted peer's header is ignored, even with a trusted list configured.
    let other = client_from(&edge, [127, 0, 0, 2]);
    let seen = forwarded(
        other
            .get(edge.url(ECHO))
            .header("x-forwarded-for", "203.0.113.9")
            .header("x-real-ip", "203.0.113.9"),
    )
    .await;
    assert_client_ip(&seen, "127.0.0.2");
    assert_eq!(seen.0.remaining, 2, "127.0.0.2's own bucket");
}

/// With a trusted network (127.0.0.0/8), trusted hops in X-Forwarded-For are skipped and the key
/// is the client, not the proxy: requests for one client through different proxies share its
/// bucket.
#[tokio::test]
async fn trusted_hops_are_skipped_and_the_client_is_the_key() {
    let edge =
        common::start_edge(&limited("3", &[("MM_EDGE_TRUSTED_PROXIES", "127.0.0.0/8")])).await;
    let proxies = [
        client_from(&edge, [127, 0, 0, 2]),
        client_from(&edge, [127, 0, 0, 3]),
    ];
    let start = Instant::now();
    let seen = forwarded(
        proxies[0]
            .get(edge.url(ECHO))
            .header("x-forwarded-for", "6.6.6.6, 203.0.113.7, 127.0.0.9"),
    )
    .await;
    assert_client_ip(&seen, "203.0.113.7");
    assert_eq!(seen.0.remaining, 3);
    drain(start, |i| {
        proxies[i % 2].get(edge.url(PING)).header(
            "x-forwarded-for",
            format!("203.0.113.7, 127.0.0.{}", 10 + i),
        )
    })
    .await
    .check(3, 1);
}

/// MATTERMOST_RATE_LIMIT_BY_IP=false with MATTERMOST_RATE_LIMIT_HEADERS=X-Token: the key is the
/// lower-cased X-Token value alone. Case variants from different addresses share one bucket;
/// another value has its own; a missing header and an empty one are the same (empty) key.
#[tokio::test]
async fn header_keyed_limiting_without_the_ip() {
    let edge = common::start_edge(&limited(
        "2",
        &[
            ("MATTERMOST_RATE_LIMIT_BY_IP", "false"),
            ("MATTERMOST_RATE_LIMIT_HEADERS", "X-Token"),
        ],
    ))
    .await;
    let peers = [
        client_from(&edge, [127, 0, 0, 2]),
        client_from(&edge, [127, 0, 0, 3]),
    ];
    let cases = ["alice", "ALICE", "Alice", "aLiCe"];
    let drained = drain(Instant::now(), |i| {
        peers[i % 2]
            .get(edge.url(PING))
            .header("x-token", cases[i % cases.len()])
    })
    .await;
    drained.check(2, 0);

    let start = Instant::now();
    let resp = peers[0]
        .get(edge.url(PING))
        .header("x-token", "bob")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(rate(resp.headers()).remaining, 2, "bob has his own bucket");
    let bob = drain(start, |i| {
        peers[i % 2].get(edge.url(PING)).header("x-token", "BOB")
    })
    .await;
    bob.check(2, 1);

    // No header and an empty header: one bucket, whichever address.
    let empty = drain(Instant::now(), |i| {
        let req = peers[i % 2].get(edge.url(PING));
        if i % 3 == 1 {
            req.header("x-token", "")
        } else {
            req
        }
    })
    .await;
    empty.check(2, 0);
    assert_eq!(
        edge.backend.requests(),
        drained.passed.len() + 1 + bob.passed.len() + empty.passed.len()
    );
}

/// MATTERMOST_ENABLE_RATE_LIMIT=false: no X-RateLimit headers and never a 429, even at a rate a
/// 1/s bucket without burst would refuse.
#[tokio::test]
async fn disabled_limiter_sends_no_headers_and_never_refuses() {
    let edge = common::start_edge(&[
        ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
        ("MATTERMOST_RATE_LIMIT_QPS", "1"),
        ("MATTERMOST_RATE_LIMIT_BURST", "0"),
    ])
    .await;
    for client in [edge.client_h1(), edge.client()] {
        for i in 0..15 {
            let resp = client.get(edge.url(PING)).send().await.expect("request");
            assert_eq!(resp.status(), StatusCode::OK, "request {i}");
            assert_no_rate_headers(resp.headers(), "disabled limiter");
        }
    }
    let ws = websocket(&edge.edge).await.expect("upgrade allowed");
    assert_no_rate_headers(&ws, "disabled limiter, 101");
    assert_eq!(edge.backend.requests(), 31);
}

/// A WebSocket upgrade costs a cell: the 101 carries the X-RateLimit headers of a taken cell,
/// upgrades alone drain the bucket, and the upgrade that finds it empty is refused with 429
/// without reaching Mattermost.
#[tokio::test]
async fn websocket_upgrade_consumes_a_cell() {
    let edge = common::start_edge(&limited("1", &[])).await;
    let start = Instant::now();
    let mut passed = Vec::new();
    let refusal = loop {
        assert!(passed.len() < MAX_TRIES, "upgrades are not limited");
        match websocket(&edge.edge).await {
            Ok(headers) => passed.push(rate(&headers)),
            Err(refusal) => break refusal,
        }
    };
    let (status, headers, body) = refusal;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let extra = refills(start.elapsed()) as usize;
    assert!(
        passed.len() >= 2 && passed.len() <= 2 + extra,
        "{passed:?} (+{extra})"
    );
    assert_eq!(
        passed[0],
        Rate {
            limit: 2,
            remaining: 1,
            reset: 1
        },
        "the first upgrade took one cell of a fresh bucket"
    );
    Refused {
        version: Version::HTTP_11,
        headers,
        body,
    }
    .check(1);
    assert_eq!(edge.backend.requests(), passed.len());

    // An HTTP request right after is refused too: the upgrades emptied the bucket it uses.
    let resp = edge
        .client_h1()
        .get(edge.url(PING))
        .send()
        .await
        .expect("request");
    let passes = after_the_drain(resp, start, 1, passed.len()).await;
    assert_eq!(edge.backend.requests(), passes);
}

/// The edge's health endpoint (on both listeners) and the plain listener's redirects are never
/// limited: they take no cell, carry no X-RateLimit headers, and keep answering when the same
/// client's bucket is empty.
#[tokio::test]
async fn health_endpoint_and_redirect_listener_are_not_limited() {
    let edge = common::start_edge(&limited("1", &[])).await;
    let client = edge.client_h1();
    assert_unlimited(&edge, &client).await;
    // All of that took nothing from 127.0.0.1's bucket.
    let drained = drain(Instant::now(), |_| client.get(edge.url(PING))).await;
    drained.check(1, 0);
    assert_eq!(drained.passed[0].remaining, 1, "a fresh bucket");
    // With the bucket empty they still answer.
    assert_unlimited(&edge, &client).await;
    assert_eq!(edge.backend.requests(), drained.passed.len());
}

/// Invalid rate-limit and trusted-proxy settings make `mm-edge check` exit 2 naming the variable;
/// valid ones pass.
#[test]
fn invalid_values_exit_2_naming_the_variable() {
    let ok = common::run(
        &[
            ("MATTERMOST_RATE_LIMIT_QPS", "1"),
            ("MATTERMOST_RATE_LIMIT_BURST", "0"),
            ("MATTERMOST_RATE_LIMIT_SESSIONS", "1"),
            ("MATTERMOST_RATE_LIMIT_BY_IP", "false"),
            ("MATTERMOST_RATE_LIMIT_HEADERS", "X-Token Authorization"),
            (
                "MM_EDGE_TRUSTED_PROXIES",
                "127.0.0.1/32, 10.0.0.0/8 fd00::/8",
            ),
        ],
        &["check"],
    );
    assert!(
        ok.status.success(),
        "valid settings rejected: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let cases = [
        ("MATTERMOST_RATE_LIMIT_QPS", "0"),
        ("MATTERMOST_RATE_LIMIT_QPS", "-1"),
        ("MATTERMOST_RATE_LIMIT_QPS", "ten"),
        ("MATTERMOST_RATE_LIMIT_BURST", "-1"),
        ("MATTERMOST_RATE_LIMIT_SESSIONS", "0"),
        ("MATTERMOST_RATE_LIMIT_HEADERS", "Bad Header:x"),
        ("MATTERMOST_ENABLE_RATE_LIMIT", "perhaps"),
        ("MATTERMOST_RATE_LIMIT_BY_IP", "perhaps"),
        ("MM_EDGE_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("MM_EDGE_TRUSTED_PROXIES", "127.0.0.1 lb.example.com"),
    ];
    for (name, value) in cases {
        let out = common::run(&[(name, value)], &["check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value:?}: {stderr}");
        assert!(
            stderr.contains(name),
            "{name}={value:?} not named: {stderr}"
        );
    }
}
