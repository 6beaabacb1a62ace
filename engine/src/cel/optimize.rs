//! Rewrites of parsed expressions that keep their meaning and spare the
//! `cel` interpreter work, applied once when an expression is compiled.
//!
//! - The loop condition of `exists`, `@not_strictly_false(!@result)`,
//!   becomes `@result == false`. The interpreter builds a "no such
//!   overload" error (with its strings) on every `!` it evaluates, whether
//!   or not it fails; this was a sixth of the instructions of an `exists`
//!   over four tolerations. Within the macro's expansion the accumulator is always a
//!   bool: it starts `false`, and the step `@result || p` only ever replaces
//!   it with a bool (an error is held back, the accumulator kept). For a bool,
//!   `@not_strictly_false(!b)` and `b == false` are the same, and both bounds
//!   count three nodes.
//! - [`anchor_roots`]: a reference to a policy's input (`object`,
//!   `variables`, ...) that no comprehension variable shadows is written as
//!   absolute (`.variables`), so the interpreter looks it up in the root
//!   scope at once instead of first probing every enclosing comprehension's
//!   scope for the whole dotted name and each of its prefixes.
//! - [`fuse_present_or`]: the null-safe idiom `has(x.f) && x.f != null ?
//!   x.f : d` becomes one call the interpreter evaluates with the idiom's
//!   results and errors, `x.f` resolved once instead of three times
//!   (vendor/cel/PATCHES.md, item 20).

use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, LiteralValue, operators};

/// Apply the rewrites to `expr`.
pub(crate) fn optimize(expr: &mut IdedExpr) {
    super::ast::visit_mut(expr, &mut |e| {
        if let Expr::Comprehension(c) = &mut e.expr
            && is_exists(c)
        {
            let Expr::Call(not_strictly_false) = &mut c.loop_cond.expr else {
                return;
            };
            let Some(negation) = not_strictly_false.args.pop() else {
                return;
            };
            let Expr::Call(CallExpr { mut args, .. }) = negation.expr else {
                return;
            };
            let Some(accumulator) = args.pop() else {
                return;
            };
            // The literal takes the id of the negation it replaces.
            let literal = IdedExpr {
                id: negation.id,
                expr: Expr::Literal(LiteralValue::Boolean(false.into())),
            };
            not_strictly_false.func_name = operators::EQUALS.to_owned();
            not_strictly_false.args = vec![accumulator, literal];
        }
    });
}

/// Write every `has(x.f) && x.f != null ? x.f : d`, where `x` is a name or
/// a chain of field selections on one, as `@present_or(has(x.f), x.f, null,
/// d)`, which the interpreter evaluates to the same value or error with `x.f`
/// resolved once. The three `x.f` must be written alike (the same name and
/// fields). Apply it after the cost bound and the references are taken:
/// they do not know the call.
pub(crate) fn fuse_present_or(expr: &mut IdedExpr) {
    super::ast::visit_mut(expr, &mut |e| {
        let Expr::Call(conditional) = &mut e.expr else {
            return;
        };
        if conditional.func_name != operators::CONDITIONAL
            || conditional.target.is_some()
            || !is_present_test(&conditional.args)
        {
            return;
        }
        let [condition, _, default] = std::mem::take(&mut conditional.args)
            .try_into()
            .expect("is_present_test checked three arguments");
        let Expr::Call(CallExpr { args, .. }) = condition.expr else {
            unreachable!("is_present_test checked a call");
        };
        let [has, not_null] = args.try_into().expect("is_present_test checked `&&`");
        let Expr::Call(CallExpr { args, .. }) = not_null.expr else {
            unreachable!("is_present_test checked a call");
        };
        let [value, null] = args.try_into().expect("is_present_test checked `!=`");
        conditional.func_name = operators::PRESENT_OR.to_owned();
        conditional.args = vec![has, value, null, default];
    });
}

