//! `[listen]`: the listener addresses, and whether connections arrive with a PROXY header.

use std::net::SocketAddr;

use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::{Addr, OnOff};
use super::super::ConfigError;
use super::F;

/// Listener addresses.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// TLS listener.
    pub https: SocketAddr,
    /// Plain listener.
    pub http: SocketAddr,
    /// Every connection to the HTTPS and HTTP listeners begins with a PROXY protocol header.
    pub proxy_protocol: bool,
}

/// `[listen]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    https: F<Addr>,
    http: F<Addr>,
    proxy_protocol: F<OnOff>,
}

impl Listen {
    /// Builds the section.
    pub(in crate::config) fn build(r: &mut Resolver<'_>, file: File) -> Result<Self, ConfigError> {
        Ok(Self {
            https: r.take(&spec::HTTPS_LISTEN, file.https)?,
            http: r.take(&spec::HTTP_LISTEN, file.http)?,
            proxy_protocol: r.take(&spec::PROXY_PROTOCOL, file.proxy_protocol)?,
        })
    }
}
