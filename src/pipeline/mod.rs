//! One request's way through the edge, as a list of named phases over one context, in the spirit
//! of Pingora's `ProxyHttp`:
//!
//! - the metrics listener answers `GET /metrics` ([`phases::metrics`]) and nothing else;
//! 0. [`phases::validate`]: requests the HTTP RFCs say to refuse (`400`, `501`), `OPTIONS *`;
//! 1. [`phases::own_endpoints`]: the edge's health endpoint (never limited), and
//!    [`phases::acme_challenge`]: the ACME CA's HTTP-01 requests, on either listener;
//! 2. [`phases::redirect`]: on the plain listener, when TLS is terminated here, the redirect;
//! 3. [`phases::client_ip`]: the client (the peer, or what a trusted proxy says);
//! 4. [`phases::cors_preflight`]: preflights answered here (never limited);
//! 5. [`phases::rate_limit`]: a refused request gets 429;
//!    [`phases::login_limit`]: a sign-in attempt from a client with too many failed ones gets
//!    429 (settled by [`phases::settle_login`] once the answer's status is known);
//! 6. [`phases::body_limit`]: a body declared too large gets 413;
//! 7. `forward`: to Mattermost ([`crate::proxy`]), or a WebSocket tunnel;
//! 8. [`filters`]: CORS, rate-limit, HSTS and request-id headers on every response, whoever
//!    answered;
//! 9. [`logging`]: exactly once per request, and once per WebSocket session when it closes
//!    (the metrics and the access log: [`access`]).
//!
//! The context ([`ctx::RequestCtx`]) is made when the connection hands the request over and
//! carries what every phase and the log need. The edge's own answers come from
//! [`crate::answer`]. [`Pipeline::handle`] is generic over the request body, so the order of
//! the phases is unit-tested without a network ([`tests`]).

pub mod access;
pub mod ctx;
pub mod filters;
pub mod logging;
pub mod phases;
pub mod route;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Body;

use crate::answer::{Answer, EdgeError, ErrorStyle, Outcome};
use crate::body::{BoxError, LocalBody, RequestBody};
use crate::config::{ConfigError, Settings};
use crate::conn::{ConnInfo, Listener};
use crate::edge::Edge;
use crate::io::upgrade::ClientUpgrade;
use crate::lifecycle::Shutdown;
use crate::observe::metrics::Metrics;
use crate::proxy::{self, tunnel, Forwarder};
use crate::tls::acme::Challenges;
use crate::upstream::PooledBody;
use ctx::RequestCtx;
use filters::Filters;
use logging::{Finish, Logged, Sink};

/// A WebSocket session's log entry and the open-tunnels gauge, settled when it closes.
struct TunnelLog {
    finish: Finish,
    gauge: Option<prometheus_client::metrics::gauge::Gauge>,
}

impl tunnel::OnClose for TunnelLog {
    fn closed(self, stats: tunnel::TunnelStats) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
        self.finish.closed(stats);
    }
}

/// A request answered without reading its body: on HTTP/1.x the body is drained in the
/// background (bounded), so that a client still sending reads the answer, not a reset. Not
/// with `Expect: 100-continue`: the client waits for the answer before sending, and reading
/// would tell it to go on.
fn linger_unread<B>(req: Request<B>)
where
    B: Body + Send + Unpin + 'static,
{
    let expects = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if req.version() != http::Version::HTTP_2 && !expects {
        crate::body::linger(req.into_body());
    }
}

/// The response body: Mattermost's, streamed, or a short one made at the edge; logged at its end.
pub type ResponseBody<B> = Logged<Either<PooledBody<RequestBody<B>>, LocalBody>>;

