//! Policy variables shared by the CEL policies of one request.
//!
//! Policies written alike declare the same variables (the autoscaler pack's
//! twins each compute `meta`, `spec`, `labels`, `tolerations`, `covered`,
//! ... from the same expressions). A variable whose value depends only on
//! the request (`object`, `oldObject`, `request`, `pod`) and on variables
//! that are themselves shared gets a [`Key`] when its policy is compiled:
//! the same key for the same expression in the same environment reading
//! the same definitions. Its value is kept with the request's converted
//! inputs ([`Values`]) by the first policy that computes it, and the others
//! take it by a reference count ([`Computed`], measured once for the cost
//! bound) instead of evaluating or copying it again. Their cost is charged
//! as if they had.
//!
//! Match conditions are keyed the same way (without variables: they are
//! evaluated before any), so the conditions the twins repeat (the judged
//! operation, not a DaemonSet) are evaluated once a request and their
//! result taken by the other policies, their cost charged too.
//!
//! Not shared: variables and conditions that read `params` (each policy has
//! its own), `pools` or `namespaceObject` (they depend on the cluster view),
//! or `variables` other than as `variables.<name>`; a failed evaluation,
//! which each policy reports itself.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use cel::Env;
use cel::common::ast::{Expr, IdedExpr};
use cel::common::value::Val;

use super::value::{CelVal, longest_in};

/// Which shared value a variable of a compiled policy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(u64);

/// A [`Key`] with how `object` is bound (the object, or the pod template of
/// a pod controller), which the value depends on.
pub(crate) type Slot = (u64, bool);

impl Key {
    /// The slot of the value when `object` is the pod (or not).
    pub(crate) fn at(self, object_is_pod: bool) -> Slot {
        (self.0, object_is_pod)
    }
}

/// Every key handed out, by the text that identifies it: keys are small
/// numbers, compared per variable at evaluation, not long texts.
static KEYS: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Default::default);

/// The keys of a policy's `variables` (name, compiled expression with its
/// source), in order: `None` for one that cannot be shared. Expressions are
/// read after [`super::optimize::anchor_roots`], which writes the inputs as
/// absolute names (`.object`); a plain name is a comprehension variable.
pub(crate) fn keys(env: &Arc<Env>, variables: &[(&str, &IdedExpr, &str)]) -> Vec<Option<Key>> {
    let mut keys: Vec<Option<Key>> = Vec::with_capacity(variables.len());
    for (i, (_, expr, source)) in variables.iter().enumerate() {
        let key = reads(expr).and_then(|mut read| {
            read.sort_unstable();
            read.dedup();
            let mut text = format!("{:p}\u{0}{source}", Arc::as_ptr(env));
            for name in read {
                // The definition a reference finds: the first earlier one.
                let earlier = variables[..i].iter().position(|(n, _, _)| *n == name);
                let definition = match earlier {
                    Some(j) => keys[j]?.0.to_string(),
                    None => "undefined".to_string(),
                };
                text.push_str(&format!("\u{0}{name}={definition}"));
            }
            let mut all = KEYS.lock().ok()?;
            let next = all.len() as u64;
            Some(Key(*all.entry(text).or_insert(next)))
        });
        keys.push(key);
    }
    keys
}

/// The policy variables `expr` reads (`variables.<name>`, `has()` included),
/// or `None` when it reads anything that is not the same for every policy
/// of a request.
fn reads(expr: &IdedExpr) -> Option<Vec<String>> {
    let mut read = Vec::new();
    let mut selections = 0;
    let mut roots = 0;
    let mut shareable = true;
    super::ast::visit(expr, &mut |e| match &e.expr {
        Expr::Select(s) if matches!(&s.operand.expr, Expr::Ident(n) if n == ".variables") => {
            selections += 1;
            read.push(s.field.clone());
        }
        Expr::Ident(n) if n == ".variables" => roots += 1,
        Expr::Ident(n) if matches!(n.as_str(), ".params" | ".pools" | ".namespaceObject") => {
            shareable = false;
        }
        _ => {}
    });
    (shareable && selections == roots).then_some(read)
}

/// A computed variable (or match condition) value with the length of the
/// longest list or map in it (for the refined cost bound), held by the
/// policy that computed it and by the request's [`Values`]: the policies
/// that take it share it by a reference count, without a copy.
#[derive(Debug)]
pub(crate) struct Computed {
    pub(crate) value: CelVal,
    /// Measured when a refined bound first asks (most evaluations never
    /// need one), then kept for the request's other policies.
    longest: OnceLock<u64>,
}

