//! CelPolicies compiled into Kubernetes-native admission policies: a
//! ValidatingAdmissionPolicy and its binding for the validations (and audit
//! annotations), and a MutatingAdmissionPolicy and its binding for the
//! mutations, so that the API server enforces them without the webhook.
//!
//! What does not exist in the API server is rewritten: `pod` becomes the
//! variable `variables.pod` (the Pod, or the pod template of a controller,
//! as Tollgate computes it), and `params` (the policy's settings) becomes the
//! variable `variables.settings`, a literal of the effective settings; in
//! match conditions, which run before variables exist, both are inlined. The
//! kinds become resource rules for CREATE and UPDATE, and the mode becomes
//! the binding's validation actions. `pools` (Tollgate's node-pool view) is
//! inlined as a literal of the cluster's pools when the caller provides them
//! (the manifests then hold the pools as of generation); without them a
//! policy that reads `pools` cannot be expressed, nor can a WASM policy or one
//! that judges a kind that is not a built-in resource; [`generate`] says why.
//! Output is deterministic: the same input gives byte-identical manifests.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tollgate_sdk::placement::POD_CONTROLLERS;

use super::cel_text::{cel_literal, rename_identifiers};
use crate::decision::{FailurePolicy, Mode};
use crate::native::resources::BUILT_IN;
use crate::policy::{Kind, Policy, PolicySet};

/// The manifests generated for one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The policy name.
    pub policy: String,
    /// The objects, in apply order (policy before its binding).
    pub objects: Vec<Value>,
}

/// A policy that cannot be expressed natively, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotExpressible {
    /// The policy name.
    pub policy: String,
    /// Where it came from.
    pub source: String,
    /// Why.
    pub reason: String,
}

/// What [`generate`] produced.
#[derive(Debug, Default)]
pub struct Output {
    /// The policies that were compiled, in set order.
    pub generated: Vec<Generated>,
    /// The policies that could not be.
    pub not_expressible: Vec<NotExpressible>,
}

/// Why a policy that reads `pools` cannot move without `--inline-pools`.
const POOLS_ONLY_IN_TOLLGATE: &str = "reads `pools`, Tollgate's view of the cluster-autoscaler node pools, which the API server does not have (generate with the cluster's pools inlined to express it)";

/// The label every generated object carries.
const MANAGED_BY: &str = "tollgate";

/// Compile every CEL policy of `set`. With `pools` (the node pools as JSON),
/// policies that read `pools` get them as a literal, as of now.
pub fn generate(set: &PolicySet, pools: Option<&Value>) -> Output {
    let mut out = Output::default();
    for policy in set.policies() {
        let not = |reason: String| NotExpressible {
            policy: policy.name.clone(),
            source: policy.source.clone(),
            reason,
        };
        match &policy.kind {
            Kind::Wasm(_) => out.not_expressible.push(not(
                "a WASM component: its logic is compiled code, not CEL (use its CEL twin, policy.cel.yaml, where there is one)".into(),
            )),
            Kind::Native(_) => out
                .not_expressible
                .push(not("already a native policy".into())),
            Kind::Cel(cel) => match source_doc(policy).and_then(|doc| {
                compile(&doc, policy, cel.settings(), pools)
            }) {
                Ok(objects) => out.generated.push(Generated {
                    policy: policy.name.clone(),
                    objects,
                }),
                Err(reason) => out.not_expressible.push(not(reason)),
            },
        }
    }
    out
}

/// The CelPolicy document the policy was loaded from.
fn source_doc(policy: &Policy) -> Result<Value, String> {
    let path = Path::new(&policy.source);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (docs, _) = crate::cluster::Snapshot::parse_documents(path, &text);
    docs.into_iter()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some("CelPolicy")
                && d.pointer("/metadata/name").and_then(Value::as_str) == Some(&policy.name)
        })
        .ok_or_else(|| {
            format!(
                "{} no longer holds CelPolicy {}",
                path.display(),
                policy.name
            )
        })
}

fn strings<'a>(spec: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    spec.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Every expression of the spec (to check what they reference).
fn expressions(spec: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    for field in ["matchConditions", "variables", "validations"] {
        for item in strings(spec, field) {
            for key in ["expression", "messageExpression"] {
                out.extend(item.get(key).and_then(Value::as_str));
            }
        }
    }
    for a in strings(spec, "auditAnnotations") {
        out.extend(a.get("valueExpression").and_then(Value::as_str));
    }
    for m in strings(spec, "mutations") {
        for key in ["/jsonPatch/expression", "/applyConfiguration/expression"] {
            out.extend(m.pointer(key).and_then(Value::as_str));
        }
    }
    out
}

