//! Settings: one typed struct built once from defaults, a TOML file, the environment and the CLI.
//!
//! Every setting is declared once in [`spec`]; its value kind ([`value`]) parses it the same way
//! in every layer; [`Settings::load`] reads the TOML file with serde into typed section structs
//! (unknown keys and wrong types are errors with line and column), lets the environment and the
//! flags override it ([`layers`]), and builds one typed section per TOML table ([`section`]).
//! Messages name a setting the way the user gave it ([`Settings::describe`]).

pub mod cli;
pub mod env_file;
pub mod layers;
pub mod parse;
pub mod section;
pub mod spec;
pub mod value;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use layers::{Layers, Raw, Source};
pub use section::{
    Acme, CertSource, ClientIp, Cors, Listen, Log, LoginLimit, Mattermost, Metrics, Proxy,
    RateLimit, Redis, Server, Site, Tls, Upstream, UPLOAD_OVERHEAD,
};
pub use spec::{Setting, SETTINGS};
pub use value::{
    AccessLogFormat, AccessLogTarget, AcmeChallenge, AcmeMode, Rate, TlsMode, UpstreamServer,
};

use layers::{FileText, Resolver};

/// A configuration that cannot be used; the message names the setting, the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or contradicts another one.
    #[error("{0}")]
    Invalid(String),
}

/// The effective settings, one typed section per TOML table.
#[derive(Debug, Clone)]
pub struct Settings {
    /// State directory.
    pub state_dir: PathBuf,
    /// Public face.
    pub site: Site,
    /// TLS termination.
    pub tls: Tls,
    /// Listeners.
    pub listen: Listen,
    /// Mattermost servers.
    pub upstream: Upstream,
    /// Request forwarding.
    pub proxy: Proxy,
    /// Client connections.
    pub server: Server,
    /// Logging.
    pub log: Log,
    /// The metrics listener.
    pub metrics: Metrics,
    /// Rate limiting.
    pub rate_limit: RateLimit,
    /// The limit on failed sign-ins.
    pub login_limit: LoginLimit,
    /// Which forwarding headers are believed.
    pub client_ip: ClientIp,
    /// CORS.
    pub cors: Cors,
    /// Mattermost config targets.
    pub mattermost: Mattermost,
    layers: Layers,
}

