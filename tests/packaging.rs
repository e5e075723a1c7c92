//! Packaging wiring: docker-compose.yml, Dockerfile, config/compose.env.example
//! and contrib/mm-edge.service agree with each other and with the settings the
//! code knows. No Docker engine is needed: the files are parsed, not run (tests/container.rs
//! builds the image from the Dockerfile and runs it).
//!
//! `systemd_unit_passes_systemd_analyze_verify` needs `systemd-analyze`
//! (Debian package `systemd`); it skips without it, except under CI=true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

/// Variables of the official postgres image that docker-compose.yml may set.
const POSTGRES_IMAGE_VARS: &[&str] = &[
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
    "POSTGRES_INITDB_ARGS",
    "POSTGRES_INITDB_WALDIR",
    "POSTGRES_HOST_AUTH_METHOD",
    "PGDATA",
    "TZ",
];

/// Variables the Mattermost container reads that are not config.json settings
/// (so not in the settings table): MM_CONFIG picks the config store, TZ the
/// time zone.
const MATTERMOST_NON_SETTING_VARS: &[&str] = &["MM_CONFIG", "TZ"];

/// Mattermost settings mm-edge writes into config.json. Setting them as MM_*
/// variables on the Mattermost container would override what mm-edge writes.
const WRITTEN_BY_MM_EDGE: &[&str] = &[
    "MM_SERVICESETTINGS_SITEURL",
    "MM_SERVICESETTINGS_CONNECTIONSECURITY",
    "MM_SERVICESETTINGS_TLSCERTFILE",
    "MM_SERVICESETTINGS_TLSKEYFILE",
    "MM_SERVICESETTINGS_USELETSENCRYPT",
    "MM_SERVICESETTINGS_FORWARD80TO443",
    "MM_SERVICESETTINGS_TRUSTEDPROXYIPHEADER",
    "MM_SERVICESETTINGS_ALLOWCORSFROM",
    "MM_SERVICESETTINGS_CORSEXPOSEDHEADERS",
    "MM_SERVICESETTINGS_CORSALLOWCREDENTIALS",
];

const EDGE: &str = "mm-edge";
const INIT: &str = "mm-edge-init";
const MATTERMOST: &str = "mattermost";
const POSTGRES: &str = "postgres";
const CONFIG_DIR: &str = "/mattermost/config";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    let path = repo_file(rel);
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

fn compose() -> Value {
    let text = read("docker-compose.yml");
    match serde_norway::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("docker-compose.yml is not valid YAML: {e}"),
    }
}

fn services(doc: &Value) -> &serde_norway::Mapping {
    match doc.get("services").and_then(Value::as_mapping) {
        Some(m) => m,
        None => panic!("docker-compose.yml has no `services:` mapping"),
    }
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    match services(doc).get(name) {
        Some(s) => s,
        None => panic!("docker-compose.yml has no service `{name}`"),
    }
}

/// Environment of a service as name -> value (None: taken from .env/shell).
/// Accepts both the map and the list (`KEY=value` / `KEY`) forms.
fn environment(svc: &Value) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    match svc.get("environment") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let Some(k) = k.as_str() else {
                    panic!("environment key {k:?} is not a string")
                };
                let v = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    Value::Bool(b) => Some(b.to_string()),
                    Value::Number(n) => Some(n.to_string()),
                    other => panic!("environment value of {k} is not a scalar: {other:?}"),
                };
                out.insert(k.to_owned(), v);
            }
        }
        Some(Value::Sequence(seq)) => {
            for item in seq {
                let Some(s) = item.as_str() else {
                    panic!("environment entry {item:?} is not a string")
                };
                match s.split_once('=') {
                    Some((k, v)) => out.insert(k.to_owned(), Some(v.to_owned())),
                    None => out.insert(s.to_owned(), None),
                };
            }
        }
        Some(other) => panic!("unexpected environment form: {other:?}"),
    }
    out
}

