//! One CEL expression compiled in the policies' environment and evaluated
//! against named JSON values, outside any policy: what `tollgate cel eval`,
//! the conformance runner and the benchmarks use. Costs are checked as for
//! policy expressions ([`super::cost`]), and comprehension loop variables
//! are resolved to their scopes when the expression is compiled, as in a
//! policy ([`super::slots::resolve_locals`]).

use std::sync::{Arc, LazyLock};

use cel::common::types::{CelList, CelMap, CelOptional, CelType};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, IdedExpr, Value as CelValue};
use serde_json::Value;

use super::cost::{self, Bound};
use super::value::{CelVal, resolve_qualified, to_cel};

/// Why an expression could not be compiled or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum ExpressionError {
    /// The expression does not compile.
    #[error("compile error: {0}")]
    Compile(String),
    /// Its cost bound is over the per-expression budget.
    #[error("cost bound {bound} is over the budget of {budget} per expression")]
    Budget {
        /// The bound for these inputs.
        bound: u128,
        /// The budget.
        budget: u128,
    },
    /// The evaluation failed.
    #[error("evaluation error: {0}")]
    Evaluation(String),
}

/// The environment every CEL expression is compiled and run in, built once.
pub fn shared_environment() -> Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(super::environment()));
    ENV.clone()
}

/// Which compile-time rules an expression is held to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// The API server's (what every policy is compiled with): list and map
    /// literals must be homogeneous and literal regexes must compile.
    #[default]
    Kubernetes,
    /// Plain CEL, as the CEL specification and cel-go's conformance
    /// environment define it: literals may mix types, literal regexes are
    /// checked when they run, and field names may be quoted in backticks
    /// (`` x.`a.b` ``, [`super::escaped`]), which Kubernetes does not enable.
    /// The conformance runner uses it for the cel-spec suite.
    Plain,
}

/// A compiled expression.
#[derive(Debug)]
pub struct Expression {
    expr: IdedExpr,
    bound: Bound,
}

/// Named values an expression is evaluated against.
#[derive(Debug, Default)]
pub struct Bindings {
    values: Vec<(String, CelVal)>,
    longest: u64,
}

impl Bindings {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bind `name` to a JSON value (integers stay `int`).
    pub fn insert_json(&mut self, name: &str, value: &Value) {
        let converted = to_cel(value, &mut self.longest);
        self.insert(name, converted);
    }

    /// Bind `name` to a CEL value.
    pub fn insert(&mut self, name: &str, value: CelVal) {
        self.values.retain(|(n, _)| n != name);
        self.values.push((name.to_owned(), value));
    }
}

impl VariableResolver for Bindings {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        resolve_qualified(name, |variable| {
            self.values
                .iter()
                .find(|(n, _)| n == variable)
                .map(|(_, v)| v.as_ref())
        })
        .map(CowVal::Borrowed)
    }
}

impl Expression {
    /// Compile `source` in the Kubernetes dialect: parse it, compile its
    /// literal regexes, and check that its cost bound is within budget for
    /// empty inputs.
    ///
    /// # Errors
    /// The parse error, an invalid literal regex, or a bound over budget.
    pub fn compile(source: &str) -> Result<Self, ExpressionError> {
        Self::compile_in(Dialect::Kubernetes, source)
    }

    /// Compile `source` in `dialect`.
    ///
    /// # Errors
    /// The parse error, a violated rule of the dialect, or a bound over budget.
    pub fn compile_in(dialect: Dialect, source: &str) -> Result<Self, ExpressionError> {
        let compile_error =
            |e: String| ExpressionError::Compile(e.replace("<input>", "expression"));
        match dialect {
            Dialect::Kubernetes => {
                let expression = Self::compile_unchecked(source)?;
                super::library::check(&expression.expr).map_err(ExpressionError::Compile)?;
                Ok(expression)
            }
            Dialect::Plain => {
                let (rewritten, names) = super::escaped::rewrite(source);
                let mut expr = shared_environment()
                    .parser()
                    .parse(&rewritten)
                    .map_err(|e| compile_error(e.to_string()))?;
                super::escaped::restore(&mut expr, &names).map_err(compile_error)?;
                Self::bounded(expr)
            }
        }
    }

    /// Compile `source` without the compile-time checks of
    /// [`super::library::check`] (what cel-spec calls `disable_check`); the
    /// cost bound is still checked.
    ///
    /// # Errors
    /// The parse error, or a bound over budget.
    pub fn compile_unchecked(source: &str) -> Result<Self, ExpressionError> {
        let expr = shared_environment().parser().parse(source).map_err(|e| {
            ExpressionError::Compile(e.to_string().replace("<input>", "expression"))
        })?;
        Self::bounded(expr)
    }

