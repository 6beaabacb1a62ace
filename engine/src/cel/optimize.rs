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
        Expr::Unspecified | Expr::Literal(_) => {}
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
