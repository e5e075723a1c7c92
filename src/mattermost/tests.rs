//! Tests of the config writer against a realistic config.json (`testdata/config.json`) and
//! the full variable map of the old image (`testdata/seed-env-map.tsv`).

use super::seed_env::{Handling, OLD_VARS};
use super::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A complete config.json of an upgraded Mattermost 10 install, as Mattermost prints it.
const FIXTURE: &str = include_str!("testdata/config.json");
/// Copy of `seed-env-map.tsv`: every variable of the old image.
const TSV: &str = include_str!("testdata/seed-env-map.tsv");

/// A temporary directory (tempfile's), write access restored before it is removed.
struct TempDir(tempfile::TempDir);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mm-edge-mattermost-{name}-"))
            .tempdir()
            .expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }

    /// A config.json holding `content`.
    fn config(&self, content: &str) -> PathBuf {
        let p = self.path("config.json");
        fs::write(&p, content).expect("write fixture");
        p
    }

    /// Names of the files in the directory, sorted.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.0.path())
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
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A test may have made the directory read-only; tempfile removes it afterwards.
        let _ = fs::set_permissions(self.0.path(), fs::Permissions::from_mode(0o755));
    }
}

fn facts() -> EdgeFacts {
    EdgeFacts {
        site_url: "https://chat.acme.example".into(),
        cors_domains: vec![
            "https://intranet.acme.example".into(),
            "https://wiki.acme.example".into(),
        ],
        cors_exposed_headers: vec!["X-Request-Id".into()],
        cors_allow_credentials: true,
        rate_limit_per_sec: 10,
        rate_limit_max_burst: 100,
        rate_limit_sessions: 10000,
        rate_limit_by_ip: true,
        rate_limit_headers: vec![],
    }
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn config_only(p: &Path) -> Targets<'_> {
    Targets {
        config_file: Some(p),
        env_file: None,
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).expect("read back")).expect("valid JSON written")
}

/// Value at `Section.Key`.
fn at<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    let (section, k) = key.split_once('.')?;
    doc.get(section)?.get(k)
}

/// Every leaf of `doc` as (dotted path, value), in document order.
fn leaves(doc: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, child, out);
                }
            }
            _ => out.push((prefix.to_string(), v.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", doc, &mut out);
    out
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Keys changed by the edge's facts alone, on the fixture.
const EDGE_CHANGES: &[&str] = &[
    "ServiceSettings.SiteURL",
    "ServiceSettings.ConnectionSecurity",
    "ServiceSettings.TLSCertFile",
    "ServiceSettings.TLSKeyFile",
    "ServiceSettings.Forward80To443",
    "ServiceSettings.TrustedProxyIPHeader",
    "ServiceSettings.AllowCorsFrom",
    "ServiceSettings.CorsExposedHeaders",
    "ServiceSettings.CorsAllowCredentials",
    "RateLimitSettings.Enable",
    "RateLimitSettings.PerSec",
    "RateLimitSettings.MaxBurst",
    "RateLimitSettings.MemoryStoreSize",
];

#[test]
fn fixture_is_printed_back_byte_for_byte() {
    // The writer prints as Mattermost does, so an update only touches the changed lines.
    let doc: Value = serde_json::from_str(FIXTURE).expect("fixture parses");
    let indent = json_merge::detect_indent(FIXTURE.as_bytes());
    assert_eq!(indent, "    ");
    let printed = json_merge::to_go_json(&doc, &indent, false);
    assert_eq!(String::from_utf8(printed).expect("utf-8"), FIXTURE);
}

#[test]
fn edge_facts_change_only_the_intended_keys_and_keep_order() {
    let dir = TempDir::new("edge-diff");
    let path = dir.config(FIXTURE);
    let out = write(&config_only(&path), &facts(), &no_env).expect("write");
    assert_eq!(out.config_file, Some(FileStatus::Updated));
    assert_eq!(out.env_file, None);
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);

    let before = leaves(&serde_json::from_str(FIXTURE).expect("fixture"));
    let after = leaves(&read_json(&path));
    // Same keys in the same order.
    let keys = |l: &[(String, Value)]| l.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&before), keys(&after));
    // Only the intended values differ.
    let changed: BTreeSet<String> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0.clone())
        .collect();
    let expected: BTreeSet<String> = EDGE_CHANGES.iter().map(|s| s.to_string()).collect();
    assert_eq!(changed, expected);
    assert_eq!(
        out.changed_keys.iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );

    let doc = read_json(&path);
    assert_eq!(
        at(&doc, "ServiceSettings.SiteURL"),
        Some(&json!("https://chat.acme.example"))
    );
    assert_eq!(
        at(&doc, "ServiceSettings.TrustedProxyIPHeader"),
        Some(&json!(["X-Forwarded-For", "X-Real-IP"]))
    );
    assert_eq!(
        at(&doc, "ServiceSettings.AllowCorsFrom"),
        Some(&json!(
            "https://intranet.acme.example https://wiki.acme.example"
        ))
    );
    assert_eq!(
        at(&doc, "ServiceSettings.CorsExposedHeaders"),
        Some(&json!("X-Request-Id"))
    );
    assert_eq!(
        at(&doc, "ServiceSettings.CorsAllowCredentials"),
        Some(&json!(true))
    );
    assert_eq!(at(&doc, "RateLimitSettings.Enable"), Some(&json!(false)));
    assert_eq!(at(&doc, "RateLimitSettings.PerSec"), Some(&json!(10)));
    assert_eq!(at(&doc, "RateLimitSettings.VaryByHeader"), Some(&json!("")));

    // Textually too: every line of the fixture that holds no changed key is still there, in order.
    let new_text = fs::read_to_string(&path).expect("read");
    let changed_names: Vec<String> = EDGE_CHANGES
        .iter()
        .map(|k| format!("\"{}\":", k.split_once('.').map(|x| x.1).unwrap_or(k)))
        .collect();
    let kept: Vec<&str> = FIXTURE
        .lines()
        .filter(|l| {
            !changed_names
                .iter()
                .any(|n| l.trim_start().starts_with(n.as_str()))
        })
        .collect();
    let mut rest = new_text.lines();
    for line in kept {
        assert!(rest.any(|l| l == line), "line lost or reordered: {line}");
    }

    // One backup of the previous content.
    assert_eq!(
        fs::read_to_string(dir.path("config.json.bak")).expect("backup"),
        FIXTURE
    );
    assert_eq!(dir.files(), ["config.json", "config.json.bak"]);
}

