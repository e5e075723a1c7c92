//! The background task that keeps an ACME certificate: orders one when none is stored, renews
//! it when due, and picks up what a replica sharing the state dir ordered. One order at a time
//! across replicas (the lock in the state dir); failures back off and leave the current
//! certificate in use.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, Challenge, ChallengeType, Identifier,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use super::challenges::Challenges;
use super::client::Connector;
use super::schedule::{self, Backoff};
use super::state::{Lock, State, Stored};
use crate::config::{spec, Acme as AcmeSettings, AcmeChallenge, Settings};
use crate::lifecycle::Shutdown;
use crate::tls::CertStore;

/// The longest sleep between looks at the stored certificate (a replica's renewal is picked up
/// within this; a suspended machine re-plans on waking).
const RECHECK: Duration = Duration::from_secs(3600);
/// How often a replica waiting for the order lock tries again.
const LOCK_POLL: Duration = Duration::from_secs(1);
/// How long the CA may take to validate, and then to issue.
const CA_PATIENCE: Duration = Duration::from_secs(120);

/// Called with each certificate put in place (the expiry metric listens).
pub type OnNew = Box<dyn Fn(&CertifiedKey) + Send + Sync>;

/// The ACME renewal schedule chosen from the CA's renewal information, for one certificate.
#[derive(Debug)]
struct Planned {
    leaf: Vec<u8>,
    at: SystemTime,
    recheck: SystemTime,
    /// The CA gave the window (it speaks ARI).
    from_ari: bool,
}

/// Orders and renews the certificate for the site's host.
pub struct Manager {
    acme: AcmeSettings,
    names: Vec<String>,
    state: State,
    challenges: Arc<Challenges>,
    store: Arc<CertStore>,
    connector: Connector,
    on_new: OnNew,
    account: Option<Account>,
    planned: Option<Planned>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("names", &self.names)
            .field("directory", &self.acme.directory)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// The manager for the settings; the error names the roots setting when its file is unusable.
    pub fn new(
        settings: &Settings,
        store: Arc<CertStore>,
        challenges: Arc<Challenges>,
    ) -> Result<Self, crate::config::ConfigError> {
        let acme = settings.tls.acme.clone();
        let connector = Connector::new(acme.ca_roots.as_deref())
            .map_err(|problem| settings.error(&spec::ACME_CA_ROOTS, problem))?;
        Ok(Self {
            names: names(settings),
            state: State::new(&settings.state_dir),
            acme,
            challenges,
            store,
            connector,
            on_new: Box::new(|_| {}),
            account: None,
            planned: None,
        })
    }

    /// Calls `on_new` with each certificate put in place.
    pub fn on_new(self, on_new: OnNew) -> Self {
        Self { on_new, ..self }
    }

