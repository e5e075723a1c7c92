//! `[server]`, `[proxy]` and `[log]`: how client connections and requests are handled.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;

use super::super::layers::{Resolver, Source};
use super::super::spec;
use std::net::SocketAddr;

use super::super::value::{
    AccessLogFormat, AccessLogTarget, AutoCount, Dur, LogFilter, OptionalAddr, PositiveDur, Size,
    Threads,
};
use super::super::ConfigError;
use super::F;

/// Client connection handling.
#[derive(Debug, Clone)]
pub struct Server {
    /// Runtime worker threads (resolved: never 0).
    pub workers: usize,
    /// Most client connections at once (`None`: derived from the open-file limit at start).
    pub max_connections: Option<usize>,
    /// TLS handshake and HTTP/1.1 request-head timeout.
    pub client_header_timeout: Duration,
    /// Idle client connection timeout.
    pub keepalive_timeout: Duration,
    /// How long a client may take no response byte.
    pub send_timeout: Duration,
    /// Idle WebSocket tunnel timeout.
    pub websocket_idle_timeout: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
}

/// `[server]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    workers: F<Threads>,
    max_connections: F<AutoCount>,
    client_header_timeout: F<PositiveDur>,
    keepalive_timeout: F<PositiveDur>,
    send_timeout: F<PositiveDur>,
    websocket_idle_timeout: F<PositiveDur>,
    shutdown_grace: F<Dur>,
}

impl Server {
    /// Builds the section; `workers = 0` becomes the number of CPUs.
    pub(in crate::config) fn build(r: &mut Resolver<'_>, file: File) -> Result<Self, ConfigError> {
        let workers = match r.take(&spec::WORKERS, file.workers)? {
            0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            n => n,
        };
        Ok(Self {
            workers,
            max_connections: r.take(&spec::MAX_CONNECTIONS, file.max_connections)?,
            client_header_timeout: r
                .take(&spec::CLIENT_HEADER_TIMEOUT, file.client_header_timeout)?,
            keepalive_timeout: r.take(&spec::KEEPALIVE_TIMEOUT, file.keepalive_timeout)?,
            send_timeout: r.take(&spec::SEND_TIMEOUT, file.send_timeout)?,
            websocket_idle_timeout: r
                .take(&spec::WEBSOCKET_IDLE_TIMEOUT, file.websocket_idle_timeout)?,
            shutdown_grace: r.take(&spec::SHUTDOWN_GRACE, file.shutdown_grace)?,
        })
    }
}

/// Request forwarding.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Largest request body, bytes.
    pub max_body: u64,
    /// Whether `max_body` was given (file, environment or flag) rather than defaulted.
    pub max_body_given: bool,
}

/// Room for multipart framing on top of Mattermost's `FileSettings.MaxFileSize`.
pub const UPLOAD_OVERHEAD: u64 = 10 << 20;

/// `[proxy]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyFile {
    max_body: F<Size>,
}

impl Proxy {
    /// Builds the section.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: ProxyFile,
    ) -> Result<Self, ConfigError> {
        let max_body = r.take(&spec::MAX_BODY, file.max_body)?;
        Ok(Self {
            max_body,
            max_body_given: r.layers.get(&spec::MAX_BODY).source != Source::Default,
        })
    }

    /// Follows Mattermost's upload limit (`max_file_size` bytes): a body limit not given becomes
    /// that size plus [`UPLOAD_OVERHEAD`], never below the default. A given one below that stays
    /// as it is; the size it would need is returned, for the warning.
    pub fn follow_upload_limit(&mut self, max_file_size: u64) -> Option<u64> {
        let needed = max_file_size.saturating_add(UPLOAD_OVERHEAD);
        if !self.max_body_given {
            self.max_body = self.max_body.max(needed);
            return None;
        }
        (self.max_body < needed).then_some(needed)
    }
}

/// Logging.
#[derive(Debug, Clone)]
pub struct Log {
    /// The log filter (tracing EnvFilter syntax).
    pub level: String,
    /// Where the access log goes.
    pub access: AccessLogTarget,
    /// Its line format.
    pub access_format: AccessLogFormat,
}

/// `[log]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    level: F<LogFilter>,
    access: F<AccessLogTarget>,
    access_format: F<AccessLogFormat>,
}

impl Log {
    /// Builds the section.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: LogFile,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            level: r.take(&spec::LOG, file.level)?,
            access: r.take(&spec::ACCESS_LOG, file.access)?,
            access_format: r.take(&spec::ACCESS_LOG_FORMAT, file.access_format)?,
        })
    }
}

/// The metrics listener.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Its address (`None`: off).
    pub listen: Option<SocketAddr>,
}

/// `[metrics]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsFile {
    listen: F<OptionalAddr>,
}

impl Metrics {
    /// Builds the section.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: MetricsFile,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: r.take(&spec::METRICS_LISTEN, file.listen)?,
        })
    }
}
