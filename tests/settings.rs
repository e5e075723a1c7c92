//! Settings as README states them: the defaults that shape the process (`MM_EDGE_WORKERS=0`:
//! one worker per CPU; the log filter `info,rustls=error`), and `mm-edge check` naming where
//! each effective value came from (file and line, environment variable, flag, default).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{run, Backend, Edge, PATIENCE};

/// The CPUs this process may run on (the edge inherits the same affinity).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The runtime's worker threads in process `pid`: tokio names them `tokio-rt-worker` (before
/// tokio 1.50, `tokio-runtime-worker`, cut to 15 bytes in `comm`).
fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| matches!(c.trim_end(), "tokio-rt-worker" | "tokio-runtime-w"))
        })
        .count()
}

/// README: `MM_EDGE_WORKERS` "Runtime worker threads; 0 = one per CPU" (and 0 is the default).
/// The start-up line says how many, and the runtime has that many worker threads (the edge runs
/// no blocking tasks, whose threads would share the name).
#[tokio::test]
async fn workers_zero_and_the_default_mean_one_worker_per_cpu() {
    let backend = Backend::start().await;
    let cpus = cpus();
    for explicit in [true, false] {
        let mut b = Edge::builder(&backend.url()).without_env("MM_EDGE_WORKERS");
        if explicit {
            b = b.env("MM_EDGE_WORKERS", "0");
        }
        let edge = b.spawn();
        edge.wait_for_log("mm-edge listening");
        let log = edge.log();
        let line = log
            .lines()
            .find(|l| l.contains("mm-edge listening"))
            .expect("listening line");
        assert!(
            line.split_whitespace()
                .any(|w| w == format!("workers={cpus}")),
            "{} CPUs, explicit {explicit}: {line}",
            cpus
        );
        if cpus > 1 {
            assert_eq!(
                worker_threads(edge.pid()),
                cpus,
                "runtime worker threads for {cpus} CPUs (explicit {explicit})"
            );
        } else {
            // One worker is the single-threaded scheduler on the main thread (src/app.rs).
            eprintln!("1 CPU: one worker on the main thread, no worker threads to count");
        }
    }
    // The count is the setting's, not a constant: 3 workers are 3 threads whatever the CPUs.
    let edge = Edge::start(&backend, &[("MM_EDGE_WORKERS", "3")]);
    assert_eq!(worker_threads(edge.pid()), 3);
}

/// Makes the edge log at each level it can: a TLS client whose first record is application data
/// instead of a ClientHello (rustls warns, then the edge closes the connection), an idle plain connection closed after the
/// keep-alive timeout (a debug line, written before the close), then a certificate reload (an
/// info line written after both, so the log read up to it holds whatever they logged).
fn log_of_noisy_edge(backend: &Backend, filter: Option<&str>) -> String {
    let mut b = Edge::builder(&backend.url())
        .without_env("MM_EDGE_LOG")
        .env("MM_EDGE_KEEPALIVE_TIMEOUT", "1s");
    if let Some(f) = filter {
        b = b.env("MM_EDGE_LOG", f);
    }
    let edge = b.spawn();
    let read_to_end = |mut s: TcpStream| {
        s.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut sink = Vec::new();
        s.read_to_end(&mut sink)
            .expect("the edge closes the connection");
    };
    let mut tls = TcpStream::connect(edge.https.expect("tls")).expect("connect");
    // A TLS 1.2 record header (type application data, 5 bytes) and its payload.
    tls.write_all(&[0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5])
        .expect("write");
    read_to_end(tls);
    read_to_end(TcpStream::connect(edge.http).expect("connect"));
    edge.signal("HUP");
    edge.wait_for_log("TLS certificate reloaded");
    edge.log()
}

fn lines_at(log: &str, level: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(level))
        .map(str::to_string)
        .collect()
}

/// README: `MM_EDGE_LOG` defaults to `info,rustls=error`: info lines, no debug lines, and none
/// of rustls's per-connection warnings. Neither MM_EDGE_LOG nor RUST_LOG reaches the edge (the
/// harness clears the environment). Two control runs show the same events do log at
/// `debug` and at `info`, so their absence is the default filter's doing.
#[tokio::test]
async fn default_log_filter_is_info_without_rustls_warnings() {
    let backend = Backend::start().await;
    let log = log_of_noisy_edge(&backend, None);
    let info = lines_at(&log, "INFO");
    assert!(
        info.iter().any(|l| l.contains("mm-edge listening"))
            && info.iter().any(|l| l.contains("TLS certificate reloaded")),
        "info lines missing:\n{log}"
    );
    assert!(lines_at(&log, "DEBUG").is_empty(), "debug lines:\n{log}");
    assert!(lines_at(&log, "TRACE").is_empty(), "trace lines:\n{log}");
    assert!(!log.contains("rustls"), "rustls logged:\n{log}");

    let debug = log_of_noisy_edge(&backend, Some("debug"));
    assert!(
        lines_at(&debug, "DEBUG")
            .iter()
            .any(|l| l.contains("idle connection closed")),
        "control: at debug the idle close is logged:\n{debug}"
    );
    let info = log_of_noisy_edge(&backend, Some("info"));
    assert!(
        lines_at(&info, "WARN").iter().any(|l| l.contains("rustls")),
        "control: at plain info rustls warns about the client:\n{info}"
    );
}

/// README: `check` prints "the effective value and source of each"; the layers are defaults <
/// TOML file < environment < flags. A value only in the file shows its file and line, one also
/// in the environment shows the variable, one also given as a flag shows the flag.
#[test]
fn check_names_each_values_source_file_env_flag_or_default() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("mm-edge.toml");
    std::fs::write(
        &file,
        "[site]\nhost = \"from-file.example\"\n\n[rate_limit]\nper_sec = 5\nmax_burst = 50\nsessions = 99\n",
    )
    .expect("write toml");
    let path = file.to_str().expect("utf-8");
    let out = run(
        &[
            ("MATTERMOST_RATE_LIMIT_SESSIONS", "123"),
            ("MATTERMOST_RATE_LIMIT_QPS", "6"),
        ],
        &["check", "--config", path, "--rate-limit-per-sec", "7"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        format!("site.host = \"\\\"from-file.example\\\"\"  # file {path} line 2"),
        format!("rate_limit.max_burst = \"50\"  # file {path} line 6"),
        "rate_limit.sessions = \"123\"  # env MATTERMOST_RATE_LIMIT_SESSIONS".to_string(),
        "rate_limit.per_sec = \"7\"  # flag --rate-limit-per-sec".to_string(),
        "rate_limit.by_ip = \"true\"  # default".to_string(),
    ] {
        assert!(
            stdout.lines().any(|l| l == want),
            "check does not print {want:?}:\n{stdout}"
        );
    }
    // Each setting once: the winner only.
    for key in [
        "rate_limit.per_sec =",
        "rate_limit.sessions =",
        "site.host =",
    ] {
        assert_eq!(
            stdout.lines().filter(|l| l.starts_with(key)).count(),
            1,
            "{key}\n{stdout}"
        );
    }
}
