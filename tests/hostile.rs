//! Hostile clients: every resource a client can hold has a bound the edge enforces. Each test
//! reproduces an attack against the real binary and checks that the edge lets go.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{tls_connect as tls, Backend, Edge, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP/2 connection to the edge (over TLS), driven in the background.
async fn h2_client(edge: &Edge, builder: &h2::client::Builder) -> h2::client::SendRequest<Bytes> {
    let io = tls(edge, &[b"h2"]).await;
    let (send, conn) = builder.handshake(io).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn h2_get(edge: &Edge, path: &str) -> http::Request<()> {
    http::Request::builder()
        .uri(format!(
            "https://localhost:{}{path}",
            edge.https.expect("tls").port()
        ))
        .body(())
        .expect("request")
}

/// The status of a GET `path` sent on the HTTP/2 connection of `send`.
async fn h2_status(send: h2::client::SendRequest<Bytes>, edge: &Edge, path: &str) -> u16 {
    let (resp, _) = send
        .ready()
        .await
        .expect("connection ready")
        .send_request(h2_get(edge, path), true)
        .expect("send");
    resp.await.expect("response").status().as_u16()
}

/// Reads until the peer closes or fails; returns the bytes read.
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n as u64,
            Err(_) => panic!("the edge never closed the connection ({total} bytes read)"),
        }
    }
}

type Held = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// Sends `n` HTTP/1.1 requests to /api/v4/hold and waits until Mattermost holds them all.
async fn hold(edge: &Edge, backend: &Backend, n: usize) -> Vec<Held> {
    let held = (0..n)
        .map(|_| {
            let client = edge.client_h1();
            let url = edge.url("/api/v4/hold");
            tokio::spawn(async move { client.get(url).send().await })
        })
        .collect();
    backend
        .wait_until("the held requests", |b| b.held_now() == n)
        .await;
    held
}

const BIG: u64 = 256 * 1024 * 1024;

#[tokio::test]
async fn an_http1_client_that_stops_reading_is_cut_off_and_its_upstream_released() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_SEND_TIMEOUT", "1s")]);
    let mut conn = tls(&edge, &[b"http/1.1"]).await;
    let req = format!("GET /api/v4/download?size={BIG} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("request");
    // The download is under way on an upstream connection, and the client reads nothing.
    backend
        .wait_until("the download's connection", |b| b.connections() == 1)
        .await;
    backend
        .wait_until("the upstream connection released", |b| b.closed() == 1)
        .await;
    let got = read_to_close(&mut conn).await;
    assert!(got < BIG, "the whole body arrived: the edge never gave up");
    // The edge is fine for everyone else.
    let resp = edge.get(&edge.url("/api/v4/system/ping")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_http2_stream_whose_window_never_opens_is_reset_and_the_connection_kept() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_SEND_TIMEOUT", "1s")]);
    // A small stream window that the client never opens again (it releases no capacity), while
    // the h2 library keeps answering the edge's PINGs.
    let mut builder = h2::client::Builder::new();
    builder.initial_window_size(16 * 1024);
    let mut send = h2_client(&edge, &builder).await;
    let (resp, _) = send
        .send_request(h2_get(&edge, &format!("/api/v4/download?size={BIG}")), true)
        .expect("send");
    let resp = resp.await.expect("response head");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body.data().await.expect("first data").expect("data");
    assert!(!first.is_empty());
    // Without releasing capacity: the edge must reset this stream.
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match body.data().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Some(e),
                None => return None,
            }
        }
    })
    .await
    .expect("the stalled stream was never reset");
    let reset = ended.expect("the stream ended without a reset: the whole body was sent");
    assert!(reset.is_reset(), "ended with a reset: {reset}");
    backend
        .wait_until("the stalled stream's upstream connection released", |b| {
            b.closed() >= 1
        })
        .await;
    // The same connection still serves other streams.
    let mut send = send.ready().await.expect("connection still usable");
    let (resp, _) = send
        .send_request(h2_get(&edge, "/api/v4/system/ping"), true)
        .expect("send");
    assert_eq!(
        resp.await.expect("ping on the same connection").status(),
        200
    );
}

