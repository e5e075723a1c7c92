//! Writes Mattermost's configuration at startup so that Mattermost and the edge agree on the
//! public URL, TLS, client-IP headers, CORS and rate limits, and carries the variables of the
//! old docker-mattermost image over to their modern keys.
//!
//! Targets: Mattermost's `config.json` (merged in place, atomically, idempotently) and/or an
//! env file of `MM_SECTION_KEY=value` overrides. See [`write`].

mod atomic;
mod env_file;
mod json_merge;
pub mod seed_env;

#[cfg(test)]
mod tests;

pub use env_file::env_name;

use serde_json::Value;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::{spec, Settings};

/// The mm-edge setting naming the config.json target (used in error messages).
fn config_file_setting() -> &'static str {
    spec::MATTERMOST_CONFIG.env
}

/// The mm-edge setting naming the env-file target (used in error messages).
fn env_file_setting() -> &'static str {
    spec::MATTERMOST_ENV_FILE.env
}

/// The edge's own facts, always written; derived from the edge's settings by
/// [`EdgeFacts::from_settings`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EdgeFacts {
    /// Public URL of the site, e.g. `https://chat.example.org` → `ServiceSettings.SiteURL`.
    pub site_url: String,
    /// Allowed CORS origins, as configured (already validated) → `AllowCorsFrom`, space-separated.
    pub cors_domains: Vec<String>,
    /// Response headers exposed to CORS callers → `CorsExposedHeaders`, space-separated.
    pub cors_exposed_headers: Vec<String>,
    /// Whether CORS requests may carry credentials → `CorsAllowCredentials`.
    pub cors_allow_credentials: bool,
    /// Requests per second per key → `RateLimitSettings.PerSec`.
    pub rate_limit_per_sec: u32,
    /// Burst size → `RateLimitSettings.MaxBurst`.
    pub rate_limit_max_burst: u32,
    /// Number of rate-limit keys remembered → `RateLimitSettings.MemoryStoreSize`.
    pub rate_limit_sessions: u32,
    /// Whether the client IP is part of the key → `RateLimitSettings.VaryByRemoteAddr`.
    pub rate_limit_by_ip: bool,
    /// Headers that are part of the key → `RateLimitSettings.VaryByHeader` (first one only:
    /// Mattermost takes a single header name; a warning names the others).
    pub rate_limit_headers: Vec<String>,
}

impl EdgeFacts {
    /// What Mattermost must agree with, from the edge's settings.
    pub fn from_settings(settings: &Settings) -> Self {
        let rl = &settings.rate_limit;
        Self {
            site_url: settings.site.url.clone(),
            cors_domains: settings.cors.domains.clone(),
            cors_exposed_headers: settings.cors.exposed_headers.clone(),
            cors_allow_credentials: settings.cors.allow_credentials,
            rate_limit_per_sec: rl.per_sec.get(),
            rate_limit_max_burst: rl.max_burst,
            rate_limit_sessions: u32::try_from(rl.sessions.get()).unwrap_or(u32::MAX),
            rate_limit_by_ip: rl.by_ip,
            rate_limit_headers: rl.headers.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Where to write; either or both may be absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Targets<'a> {
    /// Mattermost's config.json (`mattermost.config_file`).
    pub config_file: Option<&'a Path>,
    /// The env file of `MM_*` overrides (`mattermost.env_file`).
    pub env_file: Option<&'a Path>,
}

/// What happened to one target file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// The file did not exist and was created.
    Created,
    /// The file was rewritten; its previous content is in `<file>.bak`.
    Updated,
    /// The file already held every value: not rewritten (content and mtime untouched).
    Unchanged,
}

/// A warning about a variable of the old image (also logged with `tracing::warn!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The variable concerned.
    pub variable: &'static str,
    /// What happened and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl<'a> Targets<'a> {
    /// The targets the settings name.
    pub fn from_settings(settings: &'a Settings) -> Self {
        Self {
            config_file: settings.mattermost.config_file.as_deref(),
            env_file: settings.mattermost.env_file.as_deref(),
        }
    }
}

/// Result of one run: per target, whether it was created/updated/unchanged; the warnings emitted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Status of config.json, `None` when not a target.
    pub config_file: Option<FileStatus>,
    /// Status of the env file, `None` when not a target.
    pub env_file: Option<FileStatus>,
    /// `Section.Key` names whose value changed in config.json.
    pub changed_keys: Vec<String>,
    /// Warnings about the old image's variables, in the order they were found.
    pub warnings: Vec<Warning>,
}

/// One key written into Mattermost's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Section of config.json, e.g. `ServiceSettings`.
    pub section: &'static str,
    /// Key in the section, e.g. `SiteURL`.
    pub key: &'static str,
    /// Value, of Mattermost's type for that key.
    pub value: Value,
    /// Where it comes from: `mm-edge` or the old image's variable.
    pub source: &'static str,
}