#[test]
fn second_run_leaves_file_byte_identical_with_same_mtime() {
    let dir = TempDir::new("idempotent");
    let path = dir.config(FIXTURE);
    let env = env_of(&[
        ("MATTERMOST_MAX_USERS", "75"),
        ("SMTP_HOST", "smtp.acme.example"),
    ]);
    write(&config_only(&path), &facts(), &env).expect("first run");
    // Back-date both files so an unwanted rewrite could not go unnoticed (no sleeping).
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for p in [path.clone(), dir.path("config.json.bak")] {
        fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
    }
    let bytes = fs::read(&path).expect("read");
    let backup = fs::read(dir.path("config.json.bak")).expect("read backup");

    let out = write(&config_only(&path), &facts(), &env).expect("second run");
    assert_eq!(out.config_file, Some(FileStatus::Unchanged));
    assert!(out.changed_keys.is_empty());
    assert_eq!(fs::read(&path).expect("read"), bytes);
    assert_eq!(fs::read(dir.path("config.json.bak")).expect("read"), backup);
    for p in [path.clone(), dir.path("config.json.bak")] {
        assert_eq!(
            fs::metadata(&p).and_then(|m| m.modified()).expect("mtime"),
            old
        );
    }
    assert_eq!(dir.files(), ["config.json", "config.json.bak"]);
}

/// Asserts that `path` still holds `content` and nothing else appeared in its directory.
fn assert_untouched(dir: &TempDir, path: &Path, content: &str) {
    assert_eq!(fs::read_to_string(path).expect("read"), content);
    assert_eq!(dir.files(), ["config.json"]);
}

