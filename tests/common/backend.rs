//! A fake Mattermost: an HTTP/1.1 server on 127.0.0.1 with API-like paths, a WebSocket echo at
//! /api/v4/websocket, a body-hashing upload endpoint and a streamed download.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Mutex};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Body = BoxBody<Bytes, Infallible>;

/// The `X-Version-Id` the fake sends on every response, as Mattermost does.
pub const FAKE_VERSION_ID: &str = "11.7.6.fake.mm-edge-test";

/// The `X-Request-Id` the fake sends on every `/api/` response (26 characters, as Mattermost).
pub const FAKE_REQUEST_ID: &str = "fakeid8ejkmcpqxot1uwisza34";

/// The running fake.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    held: Mutex<mpsc::UnboundedReceiver<()>>,
    task: tokio::task::JoinHandle<()>,
}

struct State {
    /// The status `/api/v4/system/ping` answers (200; 500 plays a server whose database is down).
    ping_status: std::sync::atomic::AtomicU16,
    requests: AtomicUsize,
    connections: AtomicUsize,
    /// Connections that have ended.
    closed: AtomicUsize,
    /// Requests to /api/v4/hold waiting now, and the most ever waiting at once.
    held_now: AtomicUsize,
    held_max: AtomicUsize,
    /// Signalled whenever a counter above changes.
    changed: tokio::sync::Notify,
    held: mpsc::UnboundedSender<()>,
    release: watch::Sender<bool>,
}

impl Backend {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start() -> Backend {
        Backend::start_on("127.0.0.1:0".parse().expect("address")).await
    }

