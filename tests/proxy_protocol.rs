//! The PROXY protocol (`MM_EDGE_PROXY_PROTOCOL=on`): behind a real HAProxy in TCP mode sending
//! v1 (`send-proxy`) or v2 (`send-proxy-v2`) headers, the client's own address reaches
//! Mattermost and keys the rate limit, on both listeners; a connection without a valid header
//! from a trusted balancer is closed unanswered.
//!
//! Clients bind distinct loopback addresses (127.0.0.2, 127.0.0.3) before connecting, so HAProxy
//! (on 127.0.0.1) sees, and passes on, a different source address for each.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::{echoed_once as one, run, start_edge, Edge, EdgeWithBackend, PATIENCE};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CLIENT_A: [u8; 4] = [127, 0, 0, 2];
const CLIENT_B: [u8; 4] = [127, 0, 0, 3];

/// HAProxy's binary: Debian installs it in /usr/sbin, which a developer's PATH may lack. Missing
/// skips the test, except under `CI=true`, where it fails.
fn haproxy_binary() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    if sbin.is_file() {
        return Some(sbin);
    }
    common::tool("haproxy")
}

/// A HAProxy in TCP mode, one frontend per target; killed on drop.
struct Haproxy {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// Where each frontend listens, in the order of the targets.
    frontends: Vec<SocketAddr>,
}

