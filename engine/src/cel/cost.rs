//! A cost bound for CEL expressions, checked before an expression runs.
//!
//! The `cel` crate cannot meter or interrupt an evaluation, so Tollgate bounds
//! the work an expression can do instead. At compile time every expression gets
//! a polynomial in `L`, the length of the longest list or map in the request:
//! each node costs 1, and a comprehension costs its range, its init and its
//! result plus `N` times its loop body, where `N` is the literal size of a list
//! literal or `lists.range(k)`, or `L` for anything computed from the input.
//! Nested comprehensions multiply. Before evaluating, the bound is computed for
//! the request's `L` and the expression is refused (a `budget` fault) when it is
//! over the per-expression budget. Bounds over the budget for every input
//! (e.g. `lists.range(1000).all(x, lists.range(1000).all(y, ...))`) are compile errors.
//!
//! When that bound is over budget, [`refined`] bounds the same expression
//! with the size of the list under each variable instead of one `L`.
//!
//! Known gap: lists produced by string functions (`split`) are bounded by `L`,
//! which does not account for long strings.

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr, IdedExpr, LiteralValue};

/// The API server's per-expression runtime cost limit.
pub const PER_EXPRESSION_BUDGET: u128 = 1_000_000;
/// The API server's per-policy-evaluation limit.
pub const PER_POLICY_BUDGET: u128 = 10_000_000;
/// The API server's limit for all the match conditions of a policy.
pub const MATCH_CONDITIONS_BUDGET: u128 = 2_500_000;

/// The longest list or map under each variable of a policy evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sizes {
    /// In all inputs.
    pub all: u64,
    /// In `object`, `oldObject`, `request` and `pod`.
    pub object: u64,
    /// In `pools`.
    pub pools: u64,
    /// In `namespaceObject`.
    pub namespace_object: u64,
    /// In `params`.
    pub params: u64,
}

impl Sizes {
    /// The longest list under the variable `root` (all inputs for anything
    /// else; the caller measures `variables.<name>`).
    pub fn of(&self, root: &str) -> u128 {
        u128::from(match root {
            "object" | "oldObject" | "request" | "pod" => self.object,
            "pools" => self.pools,
            "namespaceObject" => self.namespace_object,
            "params" => self.params,
            _ => self.all,
        })
    }
}

/// What a policy evaluation has spent from one budget.
#[derive(Debug)]
pub struct Spent {
    spent: u128,
    budget: u128,
    what: &'static str,
}

impl Spent {
    /// Nothing spent yet from `budget`, named `what` in errors.
    pub fn new(budget: u128, what: &'static str) -> Self {
        Spent {
            spent: 0,
            budget,
            what,
        }
    }

    /// Charge one expression's bound.
    ///
    /// # Errors
    /// Why the expression may not run: over the per-expression limit, or the
    /// budget is exhausted.
    pub fn charge(&mut self, bound: u128, longest: u64) -> Result<(), String> {
        if bound > PER_EXPRESSION_BUDGET {
            return Err(format!(
                "cost bound {bound} for lists of up to {longest} elements is over the per-expression budget of {PER_EXPRESSION_BUDGET}"
            ));
        }
        self.spent = self.spent.saturating_add(bound);
        if self.spent > self.budget {
            return Err(format!(
                "cost bounds spent so far ({}) are over the budget of {} for the {}",
                self.spent, self.budget, self.what
            ));
        }
        Ok(())
    }
}

/// A polynomial in `L` with saturating coefficients, lowest degree first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound(Vec<u128>);

impl Bound {
    fn constant(c: u128) -> Self {
        Bound(vec![c])
    }

    fn add(mut self, other: &Bound) -> Self {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = a.saturating_add(*b);
        }
        self
    }

    fn times_constant(mut self, n: u128) -> Self {
        for c in &mut self.0 {
            *c = c.saturating_mul(n);
        }
        self
    }

    fn times_l(mut self) -> Self {
        self.0.insert(0, 0);
        self
    }

    /// The bound for inputs whose longest list or map has `longest` elements.
    pub fn at(&self, longest: u64) -> u128 {
        let l = longest as u128;
        self.0
            .iter()
            .rev()
            .fold(0u128, |acc, c| acc.saturating_mul(l).saturating_add(*c))
    }

    /// The bound for empty inputs (literal iteration only).
    pub fn floor(&self) -> u128 {
        self.0.first().copied().unwrap_or(0)
    }
}

