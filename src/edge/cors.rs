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

use std::fmt;

use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{Method, StatusCode};

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

/// CORS settings as the user gave them (`MATTERMOST_CORS_*` / `[cors]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsConfig {
    /// Allowed origins (`MATTERMOST_CORS_DOMAINS`); each element may itself hold several
    /// space-separated entries. Empty: CORS handling is off.
    pub domains: Vec<String>,
    /// Headers scripts may read (`MATTERMOST_CORS_EXPOSED_HEADERS`); space-separated like `domains`.
    pub exposed_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (`MATTERMOST_CORS_ALLOW_CREDENTIALS`).
    pub allow_credentials: bool,
}

/// Why a `MATTERMOST_CORS_DOMAINS` entry is not an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginProblem {
    /// No `scheme://` in front.
    NoScheme,
    /// The scheme has characters a URL scheme cannot have.
    BadScheme,
    /// Nothing between `://` and the port.
    NoHost,
    /// Something after the host, e.g. a trailing `/`.
    HasPath,
    /// A `?query` or `#fragment`.
    HasQueryOrFragment,
    /// `user@` in front of the host.
    HasUserinfo,
    /// More than one `*`.
    TwoWildcards,
    /// The port is not a number from 0 to 65535.
    BadPort,
    /// A character that cannot appear in a host name.
    BadHostChar(char),
    /// Non-ASCII characters (browsers send the punycode form).
    NotAscii,
}

impl fmt::Display for OriginProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoScheme => {
                f.write_str("no scheme (write scheme://host[:port], e.g. https://chat.example.com)")
            }
            Self::BadScheme => f.write_str("the scheme is not a URL scheme"),
            Self::NoHost => f.write_str("no host after the scheme"),
            Self::HasPath => f.write_str(
                "has a path (an origin is scheme://host[:port] only; drop everything from the \
                 first '/' after the host, including a trailing '/')",
            ),
            Self::HasQueryOrFragment => f.write_str("has a query or fragment ('?' or '#')"),
            Self::HasUserinfo => f.write_str("has a user name ('@'), which origins never carry"),
            Self::TwoWildcards => {
                f.write_str("has more than one '*' wildcard (one per entry at most)")
            }
            Self::BadPort => f.write_str("the port is not a number from 0 to 65535"),
            Self::BadHostChar(c) => write!(f, "the host contains {c:?}"),
            Self::NotAscii => f.write_str(
                "has non-ASCII characters (use the punycode form, xn--..., as browsers send it)",
            ),
        }
    }
}

/// Invalid CORS configuration; the message names the setting and the offending entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsError {
    /// A `MATTERMOST_CORS_DOMAINS` entry that is not an origin, `*`, or an origin with one `*`.
    #[error("MATTERMOST_CORS_DOMAINS: {entry:?} is not an origin: {problem}")]
    InvalidOrigin {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        problem: OriginProblem,
    },
    /// A `MATTERMOST_CORS_EXPOSED_HEADERS` entry that is not an HTTP header name.
    #[error("MATTERMOST_CORS_EXPOSED_HEADERS: {entry:?} is not a header name")]
    InvalidExposedHeader {
        /// The entry as written.
        entry: String,
    },
}

/// One `*` inside an entry: the origin must start with `prefix` and end with `suffix`.
#[derive(Debug)]
struct Wildcard {
    prefix: Box<str>,
    suffix: Box<str>,
}

impl Wildcard {
    /// rs/cors prefix/suffix matching (case-insensitive), hardened so that the text standing in
    /// for `*` can only be host or port characters: a non-browser client sending
    /// `https://evil.com/.example.com` does not match `https://*.example.com`.
    fn matches(&self, origin: &[u8]) -> bool {
        let (p, s) = (self.prefix.as_bytes(), self.suffix.as_bytes());
        if origin.len() < p.len() + s.len() {
            return false;
        }
        let (head, rest) = origin.split_at(p.len());
        let (middle, tail) = rest.split_at(rest.len() - s.len());
        head.eq_ignore_ascii_case(p)
            && tail.eq_ignore_ascii_case(s)
            && middle
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    }
}

