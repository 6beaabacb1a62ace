//! Audit mode: judge every object of a cluster with the same evaluator as
//! admission, and explain why autoscaler pool nodes cannot scale down.
//!
//! Which objects are judged: every object of a kind some policy judges,
//! except pods and ReplicaSets/Jobs that a controller in the snapshot owns
//! (their controller's template is judged instead, so one finding names the
//! object a user edits). Pods are defaulted as the API server would before
//! admission ([`crate::defaulting`]).

pub mod explain;
pub mod policy_report;
pub mod report;
pub mod time;

use std::sync::Arc;

use serde_json::Value;
use tollgate_sdk::placement::pod_controller;

use crate::cluster::{ClusterView, Snapshot};
use crate::decision::{Mode, Verdict};
use crate::defaulting::default_pod;
use crate::evaluator::{Evaluator, PRESET_POOLS_WARNING};
use crate::review::Review;

pub use report::{Checked, Finding, Report, Resource, Severity};

/// Whether audit (and `generate fixes`, and the KRM function) judges `object`:
/// a policy judges its kind, and no controller in the snapshot owns it.
pub fn judged(object: &Value, snapshot: &Snapshot, evaluator: &Evaluator) -> bool {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    evaluator
        .policies()
        .policies()
        .iter()
        .any(|p| p.judges(kind))
        && judged_directly(object, snapshot)
}

/// Whether `object` is judged directly (not through an owning controller).
fn judged_directly(object: &Value, snapshot: &Snapshot) -> bool {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !matches!(kind, "Pod" | "ReplicaSet" | "Job") {
        return true;
    }
    let Some(owner) = pod_controller(object) else {
        return true;
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    snapshot
        .get(&owner.api_version, &owner.kind, namespace, &owner.name)
        .is_none()
}

/// Audit a snapshot: policy findings and the scale-down explanation.
pub fn run(
    snapshot: Arc<Snapshot>,
    evaluator: &Evaluator,
    assumptions: &explain::Assumptions,
) -> Report {
    let cluster: Arc<dyn ClusterView> = snapshot.clone();
    let objects: Vec<&Arc<Value>> = snapshot
        .objects()
        .iter()
        .filter(|o| judged(o, &snapshot, evaluator))
        .collect();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(objects.len().max(1));
    let chunk = objects.len().div_ceil(workers).max(1);
    let mut findings: Vec<Finding> = std::thread::scope(|scope| {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .map(|part| {
                let cluster = cluster.clone();
                scope.spawn(move || {
                    part.iter()
                        .flat_map(|o| audit_object(o, evaluator, &cluster))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    findings.sort_by(|a, b| {
        (b.severity, &a.policy, &a.resource).cmp(&(a.severity, &b.policy, &b.resource))
    });
    let scale_down = explain::explain(&snapshot, assumptions);
    let mut warnings: Vec<String> = snapshot
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    if !snapshot.has_pools() {
        warnings.push(
            "no node pools found: no cluster-autoscaler Deployment with --nodes flags in the snapshot and no --pools file"
                .into(),
        );
    }
    let checked = objects
        .iter()
        .map(|o| {
            let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default();
            Checked {
                resource: Resource::of(o),
                policies: evaluator
                    .policies()
                    .policies()
                    .iter()
                    .filter(|p| p.judges(kind))
                    .map(|p| p.name.clone())
                    .collect(),
            }
        })
        .collect();
    let mut report = Report::new(objects.len(), findings, scale_down, warnings);
    report.checked = checked;
    report
}

/// The findings for one object.
fn audit_object(
    object: &Arc<Value>,
    evaluator: &Evaluator,
    cluster: &Arc<dyn ClusterView>,
) -> Vec<Finding> {
    let defaulted = default_pod(object.as_ref().clone(), cluster.as_ref());
    let review = match Review::from_object(defaulted) {
        Ok(r) => r,
        Err(_) => return Vec::new(),
    };
    findings_of(
        &Resource::of(review.object()),
        &evaluator.evaluate(&review, cluster),
    )
}

/// Turn a verdict into findings.
pub fn findings_of(resource: &Resource, verdict: &Verdict) -> Vec<Finding> {
    let mut out = Vec::new();
    for result in &verdict.results {
        let severity = if result.mode == Mode::Enforce {
            Severity::High
        } else {
            Severity::Medium
        };
        for v in &result.violations {
            out.push(Finding::new(
                &result.policy,
                &v.rule,
                resource,
                &v.message,
                severity,
                "fail",
            ));
        }
        if let Some(fault) = &result.error {
            out.push(Finding::new(
                &result.policy,
                "policy-error",
                resource,
                &fault.message,
                Severity::High,
                "error",
            ));
        }
        for w in result
            .warnings
            .iter()
            .filter(|w| w.as_str() != PRESET_POOLS_WARNING && result.error.is_none())
        {
            if result.mode == Mode::Warn && result.violations.iter().any(|v| w.contains(&v.message))
            {
                continue;
            }
            out.push(Finding::new(
                &result.policy,
                "warning",
                resource,
                w,
                Severity::Low,
                "warn",
            ));
        }
    }
    out
}
