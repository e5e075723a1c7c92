//! CORS at the edge with an HTTP client (issue 4, reference §3): preflights answered at the edge
//! with exactly rs/cors's headers and never forwarded, actual responses stamped (upstream CORS
//! headers replaced, never duplicated), `*` + credentials echoing the origin, wildcard entries,
//! disabled mode passing OPTIONS through, preflights exempt from rate limiting, invalid entries
//! refused by `mm-edge check`, and WebSocket Origin/Host passed through unchanged.

mod common;

use common::EdgeWithBackend;
use futures_util::{SinkExt, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ALLOWED: &str = "https://chat.example.com";
const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";
const REQUESTED_HEADERS: &str = "x-requested-with,content-type";

/// Every value of `name`, in order.
fn all(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// Every `Access-Control-*` response header as `(name, value)`, sorted.
fn cors_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Sorted `(name, value)` pairs, for comparing with [`cors_headers`].
fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

/// How many comma-separated `Vary` tokens equal `Origin` (case-insensitively), over all fields.
fn vary_origin_count(headers: &HeaderMap) -> usize {
    all(headers, "vary")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|t| t == "origin")
        .count()
}

/// Every header name in the response except the ones any response may carry.
fn names_besides_transport(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(|n| n.as_str().to_owned())
        .filter(|n| {
            !matches!(
                n.as_str(),
                "date" | "content-length" | "server" | "strict-transport-security"
            )
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn preflight(
    edge: &EdgeWithBackend,
    path: &str,
    origin: &str,
    method: &str,
    request_headers: Option<&str>,
) -> Response {
    let mut req = edge
        .client()
        .request(Method::OPTIONS, edge.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if let Some(h) = request_headers {
        req = req.header("access-control-request-headers", h);
    }
    req.send().await.expect("preflight")
}

async fn get(edge: &EdgeWithBackend, path: &str, origin: Option<&str>) -> Response {
    let mut req = edge.client().get(edge.url(path));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    req.send().await.expect("request")
}

async fn start_cors(domains: &str, credentials: bool, exposed: &str) -> EdgeWithBackend {
    common::start_edge(&[
        ("MATTERMOST_CORS_DOMAINS", domains),
        (
            "MATTERMOST_CORS_ALLOW_CREDENTIALS",
            if credentials { "true" } else { "false" },
        ),
        ("MATTERMOST_CORS_EXPOSED_HEADERS", exposed),
    ])
    .await
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_is_answered_at_the_edge() {
    let edge = start_cors(
        "https://other.example https://chat.example.com",
        true,
        "X-Version-Id",
    )
    .await;
    // Origins match case-insensitively; the answer echoes the origin as the browser sent it.
    for origin in [ALLOWED, "HTTPS://Chat.Example.COM"] {
        let resp = preflight(
            &edge,
            "/api/v4/users/login",
            origin,
            "POST",
            Some(REQUESTED_HEADERS),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK, "{origin}");
        let h = resp.headers();
        assert_eq!(all(h, "vary"), [PREFLIGHT_VARY], "{origin}");
        assert_eq!(
            cors_headers(h),
            pairs(&[
                ("access-control-allow-origin", origin),
                ("access-control-allow-methods", "POST"),
                ("access-control-allow-headers", REQUESTED_HEADERS),
                ("access-control-allow-credentials", "true"),
                ("access-control-max-age", "86400"),
            ]),
            "{origin}"
        );
        // Nothing else: no rate-limit headers, nothing from Mattermost.
        let mut expected = vec![
            "access-control-allow-credentials",
            "access-control-allow-headers",
            "access-control-allow-methods",
            "access-control-allow-origin",
            "access-control-max-age",
            "vary",
            // The edge's own answers carry a request id for the access log (README).
            "x-request-id",
        ];
        expected.sort();
        assert_eq!(names_besides_transport(h), expected, "{origin}: {h:?}");
        assert_eq!(resp.text().await.expect("body"), "");
    }
    // Without requested headers there is no Allow-Headers; without credentials no Allow-Credentials.
    let resp = preflight(&edge, "/api/v4/posts", ALLOWED, "DELETE", None).await;
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[
            ("access-control-allow-origin", ALLOWED),
            ("access-control-allow-methods", "DELETE"),
            ("access-control-allow-credentials", "true"),
            ("access-control-max-age", "86400"),
        ])
    );
    assert_eq!(
        edge.backend.requests(),
        0,
        "preflights never reach Mattermost"
    );
}

#[tokio::test]
async fn preflight_without_credentials_has_no_credentials_header() {
    let edge = start_cors(ALLOWED, false, "").await;
    let resp = preflight(&edge, "/api/v4/users/me", ALLOWED, "PUT", Some("x-custom")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(all(resp.headers(), "vary"), [PREFLIGHT_VARY]);
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[
            ("access-control-allow-origin", ALLOWED),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-custom"),
            ("access-control-max-age", "86400"),
        ])
    );
    assert_eq!(edge.backend.requests(), 0);
}

#[tokio::test]
async fn preflight_from_a_refused_origin_gets_200_without_allow_headers() {
    let edge = start_cors(ALLOWED, true, "X-Version-Id").await;
    let refused = [
        ("https://evil.example", "POST"),
        // Same host, other scheme / port: other origins.
        ("http://chat.example.com", "POST"),
        ("https://chat.example.com:8443", "POST"),
        ("null", "POST"),
        // An allowed origin asking for a method outside the list.
        (ALLOWED, "TRACE"),
        (ALLOWED, "post"),
    ];
    for (origin, method) in refused {
        let resp = preflight(
            &edge,
            "/api/v4/users/login",
            origin,
            method,
            Some(REQUESTED_HEADERS),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK, "{origin} {method}");
        let h = resp.headers();
        assert_eq!(all(h, "vary"), [PREFLIGHT_VARY], "{origin} {method}");
        assert_eq!(cors_headers(h), [], "{origin} {method}");
        assert_eq!(
            names_besides_transport(h),
            ["vary", "x-request-id"],
            "{origin} {method}"
        );
    }
    assert_eq!(
        edge.backend.requests(),
        0,
        "preflights never reach Mattermost"
    );
}

#[tokio::test]
async fn actual_request_from_an_allowed_origin_gets_cors_headers() {
    let edge = start_cors(ALLOWED, true, "X-Version-Id x-request-id").await;
    let resp = get(&edge, "/api/v4/system/ping", Some(ALLOWED)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    assert_eq!(vary_origin_count(&h), 1, "{h:?}");
    assert_eq!(
        cors_headers(&h),
        pairs(&[
            ("access-control-allow-origin", ALLOWED),
            (
                "access-control-expose-headers",
                "X-Version-Id, X-Request-Id"
            ),
            ("access-control-allow-credentials", "true"),
        ])
    );
    assert_eq!(all(&h, "x-version-id"), [common::FAKE_VERSION_ID]);
    assert_eq!(resp.text().await.expect("body"), r#"{"status":"OK"}"#);
    assert_eq!(edge.backend.requests(), 1, "actual requests are proxied");

    // A plain OPTIONS (no Access-Control-Request-Method) is an actual request: it is proxied.
    let resp = edge
        .client()
        .request(Method::OPTIONS, edge.url("/api/v4/headers"))
        .header("origin", ALLOWED)
        .send()
        .await
        .expect("options");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        all(resp.headers(), "access-control-allow-origin"),
        [ALLOWED]
    );
    let seen: serde_json::Value =
        serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(seen["method"], "OPTIONS");
    assert_eq!(edge.backend.requests(), 2);
}

#[tokio::test]
async fn actual_request_without_credentials_or_exposed_headers() {
    let edge = start_cors(ALLOWED, false, "").await;
    let resp = get(&edge, "/api/v4/system/ping", Some(ALLOWED)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(vary_origin_count(resp.headers()), 1);
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[("access-control-allow-origin", ALLOWED)])
    );
}

#[tokio::test]
async fn actual_request_from_a_refused_origin_gets_no_cors_headers() {
    let edge = start_cors(ALLOWED, true, "X-Version-Id").await;
    // /api/v4/cors: Mattermost itself sends Access-Control-Allow-Origin: https://upstream.example.
    for origin in [
        Some("https://evil.example"),
        Some("https://upstream.example"),
        None,
    ] {
        let resp = get(&edge, "/api/v4/cors", origin).await;
        assert_eq!(resp.status(), StatusCode::OK, "{origin:?}");
        let h = resp.headers();
        assert_eq!(
            cors_headers(h),
            [],
            "{origin:?}: upstream ACAO must be removed"
        );
        assert_eq!(all(h, "vary"), ["Origin"], "{origin:?}");
        assert_eq!(all(h, "x-version-id"), [common::FAKE_VERSION_ID]);
    }
    // A response without Vary gets Vary: Origin too (the answer depends on Origin).
    let resp = get(&edge, "/api/v4/system/ping", Some("https://evil.example")).await;
    assert_eq!(cors_headers(resp.headers()), []);
    assert_eq!(all(resp.headers(), "vary"), ["Origin"]);
    assert_eq!(
        edge.backend.requests(),
        4,
        "refused actual requests are still served"
    );
}

#[tokio::test]
async fn upstream_cors_headers_are_replaced_not_duplicated() {
    let edge = start_cors(ALLOWED, true, "X-Version-Id").await;
    for client in [edge.client(), edge.client_h1()] {
        let resp = client
            .get(edge.url("/api/v4/cors"))
            .header("origin", ALLOWED)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(all(h, "access-control-allow-origin"), [ALLOWED], "{h:?}");
        assert_eq!(vary_origin_count(h), 1, "{h:?}");
        assert_eq!(
            cors_headers(h),
            pairs(&[
                ("access-control-allow-origin", ALLOWED),
                ("access-control-expose-headers", "X-Version-Id"),
                ("access-control-allow-credentials", "true"),
            ])
        );
    }
}

#[tokio::test]
async fn any_origin_with_credentials_echoes_the_origin() {
    let origin = "https://anything.example";
    let edge = start_cors("*", true, "").await;
    let resp = preflight(&edge, "/api/v4/posts", origin, "POST", Some("content-type")).await;
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", "POST"),
            ("access-control-allow-headers", "content-type"),
            ("access-control-allow-credentials", "true"),
            ("access-control-max-age", "86400"),
        ])
    );
    let resp = get(&edge, "/api/v4/cors", Some(origin)).await;
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[
            ("access-control-allow-origin", origin),
            ("access-control-allow-credentials", "true"),
        ])
    );
    assert_eq!(edge.backend.requests(), 1);
}

