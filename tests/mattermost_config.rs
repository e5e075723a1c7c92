//! Writing Mattermost's configuration, end to end through the binary: `mm-edge
//! write-mattermost-config` and `mm-edge run` merge the edge's facts and the old
//! docker-mattermost image's variables into a realistic config.json (and/or an env file),
//! keep everything else byte for byte, never rewrite an up-to-date file, and refuse bad input
//! with exit 2 while leaving the file untouched.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use common::{Edge, PATIENCE};

/// A complete modern config.json with non-default values in keys mm-edge does not touch.
const FIXTURE: &str = include_str!("../src/mattermost/testdata/config.json");

/// The subcommand under test.
const WRITE: &[&str] = &["write-mattermost-config"];

/// A fixed, recognisable mtime: a rewrite of the file would replace it with "now".
fn fixed_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)
}

/// A temporary directory holding `content` as config.json.
fn config_dir(content: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.json");
    fs::write(&path, content).expect("write config.json");
    (dir, path)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .expect("open for set_modified")
        .set_modified(t)
        .expect("set mtime");
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .expect("metadata")
        .modified()
        .expect("mtime")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").mode() & 0o7777
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit status `code`, showing stderr when it is not.
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stderr:\n{}",
        stderr(out)
    );
}

/// File names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

fn read_json(path: &Path) -> Value {
    parse(&fs::read_to_string(path).expect("read config.json"))
}

fn at<'a>(doc: &'a Value, section: &str, key: &str) -> &'a Value {
    doc.get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("{section}.{key} missing"))
}

/// stderr lines at WARN level that mention `variable`.
fn warnings_naming<'a>(err: &'a str, variable: &str) -> Vec<&'a str> {
    err.lines()
        .filter(|l| l.contains("WARN") && l.contains(variable))
        .collect()
}

/// Old-image variables of a typical docker-mattermost env file (plus the edge's own ones).
const OLD_IMAGE_ENV: &[(&str, &str)] = &[
    ("MATTERMOST_HOST", "chat.example.com"),
    (
        "MATTERMOST_CORS_DOMAINS",
        "https://a.example.com https://b.example.com",
    ),
    ("MATTERMOST_RATE_LIMIT_QPS", "25"),
    ("SMTP_HOST", "smtp.example.net"),
    ("SMTP_PORT", "465"),
    ("SMTP_USER", "mailer@example.net"),
    ("SMTP_PASS", "p&ss<word>"),
    ("SMTP_SECURITY", "tls"),
    ("DB_ADAPTER", "postgres"),
    ("DB_HOST", "db"),
    ("DB_PORT", "5433"),
    ("DB_NAME", "chat"),
    ("DB_USER", "mm user"),
    ("DB_PASS", "p@ss/w:rd"),
];

