//! The one place policies run. Every mode (eval, audit, admission, generate)
//! builds [`Review`]s, hands them to an [`Evaluator`] with a [`ClusterView`],
//! and formats the [`Verdict`]; none re-implements policy logic.
//!
//! Evaluation cannot fail: a policy that traps, times out, exceeds a limit or
//! returns garbage yields a [`Fault`] inside its [`PolicyResult`], and its
//! failure policy decides what that means.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::ClusterView;
use crate::decision::{Decision, Fault, FaultKind, Mode, PolicyResult, Verdict};
use crate::policy::{Kind, Policy, PolicySet};
use crate::review::Review;

/// The warning added when a policy read node pools from the preset.
pub const PRESET_POOLS_WARNING: &str = "no cluster context: assumed the kube-hetzner preset node pool (taint dedicated=autoscaler:NoSchedule, label node.kubernetes.io/role=autoscaler); pass --context <snapshot> to use the cluster's own pools";

/// Told of every policy run: the policy's index in the set, when the run
/// started, and how long it took.
pub type PolicyObserver<'a> = dyn FnMut(usize, Instant, Duration) + 'a;

/// The time side of one evaluation: the deadline, if any, and the observer
/// told of each policy run (policy runs are timed only when observed).
struct Clock<'a, 'b> {
    observe: Option<&'a mut PolicyObserver<'b>>,
    deadline: Option<Instant>,
}

impl<'a, 'b> Clock<'a, 'b> {
    fn new(observe: Option<&'a mut PolicyObserver<'b>>) -> Self {
        Clock {
            observe,
            deadline: None,
        }
    }

    fn time<T>(&mut self, index: usize, run: impl FnOnce() -> T) -> T {
        let Some(observe) = self.observe.as_mut() else {
            return run();
        };
        let started = Instant::now();
        let out = run();
        observe(index, started, started.elapsed());
        out
    }
}

/// Runs a policy set against reviews.
#[derive(Debug, Clone)]
pub struct Evaluator {
    set: Arc<PolicySet>,
}

impl Evaluator {
    /// An evaluator for `set`.
    pub fn new(set: PolicySet) -> Self {
        Evaluator { set: Arc::new(set) }
    }

    /// The policy set.
    pub fn policies(&self) -> &PolicySet {
        &self.set
    }

    /// Validate: every policy that judges the object's kind sees the same
    /// object. Patches are reported but not applied.
    pub fn evaluate(&self, review: &Review, cluster: &Arc<dyn ClusterView>) -> Verdict {
        self.validate(review, cluster, &mut Clock::new(None))
    }

    /// [`Evaluator::evaluate`], telling `observe` how long each policy took
    /// (for telemetry; the plain call reads no clock).
    pub fn evaluate_observed(
        &self,
        review: &Review,
        cluster: &Arc<dyn ClusterView>,
        observe: &mut PolicyObserver<'_>,
    ) -> Verdict {
        self.validate(review, cluster, &mut Clock::new(Some(observe)))
    }

    /// Mutate, then validate: policies run in order, each on the object as
    /// the previous ones' patches left it (as the API server chains mutating
    /// webhooks). A policy that returns a patch is run again on the patched
    /// object, and that second decision is its verdict (the API server
    /// validates the mutated object); `mutated` is the final object.
    pub fn evaluate_mutating(&self, review: &Review, cluster: &Arc<dyn ClusterView>) -> Verdict {
        self.mutate(review, cluster, &mut Clock::new(None))
    }

    /// Validate (or mutate, then validate) before `deadline`: WASM policies
    /// are interrupted at the deadline if their own limit is later, and a
    /// policy whose turn comes after it is not run (a `timeout` fault, its
    /// failure policy decides). The admission webhook's evaluation, told of
    /// each policy run when `observe` is given (a patching policy runs twice).
    pub fn evaluate_before(
        &self,
        review: &Review,
        cluster: &Arc<dyn ClusterView>,
        mutating: bool,
        deadline: Instant,
        observe: Option<&mut PolicyObserver<'_>>,
    ) -> Verdict {
        let mut clock = Clock {
            observe,
            deadline: Some(deadline),
        };
        if mutating {
            self.mutate(review, cluster, &mut clock)
        } else {
            self.validate(review, cluster, &mut clock)
        }
    }