    /// Keeps the certificate until shutdown.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut backoff = Backoff::default();
        let mut announced = false;
        loop {
            let stored = self.state.stored(&self.acme.directory, &self.names);
            if let Some(s) = &stored {
                let due = self.due(s).await;
                let picked_up = self.serve(s);
                let now = SystemTime::now();
                if due > now {
                    let (names, issuer) = (self.names.join(","), &s.issuer);
                    let (expires, next_renewal) = (rfc3339(s.not_after), rfc3339(due));
                    if picked_up {
                        info!(
                            names,
                            issuer,
                            expires,
                            next_renewal,
                            "ACME: certificate picked up from the state directory"
                        );
                    } else if !announced {
                        info!(
                            names,
                            issuer, expires, next_renewal, "ACME: stored certificate in use"
                        );
                    }
                    announced = true;
                    let wait = due.duration_since(now).unwrap_or_default().min(RECHECK);
                    if !sleep(wait, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
            }
            let Some(lock) = self.lock(&mut shutdown).await else {
                return;
            };
            // Under the lock: a replica may have ordered while this one waited.
            let now_stored = self.state.stored(&self.acme.directory, &self.names);
            if now_stored.is_some() && now_stored != stored {
                drop(lock);
                continue;
            }
            let result = tokio::select! {
                r = self.order(stored.as_ref()) => Some(r),
                _ = shutdown.requested() => None,
            };
            self.challenges.clear();
            drop(lock);
            let Some(result) = result else {
                return;
            };
            match result {
                Ok(fresh) => {
                    backoff.reset();
                    announced = true;
                    let due = self.due(&fresh).await;
                    let (names, issuer) = (self.names.join(","), &fresh.issuer);
                    let (expires, next_renewal) = (rfc3339(fresh.not_after), rfc3339(due));
                    if stored.is_some() {
                        info!(
                            names,
                            issuer, expires, next_renewal, "ACME: certificate renewed"
                        );
                    } else {
                        info!(
                            names,
                            issuer, expires, next_renewal, "ACME: certificate issued"
                        );
                    }
                }
                Err(error) => {
                    if error.contains("accountDoesNotExist") {
                        // The CA forgot the account (a reset test CA, a deactivation): the
                        // next attempt registers a new one.
                        self.account = None;
                        self.state.forget_account();
                    }
                    let wait = backoff.next(0.5 + fastrand::f64() / 2.0);
                    warn!(
                        names = self.names.join(","),
                        directory = self.acme.directory,
                        error,
                        retry_in = ?Duration::from_secs(wait.as_secs()),
                        "ACME: order failed; the current certificate stays in use"
                    );
                    if !sleep(wait, &mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Puts the stored certificate in place if the store serves another; whether it did.
    fn serve(&self, stored: &Stored) -> bool {
        let current = self.store.current();
        if current.cert.first().map(|c| c.as_ref()) == Some(stored.leaf.as_slice()) {
            return false;
        }
        match self.store.reload() {
            Ok(_) => {
                (self.on_new)(&self.store.current());
                true
            }
            Err(e) => {
                warn!(error = %e, "ACME: the stored certificate cannot be loaded; keeping the current one");
                false
            }
        }
    }

    /// When `stored` is due for renewal: in the CA's renewal window when it offers ACME
    /// Renewal Information, else at two thirds of its lifetime.
    async fn due(&mut self, stored: &Stored) -> SystemTime {
        let fallback = schedule::two_thirds(stored.not_before, stored.not_after);
        let now = SystemTime::now();
        if let Some(p) = &self.planned {
            if p.leaf == stored.leaf && now < p.recheck {
                return p.at;
            }
        }
        let Ok(account) = self.account().await else {
            return fallback;
        };
        let der = CertificateDer::from(stored.leaf.as_slice());
        let Ok(id) = CertificateIdentifier::try_from(&der) else {
            return fallback;
        };
        let (at, recheck, from_ari) = match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let window = &info.suggested_window;
                let at = schedule::in_window(
                    SystemTime::from(window.start),
                    SystemTime::from(window.end),
                    fastrand::f64(),
                );
                let recheck = now + retry_after.clamp(Duration::from_secs(60), RECHECK * 24);
                (at, recheck, true)
            }
            // No ARI at this CA (or it failed this time): the lifetime rule, looked at again later.
            Err(_) => (fallback, now + RECHECK, false),
        };
        self.planned = Some(Planned {
            leaf: stored.leaf.clone(),
            at,
            recheck,
            from_ari,
        });
        at
    }

    /// The account, restored or registered once per process.
    async fn account(&mut self) -> Result<Account, String> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let account = self
            .connector
            .account(&self.acme, &self.state)
            .await
            .map_err(|e| format!("account at {}: {}", self.acme.directory, causes(&e)))?;
        self.account = Some(account.clone());
        Ok(account)
    }

    /// The order lock, waiting while a replica holds it; `None` on shutdown.
    async fn lock(&self, shutdown: &mut Shutdown) -> Option<Lock> {
        let mut said = false;
        loop {
            match self.state.try_lock() {
                Ok(Some(lock)) => return Some(lock),
                Ok(None) if !said => {
                    info!(lock = %self.state.dir().join("order.lock").display(), "ACME: another instance holds the order lock; waiting");
                    said = true;
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, dir = %self.state.dir().display(), "ACME: cannot take the order lock; {} must be writable", spec::STATE_DIR.env);
                    if !sleep(RECHECK / 60, shutdown).await {
                        return None;
                    }
                    continue;
                }
            }
            if !sleep(LOCK_POLL, shutdown).await {
                return None;
            }
        }
    }

    /// One order: challenges answered, certificate fetched, kept and put in place.
    async fn order(&mut self, previous: Option<&Stored>) -> Result<Stored, String> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> =
            self.names.iter().cloned().map(Identifier::Dns).collect();
        let mut new_order = NewOrder::new(&identifiers);
        let replaced = previous.and_then(|p| {
            let der = CertificateDer::from(p.leaf.as_slice());
            CertificateIdentifier::try_from(&der)
                .ok()
                .map(|id| id.into_owned())
        });
        // Tell an ARI-capable CA which certificate this replaces (it may then skip rate limits).
        if let (Some(id), Some(true)) = (replaced, self.planned.as_ref().map(|p| p.from_ari)) {
            new_order = new_order.replaces(id);
        }
        info!(
            names = self.names.join(","),
            directory = self.acme.directory,
            "ACME: ordering a certificate"
        );
        let mut order = account
            .new_order(&new_order)
            .await
            .map_err(|e| format!("new order: {}", causes(&e)))?;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("authorization: {}", causes(&e)))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("authorization is {other:?}")),
            }
            let name = authz.identifier().to_string();
            let kind = self.pick(&name, &authz.challenges)?;
            let mut challenge = authz
                .challenge(kind.clone())
                .ok_or_else(|| format!("the {kind:?} challenge vanished"))?;
            let key_auth = challenge.key_authorization();
            let challenge_name = match kind {
                ChallengeType::Http01 => {
                    self.challenges
                        .put_http(&challenge.token, key_auth.as_str())
                        .map_err(|e| e.to_string())?;
                    "http-01"
                }
                _ => {
                    self.challenges
                        .put_tls_alpn(&name, key_auth.digest().as_ref())
                        .map_err(|e| e.to_string())?;
                    "tls-alpn-01"
                }
            };
            info!(
                name,
                challenge = challenge_name,
                "ACME: answering the CA's challenge"
            );
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge: {}", causes(&e)))?;
        }
        let patience = RetryPolicy::new().timeout(CA_PATIENCE);
        let status = order
            .poll_ready(&patience)
            .await
            .map_err(|e| format!("validation: {}", causes(&e)))?;
        if status != OrderStatus::Ready {
            let why = order
                .state()
                .error
                .as_ref()
                .map_or_else(|| format!("{status:?}"), ToString::to_string);
            return Err(format!("the CA did not validate the challenge: {why}"));
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {}", causes(&e)))?;
        let chain_pem = order
            .poll_certificate(&patience)
            .await
            .map_err(|e| format!("certificate: {}", causes(&e)))?;
        self.keep(&chain_pem, &key_pem)
    }

    /// Checks the new certificate, keeps it in the state dir and puts it in place.
    fn keep(&self, chain_pem: &str, key_pem: &str) -> Result<Stored, String> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the CA's chain is not PEM: {e:?}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("the new key is not PEM: {e:?}"))?;
        let fresh = chain
            .first()
            .and_then(|leaf| super::state::parse(leaf.as_ref()))
            .ok_or("the CA sent no usable certificate")?;
        CertifiedKey::from_der(chain, key, &crate::tls::provider())
            .map_err(|e| format!("the CA's certificate does not fit the key: {}", causes(&e)))?;
        self.state
            .save_cert(&self.acme.directory, &self.names, chain_pem, key_pem)
            .map_err(|e| {
                format!(
                    "cannot keep the certificate in {} ({e}); {} must be writable",
                    self.state.dir().display(),
                    spec::STATE_DIR.env
                )
            })?;
        self.serve(&fresh);
        Ok(fresh)
    }

    /// The challenge to answer, from what the CA offers and the setting.
    fn pick(&self, name: &str, offered: &[Challenge]) -> Result<ChallengeType, String> {
        let has = |t: &ChallengeType| offered.iter().any(|c| &c.r#type == t);
        let (tls, http) = (ChallengeType::TlsAlpn01, ChallengeType::Http01);
        let wanted = match self.acme.challenge {
            AcmeChallenge::TlsAlpn01 => vec![tls],
            AcmeChallenge::Http01 => vec![http],
            AcmeChallenge::Auto => vec![tls, http],
        };
        wanted.into_iter().find(|t| has(t)).ok_or_else(|| {
            let offers: Vec<String> = offered.iter().map(|c| format!("{:?}", c.r#type)).collect();
            format!(
                "the CA offers no usable challenge for {name} (it offers {}); {} is {:?}",
                offers.join(", "),
                spec::ACME_CHALLENGE.env,
                self.acme.challenge
            )
        })
    }
}

/// The names ordered: the site's host.
pub fn names(settings: &Settings) -> Vec<String> {
    vec![settings
        .site
        .host
        .trim_end_matches('.')
        .to_ascii_lowercase()]
}

/// Sleeps `wait`; false when shutdown came first.
async fn sleep(wait: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.requested() => false,
    }
}

/// An error with its causes (hyper's "client error (Connect)" says nothing by itself).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// A time for the log.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}
