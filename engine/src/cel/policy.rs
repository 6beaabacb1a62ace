//! CEL policy files (`kind: CelPolicy`, see docs/cel-policies.md): parsing,
//! compiling every expression once at load, and evaluating them against a
//! review with the request's shared CEL inputs.

use std::path::Path;
use std::sync::Arc;

use cel::common::types::{CelMap, CelMapKey};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, IdedExpr, Value as CelValue};
use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::model::{Decision, Violation};
use tollgate_sdk::placement::POD_CONTROLLERS;

use super::cost::{self, Bound, Refined};
use super::mutation::{self, PatchType};
use super::shared::Computed;
use super::slots::{self, ROOTS, Slot};
use super::value::{
    CelVal, descend, descend_dotted, longest_in, map_of, resolve_qualified, split_dot, to_cel,
    to_shared,
};
use super::{Inputs, Outcome};
use crate::cluster::ClusterView;
use crate::decision::{FailurePolicy, Fault, FaultKind};
use crate::review::Review;

/// Why a CEL policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The document does not have the CelPolicy shape.
    #[error("{file}: not a valid CelPolicy: {message}")]
    Shape {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// An expression does not compile.
    #[error("{file}: policy {policy}: {field}: {message}\n  expression: {expression}")]
    Compile {
        /// The file.
        file: String,
        /// The policy name.
        policy: String,
        /// Where the expression is (`spec.validations[0].expression`).
        field: String,
        /// The expression.
        expression: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An expression's cost is over the budget for any input.
    #[error(
        "{file}: policy {policy}: {field}: cost bound {bound} is over the budget of {budget}\n  expression: {expression}"
    )]
    OverBudget {
        /// The file.
        file: String,
        /// The policy name.
        policy: String,
        /// Where the expression is.
        field: String,
        /// The expression.
        expression: String,
        /// Its bound.
        bound: u128,
        /// The budget.
        budget: u128,
    },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    description: String,
    kinds: Option<Vec<String>>,
    #[serde(default)]
    failure_policy: FailurePolicy,
    #[serde(default)]
    settings: serde_json::Map<String, Value>,
    #[serde(default)]
    match_conditions: Vec<NamedExpression>,
    #[serde(default)]
    variables: Vec<NamedExpression>,
    #[serde(default)]
    validations: Vec<ValidationSpec>,
    #[serde(default)]
    audit_annotations: Vec<AuditAnnotationSpec>,
    #[serde(default)]
    mutations: Vec<MutationSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuditAnnotationSpec {
    key: String,
    value_expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MutationSpec {
    patch_type: PatchType,
    json_patch: Option<ExpressionSpec>,
    apply_configuration: Option<ExpressionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpressionSpec {
    expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedExpression {
    name: String,
    expression: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ValidationSpec {
    rule: Option<String>,
    expression: String,
    message: Option<String>,
    message_expression: Option<String>,
}

/// One compiled expression.
#[derive(Debug)]
struct Compiled {
    source: String,
    expr: IdedExpr,
    bound: Bound,
    /// The tighter bound used when `bound` is over budget.
    refined: Refined,
    /// Where each of `refined`'s roots is measured.
    measures: Vec<cost::Measure>,
}

#[derive(Debug)]
struct Validation {
    rule: String,
    expression: Compiled,
    message: Option<String>,
    message_expression: Option<Compiled>,
}

/// A loaded CEL policy.
#[derive(Clone)]
pub struct CelPolicy {
    inner: Arc<Loaded>,
    params: Arc<CelVal>,
    params_longest: u64,
    settings: Value,
}

struct Loaded {
    name: String,
    description: String,
    kinds: Vec<String>,
    failure_policy: FailurePolicy,
    default_settings: serde_json::Map<String, Value>,
    env: Arc<Env>,
    match_conditions: Vec<(String, Compiled)>,
    /// Per match condition, the key under which its result is shared with
    /// the other policies of a request, as for variables.
    shared_match_conditions: Vec<Option<super::shared::Key>>,
    variables: Vec<(String, Compiled)>,
    /// Per variable, the key under which its value is shared with the other
    /// policies of a request ([`super::shared`]), if it can be.
    shared_variables: Vec<Option<super::shared::Key>>,
    validations: Vec<Validation>,
    audit_annotations: Vec<(String, Compiled)>,
    mutations: Vec<(PatchType, Compiled)>,
    uses_pools: bool,
}

/// What a caller binds besides the review: a native policy's params, and
/// whether `object` is the pod (template) of a pod controller (Kyverno autogen).
#[derive(Default, Clone, Copy)]
pub struct Bindings<'a> {
    /// `params`, instead of the policy's settings.
    pub params: Option<&'a (dyn Val + 'static)>,
    /// Bind `object` to the pod or pod template.
    pub object_is_pod: bool,
}

impl std::fmt::Debug for CelPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelPolicy")
            .field("name", &self.inner.name)
            .finish()
    }
}

