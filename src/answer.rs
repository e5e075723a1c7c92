//! The edge's own answers: everything mm-edge says itself instead of Mattermost (health,
//! preflights, redirects, and every error), each mapped to its status, headers and body here, in
//! one place. No other file builds a 4xx or 5xx response.
//!
//! Errors are told the way the client reads them ([`ErrorStyle`]): Mattermost's JSON error shape
//! for `/api/` paths (the apps show its `message`), a small self-contained page for a browser
//! loading a page (the 5xx ones retry by themselves), plain text otherwise. The general rate
//! limit's `429` keeps Mattermost's own plain `limit exceeded`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, LocalBody};
use crate::config::spec;

mod style;
pub use style::ErrorStyle;

/// `Retry-After` of a 503 sent because every connection to Mattermost was in use.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// Plain-text body of a refused (429) response, as Mattermost sends it.
pub const RATE_LIMITED_BODY: &str = "limit exceeded";

/// What happened to a request, in logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Mattermost answered.
    Proxied,
    /// The edge's health endpoint.
    Health,
    /// A CORS preflight answered at the edge.
    CorsPreflight,
    /// The plain listener's redirect.
    Redirect,
    /// Refused as malformed (400).
    BadRequest,
    /// Body over the limit (413).
    TooLarge,
    /// Refused by the rate limiter (429).
    RateLimited,
    /// A sign-in attempt refused by the login limit (429).
    LoginLimited,
    /// Mattermost unreachable (502).
    UpstreamRefused,
    /// Mattermost closed without an answer (502).
    UpstreamError,
    /// No answer from Mattermost in time (504).
    UpstreamTimeout,
    /// The connection limit to Mattermost was reached (503).
    UpstreamBusy,
    /// Mattermost's response body failed midway.
    UpstreamBodyError,
    /// The client went away before the answer was complete.
    ClientClosed,
    /// A WebSocket session that ended normally (either side closed, or failed).
    Websocket,
    /// A WebSocket session closed for idling.
    WebsocketIdle,
    /// A WebSocket session closed because the edge shut down.
    WebsocketShutdown,
    /// The client stopped reading; closed after the send timeout.
    SendTimeout,
    /// An ACME HTTP-01 challenge request, answered at the edge (or 404 for an unknown token).
    AcmeChallenge,
}

impl Outcome {
    /// The outcome's name: `proxied`, `rate_limited`, `client_closed`...
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::Health => "health",
            Outcome::CorsPreflight => "cors_preflight",
            Outcome::Redirect => "redirect",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::RateLimited => "rate_limited",
            Outcome::LoginLimited => "login_limited",
            Outcome::UpstreamRefused => "upstream_refused",
            Outcome::UpstreamError => "upstream_error",
            Outcome::UpstreamTimeout => "upstream_timeout",
            Outcome::UpstreamBusy => "upstream_busy",
            Outcome::UpstreamBodyError => "upstream_body_error",
            Outcome::ClientClosed => "client_closed",
            Outcome::Websocket => "websocket",
            Outcome::WebsocketIdle => "websocket_idle",
            Outcome::WebsocketShutdown => "websocket_shutdown",
            Outcome::SendTimeout => "send_timeout",
            Outcome::AcmeChallenge => "acme_challenge",
        }
    }
}

/// An answer made at the edge.
#[derive(Debug)]
pub enum Answer {
    /// The edge's health endpoint: `200 ok`.
    Health,
    /// A CORS preflight: `200` with these headers.
    Preflight(HeaderMap),
    /// `OPTIONS *`: what the server supports (`200` with `Allow`).
    ServerOptions,
    /// The metrics listener's `GET /metrics`: the text exposition.
    Metrics(String),
    /// The plain listener's redirect to the site URL: `301` (GET/HEAD) or `308` (other methods,
    /// which keep method and body).
    Redirect {
        /// The target URL.
        location: HeaderValue,
        /// `308` instead of `301`.
        keep_method: bool,
    },
    /// An ACME HTTP-01 challenge's key authorization: `200` text.
    AcmeChallenge(String),
    /// Something went wrong.
    Error(EdgeError),
}

impl From<EdgeError> for Answer {
    fn from(e: EdgeError) -> Self {
        Answer::Error(e)
    }
}

