//! The documentation cannot drift from the code: every setting the code declares appears in
//! README's reference table (env, key, default, meaning) and in config/mm-edge.toml (key and env),
//! and neither lists a setting the code does not know.

use std::collections::BTreeSet;

use mm_edge::config::SETTINGS;

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
