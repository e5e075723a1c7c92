//! The per-request context: made where the connection hands a request over, carried through
//! every phase, read once by the logging step at the end.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, StatusCode, Version};

use super::route::RouteGroup;
use crate::answer::Outcome;
use crate::conn::{ConnInfo, Listener};
use crate::edge::login_limit::Attempt;
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

/// A request's part in the login limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Not a sign-in attempt (or the login limit is off).
    NotSignIn,
    /// Let through; its cost is settled when the answer's status is known.
    Pending(Attempt),
    /// Mattermost refused the credentials (`401`/`403`): it counted.
    Failed,
    /// Any other answer: it cost nothing.
    Passed,
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
    /// Set by the login-limit phase: a sign-in attempt, and then what Mattermost said of it.
    pub login: Login,
    /// The Mattermost server that answered or failed (`http://host:port`).
    pub upstream: Option<Arc<str>>,
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
            login: Login::NotSignIn,
            upstream: None,
            upstream_us: None,
            status: None,
            outcome: Outcome::ClientClosed,
            bytes_in: None,
            bytes_out: 0,
        }
    }

    /// Copies what still points into the connection's read buffer into allocations of its
    /// own. hyper parses a request head in place: the path and the header values kept here
    /// share the buffer's 16 KiB allocation, which a context that outlives its request (a
    /// WebSocket session's, logged when the tunnel closes) would otherwise keep alive.
    pub fn detach(&mut self) {
        if let Some(p) = &self.path {
            let own = Bytes::copy_from_slice(p.as_str().as_bytes());
            self.path = PathAndQuery::from_maybe_shared(own).ok();
        }
        let cors_origin = self.cors.as_mut().and_then(Option::as_mut);
        for value in [
            self.user_agent.as_mut(),
            self.referer.as_mut(),
            self.request_id.as_mut(),
            cors_origin,
        ]
        .into_iter()
        .flatten()
        {
            if let Ok(own) = HeaderValue::from_bytes(value.as_bytes()) {
                *value = own;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `part` lies inside `buffer`'s allocation.
    fn inside(buffer: &Bytes, part: &[u8]) -> bool {
        let range = buffer.as_ptr_range();
        range.contains(&part.as_ptr())
    }

    #[test]
    fn a_detached_context_keeps_nothing_of_the_read_buffer() {
        // As hyper parses a head: the target and the header values are slices of one buffer.
        let head = "/api/v4/websocket?connection_id=abc Mozilla/5.0 https://chat.example.com/ id-1 https://app.example.com";
        let buffer = Bytes::from(head.as_bytes().to_vec());
        let part = |text: &str| {
            let at = head.find(text).unwrap();
            buffer.slice(at..at + text.len())
        };
        let value = |text| HeaderValue::from_maybe_shared(part(text)).unwrap();
        let req = Request::builder()
            .uri(http::Uri::from_maybe_shared(part("/api/v4/websocket?connection_id=abc")).unwrap())
            .header(http::header::USER_AGENT, value("Mozilla/5.0"))
            .header(http::header::REFERER, value("https://chat.example.com/"))
            .body(())
            .unwrap();
        let conn = ConnInfo::new("127.0.0.1:1".parse().unwrap(), Listener::Https, None);
        let mut ctx = RequestCtx::start(&conn, &req);
        ctx.request_id = Some(value("id-1"));
        ctx.cors = Some(Some(value("https://app.example.com")));
        let shared = |ctx: &RequestCtx| {
            let mut parts: Vec<&[u8]> = vec![ctx.path().as_bytes()];
            for v in [&ctx.user_agent, &ctx.referer, &ctx.request_id]
                .into_iter()
                .flatten()
            {
                parts.push(v.as_bytes());
            }
            if let Some(Some(origin)) = &ctx.cors {
                parts.push(origin.as_bytes());
            }
            parts.iter().filter(|p| inside(&buffer, p)).count()
        };
        assert_eq!(shared(&ctx), 5, "the test's values should start out shared");
        ctx.detach();
        assert_eq!(shared(&ctx), 0);
        assert_eq!(
            ctx.path.as_ref().map(PathAndQuery::as_str),
            Some("/api/v4/websocket?connection_id=abc")
        );
        assert_eq!(ctx.user_agent.as_ref().unwrap(), "Mozilla/5.0");
        assert_eq!(ctx.referer.as_ref().unwrap(), "https://chat.example.com/");
        assert_eq!(ctx.request_id.as_ref().unwrap(), "id-1");
        assert_eq!(
            ctx.cors.as_ref().unwrap().as_ref().unwrap(),
            "https://app.example.com"
        );
    }
}
