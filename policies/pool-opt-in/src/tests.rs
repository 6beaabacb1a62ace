//! Native tests of `pool-opt-in`: tolerating without selecting, explicit
//! selection by nodeSelector and affinity, and the namespace opt-in mutation.

use autoscaler_isolation_common::describe::FIXED_BY_PATCH;
use autoscaler_isolation_common::fixtures::{
    RoundTrip, bare_pool, batch_worker_template, batman_pool, every_non_daemonset_kind,
    metrics_server_template, mutate, object, rules,
};
use serde_json::{Value, json};
use tollgate_sdk::testing::TestHost;
use tollgate_sdk::{Decision, Operation, Policy};

use super::*;

fn tolerating_only() -> Value {
    let mut template = batch_worker_template();
    template["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
    template
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn host(object: Value, objects: Vec<Value>) -> TestHost {
    TestHost::new(object)
        .with_pools(vec![batman_pool(), bare_pool()])
        .with_objects(objects)
}

fn eval(object: Value, settings: Value) -> Decision {
    host(object, vec![]).evaluate::<PoolOptIn>(settings)
}

#[test]
fn tolerating_without_selecting_is_denied_in_every_kind() {
    for obj in every_non_daemonset_kind("batch", "worker", &tolerating_only()) {
        let d = eval(obj, json!({}));
        assert_eq!(rules(&d), vec![TOLERATES_POOL_WITHOUT_SELECTING], "{d:?}");
        assert!(
            d.violations[0]
                .path
                .as_deref()
                .is_some_and(|p| p.ends_with("/spec/nodeSelector"))
        );
        assert!(
            d.violations[0]
                .message
                .contains("node.kubernetes.io/role: autoscaler")
        );
    }
}

#[test]
fn selecting_the_pool_is_allowed() {
    for obj in every_non_daemonset_kind("batch", "worker", &batch_worker_template()) {
        assert!(eval(obj, json!({})).allowed);
    }
    let mut by_affinity = tolerating_only();
    by_affinity["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node.kubernetes.io/role", "operator": "In", "values": ["autoscaler", "gpu"]}]}]}}});
    assert!(
        eval(
            object("Deployment", "batch", "worker", &by_affinity),
            json!({})
        )
        .allowed
    );
    if let Some(terms) = by_affinity
        .pointer_mut("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array_mut)
    {
        terms.push(json!({"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}));
    }
    assert!(
        !eval(
            object("Deployment", "batch", "worker", &by_affinity),
            json!({})
        )
        .allowed,
        "a second term escapes the pool"
    );
}

#[test]
fn pods_that_cannot_reach_the_pool_or_do_not_tolerate_it_are_allowed() {
    let mut elsewhere = tolerating_only();
    elsewhere["spec"]["nodeSelector"] = json!({"node.kubernetes.io/role": "static"});
    assert!(
        eval(
            object("Deployment", "batch", "worker", &elsewhere),
            json!({})
        )
        .allowed
    );
    assert!(
        eval(
            object(
                "Deployment",
                "kube-system",
                "metrics-server",
                &metrics_server_template()
            ),
            json!({})
        )
        .allowed
    );
    assert!(
        eval(
            object("DaemonSet", "batch", "agent", &tolerating_only()),
            json!({})
        )
        .allowed
    );
    assert!(
        eval(
            object("Deployment", "batch", "worker", &tolerating_only()),
            json!({"exemptNamespaces": ["batch"]})
        )
        .allowed
    );
    let none = TestHost::new(object("Deployment", "batch", "worker", &tolerating_only()))
        .evaluate::<PoolOptIn>(json!({}));
    assert!(none.allowed, "no pools");
}

#[test]
fn a_labelled_namespace_opts_pods_in() {
    let ns = namespace("ci", json!({"tollgate.dev/node-pool": "k3s-batman"}));
    let mut template = metrics_server_template();
    template["spec"]
        .as_object_mut()
        .map(|s| s.remove("tolerations"));
    for obj in every_non_daemonset_kind("ci", "runner", &template) {
        let host = host(obj, vec![ns.clone()]);
        let RoundTrip {
            first,
            mutated,
            after,
        } = mutate::<PoolOptIn>(&host, json!({}));
        assert!(
            first.allowed && first.violations.is_empty(),
            "tolerates no pool yet: {first:?}"
        );
        assert!(after.allowed && after.warnings.is_empty(), "{after:?}");
        let tp = host
            .review(Operation::Create)
            .pod
            .map(|p| p.template_path)
            .unwrap_or_default();
        let spec = mutated
            .pointer(&format!("{tp}/spec"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            spec["nodeSelector"],
            json!({"kubernetes.io/os": "linux", "node.kubernetes.io/role": "autoscaler"})
        );
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "dedicated", "operator": "Equal", "value": "autoscaler", "effect": "NoSchedule"}])
        );
    }
}

