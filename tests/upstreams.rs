//! Several Mattermost servers (issue 15): active health checks take a server out and bring it
//! back, requests go to the server with the fewest requests and tunnels open, and a request
//! that could not be sent to one server goes to another, whatever its method.
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
