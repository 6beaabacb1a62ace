//! `pool-opt-in`: a pod that tolerates a cluster-autoscaler pool's taints must
//! also select that pool.
//!
//! Tolerating a pool's dedicated taint without selecting the pool lets the
//! scheduler put the pod on a pool node whenever one has room, keeping the
//! pool from scaling down, and off the pool when it was meant to run there.
//! The rule applies to pools whose hard (NoSchedule/NoExecute) taints the pod
//! all tolerates and whose template its selection reaches; it is satisfied
//! when the pod's nodeSelector carries one of the pool's labels, or every
//! required node affinity term has an `In` requirement on one of them.
//! DaemonSet and mirror pods are out of scope (they belong on every node).
//!
//! The policy judges the object as it is and returns its violations together
//! with the patch of the namespace opt-in (mutate, then validate, as the API
//! server runs admission webhooks). With `mutate` (default on), pods in a
//! namespace labelled `<namespaceLabel>=<pool>` (default label
//! `tollgate.dev/node-pool`) get the pool's tolerations and nodeSelector
//! ([`mutation`]). A violation the patch fixes (judged on the patched pod) is
//! still reported, and its message says that `tollgate eval --mutate` and the
//! mutating webhook add the selector; the engine's mutating path applies the
//! patch and judges the patched object again. `mutate: false` only drops the
//! patch (and the note).
//!
//! With no pools the policy allows. The CEL twin (`policy.cel.yaml`) has the
//! validation rule with the same verdicts, whatever `mutate` says.

mod mutation;
#[cfg(test)]
mod tests;

use autoscaler_isolation_common::raw::RawObject;
use autoscaler_isolation_common::scope::{self, SelectorSetting};
use autoscaler_isolation_common::{describe, pools, rule};
use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::patch::{apply, pointer};
use tollgate_sdk::{Decision, Host, Metadata, NodePool, PodPlacement, Policy, Review, Violation};

/// Rule id: the pod tolerates a pool's taints but does not select the pool.
pub const TOLERATES_POOL_WITHOUT_SELECTING: &str = "tolerates-pool-without-selecting";

/// The default namespace label naming the pool a namespace's pods run on.
pub const DEFAULT_NAMESPACE_LABEL: &str = "tollgate.dev/node-pool";

/// Settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Namespace label whose value names the pool the namespace's pods should
    /// run on. Default `tollgate.dev/node-pool`.
    pub namespace_label: String,
    /// Whether to add the pool's tolerations and nodeSelector to pods of
    /// labelled namespaces. Default `true`.
    pub mutate: bool,
    /// Namespaces the policy ignores. Default: none.
    pub exempt_namespaces: Vec<String>,
    /// Pod label selectors the policy ignores. Default: none.
    pub exempt_selectors: Vec<SelectorSetting>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace_label: DEFAULT_NAMESPACE_LABEL.to_string(),
            mutate: true,
            exempt_namespaces: Vec::new(),
            exempt_selectors: Vec::new(),
        }
    }
}

/// The policy.
pub struct PoolOptIn;