fn compile(
    doc: &Value,
    policy: &Policy,
    settings: &Value,
    pools: Option<&Value>,
) -> Result<Vec<Value>, String> {
    let name = &policy.name;
    let spec = doc.get("spec").cloned().unwrap_or(json!({}));
    let env = crate::cel::environment();
    // The Tollgate-only inputs an expression reads become variables:
    // (identifier, variable name, CEL expression of its value).
    let pools_literal = pools.map(cel_literal);
    let mut substitutes: Vec<(&str, &str, String)> = Vec::new();
    for source in expressions(&spec) {
        let Ok(program) = env.compile(source) else {
            continue; // loading compiled it, with the mutation types
        };
        let references = program.references();
        let candidates = [
            ("pod", "pod", Some(pod_expression())),
            ("params", "settings", Some(cel_literal(settings))),
            ("pools", "pools", pools_literal.clone()),
        ];
        for (identifier, variable, value) in candidates {
            if !references.has_variable(identifier)
                || substitutes.iter().any(|(i, _, _)| *i == identifier)
            {
                continue;
            }
            let Some(value) = value else {
                return Err(POOLS_ONLY_IN_TOLLGATE.into());
            };
            substitutes.push((identifier, variable, value));
        }
    }
    // Keep a fixed order whatever the expressions' order.
    let order = |i: &str| ["pod", "params", "pools"].iter().position(|x| *x == i);
    substitutes.sort_by_key(|(i, _, _)| order(i));
    let as_variables: Vec<(String, String)> = substitutes
        .iter()
        .map(|(i, v, _)| (i.to_string(), format!("variables.{v}")))
        .collect();
    // Match conditions run before variables exist: there the values are inlined.
    let as_values: Vec<(String, String)> = substitutes
        .iter()
        .map(|(i, _, value)| (i.to_string(), format!("({value})")))
        .collect();
    let renames = pairs(&as_variables);
    let inlined = pairs(&as_values);
    let rewrite_with = |items: &mut Value, keys: &[&str], renames: &[(&str, &str)]| {
        if let Some(list) = items.as_array_mut() {
            for item in list {
                for key in keys {
                    if let Some(Value::String(s)) = item.pointer_mut(key) {
                        *s = rename_identifiers(s, renames);
                    }
                }
            }
        }
    };
    let rewrite = |items: &mut Value, keys: &[&str]| rewrite_with(items, keys, &renames);
    let field = |name: &str| spec.get(name).cloned().unwrap_or(json!([]));
    let mut match_conditions = field("matchConditions");
    rewrite_with(&mut match_conditions, &["/expression"], &inlined);
    let mut variables = field("variables");
    rewrite(&mut variables, &["/expression"]);
    let mut validations = field("validations");
    rewrite(&mut validations, &["/expression", "/messageExpression"]);
    if let Some(list) = validations.as_array_mut() {
        for v in list.iter_mut().filter_map(Value::as_object_mut) {
            v.remove("rule"); // Tollgate's rule id has no native counterpart
        }
    }
    let mut audit_annotations = field("auditAnnotations");
    rewrite(&mut audit_annotations, &["/valueExpression"]);
    let mut mutations = field("mutations");
    rewrite(
        &mut mutations,
        &["/jsonPatch/expression", "/applyConfiguration/expression"],
    );
    let variables: Vec<Value> = substitutes
        .iter()
        .map(|(_, variable, value)| json!({"name": variable, "expression": value}))
        .chain(variables.as_array().cloned().unwrap_or_default())
        .collect();
    for source in [&match_conditions, &validations, &audit_annotations]
        .into_iter()
        .flat_map(|list| list.as_array().into_iter().flatten())
        .chain(variables.iter())
        .flat_map(|item| {
            ["expression", "messageExpression", "valueExpression"].map(|k| item.get(k))
        })
        .flatten()
        .filter_map(Value::as_str)
    {
        env.compile(source)
            .map_err(|e| format!("the rewritten expression does not compile ({e}): {source}"))?;
    }
    let kinds: Vec<String> = strings(&spec, "kinds")
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let kinds = if kinds.is_empty() {
        policy.metadata.kinds.clone()
    } else {
        kinds
    };
    let constraints = match_constraints(&kinds)?;
    let failure_policy = match policy.failure_policy {
        FailurePolicy::Fail => "Fail",
        FailurePolicy::Ignore => "Ignore",
    };
    let has = |v: &Value| v.as_array().is_some_and(|a| !a.is_empty());
    let mut objects = Vec::new();
    if has(&validations) || has(&audit_annotations) {
        let mut vap_spec = json!({
            "failurePolicy": failure_policy,
            "matchConstraints": constraints,
        });
        for (key, value) in [
            ("matchConditions", &match_conditions),
            ("variables", &Value::Array(variables.clone())),
            ("validations", &validations),
            ("auditAnnotations", &audit_annotations),
        ] {
            if has(value) {
                vap_spec[key] = value.clone();
            }
        }
        let actions = match policy.mode {
            Mode::Enforce => "Deny",
            Mode::Warn => "Warn",
            Mode::Audit => "Audit",
        };
        objects.extend(policy_and_binding(
            "ValidatingAdmissionPolicy",
            name,
            name,
            vap_spec,
            json!({"policyName": name, "validationActions": [actions]}),
        ));
    }
    if has(&mutations) {
        let mut map_spec = json!({
            "failurePolicy": failure_policy,
            "matchConstraints": constraints,
            "mutations": mutations,
            "reinvocationPolicy": "Never",
        });
        for (key, value) in [
            ("matchConditions", &match_conditions),
            ("variables", &Value::Array(variables.clone())),
        ] {
            if has(value) {
                map_spec[key] = value.clone();
            }
        }
        let map_name = if objects.is_empty() {
            name.clone()
        } else {
            format!("{name}-mutations")
        };
        objects.extend(policy_and_binding(
            "MutatingAdmissionPolicy",
            &map_name,
            name,
            map_spec,
            json!({"policyName": map_name}),
        ));
    }
    if objects.is_empty() {
        return Err("has no validations, audit annotations or mutations".into());
    }
    Ok(objects)
}

