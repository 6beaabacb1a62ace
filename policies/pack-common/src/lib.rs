//! Helpers shared by the policies of Tollgate's `autoscaler-isolation` pack.
//!
//! The pack keeps system components off cluster-autoscaler node pools and keeps
//! whatever does run on a pool drainable, so that pools can scale to zero. Each
//! policy is its own WASM component; this plain library holds what two or more
//! of them need, so that every policy reads a pod, a pool or a
//! PodDisruptionBudget the same way:
//!
//! - [`ca`]: cluster-autoscaler's annotation, taint and reason names;
//! - [`scope`]: which reviews a policy judges and which pods it exempts, and the
//!   label-selector settings type;
//! - [`pools`]: pool-related predicates (which pools a pod can reach, which of
//!   its tolerations open a pool, control-plane pinning);
//! - [`describe`]: how objects, taints and tolerations are named in messages,
//!   and the note on a violation that the policy's own patch fixes;
//! - [`raw`]: reading the raw object (array indices for violation paths) and
//!   creating missing parents before a JSON Patch adds to them;
//! - [`pdb`]: reading PodDisruptionBudgets and judging whether they allow a
//!   disruption;
//! - `fixtures` (feature `fixtures`): test pools, nodes and workloads modelled
//!   on the corpus, and the mutation round-trip check.

pub mod ca;
pub mod describe;
pub mod pdb;
pub mod pools;
pub mod raw;
pub mod scope;

#[cfg(feature = "fixtures")]
pub mod fixtures;

/// The kinds the pack's pod policies judge: Pods and every pod controller.
pub const POD_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];

/// [`POD_KINDS`] as owned strings, for `Metadata::kinds`.
pub fn pod_kinds() -> Vec<String> {
    POD_KINDS.iter().map(|k| (*k).to_string()).collect()
}

/// A `RuleInfo` from an id and a description.
pub fn rule(id: &str, description: &str) -> tollgate_sdk::RuleInfo {
    tollgate_sdk::RuleInfo {
        id: id.to_string(),
        description: description.to_string(),
    }
}
