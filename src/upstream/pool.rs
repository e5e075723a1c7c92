//! Keep-alive HTTP/1.1 connections to one Mattermost server.
//!
//! A stack of idle connections per server: a request takes the most recently used one (warm,
//! least likely to have been closed by Mattermost), and gives it back when its response body has
//! been read to the end, from the body itself, so no task is spawned per request and no pool key
//! is hashed (hyper-util's legacy client does both; measured in bench (a)).
//!
//! Every connection, idle, busy or carrying a WebSocket tunnel, holds one of the server's
//! `max_connections` permits; a request that needs a new connection when none is left waits for
//! one up to the connect timeout, then fails as [`UpstreamError::Busy`].
//!
//! A kept-alive connection that Mattermost closed just as it was reused fails the request before
//! any response byte; such a request is sent once more on a fresh connection when that cannot
//! repeat anything: it was not sent at all, or it is idempotent (GET, HEAD, OPTIONS, PUT,
//! DELETE) with no body. A body already streamed is never sent twice.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::body::BoxError;

/// Most idle connections kept per server.
const MAX_IDLE: usize = 1024;

/// Bounds of the period at which expired idle connections are closed.
const REAP_MIN: Duration = Duration::from_millis(100);
const REAP_MAX: Duration = Duration::from_secs(5);

type Sender<B> = SendRequest<B>;

/// Why a request could not be sent to Mattermost or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No TCP connection could be made (refused, unreachable, timed out).
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// Every connection the server may have is in use, for the whole connect timeout.
    #[error("all {0} connections to the server are in use")]
    Busy(usize),
    /// The connection failed while sending the request or reading the response head.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// [`ServerPool::send`] was given an empty slot (a bug in its caller, answered as a 502).
    #[error("no request to send")]
    NothingToSend,
}

impl UpstreamError {
    /// Whether the server could not be reached at all (safe to mark it down).
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// A connection's share of the server's connection limit; released when the connection goes.
#[derive(Debug)]
pub struct ConnPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// A connection to the server with its permit.
#[derive(Debug)]
struct Conn<B> {
    sender: Sender<B>,
    permit: ConnPermit,
}

/// The idle connections to one server; `B` is the request body type sent.
#[derive(Debug)]
pub struct ServerPool<B> {
    addr: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
    permits: Arc<Semaphore>,
    /// Requests waiting for a permit: connections coming back then close instead of idling.
    waiting: AtomicUsize,
    idle: Mutex<VecDeque<(Conn<B>, Instant)>>,
    /// `idle.len()`, readable without the lock (for balancing).
    idle_len: AtomicUsize,
    /// Whether the task closing expired idle connections runs (started by the first connect).
    reaper: AtomicBool,
    /// Removed from the list by a reload: connections coming back close instead of idling.
    retired: AtomicBool,
}

impl<B> ServerPool<B> {
    /// A pool for `addr` (`host:port`) of at most `max_connections` connections.
    pub fn new(
        addr: String,
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_connections: usize,
    ) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            addr,
            connect_timeout,
            idle_timeout,
            max_connections,
            permits: Arc::new(Semaphore::new(max_connections)),
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(VecDeque::new()),
            idle_len: AtomicUsize::new(0),
            reaper: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        }
    }

    /// Connections open now (idle, busy and tunnels).
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.permits.available_permits()
    }

    /// Requests in flight and WebSocket tunnels open now (a connection carries one at a time,
    /// so these are the connections not idle, the ones being opened included). Two relaxed
    /// loads: a balancing hint, not an exact count.
    pub fn in_use(&self) -> usize {
        self.open_connections()
            .saturating_sub(self.idle_len.load(Ordering::Relaxed))
    }

    fn take_idle(&self) -> Option<Conn<B>> {
        let mut idle = self.idle.lock();
        let mut found = None;
        while let Some((conn, since)) = idle.pop_back() {
            if !conn.sender.is_closed() && since.elapsed() < self.idle_timeout {
                found = Some(conn);
                break;
            }
        }
        self.idle_len.store(idle.len(), Ordering::Relaxed);
        found
    }

    /// Closes the idle connections older than the idle timeout, and the oldest beyond `keep`
    /// (the oldest sit at the front).
    fn close_expired(&self, idle: &mut VecDeque<(Conn<B>, Instant)>, now: Instant, keep: usize) {
        while let Some((_, since)) = idle.front() {
            if now.duration_since(*since) >= self.idle_timeout || idle.len() > keep {
                idle.pop_front();
            } else {
                break;
            }
        }
    }

    /// The server was removed from the list: its idle connections close now, the busy ones
    /// and the tunnels when they end (nothing in flight is cut).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        let mut idle = self.idle.lock();
        idle.clear();
        self.idle_len.store(0, Ordering::Relaxed);
    }

    fn put_back(&self, conn: Conn<B>) {
        if conn.sender.is_closed() || self.waiting.load(Ordering::Relaxed) > 0 {
            // Closed, or someone waits for a permit: let this one go so they get it.
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock();
        // Read under the lock that `retire` takes after setting it: none slips in after.
        if self.retired.load(Ordering::Relaxed) {
            return;
        }
        // Room for this one within the bound.
        self.close_expired(&mut idle, now, MAX_IDLE - 1);
        idle.push_back((conn, now));
        self.idle_len.store(idle.len(), Ordering::Relaxed);
    }
}