/// Everything a request needs, built once, shared by every connection. `B` is the request body
/// type (`hyper::body::Incoming` when serving, where `app` makes it the server's handler).
pub struct Pipeline<B> {
    edge: Edge,
    forward: Forwarder<B>,
    filters: Filters,
    /// When TLS is terminated here: the site's origin, where the plain listener redirects.
    redirect_to: Option<Arc<str>>,
    tunnel_timeouts: tunnel::Timeouts,
    shutdown: Shutdown,
    sink: Arc<dyn Sink>,
    metrics: Option<Arc<Metrics>>,
    /// ACME HTTP-01 challenges answered here (when ACME runs).
    challenges: Option<Arc<Challenges>>,
}

impl<B> std::fmt::Debug for Pipeline<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("edge", &self.edge)
            .field("redirect_to", &self.redirect_to)
            .finish_non_exhaustive()
    }
}

impl<B> Pipeline<B> {
    /// Builds the pipeline from validated settings; finished requests go to `sink`; `metrics`
    /// answers the metrics listener.
    pub fn new(
        settings: &Settings,
        sink: Arc<dyn Sink>,
        metrics: Option<Arc<Metrics>>,
        shutdown: Shutdown,
    ) -> Result<Self, ConfigError> {
        let hsts = (settings.tls.hsts_max_age > 0)
            .then(|| HeaderValue::from_str(&format!("max-age={}", settings.tls.hsts_max_age)))
            .and_then(Result::ok);
        Ok(Self {
            edge: Edge::new(settings)?,
            forward: Forwarder::new(settings),
            filters: Filters { hsts },
            redirect_to: settings
                .terminates_tls()
                .then(|| Arc::from(settings.site.origin.as_str())),
            tunnel_timeouts: tunnel::Timeouts {
                idle: settings.server.websocket_idle_timeout,
                send: settings.server.send_timeout,
            },
            shutdown,
            sink,
            metrics,
            challenges: None,
        })
    }

    /// Answers the ACME CA's HTTP-01 requests from `challenges`.
    pub fn with_acme(mut self, challenges: Arc<Challenges>) -> Self {
        self.challenges = Some(challenges);
        self
    }

    /// The policies (for tests and `check`).
    pub fn edge(&self) -> &Edge {
        &self.edge
    }

    /// The Mattermost servers (the checker, the metrics and reloads use them).
    pub fn upstreams(&self) -> &Arc<crate::upstream::Upstreams<RequestBody<B>>> {
        self.forward.upstreams()
    }
}

