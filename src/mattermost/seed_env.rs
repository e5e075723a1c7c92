//! The variables of the old docker-mattermost image and where each one lands in modern
//! Mattermost (`seed-env-map.tsv`), plus the image's derived rules.

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

/// Every variable documented or read by the old image, in the order of `seed-env-map.tsv`.
pub const OLD_VARS: &[OldVar] = &[
    var("DEBUG", Handling::Silent),
    var("MATTERMOST_NAME", Handling::Derived),
    var("MATTERMOST_SITE_URL", Handling::Edge),
    var(
        "MATTERMOST_WEBSERVER_MODE",
        key(SVC, "WebserverMode", Ty::OneOf(&["gzip", "uncompressed", "disabled"])),
    ),
    var(
        "MATTERMOST_PORT",
        Handling::Ignored(
            "the old image ignored it since 2016 (Mattermost always listened on :80 inside it); \
             Mattermost's listen address must match mm-edge's upstream, so mm-edge leaves \
             ServiceSettings.ListenAddress alone (set MM_SERVICESETTINGS_LISTENADDRESS on the \
             Mattermost container if you really need another port)",
        ),
    ),
    var("MATTERMOST_HOST", Handling::Edge),
    var(
        "MATTERMOST_SCHEME",
        Handling::Ignored(
            "the old image never used it; the scheme is part of the site URL mm-edge writes",
        ),
    ),
    var("MATTERMOST_HTTPS", Handling::Edge),
    var(
        "MATTERMOST_ENABLE_EMAIL_SIGNUP",
        key(EMAIL, "EnableSignUpWithEmail", Ty::Bool),
    ),
    var(
        "MATTERMOST_SECRET_KEY",
        key_note(
            SQL,
            "AtRestEncryptKey",
            Ty::Secret { min_len: MIN_SECRET_LEN },
            "written to SqlSettings.AtRestEncryptKey, a legacy setting: current Mattermost \
             encrypts nothing with it",
        ),
    ),
    var(
        "MATTERMOST_RESET_SALT",
        Handling::Removed(
            "EmailSettings.PasswordResetSalt was removed in Mattermost 3.9 (reset e-mails use tokens)",
        ),
    ),
    var(
        "MATTERMOST_INVITE_SALT",
        Handling::Removed(
            "EmailSettings.InviteSalt was removed in Mattermost 5.10 (invitations use tokens)",
        ),
    ),
    var(
        "MATTERMOST_LINK_SALT",
        key(FILE, "PublicLinkSalt", Ty::Secret { min_len: MIN_SECRET_LEN }),
    ),
    var(
        "MATTERMOST_MAX_LOGIN_ATTEMPTS",
        key(SVC, "MaximumLoginAttempts", Ty::Int { min: 1 }),
    ),
    var(
        "MATTERMOST_SEGMENT_KEY",
        Handling::Removed("ServiceSettings.SegmentDeveloperKey was removed in Mattermost 3.7"),
    ),
    var("MATTERMOST_GOOGLE_KEY", key(SVC, "GoogleDeveloperKey", Ty::Str)),
    var(
        "MATTERMOST_RESTRICT_DIRECT_MESSAGE",
        key(TEAM, "RestrictDirectMessage", Ty::OneOf(&["any", "team"])),
    ),
    var("MATTERMOST_ENABLE_CUSTOM_EMOJI", key(SVC, "EnableCustomEmoji", Ty::Bool)),
    var(
        "MATTERMOST_ENABLE_ADMIN_INTEGRATIONS",
        Handling::Removed(
            "ServiceSettings.EnableOnlyAdminIntegrations became a permission in Mattermost 4.9 and \
             left config.json in 6.0; set the integration permissions in System Console > User \
             Management > Permissions",
        ),
    ),
    var("MATTERMOST_ENABLE_SLASH_COMMANDS", key(SVC, "EnableCommands", Ty::Bool)),
    var(
        "MATTERMOST_ENABLE_INCOMING_WEBHOOKS",
        key(SVC, "EnableIncomingWebhooks", Ty::Bool),
    ),
    var(
        "MATTERMOST_ENABLE_OUTGOING_WEBHOOKS",
        key(SVC, "EnableOutgoingWebhooks", Ty::Bool),
    ),
    var(
        "MATTERMOST_WEBHOOK_OVERRIDE_USERNAME",
        key(SVC, "EnablePostUsernameOverride", Ty::Bool),
    ),
    var(
        "MATTERMOST_WEBHOOK_OVERRIDE_ICON",
        key(SVC, "EnablePostIconOverride", Ty::Bool),
    ),
    var("MATTERMOST_ENABLE_ALERTS", key(SVC, "EnableSecurityFixAlert", Ty::Bool)),
    var(
        "MATTERMOST_ENABLE_INSECURE_CONNECTIONS",
        key(SVC, "EnableInsecureOutgoingConnections", Ty::Bool),
    ),
    var("MATTERMOST_CORS_DOMAINS", Handling::Edge),
    var(
        "MATTERMOST_WEB_SESSION_DAYS",
        key(SVC, "SessionLengthWebInHours", Ty::DaysAsHours),
    ),
    var(
        "MATTERMOST_MOBILE_SESSION_DAYS",
        key(SVC, "SessionLengthMobileInHours", Ty::DaysAsHours),
    ),
    var(
        "MATTERMOST_SSO_SESSION_DAYS",
        key(SVC, "SessionLengthSSOInHours", Ty::DaysAsHours),
    ),
    var(
        "MATTERMOST_SESSION_CACHE",
        key(SVC, "SessionCacheInMinutes", Ty::Int { min: 0 }),
    ),
    var("MATTERMOST_MAX_USERS", key(TEAM, "MaxUsersPerTeam", Ty::Int { min: 1 })),
    var(
        "MATTERMOST_CREATE_TEAMS",
        Handling::Removed(
            "TeamSettings.EnableTeamCreation became the create_team permission in Mattermost 4.9 \
             and left config.json in 6.0; set it in System Console > User Management > Permissions",
        ),
    ),
    var("MATTERMOST_CREATE_USERS", key(TEAM, "EnableUserCreation", Ty::Bool)),
    var("MATTERMOST_OPEN_SERVER", key(TEAM, "EnableOpenServer", Ty::Bool)),
    var(
        "MATTERMOST_USER_DOMAINS",
        key(TEAM, "RestrictCreationToDomains", Ty::Str),
    ),
    var(
        "MATTERMOST_RESTRICT_TEAM_NAMES",
        Handling::Removed("TeamSettings.RestrictTeamNames was removed in Mattermost 3.5"),
    ),
    var(
        "MATTERMOST_TEAM_DIRECTORY",
        Handling::Removed("TeamSettings.EnableTeamListing was removed in Mattermost 3.0"),
    ),
    var("MATTERMOST_EMAIL_SIGNIN", key(EMAIL, "EnableSignInWithEmail", Ty::Bool)),
    var(
        "MATTERMOST_USERNAME_SIGNIN",
        key(EMAIL, "EnableSignInWithUsername", Ty::Bool),
    ),
    var("MATTERMOST_EMAIL", key(EMAIL, "FeedbackEmail", Ty::Str)),
    var(
        "MATTERMOST_SUPPORT_EMAIL",
        key("SupportSettings", "SupportEmail", Ty::Str),
    ),
    var("MATTERMOST_EMAIL_NOTIFICATIONS", Handling::Derived),
    var("MATTERMOST_EMAIL_VERIFICATION", Handling::Derived),
    var("MATTERMOST_ENABLE_EMAIL_BATCHING", Handling::Derived),
    var("MATTERMOST_PUSH_SERVER", key(EMAIL, "PushNotificationServer", Ty::Str)),
    var("MATTERMOST_ENABLE_PUSH_NOTIFICATIONS", Handling::Derived),
    var("MATTERMOST_PUSH_FULL_MESSAGE", Handling::Derived),
    var("MATTERMOST_PUSH_CONTENTS", Handling::Derived),
    var("MATTERMOST_MAX_FILE_SIZE", key(FILE, "MaxFileSize", Ty::Int { min: 1 })),
    var("MATTERMOST_ENABLE_PUBLIC_LINKS", Handling::Derived),
    var("MATTERMOST_DATA_DIR", key(FILE, "Directory", Ty::Str)),
    var("MATTERMOST_LOG_DIR", key("LogSettings", "FileLocation", Ty::Str)),
    var("MATTERMOST_ENABLE_RATE_LIMIT", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_QPS", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_SESSIONS", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_BY_IP", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_HEADERS", Handling::Edge),
    var("MATTERMOST_SHOW_EMAIL", key(PRIVACY, "ShowEmailAddress", Ty::Bool)),
    var("MATTERMOST_SHOW_NAME", key(PRIVACY, "ShowFullName", Ty::Bool)),
    var(
        "MATTERMOST_SERVER_LOCALE",
        key(LOCALE, "DefaultServerLocale", Ty::Str),
    ),
    var(
        "MATTERMOST_CLIENT_LOCALE",
        key(LOCALE, "DefaultClientLocale", Ty::Str),
    ),
    var("MATTERMOST_LOCALES", key(LOCALE, "AvailableLocales", Ty::Str)),
    var(
        "MATTERMOST_MIGRATION_DEFAULT_TEAM",
        Handling::Ignored(
            "it only fed the one-off Mattermost 2.x to 3.0 database migration, long gone",
        ),
    ),
    var("DB_ADAPTER", Handling::Derived),
    var("DB_HOST", Handling::Derived),
    var("DB_PORT", Handling::Derived),
    var("DB_NAME", Handling::Derived),
    var("DB_USER", Handling::Derived),
    var("DB_PASS", Handling::Derived),
    var("DB_ENCODING", Handling::Derived),
    var("MATTERMOST_DATASOURCE", Handling::Derived),
    var(
        "DB_ROOT_PASS",
        Handling::Ignored("the old image never used it (removed from the image in 2016)"),
    ),
    var("MYSQL_PORT_3306_TCP_ADDR", Handling::Derived),
    var("MYSQL_PORT_3306_TCP_PORT", Handling::Derived),
    var("MYSQL_ENV_MYSQL_USER", Handling::Derived),
    var("MYSQL_ENV_MYSQL_PASSWORD", Handling::Derived),
    var("MYSQL_ENV_MYSQL_DATABASE", Handling::Derived),
    var("POSTGRES_PORT_5432_TCP_ADDR", Handling::Derived),
    var("POSTGRES_PORT_5432_TCP_PORT", Handling::Derived),
    var("POSTGRES_ENV_POSTGRES_USER", Handling::Derived),
    var("POSTGRES_ENV_POSTGRES_PASSWORD", Handling::Derived),
    var("POSTGRES_ENV_POSTGRES_DB", Handling::Derived),
    var("SMTP_HOST", key(EMAIL, "SMTPServer", Ty::Str)),
    var("SMTP_PORT", key(EMAIL, "SMTPPort", Ty::PortString)),
    var("SMTP_USER", key(EMAIL, "SMTPUsername", Ty::Str)),
    var("SMTP_PASS", key(EMAIL, "SMTPPassword", Ty::Secret { min_len: 0 })),
    var(
        "SMTP_SECURITY",
        key(EMAIL, "ConnectionSecurity", Ty::OneOf(&["TLS", "STARTTLS", "PLAIN"])),
    ),
    var(
        "SMTP_TLS",
        Handling::Ignored("it had no effect in the old image; use SMTP_SECURITY=TLS or STARTTLS"),
    ),
    var(
        "SMTP_DOMAIN",
        Handling::Ignored("the old image never read it (it only appeared in a README example)"),
    ),
    var("GITLAB_ID", key(GITLAB, "Id", Ty::Str)),
    var("GITLAB_SECRET", key(GITLAB, "Secret", Ty::Secret { min_len: 0 })),
    var("GITLAB_SCOPE", key(GITLAB, "Scope", Ty::Str)),
    var("GITLAB_AUTH_ENDPOINT", key(GITLAB, "AuthEndpoint", Ty::Str)),
    var("GITLAB_TOKEN_ENDPOINT", key(GITLAB, "TokenEndpoint", Ty::Str)),
    var("GITLAB_API_ENDPOINT", key(GITLAB, "UserAPIEndpoint", Ty::Str)),
    var("GITLAB_ENABLE", Handling::Derived),
    var(
        "NGINX_X_FORWARDED_PROTO",
        Handling::Ignored("it configured the old embedded nginx; mm-edge sets X-Forwarded-Proto itself"),
    ),
    var(
        "NGINX_HOST",
        Handling::Ignored(
            "it configured the sample nginx container, which mm-edge replaces; the public host \
             is part of mm-edge's site URL",
        ),
    ),
];

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
    site_name(&mut p, &env)?;
    email(&mut p, &env, facts)?;
    push(&mut p, &env)?;
    public_links(&mut p, &env)?;
    locales(&env)?;
    database(&mut p, &env)?;
    gitlab(&mut p, &env)?;
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
            "MATTERMOST_RATE_LIMIT_HEADERS",
            format!(
                "Mattermost's RateLimitSettings.VaryByHeader holds one header name: wrote {first:?}; \
                 mm-edge itself keys its rate limit on all of {:?}",
                f.rate_limit_headers
            ),
        );
    }
}

