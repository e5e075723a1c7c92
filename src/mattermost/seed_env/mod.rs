//! The variables of the old docker-mattermost image and where each one lands in modern
//! Mattermost (`seed-env-map.tsv`): the table of variables ([`table`]), the rules that combine
//! several of them ([`rules`]), and the plan of keys to write computed from both.

mod rules;
mod table;

pub use table::OLD_VARS;

use super::{EdgeFacts, Error, Setting, Warning};
use serde_json::Value;

/// Headers the edge sets towards Mattermost, in the order Mattermost should read them.
pub const TRUSTED_PROXY_IP_HEADERS: [&str; 2] = ["X-Forwarded-For", "X-Real-IP"];

/// Mattermost rejects a `TeamSettings.SiteName` longer than this (in bytes: Go's `len`).
const SITE_NAME_MAX_LEN: usize = 30;

/// Mattermost rejects a non-empty salt or at-rest key shorter than this.
const MIN_SECRET_LEN: usize = 32;

/// How mm-edge treats one variable of the old image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Read by mm-edge's own settings and enforced at the edge; the matching Mattermost keys
    /// come from [`EdgeFacts`], never from this variable directly.
    Edge,
    /// Written to one Mattermost key, parsed as `ty`; `note` is logged as a warning when set.
    Key {
        /// Section of config.json, e.g. `ServiceSettings`.
        section: &'static str,
        /// Key inside the section, e.g. `EnableCommands`.
        key: &'static str,
        /// Accepted values and the JSON type written.
        ty: Ty,
        /// Warning emitted whenever the variable is set.
        note: Option<&'static str>,
    },
    /// Written by a rule that combines several variables (names, e-mail, push, database, GitLab).
    Derived,
    /// Its Mattermost key no longer exists: one warning, then skipped.
    Removed(&'static str),
    /// Never reached Mattermost, or must not: one warning, then skipped.
    Ignored(&'static str),
    /// A switch of the old container scripts only: skipped without a warning.
    Silent,
}

/// What a variable must hold, and the JSON type written for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// `true` or `false` (any case); written as a JSON boolean.
    Bool,
    /// An integer at least `min`; written as a JSON number.
    Int {
        /// Smallest accepted value.
        min: i64,
    },
    /// A number of days (at least 1); written as a JSON number of hours (days × 24).
    DaysAsHours,
    /// Any text; written as a JSON string.
    Str,
    /// Text of at least `min_len` bytes; written as a JSON string, never echoed in errors.
    Secret {
        /// Shortest accepted length.
        min_len: usize,
    },
    /// One of the listed words (any case); the listed spelling is written as a JSON string.
    OneOf(&'static [&'static str]),
    /// A TCP port 1-65535; written as a JSON string (Mattermost's `SMTPPort` is a string).
    PortString,
}

/// One variable of the old image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldVar {
    /// The variable's name.
    pub name: &'static str,
    /// What mm-edge does with it.
    pub handling: Handling,
}

const fn key(section: &'static str, key: &'static str, ty: Ty) -> Handling {
    Handling::Key {
        section,
        key,
        ty,
        note: None,
    }
}

const fn key_note(
    section: &'static str,
    key: &'static str,
    ty: Ty,
    note: &'static str,
) -> Handling {
    Handling::Key {
        section,
        key,
        ty,
        note: Some(note),
    }
}

const fn var(name: &'static str, handling: Handling) -> OldVar {
    OldVar { name, handling }
}

const SVC: &str = "ServiceSettings";
const TEAM: &str = "TeamSettings";
const EMAIL: &str = "EmailSettings";
const FILE: &str = "FileSettings";
const SQL: &str = "SqlSettings";
const GITLAB: &str = "GitLabSettings";
const LOCALE: &str = "LocalizationSettings";
const PRIVACY: &str = "PrivacySettings";
const RATE: &str = "RateLimitSettings";

/// The settings to write and the warnings to report, computed once for every target.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub settings: Vec<Setting>,
    pub warnings: Vec<Warning>,
}

impl Plan {
    /// Sets a key; a later value for the same key replaces the earlier one in place.
    fn set(
        &mut self,
        section: &'static str,
        key: &'static str,
        value: Value,
        source: &'static str,
    ) {
        let new = Setting {
            section,
            key,
            value,
            source,
        };
        match self
            .settings
            .iter_mut()
            .find(|s| s.section == section && s.key == key)
        {
            Some(old) => *old = new,
            None => self.settings.push(new),
        }
    }

    fn warn(&mut self, variable: &'static str, message: String) {
        let w = Warning { variable, message };
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}

/// Looks variables up; an empty value counts as unset, as the old image's `${VAR:-default}` did.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn bool(&self, name: &'static str) -> Result<Option<bool>, Error> {
        self.get(name).map(|v| parse_bool(name, &v)).transpose()
    }
}

/// Values of these variables never appear in error messages.
fn is_secret(name: &str) -> bool {
    ["PASS", "SECRET", "SALT", "KEY", "DATASOURCE"]
        .iter()
        .any(|s| name.contains(s))
}

fn bad(name: &str, value: &str, problem: impl Into<String>) -> Error {
    Error::BadValue {
        variable: name.to_string(),
        value: if is_secret(name) {
            "(hidden)".to_string()
        } else {
            value.to_string()
        },
        problem: problem.into(),
    }
}

fn parse_bool(name: &str, raw: &str) -> Result<bool, Error> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(name, raw, "expected true or false")),
    }
}

