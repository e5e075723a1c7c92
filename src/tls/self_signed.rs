//! A self-signed certificate, generated once with rcgen and kept in the state dir.

use std::fs;
use std::path::{Path, PathBuf};

use crate::atomic_file::{self, Perms};

/// File names inside the state dir.
const CERT: &str = "self-signed-cert.pem";
const KEY: &str = "self-signed-key.pem";
const NAMES: &str = "self-signed-names.txt";

/// Private keys (and everything else kept here) are readable by mm-edge's user only.
const PRIVATE: Perms = Perms {
    mode: 0o600,
    owner: None,
};

/// Why the certificate could not be kept.
#[derive(Debug)]
pub enum Error {
    /// The state dir cannot hold it.
    Io(std::io::Error),
    /// rcgen failed.
    Generate(String),
}

/// Returns (cert, key) paths of a self-signed certificate for `host` (plus localhost and
/// 127.0.0.1), generating it when the state dir holds none for these names, and whether it was
/// generated now.
pub fn ensure(state_dir: &Path, host: &str) -> Result<(PathBuf, PathBuf, bool), Error> {
    let mut names = vec![host.to_string()];
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_string());
        }
    }
    let wanted = names.join("\n");
    let (cert, key, names_file) = (
        state_dir.join(CERT),
        state_dir.join(KEY),
        state_dir.join(NAMES),
    );
    let existing = fs::read_to_string(&names_file).ok();
    if existing.as_deref() == Some(wanted.as_str()) && cert.is_file() && key.is_file() {
        return Ok((cert, key, false));
    }
    fs::create_dir_all(state_dir).map_err(Error::Io)?;
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| Error::Generate(e.to_string()))?;
    let write = |path: &Path, bytes: &[u8]| {
        atomic_file::write(path, bytes, PRIVATE, &mut |_| Ok(()))
            .map_err(|e| Error::Io(std::io::Error::new(e.source.kind(), e.to_string())))
    };
    write(&key, generated.signing_key.serialize_pem().as_bytes())?;
    write(&cert, generated.cert.pem().as_bytes())?;
    write(&names_file, wanted.as_bytes())?;
    Ok((cert, key, true))
}