#[test]
fn malformed_json_is_refused_and_left_untouched() {
    let dir = TempDir::new("malformed");
    let broken = "{\n    \"ServiceSettings\": {\n        \"SiteURL\": \"x\",\n";
    let path = dir.config(broken);
    let err = write(&config_only(&path), &facts(), &no_env).expect_err("must refuse");
    assert!(matches!(err, Error::Malformed { line: 4, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("line 4"), "{msg}");
    assert_untouched(&dir, &path, broken);
}

#[test]
fn wrong_typed_keys_are_refused_and_left_untouched() {
    /// (text in the fixture, replacement, key refused, environment, source named)
    type WrongCase<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[WrongCase] = &[
        (
            "\"SiteURL\": \"http://mattermost.internal:8065\"",
            "\"SiteURL\": 42",
            "ServiceSettings.SiteURL",
            &[],
            "mm-edge",
        ),
        (
            "\"RateLimitSettings\": {",
            "\"RateLimitSettings\": [], \"Old\": {",
            "RateLimitSettings",
            &[],
            "mm-edge",
        ),
        (
            "\"MaxUsersPerTeam\": 250",
            "\"MaxUsersPerTeam\": \"250\"",
            "TeamSettings.MaxUsersPerTeam",
            &[("MATTERMOST_MAX_USERS", "75")],
            "MATTERMOST_MAX_USERS",
        ),
        (
            "\"TrustedProxyIPHeader\": []",
            "\"TrustedProxyIPHeader\": \"X-Forwarded-For\"",
            "ServiceSettings.TrustedProxyIPHeader",
            &[],
            "mm-edge",
        ),
    ];
    for (from, to, key, env, source) in cases {
        let dir = TempDir::new("wrong-type");
        let content = FIXTURE.replacen(from, to, 1);
        assert_ne!(content, FIXTURE, "fixture lacks {from}");
        let path = dir.config(&content);
        let env_path = dir.path("mattermost.env");
        let targets = Targets {
            config_file: Some(&path),
            env_file: Some(&env_path),
        };
        let err = write(&targets, &facts(), &env_of(env)).expect_err("must refuse");
        match &err {
            Error::WrongType { key: k, from, .. } => {
                assert_eq!(k, key);
                assert_eq!(from, source);
            }
            other => panic!("expected WrongType, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(key),
            "{msg}"
        );
        // Neither target was written.
        assert_untouched(&dir, &path, &content);
    }
}

#[test]
fn top_level_that_is_not_an_object_is_refused() {
    let dir = TempDir::new("top-level");
    let path = dir.config("[1, 2]");
    let err = write(&config_only(&path), &facts(), &no_env).expect_err("must refuse");
    assert!(matches!(err, Error::WrongType { ref key, .. } if key == "(top level)"));
    assert_untouched(&dir, &path, "[1, 2]");
}

#[test]
fn failure_between_temp_write_and_rename_leaves_original_intact() {
    let dir = TempDir::new("inject");
    let path = dir.config(FIXTURE);
    let mut seen = Vec::new();
    let err = write_with_hook(&config_only(&path), &facts(), &no_env, &mut |tmp: &Path| {
        // The temporary file is complete and synced at this point.
        let written = fs::read_to_string(tmp)?;
        seen.push(written.contains("https://chat.acme.example"));
        Err(io::Error::other("injected crash"))
    })
    .expect_err("must fail");
    assert!(matches!(err, Error::Write { .. }), "{err:?}");
    assert_eq!(seen, [true]);
    assert_eq!(fs::read_to_string(&path).expect("read"), FIXTURE);
    // The backup holds the same original content; no temporary file is left behind.
    assert_eq!(
        fs::read_to_string(dir.path("config.json.bak")).expect("bak"),
        FIXTURE
    );
    assert_eq!(dir.files(), ["config.json", "config.json.bak"]);
    // A later run succeeds.
    let out = write(&config_only(&path), &facts(), &no_env).expect("retry");
    assert_eq!(out.config_file, Some(FileStatus::Updated));
}

fn running_as_root(dir: &TempDir) -> bool {
    let probe = dir.path("probe");
    fs::write(&probe, "").expect("probe");
    let root = fs::metadata(&probe).expect("meta").uid() == 0;
    fs::remove_file(&probe).expect("remove probe");
    root
}

#[test]
fn permissions_and_owner_are_kept() {
    let dir = TempDir::new("perms");
    let root = running_as_root(&dir);
    let path = dir.config(FIXTURE);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
    if root {
        std::os::unix::fs::chown(&path, Some(4321), Some(4322)).expect("chown");
    }
    let before = fs::metadata(&path).expect("meta");
    write(&config_only(&path), &facts(), &no_env).expect("write");
    for p in [path.clone(), dir.path("config.json.bak")] {
        let m = fs::metadata(&p).expect("meta");
        assert_eq!(m.mode() & 0o7777, 0o640, "{}", p.display());
        assert_eq!(
            (m.uid(), m.gid()),
            (before.uid(), before.gid()),
            "{}",
            p.display()
        );
    }
    if root {
        assert_eq!((before.uid(), before.gid()), (4321, 4322));
    }
}

#[test]
fn missing_file_is_created_with_only_the_written_keys() {
    let dir = TempDir::new("create");
    let path = dir.path("config.json");
    let env = env_of(&[("MATTERMOST_MAX_USERS", "75")]);
    let out = write(&config_only(&path), &facts(), &env).expect("write");
    assert_eq!(out.config_file, Some(FileStatus::Created));
    let doc = read_json(&path);
    let plan = seed_env::plan(&facts(), &env).expect("plan");
    let written: Vec<String> = leaves(&doc).into_iter().map(|(k, _)| k).collect();
    let planned: Vec<String> = plan
        .settings
        .iter()
        .map(|s| format!("{}.{}", s.section, s.key))
        .collect();
    assert_eq!(written, planned);
    assert_eq!(at(&doc, "TeamSettings.MaxUsersPerTeam"), Some(&json!(75)));
    assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
    assert_eq!(dir.files(), ["config.json"]);
}

#[test]
fn read_only_file_is_refused_and_left_untouched() {
    let dir = TempDir::new("ro-file");
    let path = dir.config(FIXTURE);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
    let err = write(&config_only(&path), &facts(), &no_env).expect_err("must refuse");
    assert!(
        matches!(err, Error::ReadOnly { what: "file", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(config_file_setting()));
    assert_untouched(&dir, &path, FIXTURE);
}

#[test]
fn read_only_directory_is_refused_and_left_untouched() {
    let dir = TempDir::new("ro-dir");
    let path = dir.config(FIXTURE);
    fs::set_permissions(dir.0.path(), fs::Permissions::from_mode(0o555)).expect("chmod");
    let err = write(&config_only(&path), &facts(), &no_env).expect_err("must refuse");
    assert!(
        matches!(
            err,
            Error::ReadOnly {
                what: "directory",
                ..
            }
        ),
        "{err:?}"
    );
    fs::set_permissions(dir.0.path(), fs::Permissions::from_mode(0o755)).expect("chmod back");
    assert_untouched(&dir, &path, FIXTURE);
}

#[test]
fn read_only_file_that_needs_no_change_is_fine() {
    let dir = TempDir::new("ro-unchanged");
    let path = dir.config(FIXTURE);
    write(&config_only(&path), &facts(), &no_env).expect("first run");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
    let out = write(&config_only(&path), &facts(), &no_env).expect("second run");
    assert_eq!(out.config_file, Some(FileStatus::Unchanged));
}

#[test]
fn env_file_holds_mm_lines_and_is_idempotent() {
    let dir = TempDir::new("env-file");
    let path = dir.path("mattermost.env");
    let targets = Targets {
        config_file: None,
        env_file: Some(&path),
    };
    let mut f = facts();
    f.rate_limit_headers = vec!["X-Session".into()];
    let env = env_of(&[
        ("MATTERMOST_NAME", "Old Chat"),
        ("MATTERMOST_WEB_SESSION_DAYS", "7"),
        ("DB_ADAPTER", "postgres"),
        ("DB_HOST", "db"),
        ("DB_USER", "mm"),
        ("DB_PASS", "pw"),
    ]);
    let out = write(&targets, &f, &env).expect("write");
    assert_eq!(out.env_file, Some(FileStatus::Created));
    assert_eq!(out.config_file, None);
    let expected = "\
# Written by mm-edge at every start; edit mm-edge's settings, not this file.
# Mattermost reads each MM_SECTION_KEY as an override of config.json (locked in the System Console).
MM_SERVICESETTINGS_SITEURL=https://chat.acme.example
MM_SERVICESETTINGS_CONNECTIONSECURITY=
MM_SERVICESETTINGS_TLSCERTFILE=
MM_SERVICESETTINGS_TLSKEYFILE=
MM_SERVICESETTINGS_USELETSENCRYPT=false
MM_SERVICESETTINGS_FORWARD80TO443=false
MM_SERVICESETTINGS_TRUSTEDPROXYIPHEADER=X-Forwarded-For X-Real-IP
MM_SERVICESETTINGS_ALLOWCORSFROM=https://intranet.acme.example https://wiki.acme.example
MM_SERVICESETTINGS_CORSEXPOSEDHEADERS=X-Request-Id
MM_SERVICESETTINGS_CORSALLOWCREDENTIALS=true
MM_RATELIMITSETTINGS_ENABLE=false
MM_RATELIMITSETTINGS_PERSEC=10
MM_RATELIMITSETTINGS_MAXBURST=100
MM_RATELIMITSETTINGS_MEMORYSTORESIZE=10000
MM_RATELIMITSETTINGS_VARYBYREMOTEADDR=true
MM_RATELIMITSETTINGS_VARYBYHEADER=X-Session
MM_SERVICESETTINGS_SESSIONLENGTHWEBINHOURS=168
MM_TEAMSETTINGS_SITENAME=Old Chat
MM_EMAILSETTINGS_FEEDBACKNAME=Old Chat
MM_SQLSETTINGS_DRIVERNAME=postgres
MM_SQLSETTINGS_DATASOURCE=postgres://mm:pw@db:5432/mattermost?sslmode=disable&connect_timeout=10
";
    assert_eq!(fs::read_to_string(&path).expect("read"), expected);
    assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);

    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    let out = write(&targets, &f, &env).expect("second run");
    assert_eq!(out.env_file, Some(FileStatus::Unchanged));
    assert_eq!(
        fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime"),
        old
    );

    // A change rewrites it and keeps a backup.
    let out = write(&targets, &facts(), &env).expect("third run");
    assert_eq!(out.env_file, Some(FileStatus::Updated));
    assert_eq!(
        fs::read_to_string(dir.path("mattermost.env.bak")).expect("bak"),
        expected
    );
    assert!(fs::read_to_string(&path)
        .expect("read")
        .contains("MM_RATELIMITSETTINGS_VARYBYHEADER=\n"));
}

#[test]
fn env_file_refuses_a_line_break() {
    let dir = TempDir::new("env-newline");
    let path = dir.path("mattermost.env");
    let targets = Targets {
        config_file: None,
        env_file: Some(&path),
    };
    let env = env_of(&[("MATTERMOST_GOOGLE_KEY", "abc\ndef")]);
    let err = write(&targets, &facts(), &env).expect_err("must refuse");
    assert!(
        err.to_string()
            .contains("MM_SERVICESETTINGS_GOOGLEDEVELOPERKEY"),
        "{err}"
    );
    assert!(err.to_string().contains("MATTERMOST_GOOGLE_KEY"), "{err}");
    assert!(dir.files().is_empty());
}

#[test]
fn both_targets_are_written() {
    let dir = TempDir::new("both");
    let path = dir.config(FIXTURE);
    let env_path = dir.path("mattermost.env");
    let targets = Targets {
        config_file: Some(&path),
        env_file: Some(&env_path),
    };
    let out = write(&targets, &facts(), &no_env).expect("write");
    assert_eq!(out.config_file, Some(FileStatus::Updated));
    assert_eq!(out.env_file, Some(FileStatus::Created));
}

#[test]
fn no_target_writes_nothing_but_still_validates_and_warns() {
    let out = write(&Targets::default(), &facts(), &no_env).expect("nothing to do");
    assert_eq!(out, Outcome::default());
    let env = env_of(&[("MATTERMOST_TEAM_DIRECTORY", "true")]);
    let out = write(&Targets::default(), &facts(), &env).expect("nothing written");
    assert_eq!((out.config_file, out.env_file), (None, None));
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert_eq!(out.warnings[0].variable, "MATTERMOST_TEAM_DIRECTORY");
    let env = env_of(&[("MATTERMOST_MAX_USERS", "abc")]);
    let err = write(&Targets::default(), &facts(), &env).expect_err("a bad value is an error");
    assert!(
        err.to_string().contains("MATTERMOST_MAX_USERS=abc"),
        "{err}"
    );
}

#[test]
fn bad_values_name_the_variable_and_leave_the_file_untouched() {
    let cases: &[(&str, &str, &str)] = &[
        ("MATTERMOST_MAX_USERS", "abc", "MATTERMOST_MAX_USERS=abc"),
        ("MATTERMOST_MAX_USERS", "0", "MATTERMOST_MAX_USERS=0"),
        (
            "MATTERMOST_ENABLE_SLASH_COMMANDS",
            "yes",
            "MATTERMOST_ENABLE_SLASH_COMMANDS=yes",
        ),
        (
            "MATTERMOST_WEB_SESSION_DAYS",
            "-1",
            "MATTERMOST_WEB_SESSION_DAYS=-1",
        ),
        (
            "MATTERMOST_RESTRICT_DIRECT_MESSAGE",
            "all",
            "expected one of: any, team",
        ),
        (
            "MATTERMOST_WEBSERVER_MODE",
            "regular",
            "MATTERMOST_WEBSERVER_MODE=regular",
        ),
        ("SMTP_PORT", "smtp", "SMTP_PORT=smtp"),
        ("SMTP_SECURITY", "SSL", "SMTP_SECURITY=SSL"),
        ("DB_ADAPTER", "sqlite", "DB_ADAPTER=sqlite"),
        (
            "MATTERMOST_PUSH_CONTENTS",
            "everything",
            "MATTERMOST_PUSH_CONTENTS=everything",
        ),
        (
            "MATTERMOST_NAME",
            "A name far longer than thirty bytes",
            "30 bytes",
        ),
        (
            "MATTERMOST_LINK_SALT",
            "short-salt",
            "MATTERMOST_LINK_SALT=(hidden)",
        ),
        (
            "MATTERMOST_SECRET_KEY",
            "short-key",
            "MATTERMOST_SECRET_KEY=(hidden)",
        ),
    ];
    for (var, value, needle) in cases {
        let dir = TempDir::new("bad-value");
        let path = dir.config(FIXTURE);
        let err = write(&config_only(&path), &facts(), &env_of(&[(var, value)]))
            .expect_err("must refuse");
        let msg = err.to_string();
        assert!(msg.contains(needle) && msg.contains(var), "{var}: {msg}");
        if var.contains("SALT") || var.contains("KEY") {
            assert!(!msg.contains(value), "secret leaked: {msg}");
        }
        assert_untouched(&dir, &path, FIXTURE);
    }
}

#[test]
fn locales_must_contain_the_client_locale() {
    let env = env_of(&[
        ("MATTERMOST_LOCALES", "en,fr"),
        ("MATTERMOST_CLIENT_LOCALE", "de"),
    ]);
    let err = seed_env::plan(&facts(), &env).expect_err("must refuse");
    assert!(
        err.to_string().contains("MATTERMOST_LOCALES=en,fr"),
        "{err}"
    );
}

#[test]
fn db_host_is_required_with_other_db_variables() {
    let env = env_of(&[("DB_ADAPTER", "postgres"), ("DB_USER", "mm")]);
    let err = seed_env::plan(&facts(), &env).expect_err("must refuse");
    assert!(
        matches!(
            err,
            Error::MissingVariable {
                variable: "DB_HOST",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn removed_and_ignored_variables_warn_once_each_and_write_nothing() {
    let skipped: Vec<&str> = OLD_VARS
        .iter()
        .filter(|v| matches!(v.handling, Handling::Removed(_) | Handling::Ignored(_)))
        .map(|v| v.name)
        .collect();
    assert_eq!(skipped.len(), 15);
    let pairs: Vec<(&str, &str)> = skipped.iter().map(|v| (*v, "true")).collect();
    let dir = TempDir::new("removed");
    let path = dir.config(FIXTURE);
    let out = write(&config_only(&path), &facts(), &env_of(&pairs)).expect("write");
    let warned: Vec<&str> = out.warnings.iter().map(|w| w.variable).collect();
    assert_eq!(warned, skipped);
    let expected: BTreeSet<String> = EDGE_CHANGES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        out.changed_keys.into_iter().collect::<BTreeSet<_>>(),
        expected
    );
}

#[test]
fn edge_variables_and_debug_are_not_read_from_the_environment() {
    let edge: Vec<(&str, &str)> = OLD_VARS
        .iter()
        .filter(|v| matches!(v.handling, Handling::Edge | Handling::Silent))
        .map(|v| (v.name, "99"))
        .collect();
    assert_eq!(edge.len(), 10);
    let with = seed_env::plan(&facts(), &env_of(&edge)).expect("plan");
    let without = seed_env::plan(&facts(), &no_env).expect("plan");
    assert_eq!(with.settings, without.settings);
    assert!(with.warnings.is_empty());
}

#[test]
fn empty_values_count_as_unset() {
    let env = env_of(&[
        ("MATTERMOST_MAX_USERS", ""),
        ("SMTP_HOST", ""),
        ("GITLAB_ID", ""),
    ]);
    let with = seed_env::plan(&facts(), &env).expect("plan");
    let without = seed_env::plan(&facts(), &no_env).expect("plan");
    assert_eq!(with.settings, without.settings);
}

#[test]
fn several_rate_limit_headers_write_the_first_and_warn() {
    let mut f = facts();
    f.rate_limit_headers = vec!["X-Session".into(), "X-Device".into()];
    let p = seed_env::plan(&f, &no_env).expect("plan");
    let vary = p
        .settings
        .iter()
        .find(|s| s.key == "VaryByHeader")
        .expect("VaryByHeader");
    assert_eq!(vary.value, json!("X-Session"));
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(p.warnings[0].variable, "MATTERMOST_RATE_LIMIT_HEADERS");
    assert!(p.warnings[0].message.contains("X-Device"));
}

/// What one variable must write, checked against the fixture.
struct Case {
    var: &'static str,
    env: Vec<(&'static str, &'static str)>,
    facts: fn(&mut EdgeFacts),
    expect: Vec<(&'static str, Value)>,
    unchanged: Vec<&'static str>,
    warns: bool,
}

fn same(_: &mut EdgeFacts) {}

fn case(var: &'static str, value: &'static str, expect: Vec<(&'static str, Value)>) -> Case {
    Case {
        var,
        env: vec![(var, value)],
        facts: same,
        expect,
        unchanged: vec![],
        warns: false,
    }
}

const SALT64: &str = "kR9tW2xZ7qP4mN8vB3cL6yH1jD5fG0sAkR9tW2xZ7qP4mN8vB3cL6yH1jD5fG0sA";

/// One case per variable of the old image that has a modern key (and a few without).
fn cases() -> Vec<Case> {
    let pg = |dsn: &str| {
        json!(format!(
            "postgres://{dsn}?sslmode=disable&connect_timeout=10"
        ))
    };
    vec![
        case(
            "MATTERMOST_NAME",
            "Old Chat",
            vec![
                ("TeamSettings.SiteName", json!("Old Chat")),
                ("EmailSettings.FeedbackName", json!("Old Chat")),
            ],
        ),
        Case {
            env: vec![("MATTERMOST_SITE_URL", "http://from-env.example")],
            facts: |f| f.site_url = "https://chat.old.example".into(),
            ..case(
                "MATTERMOST_SITE_URL",
                "",
                vec![("ServiceSettings.SiteURL", json!("https://chat.old.example"))],
            )
        },
        case(
            "MATTERMOST_WEBSERVER_MODE",
            "Uncompressed",
            vec![("ServiceSettings.WebserverMode", json!("uncompressed"))],
        ),
        Case {
            unchanged: vec!["ServiceSettings.ListenAddress"],
            warns: true,
            ..case("MATTERMOST_PORT", "8080", vec![])
        },
        case(
            "MATTERMOST_ENABLE_EMAIL_SIGNUP",
            "false",
            vec![("EmailSettings.EnableSignUpWithEmail", json!(false))],
        ),
        Case {
            warns: true,
            ..case(
                "MATTERMOST_SECRET_KEY",
                SALT64,
                vec![("SqlSettings.AtRestEncryptKey", json!(SALT64))],
            )
        },
        case(
            "MATTERMOST_LINK_SALT",
            SALT64,
            vec![
                ("FileSettings.PublicLinkSalt", json!(SALT64)),
                ("FileSettings.EnablePublicLink", json!(true)),
            ],
        ),
        case(
            "MATTERMOST_MAX_LOGIN_ATTEMPTS",
            "5",
            vec![("ServiceSettings.MaximumLoginAttempts", json!(5))],
        ),
        case(
            "MATTERMOST_GOOGLE_KEY",
            "AIzaOldKey",
            vec![("ServiceSettings.GoogleDeveloperKey", json!("AIzaOldKey"))],
        ),
        case(
            "MATTERMOST_RESTRICT_DIRECT_MESSAGE",
            "any",
            vec![("TeamSettings.RestrictDirectMessage", json!("any"))],
        ),
        case(
            "MATTERMOST_ENABLE_CUSTOM_EMOJI",
            "false",
            vec![("ServiceSettings.EnableCustomEmoji", json!(false))],
        ),
        case(
            "MATTERMOST_ENABLE_SLASH_COMMANDS",
            "FALSE",
            vec![("ServiceSettings.EnableCommands", json!(false))],
        ),
        case(
            "MATTERMOST_ENABLE_INCOMING_WEBHOOKS",
            "false",
            vec![("ServiceSettings.EnableIncomingWebhooks", json!(false))],
        ),
        case(
            "MATTERMOST_ENABLE_OUTGOING_WEBHOOKS",
            "true",
            vec![("ServiceSettings.EnableOutgoingWebhooks", json!(true))],
        ),
        case(
            "MATTERMOST_WEBHOOK_OVERRIDE_USERNAME",
            "true",
            vec![("ServiceSettings.EnablePostUsernameOverride", json!(true))],
        ),
        case(
            "MATTERMOST_WEBHOOK_OVERRIDE_ICON",
            "true",
            vec![("ServiceSettings.EnablePostIconOverride", json!(true))],
        ),
        case(
            "MATTERMOST_ENABLE_ALERTS",
            "false",
            vec![("ServiceSettings.EnableSecurityFixAlert", json!(false))],
        ),
        case(
            "MATTERMOST_ENABLE_INSECURE_CONNECTIONS",
            "true",
            vec![(
                "ServiceSettings.EnableInsecureOutgoingConnections",
                json!(true),
            )],
        ),
        Case {
            env: vec![("MATTERMOST_CORS_DOMAINS", "*")],
            facts: |f| f.cors_domains = vec!["https://a.example".into()],
            ..case(
                "MATTERMOST_CORS_DOMAINS",
                "",
                vec![("ServiceSettings.AllowCorsFrom", json!("https://a.example"))],
            )
        },
        Case {
            warns: true,
            ..case(
                "MATTERMOST_WEB_SESSION_DAYS",
                "7",
                vec![("ServiceSettings.SessionLengthWebInHours", json!(168))],
            )
        },
        Case {
            warns: true,
            ..case(
                "MATTERMOST_MOBILE_SESSION_DAYS",
                "60",
                vec![("ServiceSettings.SessionLengthMobileInHours", json!(1440))],
            )
        },
        Case {
            warns: true,
            ..case(
                "MATTERMOST_SSO_SESSION_DAYS",
                "14",
                vec![("ServiceSettings.SessionLengthSSOInHours", json!(336))],
            )
        },
        case(
            "MATTERMOST_SESSION_CACHE",
            "15",
            vec![("ServiceSettings.SessionCacheInMinutes", json!(15))],
        ),
        case(
            "MATTERMOST_MAX_USERS",
            "75",
            vec![("TeamSettings.MaxUsersPerTeam", json!(75))],
        ),
        case(
            "MATTERMOST_CREATE_USERS",
            "false",
            vec![("TeamSettings.EnableUserCreation", json!(false))],
        ),
        case(
            "MATTERMOST_OPEN_SERVER",
            "true",
            vec![("TeamSettings.EnableOpenServer", json!(true))],
        ),
        case(
            "MATTERMOST_USER_DOMAINS",
            "old.example,corp.example",
            vec![(
                "TeamSettings.RestrictCreationToDomains",
                json!("old.example,corp.example"),
            )],
        ),
        case(
            "MATTERMOST_EMAIL_SIGNIN",
            "false",
            vec![("EmailSettings.EnableSignInWithEmail", json!(false))],
        ),
        case(
            "MATTERMOST_USERNAME_SIGNIN",
            "true",
            vec![("EmailSettings.EnableSignInWithUsername", json!(true))],
        ),
        case(
            "MATTERMOST_EMAIL",
            "mm@old.example",
            vec![("EmailSettings.FeedbackEmail", json!("mm@old.example"))],
        ),
        case(
            "MATTERMOST_SUPPORT_EMAIL",
            "support@old.example",
            vec![("SupportSettings.SupportEmail", json!("support@old.example"))],
        ),
        Case {
            env: vec![
                ("MATTERMOST_EMAIL_NOTIFICATIONS", "false"),
                ("SMTP_HOST", "smtp.old.example"),
            ],
            ..case(
                "MATTERMOST_EMAIL_NOTIFICATIONS",
                "",
                vec![
                    ("EmailSettings.SendEmailNotifications", json!(false)),
                    ("EmailSettings.RequireEmailVerification", json!(true)),
                    ("EmailSettings.EnableEmailBatching", json!(false)),
                    ("EmailSettings.SMTPServer", json!("smtp.old.example")),
                ],
            )
        },
        Case {
            env: vec![
                ("MATTERMOST_EMAIL_VERIFICATION", "false"),
                ("SMTP_HOST", "smtp.old.example"),
            ],
            ..case(
                "MATTERMOST_EMAIL_VERIFICATION",
                "",
                vec![
                    ("EmailSettings.RequireEmailVerification", json!(false)),
                    ("EmailSettings.SendEmailNotifications", json!(true)),
                    ("EmailSettings.EnableEmailBatching", json!(true)),
                    ("EmailSettings.SMTPServer", json!("smtp.old.example")),
                ],
            )
        },
        case(
            "MATTERMOST_ENABLE_EMAIL_BATCHING",
            "false",
            vec![("EmailSettings.EnableEmailBatching", json!(false))],
        ),
        case(
            "MATTERMOST_PUSH_SERVER",
            "https://push.old.example",
            vec![
                (
                    "EmailSettings.PushNotificationServer",
                    json!("https://push.old.example"),
                ),
                ("EmailSettings.SendPushNotifications", json!(true)),
            ],
        ),
        Case {
            env: vec![
                ("MATTERMOST_ENABLE_PUSH_NOTIFICATIONS", "false"),
                ("MATTERMOST_PUSH_SERVER", "https://push.old.example"),
            ],
            ..case(
                "MATTERMOST_ENABLE_PUSH_NOTIFICATIONS",
                "",
                vec![
                    ("EmailSettings.SendPushNotifications", json!(false)),
                    (
                        "EmailSettings.PushNotificationServer",
                        json!("https://push.old.example"),
                    ),
                ],
            )
        },
        case(
            "MATTERMOST_PUSH_FULL_MESSAGE",
            "false",
            vec![("EmailSettings.PushNotificationContents", json!("generic"))],
        ),
        case(
            "MATTERMOST_PUSH_CONTENTS",
            "Full",
            vec![("EmailSettings.PushNotificationContents", json!("full"))],
        ),
        case(
            "MATTERMOST_MAX_FILE_SIZE",
            "52428800",
            vec![("FileSettings.MaxFileSize", json!(52428800))],
        ),
        case(
            "MATTERMOST_ENABLE_PUBLIC_LINKS",
            "true",
            vec![("FileSettings.EnablePublicLink", json!(true))],
        ),
        case(
            "MATTERMOST_DATA_DIR",
            "/opt/mattermost/data",
            vec![("FileSettings.Directory", json!("/opt/mattermost/data"))],
        ),
        case(
            "MATTERMOST_LOG_DIR",
            "/var/log/mattermost",
            vec![("LogSettings.FileLocation", json!("/var/log/mattermost"))],
        ),
        Case {
            env: vec![("MATTERMOST_ENABLE_RATE_LIMIT", "true")],
            ..case(
                "MATTERMOST_ENABLE_RATE_LIMIT",
                "",
                vec![("RateLimitSettings.Enable", json!(false))],
            )
        },
        Case {
            env: vec![("MATTERMOST_RATE_LIMIT_QPS", "99")],
            facts: |f| f.rate_limit_per_sec = 42,
            ..case(
                "MATTERMOST_RATE_LIMIT_QPS",
                "",
                vec![("RateLimitSettings.PerSec", json!(42))],
            )
        },
        Case {
            env: vec![("MATTERMOST_RATE_LIMIT_SESSIONS", "5")],
            facts: |f| f.rate_limit_sessions = 20000,
            ..case(
                "MATTERMOST_RATE_LIMIT_SESSIONS",
                "",
                vec![("RateLimitSettings.MemoryStoreSize", json!(20000))],
            )
        },
        Case {
            env: vec![("MATTERMOST_RATE_LIMIT_BY_IP", "true")],
            facts: |f| f.rate_limit_by_ip = false,
            ..case(
                "MATTERMOST_RATE_LIMIT_BY_IP",
                "",
                vec![("RateLimitSettings.VaryByRemoteAddr", json!(false))],
            )
        },
        Case {
            env: vec![("MATTERMOST_RATE_LIMIT_HEADERS", "X-From-Env")],
            facts: |f| f.rate_limit_headers = vec!["X-Session-Key".into()],
            ..case(
                "MATTERMOST_RATE_LIMIT_HEADERS",
                "",
                vec![("RateLimitSettings.VaryByHeader", json!("X-Session-Key"))],
            )
        },
        case(
            "MATTERMOST_SHOW_EMAIL",
            "true",
            vec![("PrivacySettings.ShowEmailAddress", json!(true))],
        ),
        case(
            "MATTERMOST_SHOW_NAME",
            "false",
            vec![("PrivacySettings.ShowFullName", json!(false))],
        ),
        case(
            "MATTERMOST_SERVER_LOCALE",
            "fr",
            vec![("LocalizationSettings.DefaultServerLocale", json!("fr"))],
        ),
        case(
            "MATTERMOST_CLIENT_LOCALE",
            "fr",
            vec![("LocalizationSettings.DefaultClientLocale", json!("fr"))],
        ),
        case(
            "MATTERMOST_LOCALES",
            "en,fr",
            vec![("LocalizationSettings.AvailableLocales", json!("en,fr"))],
        ),
        Case {
            env: vec![("DB_ADAPTER", "MySQL"), ("DB_HOST", "db.old")],
            warns: true,
            ..case(
                "DB_ADAPTER",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("mysql")),
                    (
                        "SqlSettings.DataSource",
                        json!("root:@tcp(db.old:3306)/mattermost?charset=utf8mb4,utf8"),
                    ),
                ],
            )
        },
        Case {
            env: vec![("DB_ADAPTER", "postgres"), ("DB_HOST", "db.old")],
            ..case(
                "DB_HOST",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("postgres")),
                    ("SqlSettings.DataSource", pg("root:@db.old:5432/mattermost")),
                ],
            )
        },
        Case {
            env: vec![
                ("DB_ADAPTER", "postgres"),
                ("DB_HOST", "db.old"),
                ("DB_PORT", "6432"),
            ],
            ..case(
                "DB_PORT",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("postgres")),
                    ("SqlSettings.DataSource", pg("root:@db.old:6432/mattermost")),
                ],
            )
        },
        Case {
            env: vec![
                ("DB_ADAPTER", "postgres"),
                ("DB_HOST", "db.old"),
                ("DB_NAME", "chat"),
            ],
            ..case(
                "DB_NAME",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("postgres")),
                    ("SqlSettings.DataSource", pg("root:@db.old:5432/chat")),
                ],
            )
        },
        Case {
            env: vec![
                ("DB_ADAPTER", "postgres"),
                ("DB_HOST", "db.old"),
                ("DB_USER", "mm"),
            ],
            ..case(
                "DB_USER",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("postgres")),
                    ("SqlSettings.DataSource", pg("mm:@db.old:5432/mattermost")),
                ],
            )
        },
        Case {
            env: vec![
                ("DB_ADAPTER", "postgres"),
                ("DB_HOST", "db.old"),
                ("DB_USER", "mm"),
                ("DB_PASS", "p@ss/w:rd%41 x"),
            ],
            ..case(
                "DB_PASS",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("postgres")),
                    (
                        "SqlSettings.DataSource",
                        pg("mm:p%40ss%2Fw:rd%41%20x@db.old:5432/mattermost"),
                    ),
                ],
            )
        },
        Case {
            env: vec![
                ("DB_ADAPTER", "mysql"),
                ("DB_HOST", "db.old"),
                ("DB_USER", "mm"),
                ("DB_PASS", "pw"),
                ("DB_ENCODING", "utf8mb4"),
            ],
            warns: true,
            ..case(
                "DB_ENCODING",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("mysql")),
                    (
                        "SqlSettings.DataSource",
                        json!("mm:pw@tcp(db.old:3306)/mattermost?charset=utf8mb4"),
                    ),
                ],
            )
        },
        case(
            "MATTERMOST_DATASOURCE",
            "postgres://u:p@db.old:5432/chat?sslmode=require",
            vec![
                ("SqlSettings.DriverName", json!("postgres")),
                (
                    "SqlSettings.DataSource",
                    json!("postgres://u:p@db.old:5432/chat?sslmode=require"),
                ),
            ],
        ),
        Case {
            env: vec![
                ("POSTGRES_PORT_5432_TCP_ADDR", "172.17.0.3"),
                ("POSTGRES_PORT_5432_TCP_PORT", "5432"),
                ("POSTGRES_ENV_POSTGRES_USER", "mmlink"),
                ("POSTGRES_ENV_POSTGRES_PASSWORD", "linkpw"),
            ],
            ..case(
                "POSTGRES_PORT_5432_TCP_ADDR",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("postgres")),
                    (
                        "SqlSettings.DataSource",
                        pg("mmlink:linkpw@172.17.0.3:5432/mmlink"),
                    ),
                ],
            )
        },
        Case {
            env: vec![
                ("MYSQL_PORT_3306_TCP_ADDR", "172.17.0.2"),
                ("MYSQL_ENV_MYSQL_USER", "mmlink"),
                ("MYSQL_ENV_MYSQL_PASSWORD", "linkpw"),
                ("MYSQL_ENV_MYSQL_DATABASE", "chat"),
            ],
            warns: true,
            ..case(
                "MYSQL_PORT_3306_TCP_ADDR",
                "",
                vec![
                    ("SqlSettings.DriverName", json!("mysql")),
                    (
                        "SqlSettings.DataSource",
                        json!("mmlink:linkpw@tcp(172.17.0.2:3306)/chat?charset=utf8mb4,utf8"),
                    ),
                ],
            )
        },
        case(
            "SMTP_HOST",
            "smtp.old.example",
            vec![
                ("EmailSettings.SMTPServer", json!("smtp.old.example")),
                ("EmailSettings.SendEmailNotifications", json!(true)),
                ("EmailSettings.RequireEmailVerification", json!(true)),
                ("EmailSettings.EnableEmailBatching", json!(true)),
            ],
        ),
        case(
            "SMTP_PORT",
            "25",
            vec![("EmailSettings.SMTPPort", json!("25"))],
        ),
        case(
            "SMTP_USER",
            "old@old.example",
            vec![
                ("EmailSettings.SMTPUsername", json!("old@old.example")),
                ("EmailSettings.FeedbackEmail", json!("old@old.example")),
                ("EmailSettings.EnableSMTPAuth", json!(true)),
            ],
        ),
        case(
            "SMTP_PASS",
            "pw",
            vec![("EmailSettings.SMTPPassword", json!("pw"))],
        ),
        case(
            "SMTP_SECURITY",
            "tls",
            vec![("EmailSettings.ConnectionSecurity", json!("TLS"))],
        ),
        Case {
            unchanged: vec!["EmailSettings.ConnectionSecurity"],
            warns: true,
            ..case("SMTP_TLS", "true", vec![])
        },
        Case {
            warns: true,
            ..case(
                "GITLAB_ID",
                "gl-new-id",
                vec![
                    ("GitLabSettings.Id", json!("gl-new-id")),
                    ("GitLabSettings.Enable", json!(true)),
                ],
            )
        },
        Case {
            warns: true,
            ..case(
                "GITLAB_SECRET",
                "gl-new",
                vec![("GitLabSettings.Secret", json!("gl-new"))],
            )
        },
        Case {
            warns: true,
            ..case(
                "GITLAB_SCOPE",
                "read_user",
                vec![("GitLabSettings.Scope", json!("read_user"))],
            )
        },
        Case {
            warns: true,
            ..case(
                "GITLAB_AUTH_ENDPOINT",
                "https://gitlab.old/oauth/authorize",
                vec![(
                    "GitLabSettings.AuthEndpoint",
                    json!("https://gitlab.old/oauth/authorize"),
                )],
            )
        },
        Case {
            warns: true,
            ..case(
                "GITLAB_TOKEN_ENDPOINT",
                "https://gitlab.old/oauth/token",
                vec![(
                    "GitLabSettings.TokenEndpoint",
                    json!("https://gitlab.old/oauth/token"),
                )],
            )
        },
        Case {
            warns: true,
            ..case(
                "GITLAB_API_ENDPOINT",
                "https://gitlab.old/api/v4/user",
                vec![(
                    "GitLabSettings.UserAPIEndpoint",
                    json!("https://gitlab.old/api/v4/user"),
                )],
            )
        },
        Case {
            env: vec![("GITLAB_ENABLE", "false"), ("GITLAB_ID", "gl-new-id")],
            warns: true,
            ..case(
                "GITLAB_ENABLE",
                "",
                vec![
                    ("GitLabSettings.Enable", json!(false)),
                    ("GitLabSettings.Id", json!("gl-new-id")),
                ],
            )
        },
    ]
}

