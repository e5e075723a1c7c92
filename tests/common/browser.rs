//! Headless chromium for browser-facing tests: a loopback page server whose pages report back
//! with `POST /results`, and a browser with a fresh profile that trusts exactly one certificate
//! (pinned by SPKI hash). Without chromium the tests skip, except under `CI=true`, where they fail.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The browser binary, or `None` (after saying so) when it is missing outside CI.
/// `MM_EDGE_CHROMIUM` overrides the lookup. Under `CI=true` a missing browser fails the test.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let found = match std::env::var_os("MM_EDGE_CHROMIUM") {
        Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
        None => ["chromium", "chromium-browser"]
            .iter()
            .find_map(|name| find_in_path(name)),
    };
    if found.is_none() {
        let msg = "chromium not found (install Debian's `chromium` package, or set \
                   MM_EDGE_CHROMIUM to the binary)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{msg}; CI=true, so the browser test cannot be skipped");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A loopback HTTP/1.1 server for the probe page: `GET /` returns the page and
/// `POST /results` hands its body to the test. Each connection gets one response and is then
/// closed.
pub struct PageServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl PageServer {
    /// Binds `127.0.0.1:0`, so the origin is known before the edge is configured.
    pub fn bind() -> std::io::Result<PageServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        Ok(PageServer { listener, addr })
    }

    /// `http://127.0.0.1:<port>`, the page's origin.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts serving `html`; results arrive on the returned page's channel.
    pub fn serve(self, html: String) -> RunningPage {
        self.serve_after_dropping(0, html)
    }

    /// Like [`PageServer::serve`], but the first `drop_first` connections are closed at once,
    /// unanswered (a server that is still starting, as a proxy in front sees it).
    pub fn serve_after_dropping(self, drop_first: usize, html: String) -> RunningPage {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let html: Arc<str> = html.into();
        let stop_flag = stop.clone();
        let listener = self.listener;
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if counter.fetch_add(1, Ordering::SeqCst) < drop_first {
                    drop(conn);
                    continue;
                }
                let (html, tx) = (html.clone(), tx.clone());
                thread::spawn(move || serve_one(conn, &html, &tx));
            }
        });
        RunningPage {
            url: format!("http://{}/", self.addr),
            addr: self.addr,
            results: rx,
            stop,
            accepted,
        }
    }
}

/// A page being served; stops its accept loop when dropped.
pub struct RunningPage {
    url: String,
    addr: SocketAddr,
    results: Receiver<String>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl RunningPage {
    /// Connections accepted so far (dropped ones included).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for RunningPage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_one(mut conn: TcpStream, html: &str, results: &Sender<String>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(&mut conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    if name.trim().eq_ignore_ascii_case("content-length") {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
        }
    }
    let mut body = vec![0; content_length.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let response = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/")) => format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
             content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{html}",
            html.len()
        ),
        (Some("POST"), Some("/results")) => {
            let _ = results.send(String::from_utf8_lossy(&body).into_owned());
            "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_owned()
        }
        _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
    };
    let _ = conn.write_all(response.as_bytes());
}

/// Runs chromium on `page` until the page reports; returns the report body. Fails when the
/// browser exits first or nothing arrives within `timeout`, with the tail of its stderr.
pub fn run_page(
    chromium: &Path,
    page: &RunningPage,
    spki_sha256_base64: &str,
    timeout: Duration,
) -> Result<String, String> {
    run_url(chromium, &page.url, page, spki_sha256_base64, timeout)
}

/// Runs chromium on `url` (a page that ends up reporting to `page`, e.g. through a proxy in
/// front of it) until the report arrives; fails as [`run_page`] does.
pub fn run_url(
    chromium: &Path,
    url: &str,
    page: &RunningPage,
    spki_sha256_base64: &str,
    timeout: Duration,
) -> Result<String, String> {
    let mut browser = Browser::launch(chromium, url, spki_sha256_base64)?;
    let start = Instant::now();
    loop {
        // The report arrives on the channel; the short recv timeout only lets us notice a
        // browser that died, and `timeout` bounds a hang.
        match page.results.recv_timeout(Duration::from_millis(250)) {
            Ok(body) => return Ok(body),
            Err(RecvTimeoutError::Disconnected) => return Err("page server stopped".to_owned()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if let Ok(Some(status)) = browser.child.try_wait() {
            return Err(format!(
                "chromium exited early ({status}); stderr tail:\n{}",
                browser.stderr_tail()
            ));
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "no report from the page within {timeout:?}; stderr tail:\n{}",
                browser.stderr_tail()
            ));
        }
    }
}

/// A headless chromium with a fresh profile; killed and cleaned up on drop.
struct Browser {
    child: Child,
    dir: PathBuf,
}

impl Browser {
    fn launch(chromium: &Path, url: &str, spki: &str) -> Result<Browser, String> {
        let dir = fresh_temp_dir()?;
        let profile = dir.join("profile");
        let stderr = fs::File::create(dir.join("stderr.log"))
            .map_err(|e| format!("create stderr log: {e}"))?;
        let child = Command::new(chromium)
            .args([
                "--headless",
                // Root (CI containers) cannot use the setuid/namespace sandbox.
                "--no-sandbox",
                "--disable-gpu",
                // Debian's wrapper fails to measure /dev/shm in containers; never rely on it.
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            // Trust exactly the edge's key (honoured only together with --user-data-dir).
            .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Own process group, so drop can end the browser and all its helpers at once.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start {}: {e}", chromium.display()))?;
        Ok(Browser { child, dir })
    }

    fn stderr_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("dbus")) // harmless noise: no system bus in containers
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Debian's /usr/bin/chromium execs the browser, so the child is the browser and the
        // group leader; killing the group also ends zygote and renderers at once (alone they
        // linger for a few seconds). Fall back to the child if `kill` is unavailable.
        let group = format!("-{}", self.child.id());
        let killed_group = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !killed_group {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn fresh_temp_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "mm-edge-browser-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of a DER certificate: the form
/// `--ignore-certificate-errors-spki-list` takes.
pub fn spki_sha256_base64(cert_der: &[u8]) -> Result<String, String> {
    let spki = subject_public_key_info(cert_der).ok_or("certificate is not DER X.509")?;
    Ok(base64(&Sha256::digest(spki)))
}

/// Walks Certificate -> tbsCertificate -> [version] serial signature issuer validity
/// subject -> subjectPublicKeyInfo, returning that element's full encoding.
fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
    let (_, cert_body, _) = der_element(cert, 0x30)?;
    let (_, tbs, _) = der_element(cert_body, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest, 0xa0)?.2;
    }
    rest = der_element(rest, 0x02)?.2; // serialNumber
    for _ in 0..4 {
        rest = der_element(rest, 0x30)?.2; // signature, issuer, validity, subject
    }
    der_element(rest, 0x30).map(|(whole, _, _)| whole)
}

/// One DER element with the expected tag: (whole element, contents, what follows).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = input
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let whole = input.get(..end)?;
    Some((whole, &whole[header..], &input[end..]))
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
