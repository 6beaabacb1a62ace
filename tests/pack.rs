//! The bundled `autoscaler-isolation` pack through the real engine: what it
//! says about every real manifest of the corpus (pinned, and shown as a table
//! in policies/README.md), that its mutations are self-consistent and
//! idempotent, that each CEL twin gives the same verdicts as its WASM policy,
//! and the README's demo audit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use tollgate::cluster::{ClusterView, Empty, Snapshot};
use tollgate::decision::Verdict;
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::review::Review;

use crate::corpus;
use crate::util::{runtime, tollgate, workspace};

/// The example cluster of the README's demo.
fn example_cluster() -> PathBuf {
    workspace().join("examples/clusters/kube-hetzner")
}

fn pack() -> &'static Evaluator {
    static PACK: OnceLock<Evaluator> = OnceLock::new();
    PACK.get_or_init(|| {
        let set = PolicySet::load(
            runtime(),
            &["autoscaler-isolation".into()],
            &SetConfig::default(),
        )
        .expect("pack loads");
        Evaluator::new(set)
    })
}

/// The example cluster as the cluster view (its cluster-autoscaler gives the pools).
fn cluster() -> Arc<dyn ClusterView> {
    static CLUSTER: OnceLock<Arc<Snapshot>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            Arc::new(Snapshot::load(&example_cluster()).expect("example cluster loads"))
        })
        .clone()
}

/// `policy: [rules]` of the denying results of a verdict.
fn denials(verdict: &Verdict) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in verdict
        .results
        .iter()
        .filter(|r| !r.violations.is_empty() || r.error.is_some())
    {
        let rules = out.entry(r.policy.clone()).or_default();
        rules.extend(r.violations.iter().map(|v| v.rule.clone()));
        if let Some(e) = &r.error {
            rules.insert(format!("error:{:?}", e.kind));
        }
    }
    out
}

fn describe(object: &Value) -> String {
    let s = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    format!("{} {}", s("/kind"), s("/metadata/name"))
}