#[test]
fn a_violation_the_opt_in_fixes_is_reported_with_the_patch() {
    let ns = namespace("ci", json!({"tollgate.dev/node-pool": "k3s-batman"}));
    for obj in every_non_daemonset_kind("ci", "runner", &tolerating_only()) {
        let host = host(obj, vec![ns.clone()]);
        let RoundTrip {
            first,
            mutated,
            after,
        } = mutate::<PoolOptIn>(&host, json!({}));
        assert!(!first.allowed, "judged as it is: {first:?}");
        assert_eq!(rules(&first), vec![TOLERATES_POOL_WITHOUT_SELECTING]);
        assert!(
            first.violations[0].message.ends_with(
                "the mutating webhook add the nodeSelector of pool k3s-batman, which namespace ci asks for."
            ),
            "{}",
            first.violations[0].message
        );
        assert!(after.allowed && after.violations.is_empty(), "{after:?}");
        let tp = host
            .review(Operation::Create)
            .pod
            .map(|p| p.template_path)
            .unwrap_or_default();
        let spec = mutated
            .pointer(&format!("{tp}/spec"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            spec["tolerations"].as_array().map(Vec::len),
            Some(1),
            "it tolerates the pool already"
        );
    }
}

#[test]
fn opt_in_problems_are_warnings() {
    let unknown = namespace("ci", json!({"tollgate.dev/node-pool": "k3s-joker"}));
    let d = host(
        object("Deployment", "ci", "runner", &metrics_server_template()),
        vec![unknown],
    )
    .evaluate::<PoolOptIn>(json!({}));
    assert!(d.allowed && d.patch.is_none());
    assert!(d.warnings[0].contains("no autoscaler pool k3s-joker"));

    let unlabelled_pool = namespace("ci", json!({"tollgate.dev/node-pool": "k3s-robin"}));
    let d = host(
        object("Deployment", "ci", "runner", &metrics_server_template()),
        vec![unlabelled_pool],
    )
    .evaluate::<PoolOptIn>(json!({}));
    assert!(d.patch.is_none() && d.warnings[0].contains("declares no labels"));

    let ns = namespace("ci", json!({"tollgate.dev/node-pool": "k3s-batman"}));
    let mut elsewhere = metrics_server_template();
    elsewhere["spec"]["nodeSelector"] = json!({"node.kubernetes.io/role": "static"});
    let d = host(object("Deployment", "ci", "runner", &elsewhere), vec![ns])
        .evaluate::<PoolOptIn>(json!({}));
    assert!(d.patch.is_none() && d.warnings[0].contains("node.kubernetes.io/role=static"));
}

#[test]
fn without_mutation_only_the_patch_and_its_note_are_dropped() {
    let ns = namespace("ci", json!({"tollgate.dev/node-pool": "k3s-batman"}));
    let host = host(
        object("Deployment", "ci", "runner", &tolerating_only()),
        vec![ns],
    );
    let d = host.evaluate::<PoolOptIn>(json!({"mutate": false}));
    assert_eq!(rules(&d), vec![TOLERATES_POOL_WITHOUT_SELECTING]);
    assert!(d.patch.is_none());
    assert!(!d.violations[0].message.contains(FIXED_BY_PATCH));
    let mutating = host.evaluate::<PoolOptIn>(json!({}));
    assert_eq!((mutating.allowed, rules(&mutating)), (d.allowed, rules(&d)));
    assert!(mutating.patch.is_some());
}

#[test]
fn pod_updates_are_not_mutated() {
    let ns = namespace("ci", json!({"tollgate.dev/node-pool": "k3s-batman"}));
    let host = host(
        object("Pod", "ci", "runner", &metrics_server_template()),
        vec![ns],
    );
    let settings = tollgate_sdk::policy::load_settings::<PoolOptIn>("{}").unwrap_or_default();
    let d = PoolOptIn::evaluate(&host.review(Operation::Update), &settings, &host);
    assert!(d.allowed && d.patch.is_none());
    assert!(tollgate_sdk::policy::load_settings::<PoolOptIn>(r#"{"namespaceLabel": ""}"#).is_err());
}