impl<B> Pipeline<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    RequestBody<B>: Default,
    B::Error: Into<BoxError>,
{
    /// Answers one request: never fails, errors become 4xx/5xx responses.
    ///
    /// An async block, not an async fn: an async fn copies `req` into a second slot of its
    /// future, and this future is moved several times per request.
    #[allow(clippy::manual_async_fn)]
    pub fn handle<'s, 'c>(
        &'s self,
        conn: &'c ConnInfo,
        req: Request<B>,
    ) -> impl std::future::Future<Output = Response<ResponseBody<B>>> + use<'s, 'c, B> {
        async move {
            let mut finish = Finish::new(RequestCtx::start(conn, &req), self.sink.clone());
            let style = ErrorStyle::of(finish.route.is_api(), req.headers());
            let (mut resp, tunnel) = match self.request_filter(&mut finish, &req).await {
                Err(answer) => {
                    linger_unread(req);
                    (self.answer(&mut finish, answer, style), None)
                }
                Ok(()) => {
                    let proxy::Prepared {
                        request,
                        client_upgrade,
                        bytes_in,
                    } = self
                        .forward
                        .prepare(conn, finish.client_ip, finish.via_trusted_proxy, req);
                    finish.bytes_in = bytes_in;
                    // Held here, once, while the layers below try servers and connections.
                    let mut slot = Some(request);
                    match self.forward(&mut finish, &mut slot, client_upgrade).await {
                        Ok(pair) => pair,
                        Err(e) => (self.answer(&mut finish, Answer::Error(e), style), None),
                    }
                }
            };
            phases::settle_login(self.edge.login.as_ref(), &mut finish, resp.status()).await;
            self.filters
                .apply(self.edge.cors.as_ref(), &mut finish, resp.headers_mut());
            finish.status = Some(resp.status());
            match tunnel {
                Some((client, upstream)) => {
                    let permit = match resp.body_mut() {
                        Either::Left(pooled) => pooled.take_permit(),
                        Either::Right(_) => None,
                    };
                    let gauge = self.metrics.as_ref().map(|m| m.websocket_tunnels.clone());
                    if let Some(g) = &gauge {
                        g.inc();
                    }
                    // The session is logged when the tunnel closes, long after the request.
                    finish.detach();
                    tunnel::spawn(
                        client,
                        upstream,
                        self.tunnel_timeouts,
                        permit,
                        self.shutdown.clone(),
                        TunnelLog { finish, gauge },
                    );
                    resp.map(|b| Logged::new(b, None))
                }
                None => resp.map(|b| Logged::new(b, Some(finish))),
            }
        }
    }

    /// Phases 1-6, in order: the first that answers ends the request.
    async fn request_filter(&self, ctx: &mut RequestCtx, req: &Request<B>) -> Result<(), Answer> {
        if ctx.listener == Listener::Metrics {
            return Err(phases::metrics(self.metrics.as_deref(), req));
        }
        phases::validate(ctx, req)?;
        phases::own_endpoints(ctx, req)?;
        phases::acme_challenge(self.challenges.as_deref(), ctx, req)?;
        if let (Listener::Http, Some(origin)) = (ctx.listener, &self.redirect_to) {
            return Err(phases::redirect(origin, req));
        }
        phases::client_ip(&self.edge.client_ip, ctx, req);
        phases::cors_preflight(self.edge.cors.as_ref(), ctx, req)?;
        phases::rate_limit(self.edge.limiter.as_ref(), ctx, req).await?;
        phases::login_limit(self.edge.login.as_ref(), ctx, req).await?;
        phases::body_limit(self.forward.max_body(), ctx, req)?;
        Ok(())
    }

    /// Phase 7: Mattermost answers the prepared request in `slot`; a 101 to an upgrade request
    /// becomes a tunnel.
    #[allow(clippy::type_complexity)]
    async fn forward(
        &self,
        ctx: &mut RequestCtx,
        slot: &mut Option<Request<RequestBody<B>>>,
        client_upgrade: Option<ClientUpgrade>,
    ) -> Result<
        (
            Response<Either<PooledBody<RequestBody<B>>, LocalBody>>,
            Option<(ClientUpgrade, hyper::upgrade::OnUpgrade)>,
        ),
        EdgeError,
    > {
        let mut server = self.forward.pick();
        ctx.upstream = Some(server.name().clone());
        let sent = self.forward.send(&mut server, slot).await;
        if ctx.upstream.as_ref() != Some(server.name()) {
            // Sent to another server after the first could not take it.
            ctx.upstream = Some(server.name().clone());
        }
        let mut resp = sent?;
        ctx.upstream_us = Some(u32::try_from(ctx.start.elapsed().as_micros()).unwrap_or(u32::MAX));
        ctx.outcome = Outcome::Proxied;
        let tunnel = match client_upgrade {
            Some(client) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                Some((client, hyper::upgrade::on(&mut resp)))
            }
            _ => None,
        };
        proxy::response_headers(&mut resp, tunnel.is_some());
        Ok((resp.map(Either::Left), tunnel))
    }

    /// An answer made at the edge, errors told in `style`. It carries the request's id (made
    /// here when nobody gave one), which the response filters send as `X-Request-Id`.
    fn answer(
        &self,
        ctx: &mut RequestCtx,
        answer: Answer,
        style: ErrorStyle,
    ) -> Response<Either<PooledBody<RequestBody<B>>, LocalBody>> {
        ctx.outcome = answer.outcome();
        let id = ctx.request_id.get_or_insert_with(filters::new_request_id);
        answer.into_response(style, id).map(Either::Right)
    }
}
