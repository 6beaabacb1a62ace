//! A renderer for the part of Helm's template language the generated chart
//! uses (`{{ .Values.x }}`, `.Release.Namespace`, `if`/`end` with `eq`, `ne`,
//! `and`, pipelines through `quote`, `b64enc`, `lower`, and `sub`, whitespace
//! trimming with `{{-`/`-}}`), with Helm's semantics for each. Anything else
//! in a template is an error, so a chart that grows beyond this subset fails
//! the sync test instead of being compared loosely. `helm` itself cannot be
//! installed here (no package registry ships it).

use base64::Engine as _;
use serde_json::Value;

/// Render `template` with `values` and the release namespace.
pub fn render(template: &str, values: &Value, namespace: &str) -> Result<String, String> {
    let mut out = String::new();
    // Whether each enclosing `if` is taking its branch.
    let mut active: Vec<bool> = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed {{")?;
        let mut action = &after[..end];
        // `{{-` trims the text before the action, `-}}` the text after it.
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        if let Some(a) = action.strip_prefix('-') {
            action = a;
            text = text.trim_end();
        }
        if active.iter().all(|a| *a) {
            out.push_str(text);
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix('-') {
            action = a;
            trim_next = true;
        }
        let action = action.trim();
        let context = Context { values, namespace };
        if let Some(condition) = action.strip_prefix("if ") {
            let holds = active.iter().all(|a| *a) && truthy(&context.pipeline(condition)?);
            active.push(holds);
        } else if action == "end" {
            active.pop().ok_or("{{ end }} without {{ if }}")?;
        } else if active.iter().all(|a| *a) {
            out.push_str(&text_of(&context.pipeline(action)?));
        }
        rest = &after[end + 2..];
    }
    if !active.is_empty() {
        return Err("{{ if }} without {{ end }}".into());
    }
    out.push_str(if trim_next { rest.trim_start() } else { rest });
    Ok(out)
}

struct Context<'a> {
    values: &'a Value,
    namespace: &'a str,
}

impl Context<'_> {
    /// `command | function | function ...`
    fn pipeline(&self, text: &str) -> Result<Value, String> {
        let mut stages = split_top(text, '|').into_iter();
        let first = stages.next().ok_or("empty action")?;
        let mut value = self.command(first.trim())?;
        for stage in stages {
            let words = words(stage.trim())?;
            let (name, args) = words.split_first().ok_or("empty pipeline stage")?;
            let mut args: Vec<Value> = args
                .iter()
                .map(|a| self.operand(a))
                .collect::<Result<_, _>>()?;
            args.push(value);
            value = call(name, &args)?;
        }
        Ok(value)
    }

    fn command(&self, text: &str) -> Result<Value, String> {
        let words = words(text)?;
        match words.as_slice() {
            [single] => self.operand(single),
            [name, args @ ..] => {
                let args: Vec<Value> = args
                    .iter()
                    .map(|a| self.operand(a))
                    .collect::<Result<_, _>>()?;
                call(name, &args)
            }
            [] => Err("empty command".into()),
        }
    }

    fn operand(&self, word: &str) -> Result<Value, String> {
        if let Some(inner) = word.strip_prefix('(').and_then(|w| w.strip_suffix(')')) {
            return self.pipeline(inner);
        }
        if word.starts_with('"') {
            return serde_json::from_str(word).map_err(|e| format!("string {word}: {e}"));
        }
        if word == ".Release.Namespace" {
            return Ok(Value::String(self.namespace.into()));
        }
        if let Some(path) = word.strip_prefix(".Values.") {
            let mut value = self.values;
            for key in path.split('.') {
                value = value.get(key).unwrap_or(&Value::Null);
            }
            return Ok(value.clone());
        }
        if let Ok(n) = word.parse::<i64>() {
            return Ok(Value::from(n));
        }
        Err(format!("unsupported operand {word:?}"))
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, String> {
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!("{name} takes {n} arguments, got {}", args.len()))
        }
    };
    match name {
        "eq" => arity(2).map(|()| Value::Bool(args[0] == args[1])),
        "ne" => arity(2).map(|()| Value::Bool(args[0] != args[1])),
        // Go's `and` returns the first falsy argument or the last one.
        "and" => Ok(args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "sub" => {
            arity(2)?;
            let n = |v: &Value| {
                v.as_f64()
                    .map(|f| f as i64)
                    .ok_or(format!("sub: {v} is not a number"))
            };
            Ok(Value::from(n(&args[0])? - n(&args[1])?))
        }
        "lower" => arity(1).map(|()| Value::String(text_of(&args[0]).to_lowercase())),
        "quote" => arity(1).map(|()| Value::String(Value::String(text_of(&args[0])).to_string())),
        "b64enc" => arity(1).map(|()| {
            Value::String(base64::engine::general_purpose::STANDARD.encode(text_of(&args[0])))
        }),
        _ => Err(format!("unsupported function {name}")),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// How Go's text/template prints a value (a YAML number is a float64 in
/// Helm, printed without a fraction when it is whole).
fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// Split on `sep` outside quotes and parentheses.
fn split_top(text: &str, sep: char) -> Vec<&str> {
    let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
    let mut parts = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            c if c == sep && !quoted && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Words of a command: names, operands, quoted strings, parenthesized groups.
fn words(text: &str) -> Result<Vec<&str>, String> {
    let mut words = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, None::<usize>);
    for (i, c) in text.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            '(' if !quoted => {
                depth += 1;
                start.get_or_insert(i);
            }
            ')' if !quoted => depth -= 1,
            c if c.is_whitespace() && !quoted && depth == 0 => {
                if let Some(s) = start.take() {
                    words.push(&text[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if quoted || depth != 0 {
        return Err(format!("unbalanced quotes or parentheses in {text:?}"));
    }
    if let Some(s) = start {
        words.push(&text[s..]);
    }
    Ok(words)
}

#[test]
fn renders_the_subset_as_helm_does() {
    let values = serde_json::json!({"a": {"b": 5, "s": "x\"y"}, "mode": "on", "empty": ""});
    let template = "n: {{ .Values.a.b }}\nm: {{ sub .Values.a.b 1 }}\n{{- if eq .Values.mode \"on\" }}\nq: {{ .Values.a.s | quote }}\n{{- end }}\n{{- if .Values.empty }}\nz: 1\n{{- end }}\nns: \"{{ .Release.Namespace }}\"\nb: {{ \"ab\" | b64enc }}\nl: {{ lower \"AB\" }}\nt: {{ and (ne .Values.mode \"off\") .Values.a.b }}\n";
    assert_eq!(
        render(template, &values, "tg").expect("renders"),
        "n: 5\nm: 4\nq: \"x\\\"y\"\nns: \"tg\"\nb: YWI=\nl: ab\nt: 5\n"
    );
    assert!(render("{{ include \"x\" . }}", &values, "tg").is_err());
    assert!(render("{{ if .Values.a }}", &values, "tg").is_err());
}
