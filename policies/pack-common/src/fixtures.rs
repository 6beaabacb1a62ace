//! Test fixtures for the pack's policies (feature `fixtures`): a kube-hetzner
//! style autoscaler pool, nodes, workloads modelled on the corpus manifests
//! (written small and inline, not copied), a wrapper that puts one pod
//! template into every pod kind, and the mutation round-trip check
//! ([`mutate`]).

use serde_json::{Value, json};
use tollgate_sdk::patch::apply;
use tollgate_sdk::testing::TestHost;
use tollgate_sdk::{Decision, NodePool, Policy, Taint, TaintEffect};

use crate::POD_KINDS;
use crate::describe::{FIXED_BY_PATCH, without_patch_note};

/// kube-hetzner's `autoscaler_nodepools` entry `batman` in cluster `k3s`, with
/// the dedicated taint and label the pack asks for.
pub fn batman_pool() -> NodePool {
    NodePool {
        name: "k3s-batman".into(),
        min_size: 0,
        max_size: 2,
        name_prefix: Some("k3s-batman-".into()),
        taints: vec![Taint {
            key: "dedicated".into(),
            value: Some("autoscaler".into()),
            effect: TaintEffect::NoSchedule,
        }],
        labels: [(
            "node.kubernetes.io/role".to_string(),
            "autoscaler".to_string(),
        )]
        .into(),
        source: "config".into(),
        ..Default::default()
    }
}

/// kube-hetzner's default: a pool declared without taints or labels.
pub fn bare_pool() -> NodePool {
    NodePool {
        name: "k3s-robin".into(),
        max_size: 3,
        name_prefix: Some("k3s-robin-".into()),
        source: "config".into(),
        ..Default::default()
    }
}

/// A pool Node as k3s registers it with kube-hetzner's node-taint/node-label.
pub fn pool_node(name: &str, labels: Value, taints: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"providerID": "hcloud://1234", "taints": taints}})
}

/// The pod template of k3s's packaged metrics-server: CriticalAddonsOnly and
/// control-plane tolerations, no affinity, an emptyDir `tmp-dir`,
/// priority class `system-node-critical`.
pub fn metrics_server_template() -> Value {
    json!({
        "metadata": {"labels": {"k8s-app": "metrics-server"}},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [
                {"key": "CriticalAddonsOnly", "operator": "Exists"},
                {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "volumes": [{"name": "tmp-dir", "emptyDir": {}}],
            "containers": [{"name": "metrics-server", "image": "rancher/mirrored-metrics-server:v0.9.0",
                "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}}}]
        }
    })
}

/// kube-hetzner's cluster-autoscaler pod template: control-plane toleration,
/// required control-plane affinity, a hostPath volume, no priority class.
pub fn cluster_autoscaler_template() -> Value {
    json!({
        "metadata": {"labels": {"app": "cluster-autoscaler"}},
        "spec": {
            "tolerations": [{"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]}}},
            "volumes": [{"name": "ssl-certs", "hostPath": {"path": "/etc/ssl/certs"}}],
            "containers": [{"name": "cluster-autoscaler", "image": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.0"}]
        }
    })
}

/// hcloud-csi-controller's pod template: only a *preferred* affinity for cloud
/// nodes, an emptyDir `socket-dir`.
pub fn csi_controller_template() -> Value {
    json!({
        "metadata": {"labels": {"app": "hcloud-csi-controller"}},
        "spec": {
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [
                    {"key": "instance.hetzner.cloud/provided-by", "operator": "In", "values": ["cloud"]}]}}]}},
            "volumes": [{"name": "socket-dir", "emptyDir": {}}],
            "containers": [{"name": "hcloud-csi-driver", "image": "hetznercloud/hcloud-csi-driver"}]
        }
    })
}

/// An ordinary application pod template that opts in to the batman pool.
pub fn batch_worker_template() -> Value {
    json!({
        "metadata": {"labels": {"app": "worker"}},
        "spec": {
            "nodeSelector": {"node.kubernetes.io/role": "autoscaler"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"}],
            "containers": [{"name": "worker", "image": "example/worker"}]
        }
    })
}

/// An object of `kind` in `namespace` named `name` whose pods use `template`.
/// A Pod gets the template's metadata and spec, and an owning ReplicaSet so
/// that it counts as replicated; the other kinds carry the template where the
/// SDK looks for it.
pub fn object(kind: &str, namespace: &str, name: &str, template: &Value) -> Value {
    let meta = json!({"name": name, "namespace": namespace});
    let selector =
        json!({"matchLabels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({}))});
    match kind {
        "Pod" => {
            let mut pod_meta = template.get("metadata").cloned().unwrap_or(json!({}));
            pod_meta["name"] = json!(name);
            pod_meta["namespace"] = json!(namespace);
            pod_meta["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-rs"), "controller": true}]);
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template["spec"]})
        }
        "CronJob" => json!({"apiVersion": "batch/v1", "kind": kind, "metadata": meta,
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        "Job" => {
            json!({"apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": {"template": template}})
        }
        "ReplicationController" => json!({"apiVersion": "v1", "kind": kind, "metadata": meta,
            "spec": {"replicas": 2, "template": template}}),
        "DaemonSet" => json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
            "spec": {"selector": selector, "template": template}}),
        _ => json!({"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
            "spec": {"replicas": 2, "selector": selector, "template": template}}),
    }
}