/// Everything the edge answers with an error status itself.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EdgeError {
    /// The request cannot be forwarded as sent (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Nothing there (the metrics listener's other paths) (404).
    #[error("not found")]
    NotFound,
    /// No ACME challenge is open for the token asked for (404).
    #[error("no ACME challenge open for this token")]
    NoChallenge,
    /// The method cannot be proxied (`CONNECT`) (501).
    #[error("method not implemented")]
    NotImplemented,
    /// The request body is larger than the limit (413).
    #[error("request body larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The rate limiter refused the request (429).
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a request with this key would pass.
        retry_after_secs: u64,
    },
    /// The login limit refused a sign-in attempt (429).
    #[error("too many failed sign-in attempts")]
    LoginLimited {
        /// Seconds until an attempt from this client would pass.
        retry_after_secs: u64,
    },
    /// No connection to Mattermost could be made (502).
    #[error("Mattermost at {server} is unreachable")]
    UpstreamRefused {
        /// The server, as configured.
        server: String,
    },
    /// Mattermost closed the connection or sent something that is not HTTP (502).
    #[error("Mattermost at {server} closed the connection without an answer")]
    UpstreamProtocol {
        /// The server, as configured.
        server: String,
    },
    /// Every connection to Mattermost the edge may open is in use (503).
    #[error("all {limit} connections to Mattermost at {server} are in use")]
    UpstreamBusy {
        /// The server, as configured.
        server: String,
        /// Its connection limit.
        limit: usize,
    },
    /// Mattermost sent no response headers in time (504).
    #[error("Mattermost at {server} did not answer within {timeout:?}")]
    UpstreamTimeout {
        /// The server, as configured.
        server: String,
        /// How long the edge waited.
        timeout: Duration,
    },
    /// The client went away before the answer was complete (nothing can be sent).
    #[error("the client closed the connection")]
    ClientGone,
}