/// Why Mattermost's configuration was not written. Every file error leaves the file as it was.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but cannot be read.
    #[error("{}: cannot read it: {source}; check the path given in {setting} and that mm-edge may read it", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The mm-edge setting that names it.
        setting: &'static str,
        /// The I/O error.
        source: io::Error,
    },
    /// config.json is not valid JSON.
    #[error("{}: not valid JSON at line {line}, column {column} ({message}); left untouched: {}, then start again", path.display(), fix_malformed(path, *backup))]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Line of the error (1-based).
        line: usize,
        /// Column of the error (1-based).
        column: usize,
        /// The parser's message.
        message: String,
        /// Whether a backup (`<file>.bak`) exists to restore.
        backup: bool,
    },
    /// A key mm-edge writes holds a value of another type.
    #[error("{}: key {key} holds {found} but Mattermost expects {expected} there (mm-edge writes it {}); left untouched: correct or delete {key} in the file, then start again", path.display(), origin(from))]
    WrongType {
        /// The file.
        path: PathBuf,
        /// `Section.Key`, or the section, or `(top level)`.
        key: String,
        /// Type found.
        found: &'static str,
        /// Type mm-edge would write.
        expected: &'static str,
        /// `mm-edge` or the variable the value comes from.
        from: &'static str,
    },
    /// The file or its directory is read-only.
    #[error("{}: the {what} is read-only; left untouched: make it writable for mm-edge, or unset {setting} to stop mm-edge writing it", path.display())]
    ReadOnly {
        /// The file.
        path: PathBuf,
        /// `file` or `directory`.
        what: &'static str,
        /// The mm-edge setting that names the file.
        setting: &'static str,
    },
    /// Writing failed; the previous content is intact.
    #[error("{}: cannot {step}: {source}; the previous content is intact", path.display())]
    Write {
        /// The file being written (the target or its `.bak`).
        path: PathBuf,
        /// What was being done.
        step: &'static str,
        /// The I/O error.
        source: io::Error,
    },
    /// A variable of the old image holds a value Mattermost cannot take.
    #[error("{variable}={value}: {problem}; fix or unset {variable}")]
    BadValue {
        /// The variable.
        variable: String,
        /// Its value (`(hidden)` for passwords, salts and keys).
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// A variable the old image required is missing.
    #[error("{variable} is not set but is required because {reason}; set {variable}")]
    MissingVariable {
        /// The variable.
        variable: &'static str,
        /// Why it is needed.
        reason: &'static str,
    },
    /// A value cannot be put on one line of the env file.
    #[error("{}: {variable} (from {from}) contains a line break, which an env file cannot hold; remove it from {from}", path.display())]
    EnvFileValue {
        /// The env file.
        path: PathBuf,
        /// The `MM_*` variable.
        variable: String,
        /// `mm-edge` or the old variable the value comes from.
        from: &'static str,
    },
}

/// What to do about a config.json that is not JSON: restore the backup only when there is one.
fn fix_malformed(path: &Path, backup: bool) -> String {
    if backup {
        format!(
            "fix the file or restore its backup ({})",
            atomic::backup_path(path).display()
        )
    } else {
        "fix the file (there is no backup of it)".to_string()
    }
}

/// "from its own settings" or "from VARIABLE", for messages.
fn origin(from: &str) -> String {
    if from == "mm-edge" {
        "from its own settings".to_string()
    } else {
        format!("from {from}")
    }
}

