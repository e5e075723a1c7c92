//! Proxying: HTTP/1.1 and HTTP/2 clients reach Mattermost over HTTP/1.1 with Host unchanged, the
//! forwarding headers set by the edge (client values dropped), hop-by-hop headers removed both
//! ways, and clear 502/504/413 answers.

mod common;

use std::time::{Duration, Instant};

use common::{echoed_once as one, Backend, Edge, PATIENCE};
use serde_json::Value;

async fn headers_seen(
    client: &reqwest::Client,
    url: &str,
    extra: &[(&str, &str)],
) -> (reqwest::Version, Value) {
    let mut req = client.get(url);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let version = resp.version();
    (version, resp.json().await.expect("json"))
}

#[tokio::test]
async fn http1_and_http2_clients_reach_mattermost_over_http1_with_host_unchanged() {
    let backend = Backend::start().await;
    // One worker runs a single-threaded scheduler, more run a multi-threaded one: both must work.
    for workers in ["1", "2"] {
        let edge = Edge::start(&backend, &[("MM_EDGE_WORKERS", workers)]);
        let port = edge.https.expect("tls").port();
        let url = edge.url("/api/v4/headers?page=2");
        for (client, want) in [
            (edge.client_h1(), reqwest::Version::HTTP_11),
            (edge.client(), reqwest::Version::HTTP_2),
        ] {
            let (version, seen) = headers_seen(&client, &url, &[]).await;
            assert_eq!(version, want, "client side protocol");
            assert_eq!(seen["version"], "HTTP/1.1", "upstream side is HTTP/1.1");
            assert_eq!(seen["uri"], "/api/v4/headers?page=2");
            assert_eq!(
                one(&seen, "host"),
                format!("localhost:{port}"),
                "Host from :authority for h2"
            );
            assert_eq!(one(&seen, "x-forwarded-host"), format!("localhost:{port}"));
            assert_eq!(one(&seen, "x-forwarded-proto"), "https");
            assert_eq!(one(&seen, "x-forwarded-for"), "127.0.0.1");
            assert_eq!(one(&seen, "x-real-ip"), "127.0.0.1");
        }
    }
}

#[tokio::test]
async fn spoofed_forwarding_headers_are_replaced_by_the_peer_address() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let (_, seen) = headers_seen(
        &edge.client_h1(),
        &edge.url("/api/v4/headers"),
        &[
            ("X-Forwarded-For", "6.6.6.6, 7.7.7.7"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "evil.example"),
        ],
    )
    .await;
    assert_eq!(one(&seen, "x-forwarded-for"), "127.0.0.1");
    assert_eq!(one(&seen, "x-real-ip"), "127.0.0.1");
    assert_eq!(one(&seen, "x-forwarded-proto"), "https");
    assert_ne!(one(&seen, "x-forwarded-host"), "evil.example");
}

#[tokio::test]
async fn plain_http_mode_proxies_on_the_http_listener_and_says_http() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MATTERMOST_HTTPS", "false")]);
    assert!(edge.https.is_none(), "no TLS listener in plain-HTTP mode");
    let (_, seen) = headers_seen(&edge.client(), &edge.http_url("/api/v4/headers"), &[]).await;
    assert_eq!(one(&seen, "x-forwarded-proto"), "http");
}

