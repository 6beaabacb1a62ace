//! Native tests of the `pool-tenancy` policy with the SDK's in-memory host:
//! allow, deny and mutate, each for a Pod and for a Deployment; the mutation
//! is applied with `tollgate_sdk::patch::apply` and must then pass the policy
//! and be idempotent.

use pool_tenancy::{PoolTenancy, rules};
use tollgate_sdk::model::{Decision, NodePool, Operation, Taint, TaintEffect};
use tollgate_sdk::patch;
use tollgate_sdk::policy::Policy;
use tollgate_sdk::serde_json::{Value, json};
use tollgate_sdk::testing::TestHost;

/// `k3s-batman`, configured as the kube-hetzner example's kube.tf declares it.
fn batman() -> NodePool {
    NodePool {
        name: "k3s-batman".into(),
        min_size: 0,
        max_size: 3,
        name_prefix: Some("k3s-batman-".into()),
        labels: [(
            "node.kubernetes.io/role".to_string(),
            "autoscaler".to_string(),
        )]
        .into(),
        taints: vec![Taint {
            key: "dedicated".into(),
            value: Some("autoscaler".into()),
            effect: TaintEffect::NoSchedule,
        }],
        source: "cluster-autoscaler".into(),
        ..Default::default()
    }
}

/// A second, properly dedicated pool.
fn robin() -> NodePool {
    NodePool {
        name: "k3s-robin".into(),
        min_size: 0,
        max_size: 2,
        name_prefix: Some("k3s-robin-".into()),
        labels: [("node.kubernetes.io/role".to_string(), "robin".to_string())].into(),
        taints: vec![Taint {
            key: "dedicated".into(),
            value: Some("robin".into()),
            effect: TaintEffect::NoSchedule,
        }],
        source: "cluster-autoscaler".into(),
        ..Default::default()
    }
}

/// A pool as kube-hetzner creates it by default: no label, no taint.
fn bare() -> NodePool {
    NodePool {
        name: "k3s-joker".into(),
        max_size: 2,
        name_prefix: Some("k3s-joker-".into()),
        source: "cluster-autoscaler".into(),
        ..Default::default()
    }
}

fn settings() -> Value {
    json!({"tenancies": [{"namespace": "ci", "pool": "k3s-batman"}, {"namespace": "legacy", "pool": "k3s-joker"}]})
}

fn mutating() -> Value {
    let mut s = settings();
    s["mutate"] = json!(true);
    s
}

fn eval(object: &Value, settings: Value) -> Decision {
    TestHost::new(object.clone())
        .with_pools(vec![batman(), robin(), bare()])
        .evaluate::<PoolTenancy>(settings)
}

fn rules_of(decision: &Decision) -> Vec<&str> {
    decision
        .violations
        .iter()
        .map(|v| v.rule.as_str())
        .collect()
}

fn pod_spec(extra: Value) -> Value {
    let mut spec = json!({
        "containers": [{"name": "runner", "image": "ghcr.io/actions/actions-runner:2.327.1",
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

fn pod(namespace: &str, extra: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "runner-0", "namespace": namespace, "labels": {"app": "runner"}},
        "spec": pod_spec(extra)
    })
}

fn deployment(namespace: &str, extra: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "runner", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "runner"}},
            "template": {"metadata": {"labels": {"app": "runner"}}, "spec": pod_spec(extra)}
        }
    })
}

fn placed() -> Value {
    json!({
        "nodeSelector": {"node.kubernetes.io/role": "autoscaler"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"}]
    })
}

/// Apply a decision's patch to `object`, failing the test when it does not apply.
fn patched(object: &Value, decision: &Decision) -> Value {
    let text = decision
        .patch
        .as_deref()
        .unwrap_or_else(|| panic!("expected a patch: {decision:?}"));
    let ops: Vec<Value> = tollgate_sdk::serde_json::from_str(text).expect("patch is a JSON array");
    let mut out = object.clone();
    patch::apply(&mut out, &ops).expect("patch applies");
    out
}

// ---------------------------------------------------------------- allow

#[test]
fn allows_a_pod_that_selects_and_tolerates_its_pool() {
    let decision = eval(&pod("ci", placed()), settings());
    assert!(decision.allowed, "{decision:?}");
    assert!(decision.violations.is_empty());
    assert_eq!(decision.patch, None);
}

#[test]
fn allows_a_deployment_that_selects_and_tolerates_its_pool() {
    let decision = eval(&deployment("ci", placed()), settings());
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.patch, None);
}

#[test]
fn allows_required_node_affinity_instead_of_a_node_selector() {
    let spec = json!({
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "node.kubernetes.io/role", "operator": "In", "values": ["autoscaler"]},
                                  {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
        ]}}},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    });
    let decision = eval(&pod("ci", spec), settings());
    assert!(decision.allowed, "{decision:?}");
}