/// The keys [`OLD_IMAGE_ENV`] must produce, with their values and JSON types.
fn expected_keys() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        // The edge's facts.
        ("ServiceSettings", "SiteURL", json!("https://chat.example.com")),
        ("ServiceSettings", "ConnectionSecurity", json!("")),
        ("ServiceSettings", "TLSCertFile", json!("")),
        ("ServiceSettings", "TLSKeyFile", json!("")),
        ("ServiceSettings", "UseLetsEncrypt", json!(false)),
        ("ServiceSettings", "Forward80To443", json!(false)),
        (
            "ServiceSettings",
            "TrustedProxyIPHeader",
            json!(["X-Forwarded-For", "X-Real-IP"]),
        ),
        (
            "ServiceSettings",
            "AllowCorsFrom",
            json!("https://a.example.com https://b.example.com"),
        ),
        ("ServiceSettings", "CorsExposedHeaders", json!("")),
        ("ServiceSettings", "CorsAllowCredentials", json!(false)),
        ("RateLimitSettings", "Enable", json!(false)),
        ("RateLimitSettings", "PerSec", json!(25)),
        ("RateLimitSettings", "MaxBurst", json!(100)),
        ("RateLimitSettings", "MemoryStoreSize", json!(10000)),
        ("RateLimitSettings", "VaryByRemoteAddr", json!(true)),
        ("RateLimitSettings", "VaryByHeader", json!("")),
        // The old image's variables and derived rules.
        ("EmailSettings", "SMTPServer", json!("smtp.example.net")),
        ("EmailSettings", "SMTPPort", json!("465")),
        ("EmailSettings", "SMTPUsername", json!("mailer@example.net")),
        ("EmailSettings", "SMTPPassword", json!("p&ss<word>")),
        ("EmailSettings", "ConnectionSecurity", json!("TLS")),
        ("EmailSettings", "FeedbackEmail", json!("mailer@example.net")),
        ("EmailSettings", "EnableSMTPAuth", json!(true)),
        ("EmailSettings", "SendEmailNotifications", json!(true)),
        ("EmailSettings", "RequireEmailVerification", json!(true)),
        ("EmailSettings", "EnableEmailBatching", json!(true)),
        ("SqlSettings", "DriverName", json!("postgres")),
        (
            "SqlSettings",
            "DataSource",
            json!("postgres://mm%20user:p%40ss%2Fw:rd@db:5433/chat?sslmode=disable&connect_timeout=10"),
        ),
    ]
}

/// The lines of a Mattermost-style config.json (sections at depth 1, keys at depth 2), minus
/// those of the `changed` keys (a multi-line value's lines included).
fn lines_except(text: &str, indent: &str, changed: &BTreeSet<(String, String)>) -> Vec<String> {
    let key_of = |line: &str, depth: usize| -> Option<String> {
        let rest = line.strip_prefix(&indent.repeat(depth))?;
        let rest = rest.strip_prefix('"')?;
        rest.split_once("\":").map(|(k, _)| k.to_string())
    };
    let mut out = Vec::new();
    let mut section = String::new();
    let mut skipping_block = false;
    for line in text.lines() {
        if skipping_block {
            let closes = line
                .strip_prefix(&indent.repeat(2))
                .is_some_and(|r| r.starts_with(']') || r.starts_with('}'));
            if closes {
                skipping_block = false;
            }
            continue;
        }
        if line.starts_with(indent) && !line.starts_with(&indent.repeat(2)) {
            if let Some(s) = key_of(line, 1) {
                section = s;
            }
        }
        if line.starts_with(&indent.repeat(2)) && !line.starts_with(&indent.repeat(3)) {
            if let Some(k) = key_of(line, 2) {
                if changed.contains(&(section.clone(), k)) {
                    let t = line.trim_end_matches(',');
                    skipping_block = t.ends_with('[') || t.ends_with('{');
                    continue;
                }
            }
        }
        out.push(line.to_string());
    }
    out
}

