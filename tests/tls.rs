//! TLS termination: a real rustls client handshakes against the generated certificate; ALPN
//! offers h2 and http/1.1; only TLS 1.2 and 1.3 with ECDHE + AEAD suites (refusals checked
//! with `openssl s_client`); HSTS; the self-signed cert survives restarts.

mod common;

use std::sync::Arc;

use common::{Backend, Edge};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

async fn handshake(
    edge: &Edge,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    connect(edge, client_config(edge, versions, alpn)).await
}

/// A TLS connection to the edge with `config` (whose session cache the connections share).
async fn connect(
    edge: &Edge,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = TcpStream::connect(edge.https.expect("tls")).await?;
    connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
}

/// A client configuration trusting the edge's certificate, with `versions` and `alpn`.
fn client_config(
    edge: &Edge,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&edge.cert_pem()) {
            roots.add(c.expect("cert")).expect("root");
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Sends `GET {path}` on a kept-alive HTTP/1.1 connection and reads the whole answer; returns
/// the status line.
async fn get_on<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    common::h1_response(s).await
}

#[tokio::test]
async fn rustls_client_trusts_the_generated_certificate_for_host_localhost_and_ip() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[("MATTERMOST_HOST", "chat.example.com")]);
    assert!(
        edge.log().contains("SELF-SIGNED"),
        "a clear warning is logged:\n{}",
        edge.log()
    );
    let mut tls = handshake(&edge, &[&rustls::version::TLS13], &[b"http/1.1"])
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(
        b"GET /api/v4/system/ping HTTP/1.1\r\nHost: chat.example.com\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("{\"status\":\"OK\"}"), "{text}");
    // The certificate names the host, localhost and 127.0.0.1: reqwest checks the IP too.
    let status = ping_trusting(&edge.cert_pem(), "127.0.0.1", edge.https.expect("tls")).await;
    assert_eq!(status, 200, "by IP");
}

/// GETs the ping endpoint as `https://{name}:PORT` (name resolved to `addr`), trusting only `pem`.
async fn ping_trusting(pem: &[u8], name: &str, addr: std::net::SocketAddr) -> u16 {
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("pem"))
        .resolve(name, addr)
        .build()
        .expect("client")
        .get(format!("https://{name}:{}/api/v4/system/ping", addr.port()))
        .send()
        .await
        .expect("TLS handshake and answer")
        .status()
        .as_u16()
}

#[tokio::test]
async fn tls12_works_and_alpn_prefers_h2() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let tls = handshake(&edge, &[&rustls::version::TLS12], &[b"h2", b"http/1.1"])
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let suite = tls.get_ref().1.negotiated_cipher_suite().expect("suite");
    let name = format!("{:?}", suite.suite());
    assert!(
        name.contains("ECDHE") && (name.contains("GCM") || name.contains("CHACHA20")),
        "{name}"
    );
}

#[tokio::test]
async fn hsts_on_https_responses_only_and_configurable() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let resp = edge.get(&edge.url("/api/v4/system/ping")).await;
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=63072000"
    );
    let resp = edge.get(&edge.http_url("/")).await;
    assert!(resp.headers().get("strict-transport-security").is_none());
    drop(edge);
    let edge = Edge::start(&backend, &[("MM_EDGE_HSTS_MAX_AGE", "0")]);
    let resp = edge.get(&edge.url("/api/v4/system/ping")).await;
    assert!(resp.headers().get("strict-transport-security").is_none());
}

#[tokio::test]
async fn self_signed_certificate_is_kept_across_restarts() {
    let backend = Backend::start().await;
    let state = tempfile::tempdir().expect("dir");
    let dir = state.path().to_str().expect("utf-8");
    let start = || {
        Edge::builder(&backend.url())
            .env("MATTERMOST_HOST", "chat.example.com")
            .env("MM_EDGE_STATE_DIR", dir)
            .spawn()
    };
    let first = start();
    let cert = std::fs::read(state.path().join("self-signed-cert.pem")).expect("cert generated");
    assert!(
        first.log().contains("self-signed, generated at"),
        "{}",
        first.log()
    );
    drop(first);
    let second = start();
    let again = std::fs::read(state.path().join("self-signed-cert.pem")).expect("cert kept");
    assert_eq!(cert, again, "same certificate after a restart");
    assert!(
        second.log().contains("self-signed, kept at"),
        "{}",
        second.log()
    );
    let status = ping_trusting(&cert, "chat.example.com", second.https.expect("tls")).await;
    assert_eq!(status, 200, "the kept certificate is the one served");
}

#[tokio::test]
async fn given_certificate_files_are_served() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["given.example".to_string()]).expect("cert");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).expect("write");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write");
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_TLS_CERT", cert.to_str().expect("utf-8")),
            ("MM_EDGE_TLS_KEY", key.to_str().expect("utf-8")),
        ],
    );
    let status = ping_trusting(
        generated.cert.pem().as_bytes(),
        "given.example",
        edge.https.expect("tls"),
    )
    .await;
    assert_eq!(status, 200, "handshake with the given certificate");
    assert!(
        !edge.state_dir().join("self-signed-cert.pem").exists(),
        "no self-signed cert made"
    );
}