#[test]
fn leaves_other_namespaces_daemonsets_and_pod_updates_alone() {
    assert!(eval(&pod("shop", json!({})), settings()).allowed);
    assert!(
        eval(
            &deployment("default", json!({"tolerations": [{"operator": "Exists"}]})),
            settings()
        )
        .allowed
    );

    let mut ds_pod = pod("ci", json!({}));
    ds_pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "log-shipper", "uid": "1", "controller": true}]);
    assert!(
        eval(&ds_pod, settings()).allowed,
        "DaemonSet pods follow nodes, not pools"
    );

    let mut ds = deployment("ci", json!({}));
    ds["kind"] = json!("DaemonSet");
    assert!(eval(&ds, settings()).allowed);

    let host = TestHost::new(pod("ci", json!({}))).with_pools(vec![batman()]);
    let settings = pool_tenancy::Settings {
        tenancies: vec![pool_tenancy::Tenancy {
            namespace: "ci".into(),
            pool: "k3s-batman".into(),
        }],
        mutate: false,
    };
    let update = PoolTenancy::evaluate(&host.review(Operation::Update), &settings, &host);
    assert!(
        update.allowed,
        "a Pod's placement is immutable; UPDATEs are not judged"
    );
    let audit = PoolTenancy::evaluate(&host.review(Operation::None), &settings, &host);
    assert!(!audit.allowed, "audit still reports the pod");
}

// ---------------------------------------------------------------- deny

#[test]
fn denies_a_pod_that_neither_selects_nor_tolerates_its_pool() {
    let decision = eval(&pod("ci", json!({})), settings());
    assert!(!decision.allowed);
    assert_eq!(
        rules_of(&decision),
        [rules::MUST_SELECT_POOL, rules::MUST_TOLERATE_POOL_TAINT]
    );
    assert_eq!(
        decision.violations[0].path.as_deref(),
        Some("/spec/nodeSelector")
    );
    assert_eq!(
        decision.violations[1].path.as_deref(),
        Some("/spec/tolerations")
    );
    assert!(
        decision.violations[0]
            .message
            .contains("node.kubernetes.io/role=autoscaler")
    );
    assert!(
        decision.violations[1]
            .message
            .contains("dedicated=autoscaler:NoSchedule")
    );
    assert_eq!(decision.patch, None);
}

#[test]
fn denies_a_deployment_and_points_into_its_template() {
    let decision = eval(
        &deployment("ci", json!({"tolerations": [{"operator": "Exists"}]})),
        settings(),
    );
    assert!(!decision.allowed);
    assert_eq!(
        rules_of(&decision),
        [rules::MUST_SELECT_POOL, rules::BLANKET_TOLERATION]
    );
    assert_eq!(
        decision.violations[0].path.as_deref(),
        Some("/spec/template/spec/nodeSelector")
    );
    assert_eq!(
        decision.violations[1].path.as_deref(),
        Some("/spec/template/spec/tolerations/0")
    );
}

#[test]
fn denies_tolerations_of_other_pools() {
    let mut spec = placed();
    spec["tolerations"] = json!([
        {"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "robin", "effect": "NoSchedule"}
    ]);
    let decision = eval(&pod("ci", spec), settings());
    assert_eq!(rules_of(&decision), [rules::FOREIGN_TOLERATION]);
    assert_eq!(
        decision.violations[0].path.as_deref(),
        Some("/spec/tolerations/1")
    );
    assert!(decision.violations[0].message.contains("k3s-robin"));

    // Exists on the shared key tolerates robin's taint as well.
    let mut spec = placed();
    spec["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
    assert_eq!(
        rules_of(&eval(&pod("ci", spec), settings())),
        [rules::FOREIGN_TOLERATION]
    );
}

#[test]
fn denies_a_selection_that_does_not_pin_the_pool() {
    // Two required terms; the second admits any node.
    let spec = json!({
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "node.kubernetes.io/role", "operator": "In", "values": ["autoscaler"]}]},
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
        ]}}},
        "tolerations": placed()["tolerations"].clone()
    });
    assert_eq!(
        rules_of(&eval(&pod("ci", spec), settings())),
        [rules::MUST_SELECT_POOL]
    );
}

