//! Certificates from an ACME CA (RFC 8555), Let's Encrypt by default: the decision whether to
//! use one ([`decide`]), the state kept in the state dir ([`state`]), the challenge answers the
//! listeners give ([`challenges`]), when to renew ([`schedule`]), and the background task that
//! orders and renews ([`Manager`]).
//!
//! The listeners never wait for the CA: they serve the stored certificate, or the self-signed
//! stand-in until the first one is issued; each new certificate is swapped into the
//! [`CertStore`](super::CertStore) like a SIGHUP reload, without touching connections.

pub mod challenges;
pub mod client;
pub mod schedule;
pub mod state;

mod manager;

pub use challenges::Challenges;
pub use manager::{names, rfc3339, Manager, OnNew};

use std::net::IpAddr;

use crate::config::{spec, AcmeMode, CertSource, Settings};

/// Whether ACME runs, and why (for the log and `mm-edge check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// ACME runs.
    On(String),
    /// It does not.
    Off(String),
}

impl Decision {
    /// Whether ACME runs.
    pub fn is_on(&self) -> bool {
        matches!(self, Decision::On(_))
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::On(why) => write!(f, "on ({why})"),
            Decision::Off(why) => write!(f, "off ({why})"),
        }
    }
}

/// Decides from the settings: given certificate files always win; `on` and `off` are obeyed;
/// `auto` is on for a public DNS name.
pub fn decide(settings: &Settings) -> Decision {
    let host = &settings.site.host;
    if !settings.terminates_tls() {
        return Decision::Off("TLS is not terminated here".into());
    }
    if let CertSource::Files { .. } = settings.tls.cert {
        return Decision::Off(format!(
            "certificate files are given in {}",
            spec::TLS_CERT.env
        ));
    }
    match settings.tls.acme.mode {
        AcmeMode::Off => Decision::Off(format!("{}=off", spec::ACME.env)),
        AcmeMode::On => Decision::On(format!("{}=on, for {host}", spec::ACME.env)),
        AcmeMode::Auto if is_public_name(host) => Decision::On(format!(
            "{}=auto and {host} is a public DNS name",
            spec::ACME.env
        )),
        AcmeMode::Auto => Decision::Off(format!(
            "{}=auto and {host} is not a public DNS name: the self-signed certificate is served",
            spec::ACME.env
        )),
    }
}

/// Suffixes no public CA validates: special-use names (RFC 6761, 6762, 8375), the ones the
/// issue tracker of every ACME client sees in private setups, and the documentation domains
/// (RFC 2606), which users copy from examples.
const NOT_PUBLIC: [&str; 11] = [
    "localhost",
    "local",
    "internal",
    "lan",
    "home.arpa",
    "test",
    "example",
    "invalid",
    "example.com",
    "example.net",
    "example.org",
];

/// A name a public CA can validate: has a dot, is not an IP address, is not under a
/// special-use or documentation suffix.
pub fn is_public_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h.parse::<IpAddr>().is_ok() || h.starts_with('[') || !h.contains('.') {
        return false;
    }
    !NOT_PUBLIC
        .iter()
        .any(|s| h == *s || h.strip_suffix(s).is_some_and(|rest| rest.ends_with('.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_names() {
        for public in ["chat.mattermost-users.net", "mm.company.de", "a.b.co.uk."] {
            assert!(is_public_name(public), "{public}");
        }
        for private in [
            "localhost",
            "chat",
            "10.0.0.5",
            "::1",
            "[::1]",
            "mm.localhost",
            "chat.local",
            "mm.internal",
            "nas.lan",
            "mm.home.arpa",
            "mm.test",
            "x.example",
            "bad.invalid",
            "chat.example.com",
            "example.org",
            "CHAT.EXAMPLE.NET",
        ] {
            assert!(!is_public_name(private), "{private}");
        }
        assert!(is_public_name("mylocal.dev"), "a suffix match is per label");
    }
}
