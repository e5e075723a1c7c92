//! Forwarding one request to Mattermost: the edge policies, the header rules, the upstream call,
//! the WebSocket tunnel and the error answers, in the order a request meets them.

pub mod body;
pub mod headers;
pub mod pump;
pub mod upgrade;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::Uri;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Limited};
use hyper::body::Incoming;
use tokio::sync::watch;
use tracing::warn;

use crate::config::Settings;
use crate::edge::{Edge, Verdict};
use crate::upstream::Upstreams;
use body::ResponseBody;

/// Facts about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct Conn {
    /// TCP peer (IPv4-mapped IPv6 addresses already turned into IPv4).
    pub peer: SocketAddr,
    /// Arrived over the edge's TLS listener.
    pub tls: bool,
    /// The peer's IP as a header value, made once per connection: most requests forward it.
    peer_ip_header: HeaderValue,
}

impl Conn {
    /// Describes a new client connection.
    pub fn new(peer: SocketAddr, tls: bool) -> Self {
        // Same canonical form as edge::client_ip (IPv4-mapped IPv6 counts as IPv4).
        let ip = peer.ip().to_canonical();
        let peer = SocketAddr::new(ip, peer.port());
        Self {
            peer,
            tls,
            peer_ip_header: headers::ip_value(ip),
        }
    }
}

/// Everything needed to forward requests; built once, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    edge: Edge,
    upstreams: Upstreams,
    forwarded_proto: HeaderValue,
    hsts: Option<HeaderValue>,
    max_body: u64,
    too_large: Bytes,
    upstream_timeout: Duration,
    websocket_idle: Duration,
    shutdown: watch::Receiver<bool>,
}

impl Proxy {
    /// Builds the proxy from validated settings.
    pub fn new(settings: &Settings, edge: Edge, shutdown: watch::Receiver<bool>) -> Self {
        let hsts = (settings.tls.hsts_max_age > 0).then(|| {
            HeaderValue::from_str(&format!("max-age={}", settings.tls.hsts_max_age))
                .unwrap_or(HeaderValue::from_static("max-age=63072000"))
        });
        Self {
            edge,
            upstreams: Upstreams::new(&settings.upstream),
            forwarded_proto: HeaderValue::from_static(if settings.site.https {
                "https"
            } else {
                "http"
            }),
            hsts,
            max_body: settings.max_body,
            too_large: Bytes::from(format!(
                "request body larger than {} bytes (MM_EDGE_MAX_BODY)\n",
                settings.max_body
            )),
            upstream_timeout: settings.upstream.timeout,
            websocket_idle: settings.server.websocket_idle_timeout,
            shutdown,
        }
    }

    /// Answers one request: never fails, errors become 4xx/5xx responses.
    pub async fn handle(&self, conn: &Conn, mut req: Request<Incoming>) -> Response<ResponseBody> {
        let passed = match self.edge.on_request(conn.peer.ip(), &req) {
            Verdict::Answer(resp) => return self.finish(conn, resp),
            Verdict::Forward(passed) => passed,
        };
        if let Some(len) = content_length(&req) {
            if len > self.max_body {
                return self.finish(
                    conn,
                    local(StatusCode::PAYLOAD_TOO_LARGE, self.too_large.clone()),
                );
            }
        }
        let upgrade = req.version() == Version::HTTP_11
            && req.headers().contains_key(header::UPGRADE)
            && headers::connection_has(req.headers(), "upgrade");
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        let (server_index, server) = self.upstreams.pick();
        let (mut parts, body) = req.into_parts();
        // HTTP/2 clients carry the host in :authority; Mattermost (HTTP/1.1) needs it in Host.
        if !parts.headers.contains_key(header::HOST) {
            if let Some(auth) = parts.uri.authority() {
                if let Ok(v) = HeaderValue::from_str(auth.as_str()) {
                    parts.headers.insert(header::HOST, v);
                }
            }
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
        let ip_header = if passed.client_ip == conn.peer.ip() {
            conn.peer_ip_header.clone()
        } else {
            headers::ip_value(passed.client_ip)
        };
        headers::set_forwarding(&mut parts.headers, ip_header, &self.forwarded_proto);
        // Mattermost gets the origin form (path and query); Host carries the authority.
        parts.uri = match parts.uri.path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        parts.version = Version::HTTP_11;
        let upstream_req = Request::from_parts(
            parts,
            Limited::new(body, usize::try_from(self.max_body).unwrap_or(usize::MAX)),
        );

        let sent = tokio::time::timeout(
            self.upstream_timeout,
            self.upstreams.send(server_index, upstream_req),
        )
        .await;
        let mut resp = match sent {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => {
                if body::is_over_limit(&e) {
                    return self.finish(
                        conn,
                        local(StatusCode::PAYLOAD_TOO_LARGE, self.too_large.clone()),
                    );
                }
                warn!(upstream = %server, error = %error_chain(&e), status = 502, "upstream request failed");
                let msg = if e.is_connect() {
                    self.upstreams.mark_failed(server_index);
                    format!("mm-edge: Mattermost at {server} is unreachable\n")
                } else {
                    format!(
                        "mm-edge: Mattermost at {server} closed the connection without an answer\n"
                    )
                };
                return self.finish(conn, local(StatusCode::BAD_GATEWAY, msg));
            }
            Err(_) => {
                warn!(upstream = %server, timeout = ?self.upstream_timeout, status = 504, "upstream timed out");
                let msg = format!(
                    "mm-edge: Mattermost at {server} did not answer within {}s (MM_EDGE_UPSTREAM_TIMEOUT)\n",
                    self.upstream_timeout.as_secs()
                );
                return self.finish(conn, local(StatusCode::GATEWAY_TIMEOUT, msg));
            }
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client) = client_upgrade {
                let upstream = hyper::upgrade::on(&mut resp);
                upgrade::spawn_tunnel(client, upstream, self.websocket_idle, self.shutdown.clone());
                let upgrade_proto = resp.headers_mut().remove(header::UPGRADE);
                headers::strip_hop_by_hop(resp.headers_mut());
                if let Some(proto) = upgrade_proto {
                    resp.headers_mut().insert(header::UPGRADE, proto);
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                }
                self.edge.on_response(&passed, resp.headers_mut());
                return self.finish(conn, resp.map(Either::Left));
            }
        }
        headers::strip_hop_by_hop(resp.headers_mut());
        self.edge.on_response(&passed, resp.headers_mut());
        self.finish(conn, resp.map(Either::Left))
    }

    /// Headers every response gets: HSTS over TLS.
    fn finish(&self, conn: &Conn, mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
        if conn.tls {
            if let Some(hsts) = &self.hsts {
                resp.headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
        }
        resp
    }
}

/// A short plain-text answer made at the edge.
pub fn local(status: StatusCode, text: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut resp = Response::new(body::local(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
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
