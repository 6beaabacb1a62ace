//! Walking parsed CEL expressions: one pre-order visitor shared by the
//! load-time checks (literal regexes, literal types) and the mutation
//! struct-type discovery, and its mutable twin for rewriting a parsed
//! expression (backtick-quoted names, [`super::escaped`]).

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// Call `f` on `expr` and every expression under it.
pub(crate) fn visit(expr: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(expr);
    match &expr.expr {
        Expr::Select(s) => visit(&s.operand, f),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                visit(t, f);
            }
            c.args.iter().for_each(|a| visit(a, f));
        }
        Expr::List(l) => l.elements.iter().for_each(|e| visit(e, f)),
        Expr::Map(m) => m.entries.iter().for_each(|e| entry(&e.expr, f)),
        Expr::Struct(s) => s.entries.iter().for_each(|e| entry(&e.expr, f)),
        Expr::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(e, f);
            }
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Slot(_) => {}
    }
}

/// The expressions of one map or struct entry.
fn entry(e: &EntryExpr, f: &mut dyn FnMut(&IdedExpr)) {
    match e {
        EntryExpr::MapEntry(me) => {
            visit(&me.key, f);
            visit(&me.value, f);
        }
        EntryExpr::StructField(sf) => visit(&sf.value, f),
    }
}

/// Call `f` on `expr` and every expression under it, with mutable access.
pub(crate) fn visit_mut(expr: &mut IdedExpr, f: &mut dyn FnMut(&mut IdedExpr)) {
    f(expr);
    match &mut expr.expr {
        Expr::Select(s) => visit_mut(&mut s.operand, f),
        Expr::Call(c) => {
            if let Some(t) = &mut c.target {
                visit_mut(t, f);
            }
            c.args.iter_mut().for_each(|a| visit_mut(a, f));
        }
        Expr::List(l) => l.elements.iter_mut().for_each(|e| visit_mut(e, f)),
        Expr::Map(m) => m.entries.iter_mut().for_each(|e| entry_mut(&mut e.expr, f)),
        Expr::Struct(s) => s.entries.iter_mut().for_each(|e| entry_mut(&mut e.expr, f)),
        Expr::Comprehension(c) => {
            for e in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                visit_mut(e, f);
            }
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Slot(_) => {}
    }
}

/// The expressions of one map or struct entry, with mutable access.
fn entry_mut(e: &mut EntryExpr, f: &mut dyn FnMut(&mut IdedExpr)) {
    entry_exprs_mut(e, &mut |x| visit_mut(x, f));
}

/// Call `f` on the key and value of a map entry, or the value of a struct
/// field (not on what is under them).
pub(crate) fn entry_exprs_mut(e: &mut EntryExpr, f: &mut dyn FnMut(&mut IdedExpr)) {
    match e {
        EntryExpr::MapEntry(me) => {
            f(&mut me.key);
            f(&mut me.value);
        }
        EntryExpr::StructField(sf) => f(&mut sf.value),
    }
}
