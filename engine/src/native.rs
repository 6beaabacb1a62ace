//! Kubernetes-native policies, loaded unchanged: `admissionregistration.k8s.io`
//! ValidatingAdmissionPolicy and MutatingAdmissionPolicy with their bindings,
//! and Kyverno's ValidatingPolicy and MutatingPolicy (docs/native-policies.md).
//!
//! Each (policy, binding) pair becomes one [`NativePolicy`]: the policy's CEL
//! is compiled once as a [`CelPolicy`] (the same evaluator as Tollgate's own
//! CEL files), and the pair adds what Kubernetes adds around it: the match
//! rules of the policy and the binding ([`matching`]), the binding's params
//! ([`params`]), its validation actions (Tollgate's mode), and audit
//! annotation keys prefixed with the policy name. A policy without a binding
//! judges nothing, as in Kubernetes; the loader reports it.

mod kyverno;
mod load;
pub mod matching;
pub mod params;
pub mod resources;

use std::sync::Arc;

use cel::common::types::CelNull;
use serde_json::Value;
use tollgate_sdk::model::{Decision, Violation};
use tollgate_sdk::placement::POD_CONTROLLERS;

pub use load::{Error, Loaded, is_native, load};

use crate::cel::value::to_cel;
use crate::cel::{Bindings, CelPolicy, Outcome};
use crate::cluster::{ClusterView, Snapshot};
use crate::decision::{FailurePolicy, Fault, FaultKind, Mode};
use crate::review::Review;
use matching::{MatchResources, Request};
use params::{NotFoundAction, ParamKind, ParamRef};

/// Which API a native policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `admissionregistration.k8s.io` ValidatingAdmissionPolicy.
    Validating,
    /// `admissionregistration.k8s.io` MutatingAdmissionPolicy.
    Mutating,
    /// `policies.kyverno.io` ValidatingPolicy (bound to itself).
    KyvernoValidating,
    /// `policies.kyverno.io` MutatingPolicy (bound to itself).
    KyvernoMutating,
}

impl Flavor {
    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            Flavor::Validating => "ValidatingAdmissionPolicy",
            Flavor::Mutating => "MutatingAdmissionPolicy",
            Flavor::KyvernoValidating => "ValidatingPolicy",
            Flavor::KyvernoMutating => "MutatingPolicy",
        }
    }

    /// Whether it validates (else it mutates).
    pub fn validates(self) -> bool {
        matches!(self, Flavor::Validating | Flavor::KyvernoValidating)
    }

    /// Whether it is Kyverno's (bound to itself, Kyverno's extra fields).
    pub fn is_kyverno(self) -> bool {
        matches!(self, Flavor::KyvernoValidating | Flavor::KyvernoMutating)
    }
}

/// One native policy with one of its bindings, ready to evaluate.
#[derive(Clone)]
pub struct NativePolicy {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    origin: String,
    policy: String,
    binding: Option<String>,
    flavor: Flavor,
    cel: CelPolicy,
    constraints: MatchResources,
    binding_match: Option<MatchResources>,
    param_kind: Option<ParamKind>,
    param_ref: Option<ParamRef>,
    local_params: Arc<Snapshot>,
    mode: Mode,
    failure_policy: FailurePolicy,
    autogen: bool,
    evaluation: kyverno::Evaluation,
    kinds: Vec<String>,
}

impl std::fmt::Debug for NativePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativePolicy")
            .field("name", &self.inner.name)
            .field("binding", &self.inner.binding)
            .finish()
    }
}

impl NativePolicy {
    /// Tollgate's name for the pair: the policy's name, or
    /// `<policy>/<binding>` when the policy has several bindings.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The file the policy came from.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The policy's own name.
    pub fn policy_name(&self) -> &str {
        &self.inner.policy
    }

    /// The binding's name (none for a Kyverno policy).
    pub fn binding_name(&self) -> Option<&str> {
        self.inner.binding.as_deref()
    }

    /// Where the policy came from.
    pub fn flavor(&self) -> Flavor {
        self.inner.flavor
    }

