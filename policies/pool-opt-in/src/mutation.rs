//! The namespace opt-in of `pool-opt-in`: pods in a namespace labelled
//! `<namespaceLabel>=<pool name>` get the pool's tolerations and nodeSelector,
//! the toleration-injecting webhook cluster-autoscaler's maintainers recommend
//! (kubernetes/autoscaler #2377, #3163).
//!
//! Nothing is added when the pod's nodeSelector already gives one of the
//! pool's label keys another value (the pod chose elsewhere), or when the pool
//! has no label to select it by (tolerating without selecting is what the
//! policy denies). Both cases come back as warnings. Additions are computed
//! from what is missing, so the patch is idempotent.

use serde_json::{Value, json};
use tollgate_sdk::patch::pointer;
use tollgate_sdk::scheduling::tolerated;
use tollgate_sdk::{Host, HostExt, NodePool, Patch, PodPlacement, Review, Taint};

use autoscaler_isolation_common::describe;
use autoscaler_isolation_common::pools::{expected_labels, is_hard};
use autoscaler_isolation_common::raw::{RawObject, append, ensure_objects, template_segments};

/// The patch (possibly empty) and warnings of the namespace opt-in.
#[derive(Debug, Default)]
pub struct OptIn {
    /// Operations to apply.
    pub patch: Patch,
    /// The pool the namespace opts its pods in to, when there is a patch.
    pub pool: Option<String>,
    /// Why nothing was added, when the namespace asked for a pool.
    pub warnings: Vec<String>,
}

/// The pool the review's namespace asks for, by its `label`, if any.
fn requested_pool(review: &Review, host: &dyn Host, label: &str) -> Option<String> {
    if review.namespace.is_empty() {
        return None;
    }
    let namespace = host.get_object("v1", "Namespace", "", &review.namespace)?;
    let labels = tollgate_sdk::placement::string_map(namespace.pointer("/metadata/labels"));
    labels.get(label).cloned()
}

/// Compute the opt-in for the review's pod.
pub fn opt_in(
    review: &Review,
    pod: &PodPlacement,
    pools: &[NodePool],
    host: &dyn Host,
    object: &RawObject<'_>,
    label: &str,
) -> OptIn {
    let mut out = OptIn::default();
    let Some(name) = requested_pool(review, host, label) else {
        return out;
    };
    let Some(pool) = pools.iter().find(|p| p.name == name) else {
        out.warnings.push(format!(
            "namespace {} is labelled {label}={name}, but there is no autoscaler pool {name} (known: {}); \
             {} was not placed on a pool.",
            review.namespace,
            describe::pool_names(pools),
            describe::subject(review)
        ));
        return out;
    };
    let expected = expected_labels(pool);
    if expected.is_empty() {
        out.warnings.push(format!(
            "namespace {} asks for autoscaler pool {name}, which declares no labels to select it by; {} \
             was not placed on it. Declare a pool label.",
            review.namespace,
            describe::subject(review)
        ));
        return out;
    }
    let conflicts: Vec<String> = expected
        .iter()
        .filter_map(|(k, v)| {
            pod.node_selector
                .get(k)
                .filter(|have| *have != v)
                .map(|have| format!("{k}={have}"))
        })
        .collect();
    if !conflicts.is_empty() {
        out.warnings.push(format!(
            "namespace {} asks for autoscaler pool {name}, but {} already selects {}; it was left as is.",
            review.namespace,
            describe::subject(review),
            conflicts.join(", ")
        ));
        return out;
    }
    // Only a pod that is placed needs the raw object (parsed on first use).
    add_tolerations(&mut out.patch, object.value(), pod, pool);
    add_node_selector(&mut out.patch, object.value(), pod, &expected);
    if !out.patch.is_empty() {
        out.pool = Some(name);
    }
    out
}

/// A toleration of exactly `taint`.
fn toleration_for(taint: &Taint) -> Value {
    match &taint.value {
        Some(value) => {
            json!({"key": taint.key, "operator": "Equal", "value": value, "effect": taint.effect.as_str()})
        }
        None => json!({"key": taint.key, "operator": "Exists", "effect": taint.effect.as_str()}),
    }
}

fn add_tolerations(patch: &mut Patch, object: &Value, pod: &PodPlacement, pool: &NodePool) {
    let mut segments = template_segments(&pod.template_path);
    segments.extend(["spec", "tolerations"]);
    for taint in pool
        .taints
        .iter()
        .filter(|t| is_hard(t) && !tolerated(&pod.tolerations, t))
    {
        append(patch, object, &segments, toleration_for(taint));
    }
}

fn add_node_selector(
    patch: &mut Patch,
    object: &Value,
    pod: &PodPlacement,
    expected: &tollgate_sdk::Labels,
) {
    let missing: Vec<(&String, &String)> = expected
        .iter()
        .filter(|(k, _)| !pod.node_selector.contains_key(*k))
        .collect();
    if missing.is_empty() {
        return;
    }
    let mut segments = template_segments(&pod.template_path);
    segments.extend(["spec", "nodeSelector"]);
    let selector = ensure_objects(patch, object, &segments);
    for (key, value) in missing {
        patch.add(pointer(&selector, &[key]), json!(value));
    }
}