/// A policy of `kind` named `name` and its binding `<name>-binding`,
/// generated from the CelPolicy `source`.
fn policy_and_binding(
    kind: &str,
    name: &str,
    source: &str,
    spec: Value,
    binding: Value,
) -> [Value; 2] {
    let metadata = |object_name: String| {
        json!({
            "name": object_name,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
            "annotations": {"tollgate.dev/generated-from": format!("CelPolicy {source}")},
        })
    };
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": metadata(name.to_string()),
            "spec": spec,
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": format!("{kind}Binding"),
            "metadata": metadata(format!("{name}-binding")),
            "spec": binding,
        }),
    ]
}

/// Borrowed (from, to) pairs for [`rename_identifiers`].
fn pairs(owned: &[(String, String)]) -> Vec<(&str, &str)> {
    owned
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect()
}

/// `variables.pod`: the Pod itself, or the pod template of a controller, or null.
fn pod_expression() -> String {
    let mut expression = String::from("null");
    for (kind, path) in POD_CONTROLLERS.iter().rev() {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut guards = Vec::new();
        for i in 1..=segments.len() {
            guards.push(format!("has(object.{})", segments[..i].join(".")));
        }
        expression = format!(
            "object.kind == '{kind}' ? ({} ? object.{} : null) : {expression}",
            guards.join(" && "),
            segments.join(".")
        );
    }
    format!("object == null ? null : object.kind == 'Pod' ? object : {expression}")
}

/// The resource rules for `kinds`, one per API group and version.
fn match_constraints(kinds: &[String]) -> Result<Value, String> {
    let mut by_group: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for kind in kinds {
        let resource = BUILT_IN.iter().find(|r| r.kind == kind).ok_or_else(|| {
            format!(
                "judges kind {kind}, which is not a built-in resource Tollgate can name in a rule"
            )
        })?;
        by_group
            .entry((resource.group, resource.version))
            .or_default()
            .push(resource.resource);
    }
    let rules: Vec<Value> = by_group
        .into_iter()
        .map(|((group, version), resources)| {
            json!({
                "apiGroups": [group],
                "apiVersions": [version],
                "operations": ["CREATE", "UPDATE"],
                "resources": resources,
            })
        })
        .collect();
    Ok(json!({"resourceRules": rules}))
}
