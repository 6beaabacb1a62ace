//! What the evaluation and CEL benchmarks share: the benchmark Pod
//! (`benches/data/pod.json`) and typical placement CEL expressions on it.

use std::path::Path;

use serde_json::Value;

/// The benchmark Pod: a 4.8 KB metrics-server Pod after API-server defaulting.
pub fn pod() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/pod.json"),
    )
    .expect("benches/data/pod.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// (name, expression) pairs; each evaluates to a bool on the benchmark Pod.
pub const PLACEMENT_EXPRESSIONS: &[(&str, &str)] = &[
    (
        "toleration_exists",
        "object.spec.tolerations.exists(t, has(t.key) && t.key == 'dedicated' && t.value == 'autoscaler')",
    ),
    (
        "namespace_equals",
        "object.metadata.namespace == 'kube-system'",
    ),
    (
        "label_lookup",
        "'k8s-app' in object.metadata.labels && object.metadata.labels['k8s-app'] == 'metrics-server'",
    ),
    (
        "required_affinity",
        "has(object.spec.affinity) && has(object.spec.affinity.nodeAffinity) && object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.all(t, t.matchExpressions.exists(e, e.key == 'kubernetes.io/arch' && 'amd64' in e.values))",
    ),
    (
        "blanket_toleration",
        "!object.spec.tolerations.exists(t, !has(t.key) && has(t.operator) && t.operator == 'Exists')",
    ),
];
