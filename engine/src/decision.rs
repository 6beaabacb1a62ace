//! What evaluation produces: a [`PolicyResult`] per policy (its decision, or a
//! [`Fault`] resolved by the policy's failure policy) and the combined
//! [`Verdict`] for one review.
//!
//! The JSON shape of these types is the `tollgate eval -o json` contract:
//!
//! ```json
//! {"allowed": false,
//!  "results": [{"policy": "no-blanket-tolerations", "allowed": false, "mode": "enforce",
//!               "violations": [{"rule": "blanket-toleration", "message": "...", "path": "/spec/tolerations/0"}],
//!               "patch": null, "warnings": [], "error": null}],
//!  "mutated": {...}}
//! ```
//! `mutated` is present only with `--mutate`; `error` is `{"kind", "message"}` when the policy
//! faulted, in which case `allowed` follows its failure policy.

use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use tollgate_sdk::model::{Decision, Violation};

/// What went wrong inside a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The policy ran past its deadline.
    Timeout,
    /// The policy tried to grow its memory past its limit.
    MemoryLimit,
    /// The policy overflowed its stack.
    StackOverflow,
    /// The policy trapped (panicked, hit `unreachable`, divided by zero...).
    Trap,
    /// The policy returned more output than allowed.
    OutputLimit,
    /// The policy logged more than allowed.
    LogLimit,
    /// The policy returned something malformed (an invalid patch...).
    BadOutput,
    /// A CEL expression failed to evaluate.
    Expression,
    /// A CEL expression's cost bound is over the budget.
    Budget,
    /// The engine could not run the policy (instance pool exhausted...).
    Unavailable,
}

/// A policy failure, named and explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The kind of failure.
    pub kind: FaultKind,
    /// What happened, for humans.
    pub message: String,
}

impl Fault {
    /// A fault of `kind`.
    pub fn new(kind: FaultKind, message: impl Into<String>) -> Self {
        Fault {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a policy's fault means for the verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailurePolicy {
    /// Deny (fail closed). The default.
    #[default]
    Fail,
    /// Allow (fail open).
    Ignore,
}

/// How a policy's denials take effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Violations deny.
    #[default]
    Enforce,
    /// Violations become warnings; the object is allowed.
    Warn,
    /// Violations are only reported (audit reports, metrics).
    Audit,
}

/// One policy's answer for one review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResult {
    /// The policy name.
    pub policy: String,
    /// Whether this policy allows the object (after its mode and failure policy).
    pub allowed: bool,
    /// The policy's mode.
    pub mode: Mode,
    /// What is wrong.
    pub violations: Vec<Violation>,
    /// The policy's JSON Patch, if it mutates.
    pub patch: Option<Value>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// The fault, when the policy failed.
    pub error: Option<Fault>,
    /// Audit annotations (`<policy>/<key>`: value) of native policies.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl PolicyResult {
    /// The result of a decision under `mode`.
    pub fn from_decision(
        policy: &str,
        mode: Mode,
        decision: Decision,
        patch: Option<Value>,
    ) -> Self {
        let mut warnings = decision.warnings;
        let allowed = match mode {
            Mode::Enforce => decision.allowed,
            Mode::Warn => {
                warnings.extend(
                    decision
                        .violations
                        .iter()
                        .map(|v| format!("{policy}: {} ({})", v.message, v.rule)),
                );
                true
            }
            Mode::Audit => true,
        };
        PolicyResult {
            policy: policy.to_string(),
            allowed,
            mode,
            violations: decision.violations,
            patch,
            warnings,
            error: None,
            annotations: Default::default(),
        }
    }

    /// The result of a fault under `failure_policy`.
    pub fn from_fault(
        policy: &str,
        mode: Mode,
        failure_policy: FailurePolicy,
        fault: Fault,
    ) -> Self {
        let allowed = failure_policy == FailurePolicy::Ignore || mode != Mode::Enforce;
        let mut warnings = Vec::new();
        if allowed {
            warnings.push(format!(
                "policy {policy} failed and was ignored: {}",
                fault.message
            ));
        }
        PolicyResult {
            policy: policy.to_string(),
            allowed,
            mode,
            violations: Vec::new(),
            patch: None,
            warnings,
            error: Some(fault),
            annotations: Default::default(),
        }
    }
}

/// The combined answer for one review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether every policy allows the object.
    pub allowed: bool,
    /// One result per policy that judged the object, in policy-set order.
    pub results: Vec<PolicyResult>,
    /// The object after every patch was applied in order (mutating evaluation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutated: Option<Value>,
}

impl Verdict {
    /// Combine policy results.
    pub fn new(results: Vec<PolicyResult>, mutated: Option<Value>) -> Self {
        Verdict {
            allowed: results.iter().all(|r| r.allowed),
            results,
            mutated,
        }
    }

    /// Every violation of an enforcing policy, with its policy name.
    pub fn denials(&self) -> impl Iterator<Item = (&str, &Violation)> {
        self.results
            .iter()
            .filter(|r| !r.allowed)
            .flat_map(|r| r.violations.iter().map(move |v| (r.policy.as_str(), v)))
    }
}
