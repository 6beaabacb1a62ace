//! Native tests of `pool-nodes-tainted`: pool membership by name prefix and
//! node-group label, missing and forbidden taints, pool definitions, UPDATEs.

use autoscaler_isolation_common::fixtures::{bare_pool, batman_pool, pool_node, rules};
use serde_json::{Value, json};
use tollgate_sdk::testing::TestHost;
use tollgate_sdk::{Decision, NodePool, Operation, Policy, Taint, TaintEffect};

use super::*;

const ROLE: &str = "node.kubernetes.io/role";

fn good_labels() -> Value {
    json!({"node.kubernetes.io/role": "autoscaler", "k3s_upgrade": "true",
        "instance.hetzner.cloud/provided-by": "cloud", "kubernetes.io/os": "linux"})
}

fn dedicated() -> Value {
    json!([{"key": "dedicated", "value": "autoscaler", "effect": "NoSchedule"}])
}

fn eval_with(object: Value, pools: Vec<NodePool>, settings: Value) -> Decision {
    TestHost::new(object)
        .with_pools(pools)
        .evaluate::<PoolNodesTainted>(settings)
}

fn eval(object: Value) -> Decision {
    eval_with(object, vec![batman_pool(), bare_pool()], json!({}))
}

#[test]
fn a_tainted_and_labelled_pool_node_is_allowed() {
    let d = eval(pool_node("k3s-batman-66d1b255", good_labels(), dedicated()));
    assert!(d.allowed && d.warnings.is_empty(), "{d:?}");
}

#[test]
fn nodes_of_no_pool_are_allowed() {
    let cp = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "k3s-control-plane-fsn1-abc", "labels": {"node-role.kubernetes.io/control-plane": "true"}},
        "spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
    assert!(eval(cp).allowed);
    assert!(
        eval_with(
            pool_node("k3s-batman-1", json!({}), json!([])),
            vec![],
            json!({})
        )
        .allowed,
        "no pools"
    );
}

#[test]
fn a_pool_node_without_its_taint_is_denied() {
    let d = eval(pool_node("k3s-batman-66d1b255", good_labels(), json!([])));
    assert_eq!(rules(&d), vec![MISSING_POOL_TAINT]);
    assert_eq!(d.violations[0].path.as_deref(), Some("/spec/taints"));
    assert!(
        d.violations[0]
            .message
            .contains("dedicated=autoscaler:NoSchedule")
    );

    let wrong = json!([{"key": "dedicated", "value": "other", "effect": "NoSchedule"}]);
    let d = eval(pool_node("k3s-batman-66d1b255", good_labels(), wrong));
    assert_eq!(rules(&d), vec![MISSING_POOL_TAINT]);
    assert!(
        d.violations[0]
            .message
            .contains("it has dedicated=other:NoSchedule")
    );
}

#[test]
fn a_pool_node_without_its_label_is_denied() {
    let d = eval(pool_node(
        "k3s-batman-66d1b255",
        json!({"k3s_upgrade": "true"}),
        dedicated(),
    ));
    assert_eq!(rules(&d), vec![MISSING_POOL_LABEL]);
    assert_eq!(
        d.violations[0].path.as_deref(),
        Some("/metadata/labels/node.kubernetes.io~1role")
    );
}

#[test]
fn membership_by_node_group_label_wins_over_the_name() {
    let mut labels = good_labels();
    labels["hcloud/node-group"] = json!("k3s-batman");
    labels[ROLE] = json!("static");
    let d = eval(pool_node("worker-1", labels, dedicated()));
    assert_eq!(rules(&d), vec![MISSING_POOL_LABEL]);
    assert!(
        d.violations[0]
            .message
            .contains("it has node.kubernetes.io/role=static")
    );
}

#[test]
fn kube_hetzner_default_pool_without_taint_or_label_is_reported() {
    let node = pool_node(
        "k3s-robin-0a1b2c",
        json!({"k3s_upgrade": "true"}),
        json!([]),
    );
    let d = eval(node.clone());
    assert_eq!(rules(&d), vec![POOL_WITHOUT_TAINT, POOL_WITHOUT_LABEL]);
    assert!(d.violations[0].message.contains("autoscaler_nodepools"));
    let off = json!({"requireDedicatedTaint": false, "requireDedicatedLabel": false});
    assert!(eval_with(node, vec![bare_pool()], off).allowed);
}

#[test]
fn critical_addons_only_as_pool_taint_is_reported_once() {
    let mut pool = batman_pool();
    pool.taints = vec![Taint {
        key: "CriticalAddonsOnly".into(),
        value: Some("true".into()),
        effect: TaintEffect::NoExecute,
    }];
    let taints = json!([{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoExecute"}]);
    let d = eval_with(
        pool_node("k3s-batman-1", good_labels(), taints),
        vec![pool],
        json!({}),
    );
    assert_eq!(rules(&d), vec![CRITICAL_ADDONS_ONLY_POOL_TAINT]);
    assert!(d.violations[0].path.is_none(), "a pool-definition problem");
}

#[test]
fn a_control_plane_taint_on_a_pool_node_is_reported_with_its_path() {
    let taints = json!([{"key": "dedicated", "value": "autoscaler", "effect": "NoSchedule"},
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    let d = eval(pool_node("k3s-batman-1", good_labels(), taints));
    assert_eq!(rules(&d), vec![CONTROL_PLANE_POOL_TAINT]);
    assert_eq!(d.violations[0].path.as_deref(), Some("/spec/taints/1"));
}

#[test]
fn scale_down_blocking_annotations_are_warnings() {
    let mut node = pool_node("k3s-batman-1", good_labels(), dedicated());
    node["metadata"]["annotations"] = json!({"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true",
        "delay-deletion.cluster-autoscaler.kubernetes.io/backup": "x"});
    let d = eval(node);
    assert!(d.allowed);
    assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
}

#[test]
fn updates_are_judged_only_when_taints_or_labels_change() {
    let broken = pool_node("k3s-batman-1", good_labels(), json!([]));
    let mut heartbeat = broken.clone();
    heartbeat["metadata"]["annotations"] = json!({"node.alpha.kubernetes.io/ttl": "0"});
    let mut host = TestHost::new(heartbeat).with_pools(vec![batman_pool()]);
    host.old_object = Some(broken.clone());
    let settings = Settings::default();
    assert!(PoolNodesTainted::evaluate(&host.review(Operation::Update), &settings, &host).allowed);

    let mut untainted = pool_node("k3s-batman-1", good_labels(), dedicated());
    untainted["spec"]["taints"] = json!([]);
    host.object = untainted;
    host.old_object = Some(pool_node("k3s-batman-1", good_labels(), dedicated()));
    let d = PoolNodesTainted::evaluate(&host.review(Operation::Update), &settings, &host);
    assert_eq!(rules(&d), vec![MISSING_POOL_TAINT]);
    assert!(PoolNodesTainted::evaluate(&host.review(Operation::Delete), &settings, &host).allowed);
}

#[test]
fn non_nodes_are_ignored() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "k3s-batman-1"}, "spec": {}});
    assert!(eval(pod).allowed);
}
