//! What the edge knows about Mattermost (issue 14): the limit on failed sign-ins, errors told in
//! the client's language (Mattermost's JSON error shape, a page that retries by itself, plain
//! text), and the body limit following Mattermost's upload limit.
//!
//! The login-limit edges refill one failure per hour, so nothing comes back while a test runs:
//! counts are exact whatever the machine's speed. Different clients are different loopback
//! source addresses (127.0.0.2, 127.0.0.3).

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{browser, sign_in, Backend, Edge};
use reqwest::{Client, StatusCode};
use serde_json::Value;

const LOGIN: &str = "/api/v4/users/login";

fn client_from(edge: &Edge, source: &str) -> Client {
    let ip: IpAddr = source.parse().expect("ip");
    edge.client_builder()
        .local_address(ip)
        .build()
        .expect("client")
}

/// Limits of the login tests: 3 failures in a row, then one per hour; the general limit off.
const LOGIN_ENV: [(&str, &str); 3] = [
    ("MM_EDGE_LOGIN_LIMIT", "1/h"),
    ("MM_EDGE_LOGIN_LIMIT_BURST", "3"),
    ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
];

#[tokio::test]
async fn a_guesser_is_refused_after_the_burst_while_successes_never_count() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &LOGIN_ENV);
    let guesser = client_from(&edge, "127.0.0.2");
    // Any number of successful sign-ins cost nothing.
    for _ in 0..20 {
        let resp = sign_in(&guesser, &edge, LOGIN, "right").await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // Failures 1-3 reach Mattermost and get its own answer.
    for n in 1..=3 {
        let resp = sign_in(&guesser, &edge, LOGIN, "wrong").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "failure {n}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(
            body["id"],
            "api.user.login.invalid_credentials_email_username"
        );
    }
    let reached = backend.requests();
    // The 4th attempt is refused at the edge, even with the right password.
    for password in ["wrong", "right"] {
        let resp = sign_in(&guesser, &edge, LOGIN, password).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=3600).contains(&retry), "{retry}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let id = resp.headers()["x-request-id"].clone();
        let body: Value = resp.json().await.expect("Mattermost's error shape");
        assert_eq!(body["id"], "mm_edge.login_rate_limited");
        assert_eq!(body["status_code"], 429);
        assert_eq!(body["request_id"], id.to_str().expect("id"));
        assert_eq!(
            body["message"],
            format!(
                "Too many failed sign-in attempts from your network. Try again in {retry} seconds."
            )
        );
    }
    // Every sign-in path counts, percent-encoded too; nothing reached Mattermost.
    for path in [
        "/api/v4/users/%6cogin",
        "/oauth/access_token",
        "/api/v4/users/mfa",
    ] {
        let resp = sign_in(&guesser, &edge, path, "wrong").await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    assert_eq!(
        backend.requests(),
        reached,
        "refused attempts never reach Mattermost"
    );
    // Other methods and paths are not limited for the guesser.
    let resp = guesser.get(edge.url(LOGIN)).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = sign_in(&guesser, &edge, "/api/v4/users/logout", "wrong").await;
    assert_eq!(resp.status(), StatusCode::OK);
    // Another client (another address) signs in at once.
    let office = client_from(&edge, "127.0.0.3");
    for _ in 0..3 {
        let resp = sign_in(&office, &edge, LOGIN, "wrong").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = sign_in(&office, &edge, LOGIN, "right").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);

    // The access log says what happened to each sign-in attempt.
    let lines = edge.wait_for_access_lines(20 + 3 + 2 + 3 + 2 + 3 + 1);
    let entries: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let count = |f: &dyn Fn(&Value) -> bool| entries.iter().filter(|e| f(e)).count();
    assert_eq!(count(&|e| e["outcome"] == "login_limited"), 2 + 3 + 1);
    assert_eq!(count(&|e| e["sign_in"] == "failed"), 3 + 3);
    assert_eq!(count(&|e| e["sign_in"] == "passed"), 20);
}

