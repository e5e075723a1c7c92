//! The typed sections of the settings, one builder each, and the shape of the TOML file.

mod listen;
mod mattermost;
mod policy;
mod server;
mod site;
mod tls;
mod upstream;

use serde::Deserialize;
use toml::Spanned;

use super::value::{Dir, V};

pub use listen::Listen;
pub use mattermost::Mattermost;
pub use policy::{ClientIp, Cors, LoginLimit, RateLimit, Redis};
pub use server::{Log, Metrics, Proxy, Server, UPLOAD_OVERHEAD};
pub use site::Site;
pub use tls::{Acme, CertSource, Tls};
pub use upstream::Upstream;

/// A setting's value in the TOML file, checked by its kind, with where it was written.
pub(super) type F<K> = Option<Spanned<V<K>>>;

/// The TOML file: one table per section; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct File {
    pub state_dir: F<Dir>,
    pub site: site::File,
    pub tls: tls::File,
    pub listen: listen::File,
    pub upstream: upstream::File,
    pub proxy: server::ProxyFile,
    pub server: server::File,
    pub log: server::LogFile,
    pub metrics: server::MetricsFile,
    pub rate_limit: policy::RateLimitFile,
    pub login_limit: policy::LoginLimitFile,
    pub client_ip: policy::ClientIpFile,
    pub cors: policy::CorsFile,
    pub mattermost: mattermost::File,
}