#[test]
fn warns_when_another_pool_carries_the_same_labels() {
    // As the engine sees kube-hetzner's robin pool: no labels declared, so it
    // expects Tollgate's default label, which batman declares too.
    let mut twin = robin();
    twin.labels = batman().labels;
    let host = TestHost::new(pod("ci", placed())).with_pools(vec![batman(), twin]);
    let decision = host.evaluate::<PoolTenancy>(settings());
    assert!(decision.allowed, "the pod cannot do better: {decision:?}");
    assert!(
        decision
            .warnings
            .iter()
            .any(|w| w.starts_with("node pool k3s-robin is expected to carry the same labels")),
        "{decision:?}"
    );
    assert!(
        eval(&pod("ci", placed()), settings()).warnings.is_empty(),
        "distinct labels: no warning"
    );
}

#[test]
fn denies_bindings_the_cluster_cannot_honour() {
    let unknown = json!({"tenancies": [{"namespace": "ci", "pool": "k3s-alfred"}]});
    let decision = eval(&pod("ci", placed()), unknown);
    assert_eq!(rules_of(&decision), [rules::UNKNOWN_POOL]);
    assert!(
        decision.violations[0]
            .message
            .contains("k3s-batman, k3s-robin, k3s-joker")
    );

    let decision = eval(&pod("legacy", json!({})), settings());
    assert_eq!(rules_of(&decision), [rules::POOL_HAS_NO_LABELS]);
    assert!(
        decision
            .warnings
            .iter()
            .any(|w| w.contains("k3s-joker has no NoSchedule/NoExecute taint"))
    );

    let no_pools = TestHost::new(pod("ci", placed())).evaluate::<PoolTenancy>(settings());
    assert_eq!(rules_of(&no_pools), [rules::UNKNOWN_POOL]);
    assert!(no_pools.violations[0].message.contains("known pools: none"));
}

// ---------------------------------------------------------------- mutate

/// Mutate `object`, apply the patch, and check that the result passes both
/// with and without mutation, and that a second round changes nothing.
fn assert_repairs(object: &Value) -> Value {
    let first = eval(object, mutating());
    assert!(first.allowed, "{first:?}");
    assert!(
        first.warnings.iter().any(|w| w.starts_with("added ")),
        "{first:?}"
    );
    let repaired = patched(object, &first);

    let again = eval(&repaired, mutating());
    assert!(again.allowed, "{again:?}");
    assert_eq!(again.patch, None, "the repair is idempotent");
    let judged = eval(&repaired, settings());
    assert!(
        judged.allowed,
        "the repaired object passes without mutation: {judged:?}"
    );
    repaired
}

#[test]
fn mutates_a_bare_pod() {
    let repaired = assert_repairs(&pod("ci", json!({})));
    assert_eq!(
        repaired["spec"]["nodeSelector"],
        json!({"node.kubernetes.io/role": "autoscaler"})
    );
    assert_eq!(
        repaired["spec"]["tolerations"],
        json!([{"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"}])
    );
}

#[test]
fn mutates_a_pod_keeping_its_own_selector_and_tolerations() {
    let spec = json!({
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    });
    let repaired = assert_repairs(&pod("ci", spec));
    assert_eq!(
        repaired["spec"]["nodeSelector"],
        json!({"kubernetes.io/arch": "amd64", "node.kubernetes.io/role": "autoscaler"})
    );
    let tolerations = repaired["spec"]["tolerations"].as_array().map(Vec::len);
    assert_eq!(tolerations, Some(2));
    assert_eq!(
        repaired["spec"]["tolerations"][0]["key"],
        "node.kubernetes.io/not-ready"
    );
}

#[test]
fn mutates_a_deployment_template() {
    let object = deployment("ci", json!({}));
    let first = eval(&object, mutating());
    let ops: Vec<Value> = first
        .patch
        .as_deref()
        .and_then(|p| tollgate_sdk::serde_json::from_str(p).ok())
        .unwrap_or_default();
    assert!(
        ops.iter().all(|op| op["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/spec/template/spec/"))),
        "{ops:?}"
    );
    let repaired = assert_repairs(&object);
    assert_eq!(
        repaired["spec"]["template"]["spec"]["nodeSelector"]["node.kubernetes.io/role"],
        "autoscaler"
    );
    assert_eq!(repaired["spec"]["replicas"], 2);
}

#[test]
fn mutates_a_template_without_spec() {
    let object = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "build", "namespace": "ci"},
        "spec": {"template": {"metadata": {"labels": {"job": "build"}}}}
    });
    let repaired = assert_repairs(&object);
    assert_eq!(
        repaired["spec"]["template"]["spec"]["tolerations"][0]["value"],
        "autoscaler"
    );
}