#[tokio::test]
async fn any_origin_without_credentials_sends_a_star() {
    let origin = "https://anything.example";
    // `*` anywhere in the list allows every origin.
    let edge = start_cors("https://chat.example.com *", false, "").await;
    let resp = preflight(&edge, "/api/v4/posts", origin, "GET", None).await;
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "GET"),
            ("access-control-max-age", "86400"),
        ])
    );
    let resp = get(&edge, "/api/v4/cors", Some(origin)).await;
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[("access-control-allow-origin", "*")])
    );
}

#[tokio::test]
async fn wildcard_entry_matches_subdomains_only() {
    let edge = start_cors("https://*.example.com", false, "").await;
    for origin in [
        "https://chat.example.com",
        "https://a.b.example.com",
        "HTTPS://CHAT.EXAMPLE.COM",
    ] {
        let resp = preflight(&edge, "/api/v4/posts", origin, "POST", None).await;
        assert_eq!(
            all(resp.headers(), "access-control-allow-origin"),
            [origin],
            "{origin} must be allowed"
        );
        let resp = get(&edge, "/api/v4/system/ping", Some(origin)).await;
        assert_eq!(
            cors_headers(resp.headers()),
            pairs(&[("access-control-allow-origin", origin)]),
            "{origin}"
        );
    }
    for origin in [
        "https://evil-example.com",
        "https://example.com",
        "http://chat.example.com",
        "https://chat.example.com.evil.net",
        "https://evil.com/.example.com",
    ] {
        let resp = preflight(&edge, "/api/v4/posts", origin, "POST", None).await;
        assert_eq!(cors_headers(resp.headers()), [], "{origin} must be refused");
        let resp = get(&edge, "/api/v4/system/ping", Some(origin)).await;
        assert_eq!(cors_headers(resp.headers()), [], "{origin} must be refused");
    }
}