fn parse_int(name: &str, raw: &str, min: i64) -> Result<i64, Error> {
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(n),
        _ if min == 0 => Err(bad(name, raw, "expected a whole number, 0 or more")),
        _ if min == 1 => Err(bad(name, raw, "expected a whole number, 1 or more")),
        _ => Err(bad(
            name,
            raw,
            format!("expected a whole number, {min} or more"),
        )),
    }
}

fn parse_port(name: &str, raw: &str) -> Result<u16, Error> {
    match raw.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad(name, raw, "expected a port number from 1 to 65535")),
    }
}

/// Parses one variable as `ty` into the JSON value Mattermost expects.
fn parse(name: &str, raw: &str, ty: Ty) -> Result<Value, Error> {
    Ok(match ty {
        Ty::Bool => Value::Bool(parse_bool(name, raw)?),
        Ty::Int { min } => Value::from(parse_int(name, raw, min)?),
        Ty::DaysAsHours => {
            let days = parse_int(name, raw, 1)?;
            let hours = days
                .checked_mul(24)
                .ok_or_else(|| bad(name, raw, "too many days"))?;
            Value::from(hours)
        }
        Ty::Str => Value::String(raw.to_string()),
        Ty::Secret { min_len } => {
            if raw.len() < min_len {
                return Err(bad(
                    name,
                    raw,
                    format!(
                        "Mattermost refuses a value shorter than {min_len} characters \
                         (generate one with `pwgen -s 64 1`)"
                    ),
                ));
            }
            Value::String(raw.to_string())
        }
        Ty::OneOf(words) => {
            let word = words
                .iter()
                .find(|w| w.eq_ignore_ascii_case(raw.trim()))
                .ok_or_else(|| bad(name, raw, format!("expected one of: {}", words.join(", "))))?;
            Value::String((*word).to_string())
        }
        Ty::PortString => Value::String(parse_port(name, raw)?.to_string()),
    })
}

/// Computes every key to write: the edge's facts, then each variable of the old image that is set.
pub(crate) fn plan(
    facts: &EdgeFacts,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Error> {
    let env = Env(lookup);
    let mut p = Plan::default();
    edge(&mut p, facts);
    for v in OLD_VARS {
        let Some(raw) = env.get(v.name) else { continue };
        match v.handling {
            Handling::Edge | Handling::Derived | Handling::Silent => {}
            Handling::Key {
                section,
                key,
                ty,
                note,
            } => {
                let value = parse(v.name, &raw, ty)?;
                if ty == Ty::DaysAsHours {
                    p.warn(
                        v.name,
                        format!(
                            "written as {section}.{key}={value}: Mattermost counts session \
                             length in hours since 7.0 (days x 24)"
                        ),
                    );
                }
                if let Some(note) = note {
                    p.warn(v.name, note.to_string());
                }
                p.set(section, key, value, v.name);
            }
            Handling::Removed(why) | Handling::Ignored(why) => {
                p.warn(v.name, format!("ignored: {why}"));
            }
        }
    }
    rules::site_name(&mut p, &env)?;
    rules::email(&mut p, &env, facts)?;
    rules::push(&mut p, &env)?;
    rules::public_links(&mut p, &env)?;
    rules::locales(&env)?;
    rules::database(&mut p, &env)?;
    rules::gitlab(&mut p, &env)?;
    Ok(p)
}

/// The edge's own facts: public URL, no TLS in Mattermost, the client-IP headers, CORS, rate limits.
fn edge(p: &mut Plan, f: &EdgeFacts) {
    const E: &str = "mm-edge";
    p.set(SVC, "SiteURL", Value::from(f.site_url.as_str()), E);
    p.set(SVC, "ConnectionSecurity", Value::from(""), E);
    p.set(SVC, "TLSCertFile", Value::from(""), E);
    p.set(SVC, "TLSKeyFile", Value::from(""), E);
    p.set(SVC, "UseLetsEncrypt", Value::Bool(false), E);
    p.set(SVC, "Forward80To443", Value::Bool(false), E);
    p.set(
        SVC,
        "TrustedProxyIPHeader",
        Value::from(TRUSTED_PROXY_IP_HEADERS.to_vec()),
        E,
    );
    p.set(
        SVC,
        "AllowCorsFrom",
        Value::from(f.cors_domains.join(" ")),
        E,
    );
    p.set(
        SVC,
        "CorsExposedHeaders",
        Value::from(f.cors_exposed_headers.join(" ")),
        E,
    );
    p.set(
        SVC,
        "CorsAllowCredentials",
        Value::Bool(f.cors_allow_credentials),
        E,
    );
    // The edge enforces the limits; Mattermost shows them but must not count requests twice.
    p.set(RATE, "Enable", Value::Bool(false), E);
    p.set(RATE, "PerSec", Value::from(f.rate_limit_per_sec), E);
    p.set(RATE, "MaxBurst", Value::from(f.rate_limit_max_burst), E);
    p.set(
        RATE,
        "MemoryStoreSize",
        Value::from(f.rate_limit_sessions),
        E,
    );
    p.set(RATE, "VaryByRemoteAddr", Value::Bool(f.rate_limit_by_ip), E);
    // Mattermost's VaryByHeader names one header; the edge may key on several.
    let first = f
        .rate_limit_headers
        .first()
        .map(String::as_str)
        .unwrap_or("");
    p.set(RATE, "VaryByHeader", Value::from(first), E);
    if f.rate_limit_headers.len() > 1 {
        p.warn(
            crate::config::spec::RATE_LIMIT_HEADERS.env,
            format!(
                "Mattermost's RateLimitSettings.VaryByHeader holds one header name: wrote {first:?}; \
                 mm-edge itself keys its rate limit on all of {:?}",
                f.rate_limit_headers
            ),
        );
    }
}
