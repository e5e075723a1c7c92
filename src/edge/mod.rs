//! Edge policies, applied to every request in one visible order before it is forwarded:
//!
//! 1. the edge's own health endpoint (never limited),
//! 2. client IP resolution (trusted proxies),
//! 3. CORS preflight answers (never limited, never forwarded),
//! 4. rate limiting.
//!
//! On the way back, [`Edge::on_response`] adds the CORS and rate-limit headers.

pub mod client_ip;
pub mod cors;
pub mod rate_limit;

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::config::{ConfigError, Settings};
use crate::proxy::body::ResponseBody;
use crate::proxy::local;
use client_ip::ClientIp;
use cors::Cors;
use rate_limit::{Decision, RateHeaders, RateLimiter};

/// The edge's own health endpoint; a path no Mattermost route or team name can take.
pub const HEALTH_PATH: &str = "/.mm-edge/healthz";

/// What the edge decided about a request.
#[derive(Debug)]
pub enum Verdict {
    /// Answer at the edge; do not forward.
    Answer(Response<ResponseBody>),
    /// Forward, remembering what the response needs.
    Forward(Passed),
}

/// A request that passed the edge, and what its response needs.
#[derive(Debug)]
pub struct Passed {
    /// The client's IP (after trusted-proxy resolution).
    pub client_ip: IpAddr,
    /// Method and Origin of a request when CORS is on (its response may need CORS headers).
    cors: Option<(Method, Option<HeaderValue>)>,
    rate: Option<RateHeaders>,
}

/// The policies, built once from settings.
#[derive(Debug)]
pub struct Edge {
    client_ip: ClientIp,
    cors: Option<Cors>,
    limiter: Option<RateLimiter>,
}

impl Edge {
    /// Builds the policies; an invalid CORS entry is a configuration error.
    pub fn new(settings: &Settings) -> Result<Self, ConfigError> {
        let cors = Cors::new(&cors::CorsConfig {
            domains: settings.cors.domains.clone(),
            exposed_headers: settings.cors.exposed_headers.clone(),
            allow_credentials: settings.cors.allow_credentials,
        })
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let rl = &settings.rate_limit;
        let limiter = rl.enable.then(|| {
            RateLimiter::new(&rate_limit::RateLimitConfig {
                per_sec: rl.per_sec,
                max_burst: rl.max_burst,
                sessions: rl.sessions,
                by_ip: rl.by_ip,
                headers: rl.headers.clone(),
            })
        });
        Ok(Self {
            client_ip: ClientIp::new(settings.trusted_proxies.clone()),
            cors,
            limiter,
        })
    }

    /// The rate limiter, if enabled (for tests and metrics).
    pub fn limiter(&self) -> Option<&RateLimiter> {
        self.limiter.as_ref()
    }

    /// Applies the policies to a request from TCP peer `peer`.
    pub fn on_request<B>(&self, peer: IpAddr, req: &Request<B>) -> Verdict {
        if req.uri().path() == HEALTH_PATH {
            return Verdict::Answer(local(StatusCode::OK, "ok\n"));
        }
        let client_ip = self.client_ip.resolve(peer, req.headers());
        let mut cors_req = None;
        if let Some(cors) = &self.cors {
            if let Some((status, headers)) = cors.preflight(req.method(), req.headers()) {
                let mut resp = Response::new(crate::proxy::body::local(""));
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                return Verdict::Answer(resp);
            }
            cors_req = Some((
                req.method().clone(),
                req.headers().get(header::ORIGIN).cloned(),
            ));
        }
        let mut rate = None;
        if let Some(limiter) = &self.limiter {
            match limiter.check(client_ip, req.headers()) {
                Decision::Allowed(h) => rate = Some(h),
                Decision::Refused {
                    headers,
                    retry_after_secs,
                } => {
                    let mut resp = local(StatusCode::TOO_MANY_REQUESTS, rate_limit::REFUSED_BODY);
                    headers.apply(resp.headers_mut());
                    resp.headers_mut().insert(
                        header::RETRY_AFTER,
                        rate_limit::numeric_header_value(retry_after_secs),
                    );
                    // A browser can only read the 429 if it carries the CORS headers too.
                    if let (Some(cors), Some((method, origin))) = (&self.cors, &cors_req) {
                        cors.apply_actual(method, origin.as_ref(), resp.headers_mut());
                    }
                    return Verdict::Answer(resp);
                }
            }
        }
        Verdict::Forward(Passed {
            client_ip,
            cors: cors_req,
            rate,
        })
    }

    /// Adds the CORS and rate-limit headers to Mattermost's response.
    pub fn on_response(&self, passed: &Passed, headers: &mut HeaderMap) {
        if let (Some(cors), Some((method, origin))) = (&self.cors, &passed.cors) {
            cors.apply_actual(method, origin.as_ref(), headers);
        }
        if let Some(rate) = &passed.rate {
            rate.apply(headers);
        }
    }
}