impl<B> ServerPool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends the request in `slot` (origin-form URI, Host set) on an idle connection or a new
    /// one; see the module documentation for when it is sent a second time. After an error,
    /// `slot` still holds the request when none of it was sent (it may go to another server).
    ///
    /// The request stays in the caller's slot rather than being passed by value, so that it
    /// is stored once in the request's future, not once per layer of it.
    pub async fn send(
        self: &Arc<Self>,
        slot: &mut Option<Request<B>>,
    ) -> Result<Response<PooledBody<B>>, UpstreamError>
    where
        B: Default,
    {
        let mut retried = false;
        loop {
            // The repeat after a stale connection goes on a new one: another idle connection
            // may be just as stale (Mattermost closing them all at once, in a restart).
            let idle = if retried { None } else { self.take_idle() };
            let (mut conn, reused) = match idle {
                Some(c) => (c, true),
                // Boxed: a new connection is the rare case, and its future would otherwise
                // make every request's future larger.
                None => (Box::pin(self.connect()).await?, false),
            };
            if let Err(e) = conn.sender.ready().await {
                if reused {
                    continue;
                }
                return Err(e.into());
            }
            // Moved straight from the slot into hyper's future (no copy of it stays in this
            // one); a repeat costs a copy of the head, made only where a repeat can happen.
            let (again, sending) = match slot.take() {
                Some(req) => (
                    (reused && !retried && repeatable(&req)).then(|| head_of(&req)),
                    conn.sender.try_send_request(req),
                ),
                None => return Err(UpstreamError::NothingToSend),
            };
            match sending.await {
                Ok(resp) => {
                    // An upgraded connection becomes the tunnel; it never returns to the pool.
                    let reusable = resp.status() != StatusCode::SWITCHING_PROTOCOLS;
                    let ret = Some((conn, self.clone()));
                    return Ok(resp.map(|inner| PooledBody {
                        inner,
                        ret,
                        reusable,
                    }));
                }
                Err(mut e) => {
                    if let Some(unsent) = e.take_message() {
                        *slot = Some(unsent);
                        if reused {
                            continue;
                        }
                        return Err(e.into_error().into());
                    }
                    let err = e.into_error();
                    match again {
                        Some(head) if stale(&err) => {
                            debug!(error = %err, "kept-alive upstream connection was closed; sending once more on a fresh one");
                            retried = true;
                            *slot = Some(head.with_body(B::default()));
                        }
                        _ => return Err(err.into()),
                    }
                }
            }
        }
    }

    async fn permit(&self) -> Result<ConnPermit, UpstreamError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(ConnPermit(p));
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let got =
            tokio::time::timeout(self.connect_timeout, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        match got {
            Ok(Ok(p)) => Ok(ConnPermit(p)),
            _ => Err(UpstreamError::Busy(self.max_connections)),
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<Conn<B>, UpstreamError> {
        // A load first: after the first connect, no write to the shared line.
        if !self.reaper.load(Ordering::Relaxed) && !self.reaper.swap(true, Ordering::Relaxed) {
            tokio::spawn(reap(Arc::downgrade(self)));
        }
        let permit = self.permit().await?;
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(&self.addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(UpstreamError::Connect(e)),
            Err(_) => {
                return Err(UpstreamError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no connection within {:?} ({})",
                        self.connect_timeout,
                        crate::config::spec::UPSTREAM_CONNECT_TIMEOUT.env
                    ),
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Conn { sender, permit })
    }
}

/// Closes a pool's expired idle connections even when no request comes to do it, so that a
/// burst's connections (and their memory and file descriptors, here and in Mattermost) go
/// within an eighth of the idle timeout (at most 5 s) after it; ends with the pool.
async fn reap<B>(pool: Weak<ServerPool<B>>) {
    let Some(period) = pool
        .upgrade()
        .map(|p| (p.idle_timeout / 8).clamp(REAP_MIN, REAP_MAX))
    else {
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock();
        pool.close_expired(&mut idle, Instant::now(), MAX_IDLE);
        pool.idle_len.store(idle.len(), Ordering::Relaxed);
    }
}

/// Whether a request can be sent once more after its connection failed: idempotent, no body.
fn repeatable<B: Body>(req: &Request<B>) -> bool {
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    ) && req.body().is_end_stream()
}

/// Whether an error means the server closed the connection before answering.
fn stale(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe);
        }
        cur = err.source();
    }
    false
}

/// A request's head, to send it again.
struct Head {
    method: Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
}

impl Head {
    fn with_body<B>(self, body: B) -> Request<B> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        req
    }
}

fn head_of<B>(req: &Request<B>) -> Head {
    Head {
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        headers: req.headers().clone(),
    }
}

/// Mattermost's response body; gives its connection back to the pool once read to the end.
#[derive(Debug)]
pub struct PooledBody<B> {
    inner: Incoming,
    ret: Option<(Conn<B>, Arc<ServerPool<B>>)>,
    reusable: bool,
}

impl<B> PooledBody<B> {
    /// For a `101 Switching Protocols`: the connection becomes a tunnel and never returns to
    /// the pool; its permit goes with the tunnel (hold it until the tunnel closes).
    pub fn take_permit(&mut self) -> Option<ConnPermit> {
        self.ret.take().map(|(conn, _)| conn.permit)
    }
}

impl<B> Body for PooledBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = res {
            if let Some((conn, pool)) = self.ret.take() {
                if self.reusable {
                    pool.put_back(conn);
                }
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for PooledBody<B> {
    fn drop(&mut self) {
        // A body dropped unread leaves the connection mid-message: it cannot be reused.
        if let Some((conn, pool)) = self.ret.take() {
            if self.reusable && self.inner.is_end_stream() {
                pool.put_back(conn);
            }
        }
    }
}
