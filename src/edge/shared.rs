//! Buckets shared by several edges, in one Redis (`rate_limit.redis`).
//!
//! Each decision is one round trip: a Lua script ([`TAKE`]) runs the same GCRA as the local store
//! atomically inside Redis, on Redis's own clock (`TIME`), so edges with skewed clocks agree. A
//! bucket is a hash holding its theoretical arrival time as whole seconds and nanoseconds (Lua
//! numbers are doubles: one nanosecond count since 1970 would not be exact), and expires
//! (`PEXPIRE`) when it would be full again, so Redis holds only the clients active within one
//! bucket's refill time. [`GIVE_BACK`] returns a cell (the login limit's refund).
//!
//! Commands go over a fixed pool of [`POOL_SIZE`] multiplexed connections (the client pipelines
//! the requests of all tasks on each), picked by the key's digest: no counter shared between
//! cores. A connection that fails or answers later than the timeout is marked down: its requests
//! are decided at once by the caller's local store (no request waits on a dead Redis) while a
//! background task, every [`PROBE_INTERVAL`], loads the scripts again over it (the connection
//! manager reconnecting meanwhile) and marks it up when Redis answers. The first failure of an
//! outage is logged, its end too, and every decision made locally because of it is counted.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, IntoConnectionInfo, Script, ServerErrorKind};
use tracing::{info, warn};

use crate::config::{spec, Redis};

/// Connections to Redis per edge (each multiplexed: requests are pipelined on it).
pub const POOL_SIZE: usize = 4;
/// While a connection is down, it is tried again this often.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How long loading the scripts over a connection (with connecting) may take.
const WARM_UP: Duration = Duration::from_secs(2);
/// Key prefix of the rate limit's buckets (followed by the key's 24 bytes).
pub const RATE_PREFIX: &[u8] = b"mm-edge:rl:";
/// Key prefix of the login limit's buckets (followed by the client network's 16 octets).
pub const LOGIN_PREFIX: &[u8] = b"mm-edge:login:";

/// `KEYS[1]` a bucket, `ARGV[1]` the emission interval T and `ARGV[2]` the tolerance tau, in ns.
/// The GCRA of governor (and Go `throttled`): with `ahead` = max(TAT - now, 0), a request
/// conforms when `ahead <= tau`; it then moves TAT to now + ahead + T and leaves
/// floor((tau - ahead) / T) cells. Returns the cells left (>= 0) when it conforms, else minus the
/// ns until a request would conform (< 0: `ahead > tau`): one integer, not a pair, which the
/// client parses with fewer steps and no array. Integers stay exact while tau + T is below
/// 2^53 ns (104 days); `math.fmod` is exact, so the divisions are too. (`replicate_commands` lets a script write after `TIME` on
/// Redis 3.2 to 4; from 5 on it is implied, from 7 deprecated.)
pub const TAKE: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local now = redis.call('TIME')
local now_s = tonumber(now[1])
local now_ns = tonumber(now[2]) * 1000
local tat = redis.call('HMGET', KEYS[1], 's', 'n')
local ahead = 0
if tat[1] and tat[2] then
  ahead = (tonumber(tat[1]) - now_s) * 1000000000 + (tonumber(tat[2]) - now_ns)
  if ahead < 0 then ahead = 0 end
end
if ahead > tau then
  return tau - ahead
end
local next = ahead + t
local at = now_ns + next
local carry = at - math.fmod(at, 1000000000)
redis.call('HSET', KEYS[1], 's', now_s + carry / 1000000000, 'n', at - carry)
redis.call('PEXPIRE', KEYS[1], math.ceil(next / 1000000))
local left = tau - ahead
return (left - math.fmod(left, t)) / t
";

/// `KEYS[1]` a bucket, `ARGV[1]` T in ns: gives one cell back (TAT - T); a bucket that is then
/// full is deleted. Returns 0.
pub const GIVE_BACK: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = tonumber(ARGV[1])
local tat = redis.call('HMGET', KEYS[1], 's', 'n')
if not (tat[1] and tat[2]) then
  return 0
end
local now = redis.call('TIME')
local now_s = tonumber(now[1])
local now_ns = tonumber(now[2]) * 1000
local ahead = (tonumber(tat[1]) - now_s) * 1000000000 + (tonumber(tat[2]) - now_ns) - t
if ahead <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
local at = now_ns + ahead
local carry = at - math.fmod(at, 1000000000)
redis.call('HSET', KEYS[1], 's', now_s + carry / 1000000000, 'n', at - carry)
redis.call('PEXPIRE', KEYS[1], math.ceil(ahead / 1000000))
return 0
";

