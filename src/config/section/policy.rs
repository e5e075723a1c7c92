//! `[rate_limit]`, `[client_ip]` and `[cors]`: the edge's policies, with Mattermost's semantics.

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::{
    Bool, Cidrs, Count, HeaderNames, Ipv6Prefix, LoginBurst, LoginRate, PerSec, PositiveDur, Rate,
    RedisUrl, Sessions, Text, Words,
};
use super::super::ConfigError;
use super::F;

/// Rate limiting, with Mattermost's semantics.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Limiting on or off.
    pub enable: bool,
    /// Sustained rate per key.
    pub per_sec: NonZeroU32,
    /// Mattermost's MaxBurst: a fresh bucket passes `max_burst + 1` requests at once.
    pub max_burst: u32,
    /// Most keys held (LRU beyond).
    pub sessions: NonZeroUsize,
    /// Client IP is part of the key.
    pub by_ip: bool,
    /// Headers whose lower-cased values are part of the key (lower-case names).
    pub headers: Vec<HeaderName>,
    /// IPv6 client addresses are keyed by this prefix (both limits); 128 = the full address.
    pub ipv6_prefix: u8,
    /// The Redis both limits are shared through; `None` = buckets in this process only.
    pub redis: Option<Redis>,
}

/// A Redis that holds the rate-limit and login-limit buckets of several edges.
#[derive(Clone)]
pub struct Redis {
    /// `redis://`, `rediss://` or `redis+unix://` URL (checked by the client's parser).
    pub url: String,
    /// The password when it is not in the URL.
    pub password: Option<String>,
    /// Longest wait for an answer before deciding locally.
    pub timeout: Duration,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("url", &spec::RATE_LIMIT_REDIS.shown(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `[rate_limit]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitFile {
    enable: F<Bool>,
    per_sec: F<PerSec>,
    max_burst: F<Count>,
    sessions: F<Sessions>,
    by_ip: F<Bool>,
    headers: F<HeaderNames>,
    ipv6_prefix: F<Ipv6Prefix>,
    redis: F<RedisUrl>,
    redis_password: F<Text>,
    redis_timeout: F<PositiveDur>,
}

impl RateLimit {
    /// Builds the section.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: RateLimitFile,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            enable: r.take(&spec::RATE_LIMIT, file.enable)?,
            per_sec: r.take(&spec::RATE_LIMIT_QPS, file.per_sec)?,
            max_burst: r.take(&spec::RATE_LIMIT_BURST, file.max_burst)?,
            sessions: r.take(&spec::RATE_LIMIT_SESSIONS, file.sessions)?,
            by_ip: r.take(&spec::RATE_LIMIT_BY_IP, file.by_ip)?,
            headers: r.take(&spec::RATE_LIMIT_HEADERS, file.headers)?,
            ipv6_prefix: r.take(&spec::RATE_LIMIT_IPV6_PREFIX, file.ipv6_prefix)?,
            redis: {
                let url = r.take(&spec::RATE_LIMIT_REDIS, file.redis)?;
                let password = r.take(&spec::RATE_LIMIT_REDIS_PASSWORD, file.redis_password)?;
                let timeout = r.take(&spec::RATE_LIMIT_REDIS_TIMEOUT, file.redis_timeout)?;
                url.map(|url| Redis {
                    url,
                    password: (!password.is_empty()).then_some(password),
                    timeout,
                })
            },
        })
    }
}

/// The limit on failed sign-ins per client IP.
#[derive(Debug, Clone)]
pub struct LoginLimit {
    /// The refill rate; `None` = off.
    pub rate: Option<Rate>,
    /// Failed sign-ins a fresh client may make in a row.
    pub burst: NonZeroU32,
    /// Most client IPs held (LRU beyond).
    pub sessions: NonZeroUsize,
}

/// `[login_limit]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimitFile {
    rate: F<LoginRate>,
    burst: F<LoginBurst>,
    sessions: F<Sessions>,
}

impl LoginLimit {
    /// Builds the section.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: LoginLimitFile,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            rate: r.take(&spec::LOGIN_LIMIT, file.rate)?,
            burst: r.take(&spec::LOGIN_LIMIT_BURST, file.burst)?,
            sessions: r.take(&spec::LOGIN_LIMIT_SESSIONS, file.sessions)?,
        })
    }
}

/// Which forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    /// Load balancers whose X-Forwarded-For / X-Real-IP are believed (canonical networks).
    pub trusted_proxies: Vec<IpNet>,
}

/// `[client_ip]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientIpFile {
    trusted_proxies: F<Cidrs>,
}

impl ClientIp {
    /// Builds the section.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: ClientIpFile,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            trusted_proxies: r.take(&spec::TRUSTED_PROXIES, file.trusted_proxies)?,
        })
    }
}

/// CORS, with Mattermost's semantics. The origins are checked when the policy is built
/// (`edge::cors`), which names this setting on a bad entry.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Allowed origins as written (empty = CORS off).
    pub domains: Vec<String>,
    /// Access-Control-Expose-Headers.
    pub exposed_headers: Vec<String>,
    /// Access-Control-Allow-Credentials.
    pub allow_credentials: bool,
}

/// `[cors]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsFile {
    domains: F<Words>,
    exposed_headers: F<Words>,
    allow_credentials: F<Bool>,
}

impl Cors {
    /// Builds the section.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: CorsFile,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            domains: r.take(&spec::CORS_DOMAINS, file.domains)?,
            exposed_headers: r.take(&spec::CORS_EXPOSED_HEADERS, file.exposed_headers)?,
            allow_credentials: r.take(&spec::CORS_ALLOW_CREDENTIALS, file.allow_credentials)?,
        })
    }
}