/// `template` in every pod kind except DaemonSet.
pub fn every_non_daemonset_kind(namespace: &str, name: &str, template: &Value) -> Vec<Value> {
    POD_KINDS
        .iter()
        .filter(|k| **k != "DaemonSet")
        .map(|k| object(k, namespace, name, template))
        .collect()
}

/// The rule ids of a decision's violations.
pub fn rules(decision: &Decision) -> Vec<&str> {
    decision
        .violations
        .iter()
        .map(|v| v.rule.as_str())
        .collect()
}

/// One run of a mutating policy as the engine's mutating path runs it: the
/// decision on the object as it is, the object after its patch, and the
/// decision on that object (the policy's final verdict).
#[derive(Debug)]
pub struct RoundTrip {
    /// The decision on the object under review (its violations and the patch).
    pub first: Decision,
    /// The object after the patch.
    pub mutated: Value,
    /// The decision on the mutated object.
    pub after: Decision,
}

/// A violation as rule, path and message without the mutation note.
fn key(v: &tollgate_sdk::Violation) -> (String, Option<String>, String) {
    (
        v.rule.clone(),
        v.path.clone(),
        without_patch_note(&v.message).to_string(),
    )
}

/// Evaluate `P` on `host`'s object, apply its patch and evaluate again, and
/// check that the policy is self-consistent:
/// - it patches the object, and the patch applies;
/// - a violation of the first decision is gone after the patch exactly when
///   its message says that the patch fixes it ([`crate::describe::fixed_by_patch`]);
/// - the patch brings no new violation;
/// - the mutated object yields no further patch (idempotent).
///
/// # Panics
/// When one of these does not hold (a test failure).
pub fn mutate<P: Policy>(host: &TestHost, settings: Value) -> RoundTrip {
    let first = host.evaluate::<P>(settings.clone());
    let patch = first
        .patch
        .clone()
        .expect("the policy should mutate this object");
    let ops: Vec<Value> = serde_json::from_str(&patch).expect("the patch is a JSON array");
    let mut mutated = host.object.clone();
    apply(&mut mutated, &ops).unwrap_or_else(|e| panic!("patch {patch} does not apply: {e}"));
    let again = TestHost {
        object: mutated.clone(),
        old_object: host.old_object.clone(),
        pools: host.pools.clone(),
        objects: host.objects.clone(),
        ..Default::default()
    };
    let after = again.evaluate::<P>(settings);
    assert_eq!(
        after.patch, None,
        "mutating the mutated object must give no patch (first patch {patch})"
    );
    let remaining: Vec<_> = after.violations.iter().map(key).collect();
    for v in &first.violations {
        let says_fixed = v.message.contains(FIXED_BY_PATCH);
        let gone = !remaining.contains(&key(v));
        assert_eq!(
            says_fixed,
            gone,
            "violation {} ({:?}) {} by the patch {patch} but its message {}: {}",
            v.rule,
            v.path,
            if gone { "is fixed" } else { "is not fixed" },
            if says_fixed {
                "says it is"
            } else {
                "does not say so"
            },
            v.message
        );
    }
    let before: Vec<_> = first.violations.iter().map(key).collect();
    for v in &after.violations {
        assert!(
            before.contains(&key(v)),
            "the patch {patch} brings a new violation: {v:?}"
        );
    }
    RoundTrip {
        first,
        mutated,
        after,
    }
}
