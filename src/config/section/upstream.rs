//! `[upstream]`: the Mattermost servers and how to talk to them.

use std::time::Duration;

use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::{Connections, Dur, PositiveDur, Servers, UpstreamServer};
use super::super::ConfigError;
use super::F;

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
    /// Most connections to each server.
    pub max_connections: usize,
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
        })
    }
}