/// The central scenario: a realistic config.json plus an old image's env file.
#[test]
fn write_merges_edge_facts_and_old_image_variables_and_keeps_everything_else() {
    let (dir, config) = config_dir(FIXTURE);
    fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).expect("chmod");
    let mut env = OLD_IMAGE_ENV.to_vec();
    env.push(("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)));
    let out = common::run(&env, WRITE);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("status=Updated"),
        "the log says the file was updated:\n{err}"
    );
    assert!(
        !err.contains("WARN"),
        "no warning for a clean postgres setup:\n{err}"
    );

    let old = parse(FIXTURE);
    let text = fs::read_to_string(&config).expect("read config.json");
    let new = parse(&text);

    // Every intended key holds its value, of Mattermost's type.
    let expected = expected_keys();
    for (section, key, value) in &expected {
        assert_eq!(at(&new, section, key), value, "{section}.{key}");
    }
    // Nothing else changed: a JSON diff of the two documents shows only the intended keys.
    let intended: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(s, k, _)| (s.to_string(), k.to_string()))
        .collect();
    let (old_root, new_root) = (
        old.as_object().expect("object"),
        new.as_object().expect("object"),
    );
    let mut changed = BTreeSet::new();
    for (section, new_section) in new_root {
        let old_section = &old_root[section.as_str()];
        let (Some(o), Some(n)) = (old_section.as_object(), new_section.as_object()) else {
            assert_eq!(old_section, new_section, "top-level {section}");
            continue;
        };
        for (key, value) in n {
            if o.get(key) != Some(value) {
                let id = (section.clone(), key.clone());
                assert!(
                    intended.contains(&id),
                    "{section}.{key} changed but mm-edge should not write it"
                );
                changed.insert(id);
            }
        }
        assert!(
            o.keys().all(|k| n.contains_key(k)),
            "a key of {section} disappeared"
        );
    }
    for must_change in [
        ("ServiceSettings", "SiteURL"),
        ("ServiceSettings", "ConnectionSecurity"),
        ("ServiceSettings", "TrustedProxyIPHeader"),
        ("RateLimitSettings", "Enable"),
        ("RateLimitSettings", "PerSec"),
        ("EmailSettings", "SMTPServer"),
        ("SqlSettings", "DataSource"),
    ] {
        let id = (must_change.0.to_string(), must_change.1.to_string());
        assert!(changed.contains(&id), "{must_change:?} should have changed");
    }

    // Key order kept: sections and keys in their original order (the fixture has them all).
    let old_order: Vec<_> = old_root.keys().collect();
    let new_order: Vec<_> = new_root.keys().collect();
    assert_eq!(old_order, new_order, "section order");
    for (section, o) in old_root {
        if let (Some(o), Some(n)) = (o.as_object(), new_root[section.as_str()].as_object()) {
            let o: Vec<_> = o.keys().collect();
            let n: Vec<_> = n.keys().collect();
            assert_eq!(o, n, "key order in {section}");
        }
    }

    // Mattermost's layout kept: apart from the changed keys' lines, every line is identical
    // (4-space indent, Go's \u0026 escapes), and new strings are escaped the same way.
    let kept = lines_except(FIXTURE, "    ", &changed);
    assert!(kept.len() > 600, "the comparison covers the whole file");
    assert_eq!(
        kept,
        lines_except(&text, "    ", &changed),
        "lines outside the changed keys"
    );
    assert_eq!(FIXTURE.ends_with('\n'), text.ends_with('\n'));
    assert!(
        text.contains(r#""SMTPPassword": "p\u0026ss\u003cword\u003e","#),
        "Go-style escapes:\n{text}"
    );
    assert!(text.contains(r"chat?sslmode=disable\u0026connect_timeout=10"));

    // One backup of the previous content; permissions kept; no temporary file left behind.
    let bak = dir.path().join("config.json.bak");
    assert_eq!(fs::read_to_string(&bak).expect("backup"), FIXTURE);
    assert_eq!(mode(&config), 0o640, "config.json keeps its mode");
    assert_eq!(mode(&bak), 0o640, "the backup is as private as the file");
    assert_eq!(listing(dir.path()), ["config.json", "config.json.bak"]);
}

