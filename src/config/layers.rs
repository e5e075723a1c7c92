//! The layers a setting's raw value can come from: defaults < TOML file < environment < CLI.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::spec::{self, Setting, SETTINGS};
use super::ConfigError;

/// Where a raw value came from, to name it in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A TOML file.
    File(PathBuf),
    /// The process environment.
    Env,
    /// A command-line flag.
    Cli,
}

/// One setting's winning value and its origin.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The setting it belongs to.
    pub setting: &'static Setting,
    /// The value as text (TOML arrays are joined with spaces).
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
        match &self.source {
            Source::Default => write!(f, "{} (default {:?})", s.env, self.value),
            Source::Env => write!(f, "{}={}", s.env, self.value),
            Source::File(p) => write!(f, "{} = {:?} in {}", s.key, self.value, p.display()),
            Source::Cli => write!(f, "--{} {}", s.flag(), self.value),
        }
    }
}

/// The raw values of every setting after layering.
#[derive(Debug, Clone)]
pub struct Layers {
    values: BTreeMap<&'static str, Raw>,
}

impl Layers {
    /// Layers defaults, the TOML file (if any), the environment and CLI overrides (`key`, value).
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        cli: &[(&'static Setting, String)],
    ) -> Result<Self, ConfigError> {
        let mut values: BTreeMap<&'static str, Raw> = SETTINGS
            .iter()
            .map(|s| {
                let raw = Raw {
                    setting: s,
                    value: s.default.to_string(),
                    source: Source::Default,
                };
                (s.key, raw)
            })
            .collect();
        let mut set = |setting: &'static Setting, value: String, source: Source| {
            values.insert(
                setting.key,
                Raw {
                    setting,
                    value,
                    source,
                },
            );
        };
        if let Some(path) = file {
            for (setting, value) in read_toml(path)? {
                set(setting, value, Source::File(path.to_path_buf()));
            }
        }
        for s in SETTINGS {
            if let Some(v) = env(s.env) {
                set(s, v, Source::Env);
            }
        }
        for (s, v) in cli {
            set(s, v.clone(), Source::Cli);
        }
        Ok(Self { values })
    }

    /// The winning raw value of a setting, by TOML key.
    pub fn get(&self, key: &str) -> &Raw {
        match self.values.get(key) {
            Some(raw) => raw,
            // Every key used by the loader is in SETTINGS; a typo there is a programming error
            // caught by the unit tests on the first load.
            None => panic!("setting {key} is not declared in config::spec"),
        }
    }

    /// Every raw value, in TOML-key order.
    pub fn iter(&self) -> impl Iterator<Item = &Raw> {
        self.values.values()
    }
}

/// Reads a TOML file into (setting, text value) pairs; unknown keys are errors.
fn read_toml(path: &Path) -> Result<Vec<(&'static Setting, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::Invalid(format!(
            "MM_EDGE_CONFIG / --config {}: cannot read the file: {e}; give the path of a readable TOML file",
            path.display()
        ))
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::Invalid(format!(
            "{}: not valid TOML: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(inner) => {
                for (k2, v2) in inner {
                    let key = format!("{k}.{k2}");
                    out.push(toml_pair(path, &key, v2)?);
                }
            }
            other => out.push(toml_pair(path, &k, other)?),
        }
    }
    Ok(out)
}

fn toml_pair(
    path: &Path,
    key: &str,
    value: toml::Value,
) -> Result<(&'static Setting, String), ConfigError> {
    let Some(setting) = spec::by_key(key) else {
        return Err(ConfigError::Invalid(format!(
            "{}: unknown key `{key}`; remove it or use one of the keys listed in config/mm-edge.toml",
            path.display()
        )));
    };
    let text = match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::String(s) => parts.push(s),
                    toml::Value::Integer(i) => parts.push(i.to_string()),
                    other => {
                        return Err(ConfigError::Invalid(format!(
                            "{key} in {}: list items must be strings, found {other}",
                            path.display()
                        )))
                    }
                }
            }
            parts.join(" ")
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "{key} = {other} in {}: expected a string, number, boolean or list",
                path.display()
            )))
        }
    };
    Ok((setting, text))
}
