//! The documentation cannot drift from the code: every setting the code declares appears in
//! README's reference table (env, key, default, meaning) and in config/mm-edge.toml (key and env),
//! and neither lists a setting the code does not know; README's table of the old image's
//! variables lists exactly the code's (`src/mattermost/seed_env/table.rs`), in its order, each with
//! the handling, key and type the code gives it.

use std::collections::BTreeSet;

use mm_edge::config::SETTINGS;
use mm_edge::mattermost::seed_env::{Handling, Ty, OLD_VARS};

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .expect(path)
}

fn expected_row(s: &mm_edge::config::Setting) -> String {
    let default = if s.default.is_empty() {
        "\"\""
    } else {
        s.default
    };
    format!(
        "| `{}` | `{}` | `{}` | {} |",
        s.env,
        s.key,
        default,
        s.doc.replace('|', "\\|")
    )
}

#[test]
fn readme_settings_table_matches_the_code() {
    let readme = read("README.md");
    let begin = readme
        .find("<!-- settings-table:begin -->")
        .expect("table start marker");
    let end = readme
        .find("<!-- settings-table:end -->")
        .expect("table end marker");
    let table: Vec<&str> = readme[begin..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    let expected: Vec<String> = SETTINGS.iter().map(|s| expected_row(s)).collect();
    for row in &expected {
        assert!(
            table.contains(&row.as_str()),
            "README settings table lacks or misstates:\n{row}"
        );
    }
    assert_eq!(
        table.len(),
        expected.len(),
        "README table has rows the code does not declare"
    );
}

#[test]
fn shipped_toml_lists_every_setting_with_its_env_variable() {
    let toml_text = read("config/mm-edge.toml");
    let parsed: toml::Table = toml_text.parse().expect("valid TOML");
    let mut keys = BTreeSet::new();
    for (k, v) in &parsed {
        match v {
            toml::Value::Table(t) => keys.extend(t.keys().map(|k2| format!("{k}.{k2}"))),
            _ => {
                keys.insert(k.clone());
            }
        }
    }
    let declared: BTreeSet<String> = SETTINGS.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(
        keys, declared,
        "config/mm-edge.toml keys differ from the code's settings"
    );
    for s in SETTINGS {
        assert!(
            toml_text.contains(&format!("# env: {}\n", s.env)),
            "config/mm-edge.toml does not name {}",
            s.env
        );
    }
}

#[test]
fn every_flag_in_help_and_env_names_are_unique() {
    let envs: BTreeSet<&str> = SETTINGS.iter().map(|s| s.env).collect();
    assert_eq!(
        envs.len(),
        SETTINGS.len(),
        "an env variable is declared twice"
    );
    let keys: BTreeSet<&str> = SETTINGS.iter().map(|s| s.key).collect();
    assert_eq!(keys.len(), SETTINGS.len(), "a TOML key is declared twice");
    // The binary's own --help lists each setting's flag with its environment variable.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mm-edge"))
        .arg("--help")
        .output()
        .expect("run mm-edge --help");
    assert!(out.status.success(), "mm-edge --help failed");
    let help = String::from_utf8_lossy(&out.stdout);
    for s in SETTINGS {
        let flag = format!("--{} <VALUE>", s.flag());
        let at = help
            .find(&flag)
            .unwrap_or_else(|| panic!("{flag} missing from --help:\n{help}"));
        let entry = &help[at..];
        let entry = &entry[..entry[1..].find("\n      --").map_or(entry.len(), |n| n + 1)];
        assert!(
            entry.contains(&format!("[env: {}]", s.env)),
            "--help entry for {flag} does not name {}:\n{entry}",
            s.env
        );
    }
}

/// The rows of README's "Every variable of the old image" table: (variable names, what mm-edge
/// does, notes). A row may name several variables (the legacy `--link` fallbacks).
fn readme_old_image_rows(readme: &str) -> Vec<(Vec<String>, String, String)> {
    let start = readme
        .find("### Every variable of the old image")
        .expect("README section \"Every variable of the old image\"");
    let section = &readme[start..];
    let end = section[1..].find("\n## ").map_or(section.len(), |n| n + 1);
    let rows: Vec<_> = section[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "not a three-column row: {l}");
            let names = cells[0]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            (names, cells[1].to_string(), cells[2].to_string())
        })
        .collect();
    assert!(
        rows.len() > 50,
        "only {} rows read from the README table",
        rows.len()
    );
    rows
}

/// What README must say about a variable written to one Mattermost key: the key and its type.
fn written_to(section: &str, key: &str, ty: &Ty) -> String {
    let ty = match ty {
        Ty::Bool => "bool".to_string(),
        Ty::Int { min } => format!("int ≥ {min}"),
        Ty::DaysAsHours => "int, days × 24".to_string(),
        Ty::Str | Ty::Secret { .. } | Ty::OneOf(_) => "string".to_string(),
        Ty::PortString => "string, 1-65535".to_string(),
    };
    format!("written to `{section}.{key}` ({ty}")
}

#[test]
fn readme_old_image_table_matches_the_code() {
    let readme = read("README.md");
    let rows = readme_old_image_rows(&readme);
    let documented: Vec<&str> = rows
        .iter()
        .flat_map(|(names, _, _)| names.iter().map(String::as_str))
        .collect();
    let code: Vec<&str> = OLD_VARS.iter().map(|v| v.name).collect();
    let (doc_set, code_set): (BTreeSet<&str>, BTreeSet<&str>) = (
        documented.iter().copied().collect(),
        code.iter().copied().collect(),
    );
    assert_eq!(
        doc_set.len(),
        documented.len(),
        "README lists a variable twice"
    );
    let missing: Vec<_> = code_set.difference(&doc_set).collect();
    let extra: Vec<_> = doc_set.difference(&code_set).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README's old-image table lacks {missing:?} and lists {extra:?}, which the code does not know"
    );
    assert_eq!(
        documented, code,
        "README's rows are not in the code's order"
    );

    for v in OLD_VARS {
        let (names, what, notes) = rows
            .iter()
            .find(|(names, _, _)| names.iter().any(|n| n == v.name))
            .expect("every name was found above");
        let row = format!("{names:?} | {what} | {notes}");
        let starts = |prefix: &str| {
            assert!(
                what.starts_with(prefix),
                "{}: README says {what:?}, the code's handling is {:?} (README should begin {prefix:?})",
                v.name,
                v.handling
            )
        };
        match &v.handling {
            Handling::Edge => starts("edge"),
            Handling::Key {
                section,
                key,
                ty,
                note,
            } => {
                starts(&written_to(section, key, ty));
                if note.is_some() {
                    assert!(
                        what.contains("with a warning"),
                        "{}: the code warns whenever it is set; README: {row}",
                        v.name
                    );
                }
                if let Ty::OneOf(words) = ty {
                    for w in *words {
                        assert!(
                            row.contains(&format!("`{w}`")),
                            "{}: README does not list the accepted value {w}: {row}",
                            v.name
                        );
                    }
                }
                if let Ty::Secret { min_len } = ty {
                    if *min_len > 0 {
                        assert!(
                            row.contains(&format!("at least {min_len} characters")),
                            "{}: README does not say the minimum length {min_len}: {row}",
                            v.name
                        );
                    }
                }
            }
            Handling::Derived => assert!(
                !what.starts_with("edge") && !what.starts_with("not supported"),
                "{}: written by a rule in the code, README says {what:?}",
                v.name
            ),
            Handling::Removed(_) | Handling::Ignored(_) => starts("not supported: warning"),
            Handling::Silent => starts("not supported: ignored silently"),
        }
    }
}
