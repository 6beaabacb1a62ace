//! Native tests of `pool-workloads-evictable`: cluster-autoscaler's rules on
//! workloads that can reach a pool, the kube-hetzner incident (an untainted
//! pool takes k3s's metrics-server), and the opt-in local-volumes mutation.

use autoscaler_isolation_common::describe::FIXED_BY_PATCH;
use autoscaler_isolation_common::fixtures::{
    RoundTrip, bare_pool, batch_worker_template, batman_pool, cluster_autoscaler_template,
    every_non_daemonset_kind, metrics_server_template, mutate, object, rules,
};
use serde_json::{Value, json};
use tollgate_sdk::testing::TestHost;
use tollgate_sdk::{Decision, NodePool, Policy};

use super::*;

const SAFE_VOLUMES: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes";

fn eval_with(
    object: Value,
    pools: Vec<NodePool>,
    objects: Vec<Value>,
    settings: Value,
) -> Decision {
    TestHost::new(object)
        .with_pools(pools)
        .with_objects(objects)
        .evaluate::<PoolWorkloadsEvictable>(settings)
}

fn eval(object: Value) -> Decision {
    eval_with(object, vec![batman_pool()], vec![], json!({}))
}

fn pdb(namespace: &str, selector: Value, spec: Value, status: Option<Value>) -> Value {
    let mut spec = spec;
    spec["selector"] = selector;
    let mut v = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "budget", "namespace": namespace}, "spec": spec});
    if let Some(s) = status {
        v["status"] = s;
    }
    v
}

fn with_volume(mut template: Value, volume: Value) -> Value {
    template["spec"]["volumes"] = json!([volume]);
    template
}

#[test]
fn a_replicated_pool_worker_is_drainable_in_every_kind() {
    for obj in every_non_daemonset_kind("batch", "worker", &batch_worker_template()) {
        let d = eval(obj);
        assert!(d.allowed, "{d:?}");
    }
}

#[test]
fn a_bare_pod_is_not_replicated() {
    let mut pod = object("Pod", "batch", "worker", &batch_worker_template());
    pod["metadata"]
        .as_object_mut()
        .map(|m| m.remove("ownerReferences"));
    let d = eval(pod);
    assert_eq!(rules(&d), vec!["not-replicated"]);
    assert_eq!(
        d.violations[0].path.as_deref(),
        Some("/metadata/ownerReferences")
    );
    assert!(d.violations[0].message.contains("(NotReplicated)"));
}

#[test]
fn a_finished_bare_pod_is_terminal() {
    let mut pod = object("Pod", "batch", "worker", &batch_worker_template());
    pod["metadata"]
        .as_object_mut()
        .map(|m| m.remove("ownerReferences"));
    pod["spec"]["restartPolicy"] = json!("Never");
    pod["status"] = json!({"phase": "Succeeded"});
    let host = TestHost::new(pod).with_pools(vec![batman_pool()]);
    let audit = PoolWorkloadsEvictable::evaluate(
        &host.review(tollgate_sdk::Operation::None),
        &Settings::default(),
        &host,
    );
    assert!(audit.allowed, "{audit:?}");
}

#[test]
fn custom_controllers_follow_the_flag() {
    let mut pod = object("Pod", "batch", "worker", &batch_worker_template());
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": "w", "controller": true}]);
    assert_eq!(rules(&eval(pod.clone())), vec!["not-replicated"]);
    let lenient = json!({"skipNodesWithCustomControllerPods": false});
    assert!(eval_with(pod, vec![batman_pool()], vec![], lenient).allowed);
}

#[test]
fn kube_hetzner_incident_metrics_server_on_an_untainted_pool() {
    // kube-hetzner pools have no taint by default, so k3s's metrics-server can land there.
    for obj in every_non_daemonset_kind("kube-system", "metrics-server", &metrics_server_template())
    {
        let d = eval_with(obj, vec![bare_pool()], vec![], json!({}));
        assert_eq!(
            rules(&d),
            vec!["unmovable-kube-system-pod", "local-storage-requested"],
            "{d:?}"
        );
        assert!(
            d.violations[1]
                .path
                .as_deref()
                .is_some_and(|p| p.ends_with("/spec/volumes/0"))
        );
        assert!(d.violations[0].message.contains("k3s-robin"));
        assert!(
            d.patch.is_none() && !d.violations[1].message.contains(FIXED_BY_PATCH),
            "annotateLocalVolumes is off by default"
        );
    }
}

