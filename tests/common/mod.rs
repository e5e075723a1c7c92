//! Shared test harness: a fake Mattermost backend, the real mm-edge binary on ephemeral loopback
//! ports, and clients that trust the certificate it generated.
#![allow(dead_code)]

pub mod acme;
pub mod backend;
pub mod browser;
pub mod h2_raw;
pub mod redis_server;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;

#[allow(unused_imports)]
pub use backend::{Backend, FAKE_REQUEST_ID, FAKE_VERSION_ID};

/// Upper bound for anything a test waits on: a failure bound, never a synchronisation sleep.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The mm-edge binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mm-edge"))
}

/// A command for the binary with a clean environment (nothing leaks in from the developer's shell).
pub fn command() -> Command {
    command_for(&binary())
}

/// [`command`] for another build of mm-edge (`contrib/pgo-build`'s, say).
pub fn command_for(bin: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// Runs the binary to completion with `env` and `args`; one that has not ended within
/// [`PATIENCE`] is killed and fails the test (a hang is a failure, not a stalled run).
pub fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = command();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    output_within(cmd, PATIENCE, &format!("mm-edge {args:?}"))
}

/// Runs `cmd` to completion (stdin empty, stdout and stderr collected); one that has not ended
/// within `patience` is killed and fails the test, naming `what`.
pub fn output_within(mut cmd: Command, patience: Duration, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("run {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(patience) {
        Ok(out) => out.unwrap_or_else(|e| panic!("wait for {what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("{what} did not end within {patience:?}");
        }
    }
}

/// The edge's stderr, collected line by line, with a signal for each new line.
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

/// Configures an mm-edge process.
pub struct EdgeBuilder {
    env: Vec<(String, String)>,
    args: Vec<String>,
    state: tempfile::TempDir,
    nofile: Option<u64>,
    binary: Option<PathBuf>,
}

impl EdgeBuilder {
    /// Sets an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.retain(|(name, _)| name != k);
        self.env.push((k.into(), v.into()));
        self
    }

    /// Removes an environment variable (one of the test defaults), so the edge's own default holds.
    pub fn without_env(mut self, k: &str) -> Self {
        self.env.retain(|(name, _)| name != k);
        self
    }

    /// Adds a command-line argument.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    /// Starts the edge with this open-file limit (soft and hard), through `sh -c 'ulimit -n'`.
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// Runs this build of mm-edge instead of the one under test.
    pub fn binary(mut self, bin: PathBuf) -> Self {
        self.binary = Some(bin);
        self
    }

    /// The state directory the edge will use.
    pub fn state_dir(&self) -> PathBuf {
        self.state.path().to_path_buf()
    }

    /// Starts the edge and waits for its "listening" log line.
    pub fn spawn(self) -> Edge {
        let bin = self.binary.clone().unwrap_or_else(binary);
        let mut cmd = match self.nofile {
            None => command_for(&bin),
            Some(n) => {
                let mut c = Command::new("sh");
                c.env_clear();
                if let Some(path) = std::env::var_os("PATH") {
                    c.env("PATH", path);
                }
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(&bin);
                c
            }
        };
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mm-edge");
        let stderr = child.stderr.take().expect("stderr piped");
        let stdout = child.stdout.take().expect("stdout piped");
        // The access log goes to stdout by default: collected line by line, like the log.
        let access: Arc<Log> = Arc::default();
        let access_sink = access.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut l = access_sink.text.lock().expect("access lock");
                l.push_str(&line);
                l.push('\n');
                access_sink.grew.notify_all();
            }
        });
        let log: Arc<Log> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("mm-edge listening") {
                    let _ = tx.send(line.clone());
                }
                let mut l = sink.text.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
                sink.grew.notify_all();
            }
        });
        let line = match rx.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "mm-edge did not start (status {status:?}); log:\n{}",
                    log.text.lock().expect("log lock")
                );
            }
        };
        let field = |name: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
        };
        Edge {
            pid: child.id(),
            https: field("https"),
            http: field("http").expect("http listener address in the log line"),
            metrics: field("metrics"),
            child: Some(child),
            log,
            access,
            state: self.state,
        }
    }
}

