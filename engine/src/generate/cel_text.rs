//! CEL source text that generated policies need: a CEL literal of a JSON
//! value (homogeneous, as the API server's CEL wants), and renaming the free
//! identifiers of an expression (`pod` to `variables.pod`) without touching
//! field selections or string literals.

use serde_json::Value;

/// A CEL literal of a JSON value. Aggregates whose elements differ in type
/// wrap them in `dyn()`, as the API server's CEL wants homogeneous literals.
pub fn cel_literal(value: &Value) -> String {
    fn kind(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(n) if n.is_i64() => 2,
            Value::Number(n) if n.is_u64() => 3,
            Value::Number(_) => 4,
            Value::String(_) => 5,
            Value::Array(_) => 6,
            Value::Object(_) => 7,
        }
    }
    fn element(v: &Value, mixed: bool) -> String {
        if mixed {
            format!("dyn({})", cel_literal(v))
        } else {
            cel_literal(v)
        }
    }
    fn is_mixed<'a>(mut items: impl Iterator<Item = &'a Value>) -> bool {
        match items.next() {
            Some(first) => items.any(|v| kind(v) != kind(first)),
            None => false,
        }
    }
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_i64() => n.to_string(),
        Value::Number(n) if n.is_u64() => format!("{n}u"),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.is_finite() {
                format!("{f:.1}")
            } else {
                format!("{f}")
            }
        }
        Value::String(s) => serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()),
        Value::Array(items) => {
            let mixed = is_mixed(items.iter());
            let parts: Vec<String> = items.iter().map(|v| element(v, mixed)).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let mixed = is_mixed(map.values());
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let key = serde_json::to_string(k).unwrap_or_else(|_| "\"\"".into());
                    format!("{key}: {}", element(v, mixed))
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Rename free identifiers of a CEL expression (not field selections, not
/// text inside string literals).
pub fn rename_identifiers(source: &str, renames: &[(&str, &str)]) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let mut previous_significant: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            // A string literal, single or triple quoted; raw (r"") strings have no escapes.
            let raw = i > 0 && matches!(chars[i - 1], 'r' | 'R');
            let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
            let quote_len = if triple { 3 } else { 1 };
            let start = i;
            i += quote_len;
            while i < chars.len() {
                if chars[i] == '\\' && !raw {
                    i += 2;
                    continue;
                }
                if chars[i] == c
                    && (!triple || (chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c)))
                {
                    i += quote_len;
                    break;
                }
                i += 1;
            }
            let end = i.min(chars.len());
            out.extend(&chars[start..end]);
            previous_significant = Some(c);
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let selected = previous_significant == Some('.');
            match renames.iter().find(|(from, _)| *from == word) {
                Some((_, to)) if !selected => out.push_str(to),
                _ => out.push_str(&word),
            }
            previous_significant = chars.get(i - 1).copied();
            continue;
        }
        if !c.is_whitespace() {
            previous_significant = Some(c);
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renames_free_identifiers_only() {
        let renames = [("pod", "variables.pod"), ("params", "variables.settings")];
        assert_eq!(
            rename_identifiers("pod.spec.x == 'pod' && object.pod && params.a", &renames),
            "variables.pod.spec.x == 'pod' && object.pod && variables.settings.a"
        );
        assert_eq!(
            rename_identifiers(r#""say \"pod\"" + pods"#, &renames),
            r#""say \"pod\"" + pods"#
        );
    }

    #[test]
    fn literals_are_cel_and_homogeneous() {
        let v = json!({"a": [1, 2], "b": "x", "c": 1.0, "d": null});
        let literal = cel_literal(&v);
        assert_eq!(
            literal,
            r#"{"a": dyn([1, 2]), "b": dyn("x"), "c": dyn(1.0), "d": dyn(null)}"#
        );
        let env = crate::cel::environment();
        let program = env.compile(&literal).expect("compiles");
        let value = program
            .execute(&cel::Context::with_env(std::sync::Arc::new(env)))
            .expect("runs");
        assert_eq!(value.json().expect("JSON"), v);
        assert_eq!(cel_literal(&json!(["a", "b"])), r#"["a", "b"]"#);
    }
}
