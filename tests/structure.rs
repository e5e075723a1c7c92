//! The shape of the code holds: the top-level modules of `src/` depend on each other without
//! cycles, the edge's own error answers are built in one file, environment-variable names are
//! spelled only where settings are declared (and in the old image's variable table), and no
//! source file carries more than 500 lines of non-test code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mm_edge::config::spec::{CONFIG_FILE_ENV, SETTINGS};

/// The wiring on top: allowed to use everything.
const WIRING: [&str; 3] = ["app", "lib", "main"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`src/edge/cors/mod.rs` -> `edge`).
fn top_module(path: &Path) -> String {
    let rel = path.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// A file's code without its unit tests: a `tests.rs` file is all test code; elsewhere
/// everything from the `#[cfg(test)]` that opens the test module on.
fn non_test_code(path: &Path, text: &str) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests {"))
        {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The code lines of `text` with `//` comments removed (doc comments included).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // Good enough for this code base: no `//` inside string literals outside URLs,
            // which are kept because `://` is not preceded by a space.
            Some(i) if !l[..i].ends_with(':') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_have_no_import_cycles() {
    let files = rust_files(&src());
    let modules: BTreeSet<String> = files.iter().map(|f| top_module(f)).collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = top_module(f);
        let text = std::fs::read_to_string(f).expect("read");
        let code = without_comments(&non_test_code(f, &text));
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != from {
                deps.entry(from.clone()).or_default().insert(name);
            }
        }
    }
    // Depth-first search for a cycle, wiring excluded.
    fn visit(
        m: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(pos) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[pos..].join(" -> "));
        }
        path.push(m.to_string());
        for d in deps.get(m).into_iter().flatten() {
            if !WIRING.contains(&d.as_str()) {
                visit(d, deps, path, done);
            }
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        if !WIRING.contains(&m.as_str()) {
            visit(m, &deps, &mut Vec::new(), &mut done);
        }
    }
    for (m, ds) in &deps {
        if !WIRING.contains(&m.as_str()) {
            for w in WIRING {
                assert!(!ds.contains(w), "{m} depends on the wiring module {w}");
            }
        }
    }
}

#[test]
fn error_answers_are_built_in_one_file() {
    const STATUSES: [&str; 6] = [
        "StatusCode::BAD_REQUEST",
        "StatusCode::PAYLOAD_TOO_LARGE",
        "StatusCode::TOO_MANY_REQUESTS",
        "StatusCode::BAD_GATEWAY",
        "StatusCode::SERVICE_UNAVAILABLE",
        "StatusCode::GATEWAY_TIMEOUT",
    ];
    for f in rust_files(&src()) {
        if f.ends_with("answer.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        let code = without_comments(&non_test_code(&f, &text));
        for s in STATUSES {
            assert!(
                !code.contains(s),
                "{} builds a {s} answer; the edge's answers belong in src/answer.rs",
                f.display()
            );
        }
    }
}

#[test]
fn environment_variable_names_are_spelled_only_where_settings_are_declared() {
    let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.env).collect();
    names.push(CONFIG_FILE_ENV);
    let allowed = [src().join("config"), src().join("mattermost")];
    for f in rust_files(&src()) {
        if allowed.iter().any(|a| f.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read");
        for name in &names {
            let spelled = text.match_indices(name).any(|(i, _)| {
                // A whole name, not a prefix of a longer one.
                let next = text[i + name.len()..].chars().next();
                !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            assert!(
                !spelled,
                "{} spells {name}; name settings through config::spec",
                f.display()
            );
        }
    }
}

#[test]
fn no_source_file_has_more_than_500_lines_of_non_test_code() {
    for f in rust_files(&src()) {
        let text = std::fs::read_to_string(&f).expect("read");
        let lines = non_test_code(&f, &text).lines().count();
        assert!(
            lines <= 500,
            "{}: {lines} lines of non-test code (at most 500)",
            f.display()
        );
    }
}