    /// The mode the validation actions give (Deny: enforce, Warn: warn, Audit: audit).
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The policy's failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.failure_policy
    }

    /// The kinds the match rules can select (`*` when a rule is a wildcard).
    pub fn kinds(&self) -> &[String] {
        &self.inner.kinds
    }

    /// The compiled CEL.
    pub fn cel(&self) -> &CelPolicy {
        &self.inner.cel
    }

    /// Evaluate: `None` when the policy or binding does not match the
    /// request or a match condition is false (the policy does not apply).
    ///
    /// # Errors
    /// A fault from the CEL, or a binding whose params cannot be resolved.
    pub fn evaluate(
        &self,
        review: &Review,
        cluster: &dyn ClusterView,
    ) -> Result<Option<Outcome>, Fault> {
        let inner = &self.inner;
        if !inner.evaluation.runs(review.has_request()) {
            return Ok(None);
        }
        let mut request = Request::of(review);
        let object_is_pod = inner.autogen
            && POD_CONTROLLERS.iter().any(|(k, _)| *k == review.kind())
            && review.records().pod.is_some();
        if object_is_pod {
            request = request.as_pod();
        }
        if !inner.constraints.matches(&request, review, cluster, false) {
            return Ok(None);
        }
        if let Some(m) = &inner.binding_match
            && !m.matches(&request, review, cluster, true)
        {
            return Ok(None);
        }
        let params = match (&inner.param_kind, &inner.param_ref) {
            (None, _) => vec![None],
            (Some(_), None) => {
                return Err(self
                    .misconfigured("the policy has a paramKind but the binding has no paramRef"));
            }
            (Some(kind), Some(reference)) => {
                let found =
                    reference.resolve(kind, &request.namespace, &inner.local_params, cluster);
                if found.is_empty() {
                    return match reference.not_found_action() {
                        NotFoundAction::Allow => Ok(Some(outcome(Decision::allow(), vec![]))),
                        NotFoundAction::Deny => Err(self.misconfigured(&format!(
                            "no params found for policy binding with `Deny` parameterNotFoundAction ({} {})",
                            kind.api_version, kind.kind
                        ))),
                    };
                }
                found.into_iter().map(Some).collect()
            }
        };
        let mut violations: Vec<Violation> = Vec::new();
        let mut warnings = Vec::new();
        let mut patch: Vec<Value> = Vec::new();
        let mut annotations = Vec::new();
        let mut used_preset_pools = false;
        let mut applied = false;
        for param in params {
            let mut longest = 0;
            let value = match &param {
                Some(p) => to_cel(p, &mut longest),
                None => Box::new(CelNull),
            };
            let out = inner.cel.evaluate_with(
                review,
                cluster,
                Bindings {
                    params: Some(value.as_ref()),
                    object_is_pod,
                },
            )?;
            if out.skipped {
                continue;
            }
            applied = true;
            used_preset_pools |= out.used_preset_pools;
            violations.extend(out.decision.violations);
            warnings.extend(out.decision.warnings);
            if let Some(text) = out.decision.patch
                && let Ok(Value::Array(ops)) = serde_json::from_str::<Value>(&text)
            {
                patch.extend(ops);
            }
            annotations.extend(
                out.annotations
                    .into_iter()
                    .map(|(k, v)| (format!("{}/{k}", inner.policy), v)),
            );
        }
        if !applied {
            return Ok(None);
        }
        let mut decision = Decision::from_violations(violations);
        decision.warnings = warnings;
        if !patch.is_empty() {
            decision.patch = Some(Value::Array(patch).to_string());
        }
        let mut out = outcome(decision, annotations);
        out.used_preset_pools = used_preset_pools;
        Ok(Some(out))
    }

    fn misconfigured(&self, detail: &str) -> Fault {
        let binding = self
            .inner
            .binding
            .as_deref()
            .map(|b| format!(" with binding {b}"))
            .unwrap_or_default();
        Fault::new(
            FaultKind::Unavailable,
            format!(
                "{} {}{binding}: {detail}",
                self.inner.flavor.kind(),
                self.inner.policy
            ),
        )
    }
}

fn outcome(decision: Decision, annotations: Vec<(String, String)>) -> Outcome {
    Outcome {
        decision,
        used_preset_pools: false,
        skipped: false,
        annotations,
    }
}