impl Haproxy {
    /// Forwards each frontend to its target, sending the PROXY header `send` (`send-proxy` for
    /// v1, `send-proxy-v2`). `None` when HAProxy is not installed (outside CI).
    fn start(targets: &[(SocketAddr, &str)]) -> Option<Haproxy> {
        let binary = haproxy_binary()?;
        let dir = tempfile::tempdir().expect("temp dir");
        // HAProxy cannot bind port 0; it takes sockets bound here instead (`bind fd@N`), so
        // every port is ephemeral and already listening when HAProxy starts.
        let sockets: Vec<std::net::TcpListener> = targets
            .iter()
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind frontend"))
            .collect();
        let mut cfg = String::from(
            "global\n    maxconn 256\n\
             defaults\n    mode tcp\n    timeout connect 10s\n    timeout client 60s\n    timeout server 60s\n",
        );
        for (i, ((target, send), socket)) in targets.iter().zip(&sockets).enumerate() {
            // Inherited by HAProxy: not closed on exec. (A process another test spawns
            // meanwhile inherits it too; it never accepts on it, so only HAProxy answers.)
            rustix::io::fcntl_setfd(socket, rustix::io::FdFlags::empty()).expect("fcntl");
            cfg.push_str(&format!(
                "frontend f{i}\n    bind fd@{}\n    default_backend b{i}\n\
                 backend b{i}\n    server edge {target} {send}\n",
                socket.as_raw_fd()
            ));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let log = dir.path().join("haproxy.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(binary)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn haproxy");
        let frontends = sockets
            .iter()
            .map(|s| s.local_addr().expect("frontend address"))
            .collect();
        // Only HAProxy holds the sockets now: if it dies, connecting to them fails at once.
        drop(sockets);
        Some(Haproxy {
            child,
            log,
            _dir: dir,
            frontends,
        })
    }

    /// What HAProxy printed, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The edge with the PROXY protocol on, trusting HAProxy's address (127.0.0.1), plus `env`.
async fn edge_behind_balancer(env: &[(&str, &str)]) -> EdgeWithBackend {
    let mut all = vec![
        ("MM_EDGE_PROXY_PROTOCOL", "on"),
        ("MM_EDGE_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    all.extend_from_slice(env);
    start_edge(&all).await
}

/// A client connecting from `source` to the edge through `frontend`: trusts the edge's
/// certificate and resolves localhost to the frontend.
fn client_from(edge: &Edge, source: [u8; 4], frontend: SocketAddr) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .local_address(IpAddr::from(source))
        .resolve("localhost", frontend);
    if edge.https.is_some() {
        let cert = reqwest::Certificate::from_pem(&edge.cert_pem()).expect("PEM cert");
        b = b.add_root_certificate(cert);
    }
    b.build().expect("client")
}

/// The headers Mattermost (the fake) saw for one request through `haproxy`.
async fn seen_by_mattermost(client: &reqwest::Client, url: &str, haproxy: &Haproxy) -> Value {
    let resp = client
        .get(url)
        // A client behind a layer-4 balancer can write anything here; it must not count.
        .header("X-Forwarded-For", "6.6.6.6")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}\nHAProxy:\n{}", haproxy.log()));
    assert_eq!(resp.status(), 200, "{url}");
    resp.json().await.expect("json")
}

#[tokio::test]
async fn behind_haproxy_v1_and_v2_mattermost_sees_each_client_on_both_listeners() {
    // The HTTPS listener (TLS after the header), and the HTTP listener in plain-HTTP mode,
    // where it proxies.
    let tls = edge_behind_balancer(&[]).await;
    let plain = edge_behind_balancer(&[("MATTERMOST_HTTPS", "false")]).await;
    let https = tls.https.expect("TLS listener");
    let targets = [
        (https, "send-proxy-v2"),
        (https, "send-proxy"),
        (plain.http, "send-proxy-v2"),
        (plain.http, "send-proxy"),
    ];
    let Some(haproxy) = Haproxy::start(&targets) else {
        return;
    };
    for (i, (target, send)) in targets.iter().enumerate() {
        let frontend = haproxy.frontends[i];
        let (edge, scheme) = if *target == https {
            (&tls.edge, "https")
        } else {
            (&plain.edge, "http")
        };
        let url = format!("{scheme}://localhost:{}/api/v4/headers", frontend.port());
        for source in [CLIENT_A, CLIENT_B] {
            let client = client_from(edge, source, frontend);
            let seen = seen_by_mattermost(&client, &url, &haproxy).await;
            let want = IpAddr::from(source).to_string();
            assert_eq!(
                one(&seen, "x-forwarded-for"),
                want,
                "{scheme} listener, {send}: {seen}\nHAProxy:\n{}",
                haproxy.log()
            );
            assert_eq!(one(&seen, "x-real-ip"), want, "{scheme}, {send}");
        }
    }
}

#[tokio::test]
async fn behind_haproxy_each_client_has_its_own_rate_limit_bucket() {
    // One request per second, no burst: a client's second request at once is refused.
    let edge = edge_behind_balancer(&[
        ("MATTERMOST_RATE_LIMIT_QPS", "1"),
        ("MATTERMOST_RATE_LIMIT_BURST", "0"),
    ])
    .await;
    let https = edge.https.expect("TLS listener");
    let Some(haproxy) = Haproxy::start(&[(https, "send-proxy-v2")]) else {
        return;
    };
    let frontend = haproxy.frontends[0];
    let url = format!("https://localhost:{}/api/v4/system/ping", frontend.port());
    let a = client_from(&edge, CLIENT_A, frontend);
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(a.get(&url).send().await.expect("a 1")), 200);
    assert_eq!(
        status(a.get(&url).send().await.expect("a 2")),
        429,
        "the second request of 127.0.0.2 at once"
    );
    // Everyone arrives from HAProxy's address; the other client still has a full bucket.
    let b = client_from(&edge, CLIENT_B, frontend);
    assert_eq!(
        status(b.get(&url).send().await.expect("b")),
        200,
        "127.0.0.3 is not limited by 127.0.0.2's requests"
    );
}

/// Connects to `addr` from `source`.
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind source");
    socket.connect(addr).await.expect("connect")
}

/// Reads until the edge closes the connection (end of stream or reset); what it sent first.
async fn answer_before_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {PATIENCE:?}"),
        }
    }
}