impl Computed {
    /// `value`, to be measured when needed.
    pub(crate) fn new(value: CelVal) -> Arc<Self> {
        Arc::new(Computed {
            value,
            longest: OnceLock::new(),
        })
    }

    /// The length of the longest list or map in the value.
    pub(crate) fn longest(&self) -> u64 {
        *self.longest.get_or_init(|| longest_in(self.value.as_ref()))
    }

    /// The value.
    pub(crate) fn value(&self) -> &(dyn Val + 'static) {
        self.value.as_ref()
    }
}

/// The shared variables of one request.
#[derive(Default)]
pub(crate) struct Values(Mutex<Vec<(Slot, Arc<Computed>)>>);

impl Values {
    /// The value kept in `slot`.
    pub(crate) fn get(&self, slot: Slot) -> Option<Arc<Computed>> {
        let values = self.0.lock().ok()?;
        let (_, value) = values.iter().find(|(s, _)| *s == slot)?;
        Some(value.clone())
    }

    /// Keep `value` in `slot`, unless one is kept already.
    pub(crate) fn insert(&self, slot: Slot, value: &Arc<Computed>) {
        let Ok(mut values) = self.0.lock() else {
            return;
        };
        if !values.iter().any(|(s, _)| *s == slot) {
            values.push((slot, value.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cel::CelPolicy;
    use crate::cluster::Empty;
    use crate::review::Review;

    fn policy(name: &str, variables: serde_json::Value, rule: &str) -> CelPolicy {
        conditional_policy(name, &[], variables, rule)
    }

    /// A policy with the match conditions `conditions` (named `c0`, `c1`, ...).
    fn conditional_policy(
        name: &str,
        conditions: &[&str],
        variables: serde_json::Value,
        rule: &str,
    ) -> CelPolicy {
        let conditions: Vec<_> = conditions
            .iter()
            .enumerate()
            .map(|(i, c)| json!({"name": format!("c{i}"), "expression": c}))
            .collect();
        let doc = json!({
            "apiVersion": "tollgate.dev/v1alpha1",
            "kind": "CelPolicy",
            "metadata": {"name": name},
            "spec": {
                "settings": {"n": name},
                "matchConditions": conditions,
                "variables": variables,
                "validations": [{"expression": rule}],
            },
        });
        CelPolicy::compile(std::path::Path::new("p.yaml"), doc).unwrap()
    }

    fn allowed(policy: &CelPolicy, review: &Review) -> bool {
        policy
            .evaluate(review, &Empty::default())
            .unwrap()
            .decision
            .allowed
    }

    #[test]
    fn alike_variables_share_a_key_and_others_do_not() {
        let a = policy(
            "a",
            json!([
                {"name": "m", "expression": "object.metadata"},
                {"name": "l", "expression": "variables.m.labels"},
                {"name": "p", "expression": "params.n"},
                {"name": "q", "expression": "variables.p + 'x'"},
            ]),
            "true",
        );
        let b = policy(
            "b",
            json!([
                {"name": "m", "expression": "object.spec"},
                {"name": "l", "expression": "variables.m.labels"},
                {"name": "o", "expression": "object.metadata"},
            ]),
            "true",
        );
        let (ka, kb) = (a.shared_variable_keys(), b.shared_variable_keys());
        assert!(
            ka[0].is_some() && ka[0] == kb[2],
            "same expression: {ka:?} {kb:?}"
        );
        assert_ne!(ka[0], kb[0], "another expression");
        assert_ne!(ka[1], kb[1], "the same text over another definition");
        assert_eq!(ka[2], None, "reads params");
        assert_eq!(ka[3], None, "reads a variable that is not shared");
    }

    #[test]
    fn a_shared_value_is_the_one_each_policy_would_compute() {
        let review = Review::from_object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "labels": {"app": "x"}},
            "spec": {"labels": {"app": "y"}},
        }))
        .unwrap();
        let a = policy(
            "a",
            json!([
                {"name": "m", "expression": "object.metadata"},
                {"name": "l", "expression": "variables.m.labels"},
            ]),
            "variables.l.app == 'x'",
        );
        let b = policy(
            "b",
            json!([
                {"name": "m", "expression": "object.spec"},
                {"name": "l", "expression": "variables.m.labels"},
            ]),
            "variables.l.app == 'y'",
        );
        let c = policy(
            "c",
            json!([
                {"name": "l", "expression": "variables.m.labels"},
                {"name": "m", "expression": "object.metadata"},
            ]),
            "true",
        );
        // The same review, so the same shared values, in both orders.
        assert!(allowed(&a, &review) && allowed(&b, &review) && allowed(&a, &review));
        // `l` reads a variable not yet defined: an error, whatever `a` kept.
        assert!(c.evaluate(&review, &Empty::default()).is_err());
    }

