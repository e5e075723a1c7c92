//! CORS at the edge, with the semantics Mattermost gets from `github.com/rs/cors`.
//!
//! Mattermost wraps its router in `cors.New(Options{AllowedOrigins: strings.Fields(AllowCorsFrom),
//! AllowedHeaders: ["*"], MaxAge: 86400, ...})`. This module reproduces that policy so the edge can
//! answer preflights itself and stamp actual responses:
//!
//! - A preflight is an `OPTIONS` request carrying a non-empty `Access-Control-Request-Method`; any
//!   other `OPTIONS` request is an ordinary request and goes upstream.
//! - Preflight answer: `200`, always `Vary: Origin, Access-Control-Request-Method,
//!   Access-Control-Request-Headers`; only when the origin is allowed *and* the requested method is
//!   one of [`ALLOWED_METHODS`], also `Access-Control-Allow-Origin`, `-Allow-Methods` (the requested
//!   method), `-Allow-Headers` (the requested headers: every header is allowed), `-Max-Age: 86400`
//!   and `-Allow-Credentials: true` when configured.
//! - Actual responses: the edge is the only source of CORS headers. Any `Access-Control-*` response
//!   header from upstream is removed, `Origin` is added to `Vary` (for every response: the answer
//!   depends on `Origin` even when it carries no CORS headers, so caches must key on it), and for
//!   an allowed origin `Access-Control-Allow-Origin`, `-Expose-Headers` (when configured) and
//!   `-Allow-Credentials: true` (when configured) are set.
//!
//! Two deliberate differences from rs/cors: `*` together with credentials echoes the request's
//! origin instead of sending `*` (browsers reject `*` with credentials), and configuration entries
//! that are not origins are rejected instead of silently never matching.

mod origin;

#[cfg(test)]
mod tests;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{Method, StatusCode};

use crate::config::Cors as CorsSettings;
pub use origin::OriginProblem;
use origin::{parse_entry, Entry, Origins};

/// Methods a cross-origin request may use (Mattermost's list plus `HEAD`); `OPTIONS` is always
/// accepted too, as rs/cors does. Compared case-sensitively, as rs/cors does.
pub const ALLOWED_METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// Seconds a browser may cache a preflight answer (`Access-Control-Max-Age`).
pub const MAX_AGE_SECS: u32 = 86400;

/// Response headers the edge owns once CORS is enabled; upstream copies are removed.
const OWNED_RESPONSE_HEADERS: [HeaderName; 6] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
];

/// Invalid CORS configuration; the message names the offending entry (the caller names the
/// setting, the way the user gave it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// A `cors.domains` entry that is not an origin, `*`, or an origin with one `*`.
    #[error("{entry:?} is not an origin: {problem}")]
    InvalidOrigin {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        problem: OriginProblem,
    },
    /// A `cors.exposed_headers` entry that is not an HTTP header name.
    #[error("{entry:?} is not a header name")]
    InvalidExposedHeader {
        /// The entry as written.
        entry: String,
    },
}

/// The CORS policy, built once from the `[cors]` settings; `Send + Sync`, no allocation per request
/// beyond the preflight's own header map.
#[derive(Debug)]
pub struct Cors {
    origins: Origins,
    allow_credentials: bool,
    expose_headers: Option<HeaderValue>,
    // Precomputed header values (static: cloning them is free).
    vary_preflight: HeaderValue,
    vary_origin: HeaderValue,
    any_origin: HeaderValue,
    true_value: HeaderValue,
    max_age: HeaderValue,
}

impl Cors {
    /// Builds the policy; `Ok(None)` when `domains` holds no entry (no CORS handling at all:
    /// OPTIONS requests and upstream CORS headers pass through untouched).
    pub fn new(cfg: &CorsSettings) -> Result<Option<Cors>, CorsError> {
        let mut any = false;
        let mut exact = Vec::new();
        let mut wildcards = Vec::new();
        let mut entries = 0usize;
        for entry in cfg.domains.iter().flat_map(|d| d.split_ascii_whitespace()) {
            entries += 1;
            match parse_entry(entry) {
                Ok(Entry::All) => any = true,
                Ok(Entry::Exact(origin)) => exact.push(origin),
                Ok(Entry::Wildcard(w)) => wildcards.push(w),
                Err(problem) => {
                    return Err(CorsError::InvalidOrigin {
                        entry: entry.to_owned(),
                        problem,
                    })
                }
            }
        }
        if entries == 0 {
            return Ok(None);
        }
        let origins = if any {
            Origins::All
        } else {
            Origins::List { exact, wildcards }
        };
        Ok(Some(Cors {
            origins,
            allow_credentials: cfg.allow_credentials,
            expose_headers: expose_headers_value(&cfg.exposed_headers)?,
            vary_preflight: HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
            vary_origin: HeaderValue::from_static("Origin"),
            any_origin: HeaderValue::from_static("*"),
            true_value: HeaderValue::from_static("true"),
            max_age: HeaderValue::from(MAX_AGE_SECS),
        }))
    }

