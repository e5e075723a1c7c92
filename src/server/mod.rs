//! Listeners, connections and shutdown.
//!
//! [`listener::bind`] binds the listeners (so a port in use is reported before anything else
//! happens); [`serve`] accepts connections on each until shutdown begins, hands every request to
//! the [`Handler`], then drains in-flight requests for the grace period.

pub mod connection;
pub mod listener;
pub mod signals;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::body::BoxError;
use crate::config::Server;
use crate::conn::{ConnInfo, Listener};
use crate::lifecycle::Shutdown;
use connection::Serve;
pub use listener::{BindError, Bound};
pub use signals::Signals;

/// What answers the requests of every connection.
pub trait Handler: Send + Sync + 'static {
    /// The response body.
    type Body: Body<Data = Bytes, Error = Self::Error> + Send + 'static;
    /// The response body's error.
    type Error: Into<BoxError>;

    /// Answers one request that arrived on `conn`; never fails (errors are answers too).
    fn handle(
        &self,
        conn: &ConnInfo,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Self::Body>> + Send;
}

/// Serves the bound listeners until `shutdown` fires, then lets in-flight requests finish for
/// up to `grace`.
pub async fn serve<H: Handler>(
    cfg: &Server,
    listeners: Vec<Bound>,
    handler: Arc<H>,
    shutdown: Shutdown,
) {
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let serve = Arc::new(Serve::new(cfg, shutdown.clone()));
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(accept_loop(
            l.socket,
            l.role,
            l.tls.map(TlsAcceptor::from),
            handler.clone(),
            serve.clone(),
            shutdown.clone(),
            done_tx.clone(),
        )));
    }
    drop(done_tx);
    for t in tasks {
        let _ = t.await;
    }
    drain(cfg.shutdown_grace, &mut done_rx).await;
}

/// Waits until every connection task has finished (each holds a sender) or `grace` is over.
async fn drain(grace: Duration, done: &mut mpsc::Receiver<()>) {
    match tokio::time::timeout(grace, done.recv()).await {
        Ok(_) => info!("all connections finished"),
        Err(_) => warn!("shutdown grace period over; closing the remaining connections"),
    }
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    role: Listener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
    serve: Arc<Serve>,
    mut shutdown: Shutdown,
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
                        serve.connection(stream, peer, role, tls, handler).await;
                        drop(done);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly instead of spinning.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.requested() => break,
        }
    }
}
