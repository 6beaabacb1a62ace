//! Reading native policy documents: telling the kinds apart, checking their
//! shape, pairing policies with their bindings (from the files and from the
//! cluster view), and compiling each policy's CEL once as a [`CelPolicy`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_sdk::placement::POD_CONTROLLERS;
use tollgate_sdk::selector::LabelSelector;

use super::kyverno;
use super::matching::MatchResources;
use super::params::{ParamKind, ParamRef};
use super::{Flavor, Inner, NativePolicy};
use crate::cel::CelPolicy;
use crate::cluster::{ClusterView, Snapshot, group};
use crate::decision::{FailurePolicy, Mode};

/// Why native policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A document does not have its kind's shape.
    #[error("{file}: {kind} {name}: {message}")]
    Shape {
        /// The file.
        file: String,
        /// The document's kind.
        kind: String,
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// An expression does not compile.
    #[error(transparent)]
    Cel(Box<crate::cel::Error>),
}

impl From<crate::cel::Error> for Error {
    fn from(e: crate::cel::Error) -> Self {
        Error::Cel(Box::new(e))
    }
}

/// What [`load`] produced.
#[derive(Debug, Default)]
pub struct Loaded {
    /// One policy per (policy, binding) pair, in file order.
    pub policies: Vec<NativePolicy>,
    /// Policies without bindings, bindings without policies.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Policy(Flavor),
    Binding(Flavor),
}

fn doc_kind(doc: &Value) -> Option<DocKind> {
    let api_version = doc.get("apiVersion")?.as_str()?;
    let kind = doc.get("kind")?.as_str()?;
    match (group(api_version), kind) {
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            Some(DocKind::Policy(Flavor::Validating))
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            Some(DocKind::Binding(Flavor::Validating))
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => {
            Some(DocKind::Policy(Flavor::Mutating))
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding") => {
            Some(DocKind::Binding(Flavor::Mutating))
        }
        ("policies.kyverno.io", "ValidatingPolicy") => {
            Some(DocKind::Policy(Flavor::KyvernoValidating))
        }
        ("policies.kyverno.io", "MutatingPolicy") => Some(DocKind::Policy(Flavor::KyvernoMutating)),
        _ => None,
    }
}

/// Whether a document is a native policy or binding Tollgate loads.
pub fn is_native(doc: &Value) -> bool {
    doc_kind(doc).is_some()
}

