//! Bad configuration exits with code 2 and one message naming the setting, the value and the fix;
//! `check` validates and prints the effective settings.

mod common;

use common::run;

fn fails_naming(env: &[(&str, &str)], args: &[&str], needles: &[&str]) {
    let out = run(env, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code for {env:?} {args:?}; stderr:\n{stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr names {n:?}:\n{stderr}");
    }
}

#[test]
fn unparseable_values_name_the_variable_and_value() {
    fails_naming(
        &[("MATTERMOST_RATE_LIMIT_QPS", "abc")],
        &["check"],
        &["MATTERMOST_RATE_LIMIT_QPS=abc", "whole number"],
    );
    fails_naming(
        &[("MM_EDGE_UPSTREAM_TIMEOUT", "soon")],
        &["check"],
        &["MM_EDGE_UPSTREAM_TIMEOUT=soon", "30s"],
    );
    fails_naming(
        &[("MM_EDGE_MAX_BODY", "12X")],
        &["check"],
        &["MM_EDGE_MAX_BODY=12X", "110M"],
    );
    fails_naming(
        &[("MATTERMOST_HTTPS", "maybe")],
        &["check"],
        &["MATTERMOST_HTTPS=maybe", "true or false"],
    );
    fails_naming(
        &[("MM_EDGE_HTTPS_LISTEN", "443")],
        &["check"],
        &["MM_EDGE_HTTPS_LISTEN=443", "[::]:443"],
    );
    fails_naming(
        &[("MM_EDGE_UPSTREAMS", "mattermost:8065")],
        &["check"],
        &["MM_EDGE_UPSTREAMS"],
    );
    fails_naming(
        &[],
        &["check", "--rate-limit-per-sec", "zero"],
        &["--rate-limit-per-sec zero"],
    );
    // The same failures stop `run` before it listens.
    fails_naming(
        &[("MATTERMOST_RATE_LIMIT_QPS", "abc")],
        &["run"],
        &["MATTERMOST_RATE_LIMIT_QPS=abc"],
    );
}

#[test]
fn unknown_toml_key_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("edge.toml");
    std::fs::write(&file, "[rate_limit]\nper_second = 10\n").expect("write");
    fails_naming(
        &[],
        &["check", "--config", file.to_str().expect("utf-8")],
        &["unknown key `rate_limit.per_second`"],
    );
    let file2 = dir.path().join("bad.toml");
    std::fs::write(&file2, "[site\nhost = 1\n").expect("write");
    fails_naming(
        &[("MM_EDGE_CONFIG", file2.to_str().expect("utf-8"))],
        &["check"],
        &["not valid TOML"],
    );
    fails_naming(
        &[],
        &["check", "--config", "/nonexistent/mm-edge.toml"],
        &["/nonexistent/mm-edge.toml", "cannot read"],
    );
}

#[test]
fn missing_or_unusable_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    fails_naming(
        &[
            ("MM_EDGE_TLS_CERT", "/nonexistent/cert.pem"),
            ("MM_EDGE_TLS_KEY", "/nonexistent/key.pem"),
        ],
        &["check"],
        &["MM_EDGE_TLS_CERT=/nonexistent/cert.pem", "cannot be read"],
    );
    let g = garbage.to_str().expect("utf-8");
    fails_naming(
        &[("MM_EDGE_TLS_CERT", g), ("MM_EDGE_TLS_KEY", g)],
        &["check"],
        &["MM_EDGE_TLS_CERT", "PEM certificate"],
    );
    fails_naming(
        &[("MM_EDGE_TLS_CERT", g)],
        &["check"],
        &["MM_EDGE_TLS_KEY is not set"],
    );
    let state = tempfile::tempdir().expect("dir");
    fails_naming(
        &[
            ("MM_EDGE_TLS_CERT", g),
            ("MM_EDGE_TLS_KEY", g),
            ("MM_EDGE_STATE_DIR", state.path().to_str().expect("utf-8")),
            ("MM_EDGE_HTTPS_LISTEN", "127.0.0.1:0"),
            ("MM_EDGE_HTTP_LISTEN", "127.0.0.1:0"),
        ],
        &["run"],
        &["MM_EDGE_TLS_CERT"],
    );
}

#[test]
fn port_in_use_is_refused_naming_the_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let state = tempfile::tempdir().expect("dir");
    fails_naming(
        &[
            ("MM_EDGE_HTTPS_LISTEN", "127.0.0.1:0"),
            ("MM_EDGE_HTTP_LISTEN", &addr),
            ("MM_EDGE_STATE_DIR", state.path().to_str().expect("utf-8")),
        ],
        &["run"],
        &[&format!("MM_EDGE_HTTP_LISTEN={addr}"), "cannot listen"],
    );
}

#[test]
fn check_prints_effective_settings_and_version_and_help_work() {
    let out = run(&[("MATTERMOST_RATE_LIMIT_QPS", "25")], &["check"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rate_limit.per_sec = \"25\"  # env MATTERMOST_RATE_LIMIT_QPS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("site.host = \"localhost\"  # default"),
        "{stdout}"
    );
    let out = run(&[], &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = run(&[], &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "check", "write-mattermost-config", "healthcheck"] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn shipped_configs_load_with_check() {
    for file in ["config/mm-edge.toml", "config/local.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let out = run(&[], &["check", "--config", path.to_str().expect("utf-8")]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn proxy_protocol_without_trusted_proxies_names_both_settings_and_the_fix() {
    fails_naming(
        &[("MM_EDGE_PROXY_PROTOCOL", "on")],
        &["check"],
        &[
            "MM_EDGE_PROXY_PROTOCOL=on",
            "MM_EDGE_TRUSTED_PROXIES",
            "set MM_EDGE_TRUSTED_PROXIES to their addresses",
        ],
    );
}
