//! `[site]`: the public face of the site, and the site URL derived from it when not given.

use std::net::IpAddr;

use http::Uri;
use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::{Bool, Host, Text, TlsMode};
use super::super::ConfigError;
use super::{Listen, F};

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

/// `[site]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    host: F<Host>,
    url: F<Text>,
    https: F<Bool>,
}

impl Site {
    /// Builds the section; the URL needs the TLS mode and the listeners.
    pub(in crate::config) fn build(
        r: &mut Resolver<'_>,
        file: File,
        mode: TlsMode,
        listen: Listen,
    ) -> Result<Self, ConfigError> {
        let host = r.take(&spec::HOST, file.host)?;
        let https = r.take(&spec::HTTPS, file.https)?;
        let given = r.take(&spec::SITE_URL, file.url)?;
        let given = given.trim_end_matches('/');
        if given.is_empty() {
            let (url, origin) = derived_url(&host, https, mode, listen);
            return Ok(Self {
                host,
                url,
                origin,
                url_given: false,
                https,
            });
        }
        let raw = r.layers.get(&spec::SITE_URL);
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
            let https_raw = r.layers.get(&spec::HTTPS);
            return Err(raw.error(format!(
                "{https_raw} says users reach the site over https, so the site URL must start with https:// (or set {} to false)",
                spec::HTTPS.env
            )));
        }
        let Some(authority) = uri.authority() else {
            return Err(raw.error("expected a URL with a host, such as https://chat.example.com"));
        };
        if uri.query().is_some() || authority.as_str().contains('@') {
            return Err(raw.error("a site URL has no query string or user name"));
        }
        Ok(Self {
            host,
            url: given.to_string(),
            origin: format!("{scheme}://{authority}"),
            url_given: true,
            https,
        })
    }

    /// Re-derives a derived URL once the listeners are bound (a port 0 became a real port).
    pub fn rederive(&mut self, mode: TlsMode, listen: Listen) {
        if !self.url_given {
            let (url, origin) = derived_url(&self.host, self.https, mode, listen);
            self.url = url;
            self.origin = origin;
        }
    }
}

/// `https://HOST` (plus `:PORT` unless the port is the scheme's default).
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
