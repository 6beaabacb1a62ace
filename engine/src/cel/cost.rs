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
    /// The longest list under the root `measure` names (all inputs for a
    /// policy variable: the caller measures a computed one).
    pub fn of(&self, measure: Measure) -> u128 {
        u128::from(match measure {
            Measure::Object => self.object,
            Measure::Pools => self.pools,
            Measure::NamespaceObject => self.namespace_object,
            Measure::Params => self.params,
            Measure::All | Measure::Variable(_) => self.all,
        })
    }
}

/// Where the longest list under one root of a [`Refined`] bound is found,
/// worked out from the root's name once, when the policy is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// `object`, `oldObject`, `request` or `pod`.
    Object,
    /// `pools`.
    Pools,
    /// `namespaceObject`.
    NamespaceObject,
    /// `params`.
    Params,
    /// The policy's variable at this position (`variables.<name>`): its
    /// value once computed, all inputs before.
    Variable(usize),
    /// Anything else: all inputs.
    All,
}

impl Measure {
    /// The measure of `root`, a policy's `variables` being named in order.
    pub fn of(root: &str, variables: &[String]) -> Self {
        match root {
            "object" | "oldObject" | "request" | "pod" => Measure::Object,
            "pools" => Measure::Pools,
            "namespaceObject" => Measure::NamespaceObject,
            "params" => Measure::Params,
            _ => root
                .strip_prefix("variables.")
                .and_then(|name| variables.iter().position(|v| *v == name))
                .map_or(Measure::All, Measure::Variable),
        }
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

/// The cost bound of an expression: a polynomial in `L` with saturating
/// coefficients, and the same coefficients in `u64` when they fit, worked out
/// once when the expression is compiled so that charging it
/// ([`Bound::at`], on every evaluation) converts nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    polynomial: Polynomial,
    /// The coefficients, highest degree first, when every one fits in `u64`.
    narrow: Option<Box<[u64]>>,
}

impl Bound {
    fn new(polynomial: Polynomial) -> Self {
        let narrow = polynomial
            .0
            .iter()
            .rev()
            .map(|c| u64::try_from(*c).ok())
            .collect();
        Bound { polynomial, narrow }
    }

    /// The bound for inputs whose longest list or map has `longest` elements.
    #[inline]
    pub fn at(&self, longest: u64) -> u128 {
        match self.narrow.as_deref() {
            // an expression without comprehensions: every request pays the same
            Some(&[constant]) => u128::from(constant),
            // In `u64` while nothing overflows (every bound a real request
            // meets): the same number as the saturating `u128` form, which
            // saturates only past `u64::MAX`, for a fraction of its cost.
            Some(coefficients) => coefficients
                .iter()
                .try_fold(0u64, |acc, c| acc.checked_mul(longest)?.checked_add(*c))
                .map_or_else(|| self.polynomial.at(longest), u128::from),
            None => self.polynomial.at(longest),
        }
    }

    /// The bound for empty inputs (literal iteration only).
    pub fn floor(&self) -> u128 {
        self.polynomial.0.first().copied().unwrap_or(0)
    }
}

/// A polynomial in `L` with saturating coefficients, lowest degree first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Polynomial(Vec<u128>);

impl Polynomial {
    fn constant(c: u128) -> Self {
        Polynomial(vec![c])
    }

