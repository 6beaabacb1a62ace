//! The API server's defaulting that runs before admission webhooks and
//! touches scheduling fields, applied to Pods read from files so that audit,
//! `eval` and admission judge the same object (Kyverno #5476 is a tolerations
//! policy that passes offline and fails in a cluster for lack of this):
//!
//! - DefaultTolerationSeconds: `node.kubernetes.io/not-ready` and
//!   `node.kubernetes.io/unreachable` NoExecute tolerations for 300 s, unless
//!   the pod already tolerates them;
//! - Priority: `spec.priority` from `spec.priorityClassName` (the built-in
//!   system classes, or a PriorityClass in the cluster view), or from the
//!   global default class.
//!
//! Idempotent: an object the API server already defaulted is left unchanged.

use serde_json::{Value, json};
use tollgate_sdk::model::{Taint, TaintEffect};
use tollgate_sdk::placement::{array, toleration};
use tollgate_sdk::selector::LabelSelector;

use crate::cluster::ClusterView;

/// `system-node-critical`'s value.
pub const SYSTEM_NODE_CRITICAL: i64 = 2_000_001_000;
/// `system-cluster-critical`'s value.
pub const SYSTEM_CLUSTER_CRITICAL: i64 = 2_000_000_000;

/// Apply the defaults to a Pod (other kinds are returned unchanged).
pub fn default_pod(mut object: Value, cluster: &dyn ClusterView) -> Value {
    if object.get("kind").and_then(Value::as_str) != Some("Pod") {
        return object;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return object;
    };
    let tolerations: Vec<_> = array(spec.get("tolerations"))
        .filter_map(toleration)
        .collect();
    let mut added = Vec::new();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let taint = Taint {
            key: key.into(),
            value: None,
            effect: TaintEffect::NoExecute,
        };
        if !tolerations.iter().any(|t| t.tolerates(&taint)) {
            added.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    if !added.is_empty() {
        let list = spec
            .entry("tolerations")
            .or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(items) = list {
            items.extend(added);
        }
    }
    if spec.get("priority").and_then(Value::as_i64).is_none()
        && let Some(priority) = resolve_priority(
            spec.get("priorityClassName").and_then(Value::as_str),
            cluster,
        )
    {
        spec.insert("priority".into(), json!(priority));
    }
    object
}

/// The value of a priority class (or of the global default when `name` is None).
pub fn resolve_priority(name: Option<&str>, cluster: &dyn ClusterView) -> Option<i64> {
    match name {
        Some("system-node-critical") => Some(SYSTEM_NODE_CRITICAL),
        Some("system-cluster-critical") => Some(SYSTEM_CLUSTER_CRITICAL),
        Some(name) => cluster
            .get("scheduling.k8s.io/v1", "PriorityClass", "", name)
            .and_then(|pc| pc.get("value").and_then(Value::as_i64)),
        None => cluster
            .list(
                "scheduling.k8s.io/v1",
                "PriorityClass",
                None,
                &LabelSelector::default(),
            )
            .iter()
            .find(|pc| pc.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .and_then(|pc| pc.get("value").and_then(Value::as_i64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Empty;

    #[test]
    fn adds_default_tolerations_and_priority_once() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"priorityClassName": "system-node-critical", "containers": []}});
        let once = default_pod(pod, &Empty::default());
        assert_eq!(once["spec"]["priority"], json!(SYSTEM_NODE_CRITICAL));
        assert_eq!(once["spec"]["tolerations"].as_array().unwrap().len(), 2);
        let twice = default_pod(once.clone(), &Empty::default());
        assert_eq!(once, twice, "defaulting is idempotent");
    }
}
