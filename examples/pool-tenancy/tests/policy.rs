//! Native tests of the `pool-tenancy` policy with the SDK's in-memory host:
//! allow, deny and mutate, each for a Pod and for a Deployment. Mutation is
//! tested as the engine runs it: the policy reports the violations of the
//! object as it is together with its patch; the patch is applied with
//! `tollgate_sdk::patch::apply` and the patched object judged again, where
//! what the patch fixes is gone and mutating again yields no patch.

use pool_tenancy::{FIXED_BY_MUTATION, PoolTenancy, rules};
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

/// The engine's mutating path, natively: judge `object` with `settings`,
/// apply the patch, and judge the patched object again (that second decision
/// is the verdict). Returns the first decision, the patched object and the
/// verdict; the verdict must carry no patch (the patch is idempotent).
fn mutate(object: &Value, settings: Value) -> (Decision, Value, Decision) {
    let first = eval(object, settings.clone());
    let patched = patched(object, &first);
    let verdict = eval(&patched, settings);
    assert_eq!(
        verdict.patch, None,
        "mutating again patches nothing: {verdict:?}"
    );
    (first, patched, verdict)
}

/// Round trip of an object whose every violation the patch fixes: the first
/// decision reports them (each message says the patch fixes it), and the
/// patched object passes with and without mutation.
fn assert_repairs(object: &Value) -> Value {
    let (first, patched, verdict) = mutate(object, mutating());
    assert!(!first.allowed, "the object as it is is reported: {first:?}");
    assert!(
        first
            .violations
            .iter()
            .all(|v| v.message.contains(FIXED_BY_MUTATION)),
        "{first:?}"
    );
    assert!(
        verdict.allowed && verdict.violations.is_empty(),
        "{verdict:?}"
    );
    let judged = eval(&patched, settings());
    assert!(
        judged.allowed,
        "the patched object passes without mutation: {judged:?}"
    );
    patched
}

#[test]
fn mutates_a_bare_pod() {
    let object = pod("ci", json!({}));
    let first = eval(&object, mutating());
    assert_eq!(
        rules_of(&first),
        [rules::MUST_SELECT_POOL, rules::MUST_TOLERATE_POOL_TAINT]
    );
    assert!(
        first.violations[0].message.ends_with(
            "; `tollgate eval --mutate` or the mutating webhook adds it to nodeSelector"
        ),
        "{first:?}"
    );
    assert!(
        first.violations[1]
            .message
            .ends_with("; `tollgate eval --mutate` or the mutating webhook adds it"),
        "{first:?}"
    );
    let repaired = assert_repairs(&object);
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
fn mutation_reports_what_it_fixes_as_validation_does() {
    // Only the patch and the note of what it fixes depend on `mutate`: the
    // violations are those of the object as it is.
    let objects = [
        pod("ci", json!({})),
        deployment("ci", json!({"tolerations": [{"operator": "Exists"}]})),
        pod(
            "ci",
            json!({"nodeSelector": {"node.kubernetes.io/role": "robin"}}),
        ),
        pod("legacy", json!({})),
        pod("ci", placed()),
    ];
    for object in &objects {
        let validating = eval(object, settings());
        let mutating = eval(object, mutating());
        assert_eq!(validating.patch, None);
        assert_eq!(mutating.allowed, validating.allowed, "{mutating:?}");
        assert_eq!(mutating.warnings, validating.warnings);
        let strip = |d: &Decision| -> Vec<(String, String, Option<String>)> {
            d.violations
                .iter()
                .map(|v| {
                    let message = v
                        .message
                        .split(FIXED_BY_MUTATION)
                        .next()
                        .unwrap_or_default();
                    (v.rule.clone(), message.to_string(), v.path.clone())
                })
                .collect()
        };
        assert_eq!(strip(&mutating), strip(&validating));
        assert!(
            validating
                .violations
                .iter()
                .all(|v| !v.message.contains(FIXED_BY_MUTATION)),
            "no note without a patch: {validating:?}"
        );
    }
}

#[test]
fn mutation_does_not_override_an_explicit_choice() {
    // The pod selects another pool: the selection is reported and left alone;
    // the missing toleration is reported and patched.
    let object = pod(
        "ci",
        json!({"nodeSelector": {"node.kubernetes.io/role": "robin"}}),
    );
    let (first, patched, verdict) = mutate(&object, mutating());
    assert_eq!(
        rules_of(&first),
        [rules::MUST_SELECT_POOL, rules::MUST_TOLERATE_POOL_TAINT]
    );
    assert!(
        first.violations[0]
            .message
            .contains("its nodeSelector asks for node.kubernetes.io/role=robin")
    );
    assert!(!first.violations[0].message.contains(FIXED_BY_MUTATION));
    assert!(first.violations[1].message.contains(FIXED_BY_MUTATION));
    assert_eq!(
        patched["spec"]["nodeSelector"],
        json!({"node.kubernetes.io/role": "robin"}),
        "the pod's choice stays"
    );
    assert!(!verdict.allowed);
    assert_eq!(
        rules_of(&verdict),
        [rules::MUST_SELECT_POOL],
        "what the patch fixes is gone: {verdict:?}"
    );

    // A blanket toleration: the selector is patched, the toleration is not
    // removed silently.
    let object = deployment("ci", json!({"tolerations": [{"operator": "Exists"}]}));
    let (first, patched, verdict) = mutate(&object, mutating());
    assert_eq!(
        rules_of(&first),
        [rules::MUST_SELECT_POOL, rules::BLANKET_TOLERATION]
    );
    assert!(first.violations[0].message.contains(FIXED_BY_MUTATION));
    assert!(!first.violations[1].message.contains(FIXED_BY_MUTATION));
    assert_eq!(
        patched["spec"]["template"]["spec"]["tolerations"],
        json!([{"operator": "Exists"}])
    );
    assert_eq!(
        rules_of(&verdict),
        [rules::BLANKET_TOLERATION],
        "blanket tolerations are not removed silently"
    );

    // Nothing the patch could fix: no patch.
    let decision = eval(&pod("legacy", json!({})), mutating());
    assert_eq!(rules_of(&decision), [rules::POOL_HAS_NO_LABELS]);
    assert_eq!(decision.patch, None);
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
    assert_eq!(decision.patch, None);

    // With mutation on, the pod as it is is reported the same way, with the
    // patch; mutating (apply, judge again) admits it.
    let (first, patched, verdict) = mutate(&pod, sample("settings-mutate.yaml"));
    assert!(!first.allowed);
    assert_eq!(rules_of(&first), rules_of(&decision));
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(
        patched["spec"]["nodeSelector"]["node.kubernetes.io/role"],
        "autoscaler"
    );
    assert!(eval(&patched, sample("settings.yaml")).allowed);
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

    let first = host(pod.clone()).evaluate::<PoolTenancy>(sample("settings-mutate.yaml"));
    assert_eq!(rules_of(&first), rules_of(&denied));
    let patched = patched(&pod, &first);
    let verdict = host(patched.clone()).evaluate::<PoolTenancy>(sample("settings-mutate.yaml"));
    assert!(
        verdict.allowed && verdict.violations.is_empty(),
        "{verdict:?}"
    );
    assert_eq!(verdict.patch, None);
    assert!(
        verdict.warnings.iter().any(|w| w.contains("k3s-robin")),
        "the patched pod selects labels robin carries too: {verdict:?}"
    );
    let again = host(patched).evaluate::<PoolTenancy>(sample("settings.yaml"));
    assert!(again.allowed && again.violations.is_empty(), "{again:?}");
}
