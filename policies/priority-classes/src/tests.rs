//! Native tests of `priority-classes` on corpus-like system components and
//! pool workloads.

use autoscaler_isolation_common::fixtures::{
    bare_pool, batch_worker_template, batman_pool, cluster_autoscaler_template,
    every_non_daemonset_kind, metrics_server_template, object, rules,
};
use serde_json::{Value, json};
use tollgate_sdk::Decision;
use tollgate_sdk::testing::TestHost;

use super::*;

fn eval_with(object: Value, objects: Vec<Value>, settings: Value) -> Decision {
    TestHost::new(object)
        .with_pools(vec![batman_pool()])
        .with_objects(objects)
        .evaluate::<PriorityClasses>(settings)
}

fn eval(object: Value) -> Decision {
    eval_with(object, vec![], json!({}))
}

fn priority_class(name: &str, value: i64, global_default: bool) -> Value {
    json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
        "value": value, "globalDefault": global_default})
}

#[test]
fn k3s_metrics_server_has_a_system_class() {
    for obj in every_non_daemonset_kind("kube-system", "metrics-server", &metrics_server_template())
    {
        assert!(eval(obj).allowed);
    }
}

#[test]
fn kube_hetzner_cluster_autoscaler_lacks_one() {
    for obj in every_non_daemonset_kind(
        "kube-system",
        "cluster-autoscaler",
        &cluster_autoscaler_template(),
    ) {
        let d = eval(obj);
        assert_eq!(rules(&d), vec![SYSTEM_COMPONENT_PRIORITY]);
        assert!(
            d.violations[0]
                .path
                .as_deref()
                .is_some_and(|p| p.ends_with("/spec/priorityClassName"))
        );
        assert!(d.violations[0].message.contains("namespace kube-system"));
    }
    let exempt = json!({"exemptSelectors": [{"matchLabels": {"app": "cluster-autoscaler"}}]});
    assert!(
        eval_with(
            object(
                "Deployment",
                "kube-system",
                "ca",
                &cluster_autoscaler_template()
            ),
            vec![],
            exempt
        )
        .allowed
    );
    let daemonset = object(
        "DaemonSet",
        "kube-system",
        "kured",
        &cluster_autoscaler_template(),
    );
    assert!(eval(daemonset).allowed);
}

#[test]
fn pool_workloads_must_not_use_system_classes() {
    let mut template = batch_worker_template();
    template["spec"]["priorityClassName"] = json!("system-cluster-critical");
    for obj in every_non_daemonset_kind("batch", "worker", &template) {
        let d = eval(obj);
        assert_eq!(rules(&d), vec![POOL_WORKLOAD_SYSTEM_PRIORITY]);
        assert!(d.violations[0].message.contains("k3s-batman"));
    }
    let mut elsewhere = template.clone();
    elsewhere["spec"]["nodeSelector"] = json!({"node.kubernetes.io/role": "static"});
    assert!(
        eval(object("Deployment", "batch", "worker", &elsewhere)).allowed,
        "not a pool workload"
    );
    let as_system = json!({"namespaces": ["batch"]});
    assert!(
        eval_with(
            object("Deployment", "batch", "worker", &template),
            vec![],
            as_system
        )
        .allowed
    );
}

#[test]
fn expendable_pool_workloads_are_warnings() {
    let mut template = batch_worker_template();
    template["spec"]["priorityClassName"] = json!("batch-low");
    let classes = vec![priority_class("batch-low", -100, false)];
    let d = eval_with(
        object("Deployment", "batch", "worker", &template),
        classes.clone(),
        json!({}),
    );
    assert!(d.allowed && d.violations.is_empty());
    assert!(
        d.warnings.len() == 1 && d.warnings[0].starts_with(EXPENDABLE_POOL_WORKLOAD),
        "{d:?}"
    );

    let mut pod = object("Pod", "batch", "worker", &batch_worker_template());
    pod["spec"]["priority"] = json!(-11);
    assert_eq!(eval(pod.clone()).warnings.len(), 1, "spec.priority counts");
    pod["spec"]["priority"] = json!(-10);
    assert!(
        eval(pod).warnings.is_empty(),
        "the cutoff itself is not expendable"
    );

    let default = vec![priority_class("low-default", -50, true)];
    assert_eq!(
        eval_with(
            object("Job", "batch", "w", &batch_worker_template()),
            default,
            json!({})
        )
        .warnings
        .len(),
        1
    );
    let lenient = json!({"expendablePriorityCutoff": -1000});
    assert!(
        eval_with(
            object("Deployment", "batch", "worker", &template),
            classes,
            lenient
        )
        .warnings
        .is_empty()
    );
}

#[test]
fn untainted_pools_take_everything() {
    let d = TestHost::new(object(
        "Deployment",
        "web",
        "shop",
        &json!({"spec": {"priorityClassName": "system-node-critical",
        "containers": [{"name": "c"}]}}),
    ))
    .with_pools(vec![bare_pool()])
    .evaluate::<PriorityClasses>(json!({}));
    assert_eq!(rules(&d), vec![POOL_WORKLOAD_SYSTEM_PRIORITY]);
}

#[test]
fn settings_are_validated() {
    use tollgate_sdk::policy::load_settings;
    assert!(load_settings::<PriorityClasses>(r#"{"systemPriorityClasses": []}"#).is_err());
    assert!(load_settings::<PriorityClasses>(r#"{"expendablePriorityCutoff": "x"}"#).is_err());
    assert!(load_settings::<PriorityClasses>(r#"{"expendablePriorityCutoff": -5}"#).is_ok());
}
