//! Settings: one typed struct built once from defaults, a TOML file, the environment and the CLI.
//!
//! Every setting is declared once in [`spec::SETTINGS`]; [`Settings::load`] layers the raw values
//! ([`layers`]) and validates them here, naming the setting the way the user wrote it.

pub mod cli;
pub mod layers;
pub mod parse;
pub mod spec;

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, Uri};
use ipnet::IpNet;

pub use layers::{Layers, Raw, Source};
pub use spec::{Setting, SETTINGS};

/// A configuration that cannot be used; the message names the setting, the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or contradicts another one.
    #[error("{0}")]
    Invalid(String),
}

/// Whether mm-edge terminates TLS itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Terminate TLS here, with the given certificate or a self-signed one.
    Auto,
    /// A load balancer in front terminates TLS; mm-edge serves plain HTTP.
    Off,
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// PEM files given by the user.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generated once and kept in the state dir.
    SelfSigned,
}

/// The public face of the site.
#[derive(Debug, Clone)]
pub struct Site {
    /// Public host name.
    pub host: String,
    /// Public URL without a trailing slash, e.g. `https://chat.example.com`.
    pub url: String,
    /// Scheme + authority of `url`, the redirect target's prefix.
    pub origin: String,
    /// Whether `url` was given (false: derived from host and ports).
    pub url_given: bool,
    /// Users reach Mattermost over https.
    pub https: bool,
}

/// TLS termination.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Terminate here or not.
    pub mode: TlsMode,
    /// Certificate source (when terminating).
    pub cert: CertSource,
    /// Strict-Transport-Security max-age; 0 = header off.
    pub hsts_max_age: u64,
}

/// Listener addresses.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// TLS listener.
    pub https: SocketAddr,
    /// Plain listener.
    pub http: SocketAddr,
}

/// One Mattermost server.
#[derive(Debug, Clone)]
pub struct UpstreamServer {
    /// `http`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
}

impl std::fmt::Display for UpstreamServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// Mattermost servers and how to talk to them.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Servers, used round-robin.
    pub servers: Vec<UpstreamServer>,
    /// Wait for response headers.
    pub timeout: Duration,
    /// Wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Idle pooled connection lifetime.
    pub idle_timeout: Duration,
    /// How long a server that refused a connection is skipped.
    pub fail_timeout: Duration,
}

/// Client connection handling.
#[derive(Debug, Clone)]
pub struct Server {
    /// Runtime worker threads (resolved: never 0).
    pub workers: usize,
    /// TLS handshake and HTTP/1.1 request-head timeout.
    pub client_header_timeout: Duration,
    /// Idle client connection timeout.
    pub keepalive_timeout: Duration,
    /// Idle WebSocket tunnel timeout.
    pub websocket_idle_timeout: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
}

/// Rate limiting, with Mattermost's semantics.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Limiting on or off.
    pub enable: bool,
    /// Sustained rate per key.
    pub per_sec: NonZeroU32,
    /// Mattermost's MaxBurst.
    pub max_burst: u32,
    /// Most keys held (LRU beyond).
    pub sessions: NonZeroUsize,
    /// Client IP is part of the key.
    pub by_ip: bool,
    /// Headers whose values are part of the key (lower-case names).
    pub headers: Vec<HeaderName>,
}

/// CORS, with Mattermost's semantics.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Allowed origins (empty = CORS off).
    pub domains: Vec<String>,
    /// Access-Control-Expose-Headers.
    pub exposed_headers: Vec<String>,
    /// Access-Control-Allow-Credentials.
    pub allow_credentials: bool,
}

/// Where Mattermost's configuration is written.
#[derive(Debug, Clone, Default)]
pub struct MattermostTargets {
    /// config.json to merge into.
    pub config_file: Option<PathBuf>,
    /// Env file of MM_* overrides.
    pub env_file: Option<PathBuf>,
}

/// The effective settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Public face.
    pub site: Site,
    /// TLS termination.
    pub tls: Tls,
    /// State directory.
    pub state_dir: PathBuf,
    /// Listeners.
    pub listen: Listen,
    /// Mattermost servers.
    pub upstream: Upstream,
    /// Largest request body.
    pub max_body: u64,
    /// Client connections.
    pub server: Server,
    /// Log filter.
    pub log_level: String,
    /// Rate limiting.
    pub rate_limit: RateLimit,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// CORS.
    pub cors: Cors,
    /// Mattermost config targets.
    pub mattermost: MattermostTargets,
}

