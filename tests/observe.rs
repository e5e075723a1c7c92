//! What an admin sees: one access-log line per request and per WebSocket session (JSON or the
//! combined format), no secrets in it, request ids shared with Mattermost, and Prometheus metrics
//! that count exactly and that a real Prometheus scrapes.

mod common;

use common::{sample, scrape_metrics as scrape, Backend, Edge, FAKE_REQUEST_ID};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The line whose `outcome` is `outcome` (exactly one).
fn by_outcome<'a>(lines: &'a [Value], outcome: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == outcome).collect();
    assert_eq!(found.len(), 1, "one {outcome} line in {lines:#?}");
    found[0]
}

#[tokio::test]
async fn every_kind_of_answer_gets_one_json_line_with_its_fields() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_MAX_BODY", "1K"),
            ("MM_EDGE_UPSTREAM_TIMEOUT", "1s"),
            ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
            ("MATTERMOST_CORS_DOMAINS", "https://app.example"),
        ],
    );
    let ping = edge.url("/api/v4/system/ping?page=2");
    let resp = edge
        .client_h1()
        .get(&ping)
        .header("user-agent", "tester/1")
        .send()
        .await;
    assert_eq!(resp.expect("h1").status(), 200);
    let resp = edge.client().get(&ping).send().await.expect("h2");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let resp = edge
        .client_h1()
        .post(edge.url("/api/v4/files"))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 413);
    assert_eq!(edge.get(&edge.url("/api/v4/slow")).await.status(), 504);
    let resp = edge
        .client()
        .request(reqwest::Method::OPTIONS, edge.url("/api/v4/users"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(resp.status(), 200);
    let resp = edge.get(&edge.http_url("/login")).await;
    assert_eq!(resp.status(), 301);
    // A WebSocket session: one line when it closes.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        edge.wss_url("/api/v4/websocket"),
    )
    .expect("request");
    req.headers_mut()
        .insert("origin", "https://localhost".parse().expect("header"));
    let (mut ws, _) = common::wss_connect(&edge, req).await;
    let _hello = ws.next().await.expect("hello").expect("message");
    ws.send(Message::text("ping")).await.expect("send");
    let _echo = ws.next().await.expect("echo").expect("message");
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}

    let lines = parse(&edge.wait_for_access_lines(7));
    let h1 = lines
        .iter()
        .find(|l| l["protocol"] == "HTTP/1.1" && l["outcome"] == "proxied")
        .expect("HTTP/1.1 line");
    assert_eq!(h1["method"], "GET");
    assert_eq!(h1["path"], "/api/v4/system/ping");
    assert_eq!(h1["query"], "page=2");
    assert_eq!(h1["status"], 200);
    assert_eq!(h1["client_ip"], "127.0.0.1");
    assert_eq!(h1["upstream"], backend.url());
    assert_eq!(
        h1["request_id"], FAKE_REQUEST_ID,
        "Mattermost's own request id"
    );
    assert_eq!(h1["user_agent"], "tester/1");
    assert_eq!(h1["tls"], "TLSv1.3");
    assert!(h1["bytes_out"].as_u64().expect("bytes_out") > 0);
    assert!(h1["upstream_ms"].as_f64().is_some() && h1["duration_ms"].as_f64().is_some());
    assert!(h1["time"].as_str().expect("time").ends_with('Z'));
    assert!(lines
        .iter()
        .any(|l| l["protocol"] == "HTTP/2" && l["outcome"] == "proxied"));
    let too_large = by_outcome(&lines, "too_large");
    assert_eq!(too_large["status"], 413);
    assert!(
        too_large.get("upstream").is_none(),
        "the edge answered: {too_large}"
    );
    assert_eq!(
        too_large["request_id"]
            .as_str()
            .expect("edge-made id")
            .len(),
        26
    );
    assert_eq!(by_outcome(&lines, "upstream_timeout")["status"], 504);
    assert_eq!(by_outcome(&lines, "cors_preflight")["status"], 200);
    assert_eq!(by_outcome(&lines, "redirect")["status"], 301);
    let ws_line = by_outcome(&lines, "websocket");
    assert_eq!(ws_line["protocol"], "websocket");
    assert_eq!(ws_line["status"], 101);
    assert!(ws_line["bytes_in"].as_u64().expect("bytes_in") > 0);
    assert!(ws_line["bytes_out"].as_u64().expect("bytes_out") > 0);
}