/// The cost bound of an expression.
pub fn bound(expr: &IdedExpr) -> Bound {
    let one = Bound::constant(1);
    match &expr.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => one,
        Expr::Select(s) => one.add(&bound(&s.operand)),
        Expr::Call(c) => {
            let mut b = one;
            if let Some(t) = &c.target {
                b = b.add(&bound(t));
            }
            c.args.iter().fold(b, |b, a| b.add(&bound(a)))
        }
        Expr::List(l) => l.elements.iter().fold(one, |b, e| b.add(&bound(e))),
        Expr::Map(m) => m.entries.iter().fold(one, |b, e| match &e.expr {
            EntryExpr::MapEntry(me) => b.add(&bound(&me.key)).add(&bound(&me.value)),
            EntryExpr::StructField(f) => b.add(&bound(&f.value)),
        }),
        Expr::Struct(s) => s.entries.iter().fold(one, |b, e| match &e.expr {
            EntryExpr::MapEntry(me) => b.add(&bound(&me.key)).add(&bound(&me.value)),
            EntryExpr::StructField(f) => b.add(&bound(&f.value)),
        }),
        Expr::Comprehension(c) => {
            let body = bound(&c.loop_cond).add(&bound(&c.loop_step));
            let iterations = match literal_size(&c.iter_range) {
                Some(n) => body.times_constant(n),
                None => body.times_l(),
            };
            one.add(&bound(&c.iter_range))
                .add(&bound(&c.accu_init))
                .add(&bound(&c.result))
                .add(&iterations)
        }
    }
}

/// A tighter bound, for when [`bound`] at the request's longest list is over
/// budget: each comprehension iterates at most the longest list under the
/// variable its range starts from (`sizes("pools")` for `pools.exists(...)`,
/// and for `p.taints.all(...)` inside it, as `p` is an element of `pools`),
/// rather than the longest list of the whole request. `sizes("")` is used
/// when the range does not start from a variable.
pub fn refined(expr: &IdedExpr, sizes: &dyn Fn(&str) -> u128) -> u128 {
    walk(expr, sizes, &mut Vec::new())
}

/// The comprehension variables in scope, innermost last, with the size of
/// the list each ranges over.
type Scope<'e> = Vec<(&'e str, u128)>;

fn walk<'e>(expr: &'e IdedExpr, sizes: &dyn Fn(&str) -> u128, scope: &mut Scope<'e>) -> u128 {
    // One for the node, plus its parts.
    let sum = |exprs: &mut dyn Iterator<Item = &'e IdedExpr>, scope: &mut Scope<'e>| {
        exprs.fold(1u128, |acc, e| acc.saturating_add(walk(e, sizes, scope)))
    };
    match &expr.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => 1,
        Expr::Select(s) => sum(&mut std::iter::once(s.operand.as_ref()), scope),
        Expr::Call(c) => sum(
            &mut c.target.iter().map(|t| t.as_ref()).chain(&c.args),
            scope,
        ),
        Expr::List(l) => sum(&mut l.elements.iter(), scope),
        Expr::Map(m) => sum(&mut entry_parts(&m.entries), scope),
        Expr::Struct(st) => sum(&mut entry_parts(&st.entries), scope),
        Expr::Comprehension(c) => {
            let root = root_size(&c.iter_range, sizes, scope);
            let iterations = literal_size(&c.iter_range).unwrap_or(root);
            let outside = sum(&mut [&c.iter_range, &c.accu_init].into_iter(), scope);
            let accu = root_size(&c.accu_init, sizes, scope);
            scope.push((&c.accu_var, accu));
            let result = walk(&c.result, sizes, scope);
            scope.push((&c.iter_var, root));
            let body =
                walk(&c.loop_cond, sizes, scope).saturating_add(walk(&c.loop_step, sizes, scope));
            scope.truncate(scope.len() - 2);
            outside
                .saturating_add(result)
                .saturating_add(iterations.saturating_mul(body))
        }
    }
}