/// Whether the arguments of a conditional are `has(x.f) && x.f != null`,
/// `x.f` and anything, with `x` a qualified name.
fn is_present_test(args: &[IdedExpr]) -> bool {
    let [condition, then, _] = args else {
        return false;
    };
    fn binary<'a>(e: &'a IdedExpr, name: &str) -> Option<(&'a IdedExpr, &'a IdedExpr)> {
        match &e.expr {
            Expr::Call(c) if c.func_name == name && c.target.is_none() && c.args.len() == 2 => {
                Some((&c.args[0], &c.args[1]))
            }
            _ => None,
        }
    }
    let Some((has, not_null)) = binary(condition, operators::LOGICAL_AND) else {
        return false;
    };
    let Some((value, null)) = binary(not_null, operators::NOT_EQUALS) else {
        return false;
    };
    let (Expr::Select(tested), Expr::Select(selected)) = (&has.expr, &value.expr) else {
        return false;
    };
    tested.test
        && matches!(null.expr, Expr::Literal(LiteralValue::Null))
        && same_name(&has.expr, &value.expr)
        && same_name(&value.expr, &then.expr)
        && !selected.test
}

/// Whether `a` and `b` select the same field of the same qualified name
/// (`x.f`, `x.f.g`), a test for presence (`has(x.f)`) counting as the
/// selection it tests.
fn same_name(a: &Expr, b: &Expr) -> bool {
    match (a, b) {
        (Expr::Select(a), Expr::Select(b)) => {
            a.field == b.field && same_qualified(&a.operand.expr, &b.operand.expr)
        }
        _ => false,
    }
}

/// Whether `a` and `b` are the same name or chain of field selections on one.
fn same_qualified(a: &Expr, b: &Expr) -> bool {
    match (a, b) {
        (Expr::Ident(a), Expr::Ident(b)) => a == b,
        (Expr::Select(x), Expr::Select(y)) => !x.test && !y.test && same_name(a, b),
        _ => false,
    }
}

/// Write every identifier of `roots` that is not a comprehension variable
/// where it appears as absolute (a leading dot: `.object`), which the
/// interpreter resolves in the root scope only, skipping the comprehension
/// scopes in between. Only for names the root scope always answers (the
/// variable resolver of a policy), so that the lookup finds the same value;
/// the comprehension variables of the crate's macros live only in the inner
/// scopes, and a name one of them binds is left as it is. Apply it last:
/// the cost bound and the references of an expression read plain names.
pub(crate) fn anchor_roots(expr: &mut IdedExpr, roots: &[&str]) {
    anchor(expr, roots, &mut Vec::new());
}

/// [`anchor_roots`] with `bound`, the comprehension variables in scope.
fn anchor(expr: &mut IdedExpr, roots: &[&str], bound: &mut Vec<String>) {
    match &mut expr.expr {
        Expr::Ident(name) => {
            if roots.contains(&name.as_str()) && !bound.contains(name) {
                name.insert(0, '.');
            }
        }
        Expr::Comprehension(c) => {
            anchor(&mut c.iter_range, roots, bound);
            anchor(&mut c.accu_init, roots, bound);
            let outer = bound.len();
            bound.extend(scope_of(c));
            for e in [&mut c.loop_cond, &mut c.loop_step, &mut c.result] {
                anchor(e, roots, bound);
            }
            bound.truncate(outer);
        }
        Expr::Select(s) => anchor(&mut s.operand, roots, bound),
        Expr::Call(c) => {
            if let Some(t) = &mut c.target {
                anchor(t, roots, bound);
            }
            c.args.iter_mut().for_each(|a| anchor(a, roots, bound));
        }
        Expr::List(l) => l.elements.iter_mut().for_each(|e| anchor(e, roots, bound)),
        Expr::Map(m) => m.entries.iter_mut().for_each(|e| {
            super::ast::entry_exprs_mut(&mut e.expr, &mut |x| anchor(x, roots, bound))
        }),
        Expr::Struct(st) => st.entries.iter_mut().for_each(|e| {
            super::ast::entry_exprs_mut(&mut e.expr, &mut |x| anchor(x, roots, bound))
        }),
        Expr::Unspecified | Expr::Literal(_) | Expr::Slot(_) | Expr::Local(_) => {}
    }
}