/// What the pack says about each corpus object that it judges, against the
/// example cluster's pools: `file | object | policy: rules` lines.
fn corpus_findings() -> Vec<String> {
    let cluster = cluster();
    let mut lines = Vec::new();
    for (file, object) in corpus::objects() {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !pack().policies().policies().iter().any(|p| p.judges(&kind)) {
            continue;
        }
        let review =
            Review::from_object(object.clone()).expect("corpus objects are Kubernetes objects");
        let verdict = pack().evaluate(&review, &cluster);
        let found: Vec<String> = denials(&verdict)
            .into_iter()
            .map(|(policy, rules)| {
                format!(
                    "{policy}: {}",
                    rules.into_iter().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        let found = if found.is_empty() {
            "allowed".to_string()
        } else {
            found.join("; ")
        };
        lines.push(format!("{file} | {} | {found}", describe(&object)));
    }
    lines
}

#[test]
fn corpus_verdicts_are_pinned() {
    let expected: Vec<&str> = PINNED
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let got = corpus_findings();
    if std::env::var_os("TOLLGATE_PRINT_CORPUS").is_some() {
        println!("{}", got.join("\n"));
    }
    assert_eq!(
        got, expected,
        "the pack's verdicts on the corpus changed; update PINNED and policies/README.md"
    );
}

/// What the pack says about the corpus (see policies/README.md).
const PINNED: &str = "
k3s/manifests/metrics-server/metrics-server-deployment.yaml | Deployment metrics-server | system-components-off-pools: missing-control-plane-affinity
k3s/manifests/coredns.yaml | Deployment coredns | system-components-off-pools: missing-control-plane-affinity
k3s/manifests/local-storage.yaml | Deployment local-path-provisioner | system-components-off-pools: missing-control-plane-affinity
metrics-server/manifests/base/deployment.yaml | Deployment metrics-server | system-components-off-pools: missing-control-plane-affinity
metrics-server/manifests/components/high-availability/pdb.yaml | PodDisruptionBudget metrics-server | allowed
kubernetes-autoscaler/cluster-autoscaler/cloudprovider/hetzner/examples/cluster-autoscaler-run-on-master.yaml | Deployment cluster-autoscaler | priority-classes: system-component-priority
kube-hetzner/templates/autoscaler.yaml.tpl | Deployment cluster-autoscaler | priority-classes: system-component-priority
hcloud-csi-driver/deploy/kubernetes/hcloud-csi.yml | DaemonSet hcloud-csi-node | allowed
hcloud-csi-driver/deploy/kubernetes/hcloud-csi.yml | Deployment hcloud-csi-controller | priority-classes: system-component-priority; system-components-off-pools: missing-control-plane-affinity
hcloud-cloud-controller-manager/deploy/ccm.yaml | Deployment hcloud-cloud-controller-manager | system-components-off-pools: missing-control-plane-affinity
hcloud-cloud-controller-manager/deploy/ccm-networks.yaml | Deployment hcloud-cloud-controller-manager | system-components-off-pools: missing-control-plane-affinity
hcloud-cloud-controller-manager/README-node-examples/node-metadata-example-2025.yaml | Node node | allowed
hcloud-cloud-controller-manager/README-node-examples/node-metadata-example-2023.yaml | Node master | allowed
";

#[test]
fn mutations_are_self_consistent_and_idempotent() {
    let cluster = cluster();
    let mut mutated_some = 0;
    for (file, object) in corpus::objects() {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if tollgate_sdk::placement::template_path(&kind).is_none() {
            continue;
        }
        let review = Review::from_object(object.clone()).expect("object");
        let first = pack().evaluate_mutating(&review, &cluster);
        let mutated = first
            .mutated
            .clone()
            .expect("mutating evaluation returns the object");
        let patched_policies: BTreeSet<String> = first
            .results
            .iter()
            .filter(|r| r.patch.is_some())
            .map(|r| r.policy.clone())
            .collect();
        if patched_policies.is_empty() {
            continue;
        }
        mutated_some += 1;
        // Self-consistent: the mutated object passes every policy that patched it.
        let validated = pack().evaluate(
            &Review::from_object(mutated.clone()).expect("mutated object"),
            &cluster,
        );
        for result in validated
            .results
            .iter()
            .filter(|r| patched_policies.contains(&r.policy))
        {
            assert!(
                result.violations.is_empty() && result.patch.is_none(),
                "{file} {}: after its own mutation, {} still says {:?} (patch {:?})",
                describe(&object),
                result.policy,
                result.violations,
                result.patch
            );
        }
        // Idempotent: mutating the mutated object changes nothing.
        let again = pack().evaluate_mutating(
            &Review::from_object(mutated.clone()).expect("mutated"),
            &cluster,
        );
        assert!(
            again.results.iter().all(|r| r.patch.is_none()),
            "{file} {}: mutating twice patches again",
            describe(&object)
        );
        assert_eq!(again.mutated.as_ref(), Some(&mutated));
    }
    assert!(
        mutated_some >= 3,
        "the corpus has system components the pack pins; only {mutated_some} were mutated"
    );
}

/// The violations of a verdict, as `(policy, rule, message)`, and its errors.
fn findings(verdict: &Verdict) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in &verdict.results {
        out.extend(
            r.violations
                .iter()
                .map(|v| (r.policy.clone(), v.rule.clone(), v.message.clone())),
        );
        if let Some(e) = &r.error {
            out.push((r.policy.clone(), "error".into(), e.message.clone()));
        }
    }
    out
}

/// Inside each policy the SDK decodes the review into a scratch region sized
/// from the encoded review, and allocates what does not fit there as usual
/// (sdk/src/allocator.rs, sdk/src/guest.rs). Thousands of short, empty
/// annotations spill: each is about 6 bytes encoded, but a B-tree slot of 24
/// bytes on wasm32 (in nodes about half full when filled in order) and its key,
/// in the review and again in the Pod's placement, about 14 times that once
/// decoded, against a region of 6 times the encoded size. Reviews
/// carrying them, alternated with the plain ones on the pack's warm
/// instances, are judged exactly like the plain ones.
#[test]
fn reviews_too_large_for_the_guests_decoding_region_are_judged_like_small_ones() {
    let bench_pod = std::fs::read_to_string(workspace().join("engine/benches/data/pod.json"))
        .expect("engine/benches/data/pod.json");
    let bench_pod: Value = serde_json::from_str(&bench_pod).expect("valid JSON");
    let mut blanket = bench_pod.clone();
    blanket["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
    blanket["metadata"]["namespace"] = json!("shop");
    let cluster = cluster();
    let judge = |object: &Value| {
        findings(&pack().evaluate(
            &Review::from_object(object.clone()).expect("a Pod"),
            &cluster,
        ))
    };
    for (plain, denied) in [(bench_pod, false), (blanket, true)] {
        let mut padded = plain.clone();
        let annotations = padded["metadata"]["annotations"]
            .as_object_mut()
            .expect("the benchmark Pod has annotations");
        for i in 0..4000 {
            annotations.insert(format!("f{i}"), json!(""));
        }
        let expected = judge(&plain);
        assert!(
            expected.iter().all(|(_, rule, _)| rule != "error"),
            "{expected:#?}"
        );
        if denied {
            assert!(
                !expected.is_empty(),
                "a blanket toleration outside kube-system is denied"
            );
        }
        for round in 0..3 {
            assert_eq!(judge(&padded), expected, "padded, round {round}");
            assert_eq!(judge(&plain), expected, "plain, round {round}");
        }
    }
}

/// Inputs for the CEL parity check: the corpus objects and variants of each
/// pod-bearing one that exercise every rule.
fn parity_inputs() -> Vec<Value> {
    // The benchmark Pod: a defaulted metrics-server Pod with 16 annotations
    // and labels, whose nested comprehensions over pools once went over the
    // CEL cost budget.
    let bench_pod = std::fs::read_to_string(workspace().join("engine/benches/data/pod.json"))
        .expect("engine/benches/data/pod.json");
    let bench_pod: Value = serde_json::from_str(&bench_pod).expect("valid JSON");
    let mut inputs = selection_variants(&bench_pod);
    // DaemonSet Pods are out of scope when a DaemonSet controls them, not
    // when it only owns them (the twins test the owner's kind first): with
    // a blanket toleration, denied by three policies unless out of scope.
    for (kind, controller) in [
        ("DaemonSet", json!(true)),
        ("DaemonSet", json!(false)),
        ("ReplicaSet", json!(true)),
    ] {
        let mut owned = bench_pod.clone();
        owned["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        owned["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "other", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": kind, "name": "owner", "uid": "2", "controller": controller},
        ]);
        inputs.push(owned);
    }
    inputs.push(bench_pod);
    for (_, object) in corpus::objects() {
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        inputs.push(object.clone());
        let Some(path) = tollgate_sdk::placement::template_path(&kind) else {
            continue;
        };
        let spec = format!("{path}/spec");
        let variants: Vec<Box<dyn Fn(&mut Value)>> = vec![
            Box::new(|o| o["metadata"]["namespace"] = json!("shop")),
            Box::new(move |o| {
                if let Some(s) = o.pointer_mut(&spec) {
                    s["tolerations"] = json!([{"operator": "Exists"}]);
                }
            }),
            Box::new(|o| {
                let spec =
                    tollgate_sdk::placement::template_path(o["kind"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                if let Some(s) = o.pointer_mut(&format!("{spec}/spec")) {
                    s["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"}]);
                    s["priorityClassName"] = json!("system-cluster-critical");
                }
            }),
            Box::new(|o| {
                let spec =
                    tollgate_sdk::placement::template_path(o["kind"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                if let Some(s) = o.pointer_mut(&format!("{spec}/spec")) {
                    s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]}}});
                    s.as_object_mut().map(|m| m.remove("priorityClassName"));
                }
            }),
        ];
        for variant in variants {
            let mut v = object.clone();
            variant(&mut v);
            inputs.push(v);
        }
    }
    let snapshot = Snapshot::load(&example_cluster()).expect("example cluster");
    inputs.extend(snapshot.of_kind("Node").map(|n| n.as_ref().clone()));
    for taint in [
        "CriticalAddonsOnly=true:NoExecute",
        "dedicated=autoscaler:NoSchedule",
        "node-role.kubernetes.io/control-plane:NoSchedule",
    ] {
        for node in snapshot.of_kind("Node") {
            let mut n = node.as_ref().clone();
            let (kv, effect) = taint.rsplit_once(':').expect("taint");
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            n["spec"]["taints"] = json!([{"key": key, "value": value, "effect": effect}]);
            n["metadata"]["labels"]["node.kubernetes.io/role"] = json!("autoscaler");
            inputs.push(n);
        }
    }
    inputs
}

