//! Serving one client connection: TLS handshake, HTTP/1.1 or HTTP/2, idle and shutdown handling.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::proxy_header::{ProxyHeader, Refused};
use super::Handler;
use crate::config::Server;
use crate::conn::{ConnInfo, Listener};
use crate::io::coalesce::Coalesce;
use crate::io::stream_stall::StreamExecutor;
use crate::io::tracked::{Expiry, StreamGuard, Tracked, Watch};
use crate::lifecycle::Shutdown;
use crate::observe::metrics::Metrics;
use header_timer::HeaderTimer;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use woken::{SideWakes, Woken};

mod header_timer;
mod parked;
mod woken;

/// HTTP/2: how often an idle connection is pinged, and how long the answer may take.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2: streams a client may have open at once on one connection (each holds at most one
/// connection to Mattermost, so this also bounds a client connection's upstream connections).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// HTTP/2: response bytes buffered per stream beyond what the client's window lets through.
pub const H2_MAX_SEND_BUF: usize = 64 * 1024;
/// HTTP/2: streams the client may reset before the edge accepts them, before the connection is
/// closed (the rapid-reset attack, CVE-2023-44487).
pub const H2_MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// HTTP/2: streams the edge may reset for protocol errors before it closes the connection.
pub const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;
/// HTTP/2 and HTTP/1.1: largest request head (all header names and values), bytes.
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// HTTP/1.1: most header lines in a request head (more gets `431`).
pub const H1_MAX_HEADERS: usize = 128;
/// HTTP/1.1: the connection's read buffer, which bounds a request head's size.
pub const H1_MAX_BUF: usize = 128 * 1024;

/// The HTTP/1.1 settings, applied to hyper's builder and to hyper-util's `auto` (one list).
macro_rules! h1_settings {
    ($builder:expr, $cfg:expr) => {
        $builder
            .timer(HeaderTimer)
            .header_read_timeout($cfg.client_header_timeout)
            .max_headers(H1_MAX_HEADERS)
            .max_buf_size(H1_MAX_BUF)
            .keep_alive(true)
    };
}

/// Which HTTP a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// Told by the first bytes: plain connections (HTTP/1.1, or HTTP/2 with prior knowledge).
    Sniff,
    /// HTTP/1.1: TLS without ALPN `h2`, parked between requests (see [`parked`]).
    H1,
    /// HTTP/2: TLS with ALPN `h2` (served like `Sniff`, see [`Serve`]).
    H2,
}

/// Connection settings shared by every connection.
///
/// TLS HTTP/1.1 connections go straight to hyper's HTTP/1.1 server. The others go through
/// hyper-util's `auto`, which reads the first bytes to tell the protocol and gives them back
/// through a rewind buffer. For HTTP/1.1 that prefix made hyper's read buffer grow from 8 KiB
/// to 16 KiB on the first request and keep it while idle (bench (h): 37.5 -> 32.4 KB per idle
/// connection without it). For HTTP/2 the direct server cost 1.2% more instructions per
/// request (bench/instructions: more copying in h2's reads), so HTTP/2 keeps `auto`.
#[derive(Debug)]
pub struct Serve {
    auto: auto::Builder<StreamExecutor>,
    h1: http1::Builder,
    /// The client header timeout: TLS handshake, PROXY header and each HTTP/1.1 request head.
    header_timeout: Duration,
    keepalive_timeout: Duration,
    send_timeout: Duration,
    shutdown: Shutdown,
    counters: Option<Counters>,
}

/// The metrics a connection updates.
#[derive(Debug)]
struct Counters {
    http1: Gauge,
    http2: Gauge,
    parked: Gauge,
    handshake_failures: Counter,
    proxy_rejected: Counter,
}

