//! WebSockets: an HTTP/1.1 Upgrade on Mattermost's path is tunnelled with Host and Origin
//! unchanged, and messages flow both ways until a side closes or the tunnel idles for its
//! timeout (and not sooner).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Edge};
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
#[tokio::test]
async fn wss_echo_with_host_and_origin_unchanged() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MATTERMOST_HOST", "chat.example.com")]);
    let port = edge.https.expect("tls").port();
    let mut req = edge
        .wss_url("/api/v4/websocket?connection_id=&sequence_number=0")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "origin",
        "https://chat.example.com".parse().expect("header"),
    );
    req.headers_mut().insert(
        "host",
        format!("chat.example.com:{port}").parse().expect("header"),
    );
    let (mut ws, resp) = common::wss_connect(&edge, req).await;
    assert_eq!(resp.status(), 101);
    let hello: Value = serde_json::from_str(&common::next_text(&mut ws).await).expect("json hello");
    assert_eq!(
        hello["origin"], "https://chat.example.com",
        "Origin unchanged"
    );
    assert_eq!(
        hello["host"],
        format!("chat.example.com:{port}"),
        "Host unchanged"
    );
    for i in 0..50 {
        let msg = format!("{{\"seq\":{i},\"action\":\"user_typing\"}}");
        ws.send(Message::text(msg.clone())).await.expect("send");
        assert_eq!(common::next_text(&mut ws).await, msg);
    }
    let big = "x".repeat(256 * 1024);
    ws.send(Message::text(big.clone())).await.expect("send big");
    assert_eq!(common::next_text(&mut ws).await.len(), big.len());
    ws.close(None).await.expect("close");
}

#[tokio::test]
async fn plain_ws_in_http_mode() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MATTERMOST_HTTPS", "false")]);
    let url = format!("ws://127.0.0.1:{}/api/v4/websocket", edge.http.port());
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let hello: Value = serde_json::from_str(&common::next_text(&mut ws).await).expect("json hello");
    assert_eq!(hello["host"], format!("127.0.0.1:{}", edge.http.port()));
    ws.send(Message::text("ping")).await.expect("send");
    assert_eq!(common::next_text(&mut ws).await, "ping");
}

/// README: a tunnel with no traffic either way for `MM_EDGE_WEBSOCKET_IDLE_TIMEOUT` is closed,
/// and not before: measured from just before the last byte was sent (the edge cannot have seen
/// it earlier), the tunnel lives at least the timeout, then ends within the patience bound.
#[tokio::test]
async fn idle_tunnel_is_closed_after_the_websocket_idle_timeout() {
    const IDLE: Duration = Duration::from_secs(1);
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MATTERMOST_HTTPS", "false"),
            ("MM_EDGE_WEBSOCKET_IDLE_TIMEOUT", "1s"),
        ],
    );
    let url = format!("ws://127.0.0.1:{}/api/v4/websocket", edge.http.port());
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let _hello = common::next_text(&mut ws).await;
    // The last traffic: a message and its echo, both after this instant.
    let last = Instant::now();
    ws.send(Message::text("last words")).await.expect("send");
    assert_eq!(common::next_text(&mut ws).await, "last words");
    // Say nothing more: the edge must end the tunnel (the stream ends).
    assert!(common::ws_ends(&mut ws).await, "idle tunnel was not closed");
    let lived = last.elapsed();
    assert!(
        lived >= IDLE,
        "closed {lived:?} after the last byte, before the idle timeout {IDLE:?}"
    );
}

#[tokio::test]
async fn http2_extended_connect_is_not_offered_so_websockets_use_http1() {
    use common::h2_raw::{self, SETTINGS, SETTINGS_ENABLE_CONNECT_PROTOCOL};
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let mut conn = h2_raw::connect(&edge).await;
    // The server's connection preface is its SETTINGS frame (RFC 9113 §3.4).
    let first = h2_raw::read_frame(&mut conn)
        .await
        .expect("the edge's SETTINGS frame");
    assert_eq!(
        (first.kind, first.flags, first.stream),
        (SETTINGS, 0, 0),
        "{first:?}"
    );
    let settings = first.settings();
    // The control: the frame is read right (the documented stream limit, 256, is in it).
    assert!(
        settings.contains(&(h2_raw::SETTINGS_MAX_CONCURRENT_STREAMS, 256)),
        "{settings:?}"
    );
    assert!(
        !settings.contains(&(SETTINGS_ENABLE_CONNECT_PROTOCOL, 1)),
        "SETTINGS_ENABLE_CONNECT_PROTOCOL offered: {settings:?}"
    );
}
