//! The edge's policies, each one type built once from its settings section and called per
//! request: the edge's own endpoints ([`endpoints`]), the client IP ([`client_ip`]), CORS
//! ([`cors`]), the rate limit ([`rate_limit`]) and the limit on failed sign-ins
//! ([`login_limit`]). The order they are applied in is the
//! pipeline's (`crate::pipeline`).

pub mod client_ip;
pub mod cors;
pub mod endpoints;
pub mod login_limit;
pub mod rate_limit;

use crate::config::{spec, ConfigError, Settings};
use client_ip::ClientIp;
use cors::Cors;
use login_limit::LoginLimiter;
use rate_limit::RateLimiter;

/// The policies, built once from settings.
#[derive(Debug)]
pub struct Edge {
    /// Who the client is.
    pub client_ip: ClientIp,
    /// CORS, when `cors.domains` lists origins.
    pub cors: Option<Cors>,
    /// The rate limiter, when enabled.
    pub limiter: Option<RateLimiter>,
    /// The limit on failed sign-ins, unless off.
    pub login: Option<LoginLimiter>,
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
        Ok(Self {
            client_ip: ClientIp::new(&settings.client_ip.trusted_proxies),
            cors,
            limiter: rl.enable.then(|| RateLimiter::new(rl)),
            login: settings
                .login_limit
                .rate
                .map(|rate| LoginLimiter::new(&settings.login_limit, rate, rl.ipv6_prefix)),
        })
    }
}
