//! The Mattermost server list: `http://host:port` URLs, at least one.

use http::uri::{Authority, Scheme};
use http::Uri;
use toml::Value as Toml;

use super::{list_from_toml, Kind};
use crate::config::parse;

/// One Mattermost server.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Mattermost server URLs, at least one.
#[derive(Debug)]
pub struct Servers;
impl Kind for Servers {
    type Out = Vec<UpstreamServer>;
    fn parse(text: &str) -> Result<Vec<UpstreamServer>, String> {
        servers(parse::list(text))
    }
    fn from_toml(value: Toml) -> Result<Vec<UpstreamServer>, String> {
        servers(list_from_toml(value, parse::list)?)
    }
}

fn servers(entries: Vec<String>) -> Result<Vec<UpstreamServer>, String> {
    if entries.is_empty() {
        return Err("expected at least one URL such as http://127.0.0.1:8065".into());
    }
    entries.iter().map(|e| upstream_server(e)).collect()
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

integer_kind!(
    /// A number of health checks in a row, above 0.
    Checks: std::num::NonZeroU32, "expected a whole number of health checks above 0"
);
