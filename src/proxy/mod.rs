//! Forwarding one request to Mattermost: the request as Mattermost gets it (header rules in
//! [`headers`], origin-form URI, HTTP/1.1), the upstream call with its timeout, the response
//! header rules, and the WebSocket tunnel ([`tunnel`]). Failures come back as
//! [`EdgeError`]s; the pipeline answers them.

pub mod headers;
pub mod tunnel;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Uri;
use http::{Request, Response, Version};
use hyper::body::Body;
use tracing::{debug, warn};

use crate::answer::EdgeError;
use crate::body::{BoxError, RequestBody, RequestBodyError};
use crate::config::Settings;
use crate::conn::{ip_header_value, ConnInfo};
use crate::io::upgrade::ClientUpgrade;
use crate::upstream::{PooledBody, Server, UpstreamError, Upstreams};

/// Mattermost's response to a forwarded request.
pub type UpstreamResponse<B> = Response<PooledBody<RequestBody<B>>>;

/// A request ready for Mattermost.
#[derive(Debug)]
pub struct Prepared<B> {
    /// The request as Mattermost gets it.
    pub request: Request<RequestBody<B>>,
    /// The client's side of a WebSocket upgrade, when it asked for one.
    pub client_upgrade: Option<ClientUpgrade>,
    /// Bytes of the request body read so far (none for a request without a body).
    pub bytes_in: Option<Arc<AtomicU64>>,
}

/// Everything needed to forward requests; built once, shared by all connections. `B` is the
/// client's request body type.
#[derive(Debug)]
pub struct Forwarder<B> {
    upstreams: Arc<Upstreams<RequestBody<B>>>,
    forwarded_proto: HeaderValue,
    max_body: u64,
    timeout: Duration,
}

impl<B> Forwarder<B> {
    /// Builds the forwarder from validated settings.
    pub fn new(settings: &Settings) -> Self {
        Self {
            upstreams: Arc::new(Upstreams::new(&settings.upstream)),
            forwarded_proto: HeaderValue::from_static(if settings.site.https {
                "https"
            } else {
                "http"
            }),
            max_body: settings.proxy.max_body,
            timeout: settings.upstream.timeout,
        }
    }

    /// The server for the next request.
    pub fn pick(&self) -> Arc<Server<RequestBody<B>>> {
        self.upstreams.pick()
    }

    /// The servers (the checker, the metrics and reloads use them).
    pub fn upstreams(&self) -> &Arc<Upstreams<RequestBody<B>>> {
        &self.upstreams
    }

    /// The request as Mattermost gets it: hop-by-hop headers removed (a WebSocket upgrade's
    /// `Upgrade` kept), the forwarding headers set for `client_ip` (a client's `Forwarded`
    /// kept only from a trusted proxy), `Host` from the target's authority when it has one
    /// (HTTP/2 `:authority`, HTTP/1.1 absolute form: RFC 9113 8.3.1, RFC 9112 3.2.2), an
    /// origin-form URI, HTTP/1.1, the body cut at the body-size limit.
    pub fn prepare(
        &self,
        conn: &ConnInfo,
        client_ip: IpAddr,
        trusted_peer: bool,
        mut req: Request<B>,
    ) -> Prepared<B>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let upgrade = headers::is_upgrade(&req);
        let client_upgrade = upgrade.then(|| ClientUpgrade::take(&mut req));
        let linger = req.version() != Version::HTTP_2;
        let (mut parts, body) = req.into_parts();
        if let Some(auth) = parts.uri.authority() {
            let same = parts
                .headers
                .get(header::HOST)
                .is_some_and(|h| h.as_bytes() == auth.as_str().as_bytes());
            if !same {
                if let Ok(v) = HeaderValue::from_str(auth.as_str()) {
                    parts.headers.insert(header::HOST, v);
                }
            }
        }
        if !trusted_peer {
            parts.headers.remove(header::FORWARDED);
            parts.headers.remove(headers::X_REQUEST_ID);
        }
        let upgrade_proto = if upgrade {
            parts.headers.remove(header::UPGRADE)
        } else {
            None
        };
        headers::strip_hop_by_hop(&mut parts.headers);
        if let Some(proto) = upgrade_proto {
            parts.headers.insert(header::UPGRADE, proto);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        let ip_header = if client_ip == conn.peer.ip() {
            conn.peer_ip_header.clone()
        } else {
            ip_header_value(client_ip)
        };
        headers::set_forwarding(&mut parts.headers, ip_header, &self.forwarded_proto);
        // Mattermost gets the origin form (path and query); Host carries the authority.
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        parts.version = Version::HTTP_11;
        let (body, bytes_in) = RequestBody::new(body, self.max_body, linger);
        Prepared {
            request: Request::from_parts(parts, body),
            client_upgrade,
            bytes_in,
        }
    }