/// MATTERMOST_NAME fills both the site name and the e-mail sender name.
fn site_name(p: &mut Plan, env: &Env) -> Result<(), Error> {
    const N: &str = "MATTERMOST_NAME";
    let Some(name) = env.get(N) else {
        return Ok(());
    };
    if name.len() > SITE_NAME_MAX_LEN {
        return Err(bad(
            N,
            &name,
            format!(
                "Mattermost refuses a site name (TeamSettings.SiteName) longer than \
                 {SITE_NAME_MAX_LEN} bytes"
            ),
        ));
    }
    p.set(TEAM, "SiteName", Value::from(name.as_str()), N);
    p.set(EMAIL, "FeedbackName", Value::from(name), N);
    Ok(())
}

/// A switch that the old image forced off when the variable it depends on (`gate`) was empty,
/// and turned on by default when it was set. Returns `None` when neither is set.
fn gated(
    p: &mut Plan,
    env: &Env,
    name: &'static str,
    gate: &str,
    gate_set: bool,
    default: Option<bool>,
) -> Result<Option<bool>, Error> {
    Ok(match (gate_set, env.bool(name)?) {
        (true, Some(v)) => Some(v),
        (true, None) => default,
        (false, Some(true)) => {
            p.warn(
                name,
                format!("{gate} is not set, so this is written as false (as the old image did)"),
            );
            Some(false)
        }
        (false, v) => v,
    })
}

