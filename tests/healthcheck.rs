//! `mm-edge healthcheck` (the container HEALTHCHECK): exit 0 only when a running edge answers on
//! its listener, TLS or plain; exit 1 when nothing does.

mod common;

use common::{run, Backend, Edge};

#[tokio::test]
async fn healthcheck_succeeds_against_a_running_edge_over_tls_and_plain_http() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let https = edge.https.expect("tls").to_string();
    let http = edge.http.to_string();
    let out = run(
        &[
            ("MM_EDGE_HTTPS_LISTEN", &https),
            ("MM_EDGE_HTTP_LISTEN", &http),
        ],
        &["healthcheck"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let plain = Edge::start(&backend, &[("MATTERMOST_HTTPS", "false")]);
    let http = plain.http.to_string();
    let out = run(
        &[
            ("MATTERMOST_HTTPS", "false"),
            ("MM_EDGE_HTTP_LISTEN", &http),
        ],
        &["healthcheck"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        backend.requests(),
        0,
        "the health endpoint is the edge's own"
    );
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    let (_guard, addr) = common::refused_addr();
    let addr = addr.to_string();
    let out = run(&[("MM_EDGE_HTTPS_LISTEN", &addr)], &["healthcheck"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unhealthy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