    /// The largest request body.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }
}

impl<B> Forwarder<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    RequestBody<B>: Default,
    B::Error: Into<BoxError>,
{
    /// Sends the prepared request in `slot` to `server` (or another, when none of it could be
    /// sent to it, which `server` then names), waiting up to the upstream timeout for the
    /// response head. A failure is classified: the client's body (too large, malformed, client
    /// gone), an unreachable server (marked failed), or a server that closed without answering.
    /// (The request is held in the caller's slot, so that the request's future stores it once.)
    pub async fn send(
        &self,
        server: &mut Arc<Server<RequestBody<B>>>,
        slot: &mut Option<Request<RequestBody<B>>>,
    ) -> Result<UpstreamResponse<B>, EdgeError> {
        let sent = tokio::time::timeout(self.timeout, self.upstreams.send(server, slot)).await;
        let name = || server.name().to_string();
        match sent {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(self.classify(server, &e, name)),
            Err(_) => {
                warn!(upstream = %name(), timeout = ?self.timeout, status = 504, "upstream timed out");
                Err(EdgeError::UpstreamTimeout {
                    server: name(),
                    timeout: self.timeout,
                })
            }
        }
    }

    fn classify(
        &self,
        at: &Server<RequestBody<B>>,
        e: &UpstreamError,
        server: impl Fn() -> String,
    ) -> EdgeError {
        if let UpstreamError::Busy(limit) = e {
            warn!(upstream = %server(), error = %e, status = 503, "no connection to Mattermost left");
            return EdgeError::UpstreamBusy {
                server: server(),
                limit: *limit,
            };
        }
        match RequestBodyError::find(e) {
            Some(RequestBodyError::TooLarge(limit)) => EdgeError::TooLarge { limit: *limit },
            Some(RequestBodyError::Client(cause)) => {
                debug!(error = %cause, "client request body failed");
                if client_went_away(cause.as_ref()) {
                    EdgeError::ClientGone
                } else {
                    EdgeError::BadRequest("malformed request body")
                }
            }
            None => {
                warn!(upstream = %server(), error = %error_chain(e), status = 502, "upstream request failed");
                if e.is_connect() {
                    self.upstreams.mark_failed(at);
                    EdgeError::UpstreamRefused { server: server() }
                } else {
                    EdgeError::UpstreamProtocol { server: server() }
                }
            }
        }
    }
}

/// Mattermost's response as the client gets it: hop-by-hop headers removed, a WebSocket 101's
/// `Upgrade`/`Connection: upgrade` kept.
pub fn response_headers<T>(resp: &mut Response<T>, upgraded: bool) {
    let headers = resp.headers_mut();
    let upgrade_proto = if upgraded {
        headers.remove(header::UPGRADE)
    } else {
        None
    };
    headers::strip_hop_by_hop(headers);
    if let Some(proto) = upgrade_proto {
        headers.insert(header::UPGRADE, proto);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether a client body error means the client closed the connection (rather than sending
/// something malformed).
fn client_went_away(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
