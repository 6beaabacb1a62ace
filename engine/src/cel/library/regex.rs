//! Regular expressions: the standard `matches` and Kubernetes' `find` and
//! `findAll` (kubernetes/apiserver `pkg/cel/library/regex.go`), over one
//! process-wide cache of compiled patterns.
//!
//! A pattern is compiled once: literal patterns when the policy is compiled
//! ([`check_literals`], which also turns an invalid literal pattern into a
//! compile error, as the API server does), computed ones on first use. The
//! `regex` crate's syntax is RE2's, the syntax Kubernetes uses.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelInt, INT_TYPE, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{DeclarationError, Env};
use regex::Regex;

use super::{Returned, arg, boolean, fail, string, strings, take, text};

/// Patterns kept at most; the cache starts over when it is full, so computed
/// patterns cannot grow it without bound.
const CACHE_LIMIT: usize = 512;

static CACHE: LazyLock<RwLock<HashMap<String, Regex>>> = LazyLock::new(Default::default);

/// The compiled `pattern`, from the cache when it was seen before.
///
/// # Errors
/// The pattern's syntax error.
pub(crate) fn compiled(pattern: &str) -> Result<Regex, String> {
    if let Some(re) = CACHE.read().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    if let Some(at) = double_repetition(pattern) {
        return Err(format!(
            "'{pattern}' not a valid regex: bad repetition operator at byte {at}"
        ));
    }
    let re = Regex::new(pattern).map_err(|e| format!("'{pattern}' not a valid regex:\n{e}"))?;
    if let Ok(mut cache) = CACHE.write() {
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), re.clone());
    }
    Ok(re)
}

/// Where RE2 (Go's `regexp`) would reject a repetition of a repetition
/// (`x++`, `x*+`, `a{2}*`) that the `regex` crate accepts; a `?` after a
/// repetition is the lazy modifier and is fine.
fn double_repetition(pattern: &str) -> Option<usize> {
    let bytes = pattern.as_bytes();
    let (mut i, mut in_class, mut after_repeat) = (0, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\\' => {
                i += 2;
                after_repeat = false;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            _ if in_class => {}
            b'*' | b'+' | b'{' if after_repeat => return Some(i),
            b'?' if after_repeat => {
                // The lazy modifier ends the repetition.
                after_repeat = false;
                i += 1;
                continue;
            }
            b'*' | b'+' | b'?' => {
                after_repeat = true;
                i += 1;
                continue;
            }
            b'{' => {
                if let Some(end) = pattern[i..].find('}') {
                    let inner = &pattern[i + 1..i + end];
                    if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit() || c == b',') {
                        after_repeat = true;
                        i += end + 1;
                        continue;
                    }
                }
            }
            _ => {}
        }
        after_repeat = false;
        i += 1;
    }
    None
}

pub(super) fn extension(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "matches",
        "matches",
        vec![STRING_TYPE, STRING_TYPE],
        matches,
    )?;
    env.add_member_overload(
        "matches",
        "string.matches(string)",
        STRING_TYPE,
        vec![STRING_TYPE],
        matches,
    )?;
    env.add_member_overload(
        "find",
        "string.find(string)",
        STRING_TYPE,
        vec![STRING_TYPE],
        find,
    )?;
    env.add_member_overload(
        "findAll",
        "string.findAll(string)",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string.findAll(string,int)",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all_n,
    )?;
    Ok(())
}

fn pattern(function: &str, val: &CowVal<'_, '_>) -> Result<Regex, cel::ExecutionError> {
    compiled(text(val.as_ref())?).map_err(|e| fail(function, e))
}

fn matches<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s, re] = take(args)?;
    boolean(pattern("matches", &re)?.is_match(text(s.as_ref())?))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s, re] = take(args)?;
    let found = pattern("find", &re)?
        .find(text(s.as_ref())?)
        .map(|m| m.as_str().to_owned());
    string(found.unwrap_or_default())
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s, re] = take(args)?;
    let re = pattern("findAll", &re)?;
    strings(
        re.find_iter(text(s.as_ref())?)
            .map(|m| m.as_str().to_owned()),
    )
}

fn find_all_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Returned<'b, 'v> {
    let [s, re, n] = take(args)?;
    let re = pattern("findAll", &re)?;
    let n = *arg::<CelInt>(n.as_ref())?.inner();
    // Negative means all, as in Go's FindAllString.
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    strings(
        re.find_iter(text(s.as_ref())?)
            .take(limit)
            .map(|m| m.as_str().to_owned()),
    )
}

/// Compile the literal patterns of `matches`, `find` and `findAll` calls,
/// filling the cache.
///
/// # Errors
/// The first invalid literal pattern's error.
pub fn check_literals(expr: &IdedExpr) -> Result<(), String> {
    let mut result = Ok(());
    crate::cel::ast::visit(expr, &mut |e| {
        if let Expr::Call(call) = &e.expr
            && matches!(call.func_name.as_str(), "matches" | "find" | "findAll")
        {
            let pattern = if call.target.is_some() {
                call.args.first()
            } else {
                call.args.get(1)
            };
            if let Some(IdedExpr {
                expr: Expr::Literal(LiteralValue::String(p)),
                ..
            }) = pattern
                && result.is_ok()
                && let Err(message) = compiled(p.inner())
            {
                result = Err(message);
            }
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re2_rejects_a_repetition_of_a_repetition() {
        for bad in ["x++", "a**", "b?*", "c{2}+", "(ab)+*"] {
            assert!(compiled(bad).is_err(), "{bad}");
        }
        for good in ["x+?", "a*?", "[+*]+", r"\++", "c{2}?", "^v[0-9]+$"] {
            assert!(compiled(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_pattern_is_compiled_once() {
        let first = compiled("^cache-me-[0-9]+$").unwrap();
        let second = compiled("^cache-me-[0-9]+$").unwrap();
        assert_eq!(first.as_str(), second.as_str());
        assert!(CACHE.read().unwrap().contains_key("^cache-me-[0-9]+$"));
    }
}