    /// Starts the fake on `addr` (a test that revives a refused address binds its free port).
    pub async fn start_on(addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let (held_tx, held_rx) = mpsc::unbounded_channel();
        let (release, _) = watch::channel(false);
        let state = Arc::new(State {
            ping_status: std::sync::atomic::AtomicU16::new(200),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            held_now: AtomicUsize::new(0),
            held_max: AtomicUsize::new(0),
            changed: tokio::sync::Notify::new(),
            held: held_tx,
            release,
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                st.changed.notify_waiters();
                let st = st.clone();
                tokio::spawn(async move {
                    let closed_by = st.clone();
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move {
                            let api = req.uri().path().starts_with("/api/");
                            let mut resp = route(st, req).await;
                            resp.headers_mut()
                                .insert("x-version-id", FAKE_VERSION_ID.parse().expect("header"));
                            // Mattermost answers every API request with its own request id.
                            if api {
                                resp.headers_mut().insert(
                                    "x-request-id",
                                    FAKE_REQUEST_ID.parse().expect("header"),
                                );
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                    closed_by.closed.fetch_add(1, Ordering::SeqCst);
                    closed_by.changed.notify_waiters();
                });
            }
        });
        Backend {
            addr,
            state,
            held: Mutex::new(held_rx),
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests that reached the backend so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// TCP connections that have ended so far (the edge closed or released them).
    pub fn closed(&self) -> usize {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.connections() - self.closed()
    }

    /// Most requests to /api/v4/hold ever waiting at once.
    pub fn held_max(&self) -> usize {
        self.state.held_max.load(Ordering::SeqCst)
    }

    /// Requests to /api/v4/hold waiting now.
    pub fn held_now(&self) -> usize {
        self.state.held_now.load(Ordering::SeqCst)
    }

    /// Waits (bounded by PATIENCE) until `cond` holds for this backend's counters.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&Backend) -> bool) {
        let waited = tokio::time::timeout(super::PATIENCE, async {
            loop {
                let changed = self.state.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if cond(self) {
                    return;
                }
                changed.await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "backend never reached: {what} (connections {}, closed {}, held {})",
            self.connections(),
            self.closed(),
            self.held_now()
        );
    }

    /// Waits until a request to /api/v4/hold has arrived.
    pub async fn wait_held(&self) {
        let mut rx = self.held.lock().await;
        tokio::time::timeout(super::PATIENCE, rx.recv())
            .await
            .expect("a held request reached the backend")
            .expect("channel open");
    }

    /// Makes `/api/v4/system/ping` answer `status` (other paths answer as before).
    pub fn set_ping_status(&self, status: u16) {
        self.state.ping_status.store(status, Ordering::SeqCst);
    }

    /// Lets every held request answer.
    pub fn release(&self) {
        let _ = self.state.release.send(true);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r
}

fn json(v: serde_json::Value) -> Response<Body> {
    let mut r = full(StatusCode::OK, v.to_string());
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    r
}

/// The deterministic download content: byte `i` of the stream.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// SHA-256 (hex) of the first `len` bytes of the download pattern.
pub fn pattern_sha256(len: u64) -> String {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut i = 0;
    while i < len {
        let n = (len - i).min(buf.len() as u64) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern_byte(i + k as u64);
        }
        h.update(&buf[..n]);
        i += n as u64;
    }
    hex(&h.finalize())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn route(st: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    st.requests.fetch_add(1, Ordering::SeqCst);
    st.changed.notify_waiters();
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/api/v4/system/ping" => {
            let mut r = json(serde_json::json!({"status": "OK"}));
            *r.status_mut() = StatusCode::from_u16(st.ping_status.load(Ordering::SeqCst))
                .unwrap_or(StatusCode::OK);
            r
        }
        // Mattermost's sign-in: a password containing "wrong" is refused as Mattermost refuses
        // one (401 and its error shape), any other succeeds with a session token.
        "/api/v4/users/login" if req.method() == hyper::Method::POST => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return full(StatusCode::BAD_REQUEST, format!("body error: {e}")),
            };
            if body.windows(5).any(|w| w == b"wrong") {
                let mut r = json(serde_json::json!({
                    "id": "api.user.login.invalid_credentials_email_username",
                    "message": "Enter a valid email or username and/or password.",
                    "detailed_error": "",
                    "request_id": FAKE_REQUEST_ID,
                    "status_code": 401,
                }));
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                r
            } else {
                let mut r = json(serde_json::json!({"id": "fakeuserid", "username": "alice"}));
                r.headers_mut()
                    .insert("token", "faketoken".parse().expect("header"));
                r
            }
        }
        "/api/v4/headers" => {
            let mut headers = serde_json::Map::new();
            for name in req.headers().keys() {
                let values: Vec<serde_json::Value> = req
                    .headers()
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
                    .collect();
                headers.insert(name.as_str().to_string(), values.into());
            }
            json(serde_json::json!({
                "method": req.method().as_str(),
                "uri": req.uri().to_string(),
                "version": format!("{:?}", req.version()),
                "headers": headers,
            }))
        }
        "/api/v4/files" => {
            let mut h = Sha256::new();
            let mut len = 0u64;
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Some(d) = f.data_ref() {
                            len += d.len() as u64;
                            h.update(d);
                        }
                    }
                    Err(e) => return full(StatusCode::BAD_REQUEST, format!("body error: {e}")),
                }
            }
            json(serde_json::json!({"sha256": hex(&h.finalize()), "len": len}))
        }
        "/api/v4/download" => {
            let size: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("size="))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            const CHUNK: u64 = 64 * 1024;
            let chunks = futures_util::stream::iter((0..size.div_ceil(CHUNK)).map(move |c| {
                let start = c * CHUNK;
                let n = (size - start).min(CHUNK);
                let data: Vec<u8> = (0..n).map(|k| pattern_byte(start + k)).collect();
                Ok::<_, Infallible>(Frame::data(Bytes::from(data)))
            }));
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
            r.headers_mut()
                .insert("content-length", size.to_string().parse().expect("header"));
            r
        }
        "/api/v4/hold" => {
            /// Counts the request as held until it answers or is abandoned.
            struct Held(Arc<State>);
            impl Drop for Held {
                fn drop(&mut self) {
                    self.0.held_now.fetch_sub(1, Ordering::SeqCst);
                    self.0.changed.notify_waiters();
                }
            }
            let mut release = st.release.subscribe();
            let now = st.held_now.fetch_add(1, Ordering::SeqCst) + 1;
            st.held_max.fetch_max(now, Ordering::SeqCst);
            let _held = Held(st.clone());
            st.changed.notify_waiters();
            let _ = st.held.send(());
            let _ = release.wait_for(|r| *r).await;
            full(StatusCode::OK, "released")
        }
        "/api/v4/slow" => std::future::pending().await,
        "/api/v4/close" => {
            // Answers, then closes the connection (as Mattermost does on shutdown).
            let mut r = full(StatusCode::OK, "closing");
            r.headers_mut()
                .insert("connection", "close".parse().expect("header"));
            r
        }
        "/api/v4/hop" => {
            let mut r = full(StatusCode::OK, "hop");
            let h = r.headers_mut();
            h.insert("connection", "X-Hop-Resp".parse().expect("header"));
            h.insert("x-hop-resp", "1".parse().expect("header"));
            h.insert("keep-alive", "timeout=5".parse().expect("header"));
            h.insert(
                "proxy-authenticate",
                "Basic realm=\"mm\"".parse().expect("header"),
            );
            h.insert("upgrade", "h2c".parse().expect("header"));
            h.insert("x-end-to-end", "1".parse().expect("header"));
            r
        }
        "/api/v4/cors" => {
            let mut r = full(StatusCode::OK, "cors");
            let h = r.headers_mut();
            h.insert(
                "access-control-allow-origin",
                "https://upstream.example".parse().expect("header"),
            );
            h.insert("vary", "Origin".parse().expect("header"));
            r
        }
        "/api/v4/websocket" => {
            let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
                return full(StatusCode::BAD_REQUEST, "not a websocket request");
            };
            let host = header_str(&req, "host");
            let origin = header_str(&req, "origin");
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                let hello = serde_json::json!({"host": host, "origin": origin}).to_string();
                if ws.send(Message::text(hello)).await.is_err() {
                    return;
                }
                while let Some(Ok(msg)) = ws.next().await {
                    let echo = match msg {
                        Message::Text(_) | Message::Binary(_) => msg,
                        Message::Close(_) => return,
                        _ => continue,
                    };
                    if ws.send(echo).await.is_err() {
                        return;
                    }
                }
            });
            let mut r = full(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
            let h = r.headers_mut();
            h.insert("upgrade", "websocket".parse().expect("header"));
            h.insert("connection", "Upgrade".parse().expect("header"));
            h.insert(
                "sec-websocket-accept",
                derive_accept_key(key.as_bytes()).parse().expect("header"),
            );
            r
        }
        _ => json(serde_json::json!({"path": path})),
    }
}

fn header_str(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}
