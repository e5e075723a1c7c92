//! ACME against the real thing: Let's Encrypt's test CA `pebble` validates mm-edge's
//! TLS-ALPN-01 and HTTP-01 answers on its real listeners (through `pebble-challtestsrv`'s DNS,
//! which resolves every name to 127.0.0.1) and issues certificates, which a rustls client
//! trusting only pebble's root then verifies, chain included. Without pebble the tests skip,
//! except under `CI=true`.
//!
//! Each edge starts before pebble (it needs the directory URL, pebble needs its ports), so its
//! first attempt always meets a CA that is down: the certificate comes with the first retry
//! (10 s at most), which also proves the "CA down at start" path on every test.

mod common;

use std::time::Duration;

use common::acme::{mode, served_leaf, wait_for_chain, Pebble};
use common::{Backend, Edge, EdgeBuilder};

/// The site's (public-looking) name; challtestsrv resolves it to 127.0.0.1.
const HOST: &str = "chat.mm-edge-pebble.net";

/// Issuance waits for the first retry after the failed first attempt, then a validation.
const ISSUANCE: Duration = Duration::from_secs(120);

fn acme_edge(backend: &Backend, pebble: &Pebble, challenge: &str) -> EdgeBuilder {
    Edge::builder(&backend.url())
        .env("MATTERMOST_HOST", HOST)
        .env("MM_EDGE_ACME", "on")
        .env("MM_EDGE_ACME_DIRECTORY", &pebble.directory())
        .env(
            "MM_EDGE_ACME_CA_ROOTS",
            pebble.ca_roots().to_str().expect("utf-8 path"),
        )
        .env("MM_EDGE_ACME_CHALLENGE", challenge)
        .env("MM_EDGE_ACCESS_LOG", "off")
}

fn ports(edge: &Edge) -> (u16, u16) {
    (edge.https.expect("TLS listener").port(), edge.http.port())
}

/// The DNS names in a DER certificate.
fn names(der: &[u8]) -> Vec<String> {
    mm_edge::tls::acme::state::parse(der)
        .expect("an X.509 certificate")
        .names
}

/// Issues a certificate with `challenge`; returns what the tests look at afterwards.
async fn issue(challenge: &str) -> Option<(Pebble, Edge, Backend, Vec<Vec<u8>>)> {
    if !common::acme::pebble_or_skip() {
        return None;
    }
    let backend = Backend::start().await;
    let mut pebble = Pebble::new();
    let edge = acme_edge(&backend, &pebble, challenge).spawn();
    let addr = edge.https.expect("TLS listener");
    // Serving at once, with the self-signed stand-in, while the CA is down.
    assert_eq!(served_leaf(addr, HOST).await, edge.cert_der());
    edge.wait_for_log("ACME: order failed");
    let (https, http) = ports(&edge);
    pebble.start(https, http, 3600);
    let roots = pebble.issuing_roots();
    let chain = wait_for_chain(addr, HOST, &roots, ISSUANCE, |_| true).await;
    edge.wait_for_log("ACME: certificate issued");
    Some((pebble, edge, backend, chain))
}

#[tokio::test]
async fn tls_alpn_01_gets_a_certificate_with_its_full_chain() {
    let Some((pebble, edge, _backend, chain)) = issue("tls-alpn-01").await else {
        return;
    };
    assert!(
        chain.len() >= 2,
        "leaf and intermediate: {} certs",
        chain.len()
    );
    assert_eq!(names(&chain[0]), vec![HOST.to_string()]);
    let log = edge.log();
    assert!(
        log.lines()
            .any(|l| l.contains("answering the CA's challenge") && l.contains("tls-alpn-01")),
        "{log}\npebble:\n{}",
        pebble.log()
    );
    let acme = edge.state_dir().join("acme");
    assert_eq!(mode(&acme.join("key.pem")), 0o600);
    assert_eq!(mode(&acme.join("account.json")), 0o600);
    assert_eq!(mode(&acme), 0o700);
}

#[tokio::test]
async fn http_01_gets_a_certificate_and_other_paths_still_redirect() {
    let Some((_pebble, edge, _backend, chain)) = issue("http-01").await else {
        return;
    };
    assert!(chain.len() >= 2);
    assert_eq!(names(&chain[0]), vec![HOST.to_string()]);
    assert!(edge
        .log()
        .lines()
        .any(|l| l.contains("answering the CA's challenge") && l.contains("http-01")));
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let unknown = plain
        .get(edge.http_url("/.well-known/acme-challenge/not-a-token"))
        .send()
        .await
        .expect("GET unknown token");
    assert_eq!(unknown.status(), 404);
    let page = plain
        .get(edge.http_url("/login"))
        .send()
        .await
        .expect("GET /login");
    assert_eq!(page.status(), 301);
    let location = page.headers()["location"].to_str().expect("location");
    assert!(
        location.starts_with(&format!("https://{HOST}")),
        "{location}"
    );
}

#[tokio::test]
async fn a_restart_serves_the_stored_certificate_without_ordering() {
    let Some((pebble, mut first, backend, chain)) = issue("tls-alpn-01").await else {
        return;
    };
    first.signal("TERM");
    assert!(first.wait().success());
    let dir = first.state_dir();
    // Same state dir, new ports: nothing could be validated there, nothing needs to be.
    let second = Edge::builder(&backend.url())
        .env("MATTERMOST_HOST", HOST)
        .env("MM_EDGE_ACME", "on")
        .env("MM_EDGE_ACME_DIRECTORY", &pebble.directory())
        .env(
            "MM_EDGE_ACME_CA_ROOTS",
            pebble.ca_roots().to_str().expect("utf-8"),
        )
        .env("MM_EDGE_STATE_DIR", dir.to_str().expect("utf-8"))
        .spawn();
    let addr = second.https.expect("TLS listener");
    assert_eq!(
        served_leaf(addr, HOST).await,
        chain[0],
        "the first handshake"
    );
    second.wait_for_log("ACME: stored certificate in use");
    assert!(
        !second.log().contains("ACME: ordering a certificate"),
        "{}",
        second.log()
    );
}

