//! The logging step's sink: each finished request (or WebSocket session) is counted in the
//! metrics and written as one access-log line, JSON or Apache/nginx combined. Secrets never
//! reach the log: no `Authorization` or `Cookie` is logged, and the query parameters Mattermost
//! uses for secrets (in the request and in its `Referer`) are replaced by `REDACTED`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use time::OffsetDateTime;

use super::ctx::{Protocol, RequestCtx};
use super::logging::Sink;
use crate::answer::Outcome;
use crate::config::AccessLogFormat;
use crate::observe::access_log::AccessLog;
use crate::observe::json::JsonObject;
use crate::observe::metrics::Metrics;

/// Query parameters whose values are secrets: API tokens (`access_token`, `token`), public file
/// link hashes (`h`), OAuth/SAML flow values (`t`, `code`, `state`), invite link ids (`d`, `id`).
pub const SECRET_PARAMS: [&str; 8] = [
    "access_token",
    "token",
    "h",
    "t",
    "code",
    "state",
    "d",
    "id",
];

/// Counts and logs finished requests.
#[derive(Debug)]
pub struct Observer {
    log: AccessLog,
    format: AccessLogFormat,
    metrics: Option<Arc<Metrics>>,
    /// Each Mattermost server as configured, by index.
    upstreams: Vec<String>,
    upstream_up: Vec<Gauge>,
}

impl Observer {
    /// Writes lines to `log` in `format`; counts into `metrics` when on.
    pub fn new(
        log: AccessLog,
        format: AccessLogFormat,
        metrics: Option<Arc<Metrics>>,
        upstreams: Vec<String>,
    ) -> Self {
        let upstream_up = match &metrics {
            Some(m) => upstreams.iter().map(|u| m.upstream_up(u)).collect(),
            None => Vec::new(),
        };
        Self {
            log,
            format,
            metrics,
            upstreams,
            upstream_up,
        }
    }

    fn count(&self, m: &Metrics, ctx: &RequestCtx, took: Duration) {
        let code = ctx.status.map_or(0, |s| s.as_u16());
        m.request(ctx.route.index(), &ctx.method, code, took);
        m.bytes_in.inc_by(ctx.bytes_in());
        m.bytes_out.inc_by(ctx.bytes_out);
        if let Some(us) = ctx.upstream_us {
            m.upstream_response
                .observe(Duration::from_micros(u64::from(us)));
        }
        let server = ctx.upstream.map(usize::from);
        let kind = match ctx.outcome {
            Outcome::RateLimited => {
                m.rate_limited.inc();
                None
            }
            Outcome::UpstreamRefused => Some("refused"),
            Outcome::UpstreamError | Outcome::UpstreamBodyError => Some("error"),
            Outcome::UpstreamTimeout => Some("timeout"),
            Outcome::UpstreamBusy => Some("busy"),
            _ => None,
        };
        if let Some(i) = server {
            let up = !matches!(ctx.outcome, Outcome::UpstreamRefused);
            if let Some(g) = self.upstream_up.get(i) {
                g.set(i64::from(up));
            }
            if let (Some(kind), Some(name)) = (kind, self.upstreams.get(i)) {
                m.upstream_error(name, kind);
            }
        }
    }

    /// One access-log line for `ctx`, with its newline.
    pub fn line(&self, ctx: &RequestCtx, now: OffsetDateTime, took: Duration) -> Vec<u8> {
        match self.format {
            AccessLogFormat::Json => self.json(ctx, now, took),
            AccessLogFormat::Combined => combined(ctx, now),
        }
    }

    fn json(&self, ctx: &RequestCtx, now: OffsetDateTime, took: Duration) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        let mut o = JsonObject::new(&mut out);
        o.plain("time", rfc3339_millis(now).as_str());
        o.ip("client_ip", ctx.client_ip);
        o.plain("method", ctx.method.as_str());
        o.plain("path", ctx.path());
        if let Some(q) = ctx.path.as_ref().and_then(|p| p.query()) {
            o.plain("query", &redact_query(q));
        }
        o.plain("protocol", ctx.protocol.as_str());
        o.uint("status", ctx.status.map_or(0, |s| u64::from(s.as_u16())));
        o.uint("bytes_in", ctx.bytes_in());
        o.uint("bytes_out", ctx.bytes_out);
        o.millis("duration_ms", micros(took));
        if let Some(name) = ctx
            .upstream
            .and_then(|i| self.upstreams.get(usize::from(i)))
        {
            o.plain("upstream", name);
        }
        if let Some(us) = ctx.upstream_us {
            o.millis("upstream_ms", u64::from(us));
        }
        if let Some(id) = &ctx.request_id {
            o.text("request_id", id.as_bytes());
        }
        o.plain("outcome", ctx.outcome.as_str());
        if let Some(ua) = &ctx.user_agent {
            o.text("user_agent", ua.as_bytes());
        }
        if let Some(r) = &ctx.referer {
            o.plain("referer", &redact_url(&lossy(r.as_bytes())));
        }
        if let Some(tls) = ctx.tls {
            o.plain("tls", tls);
        }
        o.finish();
        out.push(b'\n');
        out
    }
}

