//! The edge's policies, each one type built once from its settings section and called per
//! request: the edge's own endpoints ([`endpoints`]), the client IP ([`client_ip`]), CORS
//! ([`cors`]), the rate limit ([`rate_limit`]) and the limit on failed sign-ins
//! ([`login_limit`]), both optionally shared between edges through Redis ([`shared`]). The order
//! they are applied in is the pipeline's (`crate::pipeline`).

pub mod client_ip;
pub mod cors;
pub mod endpoints;
pub mod login_limit;
pub mod rate_limit;
pub mod shared;

use crate::config::{spec, ConfigError, Settings};
use client_ip::ClientIp;
use cors::Cors;
use login_limit::LoginLimiter;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use rate_limit::{Buckets, RateLimiter};
use shared::SharedBuckets;

/// The policies, built once from settings.
#[derive(Debug)]
pub struct Edge {
    /// Who the client is.
    pub client_ip: ClientIp,
    /// CORS, when `cors.domains` lists origins.
    pub cors: Option<Cors>,
    /// The rate limiter, when enabled.
    pub limiter: Option<RateLimiter<Buckets>>,
    /// The limit on failed sign-ins, unless off.
    pub login: Option<LoginLimiter>,
    /// The Redis both limits share, when `rate_limit.redis` is set.
    pub shared: Option<SharedBuckets>,
}

impl Edge {
    /// Builds the policies; an invalid CORS entry is a configuration error naming the setting.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let cors = Cors::new(&settings.cors).map_err(|e| {
            let setting = match e {
                cors::CorsError::InvalidOrigin { .. } => &spec::CORS_DOMAINS,
                cors::CorsError::InvalidExposedHeader { .. } => &spec::CORS_EXPOSED_HEADERS,
            };
            settings.error(setting, e)
        })?;
        let rl = &settings.rate_limit;
        let shared = match &rl.redis {
            Some(redis) => Some(
                SharedBuckets::new(redis)
                    .map_err(|e| settings.error(&spec::RATE_LIMIT_REDIS, e))?,
            ),
            None => None,
        };
        Ok(Self {
            client_ip: ClientIp::new(&settings.client_ip.trusted_proxies),
            cors,
            limiter: rl
                .enable
                .then(|| RateLimiter::shared_or_local(rl, shared.clone())),
            login: settings.login_limit.rate.map(|rate| {
                LoginLimiter::new(&settings.login_limit, rate, rl.ipv6_prefix)
                    .with_shared(shared.clone())
            }),
            shared,
        })
    }

    /// Connects to the shared Redis, if any, in the background (inside the tokio runtime):
    /// `fallbacks` counts decisions made locally because Redis failed, `up` is 1 while every
    /// connection answers.
    pub fn connect_shared(&self, fallbacks: Counter, up: Gauge) {
        if let Some(shared) = &self.shared {
            shared.connect(fallbacks, up);
        }
    }
}
