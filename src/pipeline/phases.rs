//! The request phases, each a small function over the context; [`super::Pipeline`] applies them
//! in one visible order. A phase that answers returns the [`Answer`]; the request goes no
//! further.

use http::header::{self, HeaderValue};
use http::{Method, Request};

use super::ctx::{Login, RequestCtx};
use crate::answer::{Answer, EdgeError};
use crate::edge::client_ip::ClientIp;
use crate::edge::cors::Cors;
use crate::edge::endpoints::{self, Endpoint};
use crate::edge::login_limit::{self, LoginLimiter};
use crate::edge::rate_limit::{BucketStore, Decision, RateLimiter};
use crate::observe::metrics::Metrics;
use crate::proxy::headers::{content_length, X_REQUEST_ID};
use crate::tls::acme::challenges::{Challenges, HTTP01_PREFIX};

/// Requests RFC 9112 and RFC 9113 say to refuse, refused before anything else: two `Host`
/// headers, an HTTP/1.1 request without `Host`, a target that is not a path (`GET echo`), and
/// `CONNECT` (which would be forwarded as a request for `/`). `OPTIONS *` is answered here.
pub fn validate<B>(_ctx: &mut RequestCtx, req: &Request<B>) -> Result<(), Answer> {
    let hosts = req.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        return Err(EdgeError::BadRequest("more than one Host header").into());
    }
    if hosts == 0 && req.version() == http::Version::HTTP_11 && req.uri().authority().is_none() {
        return Err(EdgeError::BadRequest("HTTP/1.1 request without a Host header").into());
    }
    if req.method() == Method::CONNECT {
        return Err(EdgeError::NotImplemented.into());
    }
    match req.uri().path_and_query().map(|p| p.as_str()) {
        Some("*") if req.method() == Method::OPTIONS => Err(Answer::ServerOptions),
        Some(p) if p.starts_with('/') => Ok(()),
        _ => Err(EdgeError::BadRequest("the request target is not a path").into()),
    }
}

/// The edge's own endpoints (health), before anything else: never limited, never forwarded.
pub fn own_endpoints<B>(_ctx: &mut RequestCtx, req: &Request<B>) -> Result<(), Answer> {
    match endpoints::lookup(req.uri().path()) {
        Some(Endpoint::Health) => Err(Answer::Health),
        None => Ok(()),
    }
}

/// An ACME CA's HTTP-01 request (`/.well-known/acme-challenge/<token>`, on either listener,
/// when ACME runs): the key authorization of an open challenge, else 404. Before the redirect,
/// the client IP and the rate limit: the CA's validation servers must always get through.
pub fn acme_challenge<B>(
    challenges: Option<&Challenges>,
    _ctx: &mut RequestCtx,
    req: &Request<B>,
) -> Result<(), Answer> {
    let Some(challenges) = challenges else {
        return Ok(());
    };
    let Some(token) = req.uri().path().strip_prefix(HTTP01_PREFIX) else {
        return Ok(());
    };
    Err(match challenges.http_answer(token) {
        Some(key_authorization) => Answer::AcmeChallenge(key_authorization),
        None => EdgeError::NoChallenge.into(),
    })
}

/// The plain listener, when TLS is terminated here: every request is redirected to `origin`
/// (the site URL's scheme and authority) with its path and query; the target never comes from
/// the client's `Host` header.
pub fn redirect<B>(origin: &str, req: &Request<B>) -> Answer {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let keep_method = req.method() != Method::GET && req.method() != Method::HEAD;
    let mut target = String::with_capacity(origin.len() + path.len());
    target.push_str(origin);
    target.push_str(path);
    match HeaderValue::from_str(&target) {
        Ok(location) => Answer::Redirect {
            location,
            keep_method,
        },
        Err(_) => Answer::Error(EdgeError::BadRequest(
            "request target is not valid in a URL",
        )),
    }
}