#[tokio::test]
async fn connections_to_mattermost_are_bounded_and_the_rest_get_503() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_UPSTREAM_MAX_CONNECTIONS", "2"),
            ("MM_EDGE_UPSTREAM_CONNECT_TIMEOUT", "1s"),
        ],
    );
    let held = hold(&edge, &backend, 2).await;
    let resp = edge.get(&edge.url("/api/v4/system/ping")).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    assert!(resp
        .text()
        .await
        .expect("body")
        .contains("MM_EDGE_UPSTREAM_MAX_CONNECTIONS"));
    assert_eq!(backend.connections(), 2, "never more than the limit");
    backend.release();
    for h in held {
        let resp = h.await.expect("task").expect("held request");
        assert_eq!(resp.status(), 200);
    }
    let resp = edge.get(&edge.url("/api/v4/system/ping")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn idle_mattermost_connections_close_after_the_idle_timeout_without_further_requests() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_UPSTREAM_IDLE_TIMEOUT", "1s")]);
    // A burst: three requests at once need three Mattermost connections.
    let held = hold(&edge, &backend, 3).await;
    let released = Instant::now();
    backend.release();
    for h in held {
        assert_eq!(h.await.expect("task").expect("held request").status(), 200);
    }
    assert_eq!(backend.connections(), 3);
    // No request follows; the pooled connections still close (the backend sees them end).
    backend
        .wait_until("the idle pooled connections closed", |b| b.open() == 0)
        .await;
    assert_eq!(backend.closed(), 3);
    // Not before the idle timeout: they were busy until released.
    assert!(
        released.elapsed() >= Duration::from_secs(1),
        "closed {:?} after the release, within MM_EDGE_UPSTREAM_IDLE_TIMEOUT",
        released.elapsed()
    );
}

#[tokio::test]
async fn one_http2_connection_holds_no_more_upstream_connections_than_its_streams() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MATTERMOST_ENABLE_RATE_LIMIT", "false")]);
    let send = h2_client(&edge, &h2::client::Builder::new()).await;
    // One round trip first, so the client has the edge's SETTINGS (its stream limit).
    assert_eq!(
        h2_status(send.clone(), &edge, "/api/v4/system/ping").await,
        200
    );
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let send = send.clone();
        let req = h2_get(&edge, "/api/v4/hold");
        tasks.push(tokio::spawn(async move {
            let mut send = send.ready().await.expect("ready");
            let (resp, _) = send.send_request(req, true).expect("send");
            resp.await.expect("response").status()
        }));
    }
    backend
        .wait_until("256 streams held upstream", |b| b.held_now() == 256)
        .await;
    backend.release();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    assert_eq!(
        backend.held_max(),
        256,
        "the edge's concurrent-stream limit"
    );
}

/// A server that answers each request with `200 ok` and then closes the connection without
/// saying so (no `Connection: close`), the way a restarting or overloaded backend does.
/// Returns its URL and the number of requests it received.
async fn closing_backend() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Closed here: the edge may already have pooled this connection.
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_pooled_connection_closed_by_mattermost_is_retried_once_for_idempotent_requests() {
    use std::sync::atomic::Ordering;
    let (url, seen) = closing_backend().await;
    let edge = Edge::builder(&url)
        .env("MATTERMOST_ENABLE_RATE_LIMIT", "false")
        .spawn();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = edge.client_h1();
        let url = edge.url("/api/v4/users/me");
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..50 {
                let resp = client.get(&url).send().await.expect("request");
                statuses.push(resp.status().as_u16());
                resp.bytes().await.expect("body");
            }
            statuses
        }));
    }
    for t in tasks {
        let statuses = t.await.expect("task");
        assert!(
            statuses.iter().all(|&s| s == 200),
            "a GET failed on a stale upstream connection: {statuses:?}"
        );
    }
    // A body is never sent twice: one POST with a body is seen at most once.
    let before = seen.load(Ordering::SeqCst);
    let mut failed = 0;
    for _ in 0..50 {
        let resp = edge
            .client_h1()
            .post(edge.url("/api/v4/posts"))
            .body("{\"message\":\"hi\"}")
            .send()
            .await
            .expect("request");
        failed += usize::from(resp.status() != 200);
    }
    let posts_seen = seen.load(Ordering::SeqCst) - before;
    assert!(
        posts_seen <= 50,
        "a POST reached Mattermost twice ({posts_seen} for 50)"
    );
    assert_eq!(
        posts_seen + failed,
        50,
        "every POST either reached it once or got an error"
    );
}

/// Sends `head` on a fresh HTTP/1.1 TLS connection and returns the response's status line.
async fn status_of(edge: &Edge, head: &str) -> String {
    let mut conn = tls(edge, &[b"http/1.1"]).await;
    conn.write_all(head.as_bytes()).await.expect("request");
    first_line(&mut conn).await
}

