//! Replacing Mattermost's files: same permissions and owner as before, one backup of the
//! previous content, read-only targets refused up front; the crash-safe write itself is
//! [`crate::atomic_file`].

use super::Error;
pub(crate) use crate::atomic_file::Hook;
use crate::atomic_file::{self, is_read_only_error, parent};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Mode of a file mm-edge creates: it may hold database and SMTP passwords.
const NEW_FILE_MODE: u32 = 0o600;

/// A target as found on disk.
pub(crate) struct Existing {
    pub bytes: Vec<u8>,
    pub meta: fs::Metadata,
}

/// The file to write for `path`: the target itself when `path` is a symlink (as in a
/// Kubernetes volume), so the link survives.
pub(crate) fn resolve(path: &Path, setting: &'static str) -> Result<PathBuf, Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                setting,
                source,
            })
        }
        _ => Ok(path.to_path_buf()),
    }
}

/// Reads a target; `None` when it does not exist yet.
pub(crate) fn read(path: &Path, setting: &'static str) -> Result<Option<Existing>, Error> {
    let err = |source| Error::Read {
        path: path.to_path_buf(),
        setting,
        source,
    };
    match fs::read(path) {
        Ok(bytes) => {
            let meta = fs::metadata(path).map_err(err)?;
            Ok(Some(Existing { bytes, meta }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e)),
    }
}

/// Refuses a file or directory that is read-only: marked so by its mode (which even root
/// respects here), or not writable for this process.
pub(crate) fn check_writable(
    path: &Path,
    existing: Option<&Existing>,
    setting: &'static str,
) -> Result<(), Error> {
    let read_only = |what| Error::ReadOnly {
        path: path.to_path_buf(),
        what,
        setting,
    };
    let dir = parent(path);
    let dir_meta = fs::metadata(dir).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        step: "find its directory",
        source,
    })?;
    if dir_meta.permissions().readonly() {
        return Err(read_only("directory"));
    }
    if let Some(e) = existing {
        if e.meta.permissions().readonly() {
            return Err(read_only("file"));
        }
        // Opening for writing without truncating changes neither the content nor the mtime.
        if let Err(err) = OpenOptions::new().write(true).open(path) {
            return Err(if is_read_only_error(&err) {
                read_only("file")
            } else {
                Error::Write {
                    path: path.to_path_buf(),
                    step: "open it for writing",
                    source: err,
                }
            });
        }
    }
    Ok(())
}

/// `config.json` → `config.json.bak`.
pub(crate) fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".bak");
    PathBuf::from(name)
}

/// Replaces `path` with `content`. The previous content, if any, is first kept in
/// `<path>.bak`. Permissions and owner are those of the previous file, or for a new file
/// mode 0600 and the directory's owner (so Mattermost, owning its config directory, can read it).
pub(crate) fn replace(
    path: &Path,
    existing: Option<&Existing>,
    content: &[u8],
    setting: &'static str,
    hook: Hook<'_>,
) -> Result<(), Error> {
    let (mode, uid, gid) = match existing {
        Some(e) => (e.meta.mode() & 0o7777, e.meta.uid(), e.meta.gid()),
        None => {
            let d = fs::metadata(parent(path)).map_err(|source| Error::Write {
                path: path.to_path_buf(),
                step: "find its directory",
                source,
            })?;
            (NEW_FILE_MODE, d.uid(), d.gid())
        }
    };
    if let Some(e) = existing {
        write_one(
            &backup_path(path),
            &e.bytes,
            (mode, uid, gid),
            setting,
            &mut |_| Ok(()),
        )?;
    }
    write_one(path, content, (mode, uid, gid), setting, hook)
}

fn write_one(
    path: &Path,
    content: &[u8],
    (mode, uid, gid): (u32, u32, u32),
    setting: &'static str,
    hook: Hook<'_>,
) -> Result<(), Error> {
    let perms = atomic_file::Perms {
        mode,
        owner: Some((uid, gid)),
    };
    atomic_file::write(path, content, perms, hook).map_err(|e| {
        if e.step == "create a temporary file" && e.is_read_only() {
            Error::ReadOnly {
                path: path.to_path_buf(),
                what: "directory",
                setting,
            }
        } else {
            Error::Write {
                path: path.to_path_buf(),
                step: e.step,
                source: e.source,
            }
        }
    })
}
