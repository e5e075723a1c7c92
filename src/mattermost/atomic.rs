//! Crash-safe replacement of a file: temporary file in the same directory, fsync, rename over,
//! fsync the directory; same permissions and owner; one backup of the previous content.

use super::Error;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Called with the temporary file's path after it is written and synced, before the rename.
/// The real path passes a no-op; tests inject a failure here.
pub(crate) type Hook<'a> = &'a mut dyn FnMut(&Path) -> io::Result<()>;

/// Mode of a file mm-edge creates: it may hold database and SMTP passwords.
const NEW_FILE_MODE: u32 = 0o600;

/// EROFS: the file system is mounted read-only.
const EROFS: i32 = 30;

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

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn is_read_only_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(EROFS)
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

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent(path).join(format!(".{name}.mm-edge-{}-{n}.tmp", std::process::id()))
}

/// Removes the temporary file unless it was renamed into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

fn write_one(
    path: &Path,
    content: &[u8],
    (mode, uid, gid): (u32, u32, u32),
    setting: &'static str,
    hook: Hook<'_>,
) -> Result<(), Error> {
    let fail = |step: &'static str| {
        move |source: io::Error| Error::Write {
            path: path.to_path_buf(),
            step,
            source,
        }
    };
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|source| {
            if is_read_only_error(&source) {
                Error::ReadOnly {
                    path: path.to_path_buf(),
                    what: "directory",
                    setting,
                }
            } else {
                fail("create a temporary file")(source)
            }
        })?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let meta = file
        .metadata()
        .map_err(fail("inspect the temporary file"))?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(fail("keep its owner"))?;
    }
    // After the chown (which may clear set-id bits) and regardless of the umask.
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(fail("keep its permissions"))?;
    file.write_all(content)
        .map_err(fail("write the temporary file"))?;
    file.sync_all().map_err(fail("sync the temporary file"))?;
    drop(file);
    hook(&tmp).map_err(fail("replace it"))?;
    fs::rename(&tmp, path).map_err(fail("rename the temporary file over it"))?;
    guard.0 = None;
    File::open(parent(path))
        .and_then(|d| d.sync_all())
        .map_err(fail("sync its directory"))
}
