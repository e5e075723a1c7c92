//! Merging our keys into Mattermost's config.json, and printing it the way Mattermost does.

use super::{Error, Setting};
use serde_json::{Map, Value};
use std::path::Path;

/// A JSON type, named for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Parses config.json; the error names the file and the position.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        // serde_json appends " at line L column C", which the message gives separately.
        let text = e.to_string();
        let message = match text.rsplit_once(" at line ") {
            Some((m, _)) => m.to_string(),
            None => text,
        };
        Error::Malformed {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message,
            backup: super::atomic::backup_path(path).is_file(),
        }
    })
}

/// Sets every key of `settings` in `doc`, keeping every other key and the order of all keys
/// (new keys go at the end of their section, new sections at the end of the file).
/// Checks every key before changing any; returns the `Section.Key` names whose value changed.
pub(crate) fn merge(
    doc: &mut Value,
    settings: &[Setting],
    path: &Path,
) -> Result<Vec<String>, Error> {
    let wrong = |key: String, found: &Value, expected: &'static str, source: &'static str| {
        Error::WrongType {
            path: path.to_path_buf(),
            key,
            found: kind(found),
            expected,
            from: source,
        }
    };
    let Some(root) = doc.as_object_mut() else {
        return Err(wrong("(top level)".into(), doc, "an object", "mm-edge"));
    };
    for s in settings {
        match root.get(s.section) {
            None | Some(Value::Null) => {}
            Some(Value::Object(section)) => match section.get(s.key) {
                // A null is what an unset pointer marshals to: safe to replace.
                None | Some(Value::Null) => {}
                Some(old) if kind(old) == kind(&s.value) => {}
                Some(old) => {
                    return Err(wrong(
                        format!("{}.{}", s.section, s.key),
                        old,
                        kind(&s.value),
                        s.source,
                    ))
                }
            },
            Some(other) => {
                return Err(wrong(s.section.to_string(), other, "an object", s.source));
            }
        }
    }
    let mut changed = Vec::new();
    for s in settings {
        let section = root
            .entry(s.section)
            .or_insert_with(|| Value::Object(Map::new()));
        if section.is_null() {
            *section = Value::Object(Map::new());
        }
        if let Value::Object(section) = section {
            match section.get_mut(s.key) {
                Some(old) if *old == s.value => {}
                Some(old) => {
                    *old = s.value.clone();
                    changed.push(format!("{}.{}", s.section, s.key));
                }
                None => {
                    section.insert(s.key.to_string(), s.value.clone());
                    changed.push(format!("{}.{}", s.section, s.key));
                }
            }
        }
    }
    Ok(changed)
}

/// The indentation unit of an existing file (the leading whitespace of its first indented
/// line); Mattermost itself writes four spaces.
pub(crate) fn detect_indent(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .skip(1)
        .map(|l| {
            let trimmed = l.trim_start_matches([' ', '\t']);
            &l[..l.len() - trimmed.len()]
        })
        .find(|ws| !ws.is_empty())
        .unwrap_or("    ")
        .to_string()
}

/// Prints `v` as Go's `json.MarshalIndent` does (Mattermost's own writer), so a rewrite only
/// changes the lines of the keys that changed.
pub(crate) fn to_go_json(v: &Value, indent: &str, trailing_newline: bool) -> Vec<u8> {
    let mut out = String::new();
    write_value(&mut out, v, indent, 0);
    if trailing_newline {
        out.push('\n');
    }
    out.into_bytes()
}

fn newline(out: &mut String, indent: &str, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(indent);
    }
}

fn write_value(out: &mut String, v: &Value, indent: &str, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_value(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_str(out, k);
                out.push_str(": ");
                write_value(out, item, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push('}');
        }
    }
}

/// Go's string escaping with HTML-safe output (its default): `<`, `>`, `&`, U+2028 and U+2029
/// become `\u` escapes, which is why Mattermost's DSNs read `\u0026`.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}