async fn first_line<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        match tokio::time::timeout(PATIENCE, s.read(&mut byte)).await {
            Ok(Ok(1)) => got.push(byte[0]),
            Ok(other) => panic!("connection ended before a status line: {other:?} after {got:?}"),
            Err(_) => panic!("no status line"),
        }
    }
    String::from_utf8_lossy(&got).trim_end().to_string()
}

/// Streams a chunked body of `total` bytes, in 64 KiB chunks, until done or refused.
async fn send_chunks<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, total: u64) {
    let chunk = vec![b'u'; 64 * 1024];
    let head = format!("{:x}\r\n", chunk.len());
    let mut sent = 0;
    while sent < total {
        if w.write_all(head.as_bytes()).await.is_err()
            || w.write_all(&chunk).await.is_err()
            || w.write_all(b"\r\n").await.is_err()
        {
            return;
        }
        sent += chunk.len() as u64;
    }
    let _ = w.write_all(b"0\r\n\r\n").await;
}

#[tokio::test]
async fn an_oversized_chunked_upload_gets_its_413_not_a_reset() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_MAX_BODY", "1M")]);
    for expect in [false, true] {
        let conn = tls(&edge, &[b"http/1.1"]).await;
        let (mut rd, mut wr) = tokio::io::split(conn);
        let mut head = String::from(
            "POST /api/v4/files HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n",
        );
        if expect {
            head.push_str("Expect: 100-continue\r\n");
        }
        head.push_str("\r\n");
        wr.write_all(head.as_bytes()).await.expect("head");
        if expect {
            assert_eq!(first_line(&mut rd).await, "HTTP/1.1 100 Continue");
            let mut blank = [0u8; 2];
            rd.read_exact(&mut blank).await.expect("end of the 100");
        }
        let writer = tokio::spawn(async move { send_chunks(&mut wr, 200 << 20).await });
        assert_eq!(
            first_line(&mut rd).await,
            "HTTP/1.1 413 Payload Too Large",
            "Expect: 100-continue {expect}"
        );
        let _ = read_to_close(&mut rd).await;
        writer.abort();
    }
    // Already too large by its length: 413 instead of 100 Continue.
    let line = status_of(
        &edge,
        "POST /api/v4/files HTTP/1.1\r\nHost: localhost\r\nContent-Length: 209715200\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    assert_eq!(line, "HTTP/1.1 413 Payload Too Large");
}

#[tokio::test]
async fn a_malformed_client_body_is_400_and_never_blamed_on_mattermost() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let line = status_of(
        &edge,
        "POST /api/v4/files HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(line, "HTTP/1.1 400 Bad Request");
    // A client that goes away mid-upload.
    let before = backend.requests();
    let mut conn = tls(&edge, &[b"http/1.1"]).await;
    conn.write_all(
        b"POST /api/v4/files HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n",
    )
    .await
    .expect("head");
    conn.write_all(&[b'x'; 10_000])
        .await
        .expect("part of the body");
    backend
        .wait_until("the upload reached Mattermost", |b| b.requests() > before)
        .await;
    drop(conn);
    // Another request afterwards proves the edge went on; nothing was blamed on Mattermost.
    assert_eq!(
        edge.get(&edge.url("/api/v4/system/ping")).await.status(),
        200
    );
    let log = edge.log();
    let blamed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("upstream") && (l.contains(" WARN ") || l.contains(" ERROR ")))
        .collect();
    assert!(
        blamed.is_empty(),
        "a client's fault logged against Mattermost: {blamed:?}"
    );
}

