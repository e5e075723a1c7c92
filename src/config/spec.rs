//! The declaration of every setting: its environment variable, TOML key, default and meaning.
//!
//! This table is the single source of truth: the loader reads it, the CLI flags are generated
//! from it, every message that names a setting goes through it, and tests check README.md and
//! `config/mm-edge.toml` against it. Each setting is a named static so that code refers to it
//! by name (`spec::MAX_BODY`), never by spelling its environment variable.

/// One setting as users see it.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    /// Environment variable (the old docker-mattermost image's name where it had one).
    pub env: &'static str,
    /// Dotted TOML key, e.g. `site.host`; the CLI flag is `--site-host`.
    pub key: &'static str,
    /// Default as written in the README ("" = unset).
    pub default: &'static str,
    /// One line saying what it does.
    pub doc: &'static str,
}

impl Setting {
    /// The command-line flag for this setting (`rate_limit.per_sec` -> `rate-limit-per-sec`).
    pub fn flag(&self) -> String {
        self.key.replace(['.', '_'], "-")
    }

    /// Whether the value is a secret (`mm-edge check` prints it redacted).
    pub fn is_secret(&self) -> bool {
        self.key == ACME_EAB_HMAC_KEY.key || self.key == RATE_LIMIT_REDIS_PASSWORD.key
    }

    /// `value` as `mm-edge check` and error messages show it: a secret as `<redacted>`, a
    /// password inside the Redis URL (`redis://user:PASSWORD@host`, `?password=`) redacted.
    pub fn shown<'a>(&self, value: &'a str) -> std::borrow::Cow<'a, str> {
        if self.is_secret() && !value.is_empty() {
            "<redacted>".into()
        } else if self.key == RATE_LIMIT_REDIS.key {
            redact_url_password(value)
        } else {
            value.into()
        }
    }

    /// For messages about a setting that was not given, in all three spellings:
    /// `MM_EDGE_TLS_KEY is not set (nor tls.key, nor --tls-key)`.
    pub fn not_set(&self) -> String {
        format!(
            "{} is not set (nor {}, nor --{})",
            self.env,
            self.key,
            self.flag()
        )
    }
}

