//! The drainability rules, their order, and the version and flag switches,
//! on small hand-built clusters.

use serde_json::{Value, json};

use super::*;

const NOW: &str = "2026-11-27T12:00:00Z";

fn ca(version: &str, extra: &[&str]) -> Value {
    let mut command = vec!["./cluster-autoscaler".to_string()];
    if !extra.iter().any(|f| f.starts_with("--nodes=")) {
        command.push("--nodes=0:3:cx32:fsn1:k3s-batman".to_string());
    }
    command.extend(extra.iter().map(|s| s.to_string()));
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cluster-autoscaler", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "ca",
            "image": format!("registry.k8s.io/autoscaling/cluster-autoscaler:{version}"), "command": command}]}}}})
}

fn node(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn pod(ns: &str, name: &str, node: &str, owner: Option<(&str, &str)>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}, "creationTimestamp": "2026-11-27T11:30:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}}]},
        "status": {"phase": "Running"}});
    if let Some((kind, owner_name)) = owner {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner_name, "controller": true}]);
    }
    p
}

/// A control plane, two pool nodes and cluster-autoscaler, then `extra`
/// (which replaces a default object of the same identity).
fn cluster(version: &str, extra_flags: &[&str], extra: Vec<Value>) -> ScaleDown {
    let mut objects = vec![
        ca(version, extra_flags),
        node(
            "k3s-control-plane-1",
            json!({"node-role.kubernetes.io/control-plane": "true"}),
        ),
        node("k3s-batman-aaa", json!({})),
        node("k3s-batman-bbb", json!({})),
    ];
    objects.extend(extra);
    let snapshot = Snapshot::from_objects(objects);
    let overrides = Overrides {
        now: parse_timestamp(NOW),
        ..Default::default()
    };
    let a = assumptions(snapshot.autoscaler(), &overrides).unwrap();
    explain(&snapshot, &a)
}

fn first_node(s: &ScaleDown) -> &NodeExplanation {
    s.nodes
        .iter()
        .find(|n| n.name == "k3s-batman-aaa")
        .expect("pool node explained")
}

fn reasons(n: &NodeExplanation) -> Vec<&str> {
    n.blockers
        .iter()
        .map(|b| b.reason)
        .chain(n.reasons.iter().map(|r| r.reason))
        .collect()
}

#[test]
fn kube_system_pod_without_pdb_blocks_forever_before_1_33() {
    let p = pod(
        "kube-system",
        "metrics-server-1",
        "k3s-batman-aaa",
        Some(("ReplicaSet", "metrics-server")),
    );
    let s = cluster("v1.32.0", &[], vec![p.clone()]);
    assert_eq!(reasons(first_node(&s)), ["UnmovableKubeSystemPod"]);
    assert!(
        first_node(&s).blockers[0]
            .fix
            .contains("system-components-off-pools")
    );
    assert!(!first_node(&s).removable);

    // 1.33+: only for the first hour after creation (the pod is 30 minutes old).
    let s = cluster("v1.33.0", &[], vec![p.clone()]);
    assert_eq!(reasons(first_node(&s)), ["UnmovableKubeSystemPod"]);
    let mut old = p;
    old["metadata"]["creationTimestamp"] = json!("2026-11-27T10:00:00Z");
    let s = cluster("v1.33.0", &[], vec![old.clone()]);
    assert!(first_node(&s).removable, "{:?}", first_node(&s));
    // The timeout is a flag.
    let s = cluster(
        "v1.33.0",
        &["--blocking-system-pod-distruption-timeout=3h"],
        vec![old],
    );
    assert_eq!(reasons(first_node(&s)), ["UnmovableKubeSystemPod"]);
}

#[test]
fn skip_nodes_with_system_pods_false_disables_rule_9() {
    let p = pod(
        "kube-system",
        "coredns-1",
        "k3s-batman-aaa",
        Some(("ReplicaSet", "coredns")),
    );
    let s = cluster("v1.32.0", &["--skip-nodes-with-system-pods=false"], vec![p]);
    assert!(first_node(&s).removable);
}