    fn validate(
        &self,
        review: &Review,
        cluster: &Arc<dyn ClusterView>,
        clock: &mut Clock,
    ) -> Verdict {
        let results = self
            .set
            .policies()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.judges(review.kind()))
            .filter_map(|(i, p)| {
                let deadline = clock.deadline;
                clock
                    .time(i, || self.run(p, review, cluster, false, deadline))
                    .map(|r| r.0)
            })
            .collect();
        Verdict::new(results, None)
    }

    fn mutate(
        &self,
        review: &Review,
        cluster: &Arc<dyn ClusterView>,
        clock: &mut Clock,
    ) -> Verdict {
        let mut current = review.clone();
        let mut results = Vec::new();
        for (index, policy) in self
            .set
            .policies()
            .iter()
            .enumerate()
            .filter(|(_, p)| p.judges(review.kind()))
        {
            let deadline = clock.deadline;
            let Some((mut result, next)) = clock.time(index, || {
                self.run(policy, &current, cluster, true, deadline)
            }) else {
                continue;
            };
            if let Some(next) = next {
                // A policy that stops applying to its own patched object allows it.
                let (recheck, _) = clock
                    .time(index, || self.run(policy, &next, cluster, false, deadline))
                    .unwrap_or_else(|| {
                        (
                            PolicyResult::from_decision(
                                &policy.name,
                                policy.mode,
                                Decision::allow(),
                                None,
                            ),
                            None,
                        )
                    });
                if recheck.patch.is_some() {
                    result.warnings.push(format!(
                        "policy {} is not idempotent: it patches its own patched object again",
                        policy.name
                    ));
                }
                result = PolicyResult {
                    patch: result.patch,
                    ..recheck
                };
                current = next;
            }
            results.push(result);
        }
        Verdict::new(results, Some(current.object().clone()))
    }

    /// Run one policy; in mutating mode also return the patched review.
    /// `None` when the policy does not apply: the operator's `match` or
    /// `matchConditions` for it, or a native policy's match rules, binding or
    /// match conditions, do not select the request.
    fn run(
        &self,
        policy: &Policy,
        review: &Review,
        cluster: &Arc<dyn ClusterView>,
        apply: bool,
        deadline: Option<Instant>,
    ) -> Option<(PolicyResult, Option<Review>)> {
        if let Some(selection) = &policy.selection {
            match selection.selects(review, cluster.as_ref()) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(f) => return Some(self.judge(policy, review, apply, Err(f), Vec::new())),
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let fault = Fault::new(
                FaultKind::Timeout,
                format!(
                    "policy {}: not run, the review's deadline had passed",
                    policy.name
                ),
            );
            return Some(self.judge(policy, review, apply, Err(fault), Vec::new()));
        }
        let mut annotations = Vec::new();
        let outcome = match &policy.kind {
            Kind::Wasm(w) => w
                .evaluate_before(review, &policy.settings, cluster.clone(), deadline)
                .map(|o| (o.decision, o.used_preset_pools)),
            Kind::Cel(c) => c
                .evaluate(review, cluster.as_ref())
                .map(|o| (o.decision, o.used_preset_pools)),
            Kind::Native(n) => match n.evaluate(review, cluster.as_ref()) {
                Ok(None) => return None,
                Ok(Some(o)) => {
                    annotations = o.annotations;
                    Ok((o.decision, o.used_preset_pools))
                }
                Err(f) => Err(f),
            },
        };
        Some(self.judge(policy, review, apply, outcome, annotations))
    }

    /// Turn a policy's outcome into its result (and patched review).
    fn judge(
        &self,
        policy: &Policy,
        review: &Review,
        apply: bool,
        outcome: Result<(Decision, bool), Fault>,
        annotations: Vec<(String, String)>,
    ) -> (PolicyResult, Option<Review>) {
        let fault = |fault: Fault| {
            (
                PolicyResult::from_fault(&policy.name, policy.mode, policy.failure_policy, fault),
                None,
            )
        };
        let (decision, used_preset) = match outcome {
            Ok(ok) => ok,
            Err(f) => return fault(f),
        };
        let (decision, patch) = match parse_patch(&policy.name, decision) {
            Ok(ok) => ok,
            Err(f) => return fault(f),
        };
        let mut next = None;
        // A policy in audit mode only observes: its patch is reported, never applied.
        if apply
            && policy.mode != Mode::Audit
            && let Some(patch) = &patch
        {
            match apply_patch(&policy.name, review, patch) {
                Ok(review) => next = Some(review),
                Err(f) => return fault(f),
            }
        }
        let patch_value = patch.map(|p| serde_json::to_value(p).unwrap_or(Value::Null));
        let mut result =
            PolicyResult::from_decision(&policy.name, policy.mode, decision, patch_value);
        if used_preset {
            result.warnings.push(PRESET_POOLS_WARNING.to_string());
        }
        result.annotations = annotations.into_iter().collect();
        (result, next)
    }
}

/// Split the decision's patch text off and parse it as RFC 6902.
fn parse_patch(
    policy: &str,
    mut decision: Decision,
) -> Result<(Decision, Option<json_patch::Patch>), Fault> {
    let Some(text) = decision.patch.take() else {
        return Ok((decision, None));
    };
    let patch: json_patch::Patch = serde_json::from_str(&text).map_err(|e| {
        Fault::new(
            FaultKind::BadOutput,
            format!("policy {policy} returned an invalid JSON Patch: {e}"),
        )
    })?;
    Ok((decision, (!patch.0.is_empty()).then_some(patch)))
}

fn apply_patch(policy: &str, review: &Review, patch: &json_patch::Patch) -> Result<Review, Fault> {
    let mut object = review.object().clone();
    json_patch::patch(&mut object, patch).map_err(|e| {
        Fault::new(
            FaultKind::BadOutput,
            format!(
                "policy {policy}: its patch does not apply to {}: {e}",
                review.describe()
            ),
        )
    })?;
    review.with_object(object).map_err(|e| {
        Fault::new(
            FaultKind::BadOutput,
            format!("policy {policy}: its patch broke the object: {e}"),
        )
    })
}
