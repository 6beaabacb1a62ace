//! `pdb-drainable`: a PodDisruptionBudget that selects workloads able to run
//! on a cluster-autoscaler pool must allow a disruption, or no pool node
//! running their pods can ever be drained (cluster-autoscaler's
//! `NotEnoughPdb`; the Eviction API refuses even `safe-to-evict: "true"`
//! pods).
//!
//! The selected workloads are the namespace's Deployments, StatefulSets and
//! ReplicaSets (ReplicaSets owned by a controller are covered through it)
//! whose pod template labels the PDB's selector matches. A workload is a pool
//! workload when some pool admits its pod template (placement records built
//! with [`tollgate_sdk::placement::review`]; DaemonSet pods never block).
//!
//! - `pdb-blocks-drain`: by the spec, `maxUnavailable` scaling to 0, or
//!   `minAvailable` scaling to the workload's replicas or more (percentages
//!   round up), allows no eviction, one violation per workload;
//! - `pdb-no-disruptions-allowed` (`reportStatus`, default on): the observed
//!   status (`status.observedGeneration` set) allows 0 disruptions right now.
//!
//! With no pools, or no selected pool workload, the PDB is allowed.
//! Validation only; no CEL twin (it needs cluster lookups).

#[cfg(test)]
mod tests;

use autoscaler_isolation_common::pdb::Pdb;
use autoscaler_isolation_common::{describe, pools, rule, scope};
use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::{
    Decision, Host, HostExt, Metadata, NodePool, Operation, Policy, Review, Violation,
};

/// Rule id: the PDB's spec allows no disruption of a pool workload.
pub const PDB_BLOCKS_DRAIN: &str = "pdb-blocks-drain";
/// Rule id: the PDB's observed status allows no disruption.
pub const PDB_NO_DISRUPTIONS_ALLOWED: &str = "pdb-no-disruptions-allowed";

/// The workload kinds whose pods a PDB is checked against.
const WORKLOAD_KINDS: &[(&str, &str)] = &[
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "ReplicaSet"),
];

/// Settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Report a PDB whose observed status allows 0 disruptions
    /// (`pdb-no-disruptions-allowed`). Default `true`.
    pub report_status: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            report_status: true,
        }
    }
}

/// The policy.
pub struct PdbDrainable;

impl Policy for PdbDrainable {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "pdb-drainable".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "PodDisruptionBudgets that select workloads able to run on autoscaler pools must \
                          allow at least one disruption."
                    .into(),
            kinds: vec!["PodDisruptionBudget".into()],
            mutating: false,
            rules: vec![
                rule(
                    PDB_BLOCKS_DRAIN,
                    "A PDB selecting a pool workload has maxUnavailable 0, or minAvailable at or above the \
                     workload's replicas.",
                ),
                rule(
                    PDB_NO_DISRUPTIONS_ALLOWED,
                    "A PDB selecting a pool workload currently allows 0 disruptions (observed status).",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        if review.kind != "PodDisruptionBudget"
            || matches!(review.operation, Operation::Delete | Operation::Connect)
        {
            return Decision::allow();
        }
        let all_pools = host.node_pools();
        if all_pools.is_empty() {
            return Decision::allow();
        }
        let Some(pdb) = Pdb::from_json(&host.object()) else {
            return Decision::allow();
        };
        let workloads = pool_workloads(host, &review.namespace, &pdb, &all_pools);
        let mut violations: Vec<Violation> = workloads
            .iter()
            .filter_map(|w| {
                let block = pdb.spec_blocks(w.replicas)?;
                let message = format!(
                    "{} selects {}, which can be scheduled onto autoscaler pool(s) {}, and its {block}: every \
                     drain of a pool node running one of those pods fails (NotEnoughPdb), so the pool cannot \
                     scale down. Allow at least one disruption: maxUnavailable: 1, or minAvailable below the \
                     replicas.",
                    describe::subject(review),
                    w.describe(),
                    w.pools
                );
                Some(Violation::new(PDB_BLOCKS_DRAIN, message).at(block.path()))
            })
            .collect();
        if settings.report_status && pdb.status_blocks() && !workloads.is_empty() {
            violations.push(status_violation(review, &workloads));
        }
        Decision::from_violations(violations)
    }
}

/// A workload the PDB selects that can run on a pool.
#[derive(Debug)]
struct PoolWorkload {
    kind: String,
    name: String,
    replicas: Option<i32>,
    /// The pools that admit it, joined for messages.
    pools: String,
}

impl PoolWorkload {
    fn describe(&self) -> String {
        match self.replicas {
            Some(r) => format!(
                "{} {} ({r} replica{})",
                self.kind,
                self.name,
                if r == 1 { "" } else { "s" }
            ),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// The namespace's workloads the PDB selects and some pool admits.
fn pool_workloads(
    host: &dyn Host,
    namespace: &str,
    pdb: &Pdb,
    all_pools: &[NodePool],
) -> Vec<PoolWorkload> {
    WORKLOAD_KINDS
        .iter()
        .flat_map(|(api_version, kind)| host.list_objects(api_version, kind, Some(namespace), None))
        .filter(|obj| tollgate_sdk::placement::pod_controller(obj).is_none())
        .filter_map(|obj| pool_workload(&obj, pdb, all_pools))
        .collect()
}

fn pool_workload(obj: &Value, pdb: &Pdb, all_pools: &[NodePool]) -> Option<PoolWorkload> {
    let review = tollgate_sdk::placement::review(obj, Operation::None).ok()?;
    let pod = review.pod.as_ref()?;
    if !pdb.selects(&pod.labels) || !scope::pod_rules_apply(pod) {
        return None;
    }
    let admitting = pools::admitting(all_pools, pod);
    (!admitting.is_empty()).then(|| PoolWorkload {
        kind: review.kind.clone(),
        name: review.name.clone(),
        replicas: pod.replicas,
        pools: describe::pool_names(admitting),
    })
}

fn status_violation(review: &Review, workloads: &[PoolWorkload]) -> Violation {
    let names = workloads
        .iter()
        .map(PoolWorkload::describe)
        .collect::<Vec<_>>()
        .join(", ");
    let message = format!(
        "{} currently allows 0 disruptions (status.disruptionsAllowed) and selects {names}, which can run on \
         autoscaler pools: cluster-autoscaler cannot drain the pool nodes running them (NotEnoughPdb). Check \
         that the selected pods are healthy and that the budget leaves room for one eviction.",
        describe::subject(review)
    );
    Violation::new(PDB_NO_DISRUPTIONS_ALLOWED, message).at("/status/disruptionsAllowed")
}

tollgate_sdk::export_policy!(PdbDrainable);
