//! Mattermost servers: a keep-alive connection pool, round-robin choice between servers, and
//! passive health: a server that refuses a connection is skipped for a while.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use std::sync::Arc;

use http::{Request, Response};

use crate::config::{Upstream, UpstreamServer};
use crate::proxy::body::RequestBody;

pub mod pool;

use pool::ServerPool;
pub use pool::{PooledBody, UpstreamError};

/// The pool of Mattermost servers.
#[derive(Debug)]
pub struct Upstreams {
    servers: Vec<UpstreamServer>,
    /// Per server: milliseconds since `epoch` until which it is skipped (0: healthy).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
    fail_timeout_ms: u64,
    next: AtomicUsize,
    pools: Vec<Arc<ServerPool>>,
}

impl Upstreams {
    /// Builds the pool from settings.
    pub fn new(cfg: &Upstream) -> Self {
        let pools = cfg
            .servers
            .iter()
            .map(|s| {
                Arc::new(ServerPool::new(
                    s.authority.to_string(),
                    cfg.connect_timeout,
                    cfg.idle_timeout,
                ))
            })
            .collect();
        Self {
            servers: cfg.servers.clone(),
            down_until: cfg.servers.iter().map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            fail_timeout_ms: u64::try_from(cfg.fail_timeout.as_millis()).unwrap_or(u64::MAX),
            next: AtomicUsize::new(0),
            pools,
        }
    }

    /// The next server, round-robin (a relaxed counter: no lock), skipping servers that refused
    /// a connection within `MM_EDGE_UPSTREAM_FAIL_TIMEOUT`; when all did, the next one is tried anyway.
    pub fn pick(&self) -> (usize, &UpstreamServer) {
        let n = self.servers.len();
        if n == 1 {
            return (0, &self.servers[0]);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.now_ms();
        for k in 0..n {
            let i = (start + k) % n;
            if self.down_until[i].load(Ordering::Relaxed) <= now {
                return (i, &self.servers[i]);
            }
        }
        (start, &self.servers[start])
    }

    /// Records that server `i` could not be connected to: others take its requests for
    /// `MM_EDGE_UPSTREAM_FAIL_TIMEOUT` (like nginx's `fail_timeout`). With a single server there is nowhere else to go, so nothing changes.
    pub fn mark_failed(&self, i: usize) {
        if self.servers.len() > 1 {
            let until = self.now_ms().saturating_add(self.fail_timeout_ms);
            if let Some(d) = self.down_until.get(i) {
                d.store(until, Ordering::Relaxed);
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Sends a request (origin-form URI, Host set) to server `i` over a pooled connection.
    pub async fn send(
        &self,
        i: usize,
        req: Request<RequestBody>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        self.pools[i].send(req).await
    }
}