/// The benchmark Pod with node selections that reach, or miss, the template
/// nodes of [`declared_pools`] by each path of the twins' template lookup:
/// a nodeSelector matching a pool's nodeSelector, a label the nodeSelector
/// shadows, a label only, the default `kubernetes.io/os` a label overrides;
/// required affinity with every operator (`Gt`/`Lt` on numbers and not),
/// `matchFields` on the template's name, an empty term; tolerations that
/// match a pool's taint by key and value, by key only, or not (a wrong value
/// or effect). Each as a system component (kube-system, as the Pod is) and
/// as a pool workload with a system priority class that tolerates every
/// taint (its own tolerations, for the toleration variants).
fn selection_variants(pod: &Value) -> Vec<Value> {
    let term = |e: Value| json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": e}}});
    let requirement = |key: &str, operator: &str, values: &[&str]| {
        term(json!([{"matchExpressions": [{"key": key, "operator": operator, "values": values}]}]))
    };
    let field = |operator: &str, values: &[&str]| {
        term(
            json!([{"matchFields": [{"key": "metadata.name", "operator": operator, "values": values}]}]),
        )
    };
    let selections: Vec<(&str, Value)> = vec![
        ("nodeSelector", json!({"pool": "gpu"})),
        ("nodeSelector", json!({"pool": "other"})),
        ("nodeSelector", json!({"tier": "5"})),
        ("nodeSelector", json!({"kubernetes.io/os": "windows"})),
        (
            "nodeSelector",
            json!({"kubernetes.io/os": "linux", "tier": "2"}),
        ),
        ("affinity", requirement("tier", "Gt", &["3"])),
        ("affinity", requirement("tier", "Lt", &["3"])),
        ("affinity", requirement("tier", "Gt", &["three"])),
        ("affinity", requirement("pool", "In", &["other"])),
        ("affinity", requirement("pool", "NotIn", &["gpu"])),
        ("affinity", requirement("pool", "DoesNotExist", &[])),
        ("affinity", requirement("pool", "Exists", &[])),
        ("affinity", field("In", &["gpu-template"])),
        ("affinity", field("NotIn", &["gpu-template"])),
        (
            "affinity",
            term(
                json!([{}, {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]),
            ),
        ),
        (
            "tolerations",
            json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]),
        ),
        (
            "tolerations",
            json!([{"key": "dedicated", "value": "other"}]),
        ),
        (
            "tolerations",
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
        ),
        (
            "tolerations",
            json!([{"key": "batch", "operator": "Exists"}]),
        ),
        (
            "tolerations",
            json!([{"key": "batch", "value": ""}, {"key": "soft", "effect": ""}]),
        ),
        (
            "tolerations",
            json!([{"key": "", "operator": "Exists", "effect": "NoSchedule"}]),
        ),
    ];
    let mut out = Vec::new();
    for (field, selection) in selections {
        let mut system = pod.clone();
        system["spec"]["affinity"] = json!({});
        system["spec"]["nodeSelector"] = json!({});
        system["spec"][field] = selection;
        let mut workload = system.clone();
        workload["metadata"]["namespace"] = json!("shop");
        workload["spec"]["priorityClassName"] = json!("system-cluster-critical");
        if field != "tolerations" {
            workload["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        }
        out.extend([system, workload]);
    }
    out
}

/// Pools whose template labels come from each source: a nodeSelector label
/// that shadows a label of the same key, labels only (one of them the
/// `kubernetes.io/os` the template otherwise defaults), no labels at all.
fn declared_pools() -> Vec<tollgate_sdk::model::NodePool> {
    use tollgate_sdk::model::{NodePool, Taint, TaintEffect};
    let labels = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let pool = |name: &str, node_selector, labels, taints| NodePool {
        name: name.into(),
        min_size: 0,
        max_size: 3,
        node_selector,
        name_prefix: None,
        taints,
        labels,
        source: "config".into(),
    };
    let taint = |key: &str, value: Option<&str>, effect| Taint {
        key: key.into(),
        value: value.map(Into::into),
        effect,
    };
    vec![
        pool(
            "gpu",
            labels(&[("pool", "gpu")]),
            labels(&[
                ("pool", "other"),
                ("tier", "5"),
                ("kubernetes.io/os", "windows"),
            ]),
            vec![taint("dedicated", Some("gpu"), TaintEffect::NoSchedule)],
        ),
        pool(
            "batch",
            labels(&[]),
            labels(&[("tier", "2")]),
            vec![taint("batch", None, TaintEffect::NoExecute)],
        ),
        pool(
            "soft",
            labels(&[]),
            labels(&[]),
            vec![taint("soft", None, TaintEffect::PreferNoSchedule)],
        ),
    ]
}

/// The cluster contexts of the parity checks, by name.
fn contexts() -> Vec<(&'static str, Arc<dyn ClusterView>)> {
    vec![
        ("example cluster", cluster()),
        ("no context", Arc::new(Empty::default())),
        (
            "declared pools",
            Arc::new(Empty::with_pools(declared_pools())),
        ),
    ]
}

#[test]
fn cel_twins_give_the_same_verdicts_as_the_wasm_policies() {
    let twins: Vec<PathBuf> = std::fs::read_dir(workspace().join("policies"))
        .expect("policies/")
        .filter_map(|e| e.ok().map(|e| e.path().join("policy.cel.yaml")))
        .filter(|p| p.is_file())
        .collect();
    assert!(
        twins.len() >= 4,
        "at least four policies ship a CEL twin, found {}",
        twins.len()
    );
    let inputs = parity_inputs();
    let contexts = contexts();
    // The rules that read the pools' template nodes deny some of the
    // selection variants against the declared pools.
    let mut denied_with_declared_pools = BTreeSet::new();
    for twin in &twins {
        let cel = Evaluator::new(
            PolicySet::load(
                runtime(),
                &[twin.display().to_string()],
                &SetConfig::default(),
            )
            .expect("CEL twin compiles"),
        );
        let name = cel.policies().policies()[0].name.clone();
        let wasm = pack()
            .policies()
            .policies()
            .iter()
            .find(|p| p.name == name)
            .expect("twin of a pack policy")
            .clone();
        let mut compared = 0;
        for input in &inputs {
            let kind = input
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !wasm.judges(kind) {
                continue;
            }
            let review = Review::from_object(input.clone()).expect("input");
            for (context, cluster) in &contexts {
                let cel_verdict = cel.evaluate(&review, cluster);
                let wasm_verdict = pack().evaluate(&review, cluster);
                let wasm_result = wasm_verdict
                    .results
                    .iter()
                    .find(|r| r.policy == name)
                    .expect("judged");
                let cel_result = &cel_verdict.results[0];
                assert!(
                    cel_result.error.is_none(),
                    "{name} CEL twin failed on {} ({context}): {:?}",
                    describe(input),
                    cel_result.error
                );
                let rules = |r: &tollgate::decision::PolicyResult| {
                    r.violations
                        .iter()
                        .map(|v| v.rule.clone())
                        .collect::<BTreeSet<_>>()
                };
                assert_eq!(
                    (cel_result.allowed, rules(cel_result)),
                    (wasm_result.allowed, rules(wasm_result)),
                    "{name}: CEL twin and WASM policy disagree on {} ({context})",
                    describe(input)
                );
                compared += 1;
                if *context == "declared pools" {
                    denied_with_declared_pools.extend(rules(cel_result));
                }
            }
        }
        assert!(compared >= 20, "{name}: only {compared} comparisons");
    }
    for rule in [
        "missing-control-plane-affinity",
        "tolerates-pool-taint",
        "tolerates-pool-without-selecting",
        "pool-workload-system-priority",
    ] {
        assert!(
            denied_with_declared_pools.contains(rule),
            "no input reaches a declared pool for {rule}: {denied_with_declared_pools:?}"
        );
    }
}

/// The input in an AdmissionReview that sets every request field a policy
/// sees (an UPDATE, dry run, sub-resource, user and groups).
fn in_admission_review(object: &Value) -> Review {
    Review::from_admission(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": object["kind"]},
            "namespace": object["metadata"]["namespace"],
            "operation": "UPDATE",
            "subResource": "status",
            "dryRun": true,
            "userInfo": {"username": "system:serviceaccount:kube-system:deployment-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": object
        }
    }))
    .expect("an admission review")
}

