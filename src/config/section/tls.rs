//! `[tls]`: whether TLS is terminated here and with which certificate.

use std::path::PathBuf;

use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::{
    decode_hmac, AcmeChallenge, AcmeDirectory, AcmeMode, Email, OptionalPath, Seconds, Text,
    TlsMode,
};
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
    /// Certificates from an ACME CA.
    pub acme: Acme,
}

/// The ACME settings (whether ACME runs is decided by `tls::acme::decide`).
#[derive(Debug, Clone)]
pub struct Acme {
    /// On, off or auto.
    pub mode: AcmeMode,
    /// The directory URL.
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// Roots trusted for the ACME server's HTTPS; `None` = the system's.
    pub ca_roots: Option<PathBuf>,
    /// The challenge to use.
    pub challenge: AcmeChallenge,
    /// External account binding: key id and (decoded) HMAC key.
    pub eab: Option<(String, Secret)>,
}

/// A secret's bytes; `Debug` shows only their number.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0.len())
    }
}

/// `[tls]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    mode: F<TlsMode>,
    cert: F<OptionalPath>,
    key: F<OptionalPath>,
    hsts_max_age: F<Seconds>,
    acme: F<AcmeMode>,
    acme_directory: F<AcmeDirectory>,
    acme_email: F<Email>,
    acme_ca_roots: F<OptionalPath>,
    acme_challenge: F<AcmeChallenge>,
    acme_eab_kid: F<Text>,
    acme_eab_hmac_key: F<Text>,
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
        let acme = Acme {
            mode: r.take(&spec::ACME, file.acme)?,
            directory: r.take(&spec::ACME_DIRECTORY, file.acme_directory)?,
            email: r.take(&spec::ACME_EMAIL, file.acme_email)?,
            ca_roots: r.take(&spec::ACME_CA_ROOTS, file.acme_ca_roots)?,
            challenge: r.take(&spec::ACME_CHALLENGE, file.acme_challenge)?,
            eab: None,
        };
        let kid = r.take(&spec::ACME_EAB_KID, file.acme_eab_kid)?;
        let hmac = r.take(&spec::ACME_EAB_HMAC_KEY, file.acme_eab_hmac_key)?;
        let eab = match (kid.is_empty(), hmac.is_empty()) {
            (true, true) => None,
            (false, false) => match decode_hmac(&hmac) {
                Some(key) => Some((kid, Secret(key))),
                None => {
                    return Err(ConfigError::Invalid(format!(
                        "{}: the value (not shown, it is a secret) is not base64url; paste the HMAC key exactly as the CA shows it",
                        spec::ACME_EAB_HMAC_KEY.env
                    )))
                }
            },
            (true, false) => {
                return Err(unpaired_eab(&spec::ACME_EAB_KID, &spec::ACME_EAB_HMAC_KEY))
            }
            (false, true) => {
                return Err(unpaired_eab(&spec::ACME_EAB_HMAC_KEY, &spec::ACME_EAB_KID))
            }
        };
        if acme.mode == AcmeMode::On && matches!(cert, CertSource::Files { .. }) {
            return Err(ConfigError::Invalid(format!(
                "{} asks for ACME certificates but {} gives certificate files: unset one of them (given files always win with {}=auto)",
                r.layers.get(&spec::ACME),
                r.layers.get(&spec::TLS_CERT),
                spec::ACME.env
            )));
        }
        Ok(Self {
            mode,
            cert,
            hsts_max_age,
            acme: Acme { eab, ..acme },
        })
    }
}

fn unpaired_eab(missing: &'static spec::Setting, given: &'static spec::Setting) -> ConfigError {
    ConfigError::Invalid(format!(
        "{} but {} is set: external account binding needs both the key id and the HMAC key from the CA",
        missing.not_set(),
        given.env
    ))
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
