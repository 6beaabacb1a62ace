//! Backtick-quoted field names (`` {'a.b': 1}.`a.b` ``), the identifier
//! escape syntax of the CEL specification that cel-go enables with
//! `EnableIdentifierEscapeSyntax` and its conformance environment turns on.
//! The Kubernetes environment does not enable it (kubernetes/apiserver
//! `pkg/cel/environment/base.go`), so only the plain-CEL dialect
//! ([`super::expression::Dialect::Plain`]) parses it.
//!
//! The `cel` crate's parser has no rule for it, so the source is rewritten
//! before parsing: each quoted name that follows a `.` or `.?` becomes a
//! placeholder identifier, and the parsed tree gets the names back. As in
//! cel-go's grammar, a quoted name holds letters, digits, `_`, `.`, `-`, `/`
//! and spaces, and may only name a field.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// The placeholder of the `i`-th quoted name.
fn placeholder(i: usize) -> String {
    format!("__tollgate_escaped_{i}__")
}

/// `source` with its quoted field names replaced by placeholders, and the
/// names in order. A backtick anywhere else is left for the parser to reject.
pub(crate) fn rewrite(source: &str) -> (String, Vec<String>) {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            // A comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            let end = string_end(&chars, i);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        if c == '`' && follows_a_dot(&out) {
            let close = chars[i + 1..]
                .iter()
                .position(|&c| c == '`')
                .map(|p| i + 1 + p);
            if let Some(close) = close {
                let name: String = chars[i + 1..close].iter().collect();
                let allowed = |c: char| c.is_alphanumeric() || "_.-/ ".contains(c);
                if !name.is_empty() && name.chars().all(allowed) {
                    out.push_str(&placeholder(names.len()));
                    names.push(name);
                    i = close + 1;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    (out, names)
}

/// Whether the text so far ends with `.` or `.?` (spaces aside): a field
/// selection follows.
fn follows_a_dot(before: &str) -> bool {
    let trimmed = before.trim_end();
    let trimmed = trimmed.strip_suffix('?').map_or(trimmed, str::trim_end);
    trimmed.ends_with('.')
}

/// The index just past the string literal that starts at `start` (a quote;
/// an `r` or `R` just before it makes it raw, without escapes). Triple
/// quotes run to the next triple quote. An unterminated string runs to the
/// end, for the parser to report.
fn string_end(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    // The prefix letters just before the quote (`r`, `b`, `rb`, `br`).
    let prefix: Vec<char> = chars[..start]
        .iter()
        .rev()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .copied()
        .collect();
    let raw = prefix.len() <= 2
        && prefix.iter().all(|c| "rRbB".contains(*c))
        && prefix.iter().any(|c| matches!(c, 'r' | 'R'));
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    while i < chars.len() {
        if chars[i] == '\\' && !raw {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            if !triple {
                return i + 1;
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return i + 3;
            }
        }
        i += 1;
    }
    chars.len()
}

/// Put the quoted `names` back in place of their placeholders in `expr`.
///
/// # Errors
/// A placeholder that the parser did not read as a field name (a quoted name
/// used as a variable or function name).
pub(crate) fn restore(expr: &mut IdedExpr, names: &[String]) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let name_of = |field: &str| {
        names
            .iter()
            .enumerate()
            .find(|(i, _)| placeholder(*i) == field)
            .map(|(_, n)| n.clone())
    };
    let mut misplaced = None;
    crate::cel::ast::visit_mut(expr, &mut |e| match &mut e.expr {
        Expr::Select(s) => {
            if let Some(name) = name_of(&s.field) {
                s.field = name;
            }
        }
        Expr::Struct(s) => {
            for entry in &mut s.entries {
                if let EntryExpr::StructField(f) = &mut entry.expr
                    && let Some(name) = name_of(&f.field)
                {
                    f.field = name;
                }
            }
        }
        Expr::Ident(id) | Expr::Call(cel::common::ast::CallExpr { func_name: id, .. }) => {
            if let Some(name) = name_of(id) {
                misplaced.get_or_insert(name);
            }
        }
        _ => {}
    });
    match misplaced {
        Some(name) => Err(format!(
            "`{name}`: a backtick-quoted name can only name a field"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_field_names_after_a_dot_are_replaced() {
        let (src, names) = rewrite("{'a.b': 1}.`a.b` + x.?`c-d`.e");
        assert_eq!(names, ["a.b", "c-d"]);
        assert_eq!(
            src,
            "{'a.b': 1}.__tollgate_escaped_0__ + x.?__tollgate_escaped_1__.e"
        );
    }

    #[test]
    fn backticks_in_strings_and_elsewhere_are_kept() {
        for src in [
            "'.`a`'",
            "r\"x.`a`\"",
            "'''.`a`'''",
            "`a`",
            "x.``",
            "x.`a!`",
        ] {
            assert_eq!(rewrite(src), (src.to_owned(), vec![]), "{src}");
        }
    }
}
