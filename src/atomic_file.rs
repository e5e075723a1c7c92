//! Crash-safe replacement of a file: a uniquely named temporary file in the same directory,
//! fsync, rename over the target, fsync the directory. A crash leaves the old file or the new one,
//! never half of either; a writer killed mid-write leaves only its temporary file, which the next
//! write into that directory removes.
//!
//! Used for everything mm-edge writes: Mattermost's config.json and env file, and the
//! self-signed certificate and key.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Called with the temporary file's path after it is written and synced, before the rename.
/// The real path passes a no-op; tests inject a failure here.
pub type Hook<'a> = &'a mut dyn FnMut(&Path) -> io::Result<()>;

/// Mode and owner of the file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// Permission bits (set regardless of the umask).
    pub mode: u32,
    /// Owner to give the file (`None`: whoever runs mm-edge).
    pub owner: Option<(u32, u32)>,
}

/// A failed step, with the I/O error; the target is untouched.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step}: {source}")]
pub struct WriteError {
    /// What was being done (`create a temporary file`, `rename the temporary file over it`...).
    pub step: &'static str,
    /// The I/O error.
    pub source: io::Error,
}

impl WriteError {
    /// Whether the directory or file system refused writing (read-only, or permission denied).
    pub fn is_read_only(&self) -> bool {
        is_read_only_error(&self.source)
    }
}

/// EROFS: the file system is mounted read-only.
const EROFS: i32 = 30;

/// Whether an I/O error means "not writable here".
pub fn is_read_only_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(EROFS)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `content`, with `perms`, crash-safely; first removes temporary files
/// that earlier writers of `path` on this host left behind when they died.
pub fn write(path: &Path, content: &[u8], perms: Perms, hook: Hook<'_>) -> Result<(), WriteError> {
    let fail = |step: &'static str| move |source: io::Error| WriteError { step, source };
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(perms.mode)
        .open(&tmp)
        .map_err(fail("create a temporary file"))?;
    let mut guard = TempGuard(Some(tmp.clone()));
    if let Some((uid, gid)) = perms.owner {
        let meta = file
            .metadata()
            .map_err(fail("inspect the temporary file"))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .map_err(fail("keep its owner"))?;
        }
    }
    // After the chown (which may clear set-id bits) and regardless of the umask.
    file.set_permissions(Permissions::from_mode(perms.mode))
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

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// This host's name, so that writers in other containers sharing the directory (whose process
/// ids mean nothing here) are never taken for dead ones.
fn host_tag() -> String {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if name.is_empty() {
        "host".to_string()
    } else {
        name
    }
}

/// `.NAME.mm-edge-` : the prefix of every temporary file for `NAME`.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.mm-edge-")
}

/// `.NAME.mm-edge-HOST-PID-N.tmp` next to the target.
fn temp_path(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent(path).join(format!(
        "{}{}-{}-{n}.tmp",
        temp_prefix(path),
        host_tag(),
        std::process::id()
    ))
}

/// Removes `.NAME.mm-edge-HOST-PID-N.tmp` files of this host whose process is gone.
fn remove_stale_temps(path: &Path) {
    let prefix = format!("{}{}-", temp_prefix(path), host_tag());
    let Ok(entries) = fs::read_dir(parent(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && rest.ends_with(".tmp") {
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed the temporary file of a writer that died")
                }
                Err(e) => {
                    tracing::debug!(file = %entry.path().display(), error = %e, "cannot remove a stale temporary file")
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: Perms = Perms {
        mode: 0o600,
        owner: None,
    };

    #[test]
    fn replaces_with_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key.pem");
        fs::write(&path, "old").expect("seed");
        write(&path, b"new", PRIVATE, &mut |_| Ok(())).expect("write");
        assert_eq!(fs::read_to_string(&path).expect("read"), "new");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["key.pem"]);
    }

    #[test]
    fn a_failure_before_the_rename_keeps_the_old_content() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.json");
        fs::write(&path, "old").expect("seed");
        let err = write(&path, b"new", PRIVATE, &mut |_| {
            Err(io::Error::other("injected"))
        })
        .expect_err("hook fails");
        assert_eq!(err.step, "replace it");
        assert_eq!(fs::read_to_string(&path).expect("read"), "old");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn temporary_files_of_dead_writers_are_removed_others_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("config.json");
        let host = host_tag();
        // A pid that cannot be alive: above the kernel's pid_max ceiling (2^22).
        let dead = dir
            .path()
            .join(format!(".config.json.mm-edge-{host}-4999999-0.tmp"));
        let other_host = dir
            .path()
            .join(".config.json.mm-edge-otherhost-4999999-0.tmp");
        let alive = dir.path().join(format!(
            ".config.json.mm-edge-{host}-{}-999.tmp",
            std::process::id()
        ));
        for f in [&dead, &other_host, &alive] {
            fs::write(f, "partial").expect("seed temp");
        }
        write(&path, b"{}", PRIVATE, &mut |_| Ok(())).expect("write");
        assert!(!dead.exists(), "a dead writer's temporary file is removed");
        assert!(
            other_host.exists(),
            "another host's writer may still be running"
        );
        assert!(alive.exists(), "a live writer's temporary file is kept");
    }
}