/// A running mm-edge process; killed on drop.
pub struct Edge {
    child: Option<Child>,
    pid: u32,
    log: Arc<Log>,
    access: Arc<Log>,
    state: tempfile::TempDir,
    /// Metrics listener (None when off).
    pub metrics: Option<SocketAddr>,
    /// TLS listener (None when TLS is not terminated here).
    pub https: Option<SocketAddr>,
    /// Plain listener.
    pub http: SocketAddr,
}

impl Edge {
    /// A builder with test defaults: loopback ephemeral ports, a fresh state dir, `upstream`.
    pub fn builder(upstream: &str) -> EdgeBuilder {
        let state = tempfile::tempdir().expect("temp dir");
        let b = EdgeBuilder {
            env: Vec::new(),
            args: Vec::new(),
            state,
            nofile: None,
            binary: None,
        };
        let dir = b.state_dir();
        b.env("MM_EDGE_HTTPS_LISTEN", "127.0.0.1:0")
            .env("MM_EDGE_HTTP_LISTEN", "127.0.0.1:0")
            .env("MM_EDGE_STATE_DIR", dir.to_str().expect("utf-8 temp path"))
            .env("MM_EDGE_UPSTREAMS", upstream)
            .env("MM_EDGE_LOG", "info")
            // The fake counts connections and requests exactly; checks would add to both.
            // tests/upstreams.rs turns them on.
            .env("MM_EDGE_UPSTREAM_HEALTH_INTERVAL", "0")
    }

    /// Starts an edge in front of `backend` with defaults plus `env`.
    ///
    /// The backend must outlive the edge; see [`start_edge`] for a pair that owns both.
    pub fn start(backend: &Backend, env: &[(&str, &str)]) -> Edge {
        let mut b = Edge::builder(&backend.url());
        for (k, v) in env {
            b = b.env(k, v);
        }
        b.spawn()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the edge logged so far.
    pub fn log(&self) -> String {
        self.log.text.lock().expect("log lock").clone()
    }

    /// The access log lines written to stdout so far.
    pub fn access_lines(&self) -> Vec<String> {
        self.access
            .text
            .lock()
            .expect("access lock")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Blocks until stdout holds at least `n` access-log lines ([`PATIENCE`] bounds a failure).
    pub fn wait_for_access_lines(&self, n: usize) -> Vec<String> {
        let text = self.access.text.lock().expect("access lock");
        let (text, timeout) = self
            .access
            .grew
            .wait_timeout_while(text, PATIENCE, |t| t.lines().count() < n)
            .expect("access lock");
        assert!(
            !timeout.timed_out(),
            "only {} access log lines, wanted {n}:\n{text}",
            text.lines().count()
        );
        text.lines().map(str::to_string).collect()
    }

    /// Blocks until the log holds `needle` (woken by each new line; [`PATIENCE`] bounds a failure).
    pub fn wait_for_log(&self, needle: &str) {
        self.wait_for_log_count(needle, 1);
    }

    /// Waits until the log shows `needle` at least `n` times (failing after [`PATIENCE`]).
    pub fn wait_for_log_count(&self, needle: &str, n: usize) {
        let text = self.log.text.lock().expect("log lock");
        let (text, timeout) = self
            .log
            .grew
            .wait_timeout_while(text, PATIENCE, |t| t.matches(needle).count() < n)
            .expect("log lock");
        assert!(
            !timeout.timed_out(),
            "log never showed {needle:?} {n} times:\n{text}"
        );
    }

    /// The generated self-signed certificate (PEM).
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.state.path().join("self-signed-cert.pem"))
            .expect("self-signed cert in state dir")
    }