#[tokio::test]
async fn refused_and_unreachable_are_logged_with_their_outcome() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MATTERMOST_RATE_LIMIT_QPS", "1"),
            ("MATTERMOST_RATE_LIMIT_BURST", "0"),
        ],
    );
    let client = edge.client_h1();
    let first = client
        .get(edge.url("/api/v4/x"))
        .send()
        .await
        .expect("first");
    assert_eq!(first.status(), 200);
    let refused = client
        .get(edge.url("/api/v4/x"))
        .send()
        .await
        .expect("second");
    assert_eq!(refused.status(), 429);
    let id = refused.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    let lines = parse(&edge.wait_for_access_lines(2));
    let limited = by_outcome(&lines, "rate_limited");
    assert_eq!(limited["status"], 429);
    assert_eq!(limited["request_id"], id, "the id sent is the id logged");

    let (_guard, refused) = common::refused_addr();
    let dead = Edge::builder(&format!("http://{refused}")).spawn();
    assert_eq!(dead.get(&dead.url("/api/v4/x")).await.status(), 502);
    let lines = parse(&dead.wait_for_access_lines(1));
    assert_eq!(by_outcome(&lines, "upstream_refused")["status"], 502);
}

#[tokio::test]
async fn secrets_never_reach_the_access_log() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let resp = edge
        .client_h1()
        .get(edge.url(
            "/api/v4/files/abc?access_token=SECRET1&token=SECRET2&h=SECRET3&t=SECRET4&code=SECRET5&state=SECRET6&d=SECRET7&id=SECRET8&page=1",
        ))
        .header("authorization", "Bearer SECRET9")
        .header("cookie", "MMAUTHTOKEN=SECRET10")
        .header("referer", "https://chat.example.com/login?code=SECRET11&state=SECRET12#token=SECRET13")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let lines = edge.wait_for_access_lines(1);
    let text = lines.join("\n");
    assert!(!text.contains("SECRET"), "a secret was logged: {text}");
    let line = &parse(&lines)[0];
    assert!(line["query"]
        .as_str()
        .expect("query")
        .contains("access_token=REDACTED"));
    assert!(line["query"].as_str().expect("query").ends_with("page=1"));
}

#[tokio::test]
async fn request_ids_come_from_mattermost_or_a_trusted_proxy_else_from_the_edge() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    // An untrusted client's id is neither believed nor forwarded.
    let resp = edge
        .client_h1()
        .get(edge.url("/static/app.js"))
        .header("x-request-id", "client-made-id")
        .send()
        .await
        .expect("request");
    let sent = resp.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(sent.len(), 26, "{sent}");
    assert_ne!(sent, "client-made-id");
    let seen: Value = edge
        .client_h1()
        .get(edge.url("/api/v4/headers"))
        .header("x-request-id", "client-made-id")
        .send()
        .await
        .expect("headers")
        .json()
        .await
        .expect("json");
    assert!(seen["headers"].get("x-request-id").is_none(), "{seen}");
    // Through a trusted proxy, its id is the request's (when Mattermost sends none).
    let trusting = Edge::start(&backend, &[("MM_EDGE_TRUSTED_PROXIES", "127.0.0.1")]);
    let resp = trusting
        .client_h1()
        .get(trusting.url("/static/app.js"))
        .header("x-request-id", "lbmadeid0000000000000000000")
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.headers()["x-request-id"],
        "lbmadeid0000000000000000000"
    );
    let lines = parse(&trusting.wait_for_access_lines(1));
    assert_eq!(lines[0]["request_id"], "lbmadeid0000000000000000000");
}

#[tokio::test]
async fn the_combined_format_is_what_log_tools_parse() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_ACCESS_LOG_FORMAT", "combined")]);
    let resp = edge
        .client_h1()
        .get(edge.url("/api/v4/users/me?token=SECRET"))
        .header("user-agent", "Mozilla/5.0 \"quoted\"")
        .header("referer", "https://chat.example.com/")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let body_len = resp.bytes().await.expect("body").len();
    let lines = edge.wait_for_access_lines(1);
    let re = regex::Regex::new(
        r#"^(\S+) - - \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "(\S+) (\S+) (\S+)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$"#,
    )
    .expect("regex");
    let caps = re
        .captures(&lines[0])
        .unwrap_or_else(|| panic!("not the combined format: {}", lines[0]));
    assert_eq!(&caps[1], "127.0.0.1");
    assert_eq!(&caps[3], "GET");
    assert_eq!(&caps[4], "/api/v4/users/me?token=REDACTED");
    assert_eq!(&caps[5], "HTTP/1.1");
    assert_eq!(&caps[6], "200");
    assert_eq!(caps[7].parse::<usize>().expect("bytes"), body_len);
    assert_eq!(&caps[8], "https://chat.example.com/");
    assert_eq!(&caps[9], "Mozilla/5.0 \\x22quoted\\x22");
}

