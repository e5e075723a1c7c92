//! The per-request context: made where the connection hands a request over, carried through
//! every phase, read once by the logging step at the end.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, StatusCode, Version};

use super::route::RouteGroup;
use crate::answer::Outcome;
use crate::conn::{ConnInfo, Listener};
use crate::edge::rate_limit::RateHeaders;

/// The protocol a request came in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2.
    Http2,
    /// A WebSocket tunnel (an HTTP/1.1 upgrade that Mattermost accepted).
    WebSocket,
}

impl Protocol {
    /// `HTTP/1.1`, `HTTP/2`, `websocket`...
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http10 => "HTTP/1.0",
            Protocol::Http11 => "HTTP/1.1",
            Protocol::Http2 => "HTTP/2",
            Protocol::WebSocket => "websocket",
        }
    }
}

/// Everything one request carries from the connection to the log. Kept small: it travels
/// inside the response body to the logging step.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// When the request arrived.
    pub start: Instant,
    /// The TCP peer's address.
    pub peer_ip: IpAddr,
    /// The client (the peer, or what a trusted proxy says); the peer until the client-IP phase.
    pub client_ip: IpAddr,
    /// The peer is a trusted proxy (set by the client-IP phase): its `Forwarded` header is kept.
    pub via_trusted_proxy: bool,
    /// The listener it arrived on.
    pub listener: Listener,
    /// The TLS version, when over TLS.
    pub tls: Option<&'static str>,
    /// The protocol.
    pub protocol: Protocol,
    /// The method.
    pub method: Method,
    /// The request target's path and query, as sent.
    pub path: Option<PathAndQuery>,
    /// The kind of endpoint, from the path.
    pub route: RouteGroup,
    /// The client's `User-Agent` and `Referer`, for the access log.
    pub user_agent: Option<HeaderValue>,
    /// See `user_agent`.
    pub referer: Option<HeaderValue>,
    /// The request's id: Mattermost's `X-Request-Id`, a trusted proxy's, or one the edge made.
    pub request_id: Option<HeaderValue>,
    /// Set by the CORS phase when CORS is on and the request is not a preflight: the request's
    /// `Origin`, if any (the CORS response filter needs it and the method).
    pub cors: Option<Option<HeaderValue>>,
    /// Set by the rate-limit phase: the `X-RateLimit-*` values for the response.
    pub rate: Option<RateHeaders>,
    /// The Mattermost server chosen, by index.
    pub upstream: Option<u16>,
    /// Microseconds from the request's arrival to Mattermost's response head.
    pub upstream_us: Option<u32>,
    /// The status sent.
    pub status: Option<StatusCode>,
    /// What happened.
    pub outcome: Outcome,
    /// Request body bytes read, when the request has a body.
    pub bytes_in: Option<Arc<AtomicU64>>,
    /// Response body bytes handed to the connection.
    pub bytes_out: u64,
}

impl RequestCtx {
    /// The context of a request that just arrived on `conn`.
    pub fn start<B>(conn: &ConnInfo, req: &Request<B>) -> Self {
        let protocol = match req.version() {
            Version::HTTP_2 => Protocol::Http2,
            Version::HTTP_10 | Version::HTTP_09 => Protocol::Http10,
            _ => Protocol::Http11,
        };
        Self {
            start: Instant::now(),
            peer_ip: conn.peer.ip(),
            client_ip: conn.peer.ip(),
            via_trusted_proxy: false,
            listener: conn.listener,
            tls: conn.tls_version,
            protocol,
            method: req.method().clone(),
            path: req.uri().path_and_query().cloned(),
            route: RouteGroup::of(req.uri().path()),
            user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
            referer: req.headers().get(http::header::REFERER).cloned(),
            request_id: None,
            cors: None,
            rate: None,
            upstream: None,
            upstream_us: None,
            status: None,
            outcome: Outcome::ClientClosed,
            bytes_in: None,
            bytes_out: 0,
        }
    }

    /// Request body bytes read so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
            .as_ref()
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The request's path (`/` when it had none).
    pub fn path(&self) -> &str {
        self.path.as_ref().map_or("/", PathAndQuery::path)
    }
}
