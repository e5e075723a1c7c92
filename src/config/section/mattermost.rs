//! `[mattermost]`: where Mattermost's configuration is written.

use std::path::PathBuf;

use serde::Deserialize;

use super::super::layers::Resolver;
use super::super::spec;
use super::super::value::OptionalPath;
use super::super::ConfigError;
use super::F;

/// Where Mattermost's configuration is written.
#[derive(Debug, Clone, Default)]
pub struct Mattermost {
    /// config.json to merge into.
    pub config_file: Option<PathBuf>,
    /// Env file of MM_* overrides.
    pub env_file: Option<PathBuf>,
}

/// `[mattermost]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    config_file: F<OptionalPath>,
    env_file: F<OptionalPath>,
}

impl Mattermost {
    /// Builds the section.
    pub(in crate::config) fn build(r: &mut Resolver<'_>, file: File) -> Result<Self, ConfigError> {
        Ok(Self {
            config_file: r.take(&spec::MATTERMOST_CONFIG, file.config_file)?,
            env_file: r.take(&spec::MATTERMOST_ENV_FILE, file.env_file)?,
        })
    }
}