    /// The state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state.path().to_path_buf()
    }

    /// `https://localhost:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{path}",
            self.https.expect("TLS listener").port()
        )
    }

    /// `https://127.0.0.1:PORT`: the TLS listener as an origin by IP (the certificate covers it).
    pub fn https_origin(&self) -> String {
        format!(
            "https://127.0.0.1:{}",
            self.https.expect("TLS listener").port()
        )
    }

    /// `wss://127.0.0.1:PORT{path}`.
    pub fn wss_url(&self, path: &str) -> String {
        format!(
            "wss://127.0.0.1:{}{path}",
            self.https.expect("TLS listener").port()
        )
    }

    /// The generated self-signed certificate (DER).
    pub fn cert_der(&self) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(&self.cert_pem())
            .expect("PEM certificate")
            .to_vec()
    }

    /// `http://127.0.0.1:PORT{path}` on the plain listener.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http.port())
    }

    /// A client that trusts the edge's certificate, resolves localhost to it, follows no
    /// redirects, and speaks whatever ALPN picks (h2 first).
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("client")
    }

    /// GET `url` with [`Edge::client`].
    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client().get(url).send().await.expect("request")
    }

    /// Same as [`Edge::client`], HTTP/1.1 only.
    pub fn client_h1(&self) -> reqwest::Client {
        self.client_builder().http1_only().build().expect("client")
    }

    /// The builder behind the clients, for tests that need more (e.g. a local address).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PATIENCE);
        if let Some(https) = self.https {
            let cert = reqwest::Certificate::from_pem(&self.cert_pem()).expect("PEM cert");
            b = b.add_root_certificate(cert).resolve("localhost", https);
        }
        b
    }

    /// A rustls client config trusting the edge's certificate (for WebSocket clients).
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&self.cert_pem()) {
            roots.add(cert.expect("cert")).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// Peak resident memory of the edge process so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Sends a signal (`TERM`, `HUP`...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit (bounded by [`PATIENCE`]; then it is killed and the test fails).
    pub fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("process not waited for yet");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(self.pid.to_string())
                    .status();
                panic!("mm-edge did not exit; log:\n{}", self.log());
            }
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fake Mattermost and an edge in front of it, kept alive together.
pub struct EdgeWithBackend {
    /// The edge.
    pub edge: Edge,
    /// The fake Mattermost.
    pub backend: Backend,
}

impl std::ops::Deref for EdgeWithBackend {
    type Target = Edge;
    fn deref(&self) -> &Edge {
        &self.edge
    }
}

/// Starts a fake Mattermost and an edge in front of it with `env` on top of the test defaults.
pub async fn start_edge(env: &[(&str, &str)]) -> EdgeWithBackend {
    let backend = Backend::start().await;
    let edge = Edge::start(&backend, env);
    EdgeWithBackend { edge, backend }
}

/// The one value of header `name` in the fake Mattermost's `/api/v4/headers` echo; fails the
/// test when it is missing or was sent more than once.
pub fn echoed_once(v: &serde_json::Value, name: &str) -> String {
    let values = v["headers"][name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} missing upstream: {v}"));
    assert_eq!(values.len(), 1, "{name} sent once: {v}");
    values[0].as_str().expect("string").to_string()
}

/// An address where connections are refused, for as long as the returned listener lives: the
/// listener holds port P on 127.0.0.1 (so no other test is given P), and nothing listens on
/// 127.0.0.2:P. A port bound, released and used later could be taken by another test meanwhile.
#[allow(dead_code)]
pub fn refused_addr() -> (std::net::TcpListener, std::net::SocketAddr) {
    let guard = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = guard.local_addr().expect("addr").port();
    (guard, std::net::SocketAddr::from(([127, 0, 0, 2], port)))
}

/// Reads one HTTP/1.1 response off a raw connection: its head, and a body of its
/// `Content-Length` (none without one); returns the status line.
pub async fn h1_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> String {
    h1_response_with_body(s).await.0
}

/// [`h1_response`], with the body.
pub async fn h1_response_with_body<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(PATIENCE, s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!("connection ended within a response head: {other:?}"),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().expect("Content-Length"));
    let mut body = vec![0u8; len];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut body))
        .await
        .expect("response body in time")
        .expect("response body");
    (head.lines().next().unwrap_or_default().to_string(), body)
}

