//! The logging step's sink: each finished request (or WebSocket session) is counted in the
//! metrics and written as one access-log line, JSON or Apache/nginx combined. Secrets never
//! reach the log: no `Authorization` or `Cookie` is logged, and the query parameters Mattermost
//! uses for secrets (in the request and in its `Referer`) are replaced by `REDACTED`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use std::time::SystemTime;

use time::OffsetDateTime;

use super::ctx::{Login, Protocol, RequestCtx};
use super::logging::Sink;
use crate::answer::Outcome;
use crate::config::AccessLogFormat;
use crate::json_key;
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
}

impl Observer {
    /// Writes lines to `log` in `format`; counts into `metrics` when on.
    pub fn new(log: AccessLog, format: AccessLogFormat, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            log,
            format,
            metrics,
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
        if ctx.login == Login::Failed {
            m.login_failures.inc();
        }
        let kind = match ctx.outcome {
            Outcome::RateLimited => {
                m.rate_limited.inc();
                None
            }
            Outcome::LoginLimited => {
                m.login_limited.inc();
                None
            }
            Outcome::UpstreamRefused => Some("refused"),
            Outcome::UpstreamError | Outcome::UpstreamBodyError => Some("error"),
            Outcome::UpstreamTimeout => Some("timeout"),
            Outcome::UpstreamBusy => Some("busy"),
            _ => None,
        };
        if let (Some(kind), Some(name)) = (kind, &ctx.upstream) {
            m.upstream_error(name, kind);
        }
    }

    /// One access-log line for `ctx`, with its newline.
    pub fn line(&self, ctx: &RequestCtx, now: SystemTime, took: Duration) -> Vec<u8> {
        match self.format {
            AccessLogFormat::Json => self.json(ctx, now, took),
            AccessLogFormat::Combined => combined(ctx, now),
        }
    }