/// Which origins are allowed.
#[derive(Debug)]
enum Origins {
    /// `*` appeared in the list.
    All,
    /// Lower-cased exact origins and wildcard patterns.
    List {
        exact: Vec<Box<str>>,
        wildcards: Vec<Wildcard>,
    },
}

/// The CORS policy, built once from [`CorsConfig`]; `Send + Sync`, no allocation per request
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
    pub fn new(cfg: &CorsConfig) -> Result<Option<Cors>, CorsError> {
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

/// A parsed `MATTERMOST_CORS_DOMAINS` entry.
enum Entry {
    All,
    Exact(Box<str>),
    Wildcard(Wildcard),
}

/// Validates one entry: `*`, or `scheme://host[:port]` with at most one `*` anywhere after
/// nothing else (no path, query, fragment or user name). Stored lower-cased.
fn parse_entry(raw: &str) -> Result<Entry, OriginProblem> {
    if raw == "*" {
        return Ok(Entry::All);
    }
    if !raw.is_ascii() {
        return Err(OriginProblem::NotAscii);
    }
    let entry = raw.to_ascii_lowercase();
    if entry.matches('*').count() > 1 {
        return Err(OriginProblem::TwoWildcards);
    }
    let Some((scheme, rest)) = entry.split_once("://") else {
        return Err(OriginProblem::NoScheme);
    };
    check_scheme(scheme)?;
    if rest.contains('/') {
        return Err(OriginProblem::HasPath);
    }
    if rest.contains(['?', '#']) {
        return Err(OriginProblem::HasQueryOrFragment);
    }
    if rest.contains('@') {
        return Err(OriginProblem::HasUserinfo);
    }
    check_authority(rest)?;
    Ok(match entry.split_once('*') {
        Some((prefix, suffix)) => Entry::Wildcard(Wildcard {
            prefix: prefix.into(),
            suffix: suffix.into(),
        }),
        None => Entry::Exact(entry.into()),
    })
}

fn check_scheme(scheme: &str) -> Result<(), OriginProblem> {
    let valid_chars = scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'*'));
    let starts_well = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*');
    if valid_chars && starts_well {
        Ok(())
    } else {
        Err(OriginProblem::BadScheme)
    }
}