#[test]
fn pdb_moves_the_blocker_to_local_storage_then_safe_to_evict_clears_it() {
    let mut p = pod(
        "kube-system",
        "coredns-1",
        "k3s-batman-aaa",
        Some(("ReplicaSet", "coredns")),
    );
    p["spec"]["volumes"] =
        json!([{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "x"}}]);
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "coredns", "namespace": "kube-system"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "coredns-1"}}}, "status": {"disruptionsAllowed": 1}});
    let s = cluster("v1.32.0", &[], vec![p.clone(), pdb.clone()]);
    assert_eq!(reasons(first_node(&s)), ["LocalStorageRequested"]);
    p["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes": "tmp"});
    let s = cluster("v1.32.0", &[], vec![p.clone(), pdb]);
    assert!(first_node(&s).removable);
    // safe-to-evict "true" short-circuits kube-system, local storage and PDB rules.
    p["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"});
    p["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/x"}}]);
    let s = cluster("v1.32.0", &[], vec![p]);
    assert!(first_node(&s).removable);
}

#[test]
fn daemonset_pods_never_block_even_when_not_safe_to_evict() {
    let mut p = pod(
        "kube-system",
        "kured-1",
        "k3s-batman-aaa",
        Some(("DaemonSet", "kured")),
    );
    p["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"});
    p["spec"]["volumes"] = json!([{"name": "host", "hostPath": {"path": "/"}}]);
    let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "kured", "namespace": "kube-system"}});
    let s = cluster("v1.32.0", &[], vec![p, ds]);
    assert!(first_node(&s).removable, "{:?}", first_node(&s));
}

#[test]
fn application_blockers_in_rule_order() {
    let bare = pod("shop", "debug", "k3s-batman-aaa", None);
    let mut unsafe_pod = pod(
        "shop",
        "batch-1",
        "k3s-batman-aaa",
        Some(("ReplicaSet", "batch")),
    );
    unsafe_pod["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"});
    let db = pod(
        "shop",
        "db-0",
        "k3s-batman-aaa",
        Some(("StatefulSet", "db")),
    );
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db-0"}}}, "status": {"disruptionsAllowed": 0}});
    let s = cluster("v1.32.0", &[], vec![bare, unsafe_pod, db, pdb]);
    let mut got = reasons(first_node(&s));
    got.sort();
    assert_eq!(
        got,
        ["NotEnoughPdb", "NotReplicated", "NotSafeToEvictAnnotation"]
    );
}

#[test]
fn custom_controllers_block_only_with_the_flag() {
    let p = pod("shop", "x-1", "k3s-batman-aaa", Some(("MyController", "x")));
    assert_eq!(
        reasons(first_node(&cluster("v1.32.0", &[], vec![p.clone()]))),
        ["NotReplicated"]
    );
    let s = cluster(
        "v1.32.0",
        &["--skip-nodes-with-custom-controller-pods=false"],
        vec![p],
    );
    assert!(first_node(&s).removable);
}

#[test]
fn node_level_reasons() {
    let mut busy = pod(
        "shop",
        "big-1",
        "k3s-batman-aaa",
        Some(("ReplicaSet", "big")),
    );
    busy["spec"]["containers"][0]["resources"]["requests"]["cpu"] = json!("3");
    let s = cluster("v1.32.0", &[], vec![busy]);
    assert_eq!(reasons(first_node(&s)), ["NotUnderutilized"]);

    let mut objects = vec![];
    let mut annotated = node("k3s-batman-aaa", json!({}));
    annotated["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"});
    objects.push(annotated);
    let s = cluster("v1.32.0", &["--nodes=2:3:cx32:fsn1:k3s-batman"], objects);
    let mut got = reasons(first_node(&s));
    got.sort();
    assert_eq!(
        got,
        ["NodeGroupMinSizeReached", "ScaleDownDisabledAnnotation"]
    );
}

#[test]
fn no_place_to_move_when_only_the_pool_fits() {
    let mut p = pod(
        "shop",
        "pinned-1",
        "k3s-batman-aaa",
        Some(("ReplicaSet", "pinned")),
    );
    p["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "k3s-batman-aaa"});
    let s = cluster("v1.32.0", &[], vec![p]);
    let n = first_node(&s);
    assert_eq!(reasons(n), ["NoPlaceToMovePods"]);
    assert!(n.reasons[0].message.contains("pinned-1"));
}

#[test]
fn expendable_pods_never_block() {
    let mut p = pod("shop", "debug", "k3s-batman-aaa", None);
    p["spec"]["priority"] = json!(-100);
    assert!(first_node(&cluster("v1.32.0", &[], vec![p])).removable);
}

#[test]
fn on_completion_only_from_1_36() {
    let mut p = pod("shop", "job-1", "k3s-batman-aaa", Some(("Job", "job")));
    p["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "on-completion"});
    assert!(first_node(&cluster("v1.35.0", &[], vec![p.clone()])).removable);
    assert_eq!(
        reasons(first_node(&cluster("v1.36.0", &[], vec![p]))),
        ["BlockedByOnCompletionPod"]
    );
}
