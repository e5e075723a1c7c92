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
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::config::Settings;
use crate::idle::{Tracked, Watch};
use crate::proxy::{Conn, Proxy};

use super::coalesce::Coalesce;
use super::redirect::redirect;

/// What answers requests on a listener.
#[derive(Debug, Clone)]
pub enum Handler {
    /// Forward to Mattermost.
    Proxy(Arc<Proxy>),
    /// Redirect to this origin (the site URL's scheme and authority).
    Redirect(Arc<str>),
}

/// Per-listener connection settings, shared by all its connections.
#[derive(Debug)]
pub struct Serve {
    builder: auto::Builder<TokioExecutor>,
    handshake_timeout: Duration,
    keepalive_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl Serve {
    /// HTTP/1.1 and HTTP/2 settings from the configuration.
    pub fn new(settings: &Settings, shutdown: watch::Receiver<bool>) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.server.client_header_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .max_concurrent_streams(256);
        Self {
            builder,
            handshake_timeout: settings.server.client_header_timeout,
            keepalive_timeout: settings.server.keepalive_timeout,
            shutdown,
        }
    }

    /// Serves one accepted connection to the end.
    pub async fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<TlsAcceptor>,
        handler: Handler,
    ) {
        match tls {
            Some(acceptor) => {
                match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let conn = Conn::new(peer, true);
                        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                            self.http(Coalesce::new(stream), conn, handler).await
                        } else {
                            self.http(stream, conn, handler).await
                        }
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            }
            None => self.http(stream, Conn::new(peer, false), handler).await,
        }
    }

    async fn http<IO>(&self, io: IO, conn: Conn, handler: Handler)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (io, traffic) = Tracked::new(io);
        let peer = conn.peer;
        // One reference count per request for both the handler and the connection facts.
        let ctx = Arc::new((handler, conn));
        let service = service_fn(move |req| {
            let ctx = ctx.clone();
            async move {
                let (handler, conn) = &*ctx;
                let resp = match handler {
                    Handler::Proxy(proxy) => proxy.handle(conn, req).await,
                    Handler::Redirect(origin) => redirect(origin, &req),
                };
                Ok::<_, Infallible>(resp)
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
                _ = super::stopping(&mut shutdown), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
