//! Mattermost servers: a keep-alive connection pool per server ([`pool`]), their health
//! ([`health`]: active checks and refused connections), and the choice between them: each
//! request goes to the usable server with the fewest requests in flight and WebSocket tunnels
//! open (ties in turn), so a restarted server takes its share back as clients reconnect. A
//! request none of which could be sent (the connection was refused or failed) goes once to
//! another server, whatever its method.
//!
//! The list can be replaced while serving ([`Upstreams::replace`], on SIGHUP): requests read it
//! without a lock (`arc-swap`); a request or tunnel holds its server until it ends, so a removed
//! server drains and closes its connections as they finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Body;
use tracing::warn;

use crate::body::BoxError;
use crate::config::{Upstream, UpstreamServer};

pub mod health;
pub mod pool;

use health::{Clock, OnChange, ServerHealth};
use pool::ServerPool;
pub use pool::{ConnPermit, PooledBody, UpstreamError};

/// One Mattermost server: its health and its connections. `B` is the request body type.
#[derive(Debug)]
pub struct Server<B> {
    health: Arc<ServerHealth>,
    pool: Arc<ServerPool<B>>,
}

impl<B> Server<B> {
    /// The server as configured (`http://host:port`), for logs and metrics.
    pub fn name(&self) -> &Arc<str> {
        self.health.name()
    }
}

/// What a replacement of the list changed, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Servers new in the list.
    pub added: Vec<Arc<str>>,
    /// Servers no longer in it (draining).
    pub removed: Vec<Arc<str>>,
}

/// Settings every server's pool is made with (those read at start).
#[derive(Debug, Clone, Copy)]
struct PoolSettings {
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
}

/// The Mattermost servers; `B` is the request body type sent to them.
pub struct Upstreams<B> {
    servers: ArcSwap<Vec<Arc<Server<B>>>>,
    clock: Clock,
    pools: PoolSettings,
    next: AtomicUsize,
    /// Whether `mm_edge_upstream_up` follows the requests (no active checks).
    passive: bool,
    on_change: OnceLock<OnChange>,
}

impl<B> std::fmt::Debug for Upstreams<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("servers", &self.names())
            .finish_non_exhaustive()
    }
}

impl<B> Upstreams<B> {
    /// Builds the pools from the `[upstream]` settings.
    pub fn new(cfg: &Upstream) -> Self {
        let pools = PoolSettings {
            connect_timeout: cfg.connect_timeout,
            idle_timeout: cfg.idle_timeout,
            max_connections: cfg.max_connections,
        };
        let servers = dedup(&cfg.servers)
            .map(|s| Arc::new(server(s, pools)))
            .collect();
        Self {
            servers: ArcSwap::from_pointee(servers),
            clock: Clock::new(cfg.fail_timeout),
            pools,
            next: AtomicUsize::new(0),
            passive: cfg.health_interval.is_zero(),
            on_change: OnceLock::new(),
        }
    }

    /// Sets what is told of every change of a server's state (once; later calls are
    /// ignored): the active checks' verdicts, or without them whether requests could connect.
    pub fn on_change(&self, f: OnChange) {
        let _ = self.on_change.set(f);
    }

    /// The servers' health now, for the checker (which asks again every round).
    pub fn health(&self) -> Vec<Arc<ServerHealth>> {
        self.servers
            .load()
            .iter()
            .map(|s| s.health.clone())
            .collect()
    }