    fn add(mut self, other: &Polynomial) -> Self {
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

    /// The value at `L = longest`, saturating.
    fn at(&self, longest: u64) -> u128 {
        let l = u128::from(longest);
        self.0
            .iter()
            .rev()
            .fold(0u128, |acc, c| acc.saturating_mul(l).saturating_add(*c))
    }
}

/// The nodes a slot stands for ([`super::slots`]): an identifier and a
/// selection per further segment of its name (`variables.x`), and one per
/// field selected on it.
fn slot_nodes(slot: &cel::common::ast::SlotExpr) -> u128 {
    (slot.name.split('.').count() + slot.fields.len()) as u128
}

/// The cost bound of an expression.
pub fn bound(expr: &IdedExpr) -> Bound {
    Bound::new(polynomial(expr))
}

/// The cost bound of an expression as a polynomial in `L`.
fn polynomial(expr: &IdedExpr) -> Polynomial {
    let one = Polynomial::constant(1);
    match &expr.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => one,
        Expr::Slot(s) => Polynomial::constant(slot_nodes(s)),
        // an identifier and a selection per field
        Expr::Local(l) => Polynomial::constant(1 + l.fields.len() as u128),
        Expr::Select(s) => one.add(&polynomial(&s.operand)),
        Expr::Call(c) => {
            let mut b = one;
            if let Some(t) = &c.target {
                b = b.add(&polynomial(t));
            }
            c.args.iter().fold(b, |b, a| b.add(&polynomial(a)))
        }
        Expr::List(l) => l.elements.iter().fold(one, |b, e| b.add(&polynomial(e))),
        Expr::Map(m) => m.entries.iter().fold(one, |b, e| match &e.expr {
            EntryExpr::MapEntry(me) => b.add(&polynomial(&me.key)).add(&polynomial(&me.value)),
            EntryExpr::StructField(f) => b.add(&polynomial(&f.value)),
        }),
        Expr::Struct(s) => s.entries.iter().fold(one, |b, e| match &e.expr {
            EntryExpr::MapEntry(me) => b.add(&polynomial(&me.key)).add(&polynomial(&me.value)),
            EntryExpr::StructField(f) => b.add(&polynomial(&f.value)),
        }),
        Expr::Comprehension(c) => {
            let body = polynomial(&c.loop_cond).add(&polynomial(&c.loop_step));
            let iterations = match literal_size(&c.iter_range) {
                Some(n) => body.times_constant(n),
                None => body.times_l(),
            };
            one.add(&polynomial(&c.iter_range))
                .add(&polynomial(&c.accu_init))
                .add(&polynomial(&c.result))
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
///
/// It is worked out once per expression, when it is compiled: what is left
/// for an evaluation is a constant and, per comprehension, the variables
/// whose sizes bound its iterations ([`Refined::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refined {
    /// The variables whose sizes bound some comprehension, each once: an
    /// evaluation asks for each size once, however many loops it bounds.
    roots: Vec<String>,
    /// The comprehensions and the rest, in terms of `roots`.
    tree: Part,
}

/// A [`Refined`] bound of an expression or of a comprehension's body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Part {
    /// The cost of every node outside any comprehension's body.
    constant: u128,
    /// The comprehensions not nested in another one's body.
    loops: Vec<Loop>,
}

/// One comprehension of a [`Refined`] bound: its body, times its iterations.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Loop {
    iterations: Iterations,
    body: Part,
}

/// How many times a comprehension iterates at most.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Iterations {
    /// A list literal or `lists.range(k)`.
    Literal(u128),
    /// The longest list under any of these variables (indices into
    /// [`Refined::roots`]; none: 0).
    Longest(Vec<usize>),
}

impl Refined {
    /// The refined bound of `expr`.
    pub fn of(expr: &IdedExpr) -> Self {
        let mut roots = Vec::new();
        let mut tree = Part::default();
        tree.add(expr, &mut Vec::new(), &mut roots);
        Refined { roots, tree }
    }

    /// The variables whose sizes the bound asks for, by their names.
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// The bound with `sizes(i)` the longest list under the `i`th of
    /// [`Refined::roots`].
    pub fn at(&self, sizes: &dyn Fn(usize) -> u128) -> u128 {
        // the sizes on the stack for the few variables of a policy
        const INLINE: usize = 16;
        let mut inline = [0u128; INLINE];
        let measured: Vec<u128>;
        let sized = if self.roots.len() <= INLINE {
            for (i, size) in inline.iter_mut().take(self.roots.len()).enumerate() {
                *size = sizes(i);
            }
            &inline[..self.roots.len()]
        } else {
            measured = (0..self.roots.len()).map(sizes).collect();
            &measured
        };
        // In `u64` while nothing overflows, as for [`Bound::at`]: the same
        // number as the saturating `u128` form.
        self.tree
            .narrow_at(sized)
            .map_or_else(|| self.tree.at(sized), u128::from)
    }
}

