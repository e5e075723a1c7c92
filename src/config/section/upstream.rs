//! `[upstream]`: the Mattermost servers and how to talk to them.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::{Checks, Connections, Dur, PositiveDur, Servers, UpstreamServer};
use super::super::ConfigError;
use super::F;

/// Mattermost servers and how to talk to them.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Servers; the least busy healthy one takes each request.
    pub servers: Vec<UpstreamServer>,
    /// Wait for response headers.
    pub timeout: Duration,
    /// Wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Idle pooled connection lifetime.
    pub idle_timeout: Duration,
    /// How long a server that refused a connection is skipped.
    pub fail_timeout: Duration,
    /// Most connections to each server.
    pub max_connections: usize,
    /// Active health check period; zero = no active checks.
    pub health_interval: Duration,
    /// Failed checks in a row that mark a server down.
    pub health_fails: NonZeroU32,
    /// Passed checks in a row that bring it back.
    pub health_passes: NonZeroU32,
}

/// `[upstream]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    servers: F<Servers>,
    timeout: F<PositiveDur>,
    connect_timeout: F<PositiveDur>,
    idle_timeout: F<PositiveDur>,
    fail_timeout: F<Dur>,
    max_connections: F<Connections>,
    health_interval: F<Dur>,
    health_fails: F<Checks>,
    health_passes: F<Checks>,
}

impl Upstream {
    /// Builds the section.
    pub(in crate::config) fn build(r: &mut Resolver<'_>, file: File) -> Result<Self, ConfigError> {
        Ok(Self {
            servers: r.take(&spec::UPSTREAMS, file.servers)?,
            timeout: r.take(&spec::UPSTREAM_TIMEOUT, file.timeout)?,
            connect_timeout: r.take(&spec::UPSTREAM_CONNECT_TIMEOUT, file.connect_timeout)?,
            idle_timeout: r.take(&spec::UPSTREAM_IDLE_TIMEOUT, file.idle_timeout)?,
            fail_timeout: r.take(&spec::UPSTREAM_FAIL_TIMEOUT, file.fail_timeout)?,
            max_connections: r
                .take(&spec::UPSTREAM_MAX_CONNECTIONS, file.max_connections)?
                .get(),
            health_interval: r.take(&spec::UPSTREAM_HEALTH_INTERVAL, file.health_interval)?,
            health_fails: r.take(&spec::UPSTREAM_HEALTH_FAILS, file.health_fails)?,
            health_passes: r.take(&spec::UPSTREAM_HEALTH_PASSES, file.health_passes)?,
        })
    }
}
