//! mm-edge's own env file (`--env-file`): `NAME=value` lines read at start and again on every
//! SIGHUP, so that a systemd service (whose `EnvironmentFile=` is read only when it starts) can
//! change settings such as the upstream list without a restart.
//!
//! The format is systemd's `EnvironmentFile=` without its rarities: blank lines and lines
//! starting with `#` or `;` are skipped, `export ` before a name is allowed, whitespace around
//! the value is trimmed, and a value in single quotes is taken as written, one in double quotes
//! with `\"`, `\\`, `` \` `` and `\$` unescaped. Nothing is ever expanded: a `$` in a password
//! stays a `$` (the reason this is not `dotenvy`, which expands `$NAME`).

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// The variables of an env file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvFile(HashMap<String, String>);

impl EnvFile {
    /// Reads and parses `path`; `flag` names where the path came from, for errors.
    pub fn read(path: &Path, flag: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::Invalid(format!(
                "{flag} {}: cannot read it ({e}); give a readable file of NAME=value lines",
                path.display()
            ))
        })?;
        Self::parse(&text).map_err(|(line, problem)| {
            ConfigError::Invalid(format!(
                "{flag} {} line {line}: {problem}; write NAME=value, NAME='value' or NAME=\"value\"",
                path.display()
            ))
        })
    }

    /// Parses the text of an env file; an error gives the line (from 1) and the problem.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut vars = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let line = line.strip_prefix("export ").map_or(line, str::trim_start);
            let Some((name, value)) = line.split_once('=') else {
                return Err((n + 1, format!("{line:?} has no '='")));
            };
            let name = name.trim_end();
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err((n + 1, format!("{name:?} is not a variable name")));
            }
            let value = unquote(value.trim()).map_err(|problem| (n + 1, problem))?;
            vars.insert(name.to_string(), value);
        }
        Ok(Self(vars))
    }

    /// The value of `name`, when the file sets it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Where settings' variables are looked up: the process environment, then the env file.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    file: Option<EnvFile>,
}

impl Environment {
    /// The process environment, and `env_file` when given (read now; `flag` names it in
    /// errors).
    pub fn read(env_file: Option<&Path>, flag: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            file: env_file.map(|p| EnvFile::read(p, flag)).transpose()?,
        })
    }

    /// The value of `name`: the process's when set, else the env file's.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| Some(self.file.as_ref()?.get(name)?.to_string()))
    }
}

fn unquote(value: &str) -> Result<String, String> {
    let quote = match value.chars().next() {
        Some(q @ ('\'' | '"')) => q,
        _ => return Ok(value.to_string()),
    };
    let inner = &value[1..];
    let Some(end) = closing(inner, quote) else {
        return Err(format!(
            "the value opens a {quote} quote it does not close (one line per value)"
        ));
    };
    if !inner[end + 1..].trim().is_empty() {
        return Err(format!("text after the closing {quote} quote"));
    }
    let inner = &inner[..end];
    if quote == '\'' {
        return Ok(inner.to_string());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\' | '`' | '$'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Where the closing `quote` is in `inner` (a double quote may be escaped with `\`).
fn closing(inner: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_style_lines() {
        let f = EnvFile::parse(
            "# comment\n; also\n\nA=1\n export B = two words \nC='lit $X \\n'\nD=\"q\\\"x\\\\ $Y\"\nE=\nF=a=b\n",
        )
        .expect("parses");
        assert_eq!(f.get("A"), Some("1"));
        assert_eq!(f.get("B"), Some("two words"));
        assert_eq!(f.get("C"), Some("lit $X \\n"));
        assert_eq!(f.get("D"), Some("q\"x\\ $Y"));
        assert_eq!(f.get("E"), Some(""));
        assert_eq!(f.get("F"), Some("a=b"));
        assert_eq!(f.get("G"), None);
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(EnvFile::parse("A=1\nno equals\n").unwrap_err().0, 2);
        assert_eq!(EnvFile::parse("1A=x").unwrap_err().0, 1);
        assert_eq!(EnvFile::parse("A=\"open").unwrap_err().0, 1);
        assert_eq!(EnvFile::parse("A='x' y").unwrap_err().0, 1);
    }
}
