//! CORS as a browser sees it (issue 4). Debian's headless `chromium` loads a page served by the
//! test from `http://127.0.0.1:A`. The page's script calls the edge at `https://127.0.0.1:B` with
//! `fetch()`, a custom request header and `credentials: "include"`, then opens a WebSocket through
//! the edge. It POSTs what happened back to the page server, and the test waits for that POST on a
//! channel; the timeout only bounds a failure and is not used to synchronise.
//!
//! The edge offers h2 via ALPN, so Chrome uses h2 for `fetch()`; it opens the WebSocket over a
//! separate HTTP/1.1 connection because the edge does not enable Extended CONNECT (RFC 8441). The
//! fake Mattermost greets each WebSocket with a JSON hello naming the `Host` and `Origin` it saw,
//! then echoes; the tests check both arrive unchanged.
//!
//! The browser trusts only the edge's own certificate, pinned by SPKI hash with
//! `--ignore-certificate-errors-spki-list`; the page has no blanket `--ignore-certificate-errors`.
//! Without chromium the tests skip with a message, except under `CI=true`, where they fail.

mod common;

use common::browser;

use std::time::Duration;

use serde_json::Value;

/// Failure bound for one page run (browser start, preflight, fetch, WebSocket, report).
const PAGE_TIMEOUT: Duration = Duration::from_secs(90);
const WS_PATH: &str = "/api/v4/websocket";
const WS_GREETING: &str = "hello from the browser";

#[tokio::test]
async fn allowed_origin_fetches_with_credentials_and_opens_a_websocket() {
    let Some(chromium) = browser::chromium_or_skip() else {
        return;
    };
    let page = browser::PageServer::bind().expect("bind page server");
    let page_origin = page.origin();
    let domains = format!("https://chat.example.com {page_origin}");
    let edge = common::start_edge(&[
        ("MATTERMOST_CORS_DOMAINS", &domains),
        ("MATTERMOST_CORS_ALLOW_CREDENTIALS", "true"),
        ("MATTERMOST_CORS_EXPOSED_HEADERS", "X-Version-Id"),
    ])
    .await;

    let report = probe(chromium, page, &edge).await;

    assert_eq!(report["fetch"]["ok"], true, "fetch failed: {report}");
    assert_eq!(report["fetch"]["status"], 200, "{report}");
    assert_eq!(report["fetch"]["body"], "{\"status\":\"OK\"}", "{report}");
    // Readable from script only because the edge sent Access-Control-Expose-Headers.
    assert_eq!(
        report["fetch"]["versionId"],
        common::FAKE_VERSION_ID,
        "{report}"
    );
    assert_ws_passed_through(&report, &page_origin, &edge);
}

/// The WebSocket opened through the edge (Chrome falls back to HTTP/1.1 for it, since the edge
/// does not offer Extended CONNECT on h2), reached the backend with the browser's `Origin` and
/// `Host` unchanged, and echoed.
fn assert_ws_passed_through(report: &Value, page_origin: &str, edge: &common::Edge) {
    assert_eq!(report["ws"]["ok"], true, "WebSocket failed: {report}");
    assert_eq!(report["ws"]["hello"]["origin"], page_origin, "{report}");
    let host = edge
        .https_origin()
        .trim_start_matches("https://")
        .to_owned();
    assert_eq!(report["ws"]["hello"]["host"], host, "{report}");
    assert_eq!(report["ws"]["echo"], WS_GREETING, "{report}");
}

#[tokio::test]
async fn any_origin_with_credentials_works_because_the_origin_is_echoed() {
    let Some(chromium) = browser::chromium_or_skip() else {
        return;
    };
    let page = browser::PageServer::bind().expect("bind page server");
    let page_origin = page.origin();
    let edge = common::start_edge(&[
        ("MATTERMOST_CORS_DOMAINS", "*"),
        ("MATTERMOST_CORS_ALLOW_CREDENTIALS", "true"),
    ])
    .await;

    let report = probe(chromium, page, &edge).await;

    assert_eq!(report["fetch"]["ok"], true, "fetch failed: {report}");
    assert_eq!(report["fetch"]["status"], 200, "{report}");
    // Not exposed: the browser hides the header from script.
    assert_eq!(report["fetch"]["versionId"], Value::Null, "{report}");
    assert_ws_passed_through(&report, &page_origin, &edge);
}

