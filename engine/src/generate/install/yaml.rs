//! A small, deterministic YAML writer for the manifests `generate install`
//! and the Helm chart produce, with the three Helm template forms the chart
//! needs. Map keys are written sorted, so the output does not depend on how
//! `serde_json` orders maps; strings are plain when that is unambiguous and
//! JSON-quoted (valid YAML) otherwise.
//!
//! Template forms (only in chart output; see [`raw`], [`if_entries`] and
//! [`if_items`]): a scalar written verbatim (`{{ .Values.replicas }}`), map
//! entries and sequence items inside `{{- if ... }} ... {{- end }}`.

use serde_json::{Map, Value};

const RAW: &str = "\u{0}raw\u{0}";
const IF: &str = "\u{0}if\u{0}";

/// A scalar written verbatim, unquoted (a Helm expression).
pub fn raw(expression: &str) -> Value {
    Value::String(format!("{RAW}{expression}"))
}

/// Map entries written inside `{{- if condition }}`: merge the returned map
/// into the parent mapping.
pub fn if_entries(condition: &str, entries: Value) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(format!("{IF}{condition}"), entries);
    map
}

/// Sequence items written inside `{{- if condition }}`: one item standing
/// for `items`.
pub fn if_items(condition: &str, items: Vec<Value>) -> Value {
    let mut map = Map::new();
    map.insert(format!("{IF}{condition}"), Value::Array(items));
    Value::Object(map)
}

/// One YAML document (without the `---` separator), ending in a newline.
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    // Conditional entries last, so a sequence item's first line is a plain entry.
    entries.sort_by_key(|(key, _)| (key.starts_with(IF), *key));
    entries
}

fn write_map(out: &mut String, map: &Map<String, Value>, depth: usize) {
    for (key, value) in sorted(map) {
        if let Some(condition) = key.strip_prefix(IF) {
            indent(out, depth);
            out.push_str(&format!("{{{{- if {condition} }}}}\n"));
            if let Value::Object(inner) = value {
                write_map(out, inner, depth);
            }
            indent(out, depth);
            out.push_str("{{- end }}\n");
            continue;
        }
        indent(out, depth);
        out.push_str(&key_text(key));
        out.push(':');
        write_nested(out, value, depth, depth + 2);
    }
}

fn write_seq(out: &mut String, items: &[Value], depth: usize) {
    for item in items {
        if let Some((condition, Value::Array(inner))) = conditional_items(item) {
            indent(out, depth);
            out.push_str(&format!("{{{{- if {condition} }}}}\n"));
            write_seq(out, inner, depth);
            indent(out, depth);
            out.push_str("{{- end }}\n");
            continue;
        }
        indent(out, depth);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first entry shares the dash's line.
                let mut first = String::new();
                write_map(&mut first, map, depth + 2);
                out.push(' ');
                out.push_str(&first[depth + 2..]);
            }
            other => write_nested(out, other, depth, depth + 2),
        }
    }
}

fn conditional_items(item: &Value) -> Option<(&str, &Value)> {
    let map = item.as_object()?;
    let (key, value) = map.iter().next().filter(|_| map.len() == 1)?;
    Some((key.strip_prefix(IF)?, value))
}