#[tokio::test]
async fn disabled_mode_passes_options_through_untouched() {
    // No MATTERMOST_CORS_DOMAINS: the edge does no CORS handling at all.
    let edge = common::start_edge(&[]).await;
    let resp = preflight(
        &edge,
        "/api/v4/cors",
        ALLOWED,
        "POST",
        Some(REQUESTED_HEADERS),
    )
    .await;
    assert_eq!(
        edge.backend.requests(),
        1,
        "the preflight reached Mattermost"
    );
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers().clone();
    // Mattermost's answer, unchanged.
    assert_eq!(
        cors_headers(&h),
        pairs(&[("access-control-allow-origin", "https://upstream.example")])
    );
    assert_eq!(all(&h, "vary"), ["Origin"]);
    assert_eq!(all(&h, "x-version-id"), [common::FAKE_VERSION_ID]);
    assert_eq!(resp.text().await.expect("body"), "cors");

    // Mattermost sees the preflight as the browser sent it.
    let resp = preflight(
        &edge,
        "/api/v4/headers",
        ALLOWED,
        "POST",
        Some(REQUESTED_HEADERS),
    )
    .await;
    assert_eq!(edge.backend.requests(), 2);
    assert_eq!(cors_headers(resp.headers()), []);
    assert_eq!(all(resp.headers(), "vary"), Vec::<String>::new());
    let seen: serde_json::Value =
        serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(seen["method"], "OPTIONS");
    assert_eq!(seen["headers"]["origin"], serde_json::json!([ALLOWED]));
    assert_eq!(
        seen["headers"]["access-control-request-method"],
        serde_json::json!(["POST"])
    );
    assert_eq!(
        seen["headers"]["access-control-request-headers"],
        serde_json::json!([REQUESTED_HEADERS])
    );

    // Actual requests keep Mattermost's own CORS headers too.
    let resp = get(&edge, "/api/v4/cors", Some("https://evil.example")).await;
    assert_eq!(
        cors_headers(resp.headers()),
        pairs(&[("access-control-allow-origin", "https://upstream.example")])
    );
    assert_eq!(all(resp.headers(), "vary"), ["Origin"]);
}