#[tokio::test]
async fn requests_the_rfcs_refuse_are_refused() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_TRUSTED_PROXIES", "10.0.0.0/8")]);
    let before = backend.requests();
    for (head, want) in [
        (
            "GET /api/v4/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
        ),
        ("GET /api/v4/x HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (
            "GET echo HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "CONNECT mattermost:8065 HTTP/1.1\r\nHost: mattermost:8065\r\n\r\n",
            "HTTP/1.1 501 Not Implemented",
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "HTTP/1.1 200 OK",
        ),
    ] {
        assert_eq!(status_of(&edge, head).await, want, "{head:?}");
    }
    assert_eq!(
        backend.requests(),
        before,
        "none of them reached Mattermost"
    );
    // OPTIONS * on the redirect listener: answered, never redirected to https://host*.
    let mut plain = TcpStream::connect(edge.http).await.expect("connect");
    plain
        .write_all(b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    assert_eq!(first_line(&mut plain).await, "HTTP/1.1 200 OK");

    // An h2c upgrade never tunnels; a client's Forwarded header is dropped.
    let seen = headers_seen(
        &edge,
        "GET /api/v4/headers HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nForwarded: for=6.6.6.6\r\n\r\n",
    )
    .await;
    for gone in ["upgrade", "http2-settings", "forwarded"] {
        assert!(
            seen["headers"].get(gone).is_none(),
            "{gone} reached Mattermost: {seen}"
        );
    }

    // HTTP/2: :authority wins over a disagreeing Host; CONNECT is refused.
    let mut send = h2_client(&edge, &h2::client::Builder::new()).await;
    let mut req = h2_get(&edge, "/api/v4/headers");
    req.headers_mut()
        .insert("host", "evil.example".parse().expect("header"));
    let (resp, _) = send.send_request(req, true).expect("send");
    let resp = resp.await.expect("response");
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let seen: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let port = edge.https.expect("tls").port();
    assert_eq!(seen["headers"]["host"][0], format!("localhost:{port}"));
    let connect = http::Request::builder()
        .method("CONNECT")
        .uri(format!("localhost:{port}"))
        .body(())
        .expect("request");
    let mut send = send.ready().await.expect("ready");
    let (resp, _) = send.send_request(connect, true).expect("send");
    assert_eq!(resp.await.expect("response").status(), 501);
}

/// The headers the fake Mattermost saw for a raw HTTP/1.1 request.
async fn headers_seen(edge: &Edge, head: &str) -> serde_json::Value {
    let mut conn = tls(edge, &[b"http/1.1"]).await;
    conn.write_all(head.as_bytes()).await.expect("request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(PATIENCE, conn.read(&mut chunk))
            .await
            .expect("answer")
            .expect("read");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if buf.len() >= at + 4 + len {
                return serde_json::from_slice(&buf[at + 4..at + 4 + len]).expect("json");
            }
        }
        assert!(n > 0, "connection closed early");
    }
}

#[tokio::test]
async fn oversized_request_heads_are_refused_and_never_forwarded() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let many: String = (0..200).map(|i| format!("X-Filler-{i}: x\r\n")).collect();
    let line = status_of(
        &edge,
        &format!("GET /api/v4/x HTTP/1.1\r\nHost: localhost\r\n{many}\r\n"),
    )
    .await;
    assert_eq!(
        line, "HTTP/1.1 431 Request Header Fields Too Large",
        "200 header lines"
    );
    let huge = "y".repeat(200 * 1024);
    let mut conn = tls(&edge, &[b"http/1.1"]).await;
    let head = format!("GET /api/v4/x HTTP/1.1\r\nHost: localhost\r\nX-Huge: {huge}\r\n\r\n");
    // The edge may answer before the client has written everything.
    let _ = conn.write_all(head.as_bytes()).await;
    assert_eq!(
        first_line(&mut conn).await,
        "HTTP/1.1 431 Request Header Fields Too Large",
        "a 200 KiB head"
    );
    // HTTP/2: a header list over 64 KiB is refused.
    let mut send = h2_client(&edge, &h2::client::Builder::new()).await;
    let mut req = h2_get(&edge, "/api/v4/x");
    req.headers_mut()
        .insert("x-huge", "z".repeat(100 * 1024).parse().expect("header"));
    let refused = match send.send_request(req, true) {
        Ok((resp, _)) => match resp.await {
            Ok(resp) => resp.status() == 431,
            Err(_) => true,
        },
        Err(_) => true,
    };
    assert!(refused, "a 100 KiB HTTP/2 header list was accepted");
    assert_eq!(backend.requests(), 0, "nothing reached Mattermost");
}

#[tokio::test]
async fn clients_filling_their_share_of_file_descriptors_leave_room_for_mattermost() {
    let backend = Backend::start().await;
    // 64 open files: 32 client connections at most, the rest for Mattermost and the listeners.
    let edge = Edge::builder(&backend.url())
        .env("MATTERMOST_ENABLE_RATE_LIMIT", "false")
        .nofile(64)
        .spawn();
    edge.wait_for_log("open_files=64 max_connections=32");
    let keep = edge.client_h1();
    let resp = keep
        .get(edge.url("/api/v4/system/ping"))
        .send()
        .await
        .expect("ping");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body");
    // 100 more connections that never say anything.
    let mut flood = Vec::new();
    for _ in 0..100 {
        flood.push(
            TcpStream::connect(edge.https.expect("tls"))
                .await
                .expect("connect"),
        );
    }
    edge.wait_for_log(
        "connection limit reached: new connections wait until one closes limit=32 listener=Https",
    );
    // A request that needs a new Mattermost connection still gets one.
    let resp = keep
        .get(edge.url("/api/v4/close"))
        .send()
        .await
        .expect("close");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body");
    let resp = keep
        .get(edge.url("/api/v4/system/ping"))
        .send()
        .await
        .expect("ping");
    assert_eq!(resp.status(), 200, "no file descriptor left for Mattermost");
    assert!(
        backend.connections() >= 2,
        "a second upstream connection was opened"
    );
    assert!(!edge.log().contains("accept failed"), "{}", edge.log());
    drop(flood);
}