/// Splits a short-syntax `a:b:c` string on colons outside `${...}`.
fn split_colons(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut depth = 0usize;
    let mut prev = '\0';
    for c in s.chars() {
        match c {
            '{' if prev == '$' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ':' if depth == 0 => {
                parts.push(std::mem::take(&mut part));
                prev = c;
                continue;
            }
            _ => {}
        }
        part.push(c);
        prev = c;
    }
    parts.push(part);
    parts
}

/// Mounts of a service as (source, target).
fn mounts(svc: &Value) -> Vec<(String, String)> {
    let Some(seq) = svc.get("volumes").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    seq.iter()
        .map(|v| match v {
            Value::String(s) => {
                let parts = split_colons(s);
                assert!(parts.len() >= 2, "volume `{s}` has no target");
                (parts[0].clone(), parts[1].clone())
            }
            Value::Mapping(_) => {
                let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
                (field("source").to_owned(), field("target").to_owned())
            }
            other => panic!("unexpected volume entry {other:?}"),
        })
        .collect()
}

/// Container ports a service publishes (short or long syntax).
fn published_container_ports(svc: &Value) -> Vec<String> {
    let Some(seq) = svc.get("ports").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    seq.iter()
        .map(|p| match p {
            Value::String(s) => {
                let last = split_colons(s).pop().unwrap_or_default();
                last.split('/').next().unwrap_or_default().to_owned()
            }
            Value::Number(n) => n.to_string(),
            Value::Mapping(_) => match p.get("target") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                other => panic!("port entry without target: {other:?}"),
            },
            other => panic!("unexpected port entry {other:?}"),
        })
        .collect()
}

fn depends_condition<'a>(svc: &'a Value, on: &str) -> Option<&'a str> {
    svc.get("depends_on")?
        .get(on)?
        .get("condition")
        .and_then(Value::as_str)
}

fn mm_edge_env_names() -> BTreeSet<&'static str> {
    let mut names: BTreeSet<&'static str> =
        mm_edge::config::SETTINGS.iter().map(|s| s.env).collect();
    names.extend(
        mm_edge::mattermost::seed_env::OLD_VARS
            .iter()
            .map(|v| v.name),
    );
    names.insert("MM_EDGE_CONFIG");
    names
}

/// MM_* names from the `environment` column of Mattermost's settings table.
fn mattermost_env_names() -> BTreeSet<String> {
    let text = read("tests/data/mattermost-settings-env-names.tsv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let Some(col) = header.iter().position(|h| *h == "environment") else {
        panic!("mattermost-settings-env-names.tsv has no `environment` column: {header:?}")
    };
    let names: BTreeSet<String> = lines
        .filter_map(|l| l.split('\t').nth(col))
        .map(str::trim)
        .filter(|n| n.starts_with("MM_"))
        .map(str::to_owned)
        .collect();
    assert!(
        names.len() > 400,
        "only {} names read from the settings table",
        names.len()
    );
    names
}

/// Names used as `${NAME}`, `${NAME:-x}`, `${NAME:?x}` ... in a text.
fn interpolated_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
        rest = after;
    }
    out
}

// ---------------------------------------------------------------- compose --

#[test]
fn compose_has_the_four_services() {
    let doc = compose();
    let names: BTreeSet<&str> = services(&doc).keys().filter_map(Value::as_str).collect();
    for want in [POSTGRES, MATTERMOST, INIT, EDGE] {
        assert!(
            names.contains(want),
            "service `{want}` missing; have {names:?}"
        );
    }
}