    /// True for a CORS preflight: `OPTIONS` with a non-empty `Access-Control-Request-Method`.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        *method == Method::OPTIONS
            && headers
                .get(ACCESS_CONTROL_REQUEST_METHOD)
                .is_some_and(|m| !m.is_empty())
    }

    /// True when `origin` (an `Origin` header value) is allowed; an empty value never is.
    pub fn is_origin_allowed(&self, origin: &HeaderValue) -> bool {
        let origin = origin.as_bytes();
        if origin.is_empty() {
            return false;
        }
        match &self.origins {
            Origins::All => true,
            Origins::List { exact, wildcards } => {
                exact
                    .iter()
                    .any(|e| e.as_bytes().eq_ignore_ascii_case(origin))
                    || wildcards.iter().any(|w| w.matches(origin))
            }
        }
    }

    /// The complete answer to a preflight (status 200 and every header), or `None` when the
    /// request is not a preflight and must be handled as an actual request.
    pub fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<(StatusCode, HeaderMap)> {
        if !Self::is_preflight(method, headers) {
            return None;
        }
        let mut out = HeaderMap::with_capacity(8);
        out.insert(VARY, self.vary_preflight.clone());
        let Some(origin) = headers.get(ORIGIN).filter(|o| self.is_origin_allowed(o)) else {
            return Some((StatusCode::OK, out));
        };
        let Some(requested) = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .filter(|m| is_allowed_method(m.as_bytes()))
        else {
            return Some((StatusCode::OK, out));
        };
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin));
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, requested.clone());
        // Every header is allowed: echo what was asked for. rs/cors copies every field line,
        // since some gateways split Access-Control-Request-Headers (rs/cors issue 184).
        let mut requested_headers = headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS).iter();
        if let Some(first) = requested_headers.next().filter(|v| !v.is_empty()) {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, first.clone());
            for more in requested_headers {
                out.append(ACCESS_CONTROL_ALLOW_HEADERS, more.clone());
            }
        }
        if self.allow_credentials {
            out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, self.true_value.clone());
        }
        out.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        Some((StatusCode::OK, out))
    }

    /// Stamps an upstream response to an actual (non-preflight) request: removes every
    /// `Access-Control-*` header upstream sent, adds `Origin` to `Vary` unless already listed,
    /// and, for an allowed origin and method, sets `Access-Control-Allow-Origin`,
    /// `-Expose-Headers` and `-Allow-Credentials` as configured. Each appears at most once.
    pub fn apply_actual(
        &self,
        method: &Method,
        request_origin: Option<&HeaderValue>,
        response_headers: &mut HeaderMap,
    ) {
        for name in &OWNED_RESPONSE_HEADERS {
            response_headers.remove(name);
        }
        if !varies_on_origin(response_headers) {
            response_headers.append(VARY, self.vary_origin.clone());
        }
        let Some(origin) = request_origin.filter(|o| self.is_origin_allowed(o)) else {
            return;
        };
        if !(is_allowed_method(method.as_str().as_bytes()) || *method == Method::OPTIONS) {
            return;
        }
        response_headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin_value(origin));
        if let Some(expose) = &self.expose_headers {
            response_headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        if self.allow_credentials {
            response_headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, self.true_value.clone());
        }
    }

    /// `*` when every origin is allowed and credentials are off; otherwise the origin itself.
    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        match self.origins {
            Origins::All if !self.allow_credentials => self.any_origin.clone(),
            _ => origin.clone(),
        }
    }
}

/// `Access-Control-Request-Method` / request method check; `OPTIONS` is always accepted.
fn is_allowed_method(method: &[u8]) -> bool {
    method == b"OPTIONS" || ALLOWED_METHODS.iter().any(|m| m.as_bytes() == method)
}

/// Whether some `Vary` field already lists `Origin` (or `*`, which covers it).
fn varies_on_origin(headers: &HeaderMap) -> bool {
    headers.get_all(VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|token| {
            let token = token.trim_ascii();
            token == b"*" || token.eq_ignore_ascii_case(b"origin")
        })
    })
}

/// The `Access-Control-Expose-Headers` value: names in Go's canonical form, joined by ", ",
/// as rs/cors sends them. `None` when nothing is configured.
fn expose_headers_value(configured: &[String]) -> Result<Option<HeaderValue>, CorsError> {
    let mut joined = String::new();
    for name in configured.iter().flat_map(|h| h.split_ascii_whitespace()) {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(CorsError::InvalidExposedHeader {
                entry: name.to_owned(),
            });
        }
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        let mut upper = true;
        for c in name.chars() {
            joined.push(if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            upper = c == '-';
        }
    }
    if joined.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&joined)
        .map(Some)
        .map_err(|_| CorsError::InvalidExposedHeader { entry: joined })
}