#[tokio::test]
async fn the_login_limit_works_with_the_general_limit_and_is_counted_in_metrics() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_LOGIN_LIMIT", "1/h"),
            ("MM_EDGE_LOGIN_LIMIT_BURST", "1"),
            ("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0"),
        ],
    );
    let client = edge.client();
    let resp = sign_in(&client, &edge, LOGIN, "wrong").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The general limit's headers are there too: both limits apply.
    assert!(resp.headers().contains_key("x-ratelimit-remaining"));
    let resp = sign_in(&client, &edge, LOGIN, "wrong").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    edge.wait_for_access_lines(2);
    let text = common::scrape_metrics(&edge).await;
    assert_eq!(
        common::sample(&text, "mm_edge_login_limited_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        common::sample(&text, "mm_edge_login_failures_total"),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn login_limit_off_lets_every_attempt_through() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_LOGIN_LIMIT", "off"),
            ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
        ],
    );
    let client = edge.client();
    for _ in 0..15 {
        let resp = sign_in(&client, &edge, LOGIN, "wrong").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}

#[test]
fn bad_login_limit_settings_name_the_setting_and_the_fix() {
    for (var, value, hint) in [
        (
            "MM_EDGE_LOGIN_LIMIT",
            "10/week",
            "expected N/s, N/min or N/h",
        ),
        ("MM_EDGE_LOGIN_LIMIT", "0/min", "expected N/s, N/min or N/h"),
        ("MM_EDGE_LOGIN_LIMIT_BURST", "0", "above 0"),
        ("MM_EDGE_RATE_LIMIT_IPV6_PREFIX", "129", "from 1 to 128"),
    ] {
        let out = common::run(&[(var, value)], &["check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(&format!("{var}={value}")) && stderr.contains(hint),
            "{stderr}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// errors in the client's language

/// An edge in front of a Mattermost that refuses connections.
fn edge_with_mattermost_down() -> (Edge, std::net::TcpListener) {
    let (guard, addr) = common::refused_addr();
    let edge = Edge::builder(&format!("http://{addr}"))
        .env("MATTERMOST_ENABLE_RATE_LIMIT", "false")
        .spawn();
    (edge, guard)
}

#[tokio::test]
async fn api_clients_get_mattermosts_error_shape_when_mattermost_is_down() {
    let (edge, _guard) = edge_with_mattermost_down();
    let resp = edge
        .client()
        .get(edge.url("/api/v4/users/me"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["id"], "mm_edge.upstream_unreachable");
    assert_eq!(body["status_code"], 502);
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(
        body["message"],
        "Mattermost is starting up or unreachable. Try again in a moment."
    );
}

#[tokio::test]
async fn a_page_load_gets_a_page_and_scripts_get_plain_text() {
    let (edge, _guard) = edge_with_mattermost_down();
    let client = edge.client();
    let resp = client
        .get(edge.url("/myteam/channels/town-square"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let page = resp.text().await.expect("page");
    assert!(
        page.contains("Mattermost is starting up or unreachable"),
        "{page}"
    );
    assert!(page.contains("location.reload()"), "{page}");
    let resp = client.get(edge.url("/")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(resp.text().await.expect("text").contains("is unreachable"));
}

#[tokio::test]
async fn an_upload_over_the_limit_gets_413_in_mattermosts_shape() {
    let edge = common::start_edge(&[
        ("MM_EDGE_MAX_BODY", "1K"),
        ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
    ])
    .await;
    let resp = edge
        .client()
        .post(edge.url("/api/v4/files"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["id"], "mm_edge.request_too_large");
    assert_eq!(
        body["message"],
        "The request is larger than this server accepts (1 KiB at most)."
    );
}

/// A browser loading a page while Mattermost restarts sees the edge's page, which reloads by
/// itself and lands on Mattermost's page once it answers. The fake Mattermost drops its first
/// connection unanswered (as a server still starting); its page reports back when it loads.
#[tokio::test]
async fn the_error_page_retries_by_itself_until_mattermost_answers() {
    let Some(chromium) = browser::chromium_or_skip() else {
        return;
    };
    let page = browser::PageServer::bind().expect("bind page server");
    let edge = Edge::builder(&page.origin())
        .env("MATTERMOST_ENABLE_RATE_LIMIT", "false")
        .spawn();
    let html = r#"<!doctype html><meta charset="utf-8"><title>Mattermost</title>
<script>fetch("/results", {method: "POST", body: "mattermost page loaded"});</script>"#;
    let spki = browser::spki_sha256_base64(&edge.cert_der()).expect("edge certificate SPKI");
    let url = edge.url("/");
    let run = tokio::task::spawn_blocking(move || {
        let page = page.serve_after_dropping(1, html.to_string());
        let report = browser::run_url(&chromium, &url, &page, &spki, Duration::from_secs(90));
        (report, page.accepted())
    });
    let (report, accepted) = run.await.expect("browser task");
    assert_eq!(report.expect("browser run"), "mattermost page loaded");
    assert!(
        accepted >= 3,
        "dropped, page, report: {accepted} connections"
    );
    let lines = edge.wait_for_access_lines(3);
    let first: Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(
        first["status"], 502,
        "the browser saw the edge's page first"
    );
    assert_eq!(first["path"], "/");
    let statuses: Vec<u64> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["path"] == "/")
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(statuses.last(), Some(&200), "{lines:?}");
}

// ---------------------------------------------------------------------------------------------
// the upload limit follows Mattermost's

fn check_output(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = common::run(env, &["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn the_body_limit_follows_mattermosts_upload_limit() {
    // 200 MiB in the old image's variable: the edge takes 210 MiB.
    let (code, out) = check_output(&[("MATTERMOST_MAX_FILE_SIZE", "209715200")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("# body limit: 220200960 bytes (Mattermost's upload limit: 209715200 bytes, from MATTERMOST_MAX_FILE_SIZE)"),
        "{out}"
    );
    // A small MaxFileSize never lowers the default.
    let (_, out) = check_output(&[("MATTERMOST_MAX_FILE_SIZE", "52428800")]);
    assert!(out.contains("# body limit: 115343360 bytes"), "{out}");
    // From the config file mm-edge writes to.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"FileSettings": {"MaxFileSize": 524288000}}"#).expect("write");
    let path = config.to_string_lossy().to_string();
    let (_, out) = check_output(&[("MM_EDGE_MATTERMOST_CONFIG", &path)]);
    assert!(out.contains("# body limit: 534773760 bytes"), "{out}");
    assert!(
        out.contains(&format!("FileSettings.MaxFileSize in {path}")),
        "{out}"
    );
}

#[test]
fn an_explicit_body_limit_below_mattermosts_warns_naming_both() {
    let (code, out) = check_output(&[
        ("MATTERMOST_MAX_FILE_SIZE", "209715200"),
        ("MM_EDGE_MAX_BODY", "50M"),
    ]);
    assert_eq!(code, Some(0), "a warning, not an error: {out}");
    assert!(out.contains("# body limit: 52428800 bytes"), "{out}");
    assert!(
        out.contains("# warning: MM_EDGE_MAX_BODY=50M is below Mattermost's upload limit (MATTERMOST_MAX_FILE_SIZE = 209715200 bytes"),
        "{out}"
    );
    // At or above the need: no warning.
    let (_, out) = check_output(&[
        ("MATTERMOST_MAX_FILE_SIZE", "209715200"),
        ("MM_EDGE_MAX_BODY", "210M"),
    ]);
    assert!(!out.contains("below Mattermost's upload limit"), "{out}");
}

#[tokio::test]
async fn uploads_mattermost_allows_pass_the_edge() {
    // Mattermost allows 120 MiB (the old image's variable); MM_EDGE_MAX_BODY is not given.
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MATTERMOST_MAX_FILE_SIZE", "125829120"),
            ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
        ],
    );
    edge.wait_for_log("mm-edge listening");
    // 115 MiB, over the 110 MiB default: it streams through to Mattermost.
    let resp = edge
        .client_h1()
        .post(edge.url("/api/v4/files"))
        .header("content-length", (115u64 << 20).to_string())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            (0..115).map(|_| Ok::<_, std::io::Error>(vec![0u8; 1 << 20])),
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["len"], 115u64 << 20);
}
