//! IPv6: a listener on an IPv6 address serves IPv6 clients, and Mattermost learns their IPv6
//! address. (The default `[::]` listeners are not bound here, tests bind loopback only; that IPv4
//! clients on them count as IPv4 is unit-tested with `ConnInfo`.)

mod common;

use common::{echoed_once, start_edge};

#[tokio::test]
async fn an_ipv6_listener_serves_ipv6_clients_and_forwards_their_address() {
    // Some hosts and CI runners have no IPv6 at all: nothing to test there, even under CI.
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        eprintln!("skipping: ::1 cannot be bound here ({e}): no IPv6 loopback");
        return;
    }
    let edge = start_edge(&[
        ("MM_EDGE_HTTPS_LISTEN", "[::1]:0"),
        ("MM_EDGE_HTTP_LISTEN", "[::1]:0"),
    ])
    .await;
    let https = edge.https.expect("TLS listener");
    assert!(
        https.is_ipv6() && edge.http.is_ipv6(),
        "{https} {}",
        edge.http
    );
    // `Edge::client` resolves localhost to the TLS listener: [::1].
    let resp = edge.get(&edge.url("/api/v4/headers")).await;
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(echoed_once(&seen, "x-forwarded-for"), "::1");
    assert_eq!(echoed_once(&seen, "x-real-ip"), "::1");
    // The plain listener (redirecting to HTTPS) answers over IPv6 too.
    let resp = edge
        .get(&format!("http://[::1]:{}/", edge.http.port()))
        .await;
    assert!(resp.status().is_redirection(), "{}", resp.status());
}