#[test]
fn second_run_leaves_content_and_mtime_untouched() {
    let (dir, config) = config_dir(FIXTURE);
    let mut env = OLD_IMAGE_ENV.to_vec();
    env.push(("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)));
    assert_exit(&common::run(&env, WRITE), 0);
    let first = fs::read(&config).expect("read");
    assert_ne!(first, FIXTURE.as_bytes(), "the first run changes the file");
    set_mtime(&config, fixed_mtime());
    let inode = fs::metadata(&config).expect("metadata").ino();

    let out = common::run(&env, WRITE);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("status=Unchanged"), "{err}");
    assert!(!err.contains("status=Updated"), "{err}");
    assert_eq!(fs::read(&config).expect("read"), first, "same bytes");
    assert_eq!(mtime(&config), fixed_mtime(), "not rewritten: same mtime");
    assert_eq!(
        fs::metadata(&config).expect("metadata").ino(),
        inode,
        "not replaced"
    );
    let bak = fs::read_to_string(dir.path().join("config.json.bak")).expect("backup");
    assert_eq!(
        bak, FIXTURE,
        "the backup still holds the content before mm-edge's change"
    );
    assert_eq!(listing(dir.path()), ["config.json", "config.json.bak"]);
}

#[test]
fn missing_config_is_created_with_only_the_written_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.json");
    let mut env = OLD_IMAGE_ENV.to_vec();
    env.push(("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)));
    let out = common::run(&env, WRITE);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("status=Created"), "{}", stderr(&out));
    let doc = read_json(&config);
    let expected = expected_keys();
    let mut written = 0;
    for (section, keys) in doc.as_object().expect("object") {
        for (key, value) in keys.as_object().expect("section object") {
            let want = expected
                .iter()
                .find(|(s, k, _)| s == section && k == key)
                .unwrap_or_else(|| panic!("{section}.{key} should not be written"));
            assert_eq!(value, &want.2, "{section}.{key}");
            written += 1;
        }
    }
    assert_eq!(written, expected.len());
    assert_eq!(mode(&config), 0o600, "it may hold passwords");
    assert_eq!(listing(dir.path()), ["config.json"], "nothing to back up");
}

/// One input mm-edge must refuse.
struct Refusal {
    what: &'static str,
    content: String,
    file_mode: Option<u32>,
    env: Vec<(&'static str, &'static str)>,
    /// Fragments stderr must hold (the config path is always required when `names_file`).
    says: Vec<&'static str>,
    names_file: bool,
    /// Fragments stderr must not hold (secrets).
    hides: Vec<&'static str>,
}

fn refusals() -> Vec<Refusal> {
    let fixture = || FIXTURE.to_string();
    let edit = |from: &str, to: &str| {
        assert!(FIXTURE.contains(from), "fixture holds {from}");
        FIXTURE.replacen(from, to, 1)
    };
    vec![
        Refusal {
            what: "malformed JSON (a stray comma on line 6)",
            content: edit(
                r#""ListenAddress": ":8065","#,
                r#""ListenAddress": ":8065",,"#,
            ),
            file_mode: None,
            env: vec![],
            says: vec!["not valid JSON", "line 6", "there is no backup of it"],
            names_file: true,
            hides: vec![],
        },
        Refusal {
            what: "truncated JSON",
            content: FIXTURE[..FIXTURE.len() / 2].to_string(),
            file_mode: None,
            env: vec![],
            says: vec!["not valid JSON"],
            names_file: true,
            hides: vec![],
        },
        Refusal {
            what: "SiteURL is a number",
            content: edit(
                r#""SiteURL": "http://mattermost.internal:8065","#,
                r#""SiteURL": 42,"#,
            ),
            file_mode: None,
            env: vec![],
            says: vec!["ServiceSettings.SiteURL", "a number", "a string"],
            names_file: true,
            hides: vec![],
        },
        Refusal {
            what: "SMTPPort is a number while SMTP_PORT is set",
            content: edit(r#""SMTPPort": "587","#, r#""SMTPPort": 587,"#),
            file_mode: None,
            env: vec![("SMTP_PORT", "25")],
            says: vec!["EmailSettings.SMTPPort", "SMTP_PORT"],
            names_file: true,
            hides: vec![],
        },
        Refusal {
            what: "read-only file",
            content: fixture(),
            file_mode: Some(0o444),
            env: vec![],
            says: vec!["read-only"],
            names_file: true,
            hides: vec![],
        },
        Refusal {
            what: "an old-image integer that is not one",
            content: fixture(),
            file_mode: None,
            env: vec![("MATTERMOST_MAX_USERS", "abc")],
            says: vec!["MATTERMOST_MAX_USERS=abc"],
            names_file: false,
            hides: vec![],
        },
        Refusal {
            what: "a public-link salt Mattermost would reject",
            content: fixture(),
            file_mode: None,
            env: vec![("MATTERMOST_LINK_SALT", "tooshort")],
            says: vec!["MATTERMOST_LINK_SALT=(hidden)", "32"],
            names_file: false,
            hides: vec!["tooshort"],
        },
        Refusal {
            what: "database variables without DB_HOST",
            content: fixture(),
            file_mode: None,
            env: vec![("DB_ADAPTER", "postgres"), ("DB_PASS", "hunter2")],
            says: vec!["DB_HOST is not set"],
            names_file: false,
            hides: vec!["hunter2"],
        },
    ]
}

/// Malformed input, wrong-typed keys, read-only files and bad values: exit 2, a message naming
/// the file and the key (or the variable), and neither target touched.
#[test]
fn refusals_exit_2_and_leave_every_target_untouched() {
    for case in refusals() {
        let (dir, config) = config_dir(&case.content);
        let env_file = dir.path().join("mattermost.env");
        set_mtime(&config, fixed_mtime());
        if let Some(m) = case.file_mode {
            fs::set_permissions(&config, fs::Permissions::from_mode(m)).expect("chmod");
        }
        let mut env = case.env.clone();
        env.push(("MATTERMOST_HOST", "chat.example.com"));
        env.push(("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)));
        env.push(("MM_EDGE_MATTERMOST_ENV_FILE", path_str(&env_file)));
        let out = common::run(&env, WRITE);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", case.what);
        if case.names_file {
            assert!(err.contains(path_str(&config)), "{}: {err}", case.what);
        }
        for s in &case.says {
            assert!(err.contains(s), "{}: stderr lacks {s:?}:\n{err}", case.what);
        }
        for s in &case.hides {
            assert!(
                !err.contains(s),
                "{}: stderr shows {s:?}:\n{err}",
                case.what
            );
        }
        assert_eq!(
            fs::read_to_string(&config).expect("read"),
            case.content,
            "{}: byte-identical",
            case.what
        );
        assert_eq!(mtime(&config), fixed_mtime(), "{}: mtime", case.what);
        assert_eq!(
            listing(dir.path()),
            ["config.json"],
            "{}: no backup, no temporary file, no env file",
            case.what
        );
    }
}

#[test]
fn env_file_gets_mm_override_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env_file = dir.path().join("mattermost.env");
    let mut env = OLD_IMAGE_ENV.to_vec();
    env.retain(|(k, _)| *k != "MATTERMOST_HOST");
    env.push(("MATTERMOST_SITE_URL", "https://chat.example.org/"));
    env.push(("MM_EDGE_MATTERMOST_ENV_FILE", path_str(&env_file)));
    let out = common::run(&env, WRITE);
    assert_exit(&out, 0);
    let text = fs::read_to_string(&env_file).expect("env file");
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, _) = line.split_once('=').expect("NAME=value");
        assert!(
            name.starts_with("MM_")
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
            "{line}"
        );
        assert!(names.insert(name.to_string()), "{name} twice");
    }
    for line in [
        "MM_SERVICESETTINGS_SITEURL=https://chat.example.org",
        "MM_SERVICESETTINGS_CONNECTIONSECURITY=",
        "MM_SERVICESETTINGS_FORWARD80TO443=false",
        "MM_SERVICESETTINGS_TRUSTEDPROXYIPHEADER=X-Forwarded-For X-Real-IP",
        "MM_SERVICESETTINGS_ALLOWCORSFROM=https://a.example.com https://b.example.com",
        "MM_RATELIMITSETTINGS_ENABLE=false",
        "MM_RATELIMITSETTINGS_PERSEC=25",
        "MM_EMAILSETTINGS_SMTPSERVER=smtp.example.net",
        "MM_EMAILSETTINGS_SMTPPORT=465",
        "MM_EMAILSETTINGS_SMTPPASSWORD=p&ss<word>",
        "MM_EMAILSETTINGS_CONNECTIONSECURITY=TLS",
        "MM_SQLSETTINGS_DRIVERNAME=postgres",
        "MM_SQLSETTINGS_DATASOURCE=postgres://mm%20user:p%40ss%2Fw:rd@db:5433/chat?sslmode=disable&connect_timeout=10",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "env file lacks {line:?}:\n{text}"
        );
    }
    assert_eq!(names.len(), expected_keys().len(), "one line per key");
    assert_eq!(mode(&env_file), 0o600, "it holds passwords");
    assert_eq!(listing(dir.path()), ["mattermost.env"]);

    // Idempotent too.
    set_mtime(&env_file, fixed_mtime());
    assert_exit(&common::run(&env, WRITE), 0);
    assert_eq!(fs::read_to_string(&env_file).expect("env file"), text);
    assert_eq!(mtime(&env_file), fixed_mtime());
}

