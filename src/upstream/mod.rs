//! Mattermost servers: a keep-alive connection pool per server ([`pool`]), round-robin choice
//! between servers, and passive health: a server that refuses a connection is skipped for a while.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Body;

use crate::body::BoxError;
use crate::config::Upstream;

pub mod pool;

use pool::ServerPool;
pub use pool::{ConnPermit, PooledBody, UpstreamError};

/// The Mattermost servers; `B` is the request body type sent to them.
#[derive(Debug)]
pub struct Upstreams<B> {
    /// Each server as configured (`http://host:port`), for messages.
    names: Vec<String>,
    /// Per server: milliseconds since `epoch` until which it is skipped (0: healthy).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
    fail_timeout_ms: u64,
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
            down_until: cfg.servers.iter().map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            fail_timeout_ms: u64::try_from(cfg.fail_timeout.as_millis()).unwrap_or(u64::MAX),
            next: AtomicUsize::new(0),
            pools,
        }
    }

    /// The next server, round-robin (a relaxed counter: no lock), skipping servers that refused
    /// a connection within the fail timeout; when all did, the next one is tried anyway.
    pub fn pick(&self) -> usize {
        let n = self.names.len();
        if n == 1 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.now_ms();
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.down_until[i].load(Ordering::Relaxed) <= now)
            .unwrap_or(start)
    }

    /// Server `i` as configured (`http://host:port`).
    pub fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("?", String::as_str)
    }

    /// Records that server `i` could not be connected to: others take its requests for the fail
    /// timeout (like nginx's `fail_timeout`). With a single server there is nowhere else to go,
    /// so nothing changes.
    pub fn mark_failed(&self, i: usize) {
        if self.names.len() > 1 {
            let until = self.now_ms().saturating_add(self.fail_timeout_ms);
            if let Some(d) = self.down_until.get(i) {
                d.store(until, Ordering::Relaxed);
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl<B> Upstreams<B>
where
    B: Body + Default + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends a request (origin-form URI, Host set) to server `i` over a pooled connection.
    pub async fn send(
        &self,
        i: usize,
        req: Request<B>,
    ) -> Result<Response<PooledBody<B>>, UpstreamError> {
        self.pools[i].send(req).await
    }
}