    /// Match conditions with the same text share their result, as
    /// variables do (and with a variable of the same text): each policy
    /// still decides from its own conditions, one that reads `params` is
    /// evaluated by its own policy, and one that reads a variable fails.
    #[test]
    fn alike_match_conditions_share_their_result() {
        let with_conditions = |name: &str, conditions: &[&str]| {
            let variables =
                json!([{"name": "d", "expression": "object.metadata.namespace == 'd'"}]);
            conditional_policy(name, conditions, variables, "false")
        };
        let a = with_conditions(
            "a",
            &["object.metadata.namespace == 'd'", "params.n == 'a'"],
        );
        let b = with_conditions(
            "b",
            &["object.metadata.namespace == 'd'", "params.n == 'a'"],
        );
        let c = with_conditions("c", &["variables.d"]);
        let (ka, kb) = (
            a.shared_match_condition_keys(),
            b.shared_match_condition_keys(),
        );
        assert!(
            ka[0].is_some() && ka[0] == kb[0],
            "same text: {ka:?} {kb:?}"
        );
        assert_eq!(
            ka[0],
            a.shared_variable_keys()[0],
            "a variable of the same text"
        );
        assert_eq!((ka[1], kb[1]), (None, None), "reads params");
        let review = |namespace: &str| {
            Review::from_object(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": namespace}, "spec": {},
            }))
            .unwrap()
        };
        let skipped = |policy: &CelPolicy, review: &Review| {
            policy.evaluate(review, &Empty::default()).unwrap().skipped
        };
        let (d, e) = (review("d"), review("e"));
        // `a` matches and denies; `b`, whose params condition fails, is
        // skipped although it takes the shared first condition.
        assert!(!skipped(&a, &d) && !allowed(&a, &d) && skipped(&b, &d));
        assert!(skipped(&b, &e) && skipped(&a, &e));
        // A condition on variables fails: they are not defined yet.
        assert!(c.evaluate(&d, &Empty::default()).is_err());
    }

    /// Qualified names are answered from their segments
    /// (`VariableResolver::resolve_segments`): a variable's fields, the
    /// inputs' fields, the `variables` map itself, and a missing field or
    /// variable reported as the interpreter reports it.
    #[test]
    fn qualified_names_resolve_through_variables_and_inputs() {
        let review = Review::from_object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "d", "labels": {"app": "x"}},
            "spec": {"nodeSelector": {"pool": "a"}},
        }))
        .unwrap();
        let variables = json!([
            {"name": "m", "expression": "object.metadata"},
            {"name": "l", "expression": "[object.metadata.labels].map(x, {'inner': x})"},
        ]);
        for rule in [
            "variables.m.labels.app == 'x' && object.spec.nodeSelector.pool == 'a'",
            "variables.l[0].inner.app == 'x' && pod.metadata.name == 'p'",
            "has(variables.m.labels) && !has(variables.m.annotations) && has(variables.l)",
            "variables.m.labels.all(k, variables.m.labels[k] == 'x')",
            "object.kind == 'Pod' && params.n == 'q'",
        ] {
            assert!(
                allowed(&policy("q", variables.clone(), rule), &review),
                "{rule}"
            );
        }
        for (rule, error) in [
            ("variables.m.nope == 'x'", "No such key: nope"),
            ("variables.nope.a == 'x'", "No such key: nope"),
            ("object.spec.nope.a == 'x'", "No such key: nope"),
            ("nope.a == 'x'", "Undeclared reference to 'nope'"),
        ] {
            let fault = policy("q", variables.clone(), rule)
                .evaluate(&review, &Empty::default())
                .unwrap_err();
            assert!(fault.to_string().contains(error), "{rule}: {fault}");
        }
    }
}