impl EdgeError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EdgeError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            EdgeError::NotFound | EdgeError::NoChallenge => StatusCode::NOT_FOUND,
            EdgeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            EdgeError::RateLimited { .. } | EdgeError::LoginLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            EdgeError::UpstreamRefused { .. } | EdgeError::UpstreamProtocol { .. } => {
                StatusCode::BAD_GATEWAY
            }
            EdgeError::UpstreamBusy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EdgeError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            // Never sent: there is nobody to send it to. nginx logs 499 for the same case.
            EdgeError::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        }
    }

    /// The outcome in logs and metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            EdgeError::BadRequest(_) | EdgeError::NotImplemented | EdgeError::NotFound => {
                Outcome::BadRequest
            }
            EdgeError::NoChallenge => Outcome::AcmeChallenge,
            EdgeError::TooLarge { .. } => Outcome::TooLarge,
            EdgeError::RateLimited { .. } => Outcome::RateLimited,
            EdgeError::LoginLimited { .. } => Outcome::LoginLimited,
            EdgeError::UpstreamRefused { .. } => Outcome::UpstreamRefused,
            EdgeError::UpstreamProtocol { .. } => Outcome::UpstreamError,
            EdgeError::UpstreamBusy { .. } => Outcome::UpstreamBusy,
            EdgeError::UpstreamTimeout { .. } => Outcome::UpstreamTimeout,
            EdgeError::ClientGone => Outcome::ClientClosed,
        }
    }

    /// The plain-text body: what failed and where, in one line, with the setting to change
    /// where one applies.
    fn body(&self) -> Bytes {
        match self {
            EdgeError::BadRequest(why) => format!("mm-edge: bad request: {why}\n").into(),
            EdgeError::NotFound => Bytes::from_static(b"mm-edge: not found (try /metrics)\n"),
            EdgeError::NoChallenge => {
                Bytes::from_static(b"mm-edge: no ACME challenge is open for this token\n")
            }
            EdgeError::NotImplemented => {
                Bytes::from_static(b"mm-edge: this method cannot be proxied to Mattermost\n")
            }
            EdgeError::TooLarge { limit } => format!(
                "request body larger than {limit} bytes ({})\n",
                spec::MAX_BODY.env
            )
            .into(),
            EdgeError::RateLimited { .. } => Bytes::from_static(RATE_LIMITED_BODY.as_bytes()),
            EdgeError::LoginLimited { .. } => format!("{}\n", self.message()).into(),
            // The server's address is for the edge's log, not for the public.
            EdgeError::UpstreamRefused { .. } => {
                Bytes::from_static(b"mm-edge: Mattermost is unreachable\n")
            }
            EdgeError::UpstreamProtocol { .. } => Bytes::from_static(
                b"mm-edge: Mattermost closed the connection without an answer\n",
            ),
            EdgeError::UpstreamBusy { limit, .. } => format!(
                "mm-edge: all {limit} connections to Mattermost are in use ({}); try again shortly\n",
                spec::UPSTREAM_MAX_CONNECTIONS.env
            )
            .into(),
            EdgeError::UpstreamTimeout { timeout, .. } => format!(
                "mm-edge: Mattermost did not answer within {}s ({})\n",
                timeout.as_secs(),
                spec::UPSTREAM_TIMEOUT.env
            )
            .into(),
            EdgeError::ClientGone => Bytes::new(),
        }
    }

    /// The error's id in Mattermost's error shape; `None` for the answers that stay plain text
    /// whoever asks (the general rate limit's, the metrics and ACME listeners' 404s).
    pub fn id(&self) -> Option<&'static str> {
        Some(match self {
            EdgeError::BadRequest(_) => "mm_edge.bad_request",
            EdgeError::NotImplemented => "mm_edge.not_implemented",
            EdgeError::TooLarge { .. } => "mm_edge.request_too_large",
            EdgeError::LoginLimited { .. } => "mm_edge.login_rate_limited",
            EdgeError::UpstreamRefused { .. } => "mm_edge.upstream_unreachable",
            EdgeError::UpstreamProtocol { .. } => "mm_edge.upstream_closed",
            EdgeError::UpstreamBusy { .. } => "mm_edge.upstream_busy",
            EdgeError::UpstreamTimeout { .. } => "mm_edge.upstream_timeout",
            EdgeError::RateLimited { .. }
            | EdgeError::NotFound
            | EdgeError::NoChallenge
            | EdgeError::ClientGone => return None,
        })
    }

    /// What a user is told, in one sentence (the apps show it).
    pub fn message(&self) -> String {
        match self {
            EdgeError::BadRequest(why) => format!("The request is not valid: {why}."),
            EdgeError::NotImplemented => "This method cannot be used with Mattermost.".into(),
            EdgeError::TooLarge { limit } => format!(
                "The request is larger than this server accepts ({} at most).",
                style::human_size(*limit)
            ),
            EdgeError::LoginLimited { retry_after_secs } => format!(
                "Too many failed sign-in attempts from your network. Try again in {retry_after_secs} seconds."
            ),
            EdgeError::UpstreamRefused { .. } | EdgeError::UpstreamProtocol { .. } => {
                "Mattermost is starting up or unreachable. Try again in a moment.".into()
            }
            EdgeError::UpstreamBusy { .. } => {
                "Mattermost is busy. Try again in a few seconds.".into()
            }
            EdgeError::UpstreamTimeout { .. } => {
                "Mattermost did not answer in time. Try again in a moment.".into()
            }
            EdgeError::RateLimited { .. } => RATE_LIMITED_BODY.into(),
            EdgeError::NotFound | EdgeError::NoChallenge | EdgeError::ClientGone => {
                String::from_utf8_lossy(&self.body()).trim().into()
            }
        }
    }

    /// Whether the HTML page retries by itself: Mattermost is down, restarting or busy.
    fn retries(&self) -> bool {
        matches!(
            self,
            EdgeError::UpstreamRefused { .. }
                | EdgeError::UpstreamProtocol { .. }
                | EdgeError::UpstreamBusy { .. }
                | EdgeError::UpstreamTimeout { .. }
        )
    }

    /// Mattermost's error shape (`model.AppError`): what the web and mobile apps display.
    fn json(&self, id: &'static str, request_id: &HeaderValue) -> Bytes {
        let detail = String::from_utf8_lossy(&self.body()).trim().to_string();
        style::json(id, &self.message(), &detail, request_id, self.status())
    }

    /// A small self-contained page; the 5xx ones retry with backoff.
    fn html(&self, request_id: &HeaderValue) -> Bytes {
        let title = match self {
            EdgeError::UpstreamRefused { .. } | EdgeError::UpstreamProtocol { .. } => {
                "Mattermost is starting up or unreachable"
            }
            EdgeError::UpstreamBusy { .. } => "Mattermost is busy",
            EdgeError::UpstreamTimeout { .. } => "Mattermost did not answer in time",
            EdgeError::TooLarge { .. } => "Request too large",
            EdgeError::LoginLimited { .. } => "Too many failed sign-in attempts",
            _ => "The request cannot be handled",
        };
        style::page(
            title,
            &self.message(),
            self.retries(),
            self.status(),
            request_id,
        )
    }
}

