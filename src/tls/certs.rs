//! Loading a certificate chain and private key from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// A file and how to name it in messages (the setting that gave it, as the user wrote it).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    path: &'a Path,
    name: &'a str,
}

impl<'a> Named<'a> {
    /// `path`, called `name` in messages.
    pub fn new(path: &'a Path, name: &'a str) -> Self {
        Self { path, name }
    }
}

/// Reads a PEM chain and key (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1) and checks they match.
pub fn load(
    cert: Named<'_>,
    key: Named<'_>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key.path).map_err(|e| TlsError::Key {
        setting: key.name.to_string(),
        problem: pem_problem(
            &e,
            "a PEM private key (BEGIN PRIVATE KEY / RSA PRIVATE KEY / EC PRIVATE KEY)",
        ),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key_der, provider).map_err(|e| TlsError::Key {
            setting: key.name.to_string(),
            problem: format!(
                "does not fit the certificate in {}: {e}",
                cert.path.display()
            ),
        })?;
    Ok(Arc::new(certified))
}

fn read_chain(file: Named<'_>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |problem: String| TlsError::Cert {
        setting: file.name.to_string(),
        problem,
    };
    let iter = CertificateDer::pem_file_iter(file.path)
        .map_err(|e| err(pem_problem(&e, "a PEM certificate chain")))?;
    let chain = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_problem(&e, "a PEM certificate chain")))?;
    if chain.is_empty() {
        return Err(err(
            "holds no BEGIN CERTIFICATE block; expected a PEM certificate chain".into(),
        ));
    }
    Ok(chain)
}

fn pem_problem(e: &rustls::pki_types::pem::Error, expected: &str) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => format!("cannot be read ({io})"),
        rustls::pki_types::pem::Error::NoItemsFound => {
            format!("holds no usable item; expected {expected}")
        }
        other => format!("is not {expected} ({other:?})"),
    }
}