#[test]
fn both_targets_are_written_in_one_run() {
    let (dir, config) = config_dir(FIXTURE);
    let env_file = dir.path().join("mattermost.env");
    let out = common::run(
        &[
            ("MATTERMOST_SITE_URL", "https://chat.example.org"),
            ("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)),
            ("MM_EDGE_MATTERMOST_ENV_FILE", path_str(&env_file)),
        ],
        WRITE,
    );
    assert_exit(&out, 0);
    assert_eq!(
        at(&read_json(&config), "ServiceSettings", "SiteURL"),
        "https://chat.example.org"
    );
    let text = fs::read_to_string(&env_file).expect("env file");
    assert!(text
        .lines()
        .any(|l| l == "MM_SERVICESETTINGS_SITEURL=https://chat.example.org"));
}

#[test]
fn neither_target_set_writes_nothing_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = common::command();
    cmd.current_dir(dir.path())
        .args(WRITE)
        .stdin(Stdio::null())
        .envs(OLD_IMAGE_ENV.iter().copied());
    let out = cmd.output().expect("run mm-edge");
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("MM_EDGE_MATTERMOST_CONFIG")
            && err.contains("MM_EDGE_MATTERMOST_ENV_FILE")
            && err.contains("not written"),
        "the log says nothing is written:\n{err}"
    );
    assert!(
        listing(dir.path()).is_empty(),
        "nothing created in the working directory"
    );
}

