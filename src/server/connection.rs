//! Serving one client connection: TLS handshake, HTTP/1.1 or HTTP/2, idle and shutdown handling.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::Handler;
use crate::config::Server;
use crate::conn::{ConnInfo, Listener};
use crate::io::coalesce::Coalesce;
use crate::io::tracked::{Tracked, Watch};
use crate::lifecycle::Shutdown;

/// HTTP/2: how often an idle connection is pinged, and how long the answer may take.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2: streams a client may have open at once on one connection.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 256;

/// Connection settings shared by every connection.
#[derive(Debug)]
pub struct Serve {
    builder: auto::Builder<TokioExecutor>,
    handshake_timeout: Duration,
    keepalive_timeout: Duration,
    shutdown: Shutdown,
}

impl Serve {
    /// HTTP/1.1 and HTTP/2 settings from the `[server]` settings.
    pub fn new(cfg: &Server, shutdown: Shutdown) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(cfg.client_header_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS);
        Self {
            builder,
            handshake_timeout: cfg.client_header_timeout,
            keepalive_timeout: cfg.keepalive_timeout,
            shutdown,
        }
    }

    /// Serves one accepted connection to the end.
    pub async fn connection<H: Handler>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        role: Listener,
        tls: Option<TlsAcceptor>,
        handler: Arc<H>,
    ) {
        let Some(acceptor) = tls else {
            let conn = ConnInfo::new(peer, role, None);
            return self.http(stream, conn, handler).await;
        };
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let session = stream.get_ref().1;
                let version = session.protocol_version().map(tls_version_name);
                let h2 = session.alpn_protocol() == Some(b"h2");
                let conn = ConnInfo::new(peer, role, version);
                if h2 {
                    self.http(Coalesce::new(stream), conn, handler).await
                } else {
                    self.http(stream, conn, handler).await
                }
            }
            Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => debug!(%peer, "TLS handshake timed out"),
        }
    }

    async fn http<IO, H>(&self, io: IO, conn: ConnInfo, handler: Arc<H>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Handler,
    {
        let (io, traffic) = Tracked::new(io);
        let peer = conn.peer;
        // One reference count per request for both the handler and the connection facts.
        let ctx = Arc::new((handler, conn));
        let service = service_fn(move |req| {
            let ctx = ctx.clone();
            async move {
                let (handler, conn) = &*ctx;
                Ok::<_, Infallible>(handler.handle(conn, req).await)
            }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut idle = Watch::new(traffic, self.keepalive_timeout);
        let mut shutdown = self.shutdown.clone();
        let mut closing = false;
        loop {
            tokio::select! {
                res = connection.as_mut() => {
                    if let Err(e) = res {
                        debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = idle.expired(), if !closing => {
                    debug!(%peer, "idle connection closed");
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = shutdown.requested(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
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