#[test]
fn mutation_does_not_override_an_explicit_choice() {
    let spec = json!({"nodeSelector": {"node.kubernetes.io/role": "robin"}});
    let decision = eval(&pod("ci", spec), mutating());
    assert!(!decision.allowed);
    assert_eq!(rules_of(&decision), [rules::MUST_SELECT_POOL]);
    assert!(
        decision.violations[0]
            .message
            .contains("node.kubernetes.io/role=robin")
    );
    assert_eq!(decision.patch, None, "a denied object is not patched");
    assert!(decision.warnings.iter().all(|w| !w.starts_with("added ")));

    let spec = json!({"tolerations": [{"operator": "Exists"}]});
    let decision = eval(&deployment("ci", spec), mutating());
    assert_eq!(
        rules_of(&decision),
        [rules::BLANKET_TOLERATION],
        "blanket tolerations are not removed silently"
    );
}

// ---------------------------------------------------------------- settings and metadata

#[test]
fn settings_are_validated() {
    let host = TestHost::new(pod("ci", json!({})));
    let load = |s: Value| tollgate_sdk::policy::load_settings::<PoolTenancy>(&s.to_string());
    assert!(load(settings()).is_ok());
    assert!(load(Value::Null).is_ok(), "no settings: nothing is bound");
    assert!(load(json!({"tenancies": [{"namespace": "ci", "pool": ""}]})).is_err());
    assert!(load(json!({"tenancies": [{"namespace": "", "pool": "k3s-batman"}]})).is_err());
    let twice = load(
        json!({"tenancies": [{"namespace": "ci", "pool": "a"}, {"namespace": "ci", "pool": "b"}]}),
    );
    assert!(twice.is_err_and(|e| e.contains("already bound")));
    assert!(
        load(json!({"tenancy": []})).is_err(),
        "unknown fields are refused"
    );
    assert!(host.evaluate::<PoolTenancy>(Value::Null).allowed);
}

#[test]
fn metadata_lists_every_rule() {
    let metadata = PoolTenancy::metadata();
    assert_eq!(metadata.name, "pool-tenancy");
    assert!(metadata.mutating);
    assert!(!metadata.judges("DaemonSet"));
    assert!(metadata.judges("CronJob"));
    let ids: Vec<&str> = metadata.rules.iter().map(|r| r.id.as_str()).collect();
    for id in [
        rules::UNKNOWN_POOL,
        rules::POOL_HAS_NO_LABELS,
        rules::MUST_SELECT_POOL,
        rules::MUST_TOLERATE_POOL_TAINT,
        rules::BLANKET_TOLERATION,
        rules::FOREIGN_TOLERATION,
    ] {
        assert!(ids.contains(&id), "{id} missing from metadata");
        assert!(
            id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{id} is kebab-case"
        );
    }
}

/// A YAML file of this example, as JSON.
fn sample(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_sample_files_give_the_documented_verdict() {
    let pod = sample("pod.yaml");
    let decision = eval(&pod, sample("settings.yaml"));
    assert!(!decision.allowed);
    assert_eq!(
        rules_of(&decision),
        [rules::MUST_SELECT_POOL, rules::MUST_TOLERATE_POOL_TAINT]
    );

    let decision = eval(&pod, sample("settings-mutate.yaml"));
    assert!(decision.allowed, "{decision:?}");
    let repaired = patched(&pod, &decision);
    assert_eq!(
        repaired["spec"]["nodeSelector"]["node.kubernetes.io/role"],
        "autoscaler"
    );
    assert!(eval(&repaired, sample("settings.yaml")).allowed);
}

#[test]
fn the_sample_files_against_the_kube_hetzner_example_pools() {
    // The pools the engine discovers in examples/clusters/kube-hetzner: batman
    // declares its label and taint; robin declares none, so the engine expects
    // its defaults, which are the same label and taint.
    let mut robin_expected = robin();
    robin_expected.labels = batman().labels;
    robin_expected.taints = batman().taints;
    let host =
        |object: Value| TestHost::new(object).with_pools(vec![batman(), robin_expected.clone()]);

    let pod = sample("pod.yaml");
    let denied = host(pod.clone()).evaluate::<PoolTenancy>(sample("settings.yaml"));
    assert_eq!(
        rules_of(&denied),
        [rules::MUST_SELECT_POOL, rules::MUST_TOLERATE_POOL_TAINT]
    );

    let mutated = host(pod.clone()).evaluate::<PoolTenancy>(sample("settings-mutate.yaml"));
    assert!(mutated.allowed, "{mutated:?}");
    assert!(
        mutated.warnings.iter().any(|w| w.contains("k3s-robin")),
        "{mutated:?}"
    );
    let repaired = patched(&pod, &mutated);
    let again = host(repaired).evaluate::<PoolTenancy>(sample("settings.yaml"));
    assert!(again.allowed && again.violations.is_empty(), "{again:?}");
    assert_eq!(again.patch, None);
}
