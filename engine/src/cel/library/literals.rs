//! The API server's homogeneous aggregate literals rule: the elements of a
//! list literal, and the keys and values of a map literal, must have one
//! type (`[1, 'a']` is a compile error). Without a type checker only the
//! types known from the syntax are compared: literals, list and map literals.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

/// The type of `expr` when the syntax alone says it.
fn syntactic_type(expr: &IdedExpr) -> Option<&'static str> {
    Some(match &expr.expr {
        Expr::Literal(l) => match l {
            LiteralValue::Boolean(_) => "bool",
            LiteralValue::Bytes(_) => "bytes",
            LiteralValue::Double(_) => "double",
            LiteralValue::Int(_) => "int",
            LiteralValue::String(_) => "string",
            LiteralValue::UInt(_) => "uint",
            LiteralValue::Null => return None,
        },
        Expr::List(_) => "list",
        Expr::Map(_) => "map",
        _ => return None,
    })
}

/// The first pair of differently typed expressions among `items`.
fn mixed<'a>(items: impl Iterator<Item = &'a IdedExpr>) -> Option<String> {
    let mut first: Option<&'static str> = None;
    for item in items {
        if let Some(t) = syntactic_type(item) {
            match first {
                None => first = Some(t),
                Some(f) if f != t => {
                    return Some(format!("expected type '{f}' but found '{t}'"));
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// Check every list and map literal in `expr`.
///
/// # Errors
/// The first literal that mixes types.
pub fn check(expr: &IdedExpr) -> Result<(), String> {
    let mut result = Ok(());
    crate::cel::ast::visit(expr, &mut |e| {
        if result.is_err() {
            return;
        }
        let problem = match &e.expr {
            Expr::List(l) => mixed(
                l.elements
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !l.optional_indices.contains(i))
                    .map(|(_, e)| e),
            ),
            Expr::Map(m) => {
                let entries = || {
                    m.entries.iter().filter_map(|e| match &e.expr {
                        EntryExpr::MapEntry(me) if !me.optional => Some(me),
                        _ => None,
                    })
                };
                mixed(entries().map(|me| &me.key)).or_else(|| mixed(entries().map(|me| &me.value)))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            result = Err(format!("aggregate literal: {problem}"));
        }
    });
    result
}
