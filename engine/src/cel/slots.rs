//! Names resolved to slots when a policy is compiled.
//!
//! A policy's expressions read a fixed set of root names (`object`,
//! `params`, `variables`, ... [`ROOTS`]) and the policy's own variables
//! (`variables.<name>`), all answered by its variable resolver
//! (`policy::Vars`). [`resolve`] rewrites each reference to one of them, and
//! the field selections on it (`object.spec.containers`), into one
//! `Expr::Slot` carrying the slot's number (vendor/cel/PATCHES.md, item 22):
//! the interpreter hands the number and the fields to the resolver, which
//! indexes its inputs or its computed variables, where a name was looked up
//! through the comprehension scopes, joined, compared with each root name and
//! each variable's name.
//!
//! Which names become slots is decided on the anchored expression
//! ([`super::optimize::anchor_roots`]): a root name is anchored (`.object`)
//! exactly where no comprehension variable shadows it, so a comprehension
//! variable named `object` stays a name and keeps shadowing the input. A
//! `variables.<name>` becomes the variable's own slot only where the
//! variable has been computed before the expression runs (an earlier
//! variable for a variable, any for a validation, none for a match
//! condition); any other `variables.<name>` reads the slot of the
//! `variables` map, whose missing key reports the error it always did.
//! Names that are not roots are left alone and resolved as before, but for
//! comprehension loop variables: [`resolve`] also writes each reference
//! to one (`t.key`) as an `Expr::Local` (vendor/cel/PATCHES.md, item 26)
//! carrying how many comprehensions out the one that binds it is, so that
//! the interpreter takes it from that scope instead of asking each scope
//! on the way by name.
//!
//! Slots are written last, after the cost bound, the references and the
//! sharing keys ([`super::shared`]) are taken from the names, so that cost
//! accounting and sharing are what they were.

use cel::common::ast::{Expr, IdedExpr, LocalExpr, SlotExpr};

/// The root names the policy resolver always answers, in slot order (the
/// constants of [`root`]): root `i` is slot `i`, and the policy's variable
/// `j` is slot `ROOTS.len() + j`.
pub(crate) const ROOTS: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "pod",
    "params",
    "pools",
    "namespaceObject",
    "variables",
];

/// The slot of each root name, its position in [`ROOTS`].
pub(crate) mod root {
    pub(crate) const OBJECT: usize = 0;
    pub(crate) const OLD_OBJECT: usize = 1;
    pub(crate) const REQUEST: usize = 2;
    pub(crate) const POD: usize = 3;
    pub(crate) const PARAMS: usize = 4;
    pub(crate) const POOLS: usize = 5;
    pub(crate) const NAMESPACE_OBJECT: usize = 6;
    pub(crate) const VARIABLES: usize = 7;
}

/// What a slot holds: a root input, or a policy variable by its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// `ROOTS[i]`.
    Root(usize),
    /// The policy's variable `j`, in declaration order.
    Variable(usize),
}

impl Slot {
    /// The slot numbered `index`.
    pub(crate) fn of(index: usize) -> Slot {
        match index.checked_sub(ROOTS.len()) {
            Some(j) => Slot::Variable(j),
            None => Slot::Root(index),
        }
    }
}

/// Rewrite every anchored root name of `expr` (and the field selections on
/// it) into a slot; `computed` are the names of the policy's variables that
/// are computed when `expr` runs, in declaration order (a prefix of them).
pub(crate) fn resolve(expr: &mut IdedExpr, computed: &[&str]) {
    super::ast::visit_mut(expr, &mut |e| {
        if let Some(slot) = slot_of(&e.expr, computed) {
            e.expr = Expr::Slot(slot);
        }
    });
    resolve_locals(expr);
}

/// Rewrite every reference to a comprehension's loop variable in `expr`
/// into a local ([`locals`]); what [`resolve`] does besides the slots, and
/// all that an expression outside a policy gets
/// ([`super::expression::Expression`]).
pub(crate) fn resolve_locals(expr: &mut IdedExpr) {
    locals(expr, &mut Vec::new());
}

