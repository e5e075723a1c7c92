//! SIGTERM: the edge stops accepting, lets a request in flight finish, and exits 0.

mod common;

use common::{Backend, Edge};

#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let backend = Backend::start().await;
    // The single-threaded scheduler (one worker) has to drain as well as the multi-threaded one.
    let edge = Edge::start(&backend, &[("MM_EDGE_WORKERS", "1")]);
    let client = edge.client_h1();
    let url = edge.url("/api/v4/hold");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    backend.wait_held().await;
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
