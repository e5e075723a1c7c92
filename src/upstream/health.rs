//! Whether each Mattermost server takes requests.
//!
//! Two sources, like nginx's and HAProxy's: **active checks** (`GET /api/v4/system/ping` on a
//! connection of its own every interval; a server is down after `fails` failed checks in a row
//! and up again after `passes` passed ones), and **passive marks** (a server that refused a
//! connection is skipped for the fail timeout). A server that is down gets no new requests;
//! when every server is down they are all still tried, so the edge never answers 502 for a
//! server that came back between two checks.
//!
//! Each server's state lives with the server ([`ServerHealth`]), so a server added or removed
//! by a reload takes its state with it; the checker asks for the current list every round.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::lifecycle::Shutdown;

/// The path every check asks for: Mattermost's own health endpoint.
pub const PING_PATH: &str = "/api/v4/system/ping";

/// `User-Agent` of the checks (Mattermost's logs and access logs tell them apart).
const USER_AGENT: &str = "mm-edge-health-check";

/// Called with a server's name (`http://host:port`) and its new state (up or not) on every
/// change.
pub type OnChange = Arc<dyn Fn(&str, bool) + Send + Sync>;

/// The clock of the passive marks: milliseconds since an epoch, and how long a refused
/// connection skips a server.
#[derive(Debug)]
pub struct Clock {
    epoch: Instant,
    fail_timeout_ms: u64,
}