/// The variables a comprehension binds in its condition, step and result
/// (the result sees the loop variables of the last iteration too).
fn scope_of(c: &ComprehensionExpr) -> impl Iterator<Item = String> + use<> {
    [
        Some(c.iter_var.clone()),
        c.iter_var2.clone(),
        Some(c.accu_var.clone()),
    ]
    .into_iter()
    .flatten()
}

/// Whether `c` is the expansion of `exists`: accumulator `@result` from
/// `false`, step `@result || p`, condition `@not_strictly_false(!@result)`.
fn is_exists(c: &cel::common::ast::ComprehensionExpr) -> bool {
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if *n == c.accu_var);
    let call = |e: &IdedExpr, name: &str, arity: usize| match &e.expr {
        Expr::Call(call)
            if call.func_name == name && call.target.is_none() && call.args.len() == arity =>
        {
            Some(call.args.clone())
        }
        _ => None,
    };
    let init_false = matches!(
        &c.accu_init.expr,
        Expr::Literal(LiteralValue::Boolean(b)) if !*b.inner()
    );
    let step_ors_accu =
        call(&c.loop_step, operators::LOGICAL_OR, 2).is_some_and(|a| is_accu(&a[0]));
    let cond_negates_accu = call(&c.loop_cond, operators::NOT_STRICTLY_FALSE, 1)
        .and_then(|a| call(&a[0], operators::LOGICAL_NOT, 1))
        .is_some_and(|a| is_accu(&a[0]));
    c.accu_var == "@result" && init_false && step_ors_accu && cond_negates_accu
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cel::expression::{Bindings, Expression};

    #[test]
    fn the_negation_in_exists_is_gone_and_others_stay() {
        let env = crate::cel::expression::shared_environment();
        let mut expr = env.parser().parse("l.exists(x, !x)").unwrap();
        optimize(&mut expr);
        let mut negations = 0;
        crate::cel::ast::visit(&expr, &mut |e| {
            if matches!(&e.expr, Expr::Call(c) if c.func_name == operators::LOGICAL_NOT) {
                negations += 1;
            }
        });
        assert_eq!(negations, 1, "only the user's `!x` is left: {expr:?}");
    }

    #[test]
    fn roots_are_anchored_unless_a_comprehension_variable_shadows_them() {
        let env = crate::cel::expression::shared_environment();
        let mut expr = env
            .parser()
            .parse("object.a.exists(object, object.b == pod.c) && object.d.all(x, pod.e == x)")
            .unwrap();
        anchor_roots(&mut expr, &["object", "pod"]);
        let mut names = Vec::new();
        crate::cel::ast::visit(&expr, &mut |e| {
            if let Expr::Ident(n) = &e.expr
                && n.contains("object") | n.contains("pod")
            {
                names.push(n.clone());
            }
        });
        assert_eq!(
            names,
            [".object", "object", ".pod", ".object", ".pod"],
            "{expr:?}"
        );
    }

    #[test]
    fn anchored_roots_resolve_as_before() {
        let policy = serde_json::json!({
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "CelPolicy",
            "metadata": {"name": "anchored"},
            "spec": {
                "variables": [{"name": "n", "expression": "object.metadata.name"}],
                "validations": [{
                    "expression": "[object.metadata].exists(object, object.name == variables.n) && has(variables.n) && variables.n == 'p' && [1].all(variables, variables == 1)",
                }],
            },
        });
        let policy =
            crate::cel::CelPolicy::compile(std::path::Path::new("anchored.yaml"), policy).unwrap();
        let review = crate::review::Review::from_object(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"}, "spec": {},
        }))
        .unwrap();
        let outcome = policy
            .evaluate(&review, &crate::cluster::Empty::default())
            .unwrap();
        assert!(outcome.decision.allowed, "{:?}", outcome.decision);
    }

    #[test]
    fn the_null_safe_idiom_is_fused_with_its_results_and_errors() {
        let mut bindings = Bindings::new();
        for (name, value) in [
            ("set", serde_json::json!({"f": 1, "g": {"f": [2]}})),
            ("unset", serde_json::json!({"g": {}})),
            ("nulls", serde_json::json!({"f": null, "g": null})),
            ("scalar", serde_json::json!(5)),
            ("none", serde_json::json!(null)),
        ] {
            bindings.insert_json(name, &value);
        }
        let mut cases = 0;
        for x in ["set", "unset", "nulls", "scalar", "none", "missing"] {
            for (field, default) in [("f", "0"), ("g.f", "[]"), ("f", "1 / 0")] {
                let (x, f) = match field.split_once('.') {
                    Some((g, f)) => (format!("{x}.{g}"), f),
                    None => (x.to_owned(), field),
                };
                let fused = format!("has({x}.{f}) && {x}.{f} != null ? {x}.{f} : {default}");
                // `null != x.f` is not the idiom's shape: left as written.
                let plain = format!("has({x}.{f}) && null != {x}.{f} ? {x}.{f} : {default}");
                let calls = |source: &str| {
                    let env = crate::cel::expression::shared_environment();
                    let mut expr = env.parser().parse(source).unwrap();
                    fuse_present_or(&mut expr);
                    let mut n = 0;
                    crate::cel::ast::visit(&expr, &mut |e| {
                        n += usize::from(
                            matches!(&e.expr, Expr::Call(c) if c.func_name == operators::PRESENT_OR),
                        );
                    });
                    n
                };
                assert_eq!((calls(&fused), calls(&plain)), (1, 0), "{x}.{f}");
                // and on a comprehension variable bound to the same value
                let bound = |idiom: &str| {
                    format!("[{x}].map(w, {})", idiom.replace(&format!("{x}."), "w."))
                };
                for (fused, plain) in [
                    (fused.clone(), plain.clone()),
                    (bound(&fused), bound(&plain)),
                ] {
                    let [fused, plain] = [&fused, &plain].map(|s| Expression::compile(s).unwrap());
                    let got = fused.evaluate(&bindings).map_err(|e| e.to_string());
                    let want = plain.evaluate(&bindings).map_err(|e| e.to_string());
                    assert_eq!(got, want, "{x}.{f} or {default}");
                    cases += usize::from(got.is_err());
                }
            }
        }
        assert!(cases >= 6, "errors are among the cases compared: {cases}");
    }

    #[test]
    fn exists_keeps_its_meaning() {
        let mut bindings = Bindings::new();
        bindings.insert_json("l", &serde_json::json!([1, 2, 3]));
        bindings.insert_json("m", &serde_json::json!([1, true]));
        bindings.insert_json("n", &serde_json::json!([1, false]));
        for (source, want) in [
            ("l.exists(x, x == 2)", Ok(true)),
            ("l.exists(x, x == 5)", Ok(false)),
            ("[].exists(x, x == 5)", Ok(false)),
            // An error is absorbed by a later true, kept otherwise.
            ("[0, 1].exists(x, 1 / x == 1)", Ok(true)),
            ("[0, 2].exists(x, 1 / x == 1)", Err(())),
            ("l.exists(x, l.exists(y, x + y == 6))", Ok(true)),
            // `all` and `exists` evaluated by the interpreter's bool fold
            // (vendor/cel/PATCHES.md): a non-bool predicate is an error
            // unless an element decides, an error stays until one does.
            ("[1, 2].exists(x, x)", Err(())),
            ("m.exists(x, x)", Ok(true)),
            ("[1, 2].all(x, x)", Err(())),
            ("n.all(x, x)", Ok(false)),
            ("l.all(x, x > 0)", Ok(true)),
            ("l.all(x, x > 1)", Ok(false)),
            ("[].all(x, x == 5)", Ok(true)),
            ("[0, 1].all(x, 1 / x == 1)", Err(())),
            ("[0, 2].all(x, 1 / x == 1)", Ok(false)),
            ("l.all(x, l.exists(y, x == y))", Ok(true)),
        ] {
            let got = Expression::compile(source)
                .unwrap()
                .evaluate(&bindings)
                .map(|v| v == serde_json::json!(true))
                .map_err(|_| ());
            assert_eq!(got, want, "{source}");
        }
    }
}