#[test]
fn only_mm_edge_publishes_ports_and_it_publishes_80_and_443() {
    let doc = compose();
    for (name, svc) in services(&doc) {
        let name = name.as_str().unwrap_or_default();
        let ports = published_container_ports(svc);
        if name == EDGE {
            for want in ["80", "443"] {
                assert!(
                    ports.iter().any(|p| p == want),
                    "mm-edge does not publish {want}: {ports:?}"
                );
            }
        } else if name == "prometheus" {
            // The monitoring profile's UI (README: on the Docker host's 127.0.0.1:9090), and
            // nothing beyond loopback.
            let published: Vec<&str> = svc
                .get("ports")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .map(|p| match p.as_str() {
                    Some(p) => p,
                    None => panic!("prometheus port entry {p:?} is not a string"),
                })
                .collect();
            assert_eq!(
                published,
                ["127.0.0.1:9090:9090"],
                "prometheus must publish its UI on the host's loopback only"
            );
        } else {
            assert!(
                ports.is_empty(),
                "service `{name}` publishes ports {ports:?}; only mm-edge may"
            );
        }
    }
}

#[test]
fn config_volume_is_shared_and_is_where_mm_edge_writes() {
    let doc = compose();
    let source_at = |svc_name: &str| {
        mounts(service(&doc, svc_name))
            .into_iter()
            .find(|(_, target)| target == CONFIG_DIR)
            .map(|(source, _)| source)
    };
    let Some(volume) = source_at(MATTERMOST) else {
        panic!("mattermost does not mount {CONFIG_DIR}")
    };
    assert!(
        !volume.starts_with('.') && !volume.starts_with('/') && !volume.starts_with('$'),
        "the config volume `{volume}` should be a named volume"
    );
    let declared = doc.get("volumes").and_then(Value::as_mapping);
    assert!(
        declared.is_some_and(|m| m.contains_key(volume.as_str())),
        "named volume `{volume}` is not declared under top-level `volumes:`"
    );
    for svc_name in [EDGE, INIT] {
        assert_eq!(
            source_at(svc_name).as_deref(),
            Some(volume.as_str()),
            "{svc_name} must mount the config volume `{volume}` at {CONFIG_DIR}"
        );
        let env = environment(service(&doc, svc_name));
        let file = env.get("MM_EDGE_MATTERMOST_CONFIG").cloned().flatten();
        assert_eq!(
            file.as_deref(),
            Some("/mattermost/config/config.json"),
            "{svc_name} must write config.json inside the shared volume"
        );
    }
}

#[test]
fn start_order_postgres_healthy_and_config_written_before_mattermost() {
    let doc = compose();
    let mm = service(&doc, MATTERMOST);
    assert_eq!(depends_condition(mm, POSTGRES), Some("service_healthy"));
    assert_eq!(
        depends_condition(mm, INIT),
        Some("service_completed_successfully")
    );
    assert!(
        service(&doc, POSTGRES)
            .get("healthcheck")
            .and_then(|h| h.get("test"))
            .is_some(),
        "postgres needs a healthcheck for service_healthy"
    );

    let init = service(&doc, INIT);
    let command: Vec<&str> = match init.get("command") {
        Some(Value::Sequence(s)) => s.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split_whitespace().collect(),
        other => panic!("mm-edge-init has no command: {other:?}"),
    };
    assert!(
        command.contains(&"write-mattermost-config"),
        "init command is {command:?}"
    );
    assert_eq!(init.get("restart").and_then(Value::as_str), Some("no"));
    assert_eq!(
        depends_condition(service(&doc, EDGE), INIT),
        Some("service_completed_successfully")
    );
}

#[test]
fn images_are_pinned_and_mm_edge_is_built_here() {
    let doc = compose();
    for (name, prefix) in [
        (MATTERMOST, "mattermost/mattermost-team-edition:"),
        (POSTGRES, "postgres:"),
    ] {
        let image = service(&doc, name)
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(image.starts_with(prefix), "{name} image is `{image}`");
        let tag = &image[prefix.len()..];
        assert!(
            !tag.is_empty() && !tag.contains("latest"),
            "{name} image `{image}` is not pinned"
        );
    }
    for name in [EDGE, INIT] {
        assert!(
            service(&doc, name).get("build").is_some(),
            "{name} must be built from this repository"
        );
    }
}