impl Clock {
    /// A clock starting now; a refused connection skips a server for `fail_timeout`.
    pub fn new(fail_timeout: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            fail_timeout_ms: u64::try_from(fail_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Milliseconds since the epoch, for [`ServerHealth::usable`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One server's health, shared by the balancer and the checker.
#[derive(Debug)]
pub struct ServerHealth {
    /// `http://host:port`, for logs and metrics.
    name: Arc<str>,
    /// `host:port`, where the checks connect.
    authority: Box<str>,
    /// The active checks' verdict (true until checks say otherwise).
    up: AtomicBool,
    /// Milliseconds of the [`Clock`] until which a refused connection skips it (0: never).
    down_until: AtomicU64,
    /// Consecutive failed checks while up, consecutive passed ones while down.
    streak: AtomicU32,
    /// Whether the last request could connect (what `mm_edge_upstream_up` shows without
    /// active checks); never used for balancing.
    reached: AtomicBool,
}

impl ServerHealth {
    /// A server, up, named `name` (`http://host:port`) and checked at `authority`.
    pub fn new(name: Arc<str>, authority: &str) -> Self {
        Self {
            name,
            authority: authority.into(),
            up: AtomicBool::new(true),
            down_until: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            reached: AtomicBool::new(true),
        }
    }

    /// The server as configured (`http://host:port`).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Whether it takes new requests at `now_ms` (of the [`Clock`]).
    pub fn usable(&self, now_ms: u64) -> bool {
        self.up.load(Ordering::Relaxed) && self.down_until.load(Ordering::Relaxed) <= now_ms
    }

    /// Whether the active checks hold it up.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// It refused a connection: skipped for the clock's fail timeout.
    pub fn mark_failed(&self, clock: &Clock) {
        let until = clock.now_ms().saturating_add(clock.fail_timeout_ms);
        self.down_until.store(until, Ordering::Relaxed);
    }

    /// A request to it could connect (`reached`) or not; returns the new state when that
    /// changed. A load first, so that the steady state writes no shared line.
    pub fn reached(&self, reached: bool) -> Option<bool> {
        if self.reached.load(Ordering::Relaxed) == reached {
            return None;
        }
        (self.reached.swap(reached, Ordering::Relaxed) != reached).then_some(reached)
    }

    /// One check passed or failed; returns the new state when it changed. Only the checker
    /// calls this (one check per server at a time), so the streak needs no compare-and-swap.
    pub fn record(&self, passed: bool, fails: NonZeroU32, passes: NonZeroU32) -> Option<bool> {
        let up = self.up.load(Ordering::Relaxed);
        if passed == up {
            // Agrees with the state: the streak towards a change starts over.
            self.streak.store(0, Ordering::Relaxed);
            return None;
        }
        let streak = self.streak.load(Ordering::Relaxed) + 1;
        let needed = if up { fails } else { passes };
        if streak < needed.get() {
            self.streak.store(streak, Ordering::Relaxed);
            return None;
        }
        self.streak.store(0, Ordering::Relaxed);
        self.up.store(passed, Ordering::Relaxed);
        Some(passed)
    }
}

/// The servers to check: the current list, asked for every round (a reload may change it).
pub type ServerList = Box<dyn Fn() -> Vec<Arc<ServerHealth>> + Send + Sync>;

/// How the checker runs.
pub struct Checks {
    /// The servers.
    pub servers: ServerList,
    /// How often; also how long one check may take.
    pub interval: Duration,
    /// Failed checks in a row that mark a server down.
    pub fails: NonZeroU32,
    /// Passed checks in a row that bring it back.
    pub passes: NonZeroU32,
    /// Told of every change (the metrics' gauge).
    pub on_change: Option<OnChange>,
}

/// Checks every server every interval until shutdown, logging each change.
pub async fn run(checks: Checks, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(checks.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.requested() => return,
        }
        let servers = (checks.servers)();
        let mut round = JoinSet::new();
        for server in &servers {
            let server = server.clone();
            let timeout = checks.interval;
            round.spawn(async move {
                let result = ping(&server.authority, timeout).await;
                (server, result)
            });
        }
        loop {
            let next = tokio::select! {
                next = round.join_next() => next,
                _ = shutdown.requested() => return,
            };
            let Some(Ok((server, result))) = next else {
                break;
            };
            let Some(up) = server.record(result.is_ok(), checks.fails, checks.passes) else {
                continue;
            };
            if !(checks.servers)().iter().any(|s| Arc::ptr_eq(s, &server)) {
                // Removed by a reload while its check ran: nothing to tell.
                continue;
            }
            let name = server.name();
            if up {
                info!(upstream = %name, "Mattermost server is up again (health check passed)");
            } else {
                let error = result.err().unwrap_or_default();
                let others_up = servers
                    .iter()
                    .any(|s| !Arc::ptr_eq(s, &server) && s.is_up());
                if others_up {
                    warn!(upstream = %name, %error, fails = checks.fails.get(), "Mattermost server is down (health checks failed); it gets no new requests");
                } else {
                    warn!(upstream = %name, %error, fails = checks.fails.get(), "Mattermost server is down (health checks failed); no other server is up, so it is still tried");
                }
            }
            if let Some(f) = &checks.on_change {
                f(name, up);
            }
        }
    }
}

/// One check: `GET /api/v4/system/ping` on a new connection, `200` within `timeout`.
async fn ping(authority: &str, timeout: Duration) -> Result<(), String> {
    let check = async {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.uri_mut() = http::Uri::from_static(PING_PATH);
        let headers = req.headers_mut();
        if let Ok(host) = HeaderValue::from_str(authority) {
            headers.insert(header::HOST, host);
        }
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        // Both to their end: the answer, then the connection closing (`Connection: close`).
        let (resp, _) = tokio::join!(sender.send_request(req), conn);
        let resp = resp.map_err(|e| format!("no answer: {e}"))?;
        match resp.status() {
            StatusCode::OK => Ok(()),
            status => Err(format!("{PING_PATH} answered {status}")),
        }
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer to {PING_PATH} within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    fn server() -> ServerHealth {
        ServerHealth::new(Arc::from("http://127.0.0.1:1"), "127.0.0.1:1")
    }

    #[test]
    fn down_after_fails_in_a_row_up_after_passes_in_a_row() {
        let (h, clock) = (server(), Clock::new(Duration::from_secs(10)));
        let (fails, passes) = (n(2), n(3));
        assert_eq!(h.record(false, fails, passes), None);
        // A pass in between starts the count over.
        assert_eq!(h.record(true, fails, passes), None);
        assert_eq!(h.record(false, fails, passes), None);
        assert_eq!(h.record(false, fails, passes), Some(false));
        assert!(!h.usable(clock.now_ms()));
        assert_eq!(h.record(true, fails, passes), None);
        assert_eq!(h.record(true, fails, passes), None);
        assert_eq!(h.record(false, fails, passes), None);
        for _ in 0..2 {
            assert_eq!(h.record(true, fails, passes), None);
        }
        assert_eq!(h.record(true, fails, passes), Some(true));
        assert!(h.usable(clock.now_ms()));
    }

    #[test]
    fn a_refused_connection_skips_a_server_for_the_fail_timeout() {
        let (h, clock) = (server(), Clock::new(Duration::from_secs(60)));
        h.mark_failed(&clock);
        assert!(!h.usable(clock.now_ms()));
        assert!(h.usable(clock.now_ms() + 61_000));
        assert!(h.is_up(), "a passive mark is not the checks' verdict");
    }

    #[test]
    fn reached_tells_only_changes() {
        let h = server();
        assert_eq!(h.reached(true), None);
        assert_eq!(h.reached(false), Some(false));
        assert_eq!(h.reached(false), None);
        assert_eq!(h.reached(true), Some(true));
    }
}