impl Part {
    /// [`Part::at`] in `u64`, `None` where a size, a coefficient or a step
    /// does not fit.
    fn narrow_at(&self, sizes: &[u128]) -> Option<u64> {
        self.loops
            .iter()
            .try_fold(u64::try_from(self.constant).ok()?, |acc, l| {
                let iterations = match &l.iterations {
                    Iterations::Literal(n) => *n,
                    Iterations::Longest(roots) => {
                        roots.iter().map(|&r| sizes[r]).max().unwrap_or(0)
                    }
                };
                acc.checked_add(
                    u64::try_from(iterations)
                        .ok()?
                        .checked_mul(l.body.narrow_at(sizes)?)?,
                )
            })
    }

    /// The bound with `sizes[i]` the longest list under the `i`th root.
    fn at(&self, sizes: &[u128]) -> u128 {
        self.loops.iter().fold(self.constant, |acc, l| {
            let iterations = match &l.iterations {
                Iterations::Literal(n) => *n,
                Iterations::Longest(roots) => roots.iter().map(|&r| sizes[r]).max().unwrap_or(0),
            };
            acc.saturating_add(iterations.saturating_mul(l.body.at(sizes)))
        })
    }

    /// Add the cost of `expr` and of everything under it, with the
    /// variables its comprehensions range over in `roots`.
    fn add<'e>(&mut self, expr: &'e IdedExpr, scope: &mut Scope<'e>, roots: &mut Vec<String>) {
        self.constant = self.constant.saturating_add(1);
        match &expr.expr {
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
            // one node counted above
            Expr::Slot(s) => self.constant = self.constant.saturating_add(slot_nodes(s) - 1),
            Expr::Local(l) => self.constant = self.constant.saturating_add(l.fields.len() as u128),
            Expr::Select(s) => self.add(&s.operand, scope, roots),
            Expr::Call(c) => {
                for part in c.target.iter().map(|t| t.as_ref()).chain(&c.args) {
                    self.add(part, scope, roots);
                }
            }
            Expr::List(l) => l.elements.iter().for_each(|e| self.add(e, scope, roots)),
            Expr::Map(m) => entry_parts(&m.entries).for_each(|e| self.add(e, scope, roots)),
            Expr::Struct(st) => entry_parts(&st.entries).for_each(|e| self.add(e, scope, roots)),
            Expr::Comprehension(c) => {
                let root = self::roots(&c.iter_range, scope);
                let iterations = match literal_size(&c.iter_range) {
                    Some(n) => Iterations::Literal(n),
                    None => Iterations::Longest(root.iter().map(|r| index_of(roots, r)).collect()),
                };
                self.add(&c.iter_range, scope, roots);
                self.add(&c.accu_init, scope, roots);
                let accu = self::roots(&c.accu_init, scope);
                scope.push((&c.accu_var, accu));
                self.add(&c.result, scope, roots);
                scope.push((&c.iter_var, root));
                let mut body = Part::default();
                body.add(&c.loop_cond, scope, roots);
                body.add(&c.loop_step, scope, roots);
                scope.truncate(scope.len() - 2);
                match iterations {
                    // A literal count around no other loop is a constant,
                    // the same number folded here (saturating sums of
                    // non-negative terms do not depend on their order):
                    // one loop fewer to walk on every evaluation, as for the
                    // one-element list bindings of the twins.
                    Iterations::Literal(n) if body.loops.is_empty() => {
                        self.constant = self
                            .constant
                            .saturating_add(n.saturating_mul(body.constant));
                    }
                    iterations => self.loops.push(Loop { iterations, body }),
                }
            }
        }
    }
}