/// What the GCRA said about one request, wherever it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A cell was taken; `remaining` cells are left.
    Taken {
        /// Cells left: floor((tau - ahead) / T).
        remaining: u32,
    },
    /// The bucket is empty: a request would conform in `wait_ns`.
    Refused {
        /// Nanoseconds until a request would conform.
        wait_ns: u64,
    },
}

/// The Redis holding the shared buckets: cheap to clone (both limits hold one).
#[derive(Clone)]
pub struct SharedBuckets(Arc<Inner>);

struct Inner {
    client: redis::Client,
    /// The URL for logs, password redacted.
    shown: String,
    timeout: Duration,
    take: Script,
    give_back: Script,
    /// Set by [`SharedBuckets::connect`]; until then every decision is local.
    pool: OnceLock<Pool>,
    /// Connections not up.
    down: AtomicUsize,
    /// Whether this outage was logged.
    outage_logged: AtomicBool,
}

struct Pool {
    conns: Box<[Conn]>,
    fallbacks: Counter,
    up: Gauge,
}

struct Conn {
    manager: ConnectionManager,
    /// Whether requests go over it (else a probe task is trying it).
    up: AtomicBool,
}

impl SharedBuckets {
    /// The client for `cfg` (no connection yet); an unusable URL is an error message.
    pub fn new(cfg: &Redis) -> Result<Self, String> {
        let shown = spec::RATE_LIMIT_REDIS.shown(&cfg.url).into_owned();
        let mut info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| e.to_string())?;
        if let Some(password) = &cfg.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        Ok(Self(Arc::new(Inner {
            client,
            shown,
            timeout: cfg.timeout,
            take: Script::new(TAKE),
            give_back: Script::new(GIVE_BACK),
            pool: OnceLock::new(),
            down: AtomicUsize::new(POOL_SIZE),
            outage_logged: AtomicBool::new(false),
        })))
    }

    /// Opens the pool and loads the scripts in the background; `fallbacks` counts the decisions
    /// made locally because Redis failed, `up` says whether every connection answers. Must run
    /// inside the tokio runtime; a second call does nothing.
    pub fn connect(&self, fallbacks: Counter, up: Gauge) {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(WARM_UP))
            // Every call here runs under a timeout of its own (the request's, or the probe's):
            // one inside the client would arm a second timer per command.
            .set_response_timeout(None)
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(3);
        let mut conns = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            match ConnectionManager::new_lazy_with_config(self.0.client.clone(), config.clone()) {
                Ok(manager) => conns.push(Conn {
                    manager,
                    up: AtomicBool::new(false),
                }),
                Err(e) => {
                    warn!(redis = %self.0.shown, error = %e, "shared limits: no Redis client; limits stay in this edge");
                    return;
                }
            }
        }
        let pool = Pool {
            conns: conns.into_boxed_slice(),
            fallbacks,
            up,
        };
        if self.0.pool.set(pool).is_err() {
            return;
        }
        for i in 0..POOL_SIZE {
            self.probe(i, Duration::ZERO);
        }
    }

    /// Spawns the task that brings connection `i` up: it loads the scripts over it (after
    /// `first_wait`, then every [`PROBE_INTERVAL`]) until Redis answers.
    fn probe(&self, i: usize, first_wait: Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let Some(pool) = this.0.pool.get() else {
                return;
            };
            let Some(conn) = pool.conns.get(i) else {
                return;
            };
            let mut wait = first_wait;
            loop {
                tokio::time::sleep(wait).await;
                wait = PROBE_INTERVAL;
                let mut manager = conn.manager.clone();
                let loaded = tokio::time::timeout(WARM_UP, async {
                    this.0.take.load_async(&mut manager).await?;
                    this.0.give_back.load_async(&mut manager).await
                })
                .await;
                // Connected: it must also answer as fast as requests need, or a Redis that is
                // merely slow would flap between shared and local.
                let timeout = this.0.timeout;
                let ping_cmd = redis::cmd("PING");
                let ping = async {
                    let pong = ping_cmd.query_async::<String>(&mut manager);
                    tokio::time::timeout(timeout, pong).await
                };
                match loaded {
                    Ok(Ok(_)) => match ping.await {
                        Ok(Ok(_)) => return this.mark_up(pool, conn),
                        Ok(Err(e)) => this.outage(pool, &e),
                        Err(_) => this.outage(pool, &Slow(timeout)),
                    },
                    Ok(Err(e)) => this.outage(pool, &e),
                    Err(_) => this.outage(pool, &Slow(WARM_UP)),
                }
            }
        });
    }

    /// Takes a cell from the bucket `key` (T and tau in ns); `None` = decide locally (Redis
    /// down, slow, or not connected yet). `hint` spreads keys over the connections.
    pub async fn take(&self, key: &[u8], hint: u64, t: u64, tau: u64) -> Option<Step> {
        let n = self.eval(&self.0.take, key, hint, t, Some(tau)).await?;
        Some(match u32::try_from(n) {
            Ok(remaining) => Step::Taken { remaining },
            Err(_) if n > 0 => Step::Taken {
                remaining: u32::MAX,
            },
            Err(_) => Step::Refused {
                wait_ns: n.unsigned_abs(),
            },
        })
    }

    /// Gives a cell back to the bucket `key` (T in ns); false when Redis did not answer (the cell
    /// stays taken).
    pub async fn give_back(&self, key: &[u8], hint: u64, t: u64) -> bool {
        self.eval(&self.0.give_back, key, hint, t, None)
            .await
            .is_some()
    }

    /// Runs `script` on `key` with the arguments over the key's connection, within the timeout.
    async fn eval(
        &self,
        script: &Script,
        key: &[u8],
        hint: u64,
        t: u64,
        tau: Option<u64>,
    ) -> Option<i64> {
        let pool = self.0.pool.get()?;
        let i = (hint % POOL_SIZE as u64) as usize;
        let conn = pool.conns.get(i)?;
        if !conn.up.load(Ordering::Acquire) {
            pool.fallbacks.inc();
            return None;
        }
        let mut cmd = Cmd::with_capacity(6, 96);
        cmd.arg("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(key)
            .arg(t);
        if let Some(tau) = tau {
            cmd.arg(tau);
        }
        let mut manager = conn.manager.clone();
        let answer = tokio::time::timeout(self.0.timeout, async {
            // send_packed_command, not query_async: the latter boxes a future per call.
            let sent = manager.send_packed_command(&cmd).await;
            let value = match sent.and_then(redis::Value::extract_error) {
                // Redis restarted (or flushed its scripts): load it again, once.
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut manager).await?;
                    let again = manager.send_packed_command(&cmd).await;
                    again.and_then(redis::Value::extract_error)?
                }
                other => other?,
            };
            Ok::<_, redis::RedisError>(redis::from_redis_value::<i64>(value)?)
        })
        .await;
        let failure: &dyn fmt::Display = match &answer {
            Ok(Ok(n)) => return Some(*n),
            Ok(Err(e)) => e,
            Err(_) => &Slow(self.0.timeout),
        };
        self.mark_down(pool, i, failure);
        pool.fallbacks.inc();
        None
    }

    fn mark_up(&self, pool: &Pool, conn: &Conn) {
        if !conn.up.swap(true, Ordering::AcqRel) && self.0.down.fetch_sub(1, Ordering::AcqRel) == 1
        {
            pool.up.set(1);
            self.0.outage_logged.store(false, Ordering::Release);
            info!(redis = %self.0.shown, connections = POOL_SIZE, "shared limits: Redis answers; rate and login limits are shared");
        }
    }

    /// Connection `i` failed a request: its requests go local until its probe gets through.
    fn mark_down(&self, pool: &Pool, i: usize, error: &dyn fmt::Display) {
        let Some(conn) = pool.conns.get(i) else {
            return;
        };
        if conn.up.swap(false, Ordering::AcqRel) {
            self.0.down.fetch_add(1, Ordering::AcqRel);
            self.probe(i, PROBE_INTERVAL);
        }
        self.outage(pool, error);
    }

    /// Logs the outage once.
    fn outage(&self, pool: &Pool, error: &dyn fmt::Display) {
        pool.up.set(0);
        if !self.0.outage_logged.swap(true, Ordering::AcqRel) {
            warn!(redis = %self.0.shown, error = %error, "shared limits: Redis unreachable or slow; this edge decides with its own limits until Redis answers again");
        }
    }
}

/// A timeout, as an error for the log.
struct Slow(Duration);

impl fmt::Display for Slow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {:?}", self.0)
    }
}

impl fmt::Debug for SharedBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBuckets")
            .field("redis", &self.0.shown)
            .field("timeout", &self.0.timeout)
            .finish_non_exhaustive()
    }
}