impl Settings {
    /// Layers and validates everything.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        cli: &[(&'static Setting, String)],
    ) -> Result<(Self, Layers), ConfigError> {
        let layers = Layers::load(file, env, cli)?;
        let settings = Self::from_layers(&layers)?;
        Ok((settings, layers))
    }

    /// Validates layered raw values into typed settings.
    pub fn from_layers(l: &Layers) -> Result<Self, ConfigError> {
        let https = get(l, "site.https", parse::bool)?;
        let mode = get(l, "tls.mode", |s| {
            match s.trim().to_ascii_lowercase().as_str() {
                "auto" | "on" => Ok(TlsMode::Auto),
                "off" => Ok(TlsMode::Off),
                _ => Err("expected auto or off".to_string()),
            }
        })?;
        let listen = Listen {
            https: get(l, "listen.https", socket_addr)?,
            http: get(l, "listen.http", socket_addr)?,
        };
        let host_raw = l.get("site.host");
        let host = host_raw.value.trim().to_string();
        if host.is_empty() || host.contains(['/', ' ', '@', '?', '#']) {
            return Err(host_raw.error(
                "expected a host name such as chat.example.com (no scheme, path or spaces)",
            ));
        }
        let cert = cert_source(l)?;
        let tls = Tls {
            mode,
            cert,
            hsts_max_age: get(l, "tls.hsts_max_age", |s| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| "expected a number of seconds, 0 to turn HSTS off".to_string())
            })?,
        };
        let site = site(l, host, https, mode, listen)?;
        let servers_raw = l.get("upstream.servers");
        let mut servers = Vec::new();
        for entry in parse::list(&servers_raw.value) {
            servers.push(upstream_server(&entry).map_err(|e| servers_raw.error(e))?);
        }
        if servers.is_empty() {
            return Err(
                servers_raw.error("expected at least one URL such as http://127.0.0.1:8065")
            );
        }
        let upstream = Upstream {
            servers,
            timeout: get(l, "upstream.timeout", parse::positive_duration)?,
            connect_timeout: get(l, "upstream.connect_timeout", parse::positive_duration)?,
            idle_timeout: get(l, "upstream.idle_timeout", parse::positive_duration)?,
            fail_timeout: get(l, "upstream.fail_timeout", parse::duration)?,
        };
        let workers = get(l, "server.workers", |s| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| "expected a number of threads, 0 = one per CPU".to_string())
        })?;
        let workers = if workers == 0 {
            std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
        } else {
            workers
        };
        let server = Server {
            workers,
            client_header_timeout: get(
                l,
                "server.client_header_timeout",
                parse::positive_duration,
            )?,
            keepalive_timeout: get(l, "server.keepalive_timeout", parse::positive_duration)?,
            websocket_idle_timeout: get(
                l,
                "server.websocket_idle_timeout",
                parse::positive_duration,
            )?,
            shutdown_grace: get(l, "server.shutdown_grace", parse::duration)?,
        };
        let log_level = get(l, "log.level", |s| {
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| s.to_string())
                .map_err(|e| format!("not a log filter ({e}); use e.g. info or mm_edge=debug"))
        })?;
        let rate_limit = RateLimit {
            enable: get(l, "rate_limit.enable", parse::bool)?,
            per_sec: get(l, "rate_limit.per_sec", |s| {
                s.trim()
                    .parse::<NonZeroU32>()
                    .map_err(|_| "expected a whole number of requests per second above 0".into())
            })?,
            max_burst: get(l, "rate_limit.max_burst", |s| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| "expected a whole number of requests (0 or more)".into())
            })?,
            sessions: get(l, "rate_limit.sessions", |s| {
                s.trim()
                    .parse::<NonZeroUsize>()
                    .map_err(|_| "expected a whole number of sessions above 0".into())
            })?,
            by_ip: get(l, "rate_limit.by_ip", parse::bool)?,
            headers: get(l, "rate_limit.headers", header_names)?,
        };
        let trusted_proxies = get(
            l,
            "client_ip.trusted_proxies",
            crate::edge::client_ip::parse_trusted_proxies,
        )?;
        let cors = Cors {
            domains: parse::words(&l.get("cors.domains").value),
            exposed_headers: parse::words(&l.get("cors.exposed_headers").value),
            allow_credentials: get(l, "cors.allow_credentials", parse::bool)?,
        };
        let mattermost = MattermostTargets {
            config_file: optional_path(l, "mattermost.config_file"),
            env_file: optional_path(l, "mattermost.env_file"),
        };
        let state_raw = l.get("state_dir");
        if state_raw.value.trim().is_empty() {
            return Err(state_raw.error("expected a directory path such as /var/lib/mm-edge"));
        }
        Ok(Self {
            site,
            tls,
            state_dir: PathBuf::from(state_raw.value.trim()),
            listen,
            upstream,
            max_body: get(l, "proxy.max_body", parse::size)?,
            server,
            log_level,
            rate_limit,
            trusted_proxies,
            cors,
            mattermost,
        })
    }

    /// Whether the TLS listener runs.
    pub fn terminates_tls(&self) -> bool {
        self.site.https && self.tls.mode == TlsMode::Auto
    }

    /// Re-derives a derived site URL after binding, when a listener asked for port 0.
    pub fn set_bound_ports(&mut self, https: SocketAddr, http: SocketAddr) {
        self.listen.https = https;
        self.listen.http = http;
        if !self.site.url_given {
            let (url, origin) =
                derived_url(&self.site.host, self.site.https, self.tls.mode, self.listen);
            self.site.url = url;
            self.site.origin = origin;
        }
    }
}

