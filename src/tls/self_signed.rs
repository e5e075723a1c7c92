//! A self-signed certificate, generated once with rcgen and kept in the state dir.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::TlsError;

/// File names inside the state dir.
const CERT: &str = "self-signed-cert.pem";
const KEY: &str = "self-signed-key.pem";
const NAMES: &str = "self-signed-names.txt";

/// Returns (cert, key) paths of a self-signed certificate for `host` (plus localhost and
/// 127.0.0.1), generating it when the state dir holds none for these names.
pub fn ensure(state_dir: &Path, host: &str) -> Result<(PathBuf, PathBuf, bool), TlsError> {
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
    let io = |e: std::io::Error| TlsError::StateDir {
        path: state_dir.to_path_buf(),
        problem: e.to_string(),
    };
    fs::create_dir_all(state_dir).map_err(io)?;
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes()).map_err(io)?;
    write_private(&cert, generated.cert.pem().as_bytes()).map_err(io)?;
    write_private(&names_file, wanted.as_bytes()).map_err(io)?;
    Ok((cert, key, true))
}

/// Writes via a temporary file and rename, mode 0600, so a crash never leaves half a key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}