#[tokio::test]
async fn a_certificate_is_renewed_at_two_thirds_of_its_life_without_refusing_handshakes() {
    if !common::acme::pebble_or_skip() {
        return;
    }
    let backend = Backend::start().await;
    let mut pebble = Pebble::new();
    let edge = acme_edge(&backend, &pebble, "auto").spawn();
    let addr = edge.https.expect("TLS listener");
    let (https, http) = ports(&edge);
    // 30 s certificates: the renewal is due 20 s after issuance.
    pebble.start(https, http, 30);
    let roots = pebble.issuing_roots();
    let first = wait_for_chain(addr, HOST, &roots, ISSUANCE, |_| true).await;
    // Every poll below completes a handshake: the edge never stops serving while it renews.
    let renewed = wait_for_chain(addr, HOST, &roots, ISSUANCE, |c| c[0] != first[0]).await;
    assert_eq!(names(&renewed[0]), vec![HOST.to_string()]);
    edge.wait_for_log("ACME: certificate renewed");
}

#[tokio::test]
async fn two_replicas_on_one_state_dir_order_once_and_serve_the_same_certificate() {
    if !common::acme::pebble_or_skip() {
        return;
    }
    let backend = Backend::start().await;
    let mut pebble = Pebble::new();
    let a = acme_edge(&backend, &pebble, "auto").spawn();
    let dir = a.state_dir();
    let b = acme_edge(&backend, &pebble, "auto")
        .env("MM_EDGE_STATE_DIR", dir.to_str().expect("utf-8"))
        .spawn();
    // The CA validates on A's ports only; whichever replica orders, A answers (from the
    // shared state dir when B is the one).
    let (https, http) = ports(&a);
    pebble.start(https, http, 3600);
    let roots = pebble.issuing_roots();
    let on_a = wait_for_chain(a.https.expect("A"), HOST, &roots, ISSUANCE, |_| true).await;
    let on_b = wait_for_chain(b.https.expect("B"), HOST, &roots, ISSUANCE, |_| true).await;
    assert_eq!(on_a[0], on_b[0], "both replicas serve the one certificate");
    let orders = [a.log(), b.log()]
        .iter()
        .map(|l| l.matches("ACME: ordering a certificate").count())
        .sum::<usize>();
    assert_eq!(orders, 1, "A:\n{}\nB:\n{}", a.log(), b.log());
}

#[tokio::test]
async fn a_ca_that_requires_external_account_binding_gets_it() {
    if !common::acme::pebble_or_skip() {
        return;
    }
    const KID: &str = "kid-1";
    const HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let backend = Backend::start().await;
    let mut pebble = Pebble::new();
    let bound = acme_edge(&backend, &pebble, "auto")
        .env("MM_EDGE_ACME_EAB_KID", KID)
        .env("MM_EDGE_ACME_EAB_HMAC_KEY", HMAC)
        .spawn();
    let unbound = acme_edge(&backend, &pebble, "auto").spawn();
    let (https, http) = ports(&bound);
    pebble.start_with(https, http, 3600, Some((KID, HMAC)));
    let roots = pebble.issuing_roots();
    let chain = wait_for_chain(bound.https.expect("TLS"), HOST, &roots, ISSUANCE, |_| true).await;
    assert_eq!(names(&chain[0]), vec![HOST.to_string()]);
    // Without the binding the CA refuses the account, and says why in the log.
    unbound.wait_for_log("externalAccountRequired");
    assert!(
        common::acme::served_chain(unbound.https.expect("TLS"), HOST, &roots)
            .await
            .is_err()
    );
}

#[test]
fn check_prints_the_acme_decision_and_refuses_acme_with_files() {
    let check = |env: &[(&str, &str)]| {
        let out = common::run(env, &["check"]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout
            .lines()
            .find(|l| l.starts_with("# acme: "))
            .map(str::to_string);
        (
            out.status.code(),
            line,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, line, _) = check(&[("MATTERMOST_HOST", "chat.mattermost-users.de")]);
    assert_eq!(code, Some(0));
    let line = line.expect("an acme line");
    assert!(line.starts_with("# acme: on"), "{line}");
    for private in [
        "localhost",
        "10.0.0.5",
        "mm.internal",
        "chat.local",
        "chat.example.com",
    ] {
        let (code, line, _) = check(&[("MATTERMOST_HOST", private)]);
        assert_eq!(code, Some(0), "{private}");
        let line = line.expect("an acme line");
        assert!(line.starts_with("# acme: off"), "{private}: {line}");
    }
    let (code, line, _) = check(&[
        ("MATTERMOST_HOST", "chat.mattermost-users.de"),
        ("MM_EDGE_ACME", "off"),
    ]);
    assert_eq!(code, Some(0));
    assert!(line.expect("acme line").contains("MM_EDGE_ACME=off"));
    let (code, _, stderr) = check(&[
        ("MM_EDGE_ACME", "on"),
        ("MM_EDGE_TLS_CERT", "/etc/mm-edge/fullchain.pem"),
        ("MM_EDGE_TLS_KEY", "/etc/mm-edge/privkey.pem"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("MM_EDGE_ACME") && stderr.contains("MM_EDGE_TLS_CERT"),
        "{stderr}"
    );
}
