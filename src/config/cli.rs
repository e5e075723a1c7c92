//! The command line: subcommands, `--config`, and one flag per setting generated from the spec.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command};

use super::spec::{Setting, SETTINGS};

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Serve (the default).
    Run,
    /// Validate and print the effective settings; exit 0 or 2.
    Check,
    /// Write Mattermost's configuration and exit.
    WriteMattermostConfig,
    /// Exit 0 only when a running edge answers on its listener.
    Healthcheck,
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Cli {
    /// Subcommand.
    pub action: Action,
    /// TOML file (`--config` or its environment variable).
    pub config: Option<PathBuf>,
    /// Env file read at start and on SIGHUP (`--env-file` or its environment variable).
    pub env_file: Option<PathBuf>,
    /// Per-setting flags given, highest layer.
    pub overrides: Vec<(&'static Setting, String)>,
}

impl Cli {
    /// Where settings' variables come from: the process environment and the env file, read
    /// now (again on every reload).
    pub fn environment(&self) -> Result<super::env_file::Environment, super::ConfigError> {
        super::env_file::Environment::read(self.env_file.as_deref(), "--env-file")
    }

    /// The settings, layered from everything given (the files read now).
    pub fn load(&self) -> Result<super::Settings, super::ConfigError> {
        let environment = self.environment()?;
        super::Settings::load(
            self.config.as_deref(),
            &|name| environment.get(name),
            &self.overrides,
        )
    }
}

fn command() -> Command {
    let mut cmd = Command::new("mm-edge")
        .version(env!("CARGO_PKG_VERSION"))
        .about("HTTPS edge proxy for Mattermost: TLS, redirects, rate limits, CORS, config writer")
        .after_help(
            "Settings layer as: defaults < TOML file < environment < flags. \
             Every setting has an environment variable and a flag; see README.md.",
        )
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .env(super::spec::CONFIG_FILE_ENV)
                .value_name("PATH")
                .global(true)
                .help("TOML settings file"),
        )
        .arg(
            Arg::new("env-file")
                .long("env-file")
                .env(super::spec::ENV_FILE_ENV)
                .value_name("PATH")
                .global(true)
                .help("NAME=value settings file, read at start and on SIGHUP (the process environment wins)"),
        )
        .subcommand(Command::new("run").about("Serve (default)"))
        .subcommand(
            Command::new("check")
                .about("Validate the settings, print them (secrets redacted), exit 0 or 2"),
        )
        .subcommand(
            Command::new("write-mattermost-config")
                .about("Write Mattermost's config.json / env file and exit"),
        )
        .subcommand(
            Command::new("healthcheck")
                .about("Exit 0 only when the running edge answers on its listener"),
        );
    for &s in SETTINGS {
        cmd = cmd.arg(
            Arg::new(s.key)
                .long(s.flag())
                .value_name("VALUE")
                .action(ArgAction::Set)
                .global(true)
                .hide_short_help(true)
                .help(format!("{} [env: {}]", s.doc, s.env)),
        );
    }
    cmd
}

/// Parses arguments (the first is the program name). Errors carry clap's exit code 2.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let m = command().try_get_matches_from(args)?;
    let action = match m.subcommand_name() {
        None | Some("run") => Action::Run,
        Some("check") => Action::Check,
        Some("write-mattermost-config") => Action::WriteMattermostConfig,
        Some(_) => Action::Healthcheck,
    };
    let sub = m.subcommand().map_or(&m, |(_, sm)| sm);
    let config = sub
        .get_one::<String>("config")
        .or_else(|| m.get_one::<String>("config"))
        .map(PathBuf::from);
    let env_file = sub
        .get_one::<String>("env-file")
        .or_else(|| m.get_one::<String>("env-file"))
        .map(PathBuf::from);
    let mut overrides = Vec::new();
    for &s in SETTINGS {
        if let Some(v) = sub
            .get_one::<String>(s.key)
            .or_else(|| m.get_one::<String>(s.key))
        {
            overrides.push((s, v.clone()));
        }
    }
    Ok(Cli {
        action,
        config,
        env_file,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_generated_from_the_spec() {
        let cli = parse_from([
            "mm-edge",
            "check",
            "--rate-limit-per-sec",
            "5",
            "--config",
            "x.toml",
            "--env-file",
            "e.env",
        ])
        .expect("parses");
        assert_eq!(cli.action, Action::Check);
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert_eq!(cli.env_file, Some(PathBuf::from("e.env")));
        assert_eq!(cli.overrides.len(), 1);
        assert_eq!(cli.overrides[0].0.key, "rate_limit.per_sec");
        let cli = parse_from(["mm-edge", "--site-host", "a.example"]).expect("parses");
        assert_eq!(cli.action, Action::Run);
        assert_eq!(cli.overrides[0].1, "a.example");
        assert!(parse_from(["mm-edge", "--no-such-flag"]).is_err());
    }
}