#[tokio::test]
async fn refused_origin_cannot_fetch() {
    let Some(chromium) = browser::chromium_or_skip() else {
        return;
    };
    let page = browser::PageServer::bind().expect("bind page server");
    let page_origin = page.origin();
    // Same host, other port: a different origin, so it must be refused.
    let edge = common::start_edge(&[
        (
            "MATTERMOST_CORS_DOMAINS",
            "https://chat.example.com http://127.0.0.1:1",
        ),
        ("MATTERMOST_CORS_ALLOW_CREDENTIALS", "true"),
    ])
    .await;

    let report = probe(chromium, page, &edge).await;

    assert_eq!(report["fetch"]["ok"], false, "fetch succeeded: {report}");
    assert_eq!(
        report["fetch"]["error"], "TypeError: Failed to fetch",
        "{report}"
    );
    // WebSockets are not subject to CORS: the edge passes them through with the Origin intact
    // and Mattermost decides (the fake backend accepts every origin).
    assert_ws_passed_through(&report, &page_origin, &edge);
}

/// Serves the probe page, runs chromium on it and returns the page's JSON report.
async fn probe(
    chromium: std::path::PathBuf,
    page: browser::PageServer,
    edge: &common::Edge,
) -> Value {
    let html = probe_page(&edge.https_origin(), &edge.wss_url(WS_PATH), WS_GREETING);
    let spki = browser::spki_sha256_base64(&edge.cert_der()).expect("edge certificate SPKI");
    let run = tokio::task::spawn_blocking(move || {
        let page = page.serve(html);
        browser::run_page(&chromium, &page, &spki, PAGE_TIMEOUT)
    });
    let body = match run.await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => panic!("browser run failed: {e}"),
        Err(e) => panic!("browser task failed: {e}"),
    };
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("report is not JSON ({e}): {body}"))
}

/// The probe page. The script reports
/// `{"fetch": {ok, status, body, versionId} | {ok: false, error},
///   "ws": {ok, hello, echo} | {ok: false, hello, error}}`, where `hello` is the backend's
/// first WebSocket message (JSON) and `echo` the next one.
fn probe_page(api_origin: &str, ws_url: &str, greeting: &str) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>mm-edge CORS probe</title>
<script>
const API = {api}, WS = {ws}, GREETING = {greeting};
async function probeFetch() {{
  try {{
const r = await fetch(API + "/api/v4/system/ping", {{
  method: "PUT",
  credentials: "include",
  headers: {{"X-Requested-With": "XMLHttpRequest", "Content-Type": "application/json"}},
  body: "{{}}",
}});
return {{ok: true, status: r.status, body: await r.text(), versionId: r.headers.get("X-Version-Id")}};
  }} catch (e) {{
return {{ok: false, error: String(e)}};
  }}
}}
function probeWebSocket() {{
  return new Promise((resolve) => {{
let ws, hello = null;
try {{ ws = new WebSocket(WS); }} catch (e) {{ resolve({{ok: false, error: String(e)}}); return; }}
ws.onopen = () => ws.send(GREETING);
// The backend greets first (hello: the Host and Origin it saw), then echoes.
ws.onmessage = (ev) => {{
  const data = String(ev.data);
  if (hello === null) {{
try {{ hello = JSON.parse(data); }} catch (e) {{ hello = {{unparsed: data}}; }}
return;
  }}
  resolve({{ok: true, hello: hello, echo: data}});
  ws.close();
}};
ws.onerror = () => resolve({{ok: false, hello: hello, error: "error event"}});
ws.onclose = (ev) => resolve({{ok: false, hello: hello, error: "closed with code " + ev.code}});
  }});
}}
(async () => {{
  const report = {{fetch: await probeFetch(), ws: await probeWebSocket()}};
  await fetch("/results", {{method: "POST", body: JSON.stringify(report)}});
}})();
</script>"#,
        api = quote(api_origin),
        ws = quote(ws_url),
        greeting = quote(greeting),
    )
}

// The browser driver's own helpers, tested here once (tests/common is built into every test).

#[test]
fn base64_matches_rfc4648_vectors() {
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (input, expected) in cases {
        assert_eq!(browser::base64(input.as_bytes()), expected);
    }
}

#[test]
fn spki_hash_matches_the_key_pair() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let from_cert = browser::spki_sha256_base64(certified.cert.der()).expect("parse");
    let from_key = browser::base64(&<sha2::Sha256 as sha2::Digest>::digest(
        rcgen::PublicKeyData::subject_public_key_info(&certified.signing_key),
    ));
    assert_eq!(from_cert, from_key);
    assert!(browser::spki_sha256_base64(b"\x30\x03\x02\x01").is_err());
}