#[test]
fn every_variable_compose_sets_is_read_by_its_container() {
    let doc = compose();
    let edge_names = mm_edge_env_names();
    for name in [EDGE, INIT] {
        for var in environment(service(&doc, name)).keys() {
            assert!(
                edge_names.contains(var.as_str()),
                "{name} sets {var}, which mm-edge does not read"
            );
        }
    }
    assert_eq!(
        environment(service(&doc, EDGE)),
        environment(service(&doc, INIT)),
        "mm-edge and mm-edge-init must see the same settings (same site URL written and served)"
    );

    let mm_names = mattermost_env_names();
    let mm_env = environment(service(&doc, MATTERMOST));
    for var in mm_env.keys() {
        assert!(
            mm_names.contains(var) || MATTERMOST_NON_SETTING_VARS.contains(&var.as_str()),
            "mattermost sets {var}, which is not a Mattermost setting"
        );
        assert!(
            !WRITTEN_BY_MM_EDGE.contains(&var.as_str())
                && !var.starts_with("MM_RATELIMITSETTINGS_"),
            "mattermost sets {var}: it would override the value mm-edge writes into config.json"
        );
    }
    for want in ["MM_SQLSETTINGS_DRIVERNAME", "MM_SQLSETTINGS_DATASOURCE"] {
        assert!(mm_env.contains_key(want), "mattermost needs {want}");
    }

    for var in environment(service(&doc, POSTGRES)).keys() {
        assert!(
            POSTGRES_IMAGE_VARS.contains(&var.as_str()),
            "postgres sets {var}, which its image does not read"
        );
    }
}

#[test]
fn mm_edge_points_at_the_mattermost_service() {
    let doc = compose();
    let env = environment(service(&doc, EDGE));
    let upstreams = env
        .get("MM_EDGE_UPSTREAMS")
        .cloned()
        .flatten()
        .unwrap_or_default();
    assert_eq!(upstreams, "http://mattermost:8065");
    let host = env
        .get("MATTERMOST_HOST")
        .cloned()
        .flatten()
        .unwrap_or_default();
    assert!(
        host.contains("${MATTERMOST_HOST"),
        "MATTERMOST_HOST must come from .env, got `{host}`"
    );
}

#[test]
fn every_compose_variable_is_documented_in_the_env_example() {
    let compose_text = read("docker-compose.yml");
    let example = read("config/compose.env.example");
    let documented: BTreeSet<&str> = example
        .lines()
        .map(|l| l.trim_start_matches('#').trim_start())
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    let mut wanted = interpolated_names(&compose_text);
    // Variables the containers take from .env by name (`KEY:` with no value).
    let doc = compose();
    for name in [EDGE, INIT] {
        for (k, v) in environment(service(&doc, name)) {
            if v.is_none() {
                wanted.insert(k);
            }
        }
    }
    assert!(wanted.contains("MATTERMOST_HOST") && wanted.contains("POSTGRES_PASSWORD"));
    for name in &wanted {
        assert!(
            documented.contains(name.as_str()),
            "{name} is used by docker-compose.yml but not in config/compose.env.example"
        );
    }
}

// ------------------------------------------------------------- Dockerfile --

/// Dockerfile instructions (continuations joined, comments dropped) as
/// (INSTRUCTION, arguments), with the index of the stage they belong to.
fn dockerfile() -> Vec<(usize, String, String)> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut stage = 0usize;
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        let (body, continued) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        current.push_str(body);
        current.push(' ');
        if continued {
            continue;
        }
        let joined = std::mem::take(&mut current);
        let joined = joined.trim();
        if joined.is_empty() {
            continue;
        }
        let (instr, args) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((joined, ""));
        let instr = instr.to_ascii_uppercase();
        if instr == "FROM" {
            stage += 1;
        }
        out.push((stage, instr, args.trim().to_owned()));
    }
    out
}