/// The keys and values of map or struct literal entries.
fn entry_parts(entries: &[IdedEntryExpr]) -> impl Iterator<Item = &IdedExpr> {
    entries
        .iter()
        .flat_map(|e| match &e.expr {
            EntryExpr::MapEntry(me) => [Some(&me.key), Some(&me.value)],
            EntryExpr::StructField(f) => [Some(&f.value), None],
        })
        .flatten()
}

/// The longest list under the variables `expr` is built from: the variable
/// a selection, index or method call starts from, the largest of an
/// operator's operands or a literal's elements; 0 for a scalar literal.
fn root_size(expr: &IdedExpr, sizes: &dyn Fn(&str) -> u128, scope: &Scope<'_>) -> u128 {
    let largest = |items: &mut dyn Iterator<Item = &IdedExpr>| {
        items.map(|e| root_size(e, sizes, scope)).max().unwrap_or(0)
    };
    match &expr.expr {
        Expr::Ident(name) => scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or_else(|| sizes(name), |(_, l)| *l),
        Expr::Literal(_) => 0,
        // A policy variable has its own size.
        Expr::Select(s) if matches!(&s.operand.expr, Expr::Ident(v) if v == "variables") => {
            sizes(&format!("variables.{}", s.field))
        }
        Expr::Select(s) => root_size(&s.operand, sizes, scope),
        Expr::Call(c) => match &c.target {
            Some(t) => root_size(t, sizes, scope),
            None => largest(&mut c.args.iter()),
        },
        Expr::List(l) => largest(&mut l.elements.iter()),
        Expr::Map(m) => largest(&mut entry_parts(&m.entries)),
        _ => sizes(""),
    }
}

/// The number of elements of a list literal or `lists.range(k)` with literal `k`.
fn literal_size(expr: &IdedExpr) -> Option<u128> {
    match &expr.expr {
        Expr::List(l) => Some(l.elements.len() as u128),
        Expr::Call(c) if c.func_name == "range" || c.func_name == "lists.range" => {
            match c.args.as_slice() {
                [
                    IdedExpr {
                        expr: Expr::Literal(LiteralValue::Int(k)),
                        ..
                    },
                ] => Some(i64::from(*k).max(0) as u128),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_of(src: &str) -> Bound {
        let mut env = cel::Env::stdlib();
        env.add_extension(cel::extensions::lists).unwrap();
        bound(env.compile(src).unwrap().expression())
    }

    #[test]
    fn nested_comprehensions_multiply() {
        let flat = bound_of("object.items.all(x, x > 0)");
        let nested = bound_of("object.items.all(x, object.items.all(y, x + y > 0))");
        assert!(flat.at(10) < 100, "{flat:?}");
        assert!(nested.at(1000) > PER_EXPRESSION_BUDGET, "{nested:?}");
        assert!(nested.at(10) < 10_000);
    }

    #[test]
    fn the_refined_bound_uses_the_size_under_each_variable() {
        let mut env = cel::Env::stdlib();
        env.add_extension(cel::extensions::lists).unwrap();
        let program = env
            .compile("pools.exists(p, p.taints.all(t, object.spec.tolerations.exists(x, x == t)))")
            .unwrap();
        let sizes = |pools: u128| {
            move |root: &str| match root {
                "pools" => pools,
                _ => 50,
            }
        };
        let coarse = bound(program.expression()).at(50);
        let none = refined(program.expression(), &sizes(0));
        let some = refined(program.expression(), &sizes(3));
        assert!(none < 50, "no pools, no iterations: {none}");
        assert!(none < some && some < coarse, "{none} < {some} < {coarse}");
    }

    #[test]
    fn literal_ranges_are_bounded_at_compile_time() {
        let b = bound_of("lists.range(1000).all(x, lists.range(1000).all(y, x + y >= 0))");
        assert!(b.floor() > PER_EXPRESSION_BUDGET, "{b:?}");
        assert!(bound_of("[1, 2, 3].all(x, x > 0)").floor() < 100);
    }
}