/// The CEL environment of every CEL policy: the standard library with
/// optional syntax, the crate's strings, lists and math extensions, and the
/// Kubernetes libraries ([`super::library`]).
pub fn environment() -> Env {
    let mut env = Env::stdlib();
    for ext in [
        cel::extensions::strings,
        cel::extensions::lists,
        cel::extensions::math,
        super::library::register,
    ] {
        // The libraries declare distinct names; a conflict is a programming error.
        env.add_extension(ext)
            .expect("the CEL libraries do not conflict with the standard library");
    }
    env
}

impl CelPolicy {
    /// Whether a parsed document is a CelPolicy.
    pub fn is_cel_policy(doc: &Value) -> bool {
        doc.get("kind").and_then(Value::as_str) == Some("CelPolicy")
    }

    /// Parse and compile a CelPolicy document read from `file`.
    ///
    /// # Errors
    /// A shape error, or the first expression that does not compile or is over budget.
    pub fn compile(file: &Path, doc: Value) -> Result<Self, Error> {
        let file_name = file.display().to_string();
        let parsed: File = serde_json::from_value(doc).map_err(|e| Error::Shape {
            file: file_name.clone(),
            message: e.to_string(),
        })?;
        if parsed.kind != "CelPolicy" || !parsed.api_version.starts_with("tollgate.dev/") {
            return Err(Error::Shape {
                file: file_name,
                message: format!(
                    "expected apiVersion tollgate.dev/v1alpha1 and kind CelPolicy, found {} {}",
                    parsed.api_version, parsed.kind
                ),
            });
        }
        let name = parsed.metadata.name;
        let spec = parsed.spec;
        let mutation_sources: Vec<&str> = spec
            .mutations
            .iter()
            .flat_map(|m| [&m.json_patch, &m.apply_configuration])
            .flatten()
            .map(|e| e.expression.as_str())
            .collect();
        // Mutations build `Object{...}` and `JSONPatch{...}` values, whose
        // struct types are registered on an environment of the policy's own.
        let env = if mutation_sources.is_empty() {
            super::expression::shared_environment()
        } else {
            let mut env = environment();
            mutation::register_struct_types(&mut env, &mutation_sources);
            Arc::new(env)
        };
        let uses_pools = std::cell::Cell::new(false);
        let variable_names: Vec<String> = spec.variables.iter().map(|v| v.name.clone()).collect();
        let compile = |field: String, source: &str| -> Result<Compiled, Error> {
            let mut expr = env.parser().parse(source).map_err(|e| Error::Compile {
                file: file_name.clone(),
                policy: name.clone(),
                field: field.clone(),
                expression: source.to_string(),
                message: e.to_string().replace("<input>", "expression"),
            })?;
            super::library::check(&expr).map_err(|message| Error::Compile {
                file: file_name.clone(),
                policy: name.clone(),
                field: field.clone(),
                expression: source.to_string(),
                message,
            })?;
            uses_pools.set(uses_pools.get() || expr.references().has_variable("pools"));
            super::optimize::optimize(&mut expr);
            let bound = cost::bound(&expr);
            if bound.floor() > cost::PER_EXPRESSION_BUDGET {
                return Err(Error::OverBudget {
                    file: file_name.clone(),
                    policy: name.clone(),
                    field,
                    expression: source.to_string(),
                    bound: bound.floor(),
                    budget: cost::PER_EXPRESSION_BUDGET,
                });
            }
            let refined = Refined::of(&expr);
            let measures = refined
                .roots()
                .iter()
                .map(|root| cost::Measure::of(root, &variable_names))
                .collect();
            // Last: the bound and the references above read the plain names
            // and know no fused call.
            super::optimize::fuse_present_or(&mut expr);
            super::optimize::anchor_roots(&mut expr, ROOTS);
            Ok(Compiled {
                source: source.to_string(),
                expr,
                bound,
                refined,
                measures,
            })
        };
        let named =
            |kind: &str, list: Vec<NamedExpression>| -> Result<Vec<(String, Compiled)>, Error> {
                list.into_iter()
                    .enumerate()
                    .map(|(i, n)| {
                        Ok((
                            n.name,
                            compile(format!("spec.{kind}[{i}].expression"), &n.expression)?,
                        ))
                    })
                    .collect()
            };
        let mut match_conditions = named("matchConditions", spec.match_conditions)?;
        // Match conditions see no policy variables: they are keyed without
        // definitions (a `variables.<name>` they read is undefined).
        let shared_match_conditions = super::shared::keys(
            &env,
            &match_conditions
                .iter()
                .map(|(_, c)| ("", &c.expr, c.source.as_str()))
                .collect::<Vec<_>>(),
        );
        let mut variables = named("variables", spec.variables)?;
        let shared_variables = super::shared::keys(
            &env,
            &variables
                .iter()
                .map(|(name, c)| (name.as_str(), &c.expr, c.source.as_str()))
                .collect::<Vec<_>>(),
        );
        let mut validations = spec
            .validations
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                Ok(Validation {
                    rule: v.rule.unwrap_or_else(|| format!("{name}-{i}")),
                    expression: compile(
                        format!("spec.validations[{i}].expression"),
                        &v.expression,
                    )?,
                    message: v.message,
                    message_expression: v
                        .message_expression
                        .map(|m| compile(format!("spec.validations[{i}].messageExpression"), &m))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut audit_annotations = spec
            .audit_annotations
            .into_iter()
            .enumerate()
            .map(|(i, a)| {
                let field = format!("spec.auditAnnotations[{i}].valueExpression");
                Ok((a.key, compile(field, &a.value_expression)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut mutations = spec
            .mutations
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let (field, body) = match m.patch_type {
                    PatchType::JsonPatch => ("jsonPatch", m.json_patch),
                    PatchType::ApplyConfiguration => ("applyConfiguration", m.apply_configuration),
                };
                let field = format!("spec.mutations[{i}].{field}.expression");
                let Some(body) = body else {
                    return Err(Error::Shape {
                        file: file_name.clone(),
                        message: format!("policy {name}: {field} is required"),
                    });
                };
                Ok((m.patch_type, compile(field, &body.expression)?))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // Last, once the sharing keys are taken from the names: the roots
        // and the computed variables each expression reads become slots.
        let names: Vec<&str> = variable_names.iter().map(String::as_str).collect();
        for (_, condition) in &mut match_conditions {
            slots::resolve(&mut condition.expr, &[]);
        }
        for (i, (_, variable)) in variables.iter_mut().enumerate() {
            slots::resolve(&mut variable.expr, &names[..i]);
        }
        let after_variables = validations
            .iter_mut()
            .flat_map(|v| std::iter::once(&mut v.expression).chain(&mut v.message_expression))
            .chain(audit_annotations.iter_mut().map(|(_, c)| c))
            .chain(mutations.iter_mut().map(|(_, c)| c));
        for compiled in after_variables {
            slots::resolve(&mut compiled.expr, &names);
        }
        let kinds = spec.kinds.unwrap_or_else(|| {
            std::iter::once("Pod")
                .chain(POD_CONTROLLERS.iter().map(|(k, _)| *k))
                .map(str::to_string)
                .collect()
        });
        let loaded = Loaded {
            name,
            description: spec.description,
            kinds,
            failure_policy: spec.failure_policy,
            default_settings: spec.settings,
            env,
            match_conditions,
            shared_match_conditions,
            variables,
            shared_variables,
            validations,
            audit_annotations,
            mutations,
            uses_pools: uses_pools.get(),
        };
        let mut policy = CelPolicy {
            inner: Arc::new(loaded),
            params: Arc::new(map_of(vec![])),
            params_longest: 0,
            settings: Value::Null,
        };
        policy = policy.with_settings(&Value::Null);
        Ok(policy)
    }

    /// The same policy with operator settings merged over its defaults.
    pub fn with_settings(&self, settings: &Value) -> Self {
        let mut merged = self.inner.default_settings.clone();
        if let Value::Object(map) = settings {
            merged.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let merged = Value::Object(merged);
        let mut longest = 0;
        let params = Arc::new(to_cel(&merged, &mut longest));
        CelPolicy {
            inner: self.inner.clone(),
            params,
            params_longest: longest,
            settings: merged,
        }
    }

    /// The keys of the variables shared with other policies.
    #[cfg(test)]
    pub(crate) fn shared_variable_keys(&self) -> &[Option<super::shared::Key>] {
        &self.inner.shared_variables
    }

    /// The keys of the match conditions shared with other policies.
    #[cfg(test)]
    pub(crate) fn shared_match_condition_keys(&self) -> &[Option<super::shared::Key>] {
        &self.inner.shared_match_conditions
    }

    /// The policy name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The description.
    pub fn description(&self) -> &str {
        &self.inner.description
    }

    /// The kinds judged.
    pub fn kinds(&self) -> &[String] {
        &self.inner.kinds
    }

    /// The rule ids the policy can report.
    pub fn rules(&self) -> impl Iterator<Item = &str> {
        self.inner.validations.iter().map(|v| v.rule.as_str())
    }

    /// Whether the policy has mutations.
    pub fn mutates(&self) -> bool {
        !self.inner.mutations.is_empty()
    }

    /// The failure policy declared in the file.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.failure_policy
    }

    /// The effective settings (defaults merged with the operator's).
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    /// Evaluate against a review.
    ///
    /// # Errors
    /// A fault when an expression errors, returns a non-boolean, or is over budget.
    pub fn evaluate(&self, review: &Review, cluster: &dyn ClusterView) -> Result<Outcome, Fault> {
        self.evaluate_with(review, cluster, Bindings::default())
    }

    /// Evaluate against a review with `params` (and `object`) bound by the caller.
    ///
    /// # Errors
    /// As [`CelPolicy::evaluate`], and when a mutation's result is malformed.
    pub fn evaluate_with(
        &self,
        review: &Review,
        cluster: &dyn ClusterView,
        bindings: Bindings<'_>,
    ) -> Result<Outcome, Fault> {
        let inputs = review.cel_cache().get_or_init(|| Inputs::new(review));
        let values = inputs.cluster(&review.records().namespace, cluster);
        let used_preset_pools = self.inner.uses_pools && values.preset_pools;
        let longest = cost::Sizes {
            all: values.longest,
            object: inputs.longest,
            pools: values.pools_longest,
            namespace_object: values.namespace_longest,
            // Params bound by a native policy's binding are measured here.
            params: bindings.params.map_or(self.params_longest, longest_in),
        };
        let mut vars = Vars {
            inputs,
            params: bindings
                .params
                .unwrap_or_else(|| self.params.as_ref().as_ref()),
            object_is_pod: bindings.object_is_pod,
            pools: values.pools.as_ref(),
            namespace_object: values.namespace_object.as_ref(),
            variables: Vec::with_capacity(self.inner.variables.len()),
            variables_map: std::sync::OnceLock::new(),
        };
        // As in the API server, match conditions spend from their own budget.
        let mut matching = cost::Spent::new(cost::MATCH_CONDITIONS_BUDGET, "match conditions");
        let mut spent = cost::Spent::new(cost::PER_POLICY_BUDGET, "policy evaluation");
        let keys = slots(&self.inner.shared_match_conditions, bindings.object_is_pod);
        for ((name, condition), key) in self.inner.match_conditions.iter().zip(keys) {
            let what = || format!("matchCondition {name}");
            let value = self.shared_or_run(condition, key, &vars, &longest, &mut matching, what)?;
            let value = CelValue::try_from(value.value()).map_err(|e| {
                self.fault(
                    FaultKind::Expression,
                    "expression",
                    condition,
                    &e.to_string(),
                )
            })?;
            match value {
                CelValue::Bool(true) => {}
                CelValue::Bool(false) => {
                    return Ok(Outcome {
                        decision: Decision::allow(),
                        used_preset_pools: false,
                        skipped: true,
                        annotations: Vec::new(),
                    });
                }
                other => {
                    return Err(self.not_bool(
                        &format!("matchCondition {name}"),
                        condition,
                        &other,
                    ));
                }
            }
        }
        let keys = slots(&self.inner.shared_variables, bindings.object_is_pod);
        for ((name, variable), key) in self.inner.variables.iter().zip(keys) {
            let what = || format!("variable {name}");
            let boxed = self.shared_or_run(variable, key, &vars, &longest, &mut spent, what)?;
            vars.add_variable(name, boxed);
        }
        let mut violations = Vec::new();
        for validation in &self.inner.validations {
            match self.run(&validation.expression, &vars, &longest, &mut spent)? {
                CelValue::Bool(true) => {}
                CelValue::Bool(false) => {
                    let static_message = || {
                        validation.message.clone().unwrap_or_else(|| {
                            format!("failed expression: {}", validation.expression.source)
                        })
                    };
                    // As in Kubernetes, a messageExpression that fails or is not
                    // a string falls back to the static message.
                    let message = match &validation.message_expression {
                        Some(m) => match self.run(m, &vars, &longest, &mut spent) {
                            Ok(CelValue::String(s)) if !s.trim().is_empty() => s.to_string(),
                            Ok(_) | Err(_) => {
                                tracing::debug!(policy = %self.inner.name, expression = %m.source, "messageExpression failed; using message");
                                static_message()
                            }
                        },
                        None => static_message(),
                    };
                    violations.push(Violation::new(validation.rule.clone(), message));
                }
                other => {
                    return Err(self.not_bool(
                        &format!("rule {}", validation.rule),
                        &validation.expression,
                        &other,
                    ));
                }
            }
        }
        let mut annotations = Vec::new();
        for (key, expression) in &self.inner.audit_annotations {
            match self.run(expression, &vars, &longest, &mut spent)? {
                CelValue::String(s) => annotations.push((key.clone(), s.to_string())),
                CelValue::Null => {}
                other => {
                    return Err(self.fault(
                        FaultKind::Expression,
                        &format!("auditAnnotation {key}"),
                        expression,
                        &format!("expected a string or null, got {other:?}"),
                    ));
                }
            }
        }
        let mut decision = Decision::from_violations(violations);
        if !self.inner.mutations.is_empty() && !review.is_delete() {
            let mut object = review.object().clone();
            let mut ops = Vec::new();
            for (kind, expression) in &self.inner.mutations {
                let value = self.run(expression, &vars, &longest, &mut spent)?;
                let patch = mutation::to_patch(*kind, &value, &mut object)
                    .map_err(|e| self.fault(FaultKind::BadOutput, "mutation", expression, &e))?;
                ops.extend(patch);
            }
            if !ops.is_empty() {
                decision.patch = serde_json::to_string(&ops).ok();
            }
        }
        Ok(Outcome {
            decision,
            used_preset_pools,
            skipped: false,
            annotations,
        })
    }

    /// The value of `compiled` (a variable or a match condition, `what` in
    /// errors): the one an earlier policy of this request computed from the
    /// same expression and the same inputs (`key`, [`super::shared`]), its
    /// cost charged all the same, else evaluated and, with a key, kept for
    /// the later policies.
    fn shared_or_run(
        &self,
        compiled: &Compiled,
        key: Option<super::shared::Slot>,
        vars: &Vars<'_>,
        longest: &cost::Sizes,
        spent: &mut cost::Spent,
        what: impl Fn() -> String,
    ) -> Result<Arc<Computed>, Fault> {
        if let Some(value) = key.and_then(|k| vars.inputs.shared_variables.get(k)) {
            self.charge(compiled, vars, longest, spent)?;
            return Ok(value);
        }
        // One copy of the result, kept for the later expressions.
        let boxed = self.run_with(compiled, vars, longest, spent, |v| match to_shared(v) {
            Some(copy) => Ok(copy),
            None => CelValue::try_from(v)
                .and_then(CelVal::try_from)
                .map_err(|e| format!("{}: {e}", what())),
        })?;
        let computed = Computed::new(boxed);
        if let Some(key) = key {
            vars.inputs.shared_variables.insert(key, &computed);
        }
        Ok(computed)
    }

    fn run(
        &self,
        compiled: &Compiled,
        vars: &Vars<'_>,
        longest: &cost::Sizes,
        spent: &mut cost::Spent,
    ) -> Result<CelValue, Fault> {
        self.run_with(compiled, vars, longest, spent, |v| {
            CelValue::try_from(v).map_err(|e| e.to_string())
        })
    }

    /// Charge the expression's cost bound, evaluate it, and hand the result
    /// to `inspect`.
    fn run_with<R>(
        &self,
        compiled: &Compiled,
        vars: &Vars<'_>,
        longest: &cost::Sizes,
        spent: &mut cost::Spent,
        inspect: impl FnOnce(&dyn Val) -> Result<R, String>,
    ) -> Result<R, Fault> {
        self.charge(compiled, vars, longest, spent)?;
        let mut ctx = Context::with_env(self.inner.env.clone());
        ctx.set_variable_resolver(vars);
        let failed = |e: String| self.fault(FaultKind::Expression, "expression", compiled, &e);
        let value =
            CelValue::resolve_val(&compiled.expr, &ctx).map_err(|e| failed(e.to_string()))?;
        inspect(value.as_ref()).map_err(failed)
    }

    /// Charge the expression's cost bound to `spent`.
    fn charge(
        &self,
        compiled: &Compiled,
        vars: &Vars<'_>,
        longest: &cost::Sizes,
        spent: &mut cost::Spent,
    ) -> Result<(), Fault> {
        let mut bound = compiled.bound.at(longest.all);
        if bound > cost::PER_EXPRESSION_BUDGET {
            // A variable's size is measured only here, when it is needed;
            // the variables computed so far are the first of the policy's.
            let size = |i: usize| match compiled.measures[i] {
                cost::Measure::Variable(v) => vars
                    .variables
                    .get(v)
                    .map_or(longest.all.into(), |v| u128::from(v.value.longest())),
                measure => longest.of(measure),
            };
            bound = compiled.refined.at(&size);
        }
        spent
            .charge(bound, longest.all)
            .map_err(|detail| self.fault(FaultKind::Budget, "expression", compiled, &detail))
    }

    fn not_bool(&self, what: &str, compiled: &Compiled, got: &CelValue) -> Fault {
        self.fault(
            FaultKind::Expression,
            what,
            compiled,
            &format!("expected a bool (or string), got {got:?}"),
        )
    }

    fn fault(&self, kind: FaultKind, what: &str, compiled: &Compiled, detail: &str) -> Fault {
        Fault::new(
            kind,
            format!(
                "policy {}: {what} `{}`: {detail}",
                self.inner.name, compiled.source
            ),
        )
    }
}

/// Where the values of expressions with shared `keys` ([`super::shared`])
/// are kept when `object` is the pod (or not).
fn slots(
    keys: &[Option<super::shared::Key>],
    object_is_pod: bool,
) -> impl Iterator<Item = Option<super::shared::Slot>> + '_ {
    keys.iter().map(move |k| k.map(|k| k.at(object_is_pod)))
}

/// The variables an expression sees, borrowed from the shared inputs.
struct Vars<'a> {
    inputs: &'a Inputs,
    params: &'a (dyn Val + 'static),
    object_is_pod: bool,
    pools: &'a (dyn Val + 'static),
    namespace_object: &'a (dyn Val + 'static),
    /// The policy's variables computed so far, in order: a policy has a few,
    /// and comparing their names costs less than hashing.
    variables: Vec<Variable<'a>>,
    /// `variables` as a CEL map, built when an expression refers to the
    /// map itself rather than to one variable (`has(variables.x)`).
    variables_map: std::sync::OnceLock<CelMap<'static>>,
}

/// One computed policy variable.
struct Variable<'a> {
    name: &'a str,
    /// The value, and the longest list or map in it for the refined cost
    /// bound; shared with the request's other policies when they declare it.
    value: Arc<Computed>,
}