/// The build arguments declared before the first FROM, with their defaults expanded
/// (`${NAME}` of an earlier one), as a builder expands them for the FROM lines.
fn global_args(instrs: &[(usize, String, String)]) -> BTreeMap<String, String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    for (_, _, decl) in instrs.iter().filter(|(s, i, _)| *s == 0 && i == "ARG") {
        let (name, default) = decl.split_once('=').unwrap_or((decl.as_str(), ""));
        let mut value = default.to_owned();
        for (earlier, v) in &args {
            value = value.replace(&format!("${{{earlier}}}"), v.as_str());
        }
        args.insert(name.to_owned(), value);
    }
    args
}

#[test]
fn dockerfile_is_multi_stage_locked_non_root_with_healthcheck() {
    let instrs = dockerfile();
    let last_stage = instrs.iter().map(|(s, _, _)| *s).max().unwrap_or(0);
    assert!(last_stage >= 2, "the Dockerfile should be multi-stage");
    let final_stage: Vec<(&str, &str)> = instrs
        .iter()
        .filter(|(s, _, _)| *s == last_stage)
        .map(|(_, i, a)| (i.as_str(), a.as_str()))
        .collect();
    let find_all = |what: &'static str| {
        final_stage
            .iter()
            .filter(move |(i, _)| *i == what)
            .map(|(_, a)| *a)
    };

    // Both base images are build arguments (tests/container.rs substitutes local stand-ins);
    // their defaults are the official rust image and distroless cc, both on Debian 13.
    let froms: Vec<&str> = instrs
        .iter()
        .filter(|(_, i, _)| i == "FROM")
        .map(|(_, _, a)| a.as_str())
        .collect();
    assert_eq!(
        froms,
        ["${BUILDER_IMAGE} AS builder", "${RUNTIME_IMAGE}"],
        "the base images should be the BUILDER_IMAGE and RUNTIME_IMAGE build arguments"
    );
    let args = global_args(&instrs);
    let builder = args.get("BUILDER_IMAGE").map(String::as_str);
    let rust_version = args.get("RUST_VERSION").map(String::as_str).unwrap_or("");
    assert_eq!(
        builder,
        Some(format!("rust:{rust_version}-trixie").as_str()),
        "builder should default to the official rust image on trixie (RUST_VERSION {rust_version})"
    );
    assert_eq!(
        args.get("RUNTIME_IMAGE").map(String::as_str),
        Some("gcr.io/distroless/cc-debian13"),
        "runtime should default to distroless cc on Debian 13"
    );
    let builds: Vec<&str> = instrs
        .iter()
        .filter(|(_, i, a)| i == "RUN" && a.contains("cargo build"))
        .map(|(_, _, a)| a.as_str())
        .collect();
    assert!(
        !builds.is_empty(),
        "the builder must run `cargo build --release --locked`"
    );
    for run in builds {
        assert!(
            run.contains("cargo build --release --locked"),
            "every cargo build must be --release --locked: RUN {run}"
        );
    }

    let user = find_all("USER").next_back().unwrap_or("root");
    let uid = user.split(':').next().unwrap_or("root");
    assert!(
        uid != "root" && uid != "0",
        "the runtime stage must not run as root (USER {user})"
    );

    let exposed: BTreeSet<&str> = find_all("EXPOSE").flat_map(str::split_whitespace).collect();
    assert!(
        exposed.contains("80") && exposed.contains("443"),
        "EXPOSE {exposed:?}"
    );

    let health: Vec<&str> = find_all("HEALTHCHECK").collect();
    assert!(
        health
            .iter()
            .any(|h| h.contains("CMD") && h.contains("mm-edge") && h.contains("healthcheck")),
        "HEALTHCHECK must run `mm-edge healthcheck`: {health:?}"
    );

    // The state dir is a volume, and it is the one mm-edge uses.
    let volumes: String = find_all("VOLUME").collect::<Vec<_>>().join(" ");
    let env_text: String = find_all("ENV").collect::<Vec<_>>().join(" ");
    let state_dir = env_text
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("MM_EDGE_STATE_DIR="))
        .unwrap_or(mm_edge::config::spec::STATE_DIR.default);
    assert!(
        volumes.contains(state_dir),
        "VOLUME {volumes} does not cover the state dir {state_dir}"
    );

    // ENV only sets variables mm-edge reads.
    let names = mm_edge_env_names();
    for kv in env_text.split_whitespace() {
        let Some((k, _)) = kv.split_once('=') else {
            panic!("use the ENV KEY=value form: `{kv}`")
        };
        assert!(
            names.contains(k),
            "Dockerfile sets ENV {k}, which mm-edge does not read"
        );
    }

    // compose runs the image as the same user the image declares.
    let doc = compose();
    for name in [EDGE, INIT] {
        let svc_user = service(&doc, name).get("user").and_then(Value::as_str);
        assert_eq!(
            svc_user.unwrap_or(user),
            user,
            "{name} runs as a different user than the image"
        );
    }
}

