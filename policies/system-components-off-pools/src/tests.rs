//! Native tests of `system-components-off-pools`, on fixtures modelled on the
//! k3s, kube-hetzner and hcloud manifests of the corpus.

use autoscaler_isolation_common::describe::FIXED_BY_PATCH;
use autoscaler_isolation_common::fixtures::{
    self, RoundTrip, batman_pool, cluster_autoscaler_template, csi_controller_template,
    every_non_daemonset_kind, metrics_server_template, mutate, object, rules,
};
use serde_json::{Value, json};
use tollgate_sdk::testing::TestHost;
use tollgate_sdk::{Decision, Operation, Policy};

use super::*;

fn host(object: Value) -> TestHost {
    TestHost::new(object).with_pools(vec![batman_pool()])
}

fn eval(object: Value, settings: Value) -> Decision {
    host(object).evaluate::<SystemComponentsOffPools>(settings)
}

fn terms(mutated: &Value, template_path: &str) -> Value {
    mutated
        .pointer(&format!(
            "{template_path}/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"
        ))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn k3s_metrics_server_is_reported_and_pinned_by_mutation_in_every_kind() {
    for obj in every_non_daemonset_kind("kube-system", "metrics-server", &metrics_server_template())
    {
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let host = host(obj);
        let RoundTrip {
            first,
            mutated,
            after,
        } = mutate::<SystemComponentsOffPools>(&host, json!({}));
        assert!(!first.allowed, "{kind}: judged as it is: {first:?}");
        assert_eq!(rules(&first), vec![MISSING_CONTROL_PLANE_AFFINITY]);
        assert!(
            first.violations[0]
                .message
                .ends_with("the mutating webhook add the required node-role.kubernetes.io/control-plane affinity."),
            "{kind}: it already tolerates the control-plane taint: {}",
            first.violations[0].message
        );
        assert!(
            after.allowed && after.violations.is_empty(),
            "{kind}: {after:?}"
        );
        let tp = host
            .review(Operation::Create)
            .pod
            .map(|p| p.template_path)
            .unwrap_or_default();
        assert_eq!(
            terms(&mutated, &tp),
            json!([{"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]),
            "{kind}"
        );
        let tolerations = mutated
            .pointer(&format!("{tp}/spec/tolerations"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            tolerations.as_array().map(Vec::len),
            Some(2),
            "{kind}: it already tolerates the control plane"
        );
    }
}

#[test]
fn without_mutation_only_the_patch_and_its_note_are_dropped() {
    let coredns = object(
        "Deployment",
        "kube-system",
        "coredns",
        &metrics_server_template(),
    );
    let d = eval(coredns.clone(), json!({"mutate": false}));
    assert!(!d.allowed);
    assert_eq!(rules(&d), vec![MISSING_CONTROL_PLANE_AFFINITY]);
    assert_eq!(
        d.violations[0].path.as_deref(),
        Some("/spec/template/spec/affinity")
    );
    assert!(
        d.violations[0].message.contains("k3s-batman")
            && !d.violations[0].message.contains(FIXED_BY_PATCH),
        "{}",
        d.violations[0].message
    );
    assert!(d.patch.is_none());
    let mutating = eval(coredns, json!({}));
    assert_eq!((mutating.allowed, rules(&mutating)), (d.allowed, rules(&d)));
    assert_eq!(mutating.violations[0].path, d.violations[0].path);
    assert!(mutating.patch.is_some());
}

#[test]
fn kube_hetzner_cluster_autoscaler_is_already_compliant() {
    for obj in every_non_daemonset_kind(
        "kube-system",
        "cluster-autoscaler",
        &cluster_autoscaler_template(),
    ) {
        let d = eval(obj, json!({}));
        assert!(d.allowed && d.patch.is_none(), "{d:?}");
    }
}

#[test]
fn csi_controller_gets_required_affinity_next_to_its_preference_and_a_toleration() {
    let host = host(object(
        "Deployment",
        "kube-system",
        "hcloud-csi-controller",
        &csi_controller_template(),
    ));
    let RoundTrip {
        first,
        mutated,
        after,
    } = mutate::<SystemComponentsOffPools>(&host, json!({}));
    assert_eq!(rules(&first), vec![MISSING_CONTROL_PLANE_AFFINITY]);
    assert!(
        first.violations[0]
            .message
            .contains("and a toleration of node-role.kubernetes.io/control-plane:NoSchedule."),
        "{}",
        first.violations[0].message
    );
    assert!(after.allowed, "{after:?}");
    let affinity = &mutated["spec"]["template"]["spec"]["affinity"]["nodeAffinity"];
    assert!(
        affinity["preferredDuringSchedulingIgnoredDuringExecution"].is_array(),
        "preference kept"
    );
    assert_eq!(
        mutated["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}])
    );
}

#[test]
fn existing_terms_each_get_the_requirement() {
    let mut template = csi_controller_template();
    template["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["k3s-control-plane-fsn1-abc"]}]},
            {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "In", "values": ["true"]}]}
        ]
    });
    let host = host(object("StatefulSet", "kube-system", "csi", &template));
    let RoundTrip { mutated, after, .. } = mutate::<SystemComponentsOffPools>(&host, json!({}));
    assert!(after.allowed, "{after:?}");
    let terms = terms(&mutated, "/spec/template");
    let cp = json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"});
    assert_eq!(terms[0]["matchExpressions"][1], cp);
    assert_eq!(terms[1]["matchExpressions"], json!([cp]));
    assert_eq!(
        terms[2]["matchExpressions"].as_array().map(Vec::len),
        Some(1),
        "already pinned"
    );
}

#[test]
fn a_term_that_excludes_control_planes_is_denied_not_rewritten() {
    let mut template = metrics_server_template();
    template["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}]}}});
    let d = eval(
        object("Deployment", "kube-system", "metrics-server", &template),
        json!({}),
    );
    assert_eq!(rules(&d), vec![MISSING_CONTROL_PLANE_AFFINITY]);
    assert!(d.patch.is_none());
    assert!(
        d.violations[0]
            .message
            .contains("not changed automatically")
            && !d.violations[0].message.contains(FIXED_BY_PATCH)
    );
}

#[test]
fn the_patch_pins_an_unpinned_component_but_keeps_its_pool_toleration() {
    let mut template = metrics_server_template();
    template["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}]);
    for obj in every_non_daemonset_kind("kube-system", "metrics-server", &template) {
        let host = host(obj);
        let RoundTrip { first, after, .. } = mutate::<SystemComponentsOffPools>(&host, json!({}));
        assert_eq!(
            rules(&first),
            vec![MISSING_CONTROL_PLANE_AFFINITY, TOLERATES_POOL_TAINT]
        );
        assert!(!after.allowed);
        assert_eq!(rules(&after), vec![TOLERATES_POOL_TAINT], "{after:?}");
    }
}

#[test]
fn pool_tolerations_are_denied_and_kept() {
    let mut template = cluster_autoscaler_template();
    template["spec"]["tolerations"] = json!([
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        {"operator": "Exists"},
        {"key": "dedicated", "operator": "Equal", "value": "autoscaler"}
    ]);
    for obj in every_non_daemonset_kind("kube-system", "ca", &template) {
        let d = eval(obj, json!({}));
        assert!(!d.allowed);
        assert_eq!(rules(&d), vec![TOLERATES_POOL_TAINT, TOLERATES_POOL_TAINT]);
        assert!(
            d.violations[0]
                .path
                .as_deref()
                .is_some_and(|p| p.ends_with("/spec/tolerations/1"))
        );
        assert!(
            d.violations[1]
                .message
                .contains("dedicated=autoscaler:NoSchedule of pool k3s-batman")
        );
        assert!(
            d.patch.is_none(),
            "pinned and tolerating the control plane already"
        );
    }
}

#[test]
fn scope_namespaces_selectors_and_exemptions() {
    let template = metrics_server_template();
    let monitoring = object("Deployment", "monitoring", "metrics-server", &template);
    assert!(
        eval(monitoring.clone(), json!({})).allowed,
        "not a system namespace"
    );
    assert!(!eval(monitoring.clone(), json!({"namespaces": ["monitoring"]})).allowed);
    let by_label = json!({"selectors": [{"matchLabels": {"k8s-app": "metrics-server"}}]});
    assert!(!eval(monitoring, by_label).allowed);
    let exempt = json!({"exemptSelectors": [{"matchExpressions": [{"key": "k8s-app", "operator": "Exists"}]}]});
    assert!(
        eval(
            object("Deployment", "kube-system", "metrics-server", &template),
            exempt
        )
        .allowed
    );
}

#[test]
fn daemonsets_daemonset_pods_and_mirror_pods_are_out_of_scope() {
    let template = metrics_server_template();
    assert!(
        eval(
            object("DaemonSet", "kube-system", "hcloud-csi-node", &template),
            json!({})
        )
        .allowed
    );
    let mut pod = object("Pod", "kube-system", "hcloud-csi-node-x", &template);
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "hcloud-csi-node", "controller": true}]);
    assert!(eval(pod, json!({})).allowed);
    let mut mirror = object("Pod", "kube-system", "kube-apiserver-cp1", &template);
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "hash"});
    assert!(eval(mirror, json!({})).allowed);
}