    /// [`Self::compile`] with the comprehensions' loop variables left as
    /// names for the interpreter to look up (no locals): what the tests
    /// compare the locals with.
    #[cfg(test)]
    pub(crate) fn compile_by_name(source: &str) -> Result<Self, ExpressionError> {
        let expr = shared_environment()
            .parser()
            .parse(source)
            .map_err(|e| ExpressionError::Compile(e.to_string()))?;
        Self::bounded_with(expr, false)
    }

    /// `expr`, optimized, with its cost bound, unless the bound is over
    /// budget for any input.
    fn bounded(expr: IdedExpr) -> Result<Self, ExpressionError> {
        Self::bounded_with(expr, true)
    }

    /// [`Self::bounded`], its loop variables written as locals
    /// ([`super::slots::resolve_locals`]) if `locals`, after the cost bound
    /// is taken from the names.
    fn bounded_with(mut expr: IdedExpr, locals: bool) -> Result<Self, ExpressionError> {
        super::optimize::optimize(&mut expr);
        let bound = cost::bound(&expr);
        if bound.floor() > cost::PER_EXPRESSION_BUDGET {
            return Err(ExpressionError::Budget {
                bound: bound.floor(),
                budget: cost::PER_EXPRESSION_BUDGET,
            });
        }
        super::optimize::fuse_present_or(&mut expr);
        if locals {
            super::slots::resolve_locals(&mut expr);
        }
        Ok(Expression { expr, bound })
    }

    /// Evaluate and hand the result to `inspect`.
    ///
    /// # Errors
    /// A cost bound over budget for these bindings, or the evaluation error.
    pub fn evaluate_with<R>(
        &self,
        bindings: &Bindings,
        inspect: impl FnOnce(&dyn Val) -> R,
    ) -> Result<R, ExpressionError> {
        let bound = self.bound.at(bindings.longest);
        if bound > cost::PER_EXPRESSION_BUDGET {
            return Err(ExpressionError::Budget {
                bound,
                budget: cost::PER_EXPRESSION_BUDGET,
            });
        }
        let mut ctx = Context::with_env(shared_environment());
        ctx.set_variable_resolver(bindings);
        let value = CelValue::resolve_val(&self.expr, &ctx)
            .map_err(|e| ExpressionError::Evaluation(e.to_string()))?;
        Ok(inspect(value.as_ref()))
    }

    /// Evaluate to JSON.
    ///
    /// # Errors
    /// As [`Expression::evaluate_with`], or a value JSON cannot represent.
    pub fn evaluate(&self, bindings: &Bindings) -> Result<Value, ExpressionError> {
        self.evaluate_with(bindings, to_json)?
            .map_err(ExpressionError::Evaluation)
    }
}

/// A CEL value as JSON: lists and maps as such, bytes in base64, timestamps
/// in RFC 3339, durations as `"<seconds>s"`, types by name, optionals as
/// their value or null, and the Kubernetes library values (IP, CIDR,
/// quantity, semver, URL, format) as their text.
///
/// # Errors
/// A value with no JSON form.
pub fn to_json(val: &dyn Val) -> Result<Value, String> {
    if let Some(list) = val.downcast_ref::<CelList>() {
        return list.inner().iter().map(|v| to_json(v.as_ref())).collect();
    }
    if let Some(map) = val.downcast_ref::<CelMap>() {
        let mut out = serde_json::Map::new();
        for (k, v) in map.inner() {
            let key = match to_json(k.inner())? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(key, to_json(v.as_ref())?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(opt) = val.downcast_ref::<CelOptional>() {
        return opt.option().map_or(Ok(Value::Null), to_json);
    }
    if let Some(t) = val.downcast_ref::<CelType>() {
        return Ok(Value::String(t.name().to_owned()));
    }
    if let Some(text) = super::library::display(val) {
        return Ok(Value::String(text));
    }
    match CelValue::try_from(val) {
        #[allow(unreachable_patterns)]
        Ok(CelValue::Duration(d)) => Ok(Value::String(format!(
            "{}s",
            d.num_nanoseconds()
                .map_or(d.num_seconds() as f64, |n| n as f64 / 1e9)
        ))),
        Ok(v) => v.json().map_err(|e| e.to_string()),
        Err(e) => Err(format!("{} has no JSON form: {e}", val.get_type().name())),
    }
}