#[derive(Debug, Deserialize)]
struct Doc<S> {
    metadata: Metadata,
    spec: S,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

/// The spec of a ValidatingAdmissionPolicy, MutatingAdmissionPolicy or
/// Kyverno ValidatingPolicy (the three share most fields).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicySpec {
    param_kind: Option<ParamKind>,
    match_constraints: Option<MatchResources>,
    failure_policy: Option<FailurePolicy>,
    #[serde(default)]
    match_conditions: Vec<Value>,
    #[serde(default)]
    variables: Vec<Value>,
    #[serde(default)]
    validations: Vec<Value>,
    #[serde(default)]
    audit_annotations: Vec<Value>,
    #[serde(default)]
    mutations: Vec<Value>,
    reinvocation_policy: Option<Reinvocation>,
    // Kyverno ValidatingPolicy only.
    validation_actions: Option<Vec<Action>>,
    evaluation: Option<Value>,
    autogen: Option<Value>,
    webhook_configuration: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Reinvocation {
    Never,
    IfNeeded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Action {
    Deny,
    Warn,
    Audit,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BindingSpec {
    policy_name: String,
    param_ref: Option<ParamRef>,
    match_resources: Option<MatchResources>,
    #[serde(default)]
    validation_actions: Vec<Action>,
}

struct PolicyDoc {
    file: PathBuf,
    flavor: Flavor,
    name: String,
    spec: PolicySpec,
}

struct BindingDoc {
    flavor: Flavor,
    name: String,
    spec: BindingSpec,
    origin: String,
}

fn shape(file: &Path, kind: &str, name: &str, message: impl Into<String>) -> Error {
    Error::Shape {
        file: file.display().to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        message: message.into(),
    }
}

fn parse<S: for<'de> Deserialize<'de>>(
    file: &Path,
    kind: &str,
    doc: Value,
) -> Result<(String, S), Error> {
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    let parsed: Doc<S> =
        serde_json::from_value(doc).map_err(|e| shape(file, kind, &name, e.to_string()))?;
    Ok((parsed.metadata.name, parsed.spec))
}

/// Load native policies and bindings from `docs` (with the file each came
/// from); `params` are other objects given with them (candidate params);
/// bindings are also read from `context`.
///
/// # Errors
/// The first document with a bad shape or an expression that does not compile.
pub fn load(
    docs: Vec<(PathBuf, Value)>,
    params: Vec<Value>,
    context: &dyn ClusterView,
) -> Result<Loaded, Error> {
    let mut policies = Vec::new();
    let mut bindings = Vec::new();
    for (file, doc) in docs {
        match doc_kind(&doc) {
            Some(DocKind::Policy(flavor)) => {
                let (name, spec) = parse::<PolicySpec>(&file, flavor.kind(), doc)?;
                policies.push(PolicyDoc {
                    file,
                    flavor,
                    name,
                    spec,
                });
            }
            Some(DocKind::Binding(flavor)) => {
                let kind = format!("{}Binding", flavor.kind());
                let (name, spec) = parse::<BindingSpec>(&file, &kind, doc)?;
                bindings.push(BindingDoc {
                    flavor,
                    name,
                    spec,
                    origin: file.display().to_string(),
                });
            }
            None => {}
        }
    }
    for flavor in [Flavor::Validating, Flavor::Mutating] {
        let kind = format!("{}Binding", flavor.kind());
        for doc in context.list(
            "admissionregistration.k8s.io/v1",
            &kind,
            None,
            &LabelSelector::default(),
        ) {
            let Some(name) = doc.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            if bindings
                .iter()
                .any(|b| b.flavor == flavor && b.name == name)
            {
                continue; // a file's binding overrides the cluster's
            }
            let (name, spec) = parse::<BindingSpec>(Path::new("--context"), &kind, (*doc).clone())?;
            bindings.push(BindingDoc {
                flavor,
                name,
                spec,
                origin: "--context".into(),
            });
        }
    }
    let local_params = Arc::new(Snapshot::from_objects(params));
    let mut loaded = Loaded::default();
    for binding in &bindings {
        if !policies
            .iter()
            .any(|p| p.flavor == binding.flavor && p.name == binding.spec.policy_name)
        {
            loaded.warnings.push(format!(
                "{}Binding {} ({}) binds {}, which is not loaded: it does nothing",
                binding.flavor.kind(),
                binding.name,
                binding.origin,
                binding.spec.policy_name
            ));
        }
    }
    for policy in policies {
        let own: Vec<&BindingDoc> = bindings
            .iter()
            .filter(|b| b.flavor == policy.flavor && b.spec.policy_name == policy.name)
            .collect();
        if !policy.flavor.is_kyverno() && own.is_empty() {
            loaded.warnings.push(format!(
                "{} {} ({}) has no binding: as in Kubernetes, it judges nothing",
                policy.flavor.kind(),
                policy.name,
                policy.file.display()
            ));
            // Still compiled, so that its mistakes are reported.
        }
        compile(policy, &own, &local_params, &mut loaded.policies)?;
    }
    Ok(loaded)
}

/// Compile one policy and pair it with each of its bindings.
fn compile(
    policy: PolicyDoc,
    bindings: &[&BindingDoc],
    local_params: &Arc<Snapshot>,
    out: &mut Vec<NativePolicy>,
) -> Result<(), Error> {
    let PolicyDoc {
        file,
        flavor,
        name,
        spec,
    } = policy;
    let kind = flavor.kind();
    let fail = |message: String| shape(&file, kind, &name, message);
    let only = |field: &str, present: bool, allowed: bool| -> Result<(), Error> {
        if present && !allowed {
            return Err(fail(format!("spec.{field} is not a field of a {kind}")));
        }
        Ok(())
    };
    let validating = flavor.validates();
    let kyverno = flavor.is_kyverno();
    only("validations", !spec.validations.is_empty(), validating)?;
    only(
        "auditAnnotations",
        !spec.audit_annotations.is_empty(),
        validating,
    )?;
    only("mutations", !spec.mutations.is_empty(), !validating)?;
    only(
        "reinvocationPolicy",
        spec.reinvocation_policy.is_some(),
        !validating,
    )?;
    only(
        "validationActions",
        spec.validation_actions.is_some(),
        flavor == Flavor::KyvernoValidating,
    )?;
    for (field, present) in [
        ("evaluation", spec.evaluation.is_some()),
        ("autogen", spec.autogen.is_some()),
        ("webhookConfiguration", spec.webhook_configuration.is_some()),
    ] {
        only(field, present, kyverno)?;
    }
    if kyverno && spec.param_kind.is_some() {
        return Err(fail(format!(
            "spec.paramKind is not supported by Tollgate for a {kind}"
        )));
    }
    let constraints = spec
        .match_constraints
        .clone()
        .ok_or_else(|| fail("spec.matchConstraints is required".into()))?;
    constraints
        .validate()
        .map_err(|e| fail(format!("spec.matchConstraints: {e}")))?;
    // Autogen rewrites Pod rules for pod templates; for mutations that would
    // also mean rewriting patch paths, which Tollgate does not do.
    let autogen = flavor == Flavor::KyvernoValidating
        && kyverno::autogen(spec.autogen.as_ref())
        && constraints.names_pods();
    let mut kinds = constraints.kinds().unwrap_or_else(|| vec!["*".into()]);
    if autogen && !kinds.iter().any(|k| k == "*") {
        kinds.extend(POD_CONTROLLERS.iter().map(|(k, _)| k.to_string()));
    }
    let sources: Vec<&str> = spec
        .match_conditions
        .iter()
        .chain(&spec.variables)
        .chain(&spec.validations)
        .filter_map(|v| v.get("expression").and_then(Value::as_str))
        .chain(spec.mutations.iter().filter_map(|m| {
            ["/jsonPatch/expression", "/applyConfiguration/expression"]
                .iter()
                .find_map(|p| m.pointer(p).and_then(Value::as_str))
        }))
        .collect();
    if kyverno && let Some(library) = kyverno::kyverno_only(&sources) {
        return Err(fail(format!(
            "uses the Kyverno-only CEL library `{library}`, which Tollgate does not provide"
        )));
    }
    let failure_policy = spec.failure_policy.unwrap_or_default();
    let cel = CelPolicy::compile(
        &file,
        cel_policy_doc(&name, &kinds, failure_policy, spec_parts(&spec)),
    )?;
    let mut add = |binding: Option<&BindingDoc>, mode: Mode| -> Result<(), Error> {
        let in_binding = |message: String| {
            let b = binding.map_or(String::new(), |b| {
                format!("binding {} ({})", b.name, b.origin)
            });
            fail(format!("{b}: {message}"))
        };
        if let Some(reference) = binding.and_then(|b| b.spec.param_ref.as_ref()) {
            reference.validate().map_err(in_binding)?;
        }
        let binding_match = binding.and_then(|b| b.spec.match_resources.clone());
        if let Some(m) = &binding_match {
            m.validate()
                .map_err(|e| in_binding(format!("matchResources: {e}")))?;
        }
        let tollgate_name = match binding {
            Some(b) if bindings.len() > 1 => format!("{name}/{}", b.name),
            _ => name.clone(),
        };
        out.push(NativePolicy {
            inner: Arc::new(Inner {
                name: tollgate_name,
                origin: file.display().to_string(),
                policy: name.clone(),
                binding: binding.map(|b| b.name.clone()),
                flavor,
                cel: cel.clone(),
                constraints: constraints.clone(),
                binding_match,
                param_kind: spec.param_kind.clone(),
                param_ref: binding.and_then(|b| b.spec.param_ref.clone()),
                local_params: local_params.clone(),
                mode,
                failure_policy,
                autogen,
                evaluation: kyverno::Evaluation::of(spec.evaluation.as_ref()),
                kinds: kinds.clone(),
            }),
        });
        Ok(())
    };
    if flavor == Flavor::KyvernoMutating {
        return add(None, Mode::Enforce);
    }
    if kyverno {
        let actions = spec
            .validation_actions
            .clone()
            .unwrap_or(vec![Action::Deny]);
        let mode = mode_of(&actions).map_err(|e| fail(format!("spec.validationActions: {e}")))?;
        return add(None, mode);
    }
    for binding in bindings {
        let mode = if flavor == Flavor::Mutating {
            Mode::Enforce
        } else {
            mode_of(&binding.spec.validation_actions)
                .map_err(|e| fail(format!("binding {}: validationActions: {e}", binding.name)))?
        };
        add(Some(binding), mode)?;
    }
    Ok(())
}

/// Deny enforces, Warn warns, Audit only reports.
fn mode_of(actions: &[Action]) -> Result<Mode, String> {
    let has = |a| actions.contains(&a);
    if has(Action::Deny) && has(Action::Warn) {
        return Err("Deny and Warn cannot be used together".into());
    }
    Ok(if has(Action::Deny) {
        Mode::Enforce
    } else if has(Action::Warn) {
        Mode::Warn
    } else if has(Action::Audit) {
        Mode::Audit
    } else {
        // The API server requires an action; Kyverno reads none as Deny.
        Mode::Enforce
    })
}

/// The CEL parts of a native spec in CelPolicy's shape (validations lose
/// `reason`, which only sets the API server's HTTP status).
fn spec_parts(spec: &PolicySpec) -> Value {
    let validations: Vec<Value> = spec
        .validations
        .iter()
        .map(|v| {
            let mut v = v.clone();
            if let Some(map) = v.as_object_mut() {
                map.remove("reason");
            }
            v
        })
        .collect();
    json!({
        "matchConditions": spec.match_conditions,
        "variables": spec.variables,
        "validations": validations,
        "auditAnnotations": spec.audit_annotations,
        "mutations": spec.mutations,
    })
}

fn cel_policy_doc(
    name: &str,
    kinds: &[String],
    failure_policy: FailurePolicy,
    parts: Value,
) -> Value {
    let mut spec = parts;
    if let Some(map) = spec.as_object_mut() {
        map.insert("kinds".into(), json!(kinds));
        map.insert("failurePolicy".into(), json!(failure_policy));
    }
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "CelPolicy",
        "metadata": {"name": name},
        "spec": spec,
    })
}