/// A TLS connection to the edge's HTTPS listener, trusting its certificate; `alpn` as given.
#[allow(dead_code)]
pub async fn tls_connect(
    edge: &Edge,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = (*edge.rustls_config()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(edge.https.expect("tls"))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.expect("TLS handshake")
}

/// Whether a WebSocket's stream ends (closed, failed or a Close frame) within [`PATIENCE`],
/// skipping the messages before.
pub async fn ws_ends<S>(ws: &mut S) -> bool
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// A system tool from PATH, or `None` (after saying so) when it is missing outside CI; under
/// `CI=true` a missing tool fails the test (`.ci/run` installs it).
pub fn tool(name: &str) -> Option<PathBuf> {
    tool_from(name, &format!("apt-get install {name}"))
}

/// [`tool`] for one that another installer brings (`install`: how, for the message).
pub fn tool_from(name: &str, install: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = format!("{name} is not installed ({install})");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{msg}; CI=true, so this test cannot be skipped"
        );
        eprintln!("skipping: {msg}");
    }
    found
}

/// `promtool check metrics` on an exposition (skips like [`tool`] without promtool).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The TCP port process `pid` listens on (the first listening socket it holds), from /proc:
/// for servers started on port 0 that do not say which port they got.
pub fn listening_port(pid: u32) -> Option<u16> {
    let mut inodes = std::collections::BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let target = std::fs::read_link(fd.path()).ok()?;
        if let Some(inode) = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 (HEX_IP:HEX_PORT), st field 3 (0A = LISTEN), inode 9.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}

/// The edge's metrics exposition, from its metrics listener.
pub async fn scrape_metrics(edge: &Edge) -> String {
    let url = format!("http://{}/metrics", edge.metrics.expect("metrics listener"));
    let resp = reqwest::get(url).await.expect("scrape");
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("text")
}

/// A sign-in (`POST path`, JSON) as the apps send it, as user alice with `password` (the fake
/// Mattermost refuses one containing "wrong" with 401).
pub async fn sign_in(
    client: &reqwest::Client,
    edge: &Edge,
    path: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(edge.url(path))
        .header("content-type", "application/json")
        .body(format!(r#"{{"login_id":"alice","password":"{password}"}}"#))
        .send()
        .await
        .expect("request")
}

/// The value of the sample line starting with `series` (exact name and labels); 0 if absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Sends `n` GET requests for `path` one after the other; returns the server that answered each
/// (the access log's `upstream` field), after checking they all got 200.
pub async fn answered_by(edge: &Edge, path: &str, n: usize) -> Vec<String> {
    let before = edge.access_lines().len();
    let client = edge.client();
    for _ in 0..n {
        let resp = client.get(edge.url(path)).send().await.expect("request");
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "{}", edge.log());
        resp.bytes().await.expect("body");
    }
    edge.wait_for_access_lines(before + n)[before..]
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["upstream"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// The next text (or binary, as text) WebSocket message, within [`PATIENCE`].
pub async fn next_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("message in time")
        {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Binary(b))) => return String::from_utf8_lossy(&b).into_owned(),
            Some(Ok(_)) => continue,
            other => panic!("stream ended: {other:?}"),
        }
    }
}

/// A WebSocket through the edge's TLS listener.
pub type Wss =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket with `req` through the edge's TLS listener (trusting its certificate).
pub async fn wss_connect<R>(
    edge: &Edge,
    req: R,
) -> (
    Wss,
    tokio_tungstenite::tungstenite::handshake::client::Response,
)
where
    R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
{
    let tcp = tokio::net::TcpStream::connect(edge.https.expect("tls"))
        .await
        .expect("connect");
    tokio_tungstenite::client_async_tls_with_config(
        req,
        tcp,
        None,
        Some(tokio_tungstenite::Connector::Rustls(edge.rustls_config())),
    )
    .await
    .expect("upgrade through the edge")
}