/// Removed variables and MySQL: one warning each, naming the variable; nothing written for the
/// removed ones; the rest still written.
#[test]
fn removed_variables_and_mysql_are_warned_about_by_name() {
    let (_dir, config) = config_dir(FIXTURE);
    let out = common::run(
        &[
            ("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)),
            ("MATTERMOST_RESET_SALT", "old-reset-salt-value"),
            ("MATTERMOST_TEAM_DIRECTORY", "true"),
            ("MATTERMOST_WEB_SESSION_DAYS", "7"),
            ("DB_ADAPTER", "mysql"),
            ("DB_HOST", "mysql"),
            ("DB_PASS", "pw"),
            ("GITLAB_ID", "gitlab-app-id"),
        ],
        WRITE,
    );
    assert_exit(&out, 0);
    let err = stderr(&out);
    for (variable, says) in [
        ("MATTERMOST_RESET_SALT", "PasswordResetSalt"),
        ("MATTERMOST_TEAM_DIRECTORY", "EnableTeamListing"),
        ("MATTERMOST_WEB_SESSION_DAYS", "hours"),
        ("DB_ADAPTER", "MySQL"),
        ("GITLAB_ID", "Mattermost 11"),
    ] {
        let lines = warnings_naming(&err, variable);
        assert_eq!(lines.len(), 1, "one warning naming {variable}:\n{err}");
        assert!(lines[0].contains(says), "{variable}: {}", lines[0]);
    }
    assert!(warnings_naming(&err, "DB_ADAPTER")[0].contains("Mattermost 11"));

    let text = fs::read_to_string(&config).expect("read");
    assert!(!text.contains("PasswordResetSalt") && !text.contains("old-reset-salt-value"));
    assert!(!text.contains("EnableTeamListing"));
    let doc = parse(&text);
    assert_eq!(at(&doc, "SqlSettings", "DriverName"), "mysql");
    assert_eq!(
        at(&doc, "SqlSettings", "DataSource"),
        "root:pw@tcp(mysql:3306)/mattermost?charset=utf8mb4,utf8"
    );
    assert_eq!(
        at(&doc, "ServiceSettings", "SessionLengthWebInHours"),
        &json!(168)
    );
    assert_eq!(at(&doc, "GitLabSettings", "Id"), "gitlab-app-id");
    assert_eq!(at(&doc, "GitLabSettings", "Enable"), &json!(true));
}

/// `mm-edge run` writes config.json after binding and before serving: by the time it logs
/// "mm-edge listening", the file holds the site URL with the real, ephemeral port.
#[test]
fn run_writes_the_bound_site_url_before_listening() {
    let (dir, config) = config_dir(FIXTURE);
    let edge = Edge::builder("http://127.0.0.1:9")
        .env("MM_EDGE_MATTERMOST_CONFIG", path_str(&config))
        .env("MATTERMOST_RATE_LIMIT_QPS", "7")
        .spawn();
    let port = edge.https.expect("TLS listener").port();
    assert_ne!(port, 0);
    let doc = read_json(&config);
    assert_eq!(
        at(&doc, "ServiceSettings", "SiteURL"),
        &json!(format!("https://localhost:{port}"))
    );
    assert_eq!(at(&doc, "RateLimitSettings", "PerSec"), &json!(7));
    assert_eq!(at(&doc, "RateLimitSettings", "Enable"), &json!(false));
    let log = edge.log();
    assert!(
        log.contains("status=Updated"),
        "logged before the listening line:\n{log}"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("config.json.bak")).expect("backup"),
        FIXTURE
    );
}

