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
use std::time::Duration;

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

/// How long one policy of the set spent over a whole audit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyTime {
    /// Evaluation time, summed over the objects (and the worker threads).
    pub elapsed: Duration,
    /// How many objects the policy was run on.
    pub runs: u64,
}

impl PolicyTime {
    fn add(&mut self, other: PolicyTime) {
        self.elapsed += other.elapsed;
        self.runs += other.runs;
    }
}

/// Audit a snapshot: policy findings and the scale-down explanation.
pub fn run(
    snapshot: Arc<Snapshot>,
    evaluator: &Evaluator,
    assumptions: &explain::Assumptions,
) -> Report {
    run_timed(snapshot, evaluator, assumptions, None)
}

/// [`run`], and when `times` is given (one entry per policy of the set, in
/// the set's order) add each policy's evaluation time to it.
pub fn run_timed(
    snapshot: Arc<Snapshot>,
    evaluator: &Evaluator,
    assumptions: &explain::Assumptions,
    times: Option<&mut [PolicyTime]>,
) -> Report {
    let timed = times.is_some();
    let policies = evaluator.policies().policies().len();
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
    let parts: Vec<(Vec<Finding>, Vec<PolicyTime>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .map(|part| {
                let cluster = cluster.clone();
                scope.spawn(move || {
                    let mut times = vec![PolicyTime::default(); if timed { policies } else { 0 }];
                    let findings = part
                        .iter()
                        .flat_map(|o| {
                            audit_object(o, evaluator, &cluster, timed.then_some(&mut times[..]))
                        })
                        .collect::<Vec<_>>();
                    (findings, times)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut findings = Vec::new();
    let mut times = times;
    for (part, part_times) in parts {
        findings.extend(part);
        if let Some(times) = times.as_deref_mut() {
            for (total, time) in times.iter_mut().zip(part_times) {
                total.add(time);
            }
        }
    }
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
    times: Option<&mut [PolicyTime]>,
) -> Vec<Finding> {
    let defaulted = default_pod(object.as_ref().clone(), cluster.as_ref());
    let review = match Review::from_object(defaulted) {
        Ok(r) => r,
        Err(_) => return Vec::new(),
    };
    let verdict = match times {
        None => evaluator.evaluate(&review, cluster),
        Some(times) => evaluator.evaluate_observed(&review, cluster, &mut |index, _, elapsed| {
            if let Some(time) = times.get_mut(index) {
                time.add(PolicyTime { elapsed, runs: 1 });
            }
        }),
    };
    findings_of(&Resource::of(review.object()), &verdict)
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