#[tokio::test]
async fn sighup_reloads_the_certificate_files() {
    let backend = Backend::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let write = |name: &str| {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert");
        std::fs::write(&cert, c.cert.pem()).expect("write");
        std::fs::write(&key, c.signing_key.serialize_pem()).expect("write");
        c.cert.pem()
    };
    let first = write("reload.example");
    let edge = Edge::start(
        &backend,
        &[
            ("MM_EDGE_TLS_CERT", cert.to_str().expect("utf-8")),
            ("MM_EDGE_TLS_KEY", key.to_str().expect("utf-8")),
        ],
    );
    let addr = edge.https.expect("tls");
    assert_eq!(
        ping_trusting(first.as_bytes(), "reload.example", addr).await,
        200
    );
    let second = write("reload.example");
    edge.signal("HUP");
    edge.wait_for_log("TLS certificate reloaded");
    assert_eq!(
        ping_trusting(second.as_bytes(), "reload.example", addr).await,
        200,
        "new certificate served"
    );
    // A broken file on reload keeps the working certificate.
    std::fs::write(&key, "garbage").expect("write");
    edge.signal("HUP");
    edge.wait_for_log("TLS certificate reload failed");
    assert_eq!(
        ping_trusting(second.as_bytes(), "reload.example", addr).await,
        200,
        "old certificate kept"
    );
}

#[tokio::test]
async fn sighup_keeps_established_connections() {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    let mut conn = handshake(&edge, &[&rustls::version::TLS13], &[b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(
        get_on(&mut conn, "/api/v4/system/ping").await,
        "HTTP/1.1 200 OK"
    );
    edge.signal("HUP");
    edge.wait_for_log("TLS certificate reloaded");
    // The same kept-alive connection, opened before the reload, still serves.
    assert_eq!(
        get_on(&mut conn, "/api/v4/system/ping").await,
        "HTTP/1.1 200 OK",
        "the connection opened before SIGHUP"
    );
    assert_eq!(backend.requests(), 2);
}

#[tokio::test]
async fn a_second_connection_resumes_the_tls_session() {
    use rustls::HandshakeKind;
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // One client: its connections share the configuration's session cache.
        let config = client_config(&edge, &[version], &[b"http/1.1"]);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let mut conn = connect(&edge, config.clone()).await.expect("handshake");
            // A request answered: TLS 1.3 tickets come after the handshake, read with it.
            assert_eq!(
                get_on(&mut conn, "/api/v4/system/ping").await,
                "HTTP/1.1 200 OK"
            );
            kinds.push(conn.get_ref().1.handshake_kind());
        }
        assert_eq!(
            kinds,
            [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)],
            "{version:?}"
        );
    }
}

/// `openssl s_client` against the edge with `args`; whether the handshake succeeded, and its
/// output.
fn s_client(openssl: &std::path::Path, edge: &Edge, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg(openssl)
        .args(["s_client", "-brief", "-servername", "localhost", "-connect"])
        .arg(edge.https.expect("tls").to_string())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn only_ecdhe_with_aead_suites_and_tls12_or_newer_are_accepted() {
    let Some(openssl) = common::tool("openssl") else {
        return;
    };
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, &[]);
    // A client that offers them (security level 0: OpenSSL would not even offer some).
    let refused = [
        // CBC with ECDHE key exchange.
        "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:@SECLEVEL=0",
        // AEAD without ECDHE (static RSA, finite-field DHE).
        "AES128-GCM-SHA256:AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
        // Neither.
        "AES128-SHA:AES256-SHA:DES-CBC3-SHA:@SECLEVEL=0",
    ];
    let openssl2 = openssl.clone();
    let edge = tokio::task::spawn_blocking(move || {
        for suites in refused {
            let (ok, out) = s_client(&openssl2, &edge, &["-tls1_2", "-cipher", suites]);
            assert!(!ok, "handshake with only {suites} succeeded:\n{out}");
        }
        let (ok, out) = s_client(&openssl2, &edge, &["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"]);
        assert!(!ok, "a TLS 1.1 handshake succeeded:\n{out}");
        edge
    })
    .await
    .expect("openssl runs");
    // The control: ECDHE + AEAD over TLS 1.2 works with the same client.
    let (ok, out) = tokio::task::spawn_blocking(move || {
        s_client(
            &openssl,
            &edge,
            &[
                "-tls1_2",
                "-cipher",
                "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
            ],
        )
    })
    .await
    .expect("openssl runs");
    assert!(ok, "ECDHE + AEAD over TLS 1.2 failed:\n{out}");
    assert!(out.contains("GCM") || out.contains("CHACHA20"), "{out}");
}
