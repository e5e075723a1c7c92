//! Listeners, connections and shutdown.
//!
//! [`start`] binds the listeners (so a port in use is reported before anything else happens);
//! [`Server::serve`] accepts connections until SIGTERM/SIGINT, then drains in-flight requests for
//! the grace period. SIGHUP reloads the TLS certificate.

pub mod coalesce;
pub mod connection;
pub mod redirect;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::tls::CertStore;
pub use connection::Handler;
use connection::Serve;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("{setting}={addr}: cannot listen there ({source}); pick a free port or stop what holds it (ports below 1024 need root or CAP_NET_BIND_SERVICE)")]
    Bind {
        /// The setting naming the address.
        setting: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Bound listeners, ready to serve.
#[derive(Debug)]
pub struct Bound {
    https: Option<TcpListener>,
    http: TcpListener,
}

impl Bound {
    /// The actual addresses (port 0 resolved): (https if TLS runs, http).
    pub fn addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        (
            self.https.as_ref().and_then(|l| l.local_addr().ok()),
            self.http.local_addr().ok(),
        )
    }
}

/// Binds the listeners the settings ask for.
pub async fn bind(settings: &Settings) -> Result<Bound, StartError> {
    let https = if settings.terminates_tls() {
        Some(bind_one("MM_EDGE_HTTPS_LISTEN", settings.listen.https)?)
    } else {
        None
    };
    let http = bind_one("MM_EDGE_HTTP_LISTEN", settings.listen.http)?;
    Ok(Bound { https, http })
}

fn bind_one(setting: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind {
        setting,
        addr,
        source,
    };
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(4096).map_err(err)
}

/// Runs the bound listeners until a shutdown signal, then drains.
pub async fn serve(
    settings: Arc<Settings>,
    bound: Bound,
    handler: Handler,
    redirect_handler: Handler,
    certs: Option<(Arc<CertStore>, Arc<rustls::ServerConfig>)>,
    shutdown_tx: watch::Sender<bool>,
    mut signals: Signals,
) {
    let shutdown_rx = shutdown_tx.subscribe();
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let serve = Arc::new(Serve::new(&settings, shutdown_rx.clone()));
    let mut tasks = Vec::new();
    let mut cert_store = None;
    if let (Some(listener), Some((store, config))) = (bound.https, certs) {
        cert_store = Some(store);
        let acceptor = TlsAcceptor::from(config);
        tasks.push(tokio::spawn(accept_loop(
            listener,
            Some(acceptor),
            handler.clone(),
            serve.clone(),
            shutdown_rx.clone(),
            done_tx.clone(),
        )));
        tasks.push(tokio::spawn(accept_loop(
            bound.http,
            None,
            redirect_handler,
            serve.clone(),
            shutdown_rx.clone(),
            done_tx.clone(),
        )));
    } else {
        tasks.push(tokio::spawn(accept_loop(
            bound.http,
            None,
            handler,
            serve.clone(),
            shutdown_rx.clone(),
            done_tx.clone(),
        )));
    }
    drop(done_tx);
    signals.stop_requested(cert_store.as_deref()).await;
    info!(grace = ?settings.server.shutdown_grace, "shutting down: no new connections, draining in-flight requests");
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    // Every connection task holds a sender; recv() yields None once all have finished.
    match tokio::time::timeout(settings.server.shutdown_grace, done_rx.recv()).await {
        Ok(_) => info!("all connections finished"),
        Err(_) => warn!("shutdown grace period over; closing the remaining connections"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    serve: Arc<Serve>,
    mut shutdown: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let serve = serve.clone();
                    let handler = handler.clone();
                    let tls = tls.clone();
                    let done = done.clone();
                    tokio::spawn(async move {
                        serve.connection(stream, peer, tls, handler).await;
                        drop(done);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly instead of spinning.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = stopping(&mut shutdown) => break,
        }
    }
}

/// The process signals mm-edge reacts to, installed before it announces that it listens so that
/// a signal arriving right after start-up is never lost to the default action.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP meanwhile reloads the TLS certificate.
    async fn stop_requested(&mut self, certs: Option<&CertStore>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => match certs {
                    Some(store) => match store.reload() {
                        Ok(origin) => info!(cert = %origin, "TLS certificate reloaded"),
                        Err(e) => error!(error = %e, "TLS certificate reload failed; keeping the old one"),
                    },
                    None => info!("SIGHUP: nothing to reload (TLS is not terminated here)"),
                },
            }
        }
    }
}

/// Resolves once shutdown has been signalled (or the signal's sender is gone).
pub async fn stopping(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