#[test]
fn a_pdb_moves_the_blocker_to_local_storage_as_in_eksctl_4969() {
    let budget = pdb(
        "kube-system",
        json!({"matchLabels": {"k8s-app": "metrics-server"}}),
        json!({"maxUnavailable": 1}),
        None,
    );
    let obj = object(
        "Deployment",
        "kube-system",
        "metrics-server",
        &metrics_server_template(),
    );
    let d = eval_with(obj, vec![bare_pool()], vec![budget], json!({}));
    assert_eq!(rules(&d), vec!["local-storage-requested"]);
}

#[test]
fn annotating_local_volumes_lists_the_empty_dir() {
    let budget = pdb(
        "kube-system",
        json!({"matchLabels": {"k8s-app": "metrics-server"}}),
        json!({"maxUnavailable": 1}),
        None,
    );
    let settings = json!({"annotateLocalVolumes": true});
    for obj in every_non_daemonset_kind("kube-system", "metrics-server", &metrics_server_template())
    {
        let host = TestHost::new(obj)
            .with_pools(vec![bare_pool()])
            .with_objects(vec![budget.clone()]);
        let RoundTrip {
            first,
            mutated,
            after,
        } = mutate::<PoolWorkloadsEvictable>(&host, settings.clone());
        assert_eq!(
            rules(&first),
            vec!["local-storage-requested"],
            "judged as it is"
        );
        assert!(
            first.violations[0].message.ends_with(
                "the mutating webhook list it in cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes."
            ),
            "{}",
            first.violations[0].message
        );
        assert!(after.allowed, "{after:?}");
        let tp = host
            .review(tollgate_sdk::Operation::Create)
            .pod
            .map(|p| p.template_path)
            .unwrap_or_default();
        let annotations = mutated
            .pointer(&format!("{tp}/metadata/annotations"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(annotations[SAFE_VOLUMES], "tmp-dir");
    }
}

#[test]
fn annotating_keeps_existing_entries_and_never_lists_host_paths() {
    let mut template = batch_worker_template();
    template["metadata"]["annotations"] = json!({SAFE_VOLUMES: "socket-dir"});
    template["spec"]["volumes"] = json!([{"name": "socket-dir", "emptyDir": {}}, {"name": "cache", "emptyDir": {}},
        {"name": "certs", "hostPath": {"path": "/etc/ssl/certs"}}]);
    let host = TestHost::new(object("StatefulSet", "batch", "worker", &template))
        .with_pools(vec![batman_pool()]);
    let settings = json!({"annotateLocalVolumes": true});
    let RoundTrip {
        first,
        mutated,
        after,
    } = mutate::<PoolWorkloadsEvictable>(&host, settings);
    assert_eq!(
        rules(&first),
        vec!["local-storage-requested", "local-storage-requested"]
    );
    assert!(
        first.violations[0]
            .message
            .contains("emptyDir volume cache")
    );
    assert!(first.violations[0].message.contains(FIXED_BY_PATCH));
    assert!(!first.violations[1].message.contains(FIXED_BY_PATCH));
    assert_eq!(
        mutated["spec"]["template"]["metadata"]["annotations"][SAFE_VOLUMES],
        "socket-dir,cache"
    );
    assert_eq!(
        rules(&after),
        vec!["local-storage-requested"],
        "the hostPath stays a violation"
    );
    assert!(
        after.violations[0]
            .message
            .contains("hostPath volume certs")
    );
}

#[test]
fn the_annotation_is_split_like_cluster_autoscaler_does() {
    let mut template = with_volume(
        batch_worker_template(),
        json!({"name": "cache", "emptyDir": {}}),
    );
    template["metadata"]["annotations"] = json!({SAFE_VOLUMES: "tmp, cache"});
    let d = eval(object("Deployment", "batch", "worker", &template));
    assert_eq!(rules(&d), vec!["local-storage-requested"]);
    assert!(d.violations[0].message.contains("does not trim"));
    let memory = with_volume(
        batch_worker_template(),
        json!({"name": "cache", "emptyDir": {"medium": "Memory"}}),
    );
    assert!(eval(object("Deployment", "batch", "worker", &memory)).allowed);
}

#[test]
fn safe_to_evict_annotations() {
    let mut template = with_volume(
        batch_worker_template(),
        json!({"name": "data", "hostPath": {"path": "/data"}}),
    );
    template["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"});
    assert!(
        eval(object("Deployment", "batch", "worker", &template)).allowed,
        "true short-circuits"
    );
    let mut template = batch_worker_template();
    template["metadata"]["annotations"] =
        json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"});
    let d = eval(object("Job", "batch", "worker", &template));
    assert_eq!(rules(&d), vec!["not-safe-to-evict-annotation"]);
    assert_eq!(
        d.violations[0].path.as_deref(),
        Some("/spec/template/metadata/annotations/cluster-autoscaler.kubernetes.io~1safe-to-evict")
    );
}

#[test]
fn blocking_pdbs_are_reported() {
    let selector = json!({"matchLabels": {"app": "worker"}});
    let obj = object("Deployment", "batch", "worker", &batch_worker_template());
    let min_all = pdb("batch", selector.clone(), json!({"minAvailable": 2}), None);
    let d = eval_with(obj.clone(), vec![batman_pool()], vec![min_all], json!({}));
    assert_eq!(rules(&d), vec!["not-enough-pdb"]);
    assert!(
        d.violations[0]
            .message
            .contains("minAvailable 2 with 2 replicas")
    );
    let observed = pdb(
        "batch",
        selector.clone(),
        json!({"maxUnavailable": 1}),
        Some(json!({"observedGeneration": 1, "disruptionsAllowed": 0})),
    );
    assert_eq!(
        rules(&eval_with(
            obj.clone(),
            vec![batman_pool()],
            vec![observed],
            json!({})
        )),
        vec!["not-enough-pdb"]
    );
    let fresh = pdb(
        "batch",
        selector,
        json!({"maxUnavailable": 1}),
        Some(json!({"disruptionsAllowed": 0})),
    );
    assert!(
        eval_with(obj.clone(), vec![batman_pool()], vec![fresh], json!({})).allowed,
        "unobserved status"
    );
    let elsewhere = pdb("other", json!({}), json!({"maxUnavailable": 0}), None);
    assert!(
        eval_with(obj, vec![batman_pool()], vec![elsewhere], json!({})).allowed,
        "other namespace"
    );
}

#[test]
fn pods_no_pool_admits_are_allowed() {
    assert!(
        eval(object(
            "Deployment",
            "kube-system",
            "metrics-server",
            &metrics_server_template()
        ))
        .allowed,
        "tainted pool"
    );
    let ca = object(
        "Deployment",
        "kube-system",
        "cluster-autoscaler",
        &cluster_autoscaler_template(),
    );
    assert!(
        eval_with(ca, vec![bare_pool()], vec![], json!({})).allowed,
        "pinned to control planes"
    );
    let bare = object(
        "Deployment",
        "kube-system",
        "coredns",
        &metrics_server_template(),
    );
    assert!(
        eval_with(bare, vec![], vec![], json!({})).allowed,
        "no pools"
    );
    let ds = object(
        "DaemonSet",
        "kube-system",
        "kured",
        &with_volume(
            metrics_server_template(),
            json!({"name": "h", "hostPath": {"path": "/"}}),
        ),
    );
    assert!(
        eval_with(ds, vec![bare_pool()], vec![], json!({})).allowed,
        "DaemonSets never block"
    );
}

#[test]
fn flags_switch_rules_off() {
    let obj = object(
        "Deployment",
        "kube-system",
        "metrics-server",
        &metrics_server_template(),
    );
    let off = json!({"skipNodesWithSystemPods": false, "skipNodesWithLocalStorage": false});
    assert!(eval_with(obj, vec![bare_pool()], vec![], off).allowed);
    assert!(
        tollgate_sdk::policy::load_settings::<PoolWorkloadsEvictable>(
            r#"{"annotateLocalVolume": true}"#
        )
        .is_err()
    );
}