    /// The servers' names now, in the configured order.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.servers
            .load()
            .iter()
            .map(|s| s.name().clone())
            .collect()
    }

    /// Replaces the list: servers kept (same `host:port`) keep their connections and health,
    /// new ones start up with empty pools, removed ones take no new requests and close their
    /// connections as the requests and tunnels on them end.
    pub fn replace(&self, list: &[UpstreamServer]) -> Changes {
        let old = self.servers.load_full();
        let mut changes = Changes::default();
        let new: Vec<Arc<Server<B>>> = dedup(list)
            .map(|s| {
                let name = s.to_string();
                match old.iter().find(|o| **o.name() == *name) {
                    Some(kept) => kept.clone(),
                    None => {
                        let added = Arc::new(server(s, self.pools));
                        changes.added.push(added.name().clone());
                        added
                    }
                }
            })
            .collect();
        for gone in old
            .iter()
            .filter(|o| !new.iter().any(|n| Arc::ptr_eq(n, o)))
        {
            gone.pool.retire();
            changes.removed.push(gone.name().clone());
        }
        self.servers.store(Arc::new(new));
        if let Some(f) = self.on_change.get() {
            for name in &changes.added {
                f(name, true);
            }
        }
        changes
    }

    /// The server for the next request: the usable one with the fewest requests and tunnels
    /// (no lock: relaxed loads; ties go round-robin); when none is usable, the next in turn.
    pub fn pick(&self) -> Arc<Server<B>> {
        self.pick_other(None)
    }

    /// As [`Upstreams::pick`], never `not` while there is another server.
    fn pick_other(&self, not: Option<&Arc<Server<B>>>) -> Arc<Server<B>> {
        let servers = self.servers.load();
        let n = servers.len();
        if n == 1 {
            return servers[0].clone();
        }
        let is_not = |s: &Arc<Server<B>>| not.is_some_and(|x| Arc::ptr_eq(x, s));
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.clock.now_ms();
        let mut best: Option<(&Arc<Server<B>>, usize)> = None;
        for s in (0..n).map(|k| &servers[(start + k) % n]) {
            if is_not(s) || !s.health.usable(now) {
                continue;
            }
            let load = s.pool.in_use();
            if best.is_none_or(|(_, l)| load < l) {
                best = Some((s, load));
            }
        }
        match best {
            Some((s, _)) => s.clone(),
            None if is_not(&servers[start]) => servers[(start + 1) % n].clone(),
            None => servers[start].clone(),
        }
    }

    /// Records that `server` could not be connected to: skipped for the fail timeout. With a
    /// single server there is nowhere else to go, so nothing changes.
    pub fn mark_failed(&self, server: &Server<B>) {
        if self.servers.load().len() > 1 {
            server.health.mark_failed(&self.clock);
        }
    }

    /// Without active checks, the up/down state follows whether requests could connect.
    fn reached(&self, server: &Server<B>, reached: bool) {
        if !self.passive {
            return;
        }
        if let (Some(up), Some(f)) = (server.health.reached(reached), self.on_change.get()) {
            f(server.name(), up);
        }
    }
}

impl<B> Upstreams<B>
where
    B: Body + Default + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends the request in `slot` (origin-form URI, Host set) to `server` over a pooled
    /// connection; a request none of which reached it because it refused or failed the
    /// connection goes once to another server, which `server` then names. After an error,
    /// `slot` still holds the request when none of it was sent.
    pub async fn send(
        &self,
        server: &mut Arc<Server<B>>,
        slot: &mut Option<Request<B>>,
    ) -> Result<Response<PooledBody<B>>, UpstreamError> {
        let result = match server.pool.send(slot).await {
            Err(error)
                if slot.is_some()
                    && self.servers.load().len() > 1
                    && !matches!(error, UpstreamError::Busy(_)) =>
            {
                if error.is_connect() {
                    self.mark_failed(server);
                    self.reached(server, false);
                }
                let other = self.pick_other(Some(server));
                warn!(upstream = %server.name(), error = %error, retry = %other.name(), "request not sent to Mattermost; sending it to another server");
                drop(error);
                *server = other;
                server.pool.send(slot).await
            }
            first => first,
        };
        let connected = !matches!(&result, Err(e) if e.is_connect());
        self.reached(server, connected);
        result
    }
}

impl<B: Send + Sync + 'static> Upstreams<B> {
    /// The active checks of these servers (the list asked for every round), as configured.
    pub fn checks(self: &Arc<Self>, cfg: &Upstream, on_change: Option<OnChange>) -> health::Checks {
        let me = self.clone();
        health::Checks {
            servers: Box::new(move || me.health()),
            interval: cfg.health_interval,
            fails: cfg.health_fails,
            passes: cfg.health_passes,
            on_change,
        }
    }
}

/// The list without repeats of the same server (the first one stays).
fn dedup(list: &[UpstreamServer]) -> impl Iterator<Item = &UpstreamServer> {
    list.iter()
        .enumerate()
        .filter(|(i, s)| !list[..*i].iter().any(|p| p.to_string() == s.to_string()))
        .map(|(_, s)| s)
}

fn server<B>(s: &UpstreamServer, pools: PoolSettings) -> Server<B> {
    let authority = s.authority.to_string();
    Server {
        health: Arc::new(ServerHealth::new(Arc::from(s.to_string()), &authority)),
        pool: Arc::new(ServerPool::new(
            authority,
            pools.connect_timeout,
            pools.idle_timeout,
            pools.max_connections,
        )),
    }
}
