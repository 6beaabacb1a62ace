//! Typical placement CEL expressions on the benchmark Pod
//! (`benches/data/pod.json`), shared by the evaluation and CEL benchmarks.

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