#[tokio::test]
async fn tls_off_behind_a_load_balancer_still_tells_mattermost_https() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_TLS", "off")]);
    assert!(edge.https.is_none());
    let (_, seen) = headers_seen(&edge.client(), &edge.http_url("/api/v4/headers"), &[]).await;
    assert_eq!(one(&seen, "x-forwarded-proto"), "https");
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let hop: &[(&str, &str)] = &[
        ("Connection", "keep-alive, X-Hop-Req"),
        ("X-Hop-Req", "secret"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers, deflate"),
        // An upgrade to something other than WebSocket, on a plain request.
        ("Upgrade", "h2c"),
        ("X-End-To-End", "kept"),
    ];
    // The control: sent straight to the fake Mattermost, every one of them arrives.
    let (_, direct) = headers_seen(
        &edge.client_h1(),
        &format!("{}/api/v4/headers", backend.url()),
        hop,
    )
    .await;
    let d = direct["headers"].as_object().expect("headers");
    let hop_names = [
        "x-hop-req",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "upgrade",
    ];
    for sent in hop_names {
        assert!(d.contains_key(sent), "{sent} was not sent: {direct}");
    }
    let (_, seen) = headers_seen(&edge.client_h1(), &edge.url("/api/v4/headers"), hop).await;
    let h = seen["headers"].as_object().expect("headers");
    for gone in hop_names {
        assert!(!h.contains_key(gone), "{gone} reached Mattermost: {seen}");
    }
    assert_eq!(one(&seen, "x-end-to-end"), "kept");

    let resp = edge
        .client_h1()
        .get(edge.url("/api/v4/hop"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("x-hop-resp").is_none(),
        "header named in Connection removed"
    );
    for gone in ["keep-alive", "proxy-authenticate", "upgrade"] {
        assert!(
            resp.headers().get(gone).is_none(),
            "{gone} reached the client: {:?}",
            resp.headers()
        );
    }
    assert_eq!(resp.headers()["x-end-to-end"], "1");
}

/// The answer says Mattermost is unreachable without its address; the log line names it.
fn told_unreachable(edge: &Edge, body: &str, upstream: &str) {
    assert!(body.contains("unreachable"), "{body}");
    let addr = upstream.trim_start_matches("http://");
    assert!(
        !body.contains(addr),
        "the public answer names {addr}: {body}"
    );
    edge.wait_for_log("upstream request failed");
    let log = edge.log();
    let line = log
        .lines()
        .find(|l| l.contains("upstream request failed"))
        .unwrap_or_default();
    assert!(line.contains(upstream), "{log}");
}

#[tokio::test]
async fn unreachable_upstream_is_502_at_once_naming_it_in_the_log_only() {
    let (_guard, addr) = common::refused_addr();
    let upstream = format!("http://{addr}");
    // A connect timeout far beyond the test's patience: "at once" means a refused connection is
    // answered without waiting for it (or retrying until it is over).
    let edge = Edge::builder(&upstream)
        .env("MM_EDGE_UPSTREAM_CONNECT_TIMEOUT", "1h")
        .spawn();
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        edge.get(&edge.url("/api/v4/system/ping")),
    )
    .await
    .expect("the 502 waited for the connect timeout");
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.expect("body");
    told_unreachable(&edge, &body, &upstream);
}

#[tokio::test]
async fn no_response_headers_within_the_timeout_is_504() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_UPSTREAM_TIMEOUT", "1s")]);
    let resp = edge.get(&edge.url("/api/v4/slow")).await;
    assert_eq!(resp.status(), 504);
    assert!(resp
        .text()
        .await
        .expect("body")
        .contains("MM_EDGE_UPSTREAM_TIMEOUT"));
}