/// Runs one case on a copy of the fixture: the expected keys hold the expected values, of the
/// type the fixture (Mattermost) has there; nothing else changes beyond the edge's own keys.
fn run_case(c: &Case) {
    let dir = TempDir::new("case");
    let path = dir.config(FIXTURE);
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture");
    let mut f = facts();
    (c.facts)(&mut f);
    let out = write(&config_only(&path), &f, &env_of(&c.env))
        .unwrap_or_else(|e| panic!("{}: {e}", c.var));
    let doc = read_json(&path);
    let mut allowed: BTreeSet<String> = EDGE_CHANGES.iter().map(|s| s.to_string()).collect();
    for (key, value) in &c.expect {
        let old = at(&fixture, key).unwrap_or_else(|| panic!("{}: fixture lacks {key}", c.var));
        let new = at(&doc, key).unwrap_or_else(|| panic!("{}: {key} not written", c.var));
        assert_eq!(new, value, "{}: {key}", c.var);
        assert_eq!(json_kind(new), json_kind(old), "{}: type of {key}", c.var);
        allowed.insert((*key).to_string());
    }
    for key in &c.unchanged {
        assert_eq!(
            at(&doc, key),
            at(&fixture, key),
            "{}: {key} must not change",
            c.var
        );
    }
    for key in &out.changed_keys {
        assert!(
            allowed.contains(key),
            "{}: unexpected change of {key}",
            c.var
        );
    }
    let warned = out
        .warnings
        .iter()
        .any(|w| w.variable == c.var || c.env.iter().any(|(v, _)| *v == w.variable));
    assert_eq!(warned, c.warns, "{}: warnings {:?}", c.var, out.warnings);
}

