//! The answers to the CA's challenges while an order is open: HTTP-01 key authorizations by
//! token, TLS-ALPN-01 validation certificates by name. They live in memory and, so that any
//! replica sharing the state directory can answer a validation meant for the one that ordered,
//! under `acme/challenges/` too.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::state::State;
use crate::atomic_file::{self, Perms};

/// The URL path prefix of HTTP-01 answers.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

const PRIVATE: Perms = Perms {
    mode: 0o600,
    owner: None,
};

/// Longest token accepted (Let's Encrypt's are 43 characters).
const MAX_TOKEN: usize = 128;

/// Open challenges, shared by the listeners (which answer) and the order (which sets them).
#[derive(Debug)]
pub struct Challenges {
    dir: PathBuf,
    names: Vec<String>,
    http: RwLock<HashMap<String, String>>,
    tls: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    provider: Arc<CryptoProvider>,
}

/// Why a challenge answer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state dir refused it.
    #[error("cannot keep the challenge answer in {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The validation certificate could not be made.
    #[error("cannot make the TLS-ALPN-01 certificate: {0}")]
    Cert(String),
}

impl Challenges {
    /// Challenges for `names`, shared through `state`'s directory.
    pub fn new(state: &State, names: Vec<String>, provider: Arc<CryptoProvider>) -> Self {
        Self {
            dir: state.dir().join("challenges"),
            names,
            http: RwLock::default(),
            tls: RwLock::default(),
            provider,
        }
    }

    /// The key authorization for an HTTP-01 `token`, if a challenge for it is open here or
    /// in the shared state dir.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        if !is_token(token) {
            return None;
        }
        if let Some(answer) = self.http.read().get(token) {
            return Some(answer.clone());
        }
        let text = fs::read_to_string(self.dir.join(format!("http-01-{token}"))).ok()?;
        Some(text.trim().to_string())
    }

    /// The TLS-ALPN-01 validation certificate for `name` (one of the ordered names only), if
    /// a challenge is open here or in the shared state dir. The file read happens only on a
    /// handshake that offers `acme-tls/1` for one of the site's own names.
    pub fn tls_alpn_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = self.names.iter().find(|n| n.eq_ignore_ascii_case(name))?;
        if let Some(key) = self.tls.read().get(name) {
            return Some(key.clone());
        }
        let pem = fs::read(self.dir.join(format!("tls-alpn-01-{name}.pem"))).ok()?;
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let key = PrivateKeyDer::from_pem_slice(&pem).ok()?;
        self.certified(chain, key).ok()
    }

    /// Pairs a validation certificate with its key. Not `CertifiedKey::from_der`: its check
    /// that the two match parses the certificate with webpki, which refuses the critical
    /// acmeIdentifier extension RFC 8737 requires.
    fn certified(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<CertifiedKey>, rustls::Error> {
        let signer = self.provider.key_provider.load_private_key(key)?;
        Ok(Arc::new(CertifiedKey::new(chain, signer)))
    }

    /// Opens an HTTP-01 challenge.
    pub fn put_http(&self, token: &str, key_authorization: &str) -> Result<(), Error> {
        if !is_token(token) {
            return Err(Error::Cert(format!(
                "the CA sent an unusable token {token:?}"
            )));
        }
        self.share(&format!("http-01-{token}"), key_authorization.as_bytes())?;
        self.http
            .write()
            .insert(token.to_string(), key_authorization.to_string());
        Ok(())
    }

    /// Opens a TLS-ALPN-01 challenge for `name`: a self-signed certificate carrying the
    /// SHA-256 `digest` of the key authorization in its acmeIdentifier extension.
    pub fn put_tls_alpn(&self, name: &str, digest: &[u8]) -> Result<(), Error> {
        let cert_err = |e: rcgen::Error| Error::Cert(e.to_string());
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(cert_err)?;
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
        let key = rcgen::KeyPair::generate().map_err(cert_err)?;
        let cert = params.self_signed(&key).map_err(cert_err)?;
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        self.share(&format!("tls-alpn-01-{name}.pem"), pem.as_bytes())?;
        let certified = self
            .certified(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .map_err(|e| Error::Cert(e.to_string()))?;
        self.tls.write().insert(name.to_string(), certified);
        Ok(())
    }

    /// Closes every challenge this process opened.
    pub fn clear(&self) {
        for token in self.http.write().drain().map(|(t, _)| t) {
            let _ = fs::remove_file(self.dir.join(format!("http-01-{token}")));
        }
        for name in self.tls.write().drain().map(|(n, _)| n) {
            let _ = fs::remove_file(self.dir.join(format!("tls-alpn-01-{name}.pem")));
        }
    }

    fn share(&self, file: &str, content: &[u8]) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: self.dir.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io)?;
        atomic_file::write(&self.dir.join(file), content, PRIVATE, &mut |_| Ok(()))
            .map_err(|e| io(std::io::Error::new(e.source.kind(), e.to_string())))
    }
}

/// A token as RFC 8555 makes them: base64url characters only (never a path).
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges(dir: &std::path::Path) -> Challenges {
        Challenges::new(
            &State::new(dir),
            vec!["chat.example.net".into()],
            crate::tls::provider(),
        )
    }

    #[test]
    fn answers_are_shared_through_the_state_dir_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let (orderer, replica) = (challenges(dir.path()), challenges(dir.path()));
        orderer.put_http("tok_en-1", "tok_en-1.thumb").unwrap();
        orderer.put_tls_alpn("chat.example.net", &[7; 32]).unwrap();
        assert_eq!(
            replica.http_answer("tok_en-1").as_deref(),
            Some("tok_en-1.thumb")
        );
        assert!(replica.tls_alpn_cert("CHAT.example.net").is_some());
        assert!(replica.tls_alpn_cert("other.example.net").is_none());
        assert!(replica.http_answer("unknown").is_none());
        assert!(replica.http_answer("../../etc/passwd").is_none());
        orderer.clear();
        assert!(replica.http_answer("tok_en-1").is_none());
        assert!(replica.tls_alpn_cert("chat.example.net").is_none());
    }
}