/// Every policy of the pack, and the echo guest (which reports the request
/// and every host import), decide every parity input the same whether the
/// review reaches it encoded (`evaluate-encoded`, which the SDK's policies
/// export) or lowered as the WIT record (`evaluate`), in every cluster
/// context, as a plain object and inside an admission request.
#[test]
fn pack_policies_decide_the_same_on_encoded_and_lowered_reviews() {
    use tollgate::wasm::{Instances, Limits, WasmPolicy};
    let inputs = parity_inputs();
    let contexts = contexts();
    let mut components: Vec<(String, Vec<u8>)> = tollgate::pack::policies("autoscaler-isolation")
        .expect("bundled pack")
        .iter()
        .map(|(name, bytes)| (name.to_string(), bytes.to_vec()))
        .collect();
    let echo = crate::util::Guest::Echo.wasm();
    components.push(("echo".into(), std::fs::read(echo).expect("echo guest")));
    for (name, bytes) in &components {
        let encoded = WasmPolicy::load(runtime(), name, bytes, Limits::default(), &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .with_instances(Instances::Reuse);
        assert!(
            encoded.takes_encoded_reviews(),
            "{name} is built with the SDK"
        );
        let lowered = encoded
            .with_lowered_reviews()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let kinds = &encoded.metadata().kinds;
        let mut compared = 0;
        for input in &inputs {
            let kind = input["kind"].as_str().unwrap_or_default();
            if !kinds.iter().any(|k| k == kind || k == "*") {
                continue;
            }
            let reviews = [
                Review::from_object(input.clone()).expect("input"),
                in_admission_review(input),
            ];
            for review in &reviews {
                for (context, cluster) in &contexts {
                    let decide = |policy: &WasmPolicy| {
                        policy
                            .evaluate(review, "{}", cluster.clone())
                            .map(|o| (o.decision, o.used_preset_pools))
                            .unwrap_or_else(|f| panic!("{name} on {}: {f}", describe(input)))
                    };
                    assert_eq!(
                        decide(&encoded),
                        decide(&lowered),
                        "{name}: encoded and lowered reviews decide differently on {} ({context})",
                        describe(input)
                    );
                    compared += 1;
                }
            }
        }
        // pdb-drainable judges the corpus' one PodDisruptionBudget.
        assert!(compared >= 6, "{name}: only {compared} comparisons");
    }
}

#[test]
fn readme_demo_audit_explains_the_stranded_system_pods() {
    let out = tollgate(
        &[
            "audit",
            "--snapshot",
            &example_cluster().display().to_string(),
            "-o",
            "json",
            "--now",
            "2026-11-27T12:00:00Z",
        ],
        None,
    );
    assert_eq!(out.code, 1, "the demo cluster has findings: {}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON report");
    let blocked: Vec<(String, String)> = report["scaleDown"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .flat_map(|n| {
            n["blockers"].as_array().into_iter().flatten().map(|b| {
                (
                    b["pod"].as_str().unwrap_or_default().to_string(),
                    b["reason"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect();
    for (prefix, reason) in [
        ("kube-system/metrics-server-", "UnmovableKubeSystemPod"),
        ("kube-system/coredns-", "UnmovableKubeSystemPod"),
        (
            "kube-system/hcloud-csi-controller-",
            "UnmovableKubeSystemPod",
        ),
    ] {
        assert!(
            blocked
                .iter()
                .any(|(pod, r)| pod.starts_with(prefix) && r == reason),
            "{prefix}* should block with {reason}; blockers: {blocked:?}"
        );
    }
    let findings = report["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["policy"] == "system-components-off-pools"
                && f["resource"]["kind"] == "Deployment"
                && f["resource"]["name"] == "metrics-server"),
        "the audit names the metrics-server Deployment as the thing to fix"
    );
    assert!(
        report["scaleDown"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["removable"] == true)
    );
}