/// The rest of a line after `key:` or `-`: a scalar, or a nested block.
/// Sequences under a key sit at the key's depth (as kubectl writes them).
fn write_nested(out: &mut String, value: &Value, depth: usize, child_depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, child_depth);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, depth);
        }
        Value::String(text) if is_block(text) => {
            // A literal block keeps a policy file readable in a ConfigMap.
            out.push_str(if text.ends_with('\n') {
                " |\n"
            } else {
                " |-\n"
            });
            for line in text.lines() {
                if !line.is_empty() {
                    indent(out, child_depth);
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

/// Whether `text` reads back unchanged from a literal block (`|` or `|-`):
/// several lines, at most one final newline, no leading blank or indented
/// first line, no trailing spaces, tabs, carriage returns or other control
/// characters.
fn is_block(text: &str) -> bool {
    let body = text.strip_suffix('\n').unwrap_or(text);
    body.contains('\n')
        && !body.ends_with('\n')
        && !body.starts_with([' ', '\n'])
        && !body.chars().any(|c| c.is_control() && c != '\n')
        && body.lines().all(|l| !l.ends_with(' '))
        && !text.starts_with(RAW)
}

fn key_text(key: &str) -> String {
    if is_plain(key) {
        key.to_string()
    } else {
        quoted(key)
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => match s.strip_prefix(RAW) {
            Some(expression) => expression.to_string(),
            None if is_plain(s) => s.clone(),
            None => quoted(s),
        },
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Whether `s` reads back as the same string when written plain: only
/// unambiguous characters, and not a word or number YAML 1.1 or 1.2 would
/// read as another type.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    let middle_safe = |c: char| safe(c) || c == ':' || c == '=' || c == '@' || c == ',';
    if !(first.is_ascii_alphanumeric() || first == '/' || first == '_')
        || !s.chars().all(middle_safe)
        || s.ends_with(':')
        || s.contains(": ")
    {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    if WORDS.contains(&lower.as_str()) || looks_numeric(s) {
        return false;
    }
    true
}

/// Numbers in any YAML flavour: decimal, octal (`0755`), hex, floats,
/// exponents, and sexagesimal (`1:30`).
fn looks_numeric(s: &str) -> bool {
    let body = s.trim_start_matches(['+', '-']);
    body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && body
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "._:xXoO+-".contains(c))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn writes_block_yaml_with_sorted_keys_and_kubectl_style_sequences() {
        let doc = json!({"kind": "Pod", "apiVersion": "v1", "spec": {"containers": [{"name": "a", "args": ["--x=1", "serve"]}], "empty": {}, "none": []}});
        assert_eq!(
            document(&doc),
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - args:\n    - \"--x=1\"\n    - serve\n    name: a\n  empty: {}\n  none: []\n"
        );
    }

    #[test]
    fn quotes_what_would_read_back_as_another_type() {
        for s in [
            "true",
            "no",
            "10",
            "0755",
            "1e3",
            "1:30",
            "",
            "a: b",
            "*/10 * * * *",
            "{{ x }}",
            "-x",
            "with space",
        ] {
            let text = scalar_text(&json!(s));
            assert!(text.starts_with('"'), "{s:?} written as {text}");
        }
        for s in [
            "tollgate",
            "ghcr.io/a/b:1.0",
            "kubernetes.io/metadata.name",
            "v1",
            "CREATE",
            "k8s.pod.name=$(POD_NAME)",
        ] {
            let text = scalar_text(&json!(s));
            assert_eq!(
                text.starts_with('"'),
                s.contains('$'),
                "{s:?} written as {text}"
            );
        }
    }

    #[test]
    fn multi_line_text_is_a_literal_block_that_reads_back_unchanged() {
        for text in ["a: 1\nb:\n  - c\n", "x\n\ny", "one\ntwo"] {
            let doc = json!({"data": {"f": text}});
            let written = document(&doc);
            assert!(written.contains("f: |"), "{written}");
            let read: Value = serde_saphyr::from_str(&written).expect("YAML");
            assert_eq!(read, doc, "{written}");
        }
        for text in [
            "trailing \nspace",
            "two\n\n",
            " indented\nfirst",
            "tab\t\nx",
        ] {
            assert!(!is_block(text), "{text:?}");
        }
    }

    #[test]
    fn template_forms() {
        let mut spec = serde_json::Map::new();
        spec.insert("replicas".into(), raw("{{ .Values.replicas }}"));
        spec.extend(if_entries(".Values.x", json!({"x": 1})));
        spec.insert(
            "env".into(),
            json!([{"name": "A"}, if_items(".Values.b", vec![json!({"name": "B"})])]),
        );
        assert_eq!(
            document(&Value::Object(spec)),
            "env:\n- name: A\n{{- if .Values.b }}\n- name: B\n{{- end }}\nreplicas: {{ .Values.replicas }}\n{{- if .Values.x }}\nx: 1\n{{- end }}\n"
        );
    }
}