/// Reads until the edge closes the connection; returns how long after `since` that was.
async fn closed_after<S: tokio::io::AsyncRead + Unpin>(s: &mut S, since: Instant) -> Duration {
    read_to_close(s).await;
    since.elapsed()
}

#[tokio::test]
async fn a_half_sent_request_head_or_tls_handshake_is_closed_after_the_header_timeout() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_CLIENT_HEADER_TIMEOUT", "1s"),
            ("MM_EDGE_KEEPALIVE_TIMEOUT", "1h"),
        ],
    );
    // Half a request head, never finished.
    let mut conn = tls(&edge, &[b"http/1.1"]).await;
    let since = Instant::now();
    conn.write_all(b"GET /api/v4/system/ping HTTP/1.1\r\nHost: local")
        .await
        .expect("half a head");
    let waited = closed_after(&mut conn, since).await;
    assert!(waited >= Duration::from_secs(1), "closed after {waited:?}");
    // Half a TLS handshake: a record header announcing a ClientHello that never comes.
    let since = Instant::now();
    let mut tcp = TcpStream::connect(edge.https.expect("tls"))
        .await
        .expect("connect");
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0xff])
        .await
        .expect("half a handshake");
    let waited = closed_after(&mut tcp, since).await;
    assert!(waited >= Duration::from_secs(1), "closed after {waited:?}");
    assert_eq!(backend.requests(), 0, "nothing reached Mattermost");
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_header_or_keepalive_timeout() {
    let backend = Backend::start().await;
    // Either bound alone closes it: the wait for the next request counts in the header timeout.
    for (header, keepalive) in [("1s", "1h"), ("1h", "1s")] {
        let edge = Edge::start(
            &backend,
            &[
                ("MM_EDGE_CLIENT_HEADER_TIMEOUT", header),
                ("MM_EDGE_KEEPALIVE_TIMEOUT", keepalive),
            ],
        );
        let mut conn = tls(&edge, &[b"http/1.1"]).await;
        let since = Instant::now();
        conn.write_all(b"GET /api/v4/system/ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("request");
        assert_eq!(common::h1_response(&mut conn).await, "HTTP/1.1 200 OK");
        let waited = closed_after(&mut conn, since).await;
        assert!(
            waited >= Duration::from_secs(1),
            "header {header}, keepalive {keepalive}: closed after {waited:?}"
        );
    }
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_gracefully_after_the_keepalive_timeout() {
    use common::h2_raw::{self, ACK, DATA, END_STREAM, GOAWAY, HEADERS, PING, SETTINGS};
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_CLIENT_HEADER_TIMEOUT", "1h"),
            ("MM_EDGE_KEEPALIVE_TIMEOUT", "1s"),
        ],
    );
    let since = Instant::now();
    let mut conn = h2_raw::connect(&edge).await;
    h2_raw::get(&mut conn, 1, "/api/v4/system/ping").await;
    // Frames until the edge closes: the answer to stream 1, then a GOAWAY, then the end.
    let mut answered = false;
    let mut goaway = None;
    while let Some(frame) = h2_raw::read_frame(&mut conn).await {
        match (frame.kind, frame.stream) {
            (SETTINGS, 0) if frame.flags & ACK == 0 => {
                h2_raw::write_frame(&mut conn, SETTINGS, ACK, &[]).await;
            }
            // Answered as any client does (the graceful close waits for one of these).
            (PING, 0) if frame.flags & ACK == 0 => {
                h2_raw::write_frame(&mut conn, PING, ACK, &frame.payload).await;
            }
            (HEADERS | DATA, 1) => answered |= frame.flags & END_STREAM != 0,
            (GOAWAY, 0) => goaway = Some(frame),
            _ => {}
        }
    }
    let waited = since.elapsed();
    assert!(answered, "stream 1 was answered");
    let goaway = goaway.expect("closed gracefully: a GOAWAY before the end");
    assert_eq!(
        goaway.payload[4..8],
        [0, 0, 0, 0],
        "GOAWAY with NO_ERROR: {goaway:?}"
    );
    assert!(waited >= Duration::from_secs(1), "closed after {waited:?}");
}

