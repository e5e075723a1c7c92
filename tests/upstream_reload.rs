//! SIGHUP re-reads the upstream list (issue 15) from the TOML file or the env file given with
//! `--env-file`: servers are added and removed while serving, a removed server's in-flight
//! request and WebSocket finish on it, and its connections close once they have. Settings that
//! do not load change nothing; other changed settings are named for a restart.
//!
//! Which server answered is read from the access log's `upstream` field; every wait is for a log
//! line or a backend's connection count (events), never for time.

mod common;

use std::path::Path;

use common::{Backend, Edge};
use futures_util::SinkExt;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ECHO: &str = "/api/v4/headers";
fn write(path: &Path, text: &str) {
    // Written aside and renamed in, as editors and config managers do: the edge never reads
    // half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// An edge whose settings come from `--env-file` (or `--config`) instead of the harness's
/// MM_EDGE_UPSTREAMS (the process environment would win over either file).
fn edge_with(flag: &str, file: &Path) -> Edge {
    Edge::builder("unused")
        .without_env("MM_EDGE_UPSTREAMS")
        .env("MATTERMOST_ENABLE_RATE_LIMIT", "false")
        .env("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0")
        .arg(flag)
        .arg(file.to_str().expect("utf-8 path"))
        .spawn()
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_env_file_and_drains_the_removed_server() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("mm-edge.env");
    write(&env_file, &format!("MM_EDGE_UPSTREAMS={}\n", a.url()));
    let edge = edge_with("--env-file", &env_file);
    assert!(common::answered_by(&edge, ECHO, 4)
        .await
        .iter()
        .all(|s| *s == a.url()));

    // In flight on A: a request Mattermost has not answered yet, and a WebSocket.
    let client = edge.client();
    let held = tokio::spawn(client.get(edge.url("/api/v4/hold")).send());
    a.wait_held().await;
    let req = edge
        .wss_url("/api/v4/websocket")
        .into_client_request()
        .expect("request");
    let (mut ws, resp) = common::wss_connect(&edge, req).await;
    assert_eq!(resp.status(), 101);
    common::next_text(&mut ws).await;

    // The server moves: A out, B in.
    write(
        &env_file,
        &format!("# moved\nexport MM_EDGE_UPSTREAMS=\"{}\"\n", b.url()),
    );
    edge.signal("HUP");
    edge.wait_for_log("SIGHUP: upstream servers changed");
    let log = edge.log();
    assert!(log.contains(&format!("added={}", b.url())), "{log}");
    assert!(log.contains(&format!("removed={}", a.url())), "{log}");
    let servers = common::answered_by(&edge, ECHO, 6).await;
    assert!(servers.iter().all(|s| *s == b.url()), "{servers:?}");

    // What was in flight on A finishes there.
    ws.send(Message::text("still here")).await.expect("send");
    assert_eq!(common::next_text(&mut ws).await, "still here");
    a.release();
    let resp = held.await.expect("join").expect("held request answered");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.expect("body"), "released");
    ws.close(None).await.expect("close");
    // Then A's connections close (none is kept idle for a server that is gone).
    a.wait_until("every connection from the edge closed", |a| a.open() == 0)
        .await;

    let text = common::scrape_metrics(&edge).await;
    assert!(
        !text.contains(&format!("mm_edge_upstream_up{{server=\"{}\"}}", a.url())),
        "{text}"
    );
    let up_b = common::sample(
        &text,
        &format!("mm_edge_upstream_up{{server=\"{}\"}}", b.url()),
    );
    assert_eq!(up_b, 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_do_not_load_change_nothing() {
    let a = Backend::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("mm-edge.env");
    write(&env_file, &format!("MM_EDGE_UPSTREAMS={}\n", a.url()));
    let edge = edge_with("--env-file", &env_file);

    write(&env_file, "MM_EDGE_UPSTREAMS=ftp://127.0.0.1:1\n");
    edge.signal("HUP");
    edge.wait_for_log_count("SIGHUP: settings not reloaded", 1);
    assert!(edge.log().contains("MM_EDGE_UPSTREAMS"), "{}", edge.log());
    assert!(common::answered_by(&edge, ECHO, 3)
        .await
        .iter()
        .all(|s| *s == a.url()));

    write(&env_file, "MM_EDGE_UPSTREAMS=\"unclosed\n");
    edge.signal("HUP");
    edge.wait_for_log_count("SIGHUP: settings not reloaded", 2);
    assert!(edge.log().contains("line 1"), "{}", edge.log());

    std::fs::remove_file(&env_file).expect("remove");
    edge.signal("HUP");
    edge.wait_for_log_count("SIGHUP: settings not reloaded", 3);
    assert!(edge.log().contains("cannot read it"), "{}", edge.log());
    assert!(common::answered_by(&edge, ECHO, 3)
        .await
        .iter()
        .all(|s| *s == a.url()));
    assert!(!edge.log().contains("upstream servers changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_toml_file_and_names_settings_needing_a_restart() {
    let (a, b) = (Backend::start().await, Backend::start().await);
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = dir.path().join("mm-edge.toml");
    write(&toml, &format!("[upstream]\nservers = [\"{}\"]\n", a.url()));
    let edge = edge_with("--config", &toml);
    assert!(common::answered_by(&edge, ECHO, 3)
        .await
        .iter()
        .all(|s| *s == a.url()));

    write(
        &toml,
        &format!(
            "[upstream]\nservers = [\"{}\", \"{}\"]\n\n[server]\nkeepalive_timeout = \"30s\"\n",
            a.url(),
            b.url()
        ),
    );
    edge.signal("HUP");
    edge.wait_for_log("SIGHUP: upstream servers changed");
    // Logged after the list's line.
    edge.wait_for_log("take effect only after a restart");
    let log = edge.log();
    assert!(log.contains("settings=server.keepalive_timeout\n"), "{log}");
    let servers = common::answered_by(&edge, ECHO, 8).await;
    assert!(
        servers.contains(&a.url()) && servers.contains(&b.url()),
        "{servers:?}"
    );

    // The same list again: nothing changes, nothing drains.
    edge.signal("HUP");
    edge.wait_for_log("SIGHUP: upstream servers unchanged");
    assert_eq!(edge.log().matches("upstream servers changed").count(), 1);
}

#[test]
fn an_unreadable_env_file_at_start_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.env");
    let out = common::run(
        &[],
        &["--env-file", missing.to_str().expect("utf-8"), "check"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--env-file") && err.contains("nope.env") && err.contains("cannot read it"),
        "{err}"
    );
    let bad = dir.path().join("bad.env");
    std::fs::write(
        &bad,
        "MM_EDGE_UPSTREAMS=http://127.0.0.1:8065\nnot a line\n",
    )
    .expect("write");
    let out = common::run(&[], &["--env-file", bad.to_str().expect("utf-8"), "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.env line 2"), "{err}");
}

#[test]
fn the_env_file_sets_settings_and_the_environment_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mm-edge.env");
    std::fs::write(
        &file,
        "MM_EDGE_UPSTREAMS=http://127.0.0.1:18065\nMATTERMOST_RATE_LIMIT_QPS=7\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8");
    let out = common::run(
        &[("MATTERMOST_RATE_LIMIT_QPS", "9")],
        &["--env-file", path, "check"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("http://127.0.0.1:18065"), "{text}");
    assert!(text.contains("rate_limit.per_sec = \"9\""), "{text}");
}
