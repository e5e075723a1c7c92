//! A real ACME CA for the tests: Let's Encrypt's test server `pebble` (Debian's package), with
//! `pebble-challtestsrv` as its DNS server (every name is 127.0.0.1), both on ephemeral loopback
//! ports read back from /proc. pebble's own HTTPS certificate is made here.
//!
//! mm-edge needs the directory URL when it starts, pebble needs mm-edge's ports when it starts:
//! a [`Forwarder`] the test holds from the beginning stands for pebble's address. Until pebble
//! runs it closes every connection (the CA is down), then it pipes bytes to pebble.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use super::PATIENCE;

/// Whether pebble is installed; without it a test skips (after saying so), except under
/// `CI=true`, where it fails.
pub fn pebble_or_skip() -> bool {
    let have = ["pebble", "pebble-challtestsrv"].iter().all(|tool| {
        Command::new(tool)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    });
    if !have {
        let msg = "pebble (Debian package `pebble`) is not installed";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}; CI=true, so the ACME test cannot be skipped");
        }
        eprintln!("skipped: {msg}");
    }
    have
}

/// Connections to the CA's address: closed while the target is unset, piped once it is set.
pub struct Forwarder {
    /// Where the test's clients (mm-edge) connect.
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
}

impl Forwarder {
    /// Listens on an ephemeral loopback port, in a thread with its own runtime (the tests
    /// block their own threads while they wait on logs).
    pub fn start() -> Forwarder {
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind forwarder");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("forwarder address");
        let shared = target.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("forwarder runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    let to = *shared.lock().expect("target lock");
                    let Some(to) = to else {
                        drop(client);
                        continue;
                    };
                    tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            });
        });
        Forwarder { addr, target }
    }

    /// Points the forwarder at the CA (`None`: the CA is down again).
    pub fn set_target(&self, to: Option<SocketAddr>) {
        *self.target.lock().expect("target lock") = to;
    }
}