/// `mm-edge run` with a config.json it must refuse exits 2 without ever listening.
#[test]
fn run_refuses_to_serve_when_the_config_cannot_be_written() {
    let content = FIXTURE.replacen(
        r#""SiteURL": "http://mattermost.internal:8065","#,
        r#""SiteURL": 42,"#,
        1,
    );
    let (dir, config) = config_dir(&content);
    let state = tempfile::tempdir().expect("state dir");
    let mut cmd = common::command();
    cmd.args(["run"])
        .env("MM_EDGE_HTTPS_LISTEN", "127.0.0.1:0")
        .env("MM_EDGE_HTTP_LISTEN", "127.0.0.1:0")
        .env("MM_EDGE_STATE_DIR", path_str(state.path()))
        .env("MM_EDGE_UPSTREAMS", "http://127.0.0.1:9")
        .env("MM_EDGE_MATTERMOST_CONFIG", path_str(&config))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn mm-edge");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(PATIENCE) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("mm-edge run kept running with a config.json it cannot write");
        }
    };
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("mm-edge listening"), "{err}");
    assert!(
        err.contains(path_str(&config)) && err.contains("ServiceSettings.SiteURL"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&config).expect("read"), content);
    assert_eq!(listing(dir.path()), ["config.json"]);
}

/// This host's name as the writer tags its temporary files with it.
fn host_tag() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