impl Settings {
    /// Layers and validates everything: `file` is the TOML file (if any), `env` looks up an
    /// environment variable, `cli` holds the per-setting flags given.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        cli: &[(&'static Setting, String)],
    ) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let parsed: section::File = match (file, &text) {
            (Some(path), Some(text)) => toml::from_str(text)
                .map_err(|e| ConfigError::Invalid(file_error(path, text, &e)))?,
            _ => section::File::default(),
        };
        let file_text = match (file, &text) {
            (Some(path), Some(text)) => Some(FileText { path, text }),
            _ => None,
        };
        let mut r = Resolver::new(env, cli, file_text);
        let f = parsed;
        let state_dir = r.take(&spec::STATE_DIR, f.state_dir)?;
        let listen = Listen::build(&mut r, f.listen)?;
        let tls = Tls::build(&mut r, f.tls)?;
        let site = Site::build(&mut r, f.site, tls.mode, listen)?;
        let settings = Self {
            state_dir,
            site,
            tls,
            listen,
            upstream: Upstream::build(&mut r, f.upstream)?,
            proxy: Proxy::build(&mut r, f.proxy)?,
            server: Server::build(&mut r, f.server)?,
            log: Log::build(&mut r, f.log)?,
            metrics: Metrics::build(&mut r, f.metrics)?,
            rate_limit: RateLimit::build(&mut r, f.rate_limit)?,
            login_limit: LoginLimit::build(&mut r, f.login_limit)?,
            client_ip: ClientIp::build(&mut r, f.client_ip)?,
            cors: Cors::build(&mut r, f.cors)?,
            mattermost: Mattermost::build(&mut r, f.mattermost)?,
            layers: Layers::default(),
        };
        debug_assert!(r.unresolved().is_empty(), "not read: {:?}", r.unresolved());
        let settings = Self {
            layers: r.layers,
            ..settings
        };
        settings.check_proxy_protocol()?;
        Ok(settings)
    }

    /// PROXY headers are believed only from the listed load balancers: without any, every
    /// connection would be refused.
    fn check_proxy_protocol(&self) -> Result<(), ConfigError> {
        if !self.listen.proxy_protocol || !self.client_ip.trusted_proxies.is_empty() {
            return Ok(());
        }
        Err(self.error(
            &spec::PROXY_PROTOCOL,
            format!(
                "needs the load balancers that send the PROXY header, but {} lists none; \
                 set {} to their addresses (e.g. {}=10.0.0.0/8), or turn {} off",
                self.describe(&spec::TRUSTED_PROXIES),
                spec::TRUSTED_PROXIES.env,
                spec::TRUSTED_PROXIES.env,
                spec::PROXY_PROTOCOL.env,
            ),
        ))
    }

    /// The winning value of every setting and where it came from (for `mm-edge check`).
    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    /// A setting as the user gave it, for messages: `MM_EDGE_HTTP_LISTEN=0.0.0.0:80`,
    /// `listen.http = "0.0.0.0:80" in /etc/mm-edge.toml line 7`, `--listen-http 0.0.0.0:80`, or
    /// `MM_EDGE_HTTP_LISTEN (default "0.0.0.0:80")`.
    pub fn describe(&self, setting: &'static Setting) -> String {
        self.layers.get(setting).to_string()
    }

    /// An error about a setting's value, naming it the way the user gave it.
    pub fn error(&self, setting: &'static Setting, problem: impl std::fmt::Display) -> ConfigError {
        self.layers.get(setting).error(problem)
    }

    /// Whether the TLS listener runs.
    pub fn terminates_tls(&self) -> bool {
        self.site.https && self.tls.mode == TlsMode::Auto
    }

    /// Re-derives a derived site URL after binding, when a listener asked for port 0.
    pub fn set_bound_ports(&mut self, https: SocketAddr, http: SocketAddr) {
        self.listen.https = https;
        self.listen.http = http;
        self.site.rederive(self.tls.mode, self.listen);
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Invalid(format!(
            "{} / --config {}: cannot read the file: {e}; give the path of a readable TOML file",
            spec::CONFIG_FILE_ENV,
            path.display()
        ))
    })
}

/// A TOML error as `FILE line L, column C: key: problem`, the line quoted below.
fn file_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return format!("{}: not valid TOML: {message}", path.display());
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    // A key on a `[header]` line is a section name: no section in front of it.
    let section = if before[line_start..].trim_start().starts_with('[') {
        None
    } else {
        key_section(&before[..line_start])
    };
    let key = key_at(text, line_start, section, message);
    let what = if let Some(field) = unknown_field(message) {
        let full = match section {
            Some(section) => format!("{section}.{field}"),
            None => field.to_string(),
        };
        format!(
            "unknown key `{full}`; remove it or use one of the keys listed in config/mm-edge.toml"
        )
    } else if let Some(key) = key {
        format!("{key}: {message}")
    } else {
        format!("not valid TOML: {message}")
    };
    format!(
        "{} line {line}, column {column}: {what}\n    {line_text}",
        path.display()
    )
}

/// `per_second` from serde's "unknown field `per_second`, expected one of ...".
fn unknown_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
}

/// The dotted key of the `key = value` line starting at `line_start`, for errors about its value.
fn key_at(text: &str, line_start: usize, section: Option<&str>, message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        return None;
    }
    let line = text.get(line_start..)?.lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_string(),
    })
}

/// The `[section]` header in force at the end of `before`.
fn key_section(before: &str) -> Option<&str> {
    before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
        })
}
