//! The ACME account: the HTTPS client that talks to the CA (the system's roots, or the roots
//! the settings name), and the account itself, restored from the state dir or registered.

use std::path::Path;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, AccountBuilder, ExternalAccountKey, NewAccount};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::state::State;
use crate::config::Acme as Settings;

/// How the edge reaches the CA.
pub struct Connector {
    /// Roots from the settings (`None`: the system's).
    roots: Option<RootCertStore>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("custom_roots", &self.roots.as_ref().map(RootCertStore::len))
            .finish()
    }
}

impl Connector {
    /// Reads the roots file, if the settings name one; the error says what is wrong with it.
    pub fn new(ca_roots: Option<&Path>) -> Result<Self, String> {
        let Some(path) = ca_roots else {
            return Ok(Self { roots: None });
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read PEM certificates from it ({e})"))?;
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err("holds no usable certificate; give a PEM file of root certificates".into());
        }
        Ok(Self { roots: Some(roots) })
    }

    fn builder(&self) -> Result<AccountBuilder, instant_acme::Error> {
        let Some(roots) = &self.roots else {
            return Account::builder();
        };
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Ok(Account::builder_with_http(Box::new(
            Client::builder(TokioExecutor::new()).build(https),
        )))
    }

    /// The account for the settings' directory: the stored one, else a new one (kept).
    pub async fn account(
        &self,
        settings: &Settings,
        state: &State,
    ) -> Result<Account, instant_acme::Error> {
        if let Some(credentials) = state.account(&settings.directory) {
            return self.builder()?.from_credentials(credentials).await;
        }
        let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = settings
            .eab
            .as_ref()
            .map(|(kid, hmac)| ExternalAccountKey::new(kid.clone(), &hmac.0));
        let (account, credentials) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory.clone(),
                eab.as_ref(),
            )
            .await?;
        state
            .save_account(&settings.directory, credentials)
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
        Ok(account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roots_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roots.pem");
        std::fs::write(&file, "nothing here\n").unwrap();
        assert!(Connector::new(Some(&file))
            .unwrap_err()
            .contains("no usable certificate"));
        assert!(Connector::new(Some(&dir.path().join("missing.pem"))).is_err());
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        std::fs::write(&file, ca.cert.pem()).unwrap();
        assert!(Connector::new(Some(&file)).is_ok());
    }
}
