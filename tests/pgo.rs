//! `contrib/pgo-build`, the profile-guided build: it trains an instrumented mm-edge on real
//! traffic (an nginx backend, h2load over HTTP/1.1 and HTTP/2, uploads, WebSockets), merges the
//! profiles, and builds a binary that proxies like the plain release build; bad input is refused
//! before anything is built.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{echoed_once as one, Backend, Edge};
use serde_json::Value;

/// Two release builds and the training: minutes, not seconds. A hang still fails the test.
const BUILD_PATIENCE: Duration = Duration::from_secs(40 * 60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/pgo-build")
}

/// Runs the script with `env` and `args`; killed (and failed) after `patience`.
fn pgo_build(env: &[(&str, &str)], args: &[&Path], patience: Duration) -> Output {
    let mut cmd = Command::new(script());
    cmd.envs(env.iter().copied()).args(args);
    common::output_within(cmd, patience, "contrib/pgo-build")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_bad_request_count_is_refused_before_building() {
    for (value, says) in [
        ("many", "PGO_REQUESTS='many' is not a number"),
        ("10", "PGO_REQUESTS=10 is too few"),
    ] {
        let out = pgo_build(&[("PGO_REQUESTS", value)], &[], Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{}", text(&out));
        assert!(
            stderr.contains("PGO_REQUESTS=60000"),
            "names the fix: {}",
            text(&out)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("instrumented build"),
            "nothing built: {}",
            text(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trained_build_proxies_like_the_release_build() {
    for t in ["nginx", "h2load", "openssl", "curl", "python3", "taskset"] {
        if common::tool(t).is_none() {
            return;
        }
    }
    let out_dir = tempfile::tempdir().expect("temp dir");
    let bin = out_dir.path().join("mm-edge");
    // A short training: this checks the pipeline, bench/instructions measures the result.
    let out = tokio::task::spawn_blocking({
        let bin = bin.clone();
        move || pgo_build(&[("PGO_REQUESTS", "600")], &[&bin], BUILD_PATIENCE)
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let functions: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("contrib/pgo-build: profile of "))
        .and_then(|l| l.strip_suffix(" functions"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no profile summary: {}", text(&out)));
    assert!(
        functions > 1000,
        "the merged profile covers {functions} functions: {}",
        text(&out)
    );

    let version = |b: &Path| {
        let out = common::command_for(b)
            .arg("--version")
            .output()
            .expect("--version");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        version(&bin),
        version(&common::binary()),
        "same crate version"
    );

    // The trained binary is a working edge: HTTP/1.1 and HTTP/2 through it reach the fake
    // Mattermost with the forwarding headers, and the plain listener redirects.
    let backend = Backend::start().await;
    let edge = Edge::builder(&backend.url()).binary(bin).spawn();
    for (client, want) in [
        (edge.client_h1(), reqwest::Version::HTTP_11),
        (edge.client(), reqwest::Version::HTTP_2),
    ] {
        let resp = client
            .get(edge.url("/api/v4/headers"))
            .send()
            .await
            .expect("request through the trained build");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), want);
        let seen: Value = resp.json().await.expect("json");
        assert_eq!(seen["version"], "HTTP/1.1");
        assert_eq!(one(&seen, "x-forwarded-proto"), "https");
        assert_eq!(one(&seen, "x-forwarded-for"), "127.0.0.1");
    }
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(edge.http_url("/channels/town-square"))
        .send()
        .await
        .expect("plain request");
    assert_eq!(redirect.status(), 301);
}
