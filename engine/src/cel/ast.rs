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
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Slot(_) | Expr::Local(_) => {}
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
    children_mut(expr, &mut |child| visit_mut(child, f));
}

/// Call `f` on each expression directly under `expr` (not on `expr`, nor
/// on what is under its children).
pub(crate) fn children_mut(expr: &mut IdedExpr, f: &mut dyn FnMut(&mut IdedExpr)) {
    match &mut expr.expr {
        Expr::Select(s) => f(&mut s.operand),
        Expr::Call(c) => {
            if let Some(t) = &mut c.target {
                f(t);
            }
            c.args.iter_mut().for_each(&mut *f);
        }
        Expr::List(l) => l.elements.iter_mut().for_each(&mut *f),
        Expr::Map(m) => m
            .entries
            .iter_mut()
            .for_each(|e| entry_exprs_mut(&mut e.expr, f)),
        Expr::Struct(s) => s
            .entries
            .iter_mut()
            .for_each(|e| entry_exprs_mut(&mut e.expr, f)),
        Expr::Comprehension(c) => {
            for e in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                f(e);
            }
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Slot(_) | Expr::Local(_) => {}
    }
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