/// E-mail: notifications and verification follow SMTP_HOST; batching follows notifications;
/// the sender address falls back to SMTP_USER; credentials imply SMTP authentication.
fn email(p: &mut Plan, env: &Env, facts: &EdgeFacts) -> Result<(), Error> {
    let smtp = env.is_set("SMTP_HOST");
    const NOTIF: &str = "MATTERMOST_EMAIL_NOTIFICATIONS";
    let notifications = gated(p, env, NOTIF, "SMTP_HOST", smtp, Some(true))?;
    if let Some(v) = notifications {
        p.set(EMAIL, "SendEmailNotifications", Value::Bool(v), NOTIF);
    }
    const VERIF: &str = "MATTERMOST_EMAIL_VERIFICATION";
    if let Some(v) = gated(p, env, VERIF, "SMTP_HOST", smtp, Some(true))? {
        p.set(EMAIL, "RequireEmailVerification", Value::Bool(v), VERIF);
    }
    const BATCH: &str = "MATTERMOST_ENABLE_EMAIL_BATCHING";
    let has_url = !facts.site_url.is_empty();
    if let Some(v) = gated(p, env, BATCH, "the site URL", has_url, notifications)? {
        p.set(EMAIL, "EnableEmailBatching", Value::Bool(v), BATCH);
    }
    if let Some(user) = env.get("SMTP_USER") {
        if !env.is_set("MATTERMOST_EMAIL") {
            p.set(
                EMAIL,
                "FeedbackEmail",
                Value::from(user.as_str()),
                "SMTP_USER",
            );
        }
        // Modern Mattermost uses the credentials only with EnableSMTPAuth (which defaults to
        // false without SMTP_SECURITY); the old image always used them.
        p.set(EMAIL, "EnableSMTPAuth", Value::Bool(true), "SMTP_USER");
    }
    Ok(())
}