/// Writes the edge's facts and the old image's variables found by `env` into the targets.
/// `env` looks up an environment variable (tests pass a map; the binary passes std::env::var).
pub fn write(
    targets: &Targets,
    facts: &EdgeFacts,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Outcome, Error> {
    write_with_hook(targets, facts, env, &mut |_| Ok(()))
}

/// Computes what [`write`] would write (keys and warnings) without touching any file, so that
/// `mm-edge check` validates the old image's variables too.
pub fn preview(
    facts: &EdgeFacts,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<Setting>, Vec<Warning>), Error> {
    let plan = seed_env::plan(facts, env)?;
    Ok((plan.settings, plan.warnings))
}

/// The old image's variable naming Mattermost's upload limit.
pub const MAX_FILE_SIZE_VAR: &str = "MATTERMOST_MAX_FILE_SIZE";

/// Mattermost's upload limit (`FileSettings.MaxFileSize`, bytes) as far as the edge can know it,
/// with where it was read: the old image's `MATTERMOST_MAX_FILE_SIZE` (which mm-edge writes into
/// Mattermost's configuration), else the value in the config file mm-edge writes to. `None` when
/// neither says (an unreadable or malformed file, or a bad value, is reported by the writer).
pub fn max_file_size(
    targets: &Targets,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(u64, String)> {
    if let Some(raw) = env(MAX_FILE_SIZE_VAR) {
        return raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(|n| (n, MAX_FILE_SIZE_VAR.to_string()));
    }
    let path = targets.config_file?;
    let text = std::fs::read(path).ok()?;
    let config: Value = serde_json::from_slice(&text).ok()?;
    let size = config.get("FileSettings")?.get("MaxFileSize")?.as_u64()?;
    (size > 0).then(|| {
        (
            size,
            format!("FileSettings.MaxFileSize in {}", path.display()),
        )
    })
}

/// Whether a key holds a secret that must not be printed (passwords, salts, keys, data sources).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("key")
        || ["password", "salt", "secret", "datasource"]
            .iter()
            .any(|s| k.contains(s))
}

/// A target ready to be committed: `None` content means already up to date.
struct Prepared {
    path: PathBuf,
    existing: Option<atomic::Existing>,
    content: Option<Vec<u8>>,
    setting: &'static str,
}

/// [`write`], with `hook` run on each temporary file between its fsync and its rename.
pub(crate) fn write_with_hook(
    targets: &Targets,
    facts: &EdgeFacts,
    env: &dyn Fn(&str) -> Option<String>,
    hook: atomic::Hook<'_>,
) -> Result<Outcome, Error> {
    // Validate and warn even without a target: a bad or obsolete variable is worth knowing about.
    let plan = seed_env::plan(facts, env)?;
    for w in &plan.warnings {
        tracing::warn!(variable = w.variable, "{}", w.message);
    }
    if targets.config_file.is_none() && targets.env_file.is_none() {
        let unused = plan
            .settings
            .iter()
            .filter(|s| s.source != "mm-edge")
            .count();
        if unused > 0 {
            tracing::warn!(
                keys = unused,
                "variables of the old docker-mattermost image are set, but neither {} nor {} is: they are not applied",
                config_file_setting(),
                env_file_setting()
            );
        }
        tracing::info!(
            "neither {} nor {} is set: Mattermost's configuration is not written",
            config_file_setting(),
            env_file_setting()
        );
        return Ok(Outcome {
            warnings: plan.warnings,
            ..Outcome::default()
        });
    }
    let mut outcome = Outcome {
        warnings: plan.warnings.clone(),
        ..Outcome::default()
    };

    // Prepare both targets before writing either, so a refusal writes nothing.
    let mut prepared = Vec::new();
    if let Some(path) = targets.config_file {
        let path = atomic::resolve(path, config_file_setting())?;
        let existing = atomic::read(&path, config_file_setting())?;
        let (content, changed) = config_content(&path, existing.as_ref(), &plan.settings)?;
        outcome.changed_keys = changed;
        prepared.push(Prepared {
            path,
            existing,
            content,
            setting: config_file_setting(),
        });
    }
    if let Some(path) = targets.env_file {
        let path = atomic::resolve(path, env_file_setting())?;
        let existing = atomic::read(&path, env_file_setting())?;
        let new = env_file::render(&plan.settings, &path)?;
        let content = match &existing {
            Some(e) if e.bytes == new => None,
            _ => Some(new),
        };
        prepared.push(Prepared {
            path,
            existing,
            content,
            setting: env_file_setting(),
        });
    }
    for p in &prepared {
        if p.content.is_some() {
            atomic::check_writable(&p.path, p.existing.as_ref(), p.setting)?;
        }
    }

    for p in prepared {
        let status = match (&p.content, &p.existing) {
            (None, _) => FileStatus::Unchanged,
            (Some(content), existing) => {
                atomic::replace(&p.path, existing.as_ref(), content, p.setting, hook)?;
                if existing.is_some() {
                    FileStatus::Updated
                } else {
                    FileStatus::Created
                }
            }
        };
        tracing::info!(file = %p.path.display(), status = ?status, "Mattermost configuration");
        if p.setting == config_file_setting() {
            outcome.config_file = Some(status);
        } else {
            outcome.env_file = Some(status);
        }
    }
    if !outcome.changed_keys.is_empty() {
        tracing::info!(keys = ?outcome.changed_keys, "changed in Mattermost's config.json");
    }
    Ok(outcome)
}

/// The new content of config.json (`None` when nothing changes) and the changed keys.
fn config_content(
    path: &Path,
    existing: Option<&atomic::Existing>,
    settings: &[Setting],
) -> Result<(Option<Vec<u8>>, Vec<String>), Error> {
    match existing {
        Some(e) => {
            let mut doc = json_merge::parse(path, &e.bytes)?;
            let changed = json_merge::merge(&mut doc, settings, path)?;
            if changed.is_empty() {
                return Ok((None, changed));
            }
            let indent = json_merge::detect_indent(&e.bytes);
            let newline = e.bytes.ends_with(b"\n");
            Ok((
                Some(json_merge::to_go_json(&doc, &indent, newline)),
                changed,
            ))
        }
        None => {
            let mut doc = Value::Object(serde_json::Map::new());
            let changed = json_merge::merge(&mut doc, settings, path)?;
            Ok((Some(json_merge::to_go_json(&doc, "    ", true)), changed))
        }
    }
}