#[test]
fn dockerignore_keeps_secrets_and_target_out_of_the_build_context() {
    let text = read(".dockerignore");
    let entries: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for want in ["target/", ".git/", ".env", "certs/"] {
        assert!(entries.contains(want), ".dockerignore lacks {want}");
    }
    for needed in ["src", "src/", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !entries.contains(needed),
            ".dockerignore excludes {needed}, which the build needs"
        );
    }
}

// ---------------------------------------------------------------- systemd --

/// `Key=value` lines of one section of a unit file (a key may repeat).
fn unit_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// Milliseconds in a duration written like `30s`, `45`, `2min`, `1m30s`, `500ms`.
fn millis(value: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = value.trim();
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits_end].parse().ok()?;
        rest = rest[digits_end..].trim_start();
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let mult = match rest[..unit_end].trim() {
            "" | "s" | "sec" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "ms" => 1,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// The code's default shutdown grace, in milliseconds (the setting, never a guess).
fn shutdown_grace_ms() -> u64 {
    let default = mm_edge::config::spec::SHUTDOWN_GRACE.default;
    millis(default).unwrap_or_else(|| panic!("cannot read the shutdown grace default `{default}`"))
}

#[test]
fn systemd_unit_is_hardened_and_outlasts_the_shutdown_grace() {
    let text = read("contrib/mm-edge.service");
    let service = unit_section(&text, "Service");
    let get = |k: &str| {
        service
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    let one = |k: &str| match get(k).last() {
        Some(v) => v.to_string(),
        None => panic!("mm-edge.service lacks {k}="),
    };

    let user = one("User");
    assert!(user != "root" && user != "0", "User={user}");
    assert!(one("AmbientCapabilities")
        .split_whitespace()
        .eq(["CAP_NET_BIND_SERVICE"]));
    assert!(one("CapabilityBoundingSet")
        .split_whitespace()
        .eq(["CAP_NET_BIND_SERVICE"]));
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "mm-edge"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(k), v, "{k}=");
    }
    // The env file is mm-edge's own (`--env-file`, read again on SIGHUP), not systemd's
    // (read once at start, then shadowing the file's new values).
    assert!(get("EnvironmentFile").is_empty(), "EnvironmentFile= set");
    let families = one("RestrictAddressFamilies");
    assert!(
        families.contains("AF_INET") && families.contains("AF_INET6"),
        "RestrictAddressFamilies={families}"
    );
    assert!(get("SystemCallFilter")
        .iter()
        .any(|v| v.contains("@system-service")));
    assert!(
        !get("SystemCallFilter")
            .iter()
            .any(|v| v.starts_with('~') && (v.contains("@chown") || v.contains("@privileged"))),
        "the config writer needs fchown to keep config.json's owner"
    );

    let exec = one("ExecStart");
    assert!(
        exec.starts_with("/usr/local/bin/mm-edge "),
        "ExecStart={exec}"
    );
    assert!(
        exec.contains("--config /etc/mm-edge/mm-edge.toml"),
        "ExecStart={exec}"
    );
    assert!(
        exec.contains("--env-file /etc/mm-edge/mm-edge.env"),
        "ExecStart={exec}"
    );
    assert!(
        exec.split_whitespace().last() == Some("run"),
        "ExecStart={exec}"
    );
    // README: `systemctl reload mm-edge` (SIGHUP) re-reads the certificate and the upstreams.
    let reload = one("ExecReload");
    assert!(
        reload.contains("-HUP") && reload.contains("$MAINPID"),
        "ExecReload={reload} should send SIGHUP to mm-edge"
    );

    let grace = shutdown_grace_ms();
    let stop = millis(&one("TimeoutStopSec"))
        .unwrap_or_else(|| panic!("cannot read TimeoutStopSec={}", one("TimeoutStopSec")));
    assert!(
        stop > grace,
        "TimeoutStopSec={stop}ms must exceed the shutdown grace ({grace}ms)"
    );

    let install = unit_section(&text, "Install");
    assert!(install
        .iter()
        .any(|(k, v)| k == "WantedBy" && v == "multi-user.target"));
}

