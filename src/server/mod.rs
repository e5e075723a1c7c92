//! Listeners, connections and shutdown.
//!
//! [`listener::bind`] binds the listeners (so a port in use is reported before anything else
//! happens); [`serve`] accepts connections on each until shutdown begins, hands every request to
//! the [`Handler`], then drains in-flight requests for the grace period.

pub mod connection;
pub mod limits;
pub mod listener;
pub mod proxy_header;
pub mod signals;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::body::BoxError;
use crate::config::Server;
use crate::conn::{ConnInfo, Listener};
use crate::lifecycle::Shutdown;
use crate::observe::metrics::Metrics;
use connection::Serve;
pub use listener::{BindError, Bound};
use proxy_header::ProxyHeader;
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
/// up to the grace period. At most `max_connections` client connections at once, all listeners
/// together: beyond, nothing is accepted (new ones wait in the kernel's queue).
pub async fn serve<H: Handler>(
    cfg: &Server,
    listeners: Vec<Bound>,
    handler: Arc<H>,
    max_connections: usize,
    metrics: Option<Arc<Metrics>>,
    shutdown: Shutdown,
) {
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let serve = Arc::new(Serve::new(cfg, metrics.as_deref(), shutdown.clone()));
    let clients = Slots::new(max_connections);
    // Scrapes must get through while clients hold every slot: the metrics listener has its own.
    let scrapers = Slots::new(METRICS_CONNECTIONS);
    let mut tasks = Vec::new();
    for l in listeners {
        let slots = match l.role {
            Listener::Metrics => scrapers.clone(),
            Listener::Https | Listener::Http => clients.clone(),
        };
        tasks.push(tokio::spawn(accept_loop(
            l.socket,
            l.role,
            l.tls.map(TlsAcceptor::from),
            l.proxy_header,
            handler.clone(),
            serve.clone(),
            slots,
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

#[allow(clippy::too_many_arguments)]
async fn accept_loop<H: Handler>(
    listener: TcpListener,
    role: Listener,
    tls: Option<TlsAcceptor>,
    proxy_header: Option<Arc<ProxyHeader>>,
    handler: Arc<H>,
    serve: Arc<Serve>,
    slots: Slots,
    mut shutdown: Shutdown,
    done: mpsc::Sender<()>,
) {
    let mut errors = Throttled::default();
    let mut full = Throttled::default();
    loop {
        let slot = match slots.free.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if let Some(times) = full.due() {
                    warn!(
                        limit = slots.limit,
                        listener = ?role,
                        times,
                        "connection limit reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.free.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                    _ = shutdown.requested() => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let serve = serve.clone();
                    let handler = handler.clone();
                    let tls = tls.clone();
                    let proxy_header = proxy_header.clone();
                    let done = done.clone();
                    tokio::spawn(async move {
                        let proxy_header = proxy_header.as_deref();
                        serve
                            .connection(stream, peer, role, tls, proxy_header, handler)
                            .await;
                        drop(slot);
                        drop(done);
                    });
                }
                Err(e) => {
                    if let Some(failures) = errors.due() {
                        error!(error = %e, failures, "accept failed");
                    }
                    // Out of file descriptors and the like: back off briefly instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.requested() => break,
        }
    }
}

/// Most connections at once to the metrics listener (Prometheus needs one or two).
const METRICS_CONNECTIONS: usize = 16;

/// The connections still allowed, shared by the listeners given the same slots.
#[derive(Debug, Clone)]
struct Slots {
    free: Arc<Semaphore>,
    limit: usize,
}

impl Slots {
    fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            free: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }
}

/// A repeating event (an accept error, a full connection limit) logged at most once a second
/// with how many times it happened, instead of a line each time.
#[derive(Debug, Default)]
struct Throttled {
    since_log: u64,
    last_log: Option<std::time::Instant>,
}

impl Throttled {
    /// Counts one event; `Some(count since the last line)` when a line is due.
    fn due(&mut self) -> Option<u64> {
        self.since_log += 1;
        let due = self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !due {
            return None;
        }
        self.last_log = Some(std::time::Instant::now());
        Some(std::mem::take(&mut self.since_log))
    }
}