/// Push: notifications follow MATTERMOST_PUSH_SERVER; contents come from PUSH_CONTENTS or,
/// failing that, PUSH_FULL_MESSAGE (true = full, false = generic).
fn push(p: &mut Plan, env: &Env) -> Result<(), Error> {
    const ENABLE: &str = "MATTERMOST_ENABLE_PUSH_NOTIFICATIONS";
    let server = env.is_set("MATTERMOST_PUSH_SERVER");
    if let Some(v) = gated(p, env, ENABLE, "MATTERMOST_PUSH_SERVER", server, Some(true))? {
        p.set(EMAIL, "SendPushNotifications", Value::Bool(v), ENABLE);
    }
    const CONTENTS: &str = "MATTERMOST_PUSH_CONTENTS";
    const FULL: &str = "MATTERMOST_PUSH_FULL_MESSAGE";
    if let Some(raw) = env.get(CONTENTS) {
        let ty = Ty::OneOf(&["generic_no_channel", "generic", "full", "id_loaded"]);
        p.set(
            EMAIL,
            "PushNotificationContents",
            parse(CONTENTS, &raw, ty)?,
            CONTENTS,
        );
        if env.is_set(FULL) {
            p.warn(FULL, format!("ignored: {CONTENTS} is set and wins"));
        }
    } else if let Some(full) = env.bool(FULL)? {
        let contents = if full { "full" } else { "generic" };
        p.set(
            EMAIL,
            "PushNotificationContents",
            Value::from(contents),
            FULL,
        );
    }
    Ok(())
}