macro_rules! settings {
    ($($(#[$meta:meta])* $name:ident = $env:literal, $key:literal, $default:literal, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            $(#[$meta])*
            pub static $name: Setting = Setting { env: $env, key: $key, default: $default, doc: $doc };
        )*
        /// Every setting mm-edge knows, in the order of the README's reference table.
        pub static SETTINGS: &[&Setting] = &[$(&$name),*];
    };
}

settings! {
    HOST = "MATTERMOST_HOST", "site.host", "localhost",
        "Public host name: redirect target and self-signed certificate name.";
    SITE_URL = "MATTERMOST_SITE_URL", "site.url", "",
        "Public URL of Mattermost; empty = https://HOST (plus :PORT unless the HTTPS port is 443).";
    HTTPS = "MATTERMOST_HTTPS", "site.https", "true",
        "Users reach Mattermost over https; false = plain-HTTP mode (no TLS, no redirect).";
    TLS_MODE = "MM_EDGE_TLS", "tls.mode", "auto",
        "auto = terminate TLS here (given cert, else self-signed); off = a load balancer in front terminates TLS.";
    TLS_CERT = "MM_EDGE_TLS_CERT", "tls.cert", "",
        "PEM certificate chain file; empty = an ACME certificate (see MM_EDGE_ACME), else a self-signed one kept in the state dir.";
    TLS_KEY = "MM_EDGE_TLS_KEY", "tls.key", "",
        "PEM private key file (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1).";
    ACME = "MM_EDGE_ACME", "tls.acme", "auto",
        "on, off, or auto = on when no certificate files are given and the site host is a public DNS name: a trusted certificate from an ACME CA (Let's Encrypt), kept in the state dir and renewed by itself.";
    ACME_DIRECTORY = "MM_EDGE_ACME_DIRECTORY", "tls.acme_directory", "https://acme-v02.api.letsencrypt.org/directory",
        "The ACME CA's directory URL; letsencrypt and letsencrypt-staging are names for Let's Encrypt's.";
    ACME_EMAIL = "MM_EDGE_ACME_EMAIL", "tls.acme_email", "",
        "Contact e-mail of the ACME account (the CA's notices); optional.";
    ACME_CA_ROOTS = "MM_EDGE_ACME_CA_ROOTS", "tls.acme_ca_roots", "",
        "PEM file of the roots trusted for the ACME server's own HTTPS (a private CA such as step-ca); empty = the system's roots.";
    ACME_CHALLENGE = "MM_EDGE_ACME_CHALLENGE", "tls.acme_challenge", "auto",
        "tls-alpn-01 (answered on the HTTPS listener), http-01 (on the HTTP listener), or auto = whichever the CA offers, TLS-ALPN-01 first.";
    ACME_EAB_KID = "MM_EDGE_ACME_EAB_KID", "tls.acme_eab_kid", "",
        "External account binding key id, for CAs that require one (ZeroSSL, Google, step-ca).";
    ACME_EAB_HMAC_KEY = "MM_EDGE_ACME_EAB_HMAC_KEY", "tls.acme_eab_hmac_key", "",
        "External account binding HMAC key, base64url as the CA gives it (check prints it redacted).";
    HSTS_MAX_AGE = "MM_EDGE_HSTS_MAX_AGE", "tls.hsts_max_age", "63072000",
        "Strict-Transport-Security max-age in seconds on HTTPS responses; 0 = no header.";
    STATE_DIR = "MM_EDGE_STATE_DIR", "state_dir", "/var/lib/mm-edge",
        "Directory for state kept across restarts: the ACME account and certificates, the self-signed certificate; replicas may share it.";
    HTTPS_LISTEN = "MM_EDGE_HTTPS_LISTEN", "listen.https", "[::]:443",
        "TLS listener address; [::] takes IPv6 and IPv4 (the default falls back to 0.0.0.0 on a host without IPv6).";
    HTTP_LISTEN = "MM_EDGE_HTTP_LISTEN", "listen.http", "[::]:80",
        "Plain listener: redirects to HTTPS, or proxies when TLS is off or https is false; [::] as for the TLS listener.";
    PROXY_PROTOCOL = "MM_EDGE_PROXY_PROTOCOL", "listen.proxy_protocol", "off",
        "on = every connection to the HTTPS and HTTP listeners must begin with a PROXY protocol v1 or v2 header (AWS NLB, HAProxy in TCP mode...) from one of MM_EDGE_TRUSTED_PROXIES; its source address is the client. Connections without one are closed.";
    UPSTREAMS = "MM_EDGE_UPSTREAMS", "upstream.servers", "http://127.0.0.1:8065",
        "Mattermost server URLs, space- or comma-separated; with several, each request goes to the healthy one with the fewest requests and WebSocket tunnels open.";
    UPSTREAM_TIMEOUT = "MM_EDGE_UPSTREAM_TIMEOUT", "upstream.timeout", "600s",
        "How long to wait for Mattermost's response headers before answering 504.";
    UPSTREAM_CONNECT_TIMEOUT = "MM_EDGE_UPSTREAM_CONNECT_TIMEOUT", "upstream.connect_timeout", "10s",
        "How long to wait for a TCP connection to Mattermost before answering 502.";
    UPSTREAM_IDLE_TIMEOUT = "MM_EDGE_UPSTREAM_IDLE_TIMEOUT", "upstream.idle_timeout", "50s",
        "How long an idle keep-alive connection to Mattermost stays in the pool (closed within 5 s after); keep it below Mattermost's ServiceSettings.IdleTimeout (60 s), or Mattermost closes connections as the edge reuses them.";
    UPSTREAM_FAIL_TIMEOUT = "MM_EDGE_UPSTREAM_FAIL_TIMEOUT", "upstream.fail_timeout", "10s",
        "With several servers: how long one that refused a connection is skipped (its request got 502).";
    UPSTREAM_MAX_CONNECTIONS = "MM_EDGE_UPSTREAM_MAX_CONNECTIONS", "upstream.max_connections", "4096",
        "Most connections to each Mattermost server (WebSocket tunnels included); a request beyond waits up to the connect timeout, then gets 503 with Retry-After.";
    UPSTREAM_HEALTH_INTERVAL = "MM_EDGE_UPSTREAM_HEALTH_INTERVAL", "upstream.health_interval", "5s",
        "Each Mattermost server is checked with GET /api/v4/system/ping this often (a check has as long to answer); 0 = no active checks, only refused connections mark a server down.";
    UPSTREAM_HEALTH_FAILS = "MM_EDGE_UPSTREAM_HEALTH_FAILS", "upstream.health_fails", "2",
        "Failed health checks in a row that mark a server down: it gets no new requests (when all are down, all are still tried).";
    UPSTREAM_HEALTH_PASSES = "MM_EDGE_UPSTREAM_HEALTH_PASSES", "upstream.health_passes", "2",
        "Passed health checks in a row that bring a server that was down back.";
    MAX_BODY = "MM_EDGE_MAX_BODY", "proxy.max_body", "110M",
        "Largest request body (K, M, G suffixes, powers of 1024); larger ones get 413. Default fits a 100 MiB upload.";
    WORKERS = "MM_EDGE_WORKERS", "server.workers", "0",
        "Runtime worker threads; 0 = one per CPU.";
    CLIENT_HEADER_TIMEOUT = "MM_EDGE_CLIENT_HEADER_TIMEOUT", "server.client_header_timeout", "60s",
        "Time for a client to finish the TLS handshake, and (HTTP/1.1) to send a request head, the wait for the next request on a kept-alive connection included.";
    KEEPALIVE_TIMEOUT = "MM_EDGE_KEEPALIVE_TIMEOUT", "server.keepalive_timeout", "75s",
        "A client connection idle this long is closed gracefully (HTTP/1.1: no traffic either way; HTTP/2: no request open, started or finished; pings do not count).";
    MAX_CONNECTIONS = "MM_EDGE_MAX_CONNECTIONS", "server.max_connections", "auto",
        "Most client connections at once, HTTPS and HTTP listeners together (more wait in the kernel's queue; the metrics listener has 16 of its own); auto = half the open-file limit, which mm-edge raises to its hard limit at start, leaving the rest for Mattermost connections.";
    SEND_TIMEOUT = "MM_EDGE_SEND_TIMEOUT", "server.send_timeout", "60s",
        "A client that takes no response byte for this long (it stopped reading) loses the stream (HTTP/2) or the connection (HTTP/1.1, WebSocket), and its Mattermost connection is released.";
    WEBSOCKET_IDLE_TIMEOUT = "MM_EDGE_WEBSOCKET_IDLE_TIMEOUT", "server.websocket_idle_timeout", "24h",
        "A WebSocket tunnel with no traffic either way for this long is closed (Mattermost pings far more often).";
    SHUTDOWN_GRACE = "MM_EDGE_SHUTDOWN_GRACE", "server.shutdown_grace", "30s",
        "On SIGTERM/SIGINT, how long in-flight requests may take to finish.";
    LOG = "MM_EDGE_LOG", "log.level", "info,rustls=error",
        "Log filter (tracing EnvFilter syntax), e.g. info or mm_edge=debug; rustls's per-connection warnings about misbehaving clients are off by default.";
    ACCESS_LOG = "MM_EDGE_ACCESS_LOG", "log.access", "stdout",
        "Access log, one line per request and per WebSocket session: stdout, off, or a file path (created 0640, reopened on SIGHUP for logrotate).";
    ACCESS_LOG_FORMAT = "MM_EDGE_ACCESS_LOG_FORMAT", "log.access_format", "json",
        "json (one object per line) or combined (Apache/nginx combined format, for GoAccess and fail2ban).";
    METRICS_LISTEN = "MM_EDGE_METRICS_LISTEN", "metrics.listen", "",
        "Address of the Prometheus metrics listener (GET /metrics), e.g. 127.0.0.1:9100; empty = off. Never on the public listeners.";
    RATE_LIMIT = "MATTERMOST_ENABLE_RATE_LIMIT", "rate_limit.enable", "true",
        "Rate limit requests at the edge; false = no limiting and no X-RateLimit headers.";
    RATE_LIMIT_QPS = "MATTERMOST_RATE_LIMIT_QPS", "rate_limit.per_sec", "10",
        "Sustained requests per second per key.";
    RATE_LIMIT_BURST = "MATTERMOST_RATE_LIMIT_BURST", "rate_limit.max_burst", "100",
        "Mattermost's MaxBurst: requests allowed at once above the rate (limit reported = burst + 1).";
    RATE_LIMIT_SESSIONS = "MATTERMOST_RATE_LIMIT_SESSIONS", "rate_limit.sessions", "10000",
        "Most keys tracked at once (Mattermost's MemoryStoreSize); the least recently used is evicted.";
    RATE_LIMIT_BY_IP = "MATTERMOST_RATE_LIMIT_BY_IP", "rate_limit.by_ip", "true",
        "The client IP is part of the rate-limit key.";
    RATE_LIMIT_HEADERS = "MATTERMOST_RATE_LIMIT_HEADERS", "rate_limit.headers", "",
        "Space-separated header names whose lower-cased values are part of the rate-limit key.";
    RATE_LIMIT_IPV6_PREFIX = "MM_EDGE_RATE_LIMIT_IPV6_PREFIX", "rate_limit.ipv6_prefix", "64",
        "IPv6 clients are limited by this prefix length (a /64 is one client's network; both limits); 128 = by full address, as Mattermost does. Logs and X-Forwarded-For keep the full address.";
    RATE_LIMIT_REDIS = "MM_EDGE_RATE_LIMIT_REDIS", "rate_limit.redis", "",
        "Redis shared by several edges (redis://[:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS, redis+unix:///PATH): the rate and login limits count across all of them; empty = in this process only.";
    RATE_LIMIT_REDIS_PASSWORD = "MM_EDGE_RATE_LIMIT_REDIS_PASSWORD", "rate_limit.redis_password", "",
        "Redis password, when it is not in the URL (check prints it redacted).";
    RATE_LIMIT_REDIS_TIMEOUT = "MM_EDGE_RATE_LIMIT_REDIS_TIMEOUT", "rate_limit.redis_timeout", "50ms",
        "Redis slower than this (or unreachable): each edge decides with its own in-process limits, and goes back to the shared ones when Redis answers again.";
    LOGIN_LIMIT = "MM_EDGE_LOGIN_LIMIT", "login_limit.rate", "10/min",
        "Failed sign-ins per client IP, refilled at this rate (N/s, N/min or N/h), apart from the rate limit and on even when it is off; off = no login limit.";
    LOGIN_LIMIT_BURST = "MM_EDGE_LOGIN_LIMIT_BURST", "login_limit.burst", "10",
        "Failed sign-ins a fresh client may make in a row before the next sign-in attempt gets 429; successful sign-ins never count.";
    LOGIN_LIMIT_SESSIONS = "MM_EDGE_LOGIN_LIMIT_SESSIONS", "login_limit.sessions", "10000",
        "Most client IPs the login limit tracks at once; the least recently used is forgotten.";
    TRUSTED_PROXIES = "MM_EDGE_TRUSTED_PROXIES", "client_ip.trusted_proxies", "",
        "CIDRs of load balancers in front of mm-edge whose X-Forwarded-For / X-Real-IP are believed.";
    CORS_DOMAINS = "MATTERMOST_CORS_DOMAINS", "cors.domains", "",
        "Space-separated allowed origins; * = all; one * wildcard inside an entry (https://*.example.com). Empty = no CORS handling.";
    CORS_EXPOSED_HEADERS = "MATTERMOST_CORS_EXPOSED_HEADERS", "cors.exposed_headers", "",
        "Space-separated headers sent as Access-Control-Expose-Headers.";
    CORS_ALLOW_CREDENTIALS = "MATTERMOST_CORS_ALLOW_CREDENTIALS", "cors.allow_credentials", "false",
        "Send Access-Control-Allow-Credentials: true to allowed origins.";
    MATTERMOST_CONFIG = "MM_EDGE_MATTERMOST_CONFIG", "mattermost.config_file", "",
        "Mattermost config.json to update at startup; empty = none.";
    MATTERMOST_ENV_FILE = "MM_EDGE_MATTERMOST_ENV_FILE", "mattermost.env_file", "",
        "Env file of MM_* overrides to write at startup (config in the database, compose env_file); empty = none.";
}

/// The variable naming the TOML file (the `--config` flag's environment form).
pub const CONFIG_FILE_ENV: &str = "MM_EDGE_CONFIG";

/// The variable naming mm-edge's env file (the `--env-file` flag's environment form).
pub const ENV_FILE_ENV: &str = "MM_EDGE_ENV_FILE";

/// A URL with the password of its user info (`scheme://user:PASSWORD@`) and of a `password=`
/// or `pass=` query parameter replaced by `<redacted>`.
fn redact_url_password(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = format!("{scheme}://");
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            match user_info.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:<redacted>@")),
                None => out.push_str(&format!("{user_info}@")),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    out.push_str(path);
    if !query.is_empty() {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k == "password" || k == "pass" => format!("{k}=<redacted>"),
                _ => p.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    if out == url {
        url.into()
    } else {
        out.into()
    }
}

/// Looks a setting up by its TOML key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().copied().find(|s| s.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_passwords_are_redacted_wherever_they_are() {
        let shown = |v| RATE_LIMIT_REDIS.shown(v).into_owned();
        assert_eq!(shown("redis://redis:6379/0"), "redis://redis:6379/0");
        assert_eq!(
            shown("redis://:s3cret@redis:6379"),
            "redis://:<redacted>@redis:6379"
        );
        assert_eq!(
            shown("rediss://edge:p@ss:w@rd@redis.example/1"),
            "rediss://edge:<redacted>@redis.example/1"
        );
        assert_eq!(shown("redis://user@redis"), "redis://user@redis");
        assert_eq!(
            shown("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=<redacted>"
        );
        assert_eq!(shown(""), "");
        assert_eq!(RATE_LIMIT_REDIS_PASSWORD.shown("s3cret"), "<redacted>");
        assert_eq!(RATE_LIMIT_REDIS_PASSWORD.shown(""), "");
        assert_eq!(RATE_LIMIT_QPS.shown("10"), "10");
    }
}
