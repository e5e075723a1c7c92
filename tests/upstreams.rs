//! Several Mattermost servers (issue 15): active health checks take a server out and bring it
//! back, requests go to the server with the fewest requests and tunnels open, and a request
//! that could not be sent to one server goes to another, whatever its method. A request a
//! kept-alive connection was closed under is sent again only when that repeats nothing.
//!
//! Which server answered is read from the access log's `upstream` field. The checks run every
//! 100 ms; the tests wait for the edge's log lines saying a server went down or came back
//! (events, bounded by the harness's patience), never for time.

mod common;

use common::{Backend, Edge};
use reqwest::StatusCode;
use serde_json::Value;

const PING: &str = "/api/v4/system/ping";
const ECHO: &str = "/api/v4/headers";

fn edge_for(backends: &[&str], extra: &[(&str, &str)]) -> Edge {
    let mut b = Edge::builder(&backends.join(" "))
        .env("MATTERMOST_ENABLE_RATE_LIMIT", "false")
        .env("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0");
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.spawn()
}

const CHECKS: [(&str, &str); 3] = [
    ("MM_EDGE_UPSTREAM_HEALTH_INTERVAL", "100ms"),
    ("MM_EDGE_UPSTREAM_HEALTH_FAILS", "2"),
    ("MM_EDGE_UPSTREAM_HEALTH_PASSES", "2"),
];
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_failing_its_checks_gets_no_requests_until_it_passes_again() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let edge = edge_for(&[&a.url(), &b.url()], &CHECKS);
    // Both take requests.
    let servers = common::answered_by(&edge, ECHO, 8).await;
    assert!(
        servers.contains(&a.url()) && servers.contains(&b.url()),
        "{servers:?}"
    );
    // B's database is down: its ping fails, its other endpoints still answer (so only the
    // active checks can tell).
    b.set_ping_status(500);
    edge.wait_for_log("Mattermost server is down (health checks failed); it gets no new requests");
    assert!(edge.log().contains(&b.url()), "{}", edge.log());
    let servers = common::answered_by(&edge, ECHO, 10).await;
    assert!(
        servers.iter().all(|s| *s == a.url()),
        "{servers:?}\n{}",
        edge.log()
    );
    let text = common::scrape_metrics(&edge).await;
    let up = |url: &str| common::sample(&text, &format!("mm_edge_upstream_up{{server=\"{url}\"}}"));
    assert_eq!((up(&a.url()), up(&b.url())), (1.0, 0.0), "{text}");
    // Back: B takes requests again.
    b.set_ping_status(200);
    edge.wait_for_log("Mattermost server is up again");
    let servers = common::answered_by(&edge, ECHO, 8).await;
    assert!(servers.contains(&b.url()), "{servers:?}");
    let text = common::scrape_metrics(&edge).await;
    assert_eq!(
        common::sample(
            &text,
            &format!("mm_edge_upstream_up{{server=\"{}\"}}", b.url())
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_server_is_down_they_are_still_tried() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let edge = edge_for(&[&a.url(), &b.url()], &CHECKS);
    a.set_ping_status(503);
    b.set_ping_status(503);
    edge.wait_for_log_count("Mattermost server is down", 2);
    // The second to go down is still tried, and the log says so.
    assert!(
        edge.log()
            .contains("no other server is up, so it is still tried"),
        "{}",
        edge.log()
    );
    // The checks say down, but the servers answer: no 502.
    let servers = common::answered_by(&edge, ECHO, 6).await;
    assert_eq!(servers.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_with_fewer_requests_open_gets_the_next_ones() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let edge = edge_for(&[&a.url(), &b.url()], &[]);
    // One request held open on whichever server takes it.
    let client = edge.client_h1();
    let url = edge.url("/api/v4/hold");
    let held = tokio::spawn(async move { client.get(url).send().await });
    tokio::select! {
        _ = a.wait_held() => {}
        _ = b.wait_held() => {}
    }
    let (busy, idle) = if a.held_now() == 1 {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(busy.held_now(), 1);
    // Every request while it is open goes to the other server, in turn or not.
    let servers = common::answered_by(&edge, ECHO, 6).await;
    assert!(servers.iter().all(|s| *s == idle.url()), "{servers:?}");
    busy.release();
    let resp = held.await.expect("task").expect("held request");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_by_one_server_goes_to_another_whatever_its_method() {
    let (_guard, refused) = common::refused_addr();
    let a = Backend::start().await;
    let down = format!("http://{refused}");
    let edge = edge_for(
        &[&down, &a.url()],
        &[("MM_EDGE_UPSTREAM_FAIL_TIMEOUT", "1h")],
    );
    let client = edge.client();
    // Two requests: their turns start at different servers, so one of them is refused first.
    for _ in 0..2 {
        let resp = client
            .post(edge.url("/api/v4/posts"))
            .body("{\"message\":\"hello\"}")
            .send()
            .await
            .expect("request");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "a POST is never lost to a refused server"
        );
    }
    edge.wait_for_log("sending it to another server");
    let lines = edge.wait_for_access_lines(2);
    for l in &lines {
        let v: Value = serde_json::from_str(l).expect("json");
        assert_eq!(v["upstream"], a.url().as_str(), "{l}");
    }
    // The refused server is skipped for the fail timeout: no more retries meanwhile.
    let servers = common::answered_by(&edge, ECHO, 4).await;
    assert!(servers.iter().all(|s| *s == a.url()), "{servers:?}");
    assert_eq!(
        edge.log().matches("sending it to another server").count(),
        1,
        "{}",
        edge.log()
    );
    // The ping path itself is proxied as before (the checks do not take it over).
    let resp = client.get(edge.url(PING)).send().await.expect("ping");
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A Mattermost stand-in that closes a kept-alive connection without answering: the request
/// after a `/api/v4/then-close` on the same connection is read to its end, then the connection
/// closes. Every request is recorded as (path, connection number).
async fn closing_backend() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, usize)>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            n += 1;
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut close_next = false;
                loop {
                    // One request: the head, then a Content-Length body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    buf.drain(..head_end + len);
                    record.lock().expect("lock").push((path.clone(), n));
                    if close_next {
                        return; // read to the end, never answered
                    }
                    close_next = path == "/api/v4/then-close";
                    let body = format!("{{\"connection\":{n}}}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_kept_alive_connection_closed_under_a_request_repeats_it_only_when_that_is_safe() {
    let (url, seen) = closing_backend().await;
    let edge = edge_for(&[&url], &[]);
    let client = edge.client_h1();
    let get = |path: &str| client.get(edge.url(path)).send();
    let sent = |path: &str| {
        let seen = seen.lock().expect("lock");
        seen.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, c)| *c)
            .collect::<Vec<_>>()
    };

    // A GET without a body: sent again on a fresh connection, and answered.
    let resp = get("/api/v4/then-close").await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.expect("body");
    let resp = get("/api/v4/users/me").await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK, "the GET was repeated");
    resp.bytes().await.expect("body");
    let twice = sent("/api/v4/users/me");
    assert_eq!(
        twice.len(),
        2,
        "once on the closed connection, once on a fresh one"
    );
    assert_ne!(twice[0], twice[1]);
    assert_eq!(
        sent("/api/v4/then-close")[0],
        twice[0],
        "the kept-alive connection was reused"
    );

    // A POST with a body: never sent twice; the client gets a 502.
    let resp = get("/api/v4/then-close").await.expect("request");
    resp.bytes().await.expect("body");
    let resp = client
        .post(edge.url("/api/v4/posts"))
        .body("{\"message\":\"once\"}")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(sent("/api/v4/posts").len(), 1, "a body is never sent twice");
    edge.wait_for_log("connection closed before message completed");
}