impl Sink for Observer {
    fn log(&self, ctx: &RequestCtx) {
        let took = ctx.start.elapsed();
        if let Some(m) = &self.metrics {
            self.count(m, ctx, took);
        }
        if self.log.is_on() {
            self.log
                .write(self.line(ctx, OffsetDateTime::now_utc(), took));
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `2026-12-02T09:30:00.123Z`, in a stack buffer.
fn rfc3339_millis(t: OffsetDateTime) -> TimeText {
    let mut b = [0u8; 24];
    let year = t.year().clamp(0, 9999) as u32;
    let fields = [
        (0, year / 100, 2),
        (2, year % 100, 2),
        (5, u32::from(u8::from(t.month())), 2),
        (8, u32::from(t.day()), 2),
        (11, u32::from(t.hour()), 2),
        (14, u32::from(t.minute()), 2),
        (17, u32::from(t.second()), 2),
        (20, u32::from(t.millisecond()), 3),
    ];
    for (at, value, width) in fields {
        let mut v = value;
        for i in (0..width).rev() {
            b[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    for (at, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ] {
        b[at] = c;
    }
    TimeText(b)
}

/// A formatted time (ASCII).
struct TimeText([u8; 24]);

impl TimeText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `a=1&token=x&b` -> `a=1&token=REDACTED&b`.
pub fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(k)) => {
                out.push_str(k);
                out.push_str("=REDACTED");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// A URL with the secret parameters of its query redacted (its fragment dropped: it may carry
/// tokens too, and servers never see it anyway).
pub fn redact_url(url: &str) -> String {
    let url = url.split('#').next().unwrap_or("");
    match url.split_once('?') {
        Some((base, q)) => format!("{base}?{}", redact_query(q)),
        None => url.to_string(),
    }
}

/// `IP - - [02/Dec/2026:09:00:00 +0000] "GET /x?y HTTP/1.1" 200 123 "referer" "agent"`.
fn combined(ctx: &RequestCtx, now: OffsetDateTime) -> Vec<u8> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut out = String::with_capacity(256);
    let target = match ctx.path.as_ref().and_then(|p| p.query()) {
        Some(q) => format!("{}?{}", ctx.path(), redact_query(q)),
        None => ctx.path().to_string(),
    };
    let protocol = match ctx.protocol {
        Protocol::Http2 => "HTTP/2.0",
        Protocol::Http10 => "HTTP/1.0",
        Protocol::Http11 | Protocol::WebSocket => "HTTP/1.1",
    };
    let _ = write!(
        out,
        "{} - - [{:02}/{}/{}:{:02}:{:02}:{:02} +0000] \"{} {} {}\" {} {} \"",
        ctx.client_ip,
        now.day(),
        MONTHS[usize::from(u8::from(now.month())) - 1],
        now.year(),
        now.hour(),
        now.minute(),
        now.second(),
        ctx.method,
        escape(&target),
        protocol,
        ctx.status.map_or(0, |s| s.as_u16()),
        ctx.bytes_out,
    );
    let referer = ctx
        .referer
        .as_ref()
        .map_or("-".to_string(), |v| redact_url(&lossy(v.as_bytes())));
    out.push_str(&escape(&referer));
    out.push_str("\" \"");
    let agent = ctx
        .user_agent
        .as_ref()
        .map_or("-".to_string(), |v| lossy(v.as_bytes()));
    out.push_str(&escape(&agent));
    out.push_str("\"\n");
    out.into_bytes()
}

/// nginx's escaping for the combined format: `"`, `\` and control characters as `\xHH`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_queries_are_redacted() {
        assert_eq!(
            redact_query("page=2&access_token=s3cret&ID=abc&x"),
            "page=2&access_token=REDACTED&ID=REDACTED&x"
        );
        assert_eq!(
            redact_url("https://chat.example.com/login?code=abc&state=xyz&next=/x#token=t"),
            "https://chat.example.com/login?code=REDACTED&state=REDACTED&next=/x"
        );
        assert_eq!(escape("a\"b\\c\n"), "a\\x22b\\x5Cc\\x0A");
        let t = time::macros::datetime!(2026-12-02 09:05:07.043 UTC);
        assert_eq!(rfc3339_millis(t).as_str(), "2026-12-02T09:05:07.043Z");
    }
}