#[tokio::test]
async fn preflights_are_not_rate_limited() {
    // One request per second, no burst: a fresh bucket passes exactly one request.
    let edge = common::start_edge(&[
        ("MATTERMOST_CORS_DOMAINS", ALLOWED),
        ("MATTERMOST_RATE_LIMIT_QPS", "1"),
        ("MATTERMOST_RATE_LIMIT_BURST", "0"),
    ])
    .await;
    let client = edge.client();
    let send_preflights = |n: usize| {
        let client = client.clone();
        let url = edge.url("/api/v4/posts");
        async move {
            for i in 0..n {
                let resp = client
                    .request(Method::OPTIONS, &url)
                    .header("origin", ALLOWED)
                    .header("access-control-request-method", "POST")
                    .send()
                    .await
                    .expect("preflight");
                assert_eq!(resp.status(), StatusCode::OK, "preflight {i}");
                assert_eq!(
                    all(resp.headers(), "access-control-allow-origin"),
                    [ALLOWED],
                    "preflight {i}"
                );
                assert!(
                    resp.headers().get("x-ratelimit-limit").is_none(),
                    "preflight {i} went through the limiter"
                );
            }
        }
    };
    // Were preflights limited, the second of these would already be refused, and the bucket
    // would stay empty for ~30 s after them.
    send_preflights(30).await;
    let first = get(&edge, "/api/v4/system/ping", Some(ALLOWED)).await;
    assert_eq!(
        first.status(),
        StatusCode::OK,
        "preflights used up the bucket"
    );
    // Actual requests are limited: at one per second, 30 in a row cannot all pass.
    let mut refused = None;
    let mut passed = 1;
    for i in 0..30 {
        let resp = get(&edge, "/api/v4/system/ping", Some(ALLOWED)).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(resp);
            break;
        }
        assert_eq!(resp.status(), StatusCode::OK, "request {i}");
        passed += 1;
    }
    let refused = refused.expect("actual requests were never rate limited");
    // The 429 carries the CORS headers, or the browser could not read it.
    assert_eq!(
        all(refused.headers(), "access-control-allow-origin"),
        [ALLOWED]
    );
    // The bucket is empty now; preflights still pass.
    send_preflights(30).await;
    assert_eq!(
        edge.backend.requests(),
        passed,
        "only actual requests that passed reach Mattermost"
    );
}

