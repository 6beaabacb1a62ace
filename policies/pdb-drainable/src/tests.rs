//! Native tests of `pdb-drainable`: PDBs over pool and non-pool workloads,
//! spec and status judgements (modelled on metrics-server's HA manifests and
//! kube-hetzner's traefik budget).

use autoscaler_isolation_common::fixtures::{
    bare_pool, batch_worker_template, batman_pool, metrics_server_template, object, rules,
};
use serde_json::{Value, json};
use tollgate_sdk::testing::TestHost;
use tollgate_sdk::{Decision, Operation, Policy};

use super::*;

fn pdb(spec: Value, status: Option<Value>) -> Value {
    let mut v = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "worker", "namespace": "batch"}, "spec": spec});
    if let Some(s) = status {
        v["status"] = s;
    }
    v
}

fn worker(replicas: i64) -> Value {
    let mut d = object("Deployment", "batch", "worker", &batch_worker_template());
    d["spec"]["replicas"] = json!(replicas);
    d
}

fn eval(budget: Value, workloads: Vec<Value>) -> Decision {
    TestHost::new(budget)
        .with_pools(vec![batman_pool()])
        .with_objects(workloads)
        .evaluate::<PdbDrainable>(json!({}))
}

fn selector() -> Value {
    json!({"matchLabels": {"app": "worker"}})
}

#[test]
fn a_budget_that_allows_a_disruption_is_allowed() {
    assert!(
        eval(
            pdb(json!({"selector": selector(), "maxUnavailable": 1}), None),
            vec![worker(1)]
        )
        .allowed
    );
    assert!(
        eval(
            pdb(json!({"selector": selector(), "minAvailable": 1}), None),
            vec![worker(2)]
        )
        .allowed
    );
    assert!(
        eval(
            pdb(
                json!({"selector": selector(), "maxUnavailable": "33%"}),
                None
            ),
            vec![worker(1)]
        )
        .allowed
    );
}

#[test]
fn max_unavailable_zero_blocks() {
    let d = eval(
        pdb(json!({"selector": selector(), "maxUnavailable": 0}), None),
        vec![worker(3)],
    );
    assert_eq!(rules(&d), vec![PDB_BLOCKS_DRAIN]);
    assert_eq!(
        d.violations[0].path.as_deref(),
        Some("/spec/maxUnavailable")
    );
    assert!(
        d.violations[0]
            .message
            .contains("Deployment worker (3 replicas)")
    );
    assert!(d.violations[0].message.contains("k3s-batman"));
}

#[test]
fn min_available_at_replicas_blocks_per_workload() {
    let mut set = object("StatefulSet", "batch", "db", &batch_worker_template());
    set["spec"]["replicas"] = json!(1);
    let d = eval(
        pdb(json!({"selector": selector(), "minAvailable": 1}), None),
        vec![worker(2), set],
    );
    assert_eq!(rules(&d), vec![PDB_BLOCKS_DRAIN]);
    assert!(
        d.violations[0]
            .message
            .contains("StatefulSet db (1 replica)")
    );
    assert_eq!(d.violations[0].path.as_deref(), Some("/spec/minAvailable"));
    let d = eval(
        pdb(
            json!({"selector": selector(), "minAvailable": "100%"}),
            None,
        ),
        vec![worker(4)],
    );
    assert_eq!(rules(&d), vec![PDB_BLOCKS_DRAIN]);
}

#[test]
fn observed_status_is_reported() {
    let status = json!({"observedGeneration": 2, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1});
    let d = eval(
        pdb(
            json!({"selector": selector(), "minAvailable": 1}),
            Some(status.clone()),
        ),
        vec![worker(2)],
    );
    assert_eq!(rules(&d), vec![PDB_NO_DISRUPTIONS_ALLOWED]);
    let off = TestHost::new(pdb(
        json!({"selector": selector(), "minAvailable": 1}),
        Some(status),
    ))
    .with_pools(vec![batman_pool()])
    .with_objects(vec![worker(2)])
    .evaluate::<PdbDrainable>(json!({"reportStatus": false}));
    assert!(off.allowed);
    let created = json!({"disruptionsAllowed": 0, "currentHealthy": 0});
    assert!(
        eval(
            pdb(
                json!({"selector": selector(), "minAvailable": 1}),
                Some(created)
            ),
            vec![worker(2)]
        )
        .allowed
    );
}

#[test]
fn only_pool_workloads_count() {
    // metrics-server HA: minAvailable 1 over 2 replicas is fine; over 1 replica it blocks, but
    // only if the pods can reach a pool: with the tainted batman pool they cannot.
    let mut ms = object(
        "Deployment",
        "batch",
        "metrics-server",
        &metrics_server_template(),
    );
    ms["spec"]["replicas"] = json!(1);
    let budget = pdb(
        json!({"selector": {"matchLabels": {"k8s-app": "metrics-server"}}, "minAvailable": 1}),
        None,
    );
    assert!(eval(budget.clone(), vec![ms.clone()]).allowed);
    let d = TestHost::new(budget)
        .with_pools(vec![bare_pool()])
        .with_objects(vec![ms])
        .evaluate::<PdbDrainable>(json!({}));
    assert_eq!(
        rules(&d),
        vec![PDB_BLOCKS_DRAIN],
        "an untainted pool takes it"
    );
}

#[test]
fn owned_replicasets_other_namespaces_and_unselected_workloads_are_skipped() {
    let mut rs = object(
        "ReplicaSet",
        "batch",
        "worker-5d9c",
        &batch_worker_template(),
    );
    rs["spec"]["replicas"] = json!(1);
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker", "controller": true}]);
    let mut elsewhere = worker(1);
    elsewhere["metadata"]["namespace"] = json!("other");
    let other = object(
        "Deployment",
        "batch",
        "web",
        &json!({"metadata": {"labels": {"app": "web"}}, "spec": {}}),
    );
    let d = eval(
        pdb(json!({"selector": selector(), "minAvailable": 1}), None),
        vec![rs, elsewhere, other],
    );
    assert!(d.allowed, "{d:?}");
}

#[test]
fn no_pools_deletes_and_other_kinds_are_allowed() {
    let budget = pdb(json!({"selector": selector(), "maxUnavailable": 0}), None);
    assert!(
        TestHost::new(budget.clone())
            .with_objects(vec![worker(1)])
            .evaluate::<PdbDrainable>(json!({}))
            .allowed
    );
    let host = TestHost::new(budget)
        .with_pools(vec![batman_pool()])
        .with_objects(vec![worker(1)]);
    assert!(
        PdbDrainable::evaluate(&host.review(Operation::Delete), &Settings::default(), &host)
            .allowed
    );
    assert!(eval(worker(1), vec![]).allowed);
}