    fn json(&self, ctx: &RequestCtx, now: SystemTime, took: Duration) -> Vec<u8> {
        let upstream = ctx.upstream.as_deref();
        let len = |v: &Option<http::HeaderValue>| v.as_ref().map_or(0, |v| v.len());
        // The fixed part of a line is about 320 bytes: one allocation for the whole line.
        let mut out = Vec::with_capacity(
            320 + ctx.path.as_ref().map_or(0, |p| p.as_str().len())
                + upstream.map_or(0, |u| u.len())
                + len(&ctx.user_agent)
                + len(&ctx.referer),
        );
        let mut o = JsonObject::new(&mut out);
        o.verbatim(json_key!("time"), &rfc3339_millis(now));
        o.ip(json_key!("client_ip"), ctx.client_ip);
        o.plain(json_key!("method"), ctx.method.as_str());
        o.plain(json_key!("path"), ctx.path());
        if let Some(q) = ctx.path.as_ref().and_then(|p| p.query()) {
            o.plain(json_key!("query"), &redact_query(q));
        }
        o.verbatim(json_key!("protocol"), ctx.protocol.as_str().as_bytes());
        o.uint(
            json_key!("status"),
            ctx.status.map_or(0, |s| u64::from(s.as_u16())),
        );
        o.uint(json_key!("bytes_in"), ctx.bytes_in());
        o.uint(json_key!("bytes_out"), ctx.bytes_out);
        o.millis(json_key!("duration_ms"), micros(took));
        if let Some(name) = upstream {
            o.plain(json_key!("upstream"), name);
        }
        if let Some(us) = ctx.upstream_us {
            o.millis(json_key!("upstream_ms"), u64::from(us));
        }
        if let Some(id) = &ctx.request_id {
            o.text(json_key!("request_id"), id.as_bytes());
        }
        o.verbatim(json_key!("outcome"), ctx.outcome.as_str().as_bytes());
        match ctx.login {
            Login::Failed => o.verbatim(json_key!("sign_in"), b"failed"),
            Login::Passed => o.verbatim(json_key!("sign_in"), b"passed"),
            Login::NotSignIn | Login::Pending(_) => {}
        }
        if let Some(ua) = &ctx.user_agent {
            o.text(json_key!("user_agent"), ua.as_bytes());
        }
        if let Some(r) = &ctx.referer {
            o.plain(json_key!("referer"), &redact_url(&lossy(r.as_bytes())));
        }
        if let Some(tls) = ctx.tls {
            o.verbatim(json_key!("tls"), tls.as_bytes());
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
            self.log.write(self.line(ctx, SystemTime::now(), took));
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The wall clock's current second, formatted once per second per thread: formatting a date
/// costs more than the rest of a log line.
#[derive(Clone, Copy)]
struct Second {
    unix: i64,
    /// `2026-12-02T09:30:00.` (RFC 3339; the milliseconds and `Z` follow).
    rfc3339: [u8; 20],
    /// `02/Dec/2026:09:30:00 +0000` (the combined format's time).
    clf: [u8; 26],
}

thread_local! {
    static SECOND: std::cell::RefCell<Second> = const {
        std::cell::RefCell::new(Second {
            unix: i64::MIN,
            rfc3339: [0; 20],
            clf: [0; 26],
        })
    };
}

impl Second {
    fn of(unix: i64) -> Self {
        const MONTHS: [&[u8; 3]; 12] = [
            b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
            b"Dec",
        ];
        let t = OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let year = t.year().clamp(0, 9999) as u32;
        let month = u8::from(t.month());
        let mut rfc3339 = *b"0000-00-00T00:00:00.";
        let mut clf = *b"00/Mon/0000:00:00:00 +0000";
        let digits = |b: &mut [u8], at: usize, width: usize, mut v: u32| {
            for i in (0..width).rev() {
                b[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        for (at, width, v) in [
            (0, 4, year),
            (5, 2, u32::from(month)),
            (8, 2, u32::from(t.day())),
            (11, 2, u32::from(t.hour())),
            (14, 2, u32::from(t.minute())),
            (17, 2, u32::from(t.second())),
        ] {
            digits(&mut rfc3339, at, width, v);
        }
        for (at, width, v) in [
            (0, 2, u32::from(t.day())),
            (7, 4, year),
            (12, 2, u32::from(t.hour())),
            (15, 2, u32::from(t.minute())),
            (18, 2, u32::from(t.second())),
        ] {
            digits(&mut clf, at, width, v);
        }
        clf[3..6].copy_from_slice(MONTHS[usize::from(month.clamp(1, 12)) - 1]);
        Self { unix, rfc3339, clf }
    }

    /// Runs `f` on the second `unix`, from this thread's cache when it is the same second as the
    /// last line's.
    fn with<T>(unix: i64, f: impl FnOnce(&Second) -> T) -> T {
        SECOND.with_borrow_mut(|s| {
            if s.unix != unix {
                *s = Self::of(unix);
            }
            f(s)
        })
    }
}

/// `now` as seconds since the epoch and milliseconds.
fn split(now: SystemTime) -> (i64, u32) {
    match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_millis(),
        ),
        Err(_) => (0, 0),
    }
}

/// `2026-12-02T09:30:00.123Z`, in a stack buffer.
fn rfc3339_millis(now: SystemTime) -> [u8; 24] {
    let (unix, ms) = split(now);
    let mut b = [0u8; 24];
    Second::with(unix, |s| b[..20].copy_from_slice(&s.rfc3339));
    b[20] = b'0' + (ms / 100 % 10) as u8;
    b[21] = b'0' + (ms / 10 % 10) as u8;
    b[22] = b'0' + (ms % 10) as u8;
    b[23] = b'Z';
    b
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
fn combined(ctx: &RequestCtx, now: SystemTime) -> Vec<u8> {
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
    let clf = Second::with(split(now).0, |s| s.clf);
    let _ = write!(
        out,
        "{} - - [{}] \"{} {} {}\" {} {} \"",
        ctx.client_ip,
        std::str::from_utf8(&clf).unwrap_or(""),
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
        let t = SystemTime::from(time::macros::datetime!(2026-12-02 09:05:07.043 UTC));
        assert_eq!(&rfc3339_millis(t), b"2026-12-02T09:05:07.043Z");
        // The same second again comes from the cache; the next one does not.
        let later = t + Duration::from_millis(900);
        assert_eq!(&rfc3339_millis(later), b"2026-12-02T09:05:07.943Z");
        let next = later + Duration::from_millis(100);
        assert_eq!(&rfc3339_millis(next), b"2026-12-02T09:05:08.043Z");
        let clf = Second::with(split(next).0, |s| s.clf);
        assert_eq!(&clf, b"02/Dec/2026:09:05:08 +0000");
    }
}