/// The ports a process listens on (`tcp`: LISTEN sockets; `udp`: bound sockets), from its file
/// descriptors' socket inodes and the kernel's socket tables.
pub fn listening_ports(pid: u32, proto: &str) -> Vec<u16> {
    let mut inodes = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.to_string_lossy().into_owned();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.push(inode.to_string());
                }
            }
        }
    }
    let wanted_state = if proto == "tcp" { "0A" } else { "07" };
    let mut ports = Vec::new();
    for table in [proto.to_string(), format!("{proto}6")] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != wanted_state || !inodes.iter().any(|i| i == cols[9]) {
                continue;
            }
            if let Some(port) = cols[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits until `pid` listens on `n` ports of `proto`.
fn wait_for_ports(child: &mut Child, proto: &str, n: usize, what: &str) -> Vec<u16> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ports = listening_ports(child.id(), proto);
        if ports.len() >= n {
            return ports;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// pebble, its DNS server and the forwarder standing for them.
pub struct Pebble {
    dir: tempfile::TempDir,
    /// The address mm-edge is given (through the forwarder).
    pub forwarder: Forwarder,
    children: Vec<Child>,
    management: Option<SocketAddr>,
    tls_roots: rustls::RootCertStore,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Makes pebble's HTTPS certificate (a CA and a leaf for 127.0.0.1) and the forwarder;
    /// pebble itself starts with [`Pebble::start`].
    pub fn new() -> Pebble {
        let dir = tempfile::tempdir().expect("pebble dir");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mm-edge test: pebble's HTTPS CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write CA");
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).expect("write key");
        let mut tls_roots = rustls::RootCertStore::empty();
        tls_roots.add(ca.der().clone()).expect("CA root");
        Pebble {
            dir,
            forwarder: Forwarder::start(),
            children: Vec::new(),
            management: None,
            tls_roots,
        }
    }

    /// The directory URL for `MM_EDGE_ACME_DIRECTORY`.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.forwarder.addr.port())
    }

    /// The file for `MM_EDGE_ACME_CA_ROOTS`: the CA of pebble's own HTTPS.
    pub fn ca_roots(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Starts the DNS server and pebble, validating challenges on mm-edge's `https` and `http`
    /// ports, issuing certificates valid for `validity_secs`; then points the forwarder at it.
    pub fn start(&mut self, https: u16, http: u16, validity_secs: u64) {
        self.start_with(https, http, validity_secs, None);
    }

    /// [`Pebble::start`], requiring external account binding with this key id and
    /// (base64url) HMAC key when `eab` is given.
    pub fn start_with(
        &mut self,
        https: u16,
        http: u16,
        validity_secs: u64,
        eab: Option<(&str, &str)>,
    ) {
        let mut dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", "127.0.0.1:0", "-management", "127.0.0.1:0"])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        let dns_port = wait_for_ports(&mut dns, "udp", 1, "pebble-challtestsrv")[0];
        self.children.push(dns);
        let config = serde_json::json!({"pebble": {
            "listenAddress": "127.0.0.1:0",
            "managementListenAddress": "127.0.0.1:0",
            "certificate": self.dir.path().join("cert.pem"),
            "privateKey": self.dir.path().join("key.pem"),
            "httpPort": http,
            "tlsPort": https,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": eab.is_some(),
            "externalAccountMACKeys": eab.map(|(kid, key)| serde_json::json!({ kid: key })),
            "certificateValidityPeriod": validity_secs,
        }});
        let config_file = self.dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).expect("pebble config");
        let log = std::fs::File::create(self.dir.path().join("pebble.log")).expect("pebble log");
        let mut pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pebble");
        let ports = wait_for_ports(&mut pebble, "tcp", 2, "pebble");
        self.children.push(pebble);
        // Which of the two is the ACME API: the one that serves /dir.
        let (mut acme, mut management) = (None, None);
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match self.get(addr, "/dir") {
                Some((200, body)) if body.contains("newOrder") => acme = Some(addr),
                _ => management = Some(addr),
            }
        }
        self.management = management;
        self.forwarder
            .set_target(Some(acme.expect("pebble's ACME port serves /dir")));
    }

    /// pebble's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// The root pebble issues under (its management endpoint `/roots/0`), as a trust store.
    pub fn issuing_roots(&self) -> rustls::RootCertStore {
        let addr = self.management.expect("pebble started");
        let (status, pem) = self.get(addr, "/roots/0").expect("GET /roots/0");
        assert_eq!(status, 200, "GET /roots/0: {pem}");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(cert.expect("root PEM")).expect("add root");
        }
        roots
    }

    /// GET `path` from one of pebble's listeners over HTTPS (status, body).
    fn get(&self, addr: SocketAddr, path: &str) -> Option<(u16, String)> {
        let roots = self.tls_roots.clone();
        let path = path.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let client = client_trusting(&roots);
                let resp = client
                    .get(format!("https://127.0.0.1:{}{path}", addr.port()))
                    .send()
                    .await
                    .ok()?;
                let status = resp.status().as_u16();
                Some((status, resp.text().await.ok()?))
            })
        })
        .join()
        .ok()
        .flatten()
    }
}

fn client_trusting(roots: &rustls::RootCertStore) -> reqwest::Client {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(PATIENCE)
        .build()
        .expect("client")
}

/// The chain served on `addr` to a client asking for `host`, when it verifies against `roots`.
pub async fn served_chain(
    addr: SocketAddr,
    host: &str,
    roots: &rustls::RootCertStore,
) -> Result<Vec<Vec<u8>>, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.to_vec())
        .collect();
    Ok(chain)
}

/// The leaf served on `addr` for `host`, whoever issued it (no verification).
pub async fn served_leaf(addr: SocketAddr, host: &str) -> Vec<u8> {
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect to the edge");
    let name = ServerName::try_from(host.to_string()).expect("server name");
    let tls = tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake (the edge must always serve a certificate)");
    tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// Polls the edge until it serves a chain that verifies against `roots` (a failure after
/// `patience`); every attempt must complete a handshake, with whatever certificate.
pub async fn wait_for_chain(
    addr: SocketAddr,
    host: &str,
    roots: &rustls::RootCertStore,
    patience: Duration,
    until: impl Fn(&[Vec<u8>]) -> bool,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + patience;
    loop {
        let last = match served_chain(addr, host, roots).await {
            Ok(chain) if until(&chain) => return chain,
            Ok(_) => "a verified chain, not yet the one waited for".to_string(),
            Err(e) => {
                // Whatever the edge serves, it serves: the handshake itself must work.
                served_leaf(addr, host).await;
                e
            }
        };
        assert!(
            Instant::now() < deadline,
            "no certificate from pebble within {patience:?}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Unix mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}
