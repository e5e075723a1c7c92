//! What ACME keeps in the state directory, under `acme/`: the account (`account.json`, with its
//! private key), the certificate chain (`cert.pem`), its key (`key.pem`), what the certificate
//! was ordered for (`cert.json`: directory and names), and `order.lock`, the lock that keeps
//! replicas sharing the directory from ordering in parallel. Every file is written crash-safely
//! with mode 0600.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::AccountCredentials;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, Perms};

/// Private keys and everything next to them: readable by mm-edge's user only.
const PRIVATE: Perms = Perms {
    mode: 0o600,
    owner: None,
};

/// The `acme/` directory of the state dir.
#[derive(Debug, Clone)]
pub struct State {
    dir: PathBuf,
}

/// A stored certificate, as far as renewal needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The leaf, DER.
    pub leaf: Vec<u8>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The issuer's distinguished name, for `check` and the log.
    pub issuer: String,
    /// The DNS names in the leaf.
    pub names: Vec<String>,
}

/// What a certificate was ordered for.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Meta {
    directory: String,
    names: Vec<String>,
}

/// The account file: the credentials, and the directory they belong to.
#[derive(Serialize, Deserialize)]
struct AccountFile {
    directory: String,
    credentials: AccountCredentials,
}

/// The order lock, held while it lives (the kernel releases it if the process dies).
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] File);

impl State {
    /// The `acme/` directory under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("acme"),
        }
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The certificate chain file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The certificate's private key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn meta_path(&self) -> PathBuf {
        self.dir.join("cert.json")
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// Creates the directory (mode 0700).
    pub fn create(&self) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
    }

    /// The stored account for `directory`, if any (an unreadable file counts as none: a new
    /// account is made and replaces it).
    pub fn account(&self, directory: &str) -> Option<AccountCredentials> {
        let text = fs::read(self.account_path()).ok()?;
        let file: AccountFile = serde_json::from_slice(&text).ok()?;
        (file.directory == directory).then_some(file.credentials)
    }

    /// Keeps the account for `directory`.
    pub fn save_account(&self, directory: &str, credentials: AccountCredentials) -> io::Result<()> {
        self.create()?;
        let text = serde_json::to_vec_pretty(&AccountFile {
            directory: directory.to_string(),
            credentials,
        })
        .map_err(io::Error::other)?;
        write(&self.account_path(), &text)
    }

    /// Forgets the stored account (the CA no longer knows it).
    pub fn forget_account(&self) {
        let _ = fs::remove_file(self.account_path());
    }

    /// The stored certificate, when it was ordered from `directory` for exactly `names`.
    pub fn stored(&self, directory: &str, names: &[String]) -> Option<Stored> {
        let meta: Meta = serde_json::from_slice(&fs::read(self.meta_path()).ok()?).ok()?;
        if meta.directory != directory || meta.names != names || !self.key_path().is_file() {
            return None;
        }
        self.read_cert()
    }

    /// The stored certificate, whatever it was ordered for (for `mm-edge check`).
    pub fn read_cert(&self) -> Option<Stored> {
        let pem = fs::read(self.cert_path()).ok()?;
        let leaf = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
        parse(leaf.as_ref())
    }

    /// Keeps a new certificate: the key first, then the chain, then what it was ordered for
    /// (a reader that sees the new `cert.json` sees the new files).
    pub fn save_cert(
        &self,
        directory: &str,
        names: &[String],
        chain_pem: &str,
        key_pem: &str,
    ) -> io::Result<()> {
        self.create()?;
        write(&self.key_path(), key_pem.as_bytes())?;
        write(&self.cert_path(), chain_pem.as_bytes())?;
        let meta = serde_json::to_vec_pretty(&Meta {
            directory: directory.to_string(),
            names: names.to_vec(),
        })
        .map_err(io::Error::other)?;
        write(&self.meta_path(), &meta)
    }

    /// Takes the order lock if no other process holds it.
    pub fn try_lock(&self) -> io::Result<Option<Lock>> {
        self.create()?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join("order.lock"))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock(file))),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn write(path: &Path, content: &[u8]) -> io::Result<()> {
    atomic_file::write(path, content, PRIVATE, &mut |_| Ok(()))
        .map_err(|e| io::Error::new(e.source.kind(), e.to_string()))
}

/// The parts of a leaf certificate renewal needs.
pub fn parse(der: &[u8]) -> Option<Stored> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).ok()?;
        Some(UNIX_EPOCH + Duration::from_secs(secs))
    };
    let validity = cert.validity();
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Stored {
        leaf: der.to_vec(),
        not_before: time(validity.not_before)?,
        not_after: time(validity.not_after)?,
        issuer: cert.issuer().to_string(),
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_excludes_a_second_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let a = State::new(dir.path());
        let b = State::new(dir.path());
        let held = a.try_lock().unwrap();
        assert!(held.is_some());
        assert!(
            b.try_lock().unwrap().is_none(),
            "a second holder got the lock"
        );
        drop(held);
        assert!(b.try_lock().unwrap().is_some());
    }

    #[test]
    fn a_certificate_is_stored_only_for_its_directory_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::new(dir.path());
        let names = vec!["chat.example.net".to_string()];
        let made = rcgen::generate_simple_self_signed(names.clone()).unwrap();
        state
            .save_cert(
                "https://ca/dir",
                &names,
                &made.cert.pem(),
                &made.signing_key.serialize_pem(),
            )
            .unwrap();
        let stored = state.stored("https://ca/dir", &names).unwrap();
        assert_eq!(stored.names, names);
        assert_eq!(stored.leaf, made.cert.der().to_vec());
        assert!(stored.not_before < stored.not_after);
        assert!(state.stored("https://other/dir", &names).is_none());
        assert!(state
            .stored("https://ca/dir", &["other.example.net".to_string()])
            .is_none());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(state.key_path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