#[test]
fn every_variable_with_a_modern_key_writes_that_key_with_mattermost_type() {
    let cases = cases();
    for c in &cases {
        run_case(c);
    }
    // Every row of seed-env-map.tsv with a modern key has a case that writes that key, except
    // MATTERMOST_PORT, which is deliberately left alone (see seed_env::OLD_VARS).
    let mut rows = 0;
    for line in TSV.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 7, "bad row: {line}");
        let modern = cols[4];
        if ["N/A", "NO DIRECT", "REMOVED", "see "]
            .iter()
            .any(|p| modern.starts_with(p))
        {
            continue;
        }
        rows += 1;
        let var = cols[0];
        let c = cases
            .iter()
            .find(|c| c.var == var)
            .unwrap_or_else(|| panic!("no test case for {var} ({modern})"));
        let keys: Vec<&str> = modern
            .split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.'))
            .filter(|t| t.contains("Settings."))
            .collect();
        assert!(!keys.is_empty(), "{var}: no key in {modern}");
        for key in keys {
            let covered = c.expect.iter().any(|(k, _)| *k == key)
                || (var == "MATTERMOST_PORT" && c.unchanged.contains(&key));
            assert!(covered, "{var}: case does not check {key}");
        }
    }
    assert_eq!(rows, 72);
}

