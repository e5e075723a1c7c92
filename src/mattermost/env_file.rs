//! The env file: one `MM_SECTION_KEY=value` line per key, for Mattermost's environment
//! overrides (config kept in the database, or compose's `env_file`).

use super::{Error, Setting};
use serde_json::Value;
use std::path::Path;

/// First lines of the env file.
const HEADER: &str = "# Written by mm-edge at every start; edit mm-edge's settings, not this file.\n\
# Mattermost reads each MM_SECTION_KEY as an override of config.json (locked in the System Console).\n";

/// Mattermost's environment override name of a key: `MM_` + section + `_` + key, upper case.
pub fn env_name(section: &str, key: &str) -> String {
    format!(
        "MM_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    )
}

/// A value as Mattermost reads it from the environment: lists space-separated.
fn env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Renders the whole env file. Values are written unquoted (docker `--env-file` takes them
/// literally); a line break cannot be represented and is refused.
pub(crate) fn render(settings: &[Setting], path: &Path) -> Result<Vec<u8>, Error> {
    let mut out = String::from(HEADER);
    for s in settings {
        let name = env_name(s.section, s.key);
        let value = env_value(&s.value);
        if value.contains(['\n', '\r', '\0']) {
            return Err(Error::EnvFileValue {
                path: path.to_path_buf(),
                variable: name,
                from: s.source,
            });
        }
        out.push_str(&name);
        out.push('=');
        out.push_str(&value);
        out.push('\n');
    }
    Ok(out.into_bytes())
}