impl<'a> Vars<'a> {
    /// Keep the value of the variable `name`.
    fn add_variable(&mut self, name: &'a str, value: Arc<Computed>) {
        self.variables.push(Variable { name, value });
        self.variables_map = std::sync::OnceLock::new();
    }

    /// The value of `variables.<name>.<fields>` (`fields` dotted, or none).
    fn variable(&self, name: &str, fields: Option<&str>) -> Option<&(dyn Val + 'static)> {
        let value = self
            .variables
            .iter()
            .find(|v| v.name == name)?
            .value
            .value();
        match fields {
            Some(fields) => descend_dotted(value, fields),
            None => Some(value),
        }
    }

    /// `variables` as a map (shared values are copied by reference).
    fn variables_map(&self) -> &CelMap<'static> {
        self.variables_map.get_or_init(|| {
            let entries = self
                .variables
                .iter()
                .map(|v| {
                    (
                        CelMapKey::from(v.name.to_owned()),
                        v.value.value.clone_as_boxed(),
                    )
                })
                .collect::<std::collections::HashMap<_, _>>();
            CelMap::from(entries)
        })
    }
}

impl VariableResolver for Vars<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        // `variables.<name>...`, the most frequent, without the map; when the
        // variable is missing the interpreter selects it from the map itself
        // and reports the error.
        if let Some(rest) = name.strip_prefix("variables.") {
            let (variable, fields) = split_dot(rest);
            return self.variable(variable, fields).map(CowVal::Borrowed);
        }
        resolve_qualified(name, |variable| self.root(variable)).map(CowVal::Borrowed)
    }

    /// As [`Vars::resolve`] on the joined name, from its segments: the
    /// interpreter asks this for every qualified name of an expression.
    fn resolve_segments<'b>(&'b self, segments: &[&str]) -> Option<CowVal<'b, 'b>> {
        let value = match segments {
            ["variables", variable, fields @ ..] => {
                descend(self.variable(variable, None)?, fields.iter().copied())
            }
            [root, fields @ ..] => descend(self.root(root)?, fields.iter().copied()),
            [] => None,
        };
        value.map(CowVal::Borrowed)
    }

    /// A root input or a computed variable by its slot ([`super::slots`]),
    /// with `fields` selected through its maps: what the compiled
    /// expressions read instead of names.
    fn resolve_slot<'b>(&'b self, slot: usize, fields: &[String]) -> Option<CowVal<'b, 'b>> {
        let value = match Slot::of(slot) {
            Slot::Root(i) => self.root_at(i)?,
            Slot::Variable(j) => self.variables.get(j)?.value.value(),
        };
        descend(value, fields.iter().map(String::as_str)).map(CowVal::Borrowed)
    }
}

impl Vars<'_> {
    /// The input a root name (one of [`ROOTS`]) names.
    fn root(&self, name: &str) -> Option<&(dyn Val + 'static)> {
        self.root_at(ROOTS.iter().position(|r| *r == name)?)
    }

    /// The input `ROOTS[index]` names.
    fn root_at(&self, index: usize) -> Option<&(dyn Val + 'static)> {
        use slots::root;
        Some(match index {
            root::OBJECT if self.object_is_pod => self.inputs.pod(),
            root::OBJECT => self.inputs.object.as_ref(),
            root::OLD_OBJECT => self.inputs.old_object.as_ref(),
            root::REQUEST => self.inputs.request.as_ref(),
            root::POD => self.inputs.pod(),
            root::PARAMS => self.params,
            root::POOLS => self.pools,
            root::NAMESPACE_OBJECT => self.namespace_object,
            root::VARIABLES => self.variables_map(),
            _ => return None,
        })
    }
}