/// Who the client is: the peer, or what a trusted proxy says.
/// A trusted proxy's `X-Request-Id` is the request's id too (a client's is not believed).
pub fn client_ip<B>(policy: &ClientIp, ctx: &mut RequestCtx, req: &Request<B>) {
    ctx.client_ip = policy.resolve(ctx.peer_ip, req.headers());
    ctx.via_trusted_proxy = policy.trusts(ctx.peer_ip);
    if ctx.via_trusted_proxy {
        ctx.request_id = req.headers().get(X_REQUEST_ID).cloned();
    }
}

/// The metrics listener: `GET /metrics` gets the exposition, anything else 404.
pub fn metrics<B>(metrics: Option<&Metrics>, req: &Request<B>) -> Answer {
    match (metrics, req.uri().path()) {
        (Some(m), "/metrics") if req.method() == Method::GET || req.method() == Method::HEAD => {
            Answer::Metrics(m.encode())
        }
        _ => EdgeError::NotFound.into(),
    }
}

/// CORS preflights are answered here (never limited, never forwarded); other requests remember
/// what their response's CORS headers depend on.
pub fn cors_preflight<B>(
    cors: Option<&Cors>,
    ctx: &mut RequestCtx,
    req: &Request<B>,
) -> Result<(), Answer> {
    let Some(cors) = cors else { return Ok(()) };
    if let Some((_, headers)) = cors.preflight(req.method(), req.headers()) {
        return Err(Answer::Preflight(headers));
    }
    ctx.cors = Some(req.headers().get(header::ORIGIN).cloned());
    Ok(())
}

/// One cell from the client's bucket; a refused request gets 429 (with the CORS and
/// `X-RateLimit-*` headers the response filters add) and never reaches Mattermost.
pub async fn rate_limit<S: BucketStore, B>(
    limiter: Option<&RateLimiter<S>>,
    ctx: &mut RequestCtx,
    req: &Request<B>,
) -> Result<(), Answer> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    match limiter.check(ctx.client_ip, req.headers()).await {
        Decision::Allowed(headers) => {
            ctx.rate = Some(headers);
            Ok(())
        }
        Decision::Refused {
            headers,
            retry_after_secs,
        } => {
            ctx.rate = Some(headers);
            Err(EdgeError::RateLimited { retry_after_secs }.into())
        }
    }
}

/// A sign-in attempt (`POST` to a sign-in endpoint) is refused with `429` while the client's
/// failed-sign-in bucket is empty; otherwise it is let through holding one cell, which
/// [`settle_login`] gives back unless Mattermost's answer says it failed.
pub async fn login_limit(
    limiter: Option<&LoginLimiter>,
    ctx: &mut RequestCtx,
    req: &Request<impl Sized>,
) -> Result<(), Answer> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    if !login_limit::is_sign_in(req.method(), req.uri().path()) {
        return Ok(());
    }
    match limiter.admit(ctx.client_ip).await {
        Ok(attempt) => {
            ctx.login = Login::Pending(attempt);
            Ok(())
        }
        Err(retry_after_secs) => Err(EdgeError::LoginLimited { retry_after_secs }.into()),
    }
}

/// The answer to a sign-in attempt is known: a `401`/`403` keeps its cost, anything else
/// (success, an edge error, Mattermost down) gives it back.
pub async fn settle_login(
    limiter: Option<&LoginLimiter>,
    ctx: &mut RequestCtx,
    status: http::StatusCode,
) {
    if let (Login::Pending(attempt), Some(limiter)) = (ctx.login, limiter) {
        ctx.login = if limiter.settle(attempt, status).await {
            Login::Failed
        } else {
            Login::Passed
        };
    }
}

/// A body declared larger than the limit is refused before anything reaches Mattermost (a body
/// that only grows past it is cut off while it streams).
pub fn body_limit<B>(max_body: u64, _ctx: &mut RequestCtx, req: &Request<B>) -> Result<(), Answer> {
    match content_length(req.headers()) {
        Some(len) if len > max_body => Err(EdgeError::TooLarge { limit: max_body }.into()),
        _ => Ok(()),
    }
}
