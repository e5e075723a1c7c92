//! SIGTERM: the edge stops accepting, lets a request in flight finish within the grace period
//! (and cuts it after), closes WebSocket tunnels, and exits 0.

mod common;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::{Backend, Edge, PATIENCE};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// A request to /api/v4/hold through the edge, once Mattermost holds it.
async fn held_request(
    edge: &Edge,
    backend: &Backend,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let client = edge.client_h1();
    let url = edge.url("/api/v4/hold");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    backend.wait_held().await;
    in_flight
}

/// Waits for the edge to exit; its status and everything it logged.
async fn exited(mut edge: Edge) -> (ExitStatus, String) {
    tokio::task::spawn_blocking(move || {
        let status = edge.wait();
        (status, edge.log())
    })
    .await
    .expect("wait")
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let backend = Backend::start().await;
    // The single-threaded scheduler (one worker) has to drain as well as the multi-threaded one.
    let edge = Edge::start(&backend, &[("MM_EDGE_WORKERS", "1")]);
    let in_flight = held_request(&edge, &backend).await;
    edge.signal("TERM");
    // The request is still held by Mattermost; let it answer only once the edge is draining,
    // so that it is the drain that waits for it.
    let edge = tokio::task::spawn_blocking(move || {
        edge.wait_for_log("shutting down");
        edge
    })
    .await
    .expect("wait for the drain");
    assert_eq!(backend.held_now(), 1, "still held when the drain began");
    backend.release();
    let resp = in_flight
        .await
        .expect("task")
        .expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "released");
    let mut edge = edge;
    let status = tokio::task::spawn_blocking(move || {
        let status = edge.wait();
        (status, edge.log())
    })
    .await
    .expect("wait");
    assert_eq!(status.0.code(), Some(0), "exit status; log:\n{}", status.1);
    assert!(status.1.contains("shutting down"), "{}", status.1);
}

#[tokio::test]
async fn sigint_with_nothing_in_flight_exits_zero() {
    let backend = Backend::start().await;
    let mut edge = Edge::start(&backend, &[]);
    edge.signal("INT");
    let status = tokio::task::spawn_blocking(move || edge.wait())
        .await
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn after_sigterm_new_connections_are_refused_while_a_request_drains() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let in_flight = held_request(&edge, &backend).await;
    edge.signal("TERM");
    // Both listeners close (a connection that races the signal may still be accepted: try again).
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    for addr in [edge.https.expect("tls"), edge.http] {
        let since = Instant::now();
        loop {
            poll.tick().await;
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) => panic!("connect to {addr}: {e}"),
                Ok(_) => assert!(since.elapsed() < PATIENCE, "{addr} still accepts"),
            }
        }
    }
    // Refused while the drain still waits for the request in flight.
    assert_eq!(backend.held_now(), 1, "the request is still in flight");
    backend.release();
    let resp = in_flight.await.expect("task").expect("in-flight request");
    assert_eq!(resp.status(), 200);
    let (status, log) = exited(edge).await;
    assert_eq!(status.code(), Some(0), "exit status; log:\n{log}");
}

#[tokio::test]
async fn the_grace_period_cuts_a_request_still_in_flight() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_SHUTDOWN_GRACE", "1s")]);
    let in_flight = held_request(&edge, &backend).await;
    let signalled = Instant::now();
    edge.signal("TERM");
    // Mattermost never answers: the edge gives up after the grace period, not before.
    let (status, log) = exited(edge).await;
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "exited {waited:?} after SIGTERM, within MM_EDGE_SHUTDOWN_GRACE"
    );
    assert_eq!(status.code(), Some(0), "exit status; log:\n{log}");
    assert!(log.contains("shutdown grace period over"), "{log}");
    let cut = in_flight.await.expect("task");
    assert!(cut.is_err(), "the held request got an answer: {cut:?}");
}

#[tokio::test]
async fn websocket_tunnels_are_closed_on_shutdown() {
    let backend = Backend::start().await;
    // A grace period beyond the test's patience: the edge must close the tunnel, not wait.
    let edge = Edge::start(&backend, &[("MM_EDGE_SHUTDOWN_GRACE", "1h")]);
    let (mut ws, resp) = common::wss_connect(&edge, edge.wss_url("/api/v4/websocket")).await;
    assert_eq!(resp.status(), 101);
    let hello = tokio::time::timeout(PATIENCE, ws.next()).await;
    assert!(
        matches!(hello, Ok(Some(Ok(Message::Text(_))))),
        "hello: {hello:?}"
    );
    edge.signal("TERM");
    assert!(
        common::ws_ends(&mut ws).await,
        "the tunnel stayed open after SIGTERM"
    );
    let (status, log) = exited(edge).await;
    assert_eq!(status.code(), Some(0), "exit status; log:\n{log}");
}