fn get<T>(
    l: &Layers,
    key: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let raw = l.get(key);
    parse(&raw.value).map_err(|e| raw.error(e))
}

fn optional_path(l: &Layers, key: &str) -> Option<PathBuf> {
    let v = l.get(key).value.trim();
    (!v.is_empty()).then(|| PathBuf::from(v))
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected IP:PORT, e.g. 0.0.0.0:443 or [::]:443".to_string())
}

fn cert_source(l: &Layers) -> Result<CertSource, ConfigError> {
    let cert = optional_path(l, "tls.cert");
    let key = optional_path(l, "tls.key");
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(CertSource::Files { cert, key }),
        (None, None) => Ok(CertSource::SelfSigned),
        (Some(_), None) => Err(ConfigError::Invalid(
            "MM_EDGE_TLS_KEY is not set but MM_EDGE_TLS_CERT is: give both the certificate and its private key, or neither for a self-signed certificate".into(),
        )),
        (None, Some(_)) => Err(ConfigError::Invalid(
            "MM_EDGE_TLS_CERT is not set but MM_EDGE_TLS_KEY is: give both the certificate and its private key, or neither for a self-signed certificate".into(),
        )),
    }
}

fn site(
    l: &Layers,
    host: String,
    https: bool,
    mode: TlsMode,
    listen: Listen,
) -> Result<Site, ConfigError> {
    let raw = l.get("site.url");
    let given = raw.value.trim().trim_end_matches('/');
    if given.is_empty() {
        let (url, origin) = derived_url(&host, https, mode, listen);
        return Ok(Site {
            host,
            url,
            origin,
            url_given: false,
            https,
        });
    }
    let uri: Uri = given
        .parse()
        .map_err(|_| raw.error("expected a URL such as https://chat.example.com"))?;
    let scheme = uri.scheme_str().unwrap_or("");
    if scheme != "https" && scheme != "http" {
        return Err(
            raw.error("expected an http:// or https:// URL such as https://chat.example.com")
        );
    }
    if https && scheme != "https" {
        return Err(raw.error(
            "MATTERMOST_HTTPS is true, so the site URL must start with https:// (or set MATTERMOST_HTTPS=false)",
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(raw.error("expected a URL with a host, such as https://chat.example.com"));
    };
    if uri.query().is_some() || authority.as_str().contains('@') {
        return Err(raw.error("a site URL has no query string or user name"));
    }
    Ok(Site {
        host,
        url: given.to_string(),
        origin: format!("{scheme}://{authority}"),
        url_given: true,
        https,
    })
}

fn derived_url(host: &str, https: bool, mode: TlsMode, listen: Listen) -> (String, String) {
    let host = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_string(),
    };
    let origin = match (https, mode) {
        (true, TlsMode::Auto) if listen.https.port() != 443 => {
            format!("https://{host}:{}", listen.https.port())
        }
        // TLS terminated here on 443, or by a load balancer (on 443 as far as we know).
        (true, _) => format!("https://{host}"),
        (false, _) if listen.http.port() != 80 => format!("http://{host}:{}", listen.http.port()),
        (false, _) => format!("http://{host}"),
    };
    (origin.clone(), origin)
}

fn upstream_server(entry: &str) -> Result<UpstreamServer, String> {
    let uri: Uri = entry
        .parse()
        .map_err(|_| format!("`{entry}` is not a URL; expected e.g. http://mattermost:8065"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{entry}`: only http:// upstreams are supported (Mattermost listens on plain HTTP behind the edge)"
            ))
        }
        _ => return Err(format!("`{entry}` needs a scheme: e.g. http://mattermost:8065")),
    }
    let Some(authority) = uri.authority().cloned() else {
        return Err(format!(
            "`{entry}` has no host; expected e.g. http://mattermost:8065"
        ));
    };
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(format!(
            "`{entry}`: an upstream URL has no path; expected e.g. http://mattermost:8065"
        ));
    }
    Ok(UpstreamServer {
        scheme: Scheme::HTTP,
        authority,
    })
}

fn header_names(s: &str) -> Result<Vec<HeaderName>, String> {
    parse::words(s)
        .into_iter()
        .map(|w| {
            HeaderName::from_bytes(w.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("`{w}` is not a valid header name"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(None, &|k| map.get(k).cloned(), &[]).map(|(s, _)| s)
    }

    fn err(env: &[(&str, &str)]) -> String {
        match load(env) {
            Ok(_) => panic!("expected an error for {env:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_load() {
        let s = load(&[]).expect("defaults are valid");
        assert_eq!(s.site.url, "https://localhost");
        assert_eq!(s.listen.https.port(), 443);
        assert_eq!(s.max_body, 110 << 20);
        assert!(s.max_body > 104_857_600, "fits Mattermost's MaxFileSize");
        assert_eq!(s.upstream.servers[0].to_string(), "http://127.0.0.1:8065");
        assert!(s.rate_limit.enable);
        assert!(s.terminates_tls());
    }

    #[test]
    fn derived_site_url_carries_port() {
        let s = load(&[
            ("MATTERMOST_HOST", "chat.example.com"),
            ("MM_EDGE_HTTPS_LISTEN", "[::]:8443"),
        ])
        .expect("valid");
        assert_eq!(s.site.url, "https://chat.example.com:8443");
        assert_eq!(s.listen.https, "[::]:8443".parse().expect("addr"));
        let s = load(&[
            ("MATTERMOST_HTTPS", "false"),
            ("MM_EDGE_HTTP_LISTEN", "0.0.0.0:8080"),
        ])
        .expect("valid");
        assert_eq!(s.site.url, "http://localhost:8080");
    }

    #[test]
    fn errors_name_the_variable_and_value() {
        let e = err(&[("MATTERMOST_RATE_LIMIT_QPS", "abc")]);
        assert!(e.starts_with("MATTERMOST_RATE_LIMIT_QPS=abc: "), "{e}");
        let e = err(&[("MATTERMOST_RATE_LIMIT_QPS", "0")]);
        assert!(e.contains("MATTERMOST_RATE_LIMIT_QPS=0"), "{e}");
        let e = err(&[("MATTERMOST_RATE_LIMIT_SESSIONS", "0")]);
        assert!(e.contains("MATTERMOST_RATE_LIMIT_SESSIONS=0"), "{e}");
        let e = err(&[("MATTERMOST_RATE_LIMIT_HEADERS", "X-Ok Bad:Name")]);
        assert!(e.contains("Bad:Name"), "{e}");
        let e = err(&[("MM_EDGE_TRUSTED_PROXIES", "10.0.0.0/8 nope")]);
        assert!(
            e.contains("MM_EDGE_TRUSTED_PROXIES") && e.contains("nope"),
            "{e}"
        );
        let e = err(&[("MM_EDGE_UPSTREAMS", "https://mm:8065")]);
        assert!(
            e.contains("MM_EDGE_UPSTREAMS") && e.contains("only http://"),
            "{e}"
        );
        let e = err(&[("MM_EDGE_HTTPS_LISTEN", "443")]);
        assert!(e.contains("MM_EDGE_HTTPS_LISTEN=443"), "{e}");
        let e = err(&[("MM_EDGE_MAX_BODY", "lots")]);
        assert!(e.contains("MM_EDGE_MAX_BODY=lots"), "{e}");
        let e = err(&[("MATTERMOST_SITE_URL", "http://chat.example.com")]);
        assert!(e.contains("must start with https://"), "{e}");
        let e = err(&[("MM_EDGE_TLS_CERT", "/x.pem")]);
        assert!(e.contains("MM_EDGE_TLS_KEY"), "{e}");
    }

    #[test]
    fn layers_override_in_order() {
        let dir = std::env::temp_dir().join(format!("mm-edge-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("a.toml");
        std::fs::write(&file, "[site]\nhost = \"file.example\"\n[rate_limit]\nper_sec = 5\nheaders = [\"X-A\", \"X-B\"]\n")
            .expect("write");
        let env: HashMap<String, String> =
            [("MATTERMOST_RATE_LIMIT_QPS".to_string(), "7".to_string())].into();
        let flag = spec::by_key("site.host").expect("declared");
        let (s, _) = Settings::load(
            Some(&file),
            &|k| env.get(k).cloned(),
            &[(flag, "cli.example".into())],
        )
        .expect("valid");
        assert_eq!(s.site.host, "cli.example");
        assert_eq!(s.rate_limit.per_sec.get(), 7);
        assert_eq!(s.rate_limit.headers.len(), 2);
        std::fs::write(&file, "[site]\nhots = \"typo\"\n").expect("write");
        let e = Settings::load(Some(&file), &|_| None, &[])
            .map(|_| ())
            .expect_err("unknown key");
        assert!(e.to_string().contains("unknown key `site.hots`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_key_is_used_by_the_loader() {
        // from_layers panics on an undeclared key; defaults load touches every declared one.
        let layers = Layers::load(None, &|_| None, &[]).expect("defaults");
        assert_eq!(layers.iter().count(), SETTINGS.len());
    }
}
