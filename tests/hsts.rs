//! `Strict-Transport-Security` (README, "Response filters"): on every HTTPS response whoever
//! answered it, so also on the edge's own answers (health, `400`, `413`, `429`, `501`, `502`,
//! `504`); never on the plain listener (its redirects and health answers), nor on hyper's bare
//! answer to a head it cannot read.
//! `tests/tls.rs` covers a proxied answer and `MM_EDGE_HSTS_MAX_AGE=0`.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::{Backend, Edge, PATIENCE};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The default `MM_EDGE_HSTS_MAX_AGE`.
const HSTS: &str = "max-age=63072000";

/// Sends `raw` bytes over TLS (HTTP/1.1, no ALPN) and returns the status and the head's lines.
async fn raw_tls(edge: &Edge, raw: &[u8]) -> (u16, Vec<String>) {
    match try_raw_tls(edge, raw).await {
        Ok(answer) => answer,
        Err(why) => panic!("{why}"),
    }
}

/// [`raw_tls`], saying why instead of failing: a head over the size limit is refused while
/// the client may still be writing it, and the connection's reset can then cut the write
/// (broken pipe) or the answer off, depending on timing.
async fn try_raw_tls(edge: &Edge, raw: &[u8]) -> Result<(u16, Vec<String>), String> {
    let tcp = tokio::net::TcpStream::connect(edge.https.expect("tls"))
        .await
        .expect("connect");
    let connector = tokio_rustls::TlsConnector::from(edge.rustls_config());
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let written = tls.write_all(raw).await;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer in time");
    let head = String::from_utf8_lossy(&head);
    let lines: Vec<String> = head
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let status = lines
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?} (write: {written:?})"))?;
    Ok((status, lines))
}

/// The `Strict-Transport-Security` values of a raw head.
fn raw_hsts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("strict-transport-security"))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn hsts_of(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("strict-transport-security")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect()
}

#[tokio::test]
async fn the_edges_own_https_answers_carry_hsts_and_the_plain_listener_never_does() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_MAX_BODY", "1K"),
            ("MM_EDGE_UPSTREAM_TIMEOUT", "1s"),
        ],
    );
    let client = edge.client_h1();
    let mut seen = Vec::new();

    let health = client
        .get(edge.url("/.mm-edge/healthz"))
        .send()
        .await
        .expect("health");
    seen.push(("health", health.status(), hsts_of(&health)));
    let too_large = client
        .post(edge.url("/api/v4/files"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("413");
    seen.push((
        "body over MM_EDGE_MAX_BODY",
        too_large.status(),
        hsts_of(&too_large),
    ));
    let slow = client
        .get(edge.url("/api/v4/slow"))
        .send()
        .await
        .expect("504");
    seen.push((
        "no answer within the upstream timeout",
        slow.status(),
        hsts_of(&slow),
    ));
    for (what, status, hsts) in &seen {
        assert_eq!(hsts, &[HSTS], "{what} ({status})");
    }
    let statuses: Vec<StatusCode> = seen.iter().map(|s| s.1).collect();
    assert_eq!(statuses, [200, 413, 504]);

    // Requests the edge refuses before anything else, written by hand.
    for (what, raw, want) in [
        (
            "two Host headers",
            &b"GET /api/v4/system/ping HTTP/1.1\r\nHost: localhost\r\nHost: other\r\n\r\n"[..],
            400,
        ),
        (
            "a target that is not a path",
            &b"GET echo HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
            400,
        ),
        (
            "CONNECT",
            &b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"[..],
            501,
        ),
    ] {
        let (status, head) = raw_tls(&edge, raw).await;
        assert_eq!(status, want, "{what}: {head:?}");
        assert_eq!(raw_hsts(&head), [HSTS], "{what}: {head:?}");
    }

    // README: a head hyper cannot read gets hyper's own bare 400 or 431 before any phase, so
    // none of the filters' headers (kept true by this check).
    let mut big = b"GET /api/v4/system/ping HTTP/1.1\r\nHost: localhost\r\nX-Big: ".to_vec();
    big.extend(vec![b'a'; 200 * 1024]);
    big.extend_from_slice(b"\r\n\r\n");
    for (what, raw, want) in [
        ("a head over 128 KiB", &big[..], 431),
        ("no request line", &b"GARBAGE\r\n\r\n"[..], 400),
    ] {
        // Timing may cut one attempt off (see try_raw_tls); three in a row would be a failure.
        let mut tries = Vec::new();
        let (status, head) = loop {
            match try_raw_tls(&edge, raw).await {
                Ok(answer) => break answer,
                Err(why) if tries.len() < 2 => tries.push(why),
                Err(why) => panic!("{what}: {why}; earlier: {tries:?}"),
            }
        };
        assert_eq!(status, want, "{what}: {head:?}");
        assert!(raw_hsts(&head).is_empty(), "{what}: {head:?}");
    }

    // The plain listener redirects (and answers health) without HSTS: a browser ignores the
    // header over plain HTTP, and the edge does not send it there.
    for path in ["/api/v4/system/ping", "/.mm-edge/healthz"] {
        let resp = client.get(edge.http_url(path)).send().await.expect("plain");
        assert!(
            resp.status() == StatusCode::MOVED_PERMANENTLY || resp.status() == StatusCode::OK,
            "{path}: {}",
            resp.status()
        );
        assert!(hsts_of(&resp).is_empty(), "{path} on the plain listener");
    }
}

#[tokio::test]
async fn rate_limited_and_bad_gateway_answers_carry_hsts() {
    let backend = Backend::start().await;
    let limited = Edge::start(
        &backend,
        &[
            ("MATTERMOST_RATE_LIMIT_QPS", "1"),
            ("MATTERMOST_RATE_LIMIT_BURST", "0"),
        ],
    );
    // A source address of its own: its bucket holds one request, whatever else ran.
    let client = limited
        .client_builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4)))
        .http1_only()
        .build()
        .expect("client");
    let mut refused = None;
    for _ in 0..30 {
        let resp = client
            .get(limited.url("/api/v4/system/ping"))
            .send()
            .await
            .expect("request");
        assert_eq!(hsts_of(&resp), [HSTS], "{}", resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(resp);
            break;
        }
    }
    assert!(refused.is_some(), "never refused: the limiter is off");

    let (_guard, dead) = common::refused_addr();
    let edge = Edge::builder(&format!("http://{dead}")).spawn();
    let resp = edge.get(&edge.url("/api/v4/system/ping")).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(hsts_of(&resp), [HSTS]);
}