/// Public links: as documented by the old image, on by default when a link salt is given.
fn public_links(p: &mut Plan, env: &Env) -> Result<(), Error> {
    const N: &str = "MATTERMOST_ENABLE_PUBLIC_LINKS";
    let value = match env.bool(N)? {
        Some(v) => Some((v, N)),
        None if env.is_set("MATTERMOST_LINK_SALT") => Some((true, "MATTERMOST_LINK_SALT")),
        None => None,
    };
    if let Some((v, source)) = value {
        p.set(FILE, "EnablePublicLink", Value::Bool(v), source);
    }
    Ok(())
}

/// Mattermost refuses AvailableLocales that leave out the default client locale.
fn locales(env: &Env) -> Result<(), Error> {
    const N: &str = "MATTERMOST_LOCALES";
    if let (Some(list), Some(client)) = (env.get(N), env.get("MATTERMOST_CLIENT_LOCALE")) {
        if !list.split(',').any(|l| l.trim() == client.trim()) {
            return Err(bad(
                N,
                &list,
                format!(
                    "Mattermost requires the list to contain MATTERMOST_CLIENT_LOCALE ({client})"
                ),
            ));
        }
    }
    Ok(())
}

const DB_VARS: &[&str] = &[
    "DB_ADAPTER",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASS",
    "DB_ENCODING",
    "MATTERMOST_DATASOURCE",
    "MYSQL_PORT_3306_TCP_ADDR",
    "MYSQL_PORT_3306_TCP_PORT",
    "MYSQL_ENV_MYSQL_USER",
    "MYSQL_ENV_MYSQL_PASSWORD",
    "MYSQL_ENV_MYSQL_DATABASE",
    "POSTGRES_PORT_5432_TCP_ADDR",
    "POSTGRES_PORT_5432_TCP_PORT",
    "POSTGRES_ENV_POSTGRES_USER",
    "POSTGRES_ENV_POSTGRES_PASSWORD",
    "POSTGRES_ENV_POSTGRES_DB",
];