#[tokio::test]
async fn metrics_count_exactly_and_live_on_their_own_listener_only() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
        ],
    );
    let series = "mm_edge_http_requests_total{route=\"api\",method=\"GET\",code=\"200\"}";
    let before = sample(&scrape(&edge).await, series);
    let client = edge.client_h1();
    for _ in 0..7 {
        let resp = client.get(edge.url("/api/v4/system/ping")).send().await;
        resp.expect("request").bytes().await.expect("body");
    }
    // The logging step runs as each response ends; the access log says when all have.
    edge.wait_for_access_lines(8);
    let text = scrape(&edge).await;
    assert_eq!(sample(&text, series) - before, 7.0, "{text}");
    for name in [
        "mm_edge_http_request_duration_seconds_bucket",
        "mm_edge_upstream_response_seconds_count",
        "mm_edge_connections_open",
        "mm_edge_websocket_tunnels_open",
        "mm_edge_bytes_total{direction=\"out\"}",
        "mm_edge_upstream_up{server=",
        "mm_edge_tls_handshake_failures_total",
        "mm_edge_certificate_expiry_timestamp_seconds",
        "mm_edge_access_log_dropped_total",
        "mm_edge_rate_limited_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    // Not on the public listener.
    let resp = edge.get(&edge.url("/metrics")).await;
    assert!(!resp
        .text()
        .await
        .expect("body")
        .contains("mm_edge_http_requests_total"));
    common::promtool_check(&text);
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_edge() {
    let Some(prometheus) = common::tool("prometheus") else {
        return;
    };
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0")]);
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mm-edge\n    static_configs:\n      - targets: ['{}']\n",
            edge.metrics.expect("metrics")
        ),
    )
    .expect("config");
    let mut prom = std::process::Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    // Two scrapes seen by the edge: the first one is stored by then.
    let scrapes = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.contains("\"path\":\"/metrics\"") && l.contains("Prometheus/"))
            .count()
    };
    let mut lines = edge.access_lines();
    while scrapes(&lines) < 2 {
        lines = edge.wait_for_access_lines(lines.len() + 1);
    }
    // Prometheus has its web listener open by then.
    let port = common::listening_port(prom.id()).expect("prometheus's port");
    let resp: Value = reqwest::get(format!(
        "http://127.0.0.1:{port}/api/v1/query?query=up%7Bjob%3D%22mm-edge%22%7D"
    ))
    .await
    .expect("query")
    .json()
    .await
    .expect("json");
    let _ = prom.kill();
    let _ = prom.wait();
    assert_eq!(resp["data"]["result"][0]["value"][1], "1", "{resp}");
    let lines = parse(&edge.access_lines());
    assert!(lines
        .iter()
        .any(|l| l["path"] == "/metrics" && l["status"] == 200));
}

#[tokio::test]
async fn a_full_log_buffer_drops_lines_and_counts_them_but_never_a_request() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let fifo = dir.path().join("access.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Open for reading (without blocking: O_NONBLOCK) and never read: once the pipe is full,
    // the edge's writer blocks, as on a stuck disk.
    use std::os::unix::fs::OpenOptionsExt;
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o4000)
        .open(&fifo)
        .expect("open fifo");
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_ACCESS_LOG", fifo.to_str().expect("utf-8")),
            ("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("MATTERMOST_ENABLE_RATE_LIMIT", "false"),
        ],
    );
    let client = edge.client();
    let total = mm_edge::observe::access_log::BUFFERED_LINES + 1000;
    let url = edge.url("/api/v4/system/ping");
    let statuses = futures_util::stream::iter(0..total)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "a request failed while the log was stuck"
    );
    let text = scrape(&edge).await;
    let dropped = sample(&text, "mm_edge_access_log_dropped_total");
    assert!(dropped > 0.0, "no line counted as dropped:\n{text}");
}

#[tokio::test]
async fn metrics_answer_while_clients_hold_every_connection_slot() {
    let backend = Backend::start().await;
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("MM_EDGE_MAX_CONNECTIONS", "2"),
        ],
    );
    // More silent clients than slots: the edge accepts two (they sit in the TLS handshake), the
    // rest wait in the kernel's queue.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            tokio::net::TcpStream::connect(edge.https.expect("tls"))
                .await
                .expect("connect"),
        );
    }
    let edge = tokio::task::spawn_blocking(move || {
        edge.wait_for_log("connection limit reached");
        edge
    })
    .await
    .expect("limit reached");
    let text = tokio::time::timeout(common::PATIENCE, scrape(&edge))
        .await
        .expect("a scrape while clients hold every slot");
    assert!(text.contains("process_open_fds"), "{text}");
    drop(held);
}
