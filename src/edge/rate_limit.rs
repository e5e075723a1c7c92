//! TEMPORARY stub until the rate limiter lands.
use std::num::{NonZeroU32, NonZeroUsize};
/// Config.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// x
    pub per_sec: NonZeroU32,
    /// x
    pub max_burst: u32,
    /// x
    pub sessions: NonZeroUsize,
    /// x
    pub by_ip: bool,
    /// x
    pub headers: Vec<http::HeaderName>,
}
/// Limiter.
#[derive(Debug)]
pub struct RateLimiter;
/// Decision.
#[derive(Debug)]
pub enum Decision {
    /// ok
    Allowed(RateHeaders),
    /// no
    Refused {
        /// h
        headers: RateHeaders,
        /// r
        retry_after_secs: u64,
    },
}
/// Headers.
#[derive(Debug)]
pub struct RateHeaders;
impl RateHeaders {
    /// Apply.
    pub fn apply(&self, _h: &mut http::HeaderMap) {}
}
impl RateLimiter {
    /// New.
    pub fn new(_c: &RateLimitConfig) -> Self {
        Self
    }
    /// Check.
    pub fn check(&self, _ip: std::net::IpAddr, _h: &http::HeaderMap) -> Decision {
        Decision::Allowed(RateHeaders)
    }
}
