//! The layers a setting's value can come from: defaults < TOML file < environment < CLI, and the
//! record of which layer won for each setting, so that messages name a setting the way the user
//! gave it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::spec::{Setting, SETTINGS};
use super::value::{Kind, V};
use super::ConfigError;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A TOML file, at this line.
    File(PathBuf, usize),
    /// The process environment.
    Env,
    /// A command-line flag.
    Cli,
}

/// One setting's winning value as the user wrote it, and its origin.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The setting it belongs to.
    pub setting: &'static Setting,
    /// The value as written (in a TOML file: the TOML text of the value).
    pub value: String,
    /// The layer it came from.
    pub source: Source,
}

impl Raw {
    /// The error for this value: names the setting the way the user wrote it.
    pub fn error(&self, problem: impl fmt::Display) -> ConfigError {
        ConfigError::Invalid(format!("{self}: {problem}"))
    }
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.setting;
        let value = s.shown(&self.value);
        match &self.source {
            Source::Default => write!(f, "{} (default {:?})", s.env, value),
            Source::Env => write!(f, "{}={}", s.env, value),
            Source::File(p, line) => {
                write!(f, "{} = {} in {} line {line}", s.key, value, p.display())
            }
            Source::Cli => write!(f, "--{} {}", s.flag(), value),
        }
    }
}

/// The winning raw value of every setting.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    values: BTreeMap<&'static str, Raw>,
}

impl Layers {
    /// The winning value of a setting (the default when the loader has not recorded it).
    pub fn get(&self, setting: &'static Setting) -> Raw {
        self.values.get(setting.key).cloned().unwrap_or(Raw {
            setting,
            value: setting.default.to_string(),
            source: Source::Default,
        })
    }

    /// Every recorded value, in TOML-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Raw> {
        self.values.values()
    }
}

/// The TOML file being layered: its path and text (for line numbers and value text).
#[derive(Debug)]
pub struct FileText<'a> {
    /// The file.
    pub path: &'a Path,
    /// Its content.
    pub text: &'a str,
}

impl FileText<'_> {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }
}

/// Resolves each setting through the layers while the section builders run, recording the
/// winner of each.
pub struct Resolver<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    cli: &'a [(&'static Setting, String)],
    file: Option<FileText<'a>>,
    /// What won, per setting.
    pub layers: Layers,
}

impl<'a> Resolver<'a> {
    /// A resolver over the environment, CLI overrides and (optionally) a parsed file.
    pub fn new(
        env: &'a dyn Fn(&str) -> Option<String>,
        cli: &'a [(&'static Setting, String)],
        file: Option<FileText<'a>>,
    ) -> Self {
        Self {
            env,
            cli,
            file,
            layers: Layers::default(),
        }
    }

    /// The typed value of `setting`: a flag, else the environment, else the file's value (already
    /// checked by its kind when the file was read), else the default.
    pub fn take<K: Kind>(
        &mut self,
        setting: &'static Setting,
        file: Option<Spanned<V<K>>>,
    ) -> Result<K::Out, ConfigError> {
        let text = self
            .cli
            .iter()
            .rev()
            .find(|(s, _)| s.key == setting.key)
            .map(|(_, v)| (v.clone(), Source::Cli))
            .or_else(|| (self.env)(setting.env).map(|v| (v, Source::Env)));
        if let Some((value, source)) = text {
            let raw = self.record(setting, value, source);
            return K::parse(&raw.value).map_err(|e| raw.error(e));
        }
        if let (Some(spanned), Some(file)) = (file, &self.file) {
            let span = spanned.span();
            let written = file.text.get(span.clone()).unwrap_or("").trim().to_string();
            let source = Source::File(file.path.to_path_buf(), file.line_of(span.start));
            self.record(setting, written, source);
            return Ok(spanned.into_inner().0);
        }
        let raw = self.record(setting, setting.default.to_string(), Source::Default);
        K::parse(&raw.value).map_err(|e| raw.error(e))
    }

    fn record(&mut self, setting: &'static Setting, value: String, source: Source) -> Raw {
        let raw = Raw {
            setting,
            value,
            source,
        };
        self.layers.values.insert(setting.key, raw.clone());
        raw
    }

    /// Checks that every declared setting was resolved (a setting the builders forget is a bug
    /// the unit tests catch on the first load).
    pub fn unresolved(&self) -> Vec<&'static str> {
        SETTINGS
            .iter()
            .filter(|s| !self.layers.values.contains_key(s.key))
            .map(|s| s.key)
            .collect()
    }
}
