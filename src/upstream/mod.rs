//! Mattermost servers: a keep-alive connection pool, round-robin choice between servers, and
//! passive health: a server that refuses a connection is skipped for a while.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{Upstream, UpstreamServer};
use crate::proxy::body::RequestBody;

/// The HTTP/1.1 client used towards Mattermost.
pub type UpstreamClient = Client<HttpConnector, RequestBody>;

/// The pool of Mattermost servers.
#[derive(Debug)]
pub struct Upstreams {
    servers: Vec<UpstreamServer>,
    /// Per server: milliseconds since `epoch` until which it is skipped (0: healthy).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
    fail_timeout_ms: u64,
    next: AtomicUsize,
    client: UpstreamClient,
}

impl Upstreams {
    /// Builds the pool from settings.
    pub fn new(cfg: &Upstream) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_keepalive(Some(std::time::Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.idle_timeout)
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(1024)
            // The Host header is the client's and is always set by the proxy.
            .set_host(false)
            .build(connector);
        Self {
            servers: cfg.servers.clone(),
            down_until: cfg.servers.iter().map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            fail_timeout_ms: u64::try_from(cfg.fail_timeout.as_millis()).unwrap_or(u64::MAX),
            next: AtomicUsize::new(0),
            client,
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

    /// The pooled client.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }
}