#[tokio::test]
async fn body_over_the_limit_is_413_by_length_and_while_streaming() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_MAX_BODY", "1K")]);
    // Declared length over the limit: refused before anything reaches Mattermost.
    let resp = edge
        .client_h1()
        .post(edge.url("/api/v4/files"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 413);
    assert_eq!(backend.requests(), 0);
    // Chunked, no length: cut off when the limit is crossed.
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let resp = edge
        .client_h1()
        .post(edge.url("/api/v4/files"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 413);
    // Within the limit: accepted.
    let resp = edge
        .client()
        .post(edge.url("/api/v4/files"))
        .body(vec![b'z'; 1000])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn several_upstreams_are_used_round_robin() {
    let a = Backend::start().await;
    let b = Backend::start().await;
    let edge = Edge::builder(&format!("{} , {}", a.url(), b.url())).spawn();
    let client = edge.client_h1();
    for _ in 0..4 {
        let resp = client
            .get(edge.url("/api/v4/system/ping"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
    }
    assert_eq!((a.requests(), b.requests()), (2, 2));
}

#[tokio::test]
async fn a_server_that_refuses_connections_is_skipped_for_the_fail_timeout() {
    let live = Backend::start().await;
    let (_guard, dead_addr) = common::refused_addr();
    let dead = format!("http://{dead_addr}");
    let edge = Edge::builder(&format!("{dead} {}", live.url()))
        .env("MM_EDGE_UPSTREAM_FAIL_TIMEOUT", "1h")
        .spawn();
    let client = edge.client_h1();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = client
            .get(edge.url("/api/v4/system/ping"))
            .send()
            .await
            .expect("request");
        statuses.push(resp.status().as_u16());
    }
    // The first turn is the dead server's: that request goes to the live one instead (none of
    // it was sent), and the dead one is skipped from then on.
    assert_eq!(statuses, [200; 6]);
    assert_eq!(live.requests(), 6);
    assert_eq!(
        edge.log().matches("sending it to another server").count(),
        1,
        "{}",
        edge.log()
    );
}

#[tokio::test]
async fn a_skipped_server_is_tried_again_once_the_fail_timeout_is_over() {
    let live = Backend::start().await;
    let (_guard, dead_addr) = common::refused_addr();
    let edge = Edge::builder(&format!("http://{dead_addr} {}", live.url()))
        .env("MM_EDGE_UPSTREAM_FAIL_TIMEOUT", "1s")
        .env("MATTERMOST_ENABLE_RATE_LIMIT", "false")
        .spawn();
    let client = edge.client_h1();
    let url = edge.url("/api/v4/system/ping");
    let failed_at = Instant::now();
    let resp = client.get(&url).send().await.expect("request");
    assert_eq!(
        resp.status(),
        200,
        "the first turn is the dead server's; the live one answers instead"
    );
    edge.wait_for_log("sending it to another server");
    // The server comes back at once, on the address that refused; the edge is not told.
    let revived = Backend::start_on(dead_addr).await;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    while revived.requests() == 0 {
        assert!(
            failed_at.elapsed() < PATIENCE,
            "the revived server never got a request"
        );
        poll.tick().await;
        let resp = client.get(&url).send().await.expect("request");
        assert_eq!(resp.status(), 200, "the live server answers meanwhile");
    }
    // Skipped for the whole fail timeout, then tried again: the edge must not come back early.
    assert!(
        failed_at.elapsed() >= Duration::from_secs(1),
        "the skipped server was tried again after {:?}, within MM_EDGE_UPSTREAM_FAIL_TIMEOUT",
        failed_at.elapsed()
    );
    assert!(
        live.requests() >= 1,
        "the live server took the requests meanwhile"
    );
}

#[tokio::test]
async fn an_upstream_that_accepts_no_connection_is_502_after_the_connect_timeout() {
    // A listener whose accept queue is full: Linux queues backlog + 1 connections and then drops
    // further SYNs (the client retransmits), so the edge's connect hangs until it gives up.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let full = socket.listen(0).expect("listen");
    let addr = full.local_addr().expect("address");
    let _queued = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the one queued connection");
    let upstream = format!("http://{addr}");
    let edge = Edge::builder(&upstream)
        .env("MM_EDGE_UPSTREAM_CONNECT_TIMEOUT", "1s")
        .spawn();
    let started = Instant::now();
    let resp = edge.get(&edge.url("/api/v4/system/ping")).await;
    let waited = started.elapsed();
    assert_eq!(resp.status(), 502, "a connect that times out is a 502");
    let body = resp.text().await.expect("body");
    told_unreachable(&edge, &body, &upstream);
    assert!(
        waited >= Duration::from_secs(1),
        "answered after {waited:?}, before the connect timeout"
    );
    // The log says why, naming the setting.
    edge.wait_for_log("MM_EDGE_UPSTREAM_CONNECT_TIMEOUT");
    drop(full);
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_closed_ones_replaced() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let client = edge.client_h1();
    for _ in 0..20 {
        let resp = client
            .get(edge.url("/api/v4/system/ping"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        resp.bytes().await.expect("body");
    }
    assert_eq!(
        backend.connections(),
        1,
        "sequential requests share one upstream connection"
    );
    // Mattermost closing the connection after a response: the next request gets a new one.
    for _ in 0..5 {
        let resp = client
            .get(edge.url("/api/v4/close"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "closing");
    }
    let resp = client
        .get(edge.url("/api/v4/system/ping"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    // The first closing response still comes on the kept-alive connection; each later request
    // needs a new one: 1 + 4 + 1 (the final ping).
    assert_eq!(
        backend.connections(),
        6,
        "closed connections are replaced, not reused"
    );
}