impl Answer {
    /// The outcome in logs and metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            Answer::Health => Outcome::Health,
            Answer::Preflight(_) => Outcome::CorsPreflight,
            Answer::ServerOptions | Answer::Metrics(_) => Outcome::Health,
            Answer::Redirect { .. } => Outcome::Redirect,
            Answer::AcmeChallenge(_) => Outcome::AcmeChallenge,
            Answer::Error(e) => e.outcome(),
        }
    }

    /// The response (the pipeline's response filters add CORS, rate-limit and HSTS headers); an
    /// error is told in `style`, naming `request_id`.
    pub fn into_response(self, style: ErrorStyle, request_id: &HeaderValue) -> Response<LocalBody> {
        match self {
            Answer::Health => text(StatusCode::OK, Bytes::from_static(b"ok\n")),
            Answer::AcmeChallenge(key_authorization) => {
                text(StatusCode::OK, Bytes::from(key_authorization))
            }
            Answer::Metrics(text) => {
                let mut resp = Response::new(body::local(text));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            Answer::ServerOptions => {
                let mut resp = Response::new(body::local(Bytes::new()));
                resp.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("OPTIONS, GET, HEAD, POST, PUT, PATCH, DELETE"),
                );
                resp
            }
            Answer::Preflight(headers) => {
                let mut resp = Response::new(body::local(Bytes::new()));
                *resp.headers_mut() = headers;
                resp
            }
            Answer::Redirect {
                location,
                keep_method,
            } => {
                let mut resp = Response::new(body::local(Bytes::new()));
                *resp.status_mut() = if keep_method {
                    StatusCode::PERMANENT_REDIRECT
                } else {
                    StatusCode::MOVED_PERMANENTLY
                };
                resp.headers_mut().insert(header::LOCATION, location);
                resp
            }
            Answer::Error(e) => {
                let style = match (e.id(), style) {
                    (None, _) => None,
                    // The login limit's answer is for the apps' sign-in form.
                    (Some(id), ErrorStyle::Text) if matches!(e, EdgeError::LoginLimited { .. }) => {
                        Some((id, ErrorStyle::Json))
                    }
                    (Some(id), style) => Some((id, style)),
                };
                let mut resp = match style {
                    None | Some((_, ErrorStyle::Text)) => text(e.status(), e.body()),
                    Some((id, ErrorStyle::Json)) => {
                        typed(e.status(), e.json(id, request_id), "application/json")
                    }
                    Some((_, ErrorStyle::Html)) => {
                        typed(e.status(), e.html(request_id), "text/html; charset=utf-8")
                    }
                };
                if style.is_some() {
                    resp.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                let retry_after = match e {
                    EdgeError::RateLimited { retry_after_secs }
                    | EdgeError::LoginLimited { retry_after_secs } => Some(retry_after_secs),
                    EdgeError::UpstreamBusy { .. } => Some(BUSY_RETRY_AFTER_SECS),
                    _ => None,
                };
                if let Some(secs) = retry_after {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                resp
            }
        }
    }
}

fn text(status: StatusCode, body: Bytes) -> Response<LocalBody> {
    typed(status, body, "text/plain; charset=utf-8")
}

fn typed(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<LocalBody> {
    let mut resp = Response::new(body::local(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: HeaderValue = HeaderValue::from_static("ybndrfg8ejkmcpqxot1uwisza3");

    fn body_of(resp: Response<LocalBody>) -> String {
        use http_body_util::BodyExt;
        let bytes = block_on(resp.into_body().collect());
        String::from_utf8(bytes.unwrap().to_bytes().to_vec()).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// The style of a request for `path` with `accept`, as the pipeline asks for it.
    fn style(path: &str, accept: Option<&str>) -> ErrorStyle {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        let api = crate::pipeline::route::RouteGroup::of(path).is_api();
        ErrorStyle::of(api, &headers)
    }

    #[test]
    fn the_style_follows_path_then_accept() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert_eq!(style("/api/v4/users/me", Some(browser)), ErrorStyle::Json);
        assert_eq!(style("/api/v4/system/ping", None), ErrorStyle::Json);
        assert_eq!(style("/", Some(browser)), ErrorStyle::Html);
        assert_eq!(
            style("/team/channels/x", Some("TEXT/HTML")),
            ErrorStyle::Html
        );
        assert_eq!(style("/", Some("*/*")), ErrorStyle::Text);
        assert_eq!(style("/", None), ErrorStyle::Text);
    }

    #[test]
    fn api_errors_are_in_mattermosts_shape() {
        let e = EdgeError::UpstreamRefused {
            server: "http://127.0.0.1:8065".into(),
        };
        let resp = Answer::from(e).into_response(ErrorStyle::Json, &ID);
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        let v: serde_json::Value = serde_json::from_str(&body_of(resp)).unwrap();
        assert_eq!(v["id"], "mm_edge.upstream_unreachable");
        assert_eq!(v["status_code"], 502);
        assert_eq!(v["request_id"], "ybndrfg8ejkmcpqxot1uwisza3");
        assert_eq!(
            v["message"],
            "Mattermost is starting up or unreachable. Try again in a moment."
        );
        // The address is in the log only: an internal address is nobody's business outside.
        let detail = v["detailed_error"].as_str().unwrap();
        assert_eq!(detail, "mm-edge: Mattermost is unreachable");
    }

    #[test]
    fn the_login_limit_answers_in_mattermosts_shape_even_to_plain_clients() {
        let e = EdgeError::LoginLimited {
            retry_after_secs: 42,
        };
        let resp = Answer::from(e).into_response(ErrorStyle::Text, &ID);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "42");
        let v: serde_json::Value = serde_json::from_str(&body_of(resp)).unwrap();
        assert_eq!(v["id"], "mm_edge.login_rate_limited");
        assert_eq!(
            v["message"],
            "Too many failed sign-in attempts from your network. Try again in 42 seconds."
        );
        assert_eq!(v["status_code"], 429);
    }

    #[test]
    fn browsers_get_a_page_that_retries_only_when_mattermost_is_down() {
        let down = EdgeError::UpstreamTimeout {
            server: "http://127.0.0.1:8065".into(),
            timeout: Duration::from_secs(600),
        };
        let resp = Answer::from(down).into_response(ErrorStyle::Html, &ID);
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let page = body_of(resp);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("location.reload()"));
        assert!(page.contains("ybndrfg8ejkmcpqxot1uwisza3"));
        assert!(
            !page.contains("127.0.0.1"),
            "no internal address on a public page"
        );
        assert!(
            !page.contains("src=") && !page.contains("href="),
            "no external assets"
        );
        let big = Answer::from(EdgeError::TooLarge { limit: 110 << 20 })
            .into_response(ErrorStyle::Html, &ID);
        let page = body_of(big);
        assert!(page.contains("110 MiB"));
        assert!(!page.contains("location.reload()"));
        let hostile = HeaderValue::from_static("<script>x</script>");
        let page = body_of(
            Answer::from(EdgeError::NotImplemented).into_response(ErrorStyle::Html, &hostile),
        );
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
    }

    #[test]
    fn plain_clients_keep_the_plain_bodies() {
        let resp =
            Answer::from(EdgeError::TooLarge { limit: 9 }).into_response(ErrorStyle::Text, &ID);
        assert_eq!(
            body_of(resp),
            format!(
                "request body larger than 9 bytes ({})\n",
                spec::MAX_BODY.env
            )
        );
        let resp = Answer::from(EdgeError::NotFound).into_response(ErrorStyle::Json, &ID);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn each_error_has_its_status_and_outcome() {
        let server = "http://127.0.0.1:8065".to_string();
        let cases = [
            (EdgeError::BadRequest("x"), 400, "bad_request"),
            (EdgeError::TooLarge { limit: 1 }, 413, "too_large"),
            (
                EdgeError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "rate_limited",
            ),
            (
                EdgeError::UpstreamRefused {
                    server: server.clone(),
                },
                502,
                "upstream_refused",
            ),
            (
                EdgeError::UpstreamProtocol {
                    server: server.clone(),
                },
                502,
                "upstream_error",
            ),
            (
                EdgeError::UpstreamBusy {
                    server: server.clone(),
                    limit: 2,
                },
                503,
                "upstream_busy",
            ),
            (
                EdgeError::UpstreamTimeout {
                    server,
                    timeout: Duration::from_secs(600),
                },
                504,
                "upstream_timeout",
            ),
        ];
        for (e, status, outcome) in cases {
            assert_eq!(e.outcome().as_str(), outcome);
            let resp = Answer::from(e).into_response(ErrorStyle::Text, &ID);
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(
                resp.headers()[header::CONTENT_TYPE],
                "text/plain; charset=utf-8"
            );
        }
    }

    #[test]
    fn rate_limited_answer_is_mattermosts() {
        let resp = Answer::from(EdgeError::RateLimited {
            retry_after_secs: 7,
        })
        .into_response(ErrorStyle::Json, &ID);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            EdgeError::RateLimited {
                retry_after_secs: 7
            }
            .body(),
            RATE_LIMITED_BODY
        );
    }

    #[test]
    fn redirects_keep_the_method_only_when_asked() {
        let loc = HeaderValue::from_static("https://chat.example.com/x");
        let resp = Answer::Redirect {
            location: loc.clone(),
            keep_method: false,
        }
        .into_response(ErrorStyle::Html, &ID);
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(resp.headers()[header::LOCATION], loc);
        let resp = Answer::Redirect {
            location: loc,
            keep_method: true,
        }
        .into_response(ErrorStyle::Html, &ID);
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    }
}