#[test]
fn every_variable_of_the_old_image_is_in_the_table() {
    let mut tsv_names: Vec<&str> = Vec::new();
    for line in TSV.lines().skip(1) {
        let first = line.split('\t').next().unwrap_or("");
        tsv_names.extend(first.split(" / "));
    }
    assert_eq!(TSV.lines().count(), 91, "90 rows and a header");
    let table: Vec<&str> = OLD_VARS.iter().map(|v| v.name).collect();
    assert_eq!(table, tsv_names);
    // Every Key mapping names a key of the realistic fixture, with the fixture's type.
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture");
    for v in OLD_VARS {
        if let Handling::Key { section, key, .. } = v.handling {
            assert!(
                at(&fixture, &format!("{section}.{key}")).is_some(),
                "{}: {section}.{key} not in fixture",
                v.name
            );
        }
    }
}

#[test]
fn gated_switches_follow_the_old_image() {
    // Without the variable they depend on, a `true` is written as false, with a warning.
    let env = env_of(&[
        ("MATTERMOST_ENABLE_PUSH_NOTIFICATIONS", "true"),
        ("MATTERMOST_EMAIL_NOTIFICATIONS", "true"),
        ("GITLAB_ENABLE", "true"),
    ]);
    let p = seed_env::plan(&facts(), &env).expect("plan");
    let get = |k: &str| {
        p.settings
            .iter()
            .find(|s| s.key == k)
            .map(|s| s.value.clone())
    };
    assert_eq!(get("SendPushNotifications"), Some(json!(false)));
    assert_eq!(get("SendEmailNotifications"), Some(json!(false)));
    assert_eq!(get("EnableEmailBatching"), Some(json!(false)));
    assert_eq!(get("RequireEmailVerification"), None);
    let gitlab = p
        .settings
        .iter()
        .find(|s| s.section == "GitLabSettings" && s.key == "Enable")
        .map(|s| s.value.clone());
    assert_eq!(gitlab, Some(json!(false)));
    let warned: Vec<&str> = p.warnings.iter().map(|w| w.variable).collect();
    assert!(
        warned.contains(&"MATTERMOST_ENABLE_PUSH_NOTIFICATIONS"),
        "{warned:?}"
    );
    assert!(
        warned.contains(&"MATTERMOST_EMAIL_NOTIFICATIONS"),
        "{warned:?}"
    );
    assert!(warned.contains(&"GITLAB_ENABLE"), "{warned:?}");

    // Nothing set: nothing written beyond the edge's keys, so console choices survive.
    let p = seed_env::plan(&facts(), &no_env).expect("plan");
    assert!(p
        .settings
        .iter()
        .all(|s| s.section == "ServiceSettings" || s.section == "RateLimitSettings"));
    assert_eq!(p.settings.len(), 16);
}

#[test]
fn mysql_warns_that_mattermost_11_dropped_it() {
    let env = env_of(&[("DB_HOST", "db.old")]);
    let p = seed_env::plan(&facts(), &env).expect("plan");
    let texts: Vec<String> = p.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        texts.iter().any(|t| t.contains("assuming mysql")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("Mattermost 11")),
        "{texts:?}"
    );
}

#[test]
fn symlinked_config_is_written_through_the_link() {
    let dir = TempDir::new("symlink");
    let real = dir.config(FIXTURE);
    let link = dir.path("link.json");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    write(&config_only(&link), &facts(), &no_env).expect("write");
    assert!(fs::symlink_metadata(&link)
        .expect("meta")
        .file_type()
        .is_symlink());
    assert_eq!(
        at(&read_json(&real), "ServiceSettings.SiteURL"),
        Some(&json!("https://chat.acme.example"))
    );
}
