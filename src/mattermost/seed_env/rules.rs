//! The old image's rules that derive Mattermost keys from several variables: names, e-mail,
//! push notifications, public links, locales, the database and GitLab sign-in.

use serde_json::Value;

use super::super::{EdgeFacts, Error};
use super::*;

/// MATTERMOST_NAME fills both the site name and the e-mail sender name.
pub(super) fn site_name(p: &mut Plan, env: &Env) -> Result<(), Error> {
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
pub(super) fn email(p: &mut Plan, env: &Env, facts: &EdgeFacts) -> Result<(), Error> {
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
pub(super) fn push(p: &mut Plan, env: &Env) -> Result<(), Error> {
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
pub(super) fn public_links(p: &mut Plan, env: &Env) -> Result<(), Error> {
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
pub(super) fn locales(env: &Env) -> Result<(), Error> {
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
pub(super) fn database(p: &mut Plan, env: &Env) -> Result<(), Error> {
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
pub(super) fn gitlab(p: &mut Plan, env: &Env) -> Result<(), Error> {
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
