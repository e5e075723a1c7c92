//! Mattermost servers: a keep-alive connection pool and round-robin choice between servers.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::uri::{Authority, Scheme};
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
            next: AtomicUsize::new(0),
            client,
        }
    }

    /// The next server, round-robin (a relaxed counter: no lock, no contention worth the name).
    pub fn pick(&self) -> &UpstreamServer {
        if self.servers.len() == 1 {
            return &self.servers[0];
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.servers.len();
        &self.servers[i]
    }

    /// The pooled client.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }
}

/// Scheme and authority of a server, for building request URIs without allocation.
pub fn target(server: &UpstreamServer) -> (Scheme, Authority) {
    (server.scheme.clone(), server.authority.clone())
}