/// The index of `root` in `roots`, added if it is not there yet.
fn index_of(roots: &mut Vec<String>, root: &str) -> usize {
    match roots.iter().position(|r| r == root) {
        Some(i) => i,
        None => {
            roots.push(root.to_owned());
            roots.len() - 1
        }
    }
}

/// The comprehension variables in scope, innermost last, with the variables
/// whose lists each ranges over.
type Scope<'e> = Vec<(&'e str, Vec<String>)>;

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

/// The variables whose longest list bounds the lists `expr` is built from:
/// the variable a selection, index or method call starts from (a policy
/// variable `variables.<name>` by itself), those of an operator's operands
/// or a literal's elements; none for a scalar literal. `""` stands for
/// anything else (all inputs).
fn roots(expr: &IdedExpr, scope: &Scope<'_>) -> Vec<String> {
    let all = |items: &mut dyn Iterator<Item = &IdedExpr>| {
        let mut names: Vec<String> = items.flat_map(|e| roots(e, scope)).collect();
        names.sort();
        names.dedup();
        names
    };
    match &expr.expr {
        Expr::Ident(name) => scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or_else(|| vec![name.clone()], |(_, r)| r.clone()),
        Expr::Literal(_) => Vec::new(),
        Expr::Select(s) if matches!(&s.operand.expr, Expr::Ident(v) if v == "variables") => {
            vec![format!("variables.{}", s.field)]
        }
        Expr::Select(s) => roots(&s.operand, scope),
        Expr::Call(c) => match &c.target {
            Some(t) => roots(t, scope),
            None => all(&mut c.args.iter()),
        },
        Expr::List(l) => all(&mut l.elements.iter()),
        Expr::Map(m) => all(&mut entry_parts(&m.entries)),
        _ => vec![String::new()],
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
    fn a_bound_past_u64_is_computed_in_u128_and_saturates() {
        let nested = bound_of("object.items.all(x, object.items.all(y, x + y > 0))");
        let in_u128 = |l: u64| {
            let l = u128::from(l);
            nested
                .polynomial
                .0
                .iter()
                .rev()
                .fold(0u128, |acc, c| acc.saturating_mul(l).saturating_add(*c))
        };
        for l in [0, 3, 1 << 20, 1 << 40, u64::MAX] {
            assert_eq!(nested.at(l), in_u128(l), "at {l}");
        }
        assert!(nested.at(1 << 40) > u128::from(u64::MAX));
        assert_eq!(
            Bound::new(Polynomial(vec![1, 1, u128::MAX])).at(2),
            u128::MAX
        );
    }

    #[test]
    fn the_bound_prepared_at_compile_time_is_the_polynomials_value() {
        // what every evaluation is charged: the prepared `u64` form must give
        // the saturating polynomial's value exactly, constants, overflow and
        // coefficients past `u64` included
        let mut bounds: Vec<Bound> = [
            "true",
            "object.metadata.name == 'x' && object.spec.nodeName != ''",
            "object.items.all(x, x > 0)",
            "object.items.all(x, object.items.all(y, object.items.exists(z, x + y > z)))",
            "[1, 2, 3].all(x, x > 0)",
            "lists.range(5).all(x, object.items.all(y, y > x))",
        ]
        .iter()
        .map(|src| bound_of(src))
        .collect();
        bounds.push(Bound::new(Polynomial(vec![7])));
        bounds.push(Bound::new(Polynomial(vec![])));
        bounds.push(Bound::new(Polynomial(vec![3, u128::from(u64::MAX), 2])));
        bounds.push(Bound::new(Polynomial(vec![1, 1, u128::MAX])));
        bounds.push(Bound::new(Polynomial(vec![u128::from(u64::MAX) + 1])));
        for b in &bounds {
            for l in [0, 1, 2, 10, 1000, 1 << 21, 1 << 32, u64::MAX - 1, u64::MAX] {
                assert_eq!(b.at(l), b.polynomial.at(l), "{b:?} at {l}");
            }
        }
        assert_eq!(bounds[0].narrow.as_deref(), Some(&[1][..]));
        assert!(bounds[bounds.len() - 1].narrow.is_none());
    }

    #[test]
    fn roots_are_measured_by_input_or_by_the_variables_position() {
        let variables = ["a".to_owned(), "terms".to_owned()];
        assert_eq!(Measure::of("object", &variables), Measure::Object);
        assert_eq!(Measure::of("request", &variables), Measure::Object);
        assert_eq!(Measure::of("pools", &variables), Measure::Pools);
        assert_eq!(
            Measure::of("namespaceObject", &variables),
            Measure::NamespaceObject
        );
        assert_eq!(Measure::of("params", &variables), Measure::Params);
        assert_eq!(
            Measure::of("variables.terms", &variables),
            Measure::Variable(1)
        );
        assert_eq!(Measure::of("variables.other", &variables), Measure::All);
        assert_eq!(Measure::of("", &variables), Measure::All);
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
        let refined = Refined::of(program.expression());
        let at = |pools| refined.at(&|i| sizes(pools)(&refined.roots()[i]));
        let none = at(0);
        let some = at(3);
        assert!(none < 50, "no pools, no iterations: {none}");
        assert!(none < some && some < coarse, "{none} < {some} < {coarse}");
    }

    #[test]
    fn the_refined_bound_with_one_size_everywhere_is_the_coarse_bound() {
        for src in [
            "object.items.all(x, x > 0)",
            "pools.exists(p, p.taints.all(t, object.spec.tolerations.exists(x, x == t)))",
            "variables.labels.all(k, k in params.keys && [k].exists(y, y == k))",
            "object.a.map(x, x.b.filter(y, y > 1)).exists(z, size(z) > 0)",
            // literal loops folded at load, nested and around a sized one
            "object.a.all(x, [x.k in object.m ? [object.m[x.k]] : []].exists(m, [x.v].exists(v, size(m) > 0 && m[0] == v)))",
            "lists.range(3).all(i, [i].exists(j, object.a.all(x, [x].exists(y, y != j))))",
            "[1, 2, 3].all(x, [x, x].exists(y, y > 0))",
        ] {
            let mut env = cel::Env::stdlib();
            env.add_extension(cel::extensions::lists).unwrap();
            let program = env.compile(src).unwrap();
            let refined = Refined::of(program.expression());
            // past `u64` the refined bound is computed in `u128`, as the coarse one
            for l in [0, 1, 7, 1000, 1 << 40, u64::MAX] {
                assert_eq!(
                    refined.at(&|_| u128::from(l)),
                    bound(program.expression()).at(l),
                    "{src} at {l}"
                );
            }
        }
    }

    #[test]
    fn loops_of_a_literal_count_around_no_loop_are_folded_at_load() {
        let mut env = cel::Env::stdlib();
        env.add_extension(cel::extensions::lists).unwrap();
        let tree = |src: &str| Refined::of(env.compile(src).unwrap().expression()).tree;
        assert!(
            tree("[1, 2, 3].all(x, [x, x].exists(y, y > 0))")
                .loops
                .is_empty()
        );
        // the sized loop stays, the one-element binding inside it is folded
        let sized = tree("object.a.all(x, [x.b].exists(v, v > 0))");
        assert_eq!(sized.loops.len(), 1);
        assert!(sized.loops[0].body.loops.is_empty());
        // a literal loop around a sized one is kept
        assert_eq!(
            tree("lists.range(2).all(i, object.a.all(x, x > i))")
                .loops
                .len(),
            1
        );
    }

    #[test]
    fn literal_ranges_are_bounded_at_compile_time() {
        let b = bound_of("lists.range(1000).all(x, lists.range(1000).all(y, x + y >= 0))");
        assert!(b.floor() > PER_EXPRESSION_BUDGET, "{b:?}");
        assert!(bound_of("[1, 2, 3].all(x, x > 0)").floor() < 100);
    }
}