#[test]
fn compose_stop_grace_outlasts_the_shutdown_grace() {
    let doc = compose();
    let value = service(&doc, EDGE)
        .get("stop_grace_period")
        .and_then(Value::as_str)
        .unwrap_or_else(|| {
            panic!("mm-edge has no stop_grace_period: Docker's 10 s would cut the shutdown grace short")
        });
    let stop = millis(value).unwrap_or_else(|| panic!("cannot read stop_grace_period `{value}`"));
    let grace = shutdown_grace_ms();
    assert!(
        stop > grace,
        "mm-edge stop_grace_period {stop}ms must exceed the shutdown grace ({grace}ms)"
    );
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let have_tool = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_tool {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (apt-get install systemd); required when CI=true"
        );
        eprintln!("skipping: systemd-analyze not installed");
        return;
    }
    // Verify a copy whose ExecStart points at the binary cargo just built
    // (verify checks that the command exists and is executable).
    let dir = std::env::temp_dir().join(format!("mm-edge-unit-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    let unit = read("contrib/mm-edge.service").replace(
        "/usr/local/bin/mm-edge ",
        &format!("{} ", env!("CARGO_BIN_EXE_mm-edge")),
    );
    let path = dir.join("mm-edge.service");
    if let Err(e) = std::fs::write(&path, unit) {
        panic!("cannot write {}: {e}", path.display());
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    };
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{output}"
    );
    // Unknown keys and bad values are only warnings ("..., ignoring.").
    assert!(
        !output.contains("mm-edge.service:"),
        "systemd-analyze verify warns about the unit:\n{output}"
    );
}

#[test]
fn the_grafana_dashboard_graphs_only_metrics_the_edge_exports() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("contrib/grafana/mm-edge.json")).expect("dashboard is JSON");
    let exported = [
        "mm_edge_http_requests_total",
        "mm_edge_http_request_duration_seconds_bucket",
        "mm_edge_upstream_response_seconds_bucket",
        "mm_edge_rate_limited_total",
        "mm_edge_connections_open",
        "mm_edge_websocket_tunnels_open",
        "mm_edge_upstream_up",
        "mm_edge_upstream_errors_total",
        "mm_edge_bytes_total",
        "mm_edge_certificate_expiry_timestamp_seconds",
        "mm_edge_access_log_dropped_total",
        "mm_edge_tls_handshake_failures_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ];
    let panels = dash["panels"].as_array().expect("panels");
    assert!(
        panels.len() >= 6,
        "requests, latency, rate limited, connections, upstreams, certificate"
    );
    for p in panels {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("mm_edge_") || w.starts_with("process_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert!(
                    exported.contains(&n),
                    "{expr} graphs {n}, which the edge does not export"
                );
            }
        }
    }
}
