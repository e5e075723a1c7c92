//! `[tls]`: whether TLS is terminated here and with which certificate.

use std::path::PathBuf;

use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::{OptionalPath, Seconds, TlsMode};
use super::super::ConfigError;
use super::F;

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

/// `[tls]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    mode: F<TlsMode>,
    cert: F<OptionalPath>,
    key: F<OptionalPath>,
    hsts_max_age: F<Seconds>,
}

impl Tls {
    /// Builds the section: a certificate and its key come together or not at all.
    pub(in crate::config) fn build(r: &mut Resolver<'_>, file: File) -> Result<Self, ConfigError> {
        let mode = r.take(&spec::TLS_MODE, file.mode)?;
        let cert = r.take(&spec::TLS_CERT, file.cert)?;
        let key = r.take(&spec::TLS_KEY, file.key)?;
        let hsts_max_age = r.take(&spec::HSTS_MAX_AGE, file.hsts_max_age)?;
        let cert = match (cert, key) {
            (Some(cert), Some(key)) => CertSource::Files { cert, key },
            (None, None) => CertSource::SelfSigned,
            (Some(_), None) => return Err(unpaired(r, &spec::TLS_KEY, &spec::TLS_CERT)),
            (None, Some(_)) => return Err(unpaired(r, &spec::TLS_CERT, &spec::TLS_KEY)),
        };
        Ok(Self {
            mode,
            cert,
            hsts_max_age,
        })
    }
}

fn unpaired(
    r: &Resolver<'_>,
    missing: &'static spec::Setting,
    given: &'static spec::Setting,
) -> ConfigError {
    ConfigError::Invalid(format!(
        "{} but {} is: give both the certificate and its private key, or neither for a self-signed certificate",
        missing.not_set(),
        r.layers.get(given)
    ))
}