/// `host[:port]`, host a name, IPv4 address or `[IPv6]`, any of it possibly holding the `*`.
fn check_authority(authority: &str) -> Result<(), OriginProblem> {
    let (host, port) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err(OriginProblem::BadHostChar('['));
        };
        let (host, after) = authority.split_at(end + 1);
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(OriginProblem::BadPort),
        };
        let inner = &host[1..host.len() - 1];
        if let Some(c) = inner
            .chars()
            .find(|c| !(c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '*')))
        {
            return Err(OriginProblem::BadHostChar(c));
        }
        (host, port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*')))
        {
            return Err(OriginProblem::BadHostChar(c));
        }
        (host, port)
    };
    if host.is_empty() || host == "[]" {
        return Err(OriginProblem::NoHost);
    }
    if let Some(port) = port {
        let valid = port == "*"
            || port.parse::<u16>().is_ok()
            || (port.contains('*') && port.bytes().all(|b| b.is_ascii_digit() || b == b'*'));
        if !valid {
            return Err(OriginProblem::BadPort);
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(domains: &str) -> Cors {
        cors_with(domains, "", false)
    }

    fn cors_with(domains: &str, exposed: &str, credentials: bool) -> Cors {
        let cfg = CorsConfig {
            domains: vec![domains.to_owned()],
            exposed_headers: vec![exposed.to_owned()],
            allow_credentials: credentials,
        };
        match Cors::new(&cfg) {
            Ok(Some(c)) => c,
            other => panic!("{domains:?}: expected a policy, got {other:?}"),
        }
    }

    fn allowed(c: &Cors, origin: &str) -> bool {
        c.is_origin_allowed(&HeaderValue::from_str(origin).expect("test origin"))
    }

    fn invalid(domains: &str) -> CorsError {
        let cfg = CorsConfig {
            domains: vec![domains.to_owned()],
            ..CorsConfig::default()
        };
        match Cors::new(&cfg) {
            Err(e) => e,
            Ok(other) => panic!("{domains:?}: expected an error, got {other:?}"),
        }
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("test name"),
                HeaderValue::from_str(v).expect("test value"),
            );
        }
        h
    }

    fn values(h: &HeaderMap, name: HeaderName) -> Vec<&str> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    fn sorted_names(h: &HeaderMap) -> Vec<&str> {
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn policy_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Cors>();
    }

    #[test]
    fn empty_domains_disable_cors() {
        for domains in [vec![], vec![String::new()], vec!["  \t ".to_owned()]] {
            let cfg = CorsConfig {
                domains,
                exposed_headers: vec!["X-Anything".into()],
                allow_credentials: true,
            };
            assert!(matches!(Cors::new(&cfg), Ok(None)));
        }
    }

    #[test]
    fn exact_origins_match_case_insensitively() {
        let c = cors("https://Chat.Example.com  http://localhost:8065");
        assert!(allowed(&c, "https://chat.example.com"));
        assert!(allowed(&c, "HTTPS://CHAT.EXAMPLE.COM"));
        assert!(allowed(&c, "http://localhost:8065"));
        assert!(!allowed(&c, "http://chat.example.com"), "scheme differs");
        assert!(
            !allowed(&c, "https://chat.example.com:8443"),
            "port differs"
        );
        assert!(!allowed(&c, "http://localhost"), "port missing");
        assert!(!allowed(&c, "http://localhost:80651"), "longer port");
        assert!(!allowed(&c, "https://chat.example.com.evil.com"));
        assert!(!allowed(&c, "https://evilchat.example.com"));
        assert!(!allowed(&c, "https://chat.example.co"));
        assert!(!allowed(&c, "null"));
        assert!(!allowed(&c, ""));
    }

    #[test]
    fn entries_may_be_split_across_elements() {
        let cfg = CorsConfig {
            domains: vec!["https://a.example".into(), "https://b.example  ".into()],
            ..CorsConfig::default()
        };
        let c = Cors::new(&cfg).ok().flatten().expect("policy");
        assert!(allowed(&c, "https://a.example"));
        assert!(allowed(&c, "https://b.example"));
    }

    #[test]
    fn star_anywhere_allows_every_origin() {
        let c = cors("https://a.example * https://b.example");
        assert!(allowed(&c, "https://anything.test"));
        assert!(allowed(&c, "null"));
        assert!(!allowed(&c, ""), "an empty Origin is never allowed");
    }

    #[test]
    fn wildcard_matches_by_prefix_and_suffix() {
        let c = cors("https://*.example.com");
        assert!(allowed(&c, "https://a.example.com"));
        assert!(allowed(&c, "https://a.b.example.com"));
        assert!(allowed(&c, "HTTPS://A.EXAMPLE.COM"));
        assert!(!allowed(&c, "https://example.com"), "no subdomain");
        assert!(!allowed(&c, "https://evil-example.com"), "near miss");
        assert!(!allowed(&c, "https://evilexample.com"));
        assert!(!allowed(&c, "http://a.example.com"), "scheme");
        assert!(
            !allowed(&c, "https://a.example.com.evil.com"),
            "suffix attack"
        );
        assert!(!allowed(&c, "https://a.example.com:8443"), "port");
        assert!(
            !allowed(&c, "https://evil.com/.example.com"),
            "path smuggling"
        );
        assert!(
            !allowed(&c, "https://user@x.example.com"),
            "userinfo smuggling"
        );
    }

    #[test]
    fn wildcard_in_port_and_scheme() {
        let c = cors("http://localhost:* *://chat.example.com");
        assert!(allowed(&c, "http://localhost:3000"));
        assert!(
            allowed(&c, "http://localhost:"),
            "rs/cors: * matches zero characters"
        );
        assert!(!allowed(&c, "http://localhost"));
        assert!(!allowed(&c, "http://localhost.evil.com:3000"));
        assert!(allowed(&c, "https://chat.example.com"));
        assert!(allowed(&c, "http://chat.example.com"));
        assert!(
            !allowed(&c, "https://evil.chat.example.com"),
            "suffix starts at ://"
        );
    }

    #[test]
    fn invalid_entries_are_rejected_with_the_entry_named() {
        let cases = [
            ("https://chat.example.com/", OriginProblem::HasPath),
            ("https://chat.example.com/api", OriginProblem::HasPath),
            ("chat.example.com", OriginProblem::NoScheme),
            ("*.example.com", OriginProblem::NoScheme),
            ("https://*.*.example.com", OriginProblem::TwoWildcards),
            ("**", OriginProblem::TwoWildcards),
            ("https://", OriginProblem::NoHost),
            ("https://:8443", OriginProblem::NoHost),
            ("https://a.example?x=1", OriginProblem::HasQueryOrFragment),
            ("https://a.example#top", OriginProblem::HasQueryOrFragment),
            ("https://me@a.example", OriginProblem::HasUserinfo),
            ("https://a.example:https", OriginProblem::BadPort),
            ("https://a.example:70000", OriginProblem::BadPort),
            ("https://a.example:", OriginProblem::BadPort),
            ("https://a,b.example", OriginProblem::BadHostChar(',')),
            ("1http://a.example", OriginProblem::BadScheme),
            ("://a.example", OriginProblem::BadScheme),
            ("https://bücher.example", OriginProblem::NotAscii),
            ("null", OriginProblem::NoScheme),
        ];
        for (entry, problem) in cases {
            let err = invalid(&format!("https://fine.example {entry}"));
            assert_eq!(
                err,
                CorsError::InvalidOrigin {
                    entry: entry.to_owned(),
                    problem
                },
                "{entry}"
            );
            let msg = err.to_string();
            assert!(msg.starts_with("MATTERMOST_CORS_DOMAINS: "), "{msg}");
            assert!(msg.contains(&format!("{entry:?}")), "{msg}");
        }
        assert_eq!(
            invalid("https://x.example/").to_string(),
            "MATTERMOST_CORS_DOMAINS: \"https://x.example/\" is not an origin: has a path (an \
             origin is scheme://host[:port] only; drop everything from the first '/' after the \
             host, including a trailing '/')"
        );
    }

    #[test]
    fn valid_entry_shapes_are_accepted() {
        let c = cors("http://127.0.0.1:8080 http://[::1]:3000 https://[::1] app://* http://*");
        assert!(allowed(&c, "http://127.0.0.1:8080"));
        assert!(allowed(&c, "http://[::1]:3000"));
        assert!(allowed(&c, "https://[::1]"));
        assert!(allowed(&c, "app://anything"));
        assert!(allowed(&c, "http://any.host:1234"));
        assert!(!allowed(&c, "https://any.host"));
    }

    #[test]
    fn invalid_exposed_header_is_rejected() {
        let cfg = CorsConfig {
            domains: vec!["*".into()],
            exposed_headers: vec!["X-Good Bad(Header)".into()],
            allow_credentials: false,
        };
        let err = Cors::new(&cfg)
            .map(|_| ())
            .expect_err("invalid header name");
        assert_eq!(
            err.to_string(),
            "MATTERMOST_CORS_EXPOSED_HEADERS: \"Bad(Header)\" is not a header name"
        );
    }

    #[test]
    fn non_preflights_are_not_answered() {
        let c = cors("*");
        let get = request(&[
            ("origin", "https://a.test"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(c.preflight(&Method::GET, &get).is_none());
        let plain_options = request(&[("origin", "https://a.test")]);
        assert!(c.preflight(&Method::OPTIONS, &plain_options).is_none());
        let empty_acrm = request(&[
            ("origin", "https://a.test"),
            ("access-control-request-method", ""),
        ]);
        assert!(c.preflight(&Method::OPTIONS, &empty_acrm).is_none());
    }

    #[test]
    fn preflight_from_allowed_origin() {
        let c = cors_with("https://*.example.com", "X-Ignored-On-Preflight", false);
        let req = request(&[
            ("origin", "https://App.example.com"),
            ("access-control-request-method", "PUT"),
            (
                "access-control-request-headers",
                "content-type,x-requested-with",
            ),
        ]);
        let (status, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            sorted_names(&h),
            [
                "access-control-allow-headers",
                "access-control-allow-methods",
                "access-control-allow-origin",
                "access-control-max-age",
                "vary"
            ]
        );
        assert_eq!(
            values(&h, VARY),
            ["Origin, Access-Control-Request-Method, Access-Control-Request-Headers"]
        );
        assert_eq!(
            values(&h, ACCESS_CONTROL_ALLOW_ORIGIN),
            ["https://App.example.com"]
        );
        assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_METHODS), ["PUT"]);
        assert_eq!(
            values(&h, ACCESS_CONTROL_ALLOW_HEADERS),
            ["content-type,x-requested-with"]
        );
        assert_eq!(values(&h, ACCESS_CONTROL_MAX_AGE), ["86400"]);
    }

    #[test]
    fn preflight_with_credentials_and_split_request_headers() {
        let c = cors_with("https://a.test", "", true);
        let req = request(&[
            ("origin", "https://a.test"),
            ("access-control-request-method", "DELETE"),
            ("access-control-request-headers", "x-one"),
            ("access-control-request-headers", "x-two"),
        ]);
        let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
        assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);
        assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_HEADERS), ["x-one", "x-two"]);
    }

    #[test]
    fn preflight_without_request_headers_has_no_allow_headers() {
        let c = cors("https://a.test");
        let req = request(&[
            ("origin", "https://a.test"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", ""),
        ]);
        let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
        assert!(h.get(ACCESS_CONTROL_ALLOW_HEADERS).is_none());
        assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_METHODS), ["POST"]);
    }

    #[test]
    fn refused_preflights_get_only_vary() {
        let c = cors_with("https://*.example.com", "X-Exposed", true);
        let refused = [
            // origin not in the list
            request(&[
                ("origin", "https://evil-example.com"),
                ("access-control-request-method", "GET"),
            ]),
            // no origin at all
            request(&[("access-control-request-method", "GET")]),
            // method not allowed (and methods are case-sensitive, as in rs/cors)
            request(&[
                ("origin", "https://a.example.com"),
                ("access-control-request-method", "CONNECT"),
            ]),
            request(&[
                ("origin", "https://a.example.com"),
                ("access-control-request-method", "patch"),
            ]),
        ];
        for req in &refused {
            let (status, h) = c.preflight(&Method::OPTIONS, req).expect("preflight");
            assert_eq!(status, StatusCode::OK);
            assert_eq!(sorted_names(&h), ["vary"], "{req:?}");
        }
    }

    #[test]
    fn preflight_allows_every_listed_method_and_options() {
        let c = cors("*");
        for m in ALLOWED_METHODS.iter().chain(&["OPTIONS"]) {
            let req = request(&[
                ("origin", "https://a.test"),
                ("access-control-request-method", m),
            ]);
            let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
            assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_METHODS), [*m]);
        }
    }

    #[test]
    fn star_sends_star_without_credentials_and_echoes_with_them() {
        let req = request(&[
            ("origin", "https://Somewhere.test"),
            ("access-control-request-method", "GET"),
        ]);
        let (_, h) = cors_with("*", "", false)
            .preflight(&Method::OPTIONS, &req)
            .expect("preflight");
        assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_ORIGIN), ["*"]);
        assert!(h.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

        let c = cors_with("*", "", true);
        let (_, h) = c.preflight(&Method::OPTIONS, &req).expect("preflight");
        assert_eq!(
            values(&h, ACCESS_CONTROL_ALLOW_ORIGIN),
            ["https://Somewhere.test"]
        );
        assert_eq!(values(&h, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);

        let mut resp = HeaderMap::new();
        c.apply_actual(&Method::GET, req.get(ORIGIN), &mut resp);
        assert_eq!(
            values(&resp, ACCESS_CONTROL_ALLOW_ORIGIN),
            ["https://Somewhere.test"]
        );
        assert_eq!(values(&resp, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);
    }

    fn upstream_with_cors_headers() -> HeaderMap {
        request(&[
            ("content-type", "application/json"),
            ("vary", "Accept-Encoding"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-origin", "https://other.test"),
            ("access-control-expose-headers", "X-Upstream"),
            ("access-control-allow-credentials", "false"),
            ("access-control-allow-methods", "GET"),
            ("access-control-allow-headers", "*"),
            ("access-control-max-age", "5"),
        ])
    }

    #[test]
    fn actual_response_headers_replace_upstream_ones() {
        let c = cors_with("https://a.test", "x-request-id  X-VERSION-ID", true);
        let origin = HeaderValue::from_static("https://a.test");
        let mut resp = upstream_with_cors_headers();
        c.apply_actual(&Method::POST, Some(&origin), &mut resp);
        assert_eq!(
            sorted_names(&resp),
            [
                "access-control-allow-credentials",
                "access-control-allow-origin",
                "access-control-expose-headers",
                "content-type",
                "vary"
            ]
        );
        assert_eq!(
            values(&resp, ACCESS_CONTROL_ALLOW_ORIGIN),
            ["https://a.test"]
        );
        assert_eq!(
            values(&resp, ACCESS_CONTROL_EXPOSE_HEADERS),
            ["X-Request-Id, X-Version-Id"]
        );
        assert_eq!(values(&resp, ACCESS_CONTROL_ALLOW_CREDENTIALS), ["true"]);
        assert_eq!(values(&resp, VARY), ["Accept-Encoding", "Origin"]);
    }

    #[test]
    fn actual_response_without_expose_or_credentials_config() {
        let c = cors("https://a.test");
        let origin = HeaderValue::from_static("https://a.test");
        let mut resp = upstream_with_cors_headers();
        c.apply_actual(&Method::GET, Some(&origin), &mut resp);
        assert_eq!(
            sorted_names(&resp),
            ["access-control-allow-origin", "content-type", "vary"]
        );
    }

    #[test]
    fn vary_origin_is_never_duplicated() {
        let c = cors("https://a.test");
        let origin = HeaderValue::from_static("https://a.test");
        for upstream_vary in ["Origin", "accept-encoding, ORIGIN", "*"] {
            let mut resp = request(&[("vary", upstream_vary)]);
            c.apply_actual(&Method::GET, Some(&origin), &mut resp);
            assert_eq!(values(&resp, VARY), [upstream_vary]);
            // Applying twice (e.g. a retried response) changes nothing either.
            c.apply_actual(&Method::GET, Some(&origin), &mut resp);
            assert_eq!(values(&resp, VARY), [upstream_vary]);
        }
    }

    #[test]
    fn refused_or_missing_origin_gets_no_cors_headers_but_vary() {
        let c = cors_with("https://*.example.com", "X-Exposed", true);
        let evil = HeaderValue::from_static("https://evil-example.com");
        let empty = HeaderValue::from_static("");
        for origin in [Some(&evil), Some(&empty), None] {
            let mut resp = upstream_with_cors_headers();
            c.apply_actual(&Method::GET, origin, &mut resp);
            assert_eq!(sorted_names(&resp), ["content-type", "vary"], "{origin:?}");
            assert_eq!(values(&resp, VARY), ["Accept-Encoding", "Origin"]);
        }
    }

    #[test]
    fn actual_request_with_unlisted_method_gets_no_cors_headers() {
        let c = cors("*");
        let origin = HeaderValue::from_static("https://a.test");
        let mut resp = HeaderMap::new();
        let propfind = Method::from_bytes(b"PROPFIND").expect("method");
        c.apply_actual(&propfind, Some(&origin), &mut resp);
        assert_eq!(sorted_names(&resp), ["vary"]);
        let mut resp = HeaderMap::new();
        c.apply_actual(&Method::OPTIONS, Some(&origin), &mut resp);
        assert_eq!(values(&resp, ACCESS_CONTROL_ALLOW_ORIGIN), ["*"]);
    }
}