/// Rewrite every reference to a comprehension's loop variable (and the
/// field selections on it: `t.key`) into an `Expr::Local` that says how many
/// comprehensions out the binding one is (vendor/cel/PATCHES.md, item 26),
/// so that the interpreter takes it from that scope instead of looking the
/// name up through the scopes. `scopes` are the names each comprehension
/// around `expr` binds, innermost last. As in the interpreter, the
/// innermost comprehension that binds a name (as its loop variable, its
/// second loop variable or its accumulator) shadows the others. Only a loop
/// variable becomes a local: an accumulator stays a name, which the
/// interpreter's loops recognise by name (`@result`), and so does a second
/// loop variable, which none of its loops binds.
fn locals(expr: &mut IdedExpr, scopes: &mut Vec<Binds>) {
    if let Some(local) = local_of(&expr.expr, scopes) {
        expr.expr = Expr::Local(local);
        return;
    }
    match &mut expr.expr {
        Expr::Comprehension(c) => {
            // the range and the first accumulator run in the scope around
            locals(&mut c.iter_range, scopes);
            locals(&mut c.accu_init, scopes);
            scopes.push(Binds {
                iter_var: c.iter_var.clone(),
                others: [c.iter_var2.clone(), Some(c.accu_var.clone())],
            });
            for part in [&mut c.loop_cond, &mut c.loop_step, &mut c.result] {
                locals(part, scopes);
            }
            scopes.pop();
        }
        _ => super::ast::children_mut(expr, &mut |child| locals(child, scopes)),
    }
}

/// The names one comprehension binds in its scope.
struct Binds {
    iter_var: String,
    /// The second loop variable and the accumulator.
    others: [Option<String>; 2],
}

impl Binds {
    /// Whether `name` is the second loop variable or the accumulator.
    fn binds_other(&self, name: &str) -> bool {
        self.others.iter().flatten().any(|n| n == name)
    }
}

/// The local `expr` reads when it is a loop variable in `scopes`, or a chain
/// of field selections on one; `None` for anything else, a presence test
/// (`has(t.key)`) included, whose operand is then rewritten on its own.
fn local_of(expr: &Expr, scopes: &[Binds]) -> Option<LocalExpr> {
    let mut fields = Vec::new();
    let mut at = expr;
    let name = loop {
        match at {
            Expr::Ident(name) => break name,
            Expr::Select(s) if !s.test => {
                fields.push(s.field.clone());
                at = &s.operand.expr;
            }
            _ => return None,
        }
    };
    let (depth, binds) = scopes
        .iter()
        .rev()
        .enumerate()
        .find(|(_, b)| b.iter_var == *name || b.binds_other(name))?;
    if binds.iter_var != *name || binds.binds_other(name) {
        return None;
    }
    fields.reverse();
    Some(LocalExpr {
        depth,
        name: name.clone(),
        fields,
    })
}

