//! TLS termination: the rustls server configuration, the certificate store behind its resolver,
//! the certificate sources ([`source`]: files, ACME ([`acme`]) or self-signed), and reloading.
//!
//! The resolver serves whatever the [`CertStore`] holds; [`CertStore::reload`] swaps in a new
//! certificate from the source without touching established connections. What triggers a reload
//! (SIGHUP today) is the caller's: [`reload_service`] runs it as a background task.

pub mod acme;
pub mod certs;
pub mod self_signed;
pub mod source;

use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::sync::watch;
use tracing::{error, info};

use crate::config::{spec, Settings};
use crate::lifecycle::Shutdown;
pub use source::{Origin, Source};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is missing or unusable.
    #[error("{setting}: the file {problem}; point it at a readable PEM certificate chain")]
    Cert {
        /// The setting naming the file, as the user gave it.
        setting: String,
        /// What is wrong.
        problem: String,
    },
    /// The key file is missing or unusable.
    #[error("{setting}: the file {problem}")]
    Key {
        /// The setting naming the file, as the user gave it.
        setting: String,
        /// What is wrong.
        problem: String,
    },
    /// The state dir cannot hold the self-signed certificate.
    #[error("{setting}: cannot keep the self-signed certificate there ({problem}); make the directory writable or set {} and {}", spec::TLS_CERT.env, spec::TLS_KEY.env)]
    StateDir {
        /// The state dir setting, as the user gave it.
        setting: String,
        /// What is wrong.
        problem: String,
    },
    /// rcgen failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider: ring, TLS 1.3 suites and TLS 1.2 ECDHE+AEAD suites only (ring offers no
/// others: every suite it has is AES-GCM or ChaCha20-Poly1305 with ephemeral key exchange).
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(t) => {
            matches!(t.kx, rustls::crypto::KeyExchangeAlgorithm::ECDHE)
        }
    });
    Arc::new(p)
}

/// The certificate in use and where it comes from; swapped on reload without interrupting
/// connections.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    source: Box<dyn Source>,
    provider: Arc<CryptoProvider>,
}

impl CertStore {
    /// Loads the first certificate from `source`.
    pub fn load(
        source: Box<dyn Source>,
        provider: Arc<CryptoProvider>,
    ) -> Result<(Self, Origin), TlsError> {
        let (key, origin) = source.load(&provider)?;
        let store = Self {
            current: RwLock::new(key),
            source,
            provider,
        };
        Ok((store, origin))
    }

    /// Loads the certificate the settings ask for (`acme`: whether ACME runs).
    pub fn from_settings(settings: &Settings, acme: bool) -> Result<(Self, Origin), TlsError> {
        Self::load(source::from_settings(settings, acme), provider())
    }

    /// Loads the certificate again; on error the old one stays in use.
    pub fn reload(&self) -> Result<Origin, TlsError> {
        let (key, origin) = self.source.load(&self.provider)?;
        *self.current.write() = key;
        Ok(origin)
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().clone()
    }
}

/// Reloads the store each time `requests` changes, until shutdown; `reloaded` hears of each
/// certificate put in place.
pub async fn reload_service(
    store: Arc<CertStore>,
    mut requests: watch::Receiver<u64>,
    reloaded: impl Fn(&CertifiedKey) + Send,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            changed = requests.changed() => {
                if changed.is_err() {
                    return;
                }
                match store.reload() {
                    Ok(origin) => {
                        info!(cert = %origin, "TLS certificate reloaded");
                        reloaded(&store.current());
                    }
                    Err(e) => error!(error = %e, "TLS certificate reload failed; keeping the old one"),
                }
            }
            _ = shutdown.requested() => return,
        }
    }
}

/// Resolves every handshake to the current certificate, except an ACME CA's TLS-ALPN-01
/// validation (ALPN `acme-tls/1` only), which gets the validation certificate of an open
/// challenge or nothing.
#[derive(Debug)]
struct Resolver {
    store: Arc<CertStore>,
    challenges: Option<Arc<acme::Challenges>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = &self.challenges {
            let validation = hello
                .alpn()
                .is_some_and(|mut offered| offered.any(|p| p == acme::challenges::ACME_TLS_ALPN));
            if validation {
                return hello
                    .server_name()
                    .and_then(|n| challenges.tls_alpn_cert(n));
            }
        }
        Some(self.store.current())
    }
}

/// Builds the server configuration: TLS 1.2/1.3, ALPN h2 + http/1.1 (and `acme-tls/1` when
/// ACME `challenges` are answered here), session cache and tickets.
pub fn server_config(
    store: Arc<CertStore>,
    challenges: Option<Arc<acme::Challenges>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = store.provider.clone();
    let acme = challenges.is_some();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { store, challenges }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme {
        config
            .alpn_protocols
            .push(acme::challenges::ACME_TLS_ALPN.to_vec());
    }
    config.session_storage = ServerSessionMemoryCache::new(16 * 1024);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// When a certificate expires (its leaf's notAfter, Unix seconds).
pub fn expiry(key: &CertifiedKey) -> Option<i64> {
    let leaf = key.cert.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}