/// The database: DB_* (or the legacy `docker --link` variables) assembled into
/// SqlSettings.DriverName and SqlSettings.DataSource, as the old image built them.
fn database(p: &mut Plan, env: &Env) -> Result<(), Error> {
    if !DB_VARS.iter().any(|v| env.is_set(v)) {
        return Ok(());
    }
    let mysql_link = env.is_set("MYSQL_PORT_3306_TCP_ADDR");
    let pg_link = env.is_set("POSTGRES_PORT_5432_TCP_ADDR");
    let dsn = env.get("MATTERMOST_DATASOURCE");
    let (driver, driver_source) = match env.get("DB_ADAPTER") {
        Some(raw) => {
            let ty = Ty::OneOf(&["postgres", "mysql"]);
            let v = parse("DB_ADAPTER", &raw, ty)?;
            (
                if v == "postgres" { "postgres" } else { "mysql" },
                "DB_ADAPTER",
            )
        }
        None => match &dsn {
            Some(d) if d.starts_with("postgres://") || d.starts_with("postgresql://") => {
                ("postgres", "MATTERMOST_DATASOURCE")
            }
            Some(_) => ("mysql", "MATTERMOST_DATASOURCE"),
            None if mysql_link => ("mysql", "MYSQL_PORT_3306_TCP_ADDR"),
            None if pg_link => ("postgres", "POSTGRES_PORT_5432_TCP_ADDR"),
            None => {
                p.warn(
                    "DB_ADAPTER",
                    "not set: assuming mysql, the old image's default; set DB_ADAPTER=postgres \
                     for PostgreSQL"
                        .to_string(),
                );
                ("mysql", "DB_ADAPTER")
            }
        },
    };
    let mysql = driver == "mysql";
    if mysql {
        p.warn(
            driver_source,
            "the database is MySQL, whose support ended in Mattermost 11: stay on Mattermost \
             10.11 ESR until you have migrated to PostgreSQL (Mattermost's migration-assist tool)"
                .to_string(),
        );
    }
    p.set(SQL, "DriverName", Value::from(driver), driver_source);

    if let Some(dsn) = dsn {
        for v in [
            "DB_HOST",
            "DB_PORT",
            "DB_NAME",
            "DB_USER",
            "DB_PASS",
            "DB_ENCODING",
        ] {
            if env.is_set(v) {
                p.warn(
                    v,
                    "ignored: MATTERMOST_DATASOURCE is set and used as it is".to_string(),
                );
            }
        }
        p.set(SQL, "DataSource", Value::from(dsn), "MATTERMOST_DATASOURCE");
        return Ok(());
    }

    // Explicit DB_* first, then the link of the chosen adapter (as the old image did).
    let link = |mysql_var: &str, pg_var: &str| env.get(if mysql { mysql_var } else { pg_var });
    let host = env
        .get("DB_HOST")
        .or_else(|| link("MYSQL_PORT_3306_TCP_ADDR", "POSTGRES_PORT_5432_TCP_ADDR"))
        .ok_or(Error::MissingVariable {
            variable: "DB_HOST",
            reason: "the database variables (DB_*) are set",
        })?;
    let port = match env.get("DB_PORT") {
        Some(raw) => parse_port("DB_PORT", &raw)?,
        None => match link("MYSQL_PORT_3306_TCP_PORT", "POSTGRES_PORT_5432_TCP_PORT") {
            Some(raw) => parse_port(
                if mysql {
                    "MYSQL_PORT_3306_TCP_PORT"
                } else {
                    "POSTGRES_PORT_5432_TCP_PORT"
                },
                &raw,
            )?,
            None if mysql => 3306,
            None => 5432,
        },
    };
    let name = env
        .get("DB_NAME")
        .or_else(|| link("MYSQL_ENV_MYSQL_DATABASE", "POSTGRES_ENV_POSTGRES_DB"))
        .or_else(|| {
            if mysql {
                None
            } else {
                env.get("POSTGRES_ENV_POSTGRES_USER")
            }
        })
        .unwrap_or_else(|| "mattermost".to_string());
    let user = env
        .get("DB_USER")
        .or_else(|| link("MYSQL_ENV_MYSQL_USER", "POSTGRES_ENV_POSTGRES_USER"))
        .unwrap_or_else(|| "root".to_string());
    let pass = env
        .get("DB_PASS")
        .or_else(|| link("MYSQL_ENV_MYSQL_PASSWORD", "POSTGRES_ENV_POSTGRES_PASSWORD"))
        .unwrap_or_default();
    let source = if env.is_set("DB_HOST") {
        "DB_HOST"
    } else {
        driver_source
    };
    let data_source = if mysql {
        let encoding = env
            .get("DB_ENCODING")
            .unwrap_or_else(|| "utf8mb4,utf8".to_string());
        format!("{user}:{pass}@tcp({host}:{port})/{name}?charset={encoding}")
    } else {
        if env.is_set("DB_ENCODING") {
            p.warn(
                "DB_ENCODING",
                "ignored: it applies to MySQL only".to_string(),
            );
        }
        format!(
            "postgres://{}:{}@{host}:{port}/{name}?sslmode=disable&connect_timeout=10",
            url_userinfo(&user, true),
            url_userinfo(&pass, false)
        )
    };
    p.set(SQL, "DataSource", Value::from(data_source), source);
    Ok(())
}

