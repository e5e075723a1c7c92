//! Whether each Mattermost server takes requests.
//!
//! Two sources, like nginx's and HAProxy's: **active checks** (`GET /api/v4/system/ping` on a
//! connection of its own every interval; a server is down after `fails` failed checks in a row
//! and up again after `passes` passed ones), and **passive marks** (a server that refused a
//! connection is skipped for the fail timeout). A server that is down gets no new requests;
//! when every server is down they are all still tried, so the edge never answers 502 for a
//! server that came back between two checks.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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

/// Called with a server's index and its new state (up or not) on every change.
pub type OnChange = Box<dyn Fn(usize, bool) + Send + Sync>;

#[derive(Debug)]
struct Server {
    /// The active checks' verdict (true until checks say otherwise).
    up: AtomicBool,
    /// Milliseconds since `epoch` until which a refused connection skips it (0: never).
    down_until: AtomicU64,
    /// Consecutive failed checks while up, consecutive passed ones while down.
    streak: AtomicU32,
}

/// The health of every server, shared by the balancer and the checker.
pub struct Health {
    servers: Box<[Server]>,
    epoch: Instant,
    fail_timeout_ms: u64,
    on_change: OnceLock<OnChange>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl Health {
    /// `n` servers, all up; a refused connection skips one for `fail_timeout`.
    pub fn new(n: usize, fail_timeout: Duration) -> Self {
        Self {
            servers: (0..n)
                .map(|_| Server {
                    up: AtomicBool::new(true),
                    down_until: AtomicU64::new(0),
                    streak: AtomicU32::new(0),
                })
                .collect(),
            epoch: Instant::now(),
            fail_timeout_ms: u64::try_from(fail_timeout.as_millis()).unwrap_or(u64::MAX),
            on_change: OnceLock::new(),
        }
    }

    /// Sets what is told of every change (once; later calls are ignored).
    pub fn on_change(&self, f: OnChange) {
        let _ = self.on_change.set(f);
    }

    /// Milliseconds since the epoch, for [`Health::usable`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether server `i` takes new requests at `now_ms`.
    pub fn usable(&self, i: usize, now_ms: u64) -> bool {
        self.servers.get(i).is_some_and(|s| {
            s.up.load(Ordering::Relaxed) && s.down_until.load(Ordering::Relaxed) <= now_ms
        })
    }

    /// Whether the active checks hold server `i` up.
    pub fn is_up(&self, i: usize) -> bool {
        self.servers
            .get(i)
            .is_some_and(|s| s.up.load(Ordering::Relaxed))
    }

    /// Server `i` refused a connection: skipped for the fail timeout. With a single server
    /// there is nowhere else to go, so nothing changes.
    pub fn mark_failed(&self, i: usize) {
        if self.servers.len() > 1 {
            let until = self.now_ms().saturating_add(self.fail_timeout_ms);
            if let Some(s) = self.servers.get(i) {
                s.down_until.store(until, Ordering::Relaxed);
            }
        }
    }

    /// One check of server `i` passed or failed; returns the new state when it changed.
    /// Only the checker calls this (one check per server at a time), so the streak needs no
    /// compare-and-swap.
    pub fn record(
        &self,
        i: usize,
        passed: bool,
        fails: NonZeroU32,
        passes: NonZeroU32,
    ) -> Option<bool> {
        let s = self.servers.get(i)?;
        let up = s.up.load(Ordering::Relaxed);
        if passed == up {
            // Agrees with the state: the streak towards a change starts over.
            s.streak.store(0, Ordering::Relaxed);
            return None;
        }
        let streak = s.streak.load(Ordering::Relaxed) + 1;
        let needed = if up { fails } else { passes };
        if streak < needed.get() {
            s.streak.store(streak, Ordering::Relaxed);
            return None;
        }
        s.streak.store(0, Ordering::Relaxed);
        s.up.store(passed, Ordering::Relaxed);
        if let Some(f) = self.on_change.get() {
            f(i, passed);
        }
        Some(passed)
    }
}

/// How the checker runs.
#[derive(Debug, Clone)]
pub struct Checks {
    /// Each server as configured (`http://host:port`), for logs.
    pub names: Vec<String>,
    /// Each server's `host:port`.
    pub authorities: Vec<String>,
    /// How often; also how long one check may take.
    pub interval: Duration,
    /// Failed checks in a row that mark a server down.
    pub fails: NonZeroU32,
    /// Passed checks in a row that bring it back.
    pub passes: NonZeroU32,
}

/// Checks every server every interval until shutdown, logging each change.
pub async fn run(health: Arc<Health>, checks: Checks, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(checks.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.requested() => return,
        }
        let mut round = JoinSet::new();
        for (i, authority) in checks.authorities.iter().enumerate() {
            let authority = authority.clone();
            let timeout = checks.interval;
            round.spawn(async move { (i, ping(&authority, timeout).await) });
        }
        loop {
            let next = tokio::select! {
                next = round.join_next() => next,
                _ = shutdown.requested() => return,
            };
            let Some(Ok((i, result))) = next else { break };
            let name = checks.names.get(i).map_or("?", String::as_str);
            match health.record(i, result.is_ok(), checks.fails, checks.passes) {
                Some(true) => {
                    info!(upstream = %name, "Mattermost server is up again (health check passed)")
                }
                Some(false) => {
                    let error = result.err().unwrap_or_default();
                    let others_up = (0..checks.names.len()).any(|j| j != i && health.is_up(j));
                    if others_up {
                        warn!(upstream = %name, %error, fails = checks.fails.get(), "Mattermost server is down (health checks failed); it gets no new requests");
                    } else {
                        warn!(upstream = %name, %error, fails = checks.fails.get(), "Mattermost server is down (health checks failed); no other server is up, so it is still tried");
                    }
                }
                None => {}
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

    #[test]
    fn down_after_fails_in_a_row_up_after_passes_in_a_row() {
        let h = Health::new(2, Duration::from_secs(10));
        let (fails, passes) = (n(2), n(3));
        assert_eq!(h.record(0, false, fails, passes), None);
        // A pass in between starts the count over.
        assert_eq!(h.record(0, true, fails, passes), None);
        assert_eq!(h.record(0, false, fails, passes), None);
        assert_eq!(h.record(0, false, fails, passes), Some(false));
        assert!(!h.usable(0, h.now_ms()));
        assert!(h.usable(1, h.now_ms()));
        assert_eq!(h.record(0, true, fails, passes), None);
        assert_eq!(h.record(0, true, fails, passes), None);
        assert_eq!(h.record(0, false, fails, passes), None);
        for _ in 0..2 {
            assert_eq!(h.record(0, true, fails, passes), None);
        }
        assert_eq!(h.record(0, true, fails, passes), Some(true));
        assert!(h.usable(0, h.now_ms()));
    }

    #[test]
    fn changes_are_told() {
        let h = Health::new(1, Duration::ZERO);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        h.on_change(Box::new(move |i, up| log.lock().unwrap().push((i, up))));
        h.record(0, false, n(1), n(1));
        h.record(0, false, n(1), n(1));
        h.record(0, true, n(1), n(1));
        assert_eq!(*seen.lock().unwrap(), vec![(0, false), (0, true)]);
    }

    #[test]
    fn a_refused_connection_skips_a_server_only_when_there_are_others() {
        let one = Health::new(1, Duration::from_secs(60));
        one.mark_failed(0);
        assert!(one.usable(0, one.now_ms()));
        let two = Health::new(2, Duration::from_secs(60));
        two.mark_failed(1);
        assert!(!two.usable(1, two.now_ms()));
        assert!(two.usable(1, two.now_ms() + 61_000));
    }
}