/// The slot `expr` reads when it is an anchored root name or a chain of
/// field selections on one.
fn slot_of(expr: &Expr, computed: &[&str]) -> Option<SlotExpr> {
    let mut fields = Vec::new();
    let mut at = expr;
    let root = loop {
        match at {
            Expr::Ident(name) => break name.strip_prefix('.')?,
            Expr::Select(s) if !s.test => {
                fields.push(s.field.clone());
                at = &s.operand.expr;
            }
            _ => return None,
        }
    };
    let index = ROOTS.iter().position(|r| *r == root)?;
    fields.reverse();
    if root == "variables"
        && let Some(first) = fields.first()
        && let Some(j) = computed.iter().position(|n| n == first)
    {
        let name = format!("variables.{}", fields.remove(0));
        return Some(SlotExpr {
            index: ROOTS.len() + j,
            name,
            fields,
        });
    }
    Some(SlotExpr {
        index,
        name: root.to_owned(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots of `source` after anchoring, as `index:name.fields`.
    fn slots(source: &str, computed: &[&str]) -> Vec<String> {
        let env = crate::cel::expression::shared_environment();
        let mut expr = env.parser().parse(source).unwrap();
        super::super::optimize::anchor_roots(&mut expr, ROOTS);
        resolve(&mut expr, computed);
        let mut found = Vec::new();
        crate::cel::ast::visit(&expr, &mut |e| match &e.expr {
            Expr::Slot(s) => found.push(format!(
                "{}:{}{}",
                s.index,
                s.name,
                s.fields.iter().map(|f| format!(".{f}")).collect::<String>()
            )),
            Expr::Ident(n) if n.starts_with('.') => found.push(format!("unresolved {n}")),
            _ => {}
        });
        found
    }

    #[test]
    fn roots_and_computed_variables_become_slots() {
        assert_eq!(
            slots(
                "object.spec.containers.size() > 0 && variables.b.x == variables.a && has(object.spec.f) && params.k == variables.later",
                &["a", "b"]
            ),
            [
                "0:object.spec.containers",
                "9:variables.b.x",
                "8:variables.a",
                "0:object.spec",
                "4:params.k",
                // not computed yet: the map's slot, which reports the missing key
                "7:variables.later",
            ]
        );
    }

    #[test]
    fn comprehension_variables_keep_shadowing_roots() {
        assert_eq!(
            slots(
                "object.items.exists(object, object.name == request.name) && [1].all(variables, variables.x == 1)",
                &["x"]
            ),
            ["0:object.items", "2:request.name"]
        );
    }

    /// A policy of `variables` (name, expression) and `validations`,
    /// evaluated on a Pod `p` with two labels and `items` in its spec: the
    /// decision's allowance, or the fault's message.
    fn judge(
        variables: &[(&str, &str)],
        validations: &[&str],
        items: usize,
    ) -> Result<bool, String> {
        let policy = serde_json::json!({
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "CelPolicy",
            "metadata": {"name": "slots"},
            "spec": {
                "variables": variables.iter().map(|(n, e)| serde_json::json!({"name": n, "expression": e})).collect::<Vec<_>>(),
                "validations": validations.iter().map(|e| serde_json::json!({"expression": e})).collect::<Vec<_>>(),
            },
        });
        let policy = crate::cel::CelPolicy::compile(std::path::Path::new("slots.yaml"), policy)
            .map_err(|e| e.to_string())?;
        let review = crate::review::Review::from_object(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "labels": {"app": "web", "tier": "front"}},
            "spec": {"items": (0..items).collect::<Vec<_>>()},
        }))
        .unwrap();
        policy
            .evaluate(&review, &crate::cluster::Empty::default())
            .map(|o| o.decision.allowed)
            .map_err(|f| f.to_string())
    }

    /// The error `source` gives outside a policy, where names are resolved
    /// by name (`crate::cel::expression`), with `variables` bound to `vars`.
    fn error_by_name(source: &str, vars: serde_json::Value) -> String {
        let mut bindings = crate::cel::expression::Bindings::new();
        bindings.insert_json(
            "object",
            &serde_json::json!({"metadata": {"name": "p"}, "spec": {"items": []}}),
        );
        bindings.insert_json("variables", &vars);
        let error = crate::cel::expression::Expression::compile_by_name(source)
            .unwrap()
            .evaluate(&bindings)
            .unwrap_err()
            .to_string();
        error
            .strip_prefix("evaluation error: ")
            .unwrap_or(&error)
            .to_owned()
    }

    #[test]
    fn comprehension_variables_shadow_roots_when_evaluated() {
        assert_eq!(
            judge(
                &[("x", "1")],
                &[
                    // `object` here is the element, which has `name`; the Pod has none
                    "[object.metadata].exists(object, object.name == 'p')",
                    // `variables` here is the element, whose `x` is 2
                    "[{'x': 2}].all(variables, variables.x == 2) && variables.x == 1",
                    "object.metadata.labels.all(request, request.size() > 2)",
                ],
                0,
            ),
            Ok(true)
        );
    }

    #[test]
    fn variables_read_earlier_variables_through_slots() {
        let variables = [
            ("a", "object.metadata.name"),
            ("b", "variables.a + '-x'"),
            ("c", "[variables.b].map(s, s + variables.a)"),
            ("labels", "object.metadata.labels"),
            // the `variables` map holds the variables computed so far
            ("seen", "has(variables.labels) && !has(variables.later)"),
            ("later", "variables.seen"),
        ];
        let checks = [
            "variables.c[0] == 'p-xp'",
            "variables.later && has(variables.later) && size(variables) == 6",
            "variables.labels.app == 'web' && has(variables.labels.tier) && !has(variables.labels.x)",
            "has(variables.c) && !has(variables.nope)",
        ];
        assert_eq!(judge(&variables, &checks, 0), Ok(true));
        // each check fails on its own when its variable is not what it reads
        for check in ["variables.c[0] == 'p-x'", "variables.labels.app == 'db'"] {
            assert_eq!(judge(&variables, &[check], 0), Ok(false), "{check}");
        }
    }

    #[test]
    fn undeclared_names_keep_their_errors() {
        for (variables, source, vars) in [
            (&[][..], "foo == 1", serde_json::json!({})),
            (&[][..], "variables.nope == 1", serde_json::json!({})),
            (
                &[("a", "1")][..],
                "variables.a.b == 1",
                serde_json::json!({"a": 1}),
            ),
            (
                &[("a", "{'k': 1}")][..],
                "variables.a.b == 1",
                serde_json::json!({"a": {"k": 1}}),
            ),
            (
                &[][..],
                "object.spec.nothing.size() == 0",
                serde_json::json!({}),
            ),
        ] {
            let got = judge(variables, &[source], 0);
            assert_fails_as_by_name(got, source, vars);
        }
        // a variable reading a later one reads the map, which lacks it
        let got = judge(
            &[("a", "variables.b"), ("b", "1")],
            &["variables.a == 1"],
            0,
        );
        assert_fails_as_by_name(got, "variables.b", serde_json::json!({}));
    }

    #[test]
    fn a_variable_that_fails_fails_the_policy_with_its_error() {
        let bad = "object.spec.nothing.size()";
        let got = judge(
            &[("ok", "1"), ("bad", bad)],
            &["variables.ok == 1 && variables.bad == 0"],
            0,
        );
        assert_fails_as_by_name(got, bad, serde_json::json!({}));
    }

    /// That `got` is the fault of the expression `source` with the error
    /// it gives when resolved by name ([`error_by_name`]).
    fn assert_fails_as_by_name(got: Result<bool, String>, source: &str, vars: serde_json::Value) {
        let want = error_by_name(source, vars);
        let got = got.unwrap_err();
        assert!(
            got.ends_with(&format!("`{source}`: {want}")),
            "{source}: {got} (by name: {want})"
        );
    }

    /// The null-safe idiom on slots (`has(x.f) && x.f != null ? x.f : d`,
    /// fused at load) gives what the same test written otherwise
    /// (`null != x.f`, not fused) gives: values, defaults and errors.
    #[test]
    fn the_null_safe_idiom_on_slots_keeps_its_results_and_errors() {
        let variables = [("m", "{'a': {'b': 1}, 'n': null}"), ("s", "'text'")];
        let mut errors = 0;
        for x in [
            "object.metadata.labels",
            "object.metadata",
            "object.spec",
            "object.metadata.name",
            "variables.m",
            "variables.m.a",
            "variables.m.n",
            "variables.s",
            "variables",
            "params",
        ] {
            for f in ["app", "b", "n", "missing"] {
                let fused = format!("has({x}.{f}) && {x}.{f} != null ? {x}.{f} : 'd'");
                let plain = format!("has({x}.{f}) && null != {x}.{f} ? {x}.{f} : 'd'");
                let [fused, plain] = [fused, plain].map(|idiom| {
                    let check = format!("string({idiom}) == 'web'");
                    judge(&variables, &[&check], 0)
                        .map_err(|e| e.rsplit_once("`: ").map(|(_, e)| e.to_owned()).unwrap_or(e))
                });
                assert_eq!(fused, plain, "{x}.{f}");
                errors += usize::from(fused.is_err());
            }
        }
        assert!(errors >= 4, "errors are among the cases: {errors}");
    }

    /// The refined cost bound is taken from the names, before they become
    /// slots: a bound that reads `variables.small` (two elements) instead
    /// of the Pod's 2,000 items keeps three nested loops within budget.
    #[test]
    fn cost_bounds_are_taken_from_the_names() {
        let nested = "variables.small.all(x, variables.small.all(y, object.spec.items.all(z, z + x + y >= 0)))";
        assert_eq!(judge(&[("small", "[1, 2]")], &[nested], 2000), Ok(true));
        // the variable's own size, found by its position among the variables
        let second = [("first", "object.spec.items"), ("small", "[1, 2]")];
        assert_eq!(judge(&second, &[nested], 2000), Ok(true));
        let coarse = "object.spec.items.all(x, object.spec.items.all(y, x + y >= 0))";
        let over = judge(&[], &[coarse], 2000).unwrap_err();
        assert!(over.contains("over the per-expression budget"), "{over}");
        // and a slot counts the nodes its name and selections stood for
        let env = crate::cel::expression::shared_environment();
        for source in [
            nested,
            coarse,
            "object.metadata.labels.app == variables.a.b.c",
        ] {
            let mut expr = env.parser().parse(source).unwrap();
            super::super::optimize::anchor_roots(&mut expr, ROOTS);
            let by_name = crate::cel::cost::bound(&expr);
            resolve(&mut expr, &["a", "small"]);
            assert_eq!(crate::cel::cost::bound(&expr), by_name, "{source}");
        }
    }

    /// The locals of `source` after anchoring and resolving, in pre-order,
    /// as `name<depth>.fields`.
    fn locals_of(source: &str) -> Vec<String> {
        let env = crate::cel::expression::shared_environment();
        let mut expr = env.parser().parse(source).unwrap();
        super::super::optimize::anchor_roots(&mut expr, ROOTS);
        resolve(&mut expr, &[]);
        let mut found = Vec::new();
        crate::cel::ast::visit(&expr, &mut |e| {
            if let Expr::Local(l) = &e.expr {
                let fields: String = l.fields.iter().map(|f| format!(".{f}")).collect();
                found.push(format!("{}<{}>{fields}", l.name, l.depth));
            }
        });
        found
    }

    #[test]
    fn loop_variables_become_locals_at_the_depth_of_their_binding() {
        assert_eq!(
            locals_of(
                "object.items.all(x, x.a.exists(y, y == x.b && [1].all(x, x == y)) && has(x.c.d))"
            ),
            [
                // the range of a comprehension runs in the scope around it
                "x<0>.a", "y<0>", "x<1>.b", // the innermost `x` shadows the outer one
                "x<0>", "y<1>", // a presence test keeps its last selection
                "x<0>.c",
            ]
        );
        // names no loop binds stay names; roots stay slots
        assert_eq!(
            locals_of("object.a == params.b && [1].all(z, true)"),
            Vec::<String>::new()
        );
    }

    /// Loop variables read through locals give what they gave by name:
    /// shadowing at two depths, the same name at several, outer variables
    /// from inner loops, presence tests, and two-variable comprehensions
    /// (whose second variable and hidden target stay names).
    #[test]
    fn loop_variables_read_as_locals_keep_their_values() {
        let checks = [
            // the inner `x` (a number) shadows the outer one (a list)
            "[[1, 2], [3]].all(x, x.all(x, x > 0))",
            "[{'a': [1], 'b': [1]}].all(x, x.a.all(y, y == x.b[0]))",
            "[1].all(x, [2].all(y, [3].all(x, x == 3 && y == 2)) && x == 1)",
            "[{'a': 1}, {}].exists(x, !has(x.a)) && [{'a': {'b': 1}}].all(x, has(x.a.b))",
            "object.metadata.labels.all(k, v, k.size() > 2 && [k].all(v, v == k)) && object.metadata.labels.exists(k, v, v == 'web')",
            "[1, 2].map(x, [x].map(y, x + y)) == [[2], [4]] && [1, 2, 3].filter(x, [x].exists(y, y > 1)) == [2, 3]",
        ];
        assert_eq!(judge(&[], &checks, 0), Ok(true));
        // and each check is judged: the same checks with one value changed fail
        for check in [
            "[{'a': [2], 'b': [1]}].exists(x, x.a.exists(y, y == x.b[0]))",
            "[1].all(x, [2].all(y, [3].all(x, x == 1)))",
            "[{'a': 1}].exists(x, !has(x.a))",
        ] {
            assert_eq!(judge(&[], &[check], 0), Ok(false), "{check}");
        }
    }

    #[test]
    fn errors_inside_loops_are_those_by_name() {
        for source in [
            "[{'a': 1}].all(x, x.b == 1)",
            "[1].all(x, x.b == 1)",
            "[{'a': {'c': 1}}].all(x, [1].all(y, x.a.b == y))",
            "[1].all(x, x == 'a' || x.size() > 0)",
        ] {
            assert_fails_as_by_name(judge(&[], &[source], 0), source, serde_json::json!({}));
        }
    }

    #[test]
    fn root_slots_are_the_positions_of_their_names() {
        for (slot, name) in [
            (root::OBJECT, "object"),
            (root::OLD_OBJECT, "oldObject"),
            (root::REQUEST, "request"),
            (root::POD, "pod"),
            (root::PARAMS, "params"),
            (root::POOLS, "pools"),
            (root::NAMESPACE_OBJECT, "namespaceObject"),
            (root::VARIABLES, "variables"),
        ] {
            assert_eq!(ROOTS[slot], name);
        }
        assert_eq!(ROOTS.len(), 8);
    }

    #[test]
    fn slot_numbers_name_roots_and_variables() {
        assert_eq!(Slot::of(0), Slot::Root(0));
        assert_eq!(Slot::of(ROOTS.len() - 1), Slot::Root(ROOTS.len() - 1));
        assert_eq!(Slot::of(ROOTS.len()), Slot::Variable(0));
        assert_eq!(Slot::of(ROOTS.len() + 3), Slot::Variable(3));
    }
}