impl Serve {
    /// HTTP/1.1 and HTTP/2 settings from the `[server]` settings.
    pub fn new(cfg: &Server, metrics: Option<&Metrics>, shutdown: Shutdown) -> Self {
        let executor = StreamExecutor::new(cfg.send_timeout);
        let mut auto = auto::Builder::new(executor);
        h1_settings!(auto.http1(), cfg);
        auto.http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_send_buf_size(H2_MAX_SEND_BUF)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESETS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS)
            .max_header_list_size(MAX_HEADER_BYTES);
        let mut h1 = http1::Builder::new();
        // A strict bound on the head, checked once it is parsed: the read buffer's bound alone
        // lets through a head that arrives whole in one read of a grown buffer.
        h1_settings!(h1, cfg).max_header_size(H1_MAX_BUF);
        Self {
            auto,
            h1,
            header_timeout: cfg.client_header_timeout,
            keepalive_timeout: cfg.keepalive_timeout,
            send_timeout: cfg.send_timeout,
            shutdown,
            counters: metrics.map(|m| Counters {
                http1: m.connections("http1"),
                http2: m.connections("http2"),
                parked: m.connections_parked.clone(),
                handshake_failures: m.tls_handshake_failures.clone(),
                proxy_rejected: m.proxy_protocol_rejected.clone(),
            }),
        }
    }

    /// Serves one accepted connection to the end. With `proxy_header`, the connection begins
    /// with a PROXY header whose source address stands for `peer` from then on; the header and
    /// the TLS handshake together have the client header timeout.
    pub async fn connection<H: Handler>(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        role: Listener,
        tls: Option<TlsAcceptor>,
        proxy_header: Option<&ProxyHeader>,
        handler: Arc<H>,
    ) {
        let deadline = Instant::now() + self.header_timeout;
        let peer = match proxy_header {
            None => peer,
            Some(reader) => match reader.read(&mut stream, peer, deadline).await {
                Ok(client) => client,
                Err(why) => {
                    if !matches!(why, Refused::Closed { received: 0 }) {
                        if let Some(c) = &self.counters {
                            c.proxy_rejected.inc();
                        }
                    }
                    reader.log_refused(peer, &why);
                    return;
                }
            },
        };
        // The tracker sits right on the socket: it sees every byte that really moves.
        let (stream, activity) = Tracked::client(stream);
        let Some(acceptor) = tls else {
            let conn = ConnInfo::new(peer, role, None);
            // Boxed like the HTTP/2 path below: the task itself stays the size a parked
            // HTTPS HTTP/1.1 connection needs (4.4 KB, from 12.9 KB).
            let http = self.http(stream, activity, conn, Proto::Sniff, handler);
            return Box::pin(http).await;
        };
        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let session = stream.get_ref().1;
                let version = session.protocol_version().map(tls_version_name);
                let h2 = session.alpn_protocol() == Some(b"h2");
                if session.alpn_protocol() == Some(crate::tls::acme::challenges::ACME_TLS_ALPN) {
                    // A TLS-ALPN-01 validation: the handshake was the answer (RFC 8737 3).
                    let mut stream = stream;
                    let _ = tokio::time::timeout(self.header_timeout, stream.shutdown()).await;
                    return;
                }
                let conn = ConnInfo::new(peer, role, version);
                if h2 {
                    let io = Coalesce::new(stream);
                    Box::pin(self.http(io, activity, conn, Proto::H2, handler)).await
                } else {
                    // Boxed: moved as a pointer, the TLS session is not copied into every state
                    // of the connection's future (which a parked connection keeps).
                    let stream = Box::new(stream);
                    self.http(stream, activity, conn, Proto::H1, handler).await
                }
            }
            Ok(Err(e)) => {
                self.handshake_failed();
                debug!(%peer, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                self.handshake_failed();
                debug!(%peer, "TLS handshake timed out");
            }
        }
    }

    fn handshake_failed(&self) {
        if let Some(c) = &self.counters {
            c.handshake_failures.inc();
        }
    }

    async fn http<IO, H>(
        &self,
        io: IO,
        activity: Arc<crate::io::tracked::Activity>,
        conn: ConnInfo,
        proto: Proto,
        handler: Arc<H>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let peer = conn.peer;
        let h2 = proto == Proto::H2;
        let _open = self
            .counters
            .as_ref()
            .map(|c| OpenGauge::new(if h2 { &c.http2 } else { &c.http1 }));
        // One reference count per request for the handler, the connection facts and the
        // upgrade handoff.
        let parking = proto == Proto::H1;
        let shared = Arc::new(Shared {
            handler,
            conn,
            parking,
            handoff: parked::Handoff::default(),
        });
        // HTTP/2 idleness is counted in streams (see `Watch::by_streams`); parking HTTP/1.1
        // waits for its requests to finish.
        let streams = (h2 || parking).then(|| activity.clone());
        let ctx = shared.clone();
        let respond = move |mut req: hyper::Request<Incoming>| {
            let ctx = ctx.clone();
            let guard = streams.as_ref().map(|a| a.stream());
            async move {
                if ctx.parking {
                    ctx.handoff.prepare(&mut req);
                }
                let res = ctx.handler.handle(&ctx.conn, req).await;
                if ctx.parking {
                    ctx.handoff.answered(res.status());
                }
                Ok::<_, Infallible>(res.map(|inner| Streamed {
                    inner,
                    _guard: guard,
                }))
            }
        };
        // HTTP/1.1: woken often enough for hyper's header timer too (see `header_timer`).
        let wake = if h2 {
            self.keepalive_timeout
        } else {
            self.header_timeout
        };
        let mut watch = Watch::waking_for(
            activity.clone(),
            self.keepalive_timeout,
            self.send_timeout,
            wake,
        );
        if h2 {
            watch = watch.by_streams();
        }
        match proto {
            Proto::Sniff | Proto::H2 => {
                let io = TokioIo::new(io);
                // Each request's future boxed: HTTP/2 runs it as its own task, and h2, hyper
                // and tokio move it by value several times on the way there and write its
                // whole stage again when it ends. Boxed, they move a pointer: -1.9% instructions
                // per HTTP/2 request. (HTTP/1.1's dispatcher holds one in place already, so
                // HTTPS HTTP/1.1 below takes it unboxed; plain HTTP/1.1 here pays a malloc.)
                let service = service_fn(move |req| Box::pin(respond(req)));
                let connection = self.auto.serve_connection_with_upgrades(io, service);
                // Boxed, so that the HTTPS HTTP/1.1 instance of this future (which a parked
                // connection keeps) is not sized for hyper-util's connection.
                Box::pin(self.drive(connection, watch, peer)).await;
            }
            Proto::H1 => {
                let service = service_fn(respond);
                self.h1_parking(io, service, watch, &activity, &shared.handoff, peer)
                    .await;
            }
        }
    }

    /// Polls a connection to its end: closed gracefully once idle for the keep-alive timeout
    /// or at shutdown, dropped when the client takes no response byte for the send timeout.
    async fn drive<C, E>(&self, connection: C, mut watch: Watch, peer: SocketAddr)
    where
        C: Future<Output = Result<(), E>> + Graceful,
        E: std::fmt::Display,
    {
        tokio::pin!(connection);
        let mut shutdown = self.shutdown.clone();
        let mut closing = false;
        let mut wakes = SideWakes::default();
        loop {
            let side = std::pin::pin!(side(&mut watch, &mut shutdown, !closing, None));
            let side = Woken::new(wakes.round(), side);
            tokio::select! {
                biased;
                res = connection.as_mut() => {
                    if let Err(e) = res {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                side = side => match side {
                    Side::Expired(Expiry::SendStalled) => {
                        // The client stopped reading: a graceful close would wait on it forever.
                        debug!(%peer, timeout = ?self.send_timeout, "client took no response byte for the send timeout: connection closed");
                        return;
                    }
                    Side::Expired(Expiry::Idle) if !closing => {
                        debug!(%peer, "idle connection closed");
                        closing = true;
                        connection.as_mut().close_gracefully();
                    }
                    Side::Expired(Expiry::Idle) | Side::Tick => {}
                    Side::Shutdown => {
                        closing = true;
                        connection.as_mut().close_gracefully();
                    }
                },
            }
        }
    }
}

/// What a connection's side futures (beside hyper's connection) said.
enum Side {
    /// Its [`Watch`] fired.
    Expired(Expiry),
    /// Shutdown began.
    Shutdown,
    /// Time to look whether the connection can park (HTTPS HTTP/1.1 only).
    Tick,
}

/// Waits for the first of a connection's side futures: its watch, the shutdown signal (while
/// `open`) and, when it parks, its parking ticks (while `open`).
async fn side(
    watch: &mut Watch,
    shutdown: &mut Shutdown,
    open: bool,
    ticks: Option<&mut tokio::time::Interval>,
) -> Side {
    let parking = open && ticks.is_some();
    tokio::select! {
        biased;
        expiry = watch.expired() => Side::Expired(expiry),
        _ = shutdown.requested(), if open => Side::Shutdown,
        _ = async {
            if let Some(t) = ticks {
                t.tick().await;
            }
        }, if parking => Side::Tick,
    }
}

/// A served connection that can be asked to finish what it has and close.
trait Graceful {
    /// Stops taking requests; the connection ends once those in flight are answered.
    fn close_gracefully(self: Pin<&mut Self>);
}

impl<I, S, E, B> Graceful for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::body::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<crate::body::BoxError>,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// What every request on a connection shares.
struct Shared<H> {
    handler: Arc<H>,
    conn: ConnInfo,
    /// HTTPS HTTP/1.1, parked between requests (see [`parked`]).
    parking: bool,
    /// When parking: how an upgraded connection gets to the tunnel.
    handoff: parked::Handoff,
}

pin_project_lite::pin_project! {
    /// A response body that holds its request open (for HTTP/2's idle watch and for parking)
    /// until it is done.
    struct Streamed<B> {
        #[pin]
        inner: B,
        _guard: Option<StreamGuard>,
    }
}

impl<B: Body> Body for Streamed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a connection as open while it lives.
struct OpenGauge<'a>(&'a Gauge);

impl<'a> OpenGauge<'a> {
    fn new(g: &'a Gauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for OpenGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `TLSv1.3`, `TLSv1.2` (as OpenSSL and nginx name them).
fn tls_version_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "TLS",
    }
}