impl Policy for PoolOptIn {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "pool-opt-in".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Pods that tolerate an autoscaler pool's taints must select the pool; pods of \
                          namespaces labelled for a pool get its tolerations and nodeSelector."
                    .into(),
            kinds: autoscaler_isolation_common::pod_kinds(),
            mutating: true,
            rules: vec![rule(
                TOLERATES_POOL_WITHOUT_SELECTING,
                "A pod tolerates an autoscaler pool's taints but neither its nodeSelector nor its \
                 required node affinity selects the pool's labels.",
            )],
            capabilities: vec![],
        }
    }

    fn validate(settings: &Settings) -> Result<(), String> {
        if settings.namespace_label.trim().is_empty() {
            return Err("namespaceLabel is empty".into());
        }
        scope::validate_names("exemptNamespaces", &settings.exempt_namespaces)?;
        scope::validate_selectors("exemptSelectors", &settings.exempt_selectors)
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let Some(pod) = scope::covered_pod(review) else {
            return Decision::allow();
        };
        if scope::exempt(
            review,
            pod,
            &settings.exempt_namespaces,
            &settings.exempt_selectors,
        ) {
            return Decision::allow();
        }
        let all_pools = host.node_pools();
        if all_pools.is_empty() {
            return Decision::allow();
        }
        let object = RawObject::new(host);
        let opt_in = if settings.mutate {
            mutation::opt_in(
                review,
                pod,
                &all_pools,
                host,
                &object,
                &settings.namespace_label,
            )
        } else {
            mutation::OptIn::default()
        };
        let offending = offending_pools(pod, &all_pools);
        // The pools the patch leaves offending: judged on the patched pod.
        let after_patch = (!offending.is_empty() && !opt_in.patch.is_empty())
            .then(|| mutated_pod(object.value(), &opt_in.patch, review))
            .flatten()
            .map(|mutated| offending_pools(&mutated, &all_pools));
        let violations = offending
            .into_iter()
            .map(|pool| {
                let fixed = after_patch
                    .as_ref()
                    .is_some_and(|left| !left.iter().any(|p| p.name == pool.name));
                violation(review, pod, pool, opt_in.pool.as_deref().filter(|_| fixed))
            })
            .collect();
        opt_in.warnings.into_iter().fold(
            Decision::from_violations(violations).with_patch(opt_in.patch),
            Decision::warn,
        )
    }
}

/// The pod placement of the object after `patch` (`None` if it does not apply).
fn mutated_pod(
    object: &Value,
    patch: &tollgate_sdk::Patch,
    review: &Review,
) -> Option<PodPlacement> {
    let mut doc = object.clone();
    apply(&mut doc, patch.ops()).ok()?;
    tollgate_sdk::placement::review(&doc, review.operation)
        .ok()?
        .pod
}

/// The pools the pod tolerates and can reach without selecting them.
fn offending_pools<'a>(pod: &PodPlacement, all_pools: &'a [NodePool]) -> Vec<&'a NodePool> {
    all_pools
        .iter()
        .filter(|p| {
            pools::taints_open(pod, p)
                && pools::selection_reaches(pod, p)
                && !pools::selects_explicitly(pod, p)
        })
        .collect()
}

/// The violation for one offending pool; `fixed_by` names the pool the
/// namespace opts the pod in to when the policy's patch fixes the violation
/// (the patched pod selects the pool, or no longer reaches it).
fn violation(
    review: &Review,
    pod: &PodPlacement,
    pool: &NodePool,
    fixed_by: Option<&str>,
) -> Violation {
    let mut message = message(review, pod, pool);
    if let Some(requested) = fixed_by {
        message.push_str(&describe::fixed_by_patch(&format!(
            "add the nodeSelector of pool {requested}, which namespace {} asks for",
            review.namespace
        )));
    }
    Violation::new(TOLERATES_POOL_WITHOUT_SELECTING, message)
        .at(pointer(&pod.template_path, &["spec", "nodeSelector"]))
}

fn message(review: &Review, pod: &PodPlacement, pool: &NodePool) -> String {
    let taints = pool
        .taints
        .iter()
        .filter(|t| pools::is_hard(t))
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let labels = pools::expected_labels(pool);
    let select = match labels.iter().next() {
        Some((k, v)) => format!(
            "add {} {k}: {v} (or a required node affinity on it)",
            describe::template_field(&pod.template_path, "spec.nodeSelector")
        ),
        None => format!("declare a label for pool {} and select it", pool.name),
    };
    format!(
        "{} tolerates the taint(s) {taints} of autoscaler pool {} but does not select the pool, so the \
         scheduler may put its pods on pool nodes whenever they have room (keeping the pool from \
         scaling down) or off the pool when they were meant to run there. Either {select}, or remove \
         the toleration if the workload does not belong on the pool.",
        describe::subject(review),
        pool.name,
    )
}

tollgate_sdk::export_policy!(PoolOptIn);