#[tokio::test]
async fn websocket_origin_and_host_pass_through_unchanged() {
    let edge = start_cors(ALLOWED, true, "").await;
    // Not an allowed CORS origin: Mattermost checks WebSocket origins itself, not the edge.
    for origin in [ALLOWED, "https://evil.example"] {
        let mut req = edge
            .wss_url("/api/v4/websocket")
            .into_client_request()
            .expect("ws request");
        req.headers_mut()
            .insert("origin", origin.parse().expect("origin"));
        let connector = tokio_tungstenite::Connector::Rustls(edge.rustls_config());
        let (mut ws, resp) = tokio::time::timeout(
            common::PATIENCE,
            tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector)),
        )
        .await
        .expect("WebSocket handshake in time")
        .expect("WebSocket through the edge");
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let hello = match tokio::time::timeout(common::PATIENCE, ws.next())
            .await
            .expect("hello in time")
        {
            Some(Ok(Message::Text(t))) => t.to_string(),
            other => panic!("expected the hello, got {other:?}"),
        };
        let hello: serde_json::Value = serde_json::from_str(&hello).expect("hello JSON");
        let host = edge.wss_url("").trim_start_matches("wss://").to_owned();
        assert_eq!(hello["origin"], origin, "{hello}");
        assert_eq!(hello["host"], host, "{hello}");
        ws.send(Message::text("ping")).await.expect("send");
        match tokio::time::timeout(common::PATIENCE, ws.next())
            .await
            .expect("echo in time")
        {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), "ping"),
            other => panic!("expected the echo, got {other:?}"),
        }
        let _ = ws.close(None).await;
    }
}

#[test]
fn invalid_entries_make_check_exit_2_naming_the_entry() {
    for entry in [
        "https://x.example/path",
        "https://x.example/",
        "example.com",
        "https://*.*.example.com",
    ] {
        let domains = format!("https://ok.example {entry}");
        let out = common::run(&[("MATTERMOST_CORS_DOMAINS", &domains)], &["check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{entry}: {stderr}");
        assert!(
            stderr.contains("MATTERMOST_CORS_DOMAINS"),
            "{entry}: the error names the setting: {stderr}"
        );
        assert!(
            stderr.contains(entry),
            "{entry}: the error names the entry: {stderr}"
        );
    }
    // The same list without the bad entry is fine, so the failures above are about the entry.
    let out = common::run(
        &[(
            "MATTERMOST_CORS_DOMAINS",
            "https://ok.example https://*.example.com * HTTP://127.0.0.1:8065",
        )],
        &["check"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
