//! The edge's own answers: everything mm-edge says itself instead of Mattermost (health,
//! preflights, redirects, and every error), each mapped to its status, headers and body here, in
//! one place. No other file builds a 4xx or 5xx response.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, LocalBody};
use crate::config::spec;

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
            EdgeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
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
            EdgeError::UpstreamRefused { server } => {
                format!("mm-edge: Mattermost at {server} is unreachable\n").into()
            }
            EdgeError::UpstreamProtocol { server } => {
                format!("mm-edge: Mattermost at {server} closed the connection without an answer\n")
                    .into()
            }
            EdgeError::UpstreamBusy { server, limit } => format!(
                "mm-edge: all {limit} connections to Mattermost at {server} are in use ({}); try again shortly\n",
                spec::UPSTREAM_MAX_CONNECTIONS.env
            )
            .into(),
            EdgeError::UpstreamTimeout { server, timeout } => format!(
                "mm-edge: Mattermost at {server} did not answer within {}s ({})\n",
                timeout.as_secs(),
                spec::UPSTREAM_TIMEOUT.env
            )
            .into(),
            EdgeError::ClientGone => Bytes::new(),
        }
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

    /// The response (the pipeline's response filters add CORS, rate-limit and HSTS headers).
    pub fn into_response(self) -> Response<LocalBody> {
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
                let mut resp = text(e.status(), e.body());
                let retry_after = match e {
                    EdgeError::RateLimited { retry_after_secs } => Some(retry_after_secs),
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
    let mut resp = Response::new(body::local(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let resp = Answer::from(e).into_response();
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
        .into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
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
        .into_response();
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(resp.headers()[header::LOCATION], loc);
        let resp = Answer::Redirect {
            location: loc,
            keep_method: true,
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    }
}
