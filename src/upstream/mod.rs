//! Mattermost servers: a keep-alive connection pool per server ([`pool`]), their health
//! ([`health`]: active checks and refused connections), and the choice between them: each
//! request goes to the usable server with the fewest requests in flight and WebSocket tunnels
//! open (ties in turn), so a restarted server takes its share back as clients reconnect. A
//! request none of which could be sent (the connection was refused or failed) goes once to
//! another server, whatever its method.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Body;
use tracing::warn;

use crate::body::BoxError;
use crate::config::Upstream;

pub mod health;
pub mod pool;

use health::Health;
use pool::ServerPool;
pub use pool::{ConnPermit, PooledBody, SendError, UpstreamError};

/// The Mattermost servers; `B` is the request body type sent to them.
#[derive(Debug)]
pub struct Upstreams<B> {
    /// Each server as configured (`http://host:port`), for messages.
    names: Vec<String>,
    health: Arc<Health>,
    next: AtomicUsize,
    pools: Vec<Arc<ServerPool<B>>>,
}

impl<B> Upstreams<B> {
    /// Builds the pools from the `[upstream]` settings.
    pub fn new(cfg: &Upstream) -> Self {
        let pools = cfg
            .servers
            .iter()
            .map(|s| {
                Arc::new(ServerPool::new(
                    s.authority.to_string(),
                    cfg.connect_timeout,
                    cfg.idle_timeout,
                    cfg.max_connections,
                ))
            })
            .collect();
        Self {
            names: cfg.servers.iter().map(ToString::to_string).collect(),
            health: Arc::new(Health::new(cfg.servers.len(), cfg.fail_timeout)),
            next: AtomicUsize::new(0),
            pools,
        }
    }

    /// The servers' health (the checker updates it; metrics watch it).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// The server for the next request: the usable one with the fewest requests and tunnels
    /// (no lock: relaxed loads; ties go round-robin); when none is usable, the next in turn.
    pub fn pick(&self) -> usize {
        self.pick_other(usize::MAX)
    }

    /// As [`Upstreams::pick`], never `not` while there is another server.
    fn pick_other(&self, not: usize) -> usize {
        let n = self.names.len();
        if n == 1 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.health.now_ms();
        let mut best: Option<(usize, usize)> = None;
        for i in (0..n).map(|k| (start + k) % n).filter(|&i| i != not) {
            if !self.health.usable(i, now) {
                continue;
            }
            let load = self.pools[i].in_use();
            if best.is_none_or(|(_, l)| load < l) {
                best = Some((i, load));
            }
        }
        match best {
            Some((i, _)) => i,
            None if start == not => (start + 1) % n,
            None => start,
        }
    }

    /// Server `i` as configured (`http://host:port`).
    pub fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("?", String::as_str)
    }

    /// Records that server `i` could not be connected to (see [`Health::mark_failed`]).
    pub fn mark_failed(&self, i: usize) {
        self.health.mark_failed(i);
    }
}

impl<B> Upstreams<B>
where
    B: Body + Default + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends a request (origin-form URI, Host set) to server `i` over a pooled connection; a
    /// request none of which reached `i` because it refused or failed the connection goes once
    /// to another server. Returns the server that answered, or the one that failed last.
    pub async fn send(
        &self,
        i: usize,
        req: Request<B>,
    ) -> (usize, Result<Response<PooledBody<B>>, UpstreamError>) {
        match self.pools[i].send(req).await {
            Ok(resp) => (i, Ok(resp)),
            Err(SendError {
                error,
                unsent: Some(req),
            }) if self.names.len() > 1 && !matches!(error, UpstreamError::Busy(_)) => {
                if error.is_connect() {
                    self.health.mark_failed(i);
                }
                let j = self.pick_other(i);
                warn!(upstream = %self.name(i), error = %error, retry = %self.name(j), "request not sent to Mattermost; sending it to another server");
                (j, self.pools[j].send(req).await.map_err(|e| e.error))
            }
            Err(e) => (i, Err(e.error)),
        }
    }
}
