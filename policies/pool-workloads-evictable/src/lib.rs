//! `pool-workloads-evictable`: whatever can be scheduled onto a
//! cluster-autoscaler pool must be drainable under cluster-autoscaler's rules,
//! or the pool node running it can never be removed.
//!
//! A pod "can be scheduled onto a pool" when its selection and tolerations
//! admit the pool's template node ([`tollgate_sdk::NodePool::admits`]).
//! For such pods the rules of domain.md §1.2 apply in cluster-autoscaler's
//! order: DaemonSet and mirror pods never block; `safe-to-evict: "true"`
//! short-circuits the rest; then `NotReplicated`, `UnmovableKubeSystemPod`,
//! `NotSafeToEvictAnnotation`, `LocalStorageRequested` and `NotEnoughPdb` (see
//! [`drain`]). PodDisruptionBudgets are looked up in the pod's namespace.
//!
//! The policy judges the object as it is. Mutation is opt-in
//! (`annotateLocalVolumes`): the decision then also carries a patch that lists
//! the pod's disk-backed emptyDir volumes in `safe-to-evict-local-volumes`.
//! Their `local-storage-requested` violations are still reported, saying that
//! `tollgate eval --mutate` and the mutating webhook list the volume; the
//! engine's mutating path applies the patch and judges the patched object
//! again, where they are gone. hostPath volumes are never listed
//! automatically.
//!
//! With no pools, or a pod no pool admits, the policy allows. No CEL twin: the
//! PDB rules need cluster lookups.

mod drain;
mod mutation;
#[cfg(test)]
mod tests;

use autoscaler_isolation_common::ca::{self, BlockingReason};
use autoscaler_isolation_common::raw::RawObject;
use autoscaler_isolation_common::{describe, pdb, pools, rule, scope};
use serde::Deserialize;
use tollgate_sdk::{
    Decision, Host, Metadata, NodePool, Operation, Patch, Policy, Review, Violation,
};

use drain::{Blocker, Flags};

/// The blocking reasons in rule order, each with its rule id.
const REASONS: &[BlockingReason] = &[
    BlockingReason::NotReplicated,
    BlockingReason::UnmovableKubeSystemPod,
    BlockingReason::NotSafeToEvictAnnotation,
    BlockingReason::LocalStorageRequested,
    BlockingReason::NotEnoughPdb,
];

/// Settings. The three `skipNodesWith*` flags mirror cluster-autoscaler's
/// flags of the same names; set them as your cluster-autoscaler runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// cluster-autoscaler's `--skip-nodes-with-system-pods` (rule 9). Default `true`.
    pub skip_nodes_with_system_pods: bool,
    /// cluster-autoscaler's `--skip-nodes-with-local-storage` (rule 11). Default `true`.
    pub skip_nodes_with_local_storage: bool,
    /// cluster-autoscaler's `--skip-nodes-with-custom-controller-pods` (rule 8
    /// accepts only RC, RS, Job and StatefulSet controllers). Default `true`.
    pub skip_nodes_with_custom_controller_pods: bool,
    /// List disk-backed emptyDir volumes in `safe-to-evict-local-volumes`
    /// instead of denying them. Default `false`.
    pub annotate_local_volumes: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            skip_nodes_with_system_pods: true,
            skip_nodes_with_local_storage: true,
            skip_nodes_with_custom_controller_pods: true,
            annotate_local_volumes: false,
        }
    }
}

impl Settings {
    fn flags(&self) -> Flags {
        Flags {
            system_pods: self.skip_nodes_with_system_pods,
            local_storage: self.skip_nodes_with_local_storage,
            custom_controller_pods: self.skip_nodes_with_custom_controller_pods,
        }
    }
}

/// The policy.
pub struct PoolWorkloadsEvictable;

impl Policy for PoolWorkloadsEvictable {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "pool-workloads-evictable".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Pods that can be scheduled onto an autoscaler pool must be drainable under \
                          cluster-autoscaler's rules; optionally lists emptyDir volumes as safe to evict."
                .into(),
            kinds: autoscaler_isolation_common::pod_kinds(),
            mutating: true,
            rules: REASONS.iter().map(|r| rule(r.rule_id(), description(*r))).collect(),
            capabilities: vec![],
        }
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let Some(pod) = scope::covered_pod(review) else {
            return Decision::allow();
        };
        if pod.annotations.get(ca::SAFE_TO_EVICT).map(String::as_str) == Some("true") {
            return Decision::allow();
        }
        let all_pools = host.node_pools();
        let admitting = pools::admitting(&all_pools, pod);
        if admitting.is_empty() {
            return Decision::allow();
        }
        let object = RawObject::new(host);
        // Only an existing Pod (an audit) has a phase; admission never parses it.
        if review.kind == "Pod"
            && review.operation == Operation::None
            && drain::is_terminal(object.value())
        {
            return Decision::allow();
        }
        let pdbs = pdb::in_namespace(host, &review.namespace);
        let blockers = drain::blockers(review, pod, settings.flags(), &pdbs, &object);
        let mut patch = Patch::new();
        let listed = settings.annotate_local_volumes && {
            let empty_dirs: Vec<String> = blockers
                .iter()
                .filter_map(|b| b.empty_dir.clone())
                .collect();
            mutation::list_local_volumes(&mut patch, object.value(), pod, &empty_dirs)
        };
        let violations = blockers
            .into_iter()
            .map(|b| {
                let fixed = listed && b.empty_dir.is_some();
                violation(review, &admitting, b, fixed)
            })
            .collect();
        Decision::from_violations(violations).with_patch(patch)
    }
}

/// The rule description of a blocking reason.
fn description(reason: BlockingReason) -> &'static str {
    match reason {
        BlockingReason::NotReplicated => {
            "A pod that can run on a pool has no controller, or one cluster-autoscaler does not move (NotReplicated)."
        }
        BlockingReason::UnmovableKubeSystemPod => {
            "A kube-system pod that can run on a pool has no PodDisruptionBudget (UnmovableKubeSystemPod)."
        }
        BlockingReason::NotSafeToEvictAnnotation => {
            "A pod that can run on a pool is annotated safe-to-evict: \"false\" (NotSafeToEvictAnnotation)."
        }
        BlockingReason::LocalStorageRequested => {
            "A pod that can run on a pool has a hostPath or disk-backed emptyDir volume not listed in \
             safe-to-evict-local-volumes (LocalStorageRequested)."
        }
        BlockingReason::NotEnoughPdb => {
            "A PodDisruptionBudget selecting a pod that can run on a pool allows no disruption (NotEnoughPdb)."
        }
    }
}

/// A blocker as a violation: which pools, which reason, what to do, and
/// whether the policy's patch fixes it.
fn violation(
    review: &Review,
    admitting: &[&NodePool],
    blocker: Blocker,
    fixed_by_patch: bool,
) -> Violation {
    let mut message = format!(
        "{} can be scheduled onto autoscaler pool(s) {}, and cluster-autoscaler could not remove a pool \
         node running its pods ({}): {}",
        describe::subject(review),
        describe::pool_names(admitting.iter().copied()),
        blocker.reason,
        blocker.detail,
    );
    if fixed_by_patch {
        message.push_str(&describe::fixed_by_patch(&format!(
            "list it in {}",
            ca::SAFE_TO_EVICT_LOCAL_VOLUMES
        )));
    }
    let violation = Violation::new(blocker.reason.rule_id(), message);
    match blocker.path {
        Some(path) => violation.at(path),
        None => violation,
    }
}

tollgate_sdk::export_policy!(PoolWorkloadsEvictable);
