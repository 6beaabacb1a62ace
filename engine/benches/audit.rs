//! Audit at scale (docs/benchmarks.md): a generated kube-hetzner-like cluster
//! of 1,000 nodes and 10,000 pods, audited with the whole bundled pack and the
//! scale-down explainer.
//!
//! `cargo bench -p tollgate --bench audit`
//!
//! With `TOLLGATE_WRITE_SCALE_SNAPSHOT=<dir>` it writes the cluster there as a
//! `kind: List` JSON file instead, for measuring the CLI's peak memory:
//! `/usr/bin/time -v target/release/tollgate audit --snapshot <dir> -o json > /dev/null`.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tollgate::audit::{self, explain};
use tollgate::cluster::Snapshot;
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::wasm::{Runtime, RuntimeConfig};

const NODES: usize = 1_000;
const PODS: usize = 10_000;
const REPLICAS: usize = 10;
const POOLS: [&str; 3] = ["k3s-batman", "k3s-robin", "k3s-joker"];

fn node(name: &str, control_plane: bool) -> Value {
    let mut labels =
        json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "k3s_upgrade": "true"});
    let mut taints = json!([]);
    if control_plane {
        labels["node-role.kubernetes.io/control-plane"] = json!("true");
        taints = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    }
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
        "status": {"allocatable": {"cpu": "4", "memory": "7820Mi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]}})
}

/// A Deployment, its ReplicaSet and pods spread over `nodes`.
fn workload(namespace: &str, name: &str, nodes: &[String], first_node: usize) -> Vec<Value> {
    let labels = json!({"app": name});
    let spec = json!({
        "containers": [{"name": "app", "image": "ghcr.io/example/app:1.2.3",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "ports": [{"containerPort": 8080}]}],
        "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"}],
        "nodeSelector": {"node.kubernetes.io/role": "autoscaler"}
    });
    let mut out = vec![
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": spec}}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": format!("{name}-abc"), "namespace": namespace,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "controller": true}]},
            "spec": {"replicas": REPLICAS, "template": {"metadata": {"labels": labels}, "spec": spec}}}),
    ];
    for i in 0..REPLICAS {
        let mut pod_spec = spec.clone();
        pod_spec["nodeName"] = json!(nodes[(first_node + i) % nodes.len()]);
        out.push(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{name}-abc-{i}"), "namespace": namespace, "labels": labels,
                "creationTimestamp": "2026-11-27T10:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-abc"), "controller": true}]},
            "spec": pod_spec, "status": {"phase": "Running"}}));
    }
    out
}

/// The generated cluster: 3 control planes, pool nodes, a cluster-autoscaler
/// Deployment naming the pools, 1,000 Deployments of 10 pods with a PDB each.
fn cluster() -> Vec<Value> {
    let mut objects = Vec::new();
    let mut pool_nodes = Vec::new();
    for i in 0..3 {
        objects.push(node(&format!("k3s-control-plane-{i}"), true));
    }
    for i in 0..NODES - 3 {
        let name = format!("{}-{i:06x}", POOLS[i % POOLS.len()]);
        let mut n = node(&name, false);
        n["metadata"]["labels"]["node.kubernetes.io/role"] = json!("autoscaler");
        n["spec"]["taints"] =
            json!([{"key": "dedicated", "value": "autoscaler", "effect": "NoSchedule"}]);
        objects.push(n);
        pool_nodes.push(name);
    }
    let nodes_flags: Vec<Value> = POOLS
        .iter()
        .map(|p| json!(format!("--nodes=0:400:cx32:fsn1:{p}")))
        .collect();
    let mut command = vec![
        json!("./cluster-autoscaler"),
        json!("--cloud-provider=hetzner"),
    ];
    command.extend(nodes_flags);
    objects.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cluster-autoscaler", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"priorityClassName": "system-cluster-critical",
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]}}},
            "containers": [{"name": "ca", "image": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.0", "command": command}]}}}}));
    for w in 0..PODS / REPLICAS {
        let namespace = format!("team-{}", w % 50);
        objects.extend(workload(
            &namespace,
            &format!("app-{w}"),
            &pool_nodes,
            w * REPLICAS,
        ));
        objects.push(
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": format!("app-{w}"), "namespace": namespace},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": format!("app-{w}")}}},
            "status": {"disruptionsAllowed": 1, "observedGeneration": 1}}),
        );
    }
    objects
}

fn bench(c: &mut Criterion) {
    let objects = cluster();
    if let Some(dir) = std::env::var_os("TOLLGATE_WRITE_SCALE_SNAPSHOT") {
        std::fs::create_dir_all(&dir).expect("snapshot dir");
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        std::fs::write(
            std::path::Path::new(&dir).join("cluster.json"),
            list.to_string(),
        )
        .expect("write snapshot");
        return;
    }
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir: None,
        ..Default::default()
    })
    .expect("engine");
    let evaluator = Evaluator::new(
        PolicySet::load(
            &runtime,
            &["autoscaler-isolation".into()],
            &SetConfig::default(),
        )
        .expect("pack"),
    );
    let snapshot = Arc::new(Snapshot::from_objects(objects));
    let assumptions =
        explain::assumptions(snapshot.autoscaler(), &explain::Overrides::default()).expect("flags");
    let report = audit::run(snapshot.clone(), &evaluator, &assumptions);
    assert_eq!(
        report.scale_down.nodes.len(),
        NODES - 3,
        "every pool node is explained"
    );
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.bench_function("1000_nodes_10000_pods/pack_and_explainer", |b| {
        b.iter(|| audit::run(snapshot.clone(), &evaluator, &assumptions))
    });
    group.bench_function("1000_nodes_10000_pods/explainer_only", |b| {
        b.iter(|| explain::explain(&snapshot, &assumptions))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
