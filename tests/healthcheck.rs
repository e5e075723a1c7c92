//! `mm-edge healthcheck` (the container HEALTHCHECK): exit 0 only when a running edge answers on
//! its listener, TLS or plain; exit 1 when nothing does, or when the answer is not a 200.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc};

use common::{run, Backend, Edge, PATIENCE};
use rustls::pki_types::PrivatePkcs8KeyDer;

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

/// A server on loopback that answers its first request with `status`, over TLS (a self-signed
/// certificate, as the edge's may be) or plain HTTP; the request line it got comes back on the
/// channel.
fn answering(status: &'static str, tls: bool) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        let _ = tcp.set_read_timeout(Some(PATIENCE));
        if tls {
            let generated =
                rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
            let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![generated.cert.der().clone()], key.into())
            .expect("server config");
            let conn = rustls::ServerConnection::new(Arc::new(config)).expect("server");
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            if let Some(line) = answer(&mut stream, status) {
                stream.conn.send_close_notify();
                let _ = stream.flush();
                let _ = tx.send(line);
            }
        } else {
            let mut tcp = tcp;
            if let Some(line) = answer(&mut tcp, status) {
                let _ = tx.send(line);
            }
        }
    });
    (addr, rx)
}

/// Reads one request head from `s`, answers `status`; the request line, or None on a failure.
fn answer(s: &mut (impl Read + Write), status: &str) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno");
    s.write_all(reply.as_bytes()).ok()?;
    s.flush().ok()?;
    let head = String::from_utf8_lossy(&head);
    head.lines().next().map(str::to_string)
}

/// README: `healthcheck` exits 0 only when the edge answers `/.mm-edge/healthz`, and 1 for an
/// unhealthy check. A listener that answers that path with anything but 200 (503 here) is
/// unhealthy, over TLS (any certificate is accepted: it checks the answer, not who gives it) and
/// over plain HTTP; the same server answering 200 is healthy, so the 1 is the status's doing.
#[test]
fn healthcheck_exits_1_when_the_health_endpoint_answers_other_than_200() {
    for tls in [true, false] {
        for (status, code) in [("200 OK", 0), ("503 Service Unavailable", 1)] {
            let (addr, request) = answering(status, tls);
            let addr = addr.to_string();
            let env: Vec<(&str, &str)> = if tls {
                vec![("MM_EDGE_HTTPS_LISTEN", &addr)]
            } else {
                vec![
                    ("MATTERMOST_HTTPS", "false"),
                    ("MM_EDGE_HTTP_LISTEN", &addr),
                ]
            };
            let out = run(&env, &["healthcheck"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(code),
                "tls {tls}, answer {status}: {stderr}"
            );
            assert_eq!(
                request.recv_timeout(PATIENCE).expect("the check asked"),
                "GET /.mm-edge/healthz HTTP/1.1",
                "tls {tls}"
            );
            if code == 1 {
                assert!(
                    stderr.contains("unhealthy") && stderr.contains("503"),
                    "the reason is named: {stderr}"
                );
            }
        }
    }
}