#[test]
fn temporary_files_of_a_killed_writer_are_removed_by_the_next_run() {
    let (dir, config) = config_dir(FIXTURE);
    // A pid above the kernel's ceiling (2^22): certainly not running.
    let stale = dir
        .path()
        .join(format!(".config.json.mm-edge-{}-4999999-3.tmp", host_tag()));
    fs::write(&stale, "half a config").expect("stale temp");
    let out = common::run(
        &[
            ("MATTERMOST_HOST", "chat.example.com"),
            ("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)),
        ],
        WRITE,
    );
    assert_exit(&out, 0);
    assert!(
        !stale.exists(),
        "the dead writer's temporary file is still there"
    );
    assert_eq!(listing(dir.path()), ["config.json", "config.json.bak"]);
}

#[test]
fn numbers_survive_exactly_and_a_backup_is_offered_only_when_it_exists() {
    let content = FIXTURE.replacen(
        "\"ServiceSettings\": {",
        "\"ServiceSettings\": {\n        \"HugeNumber\": 12345678901234567890123,\n        \"Precise\": 0.1000000000000000055511151231257827,",
        1,
    );
    assert_ne!(content, FIXTURE, "fixture has a ServiceSettings section");
    let (dir, config) = config_dir(&content);
    let env = [
        ("MATTERMOST_HOST", "chat.example.com"),
        ("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)),
    ];
    assert_exit(&common::run(&env, WRITE), 0);
    let text = fs::read_to_string(&config).expect("read");
    assert!(
        text.contains("\"HugeNumber\": 12345678901234567890123,"),
        "{text}"
    );
    assert!(
        text.contains("\"Precise\": 0.1000000000000000055511151231257827,"),
        "{text}"
    );
    // Broken now, with a backup from the run above: the message offers it.
    fs::write(&config, "{ broken").expect("break");
    let out = common::run(&env, WRITE);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("restore its backup"),
        "{}",
        stderr(&out)
    );
    let _ = dir;
}

/// `(uid, gid)` of `path`.
fn owner(path: &Path) -> (u32, u32) {
    let m = fs::metadata(path).expect("metadata");
    (m.uid(), m.gid())
}

/// README: "A config.json that mm-edge creates takes the owner of its directory, and an existing
/// one keeps its owner, so Mattermost can always read it." Run as root (as CI is), in a
/// directory owned by uid 2000 (Mattermost's in the official image): root's own uid would make
/// the check meaningless. The env file is written the same way.
#[test]
fn created_files_take_the_directorys_owner_and_existing_ones_keep_theirs() {
    let top = tempfile::tempdir().expect("temp dir");
    let dir = top.path().join("config");
    fs::create_dir(&dir).expect("mkdir");
    if let Err(e) = std::os::unix::fs::chown(&dir, Some(2000), Some(2000)) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot chown a directory ({e}); CI=true runs as root, so this test cannot be skipped"
        );
        eprintln!("skipping: not root, cannot give a directory to uid 2000 ({e})");
        return;
    }
    let config = dir.join("config.json");
    let env_file = dir.join("mattermost.env");
    let targets = [
        ("MM_EDGE_MATTERMOST_CONFIG", path_str(&config)),
        ("MM_EDGE_MATTERMOST_ENV_FILE", path_str(&env_file)),
    ];
    let out = common::run(&targets, WRITE);
    assert_exit(&out, 0);
    for p in [&config, &env_file] {
        assert_eq!(owner(p), (2000, 2000), "{} created", p.display());
        assert_eq!(mode(p), 0o600, "{} created", p.display());
    }

    // An existing file of another owner keeps that owner (and its mode), and so does its backup.
    std::os::unix::fs::chown(&config, Some(2001), Some(2002)).expect("chown");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o640)).expect("chmod");
    let mut env = targets.to_vec();
    env.push(("MATTERMOST_RATE_LIMIT_QPS", "7"));
    let out = common::run(&env, WRITE);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("status=Updated"), "{}", stderr(&out));
    assert_eq!(
        at(&read_json(&config), "RateLimitSettings", "PerSec"),
        &json!(7)
    );
    let backup = dir.join("config.json.bak");
    for p in [&config, &backup] {
        assert_eq!(owner(p), (2001, 2002), "{} updated", p.display());
        assert_eq!(mode(p), 0o640, "{} updated", p.display());
    }
    assert_eq!(owner(&env_file), (2000, 2000), "env file rewritten");
}
