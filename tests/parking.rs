//! HTTPS HTTP/1.1 connections parked between requests: once quiet for a second after a request,
//! a connection gives back hyper's buffers and waits for the client's next byte. Nothing the
//! client sent may be lost across a park, upgrades still work on a parked connection, and the
//! keep-alive timeout and shutdown still close it.

mod common;

use common::{scrape_metrics, Backend, Edge, PATIENCE};
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// An HTTPS connection speaking HTTP/1.1 (ALPN `http/1.1`).
async fn https_h1(edge: &Edge) -> TlsStream<TcpStream> {
    common::tls_connect(edge, &[b"http/1.1"]).await
}

/// One response off the connection: its status line and its body.
async fn response<S: AsyncRead + Unpin>(s: &mut S) -> (String, Vec<u8>) {
    common::h1_response_with_body(s).await
}

/// `mm_edge_connections_parked` now.
async fn parked(edge: &Edge) -> f64 {
    common::sample(&scrape_metrics(edge).await, "mm_edge_connections_parked")
}

/// Waits until `mm_edge_connections_parked` is `n` (failing after [`PATIENCE`]).
async fn wait_parked(edge: &Edge, n: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while parked(edge).await != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {n} connections parked:\n{}",
            edge.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn edge_with_metrics(backend: &Backend, extra: &[(&str, &str)]) -> Edge {
    let mut env = vec![("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0")];
    env.extend_from_slice(extra);
    Edge::start(backend, &env)
}

const PING: &[u8] = b"GET /api/v4/system/ping HTTP/1.1\r\nHost: localhost\r\n\r\n";

#[tokio::test]
async fn a_parked_connection_serves_pipelined_requests_and_a_websocket_after() {
    let backend = Backend::start().await;
    let edge = edge_with_metrics(&backend, &[]);
    let mut conn = https_h1(&edge).await;
    conn.write_all(PING).await.expect("request");
    assert_eq!(response(&mut conn).await.0, "HTTP/1.1 200 OK");
    wait_parked(&edge, 1.0).await;

    // Two requests in one write wake it: both are answered, in order.
    let two = b"GET /api/v4/headers HTTP/1.1\r\nHost: localhost\r\nX-Nth: first\r\n\r\n\
                GET /api/v4/headers HTTP/1.1\r\nHost: localhost\r\nX-Nth: second\r\n\r\n";
    conn.write_all(two).await.expect("two requests");
    for nth in ["first", "second"] {
        let (status, body) = response(&mut conn).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("echo json");
        assert_eq!(common::echoed_once(&v, "x-nth"), nth);
    }
    wait_parked(&edge, 1.0).await;

    // A WebSocket on the same, parked, connection.
    let url = format!(
        "wss://localhost:{}/api/v4/websocket",
        edge.https.expect("tls").port()
    );
    let (mut ws, resp) = tokio_tungstenite::client_async(url, conn)
        .await
        .expect("upgrade on the parked connection");
    assert_eq!(resp.status(), 101);
    let hello: serde_json::Value =
        serde_json::from_str(&common::next_text(&mut ws).await).expect("json hello");
    assert!(hello["host"].is_string(), "{hello}");
    ws.send(Message::text("across the park"))
        .await
        .expect("send");
    assert_eq!(common::next_text(&mut ws).await, "across the park");
    wait_parked(&edge, 0.0).await;
    drop(ws);
}

#[tokio::test]
async fn a_request_head_half_read_when_the_connection_parks_is_not_lost() {
    let backend = Backend::start().await;
    let edge = Edge::builder(&backend.url())
        .env("MM_EDGE_LOG", "info,mm_edge::server=debug")
        .spawn();
    let mut conn = https_h1(&edge).await;
    // A whole request and the first half of the next one, in one write: hyper reads both,
    // answers the first, and holds the half when the connection goes quiet and parks.
    let mut bytes = PING.to_vec();
    bytes.extend_from_slice(b"GET /api/v4/headers HTTP/1.1\r\nHost: localhost\r\nX-Half: acro");
    conn.write_all(&bytes)
        .await
        .expect("one and a half requests");
    assert_eq!(response(&mut conn).await.0, "HTTP/1.1 200 OK");
    edge.wait_for_log("connection parked");
    let parked_line = edge
        .log()
        .lines()
        .find(|l| l.contains("connection parked"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        !parked_line.contains("ahead=0"),
        "parked holding the half head: {parked_line}"
    );
    conn.write_all(b"ss-the-park\r\n\r\n")
        .await
        .expect("the rest");
    let (status, body) = response(&mut conn).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("echo json");
    assert_eq!(common::echoed_once(&v, "x-half"), "across-the-park");
}

#[tokio::test]
async fn a_parked_connection_is_closed_by_the_keepalive_timeout_and_by_shutdown() {
    let backend = Backend::start().await;
    let edge = edge_with_metrics(
        &backend,
        &[
            ("MM_EDGE_CLIENT_HEADER_TIMEOUT", "1h"),
            ("MM_EDGE_KEEPALIVE_TIMEOUT", "3s"),
        ],
    );
    let mut conn = https_h1(&edge).await;
    conn.write_all(PING).await.expect("request");
    assert_eq!(response(&mut conn).await.0, "HTTP/1.1 200 OK");
    wait_parked(&edge, 1.0).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "closed cleanly (TLS close_notify) by the keep-alive timeout: {read:?}"
    );
    wait_parked(&edge, 0.0).await;

    let mut edge = edge_with_metrics(&backend, &[("MM_EDGE_KEEPALIVE_TIMEOUT", "1h")]);
    let mut conn = https_h1(&edge).await;
    conn.write_all(PING).await.expect("request");
    assert_eq!(response(&mut conn).await.0, "HTTP/1.1 200 OK");
    wait_parked(&edge, 1.0).await;
    edge.signal("TERM");
    let read = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed at shutdown: {read:?}");
    assert!(edge.wait().success(), "{}", edge.log());
}