const REQUEST: &[u8] =
    b"GET /api/v4/headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn connections_without_a_valid_header_from_a_trusted_peer_are_closed_unanswered() {
    let edge = edge_behind_balancer(&[
        ("MM_EDGE_CLIENT_HEADER_TIMEOUT", "1s"),
        ("MM_EDGE_METRICS_LISTEN", "127.0.0.1:0"),
    ])
    .await;
    let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 443\r\n";
    let listeners = [edge.https.expect("TLS listener"), edge.http];
    for addr in listeners {
        // (source, bytes sent, what is wrong)
        let cases: [([u8; 4], Vec<u8>, &str); 4] = [
            ([127, 0, 0, 1], REQUEST.to_vec(), "no header"),
            (CLIENT_A, [&header[..], REQUEST].concat(), "untrusted peer"),
            (
                [127, 0, 0, 1],
                [&b"PROXY TCP4 nonsense\r\n"[..], REQUEST].concat(),
                "malformed header",
            ),
            ([127, 0, 0, 1], Vec::new(), "nothing sent"),
        ];
        for (source, bytes, what) in cases {
            let mut stream = connect_from(source, addr).await;
            stream.write_all(&bytes).await.expect("write");
            let answer = answer_before_close(&mut stream).await;
            assert!(
                answer.is_empty(),
                "{what} on {addr}: answered {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    edge.wait_for_log("PROXY header refused");
    // The metrics listener takes no header, and counted every refusal above.
    let metrics = format!("http://{}/metrics", edge.metrics.expect("metrics listener"));
    let text = reqwest::get(metrics)
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let rejected = text
        .lines()
        .find_map(|l| l.strip_prefix("mm_edge_proxy_protocol_rejected_total "))
        .unwrap_or_else(|| panic!("no rejection counter:\n{text}"));
    assert_eq!(rejected.trim(), "8", "{text}");
}

/// Sends `bytes` (a header and a request, in one write) to `addr`; the `X-Forwarded-For`
/// Mattermost saw.
async fn forwarded_for(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect_from([127, 0, 0, 1], addr).await;
    stream.write_all(bytes).await.expect("write");
    let answer = answer_before_close(&mut stream).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let seen: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not the echo ({e}): {text}"));
    one(&seen, "x-forwarded-for")
}

#[tokio::test]
async fn the_header_ends_exactly_where_the_request_begins() {
    let edge = edge_behind_balancer(&[("MATTERMOST_HTTPS", "false")]).await;
    // Header and request arrive together: the request's bytes must not be lost to the header.
    let v1 = b"PROXY TCP6 2001:db8::7 ::1 4711 80\r\n";
    assert_eq!(
        forwarded_for(edge.http, &[&v1[..], REQUEST].concat()).await,
        "2001:db8::7"
    );
    // A balancer with a dual-stack socket reports IPv4 clients as IPv4-mapped IPv6.
    let mapped = b"PROXY TCP6 ::ffff:192.0.2.9 ::1 4711 80\r\n";
    assert_eq!(
        forwarded_for(edge.http, &[&mapped[..], REQUEST].concat()).await,
        "192.0.2.9"
    );
    // v2 PROXY, with a TLV, from 192.0.2.7:4711.
    let mut v2 = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x11".to_vec();
    v2.extend([192, 0, 2, 7, 127, 0, 0, 1, 0x12, 0x67, 0, 80]);
    v2.extend([0x04, 0x00, 0x02, 0xAB, 0xCD]);
    assert_eq!(
        forwarded_for(edge.http, &[&v2[..], REQUEST].concat()).await,
        "192.0.2.7"
    );
    // v2 LOCAL (the balancer's health check): the connection's own peer.
    let local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00";
    assert_eq!(
        forwarded_for(edge.http, &[&local[..], REQUEST].concat()).await,
        "127.0.0.1"
    );
}

#[tokio::test]
async fn healthcheck_gets_through_listeners_that_expect_a_header() {
    // Loopback is not a trusted balancer here: the healthcheck's LOCAL header claims no
    // address, so it needs no trust; a header naming one from the same peer is refused.
    let trusted = ("MM_EDGE_TRUSTED_PROXIES", "10.0.0.0/8");
    let on = ("MM_EDGE_PROXY_PROTOCOL", "on");
    let tls = start_edge(&[on, trusted]).await;
    let plain = start_edge(&[on, trusted, ("MATTERMOST_HTTPS", "false")]).await;
    let https = tls.https.expect("TLS listener").to_string();
    let http = plain.http.to_string();
    for env in [
        vec![on, trusted, ("MM_EDGE_HTTPS_LISTEN", https.as_str())],
        vec![
            on,
            trusted,
            ("MATTERMOST_HTTPS", "false"),
            ("MM_EDGE_HTTP_LISTEN", http.as_str()),
        ],
    ] {
        let out = run(&env, &["healthcheck"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut stream = connect_from([127, 0, 0, 1], plain.http).await;
    let header = b"PROXY TCP4 192.0.2.7 127.0.0.1 4711 80\r\n";
    stream
        .write_all(&[&header[..], REQUEST].concat())
        .await
        .expect("write");
    assert!(answer_before_close(&mut stream).await.is_empty());
}