/// The edge's keep-alive PINGs (30 s after the last stream) and the client's answers are
/// traffic on the socket, but not use: a connection whose client answers them (as browsers do)
/// is still closed once it had no stream for the keep-alive timeout. Counted in bytes, the
/// pings kept such a connection open for ever with any timeout over ~26 s.
#[tokio::test]
async fn an_idle_http2_connection_that_answers_pings_is_still_closed_after_the_keepalive_timeout() {
    use common::h2_raw::{self, ACK, DATA, END_STREAM, GOAWAY, HEADERS, PING, SETTINGS};
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_CLIENT_HEADER_TIMEOUT", "1h"),
            ("MM_EDGE_KEEPALIVE_TIMEOUT", "40s"),
        ],
    );
    let mut conn = h2_raw::connect(&edge).await;
    h2_raw::get(&mut conn, 1, "/api/v4/system/ping").await;
    let mut answered_at = None;
    let mut pings_answered = 0;
    let mut goaway = false;
    // A failure bound only: without the fix the connection never closes.
    let read_all = async {
        while let Some(frame) = h2_raw::read_frame(&mut conn).await {
            match (frame.kind, frame.stream) {
                (SETTINGS, 0) if frame.flags & ACK == 0 => {
                    h2_raw::write_frame(&mut conn, SETTINGS, ACK, &[]).await;
                }
                (PING, 0) if frame.flags & ACK == 0 => {
                    h2_raw::write_frame(&mut conn, PING, ACK, &frame.payload).await;
                    pings_answered += 1;
                }
                (HEADERS | DATA, 1) if frame.flags & END_STREAM != 0 => {
                    answered_at = Some(Instant::now());
                }
                (GOAWAY, 0) => goaway = true,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_all)
        .await
        .expect("an idle HTTP/2 connection answering pings was not closed within 120 s");
    let answered_at = answered_at.expect("stream 1 was answered");
    let idle = answered_at.elapsed();
    assert!(goaway, "closed gracefully, with a GOAWAY");
    assert!(
        pings_answered >= 1,
        "the edge pinged the idle connection (30 s) before the keep-alive timeout (40 s)"
    );
    assert!(
        idle >= Duration::from_secs(40),
        "closed {idle:?} after its last stream, before the keep-alive timeout"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_pinged_after_30s_and_closed_20s_after_an_unanswered_ping() {
    use common::h2_raw::{self, ACK, GOAWAY, PING, SETTINGS};
    let backend = Backend::start().await;
    // No other bound may close the connections first.
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_CLIENT_HEADER_TIMEOUT", "1h"),
            ("MM_EDGE_KEEPALIVE_TIMEOUT", "1h"),
        ],
    );
    // The control: a client that answers PINGs (the h2 library does), idle alongside.
    let answering = h2_client(&edge, &h2::client::Builder::new()).await;
    // The edge's ping clock starts at the connection's start, so this is before it.
    let since = Instant::now();
    let mut silent = h2_raw::connect(&edge).await;
    let ping = loop {
        let frame = h2_raw::read_frame(&mut silent)
            .await
            .expect("closed before any PING");
        match (frame.kind, frame.flags) {
            (SETTINGS, 0) => h2_raw::write_frame(&mut silent, SETTINGS, ACK, &[]).await,
            (PING, 0) => break frame,
            _ => {}
        }
    };
    let pinged = since.elapsed();
    assert_eq!((ping.stream, ping.payload.len()), (0, 8), "{ping:?}");
    assert!(
        pinged >= Duration::from_secs(30),
        "pinged after {pinged:?} of quiet"
    );
    // Left unanswered: the edge closes the connection (a GOAWAY may come first).
    while let Some(frame) = h2_raw::read_frame(&mut silent).await {
        assert!(frame.kind == GOAWAY, "after an unanswered PING: {frame:?}");
    }
    let closed = since.elapsed();
    assert!(
        closed >= Duration::from_secs(50),
        "closed {closed:?} after the start, before the PING's 20 s were over"
    );
    // The client that answered is still served on its connection.
    assert_eq!(
        h2_status(answering, &edge, "/api/v4/system/ping").await,
        200
    );
}