#[test]
fn no_pools_or_unreachable_pools_allow() {
    let obj = object(
        "Deployment",
        "kube-system",
        "coredns",
        &metrics_server_template(),
    );
    let d = TestHost::new(obj).evaluate::<SystemComponentsOffPools>(json!({}));
    assert!(d.allowed && d.patch.is_none());
    let mut template = metrics_server_template();
    template["spec"]["nodeSelector"]["node.kubernetes.io/role"] = json!("static");
    let d = eval(
        object("Deployment", "kube-system", "coredns", &template),
        json!({}),
    );
    assert!(
        d.allowed && d.patch.is_none(),
        "its nodeSelector excludes every pool: {d:?}"
    );
}

#[test]
fn a_control_plane_node_selector_pins_and_gets_the_toleration() {
    let mut template = csi_controller_template();
    template["spec"]["nodeSelector"] = json!({"node-role.kubernetes.io/control-plane": "true"});
    let host = host(object(
        "Job",
        "kube-system",
        "helm-install-traefik",
        &template,
    ));
    let RoundTrip {
        first,
        mutated,
        after,
    } = mutate::<SystemComponentsOffPools>(&host, json!({}));
    assert!(
        first.allowed && first.violations.is_empty(),
        "pinned already: only the toleration is added: {first:?}"
    );
    assert!(after.allowed);
    assert!(
        mutated["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none()
    );
    assert_eq!(
        mutated["spec"]["template"]["spec"]["tolerations"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );
}

#[test]
fn pod_updates_are_not_judged() {
    let host = host(object(
        "Pod",
        "kube-system",
        "coredns-abc",
        &metrics_server_template(),
    ));
    let settings = load_settings(json!({}));
    let d = SystemComponentsOffPools::evaluate(&host.review(Operation::Update), &settings, &host);
    assert!(d.allowed);
    let d = SystemComponentsOffPools::evaluate(&host.review(Operation::None), &settings, &host);
    assert!(!d.allowed, "audit still judges existing pods");
}

#[test]
fn settings_are_validated() {
    use tollgate_sdk::policy::load_settings as load;
    assert!(load::<SystemComponentsOffPools>(r#"{"controlPlaneTaint": "no-effect"}"#).is_err());
    assert!(load::<SystemComponentsOffPools>(r#"{"controlPlaneLabel": " "}"#).is_err());
    assert!(load::<SystemComponentsOffPools>(r#"{"namespace": ["x"]}"#).is_err());
    assert!(
        load::<SystemComponentsOffPools>(
            r#"{"controlPlaneTaint": "CriticalAddonsOnly=true:NoExecute"}"#
        )
        .is_ok()
    );
    let _ = fixtures::bare_pool();
}

fn load_settings(v: Value) -> Settings {
    tollgate_sdk::policy::load_settings::<SystemComponentsOffPools>(&v.to_string())
        .unwrap_or_default()
}