/// Percent-encodes what would break a postgres:// URL's user or password, keeping existing
/// `%XX` escapes so a value that was already encoded for the old image stays as it was.
fn url_userinfo(s: &str, is_user: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    for (i, &b) in bytes.iter().enumerate() {
        let escaped_already = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        let plain = b.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=".contains(&b)
            || (b == b':' && !is_user)
            || escaped_already;
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const GITLAB_VARS: &[&str] = &[
    "GITLAB_ID",
    "GITLAB_SECRET",
    "GITLAB_SCOPE",
    "GITLAB_AUTH_ENDPOINT",
    "GITLAB_TOKEN_ENDPOINT",
    "GITLAB_API_ENDPOINT",
    "GITLAB_ENABLE",
];

/// GitLab: enabled by default when GITLAB_ID is set, forced off without it; one warning that
/// Team Edition lost GitLab SSO in Mattermost 11.
fn gitlab(p: &mut Plan, env: &Env) -> Result<(), Error> {
    let Some(first) = GITLAB_VARS.iter().find(|v| env.is_set(v)) else {
        return Ok(());
    };
    p.warn(
        first,
        "GitLab SSO left Mattermost Team Edition in Mattermost 11: it needs Mattermost Entry or \
         a commercial plan (or stay on 10.11 ESR)"
            .to_string(),
    );
    const N: &str = "GITLAB_ENABLE";
    if let Some(v) = gated(p, env, N, "GITLAB_ID", env.is_set("GITLAB_ID"), Some(true))? {
        p.set(GITLAB, "Enable", Value::Bool(v), N);
    }
    Ok(())
}
