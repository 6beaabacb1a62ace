//! cluster-autoscaler's per-pod drainability rules (domain.md §1.2), applied to
//! a pod template: which of rules 8 to 12 would make a node running the pod
//! unremovable. Rules 4 (DaemonSet) and 5 (`safe-to-evict: "true"`) short-cut
//! everything and are checked by the caller; rule 6 (terminal pods) only
//! applies to Pods with a status; rule 7 (`on-completion`, CA ≥ 1.36) is not
//! modelled, so such pods go through the later rules as on older versions.
//! Every blocking rule is reported, not only the first, so that fixing one
//! does not merely reveal the next.

use autoscaler_isolation_common::ca::{self, BlockingReason};
use autoscaler_isolation_common::pdb::Pdb;
use autoscaler_isolation_common::raw::{self, RawObject};
use tollgate_sdk::patch::pointer;
use tollgate_sdk::{PodPlacement, Review, VolumeSource};

/// The cluster-autoscaler flags that switch rules on (all default `true`).
#[derive(Debug, Clone, Copy)]
pub struct Flags {
    /// `--skip-nodes-with-system-pods` (rule 9).
    pub system_pods: bool,
    /// `--skip-nodes-with-local-storage` (rule 11).
    pub local_storage: bool,
    /// `--skip-nodes-with-custom-controller-pods` (narrows rule 8).
    pub custom_controller_pods: bool,
}

/// One reason the pod would block scale-down.
#[derive(Debug, Clone)]
pub struct Blocker {
    /// cluster-autoscaler's reason.
    pub reason: BlockingReason,
    /// What exactly blocks, and how to fix it.
    pub detail: String,
    /// The field at fault, if it is in the object.
    pub path: Option<String>,
    /// For local storage: the volume, when it is a disk-backed emptyDir
    /// (which the opt-in mutation can list as safe to lose).
    pub empty_dir: Option<String>,
}

impl Blocker {
    fn new(reason: BlockingReason, detail: String, path: Option<String>) -> Self {
        Blocker {
            reason,
            detail,
            path,
            empty_dir: None,
        }
    }
}

/// Everything cluster-autoscaler's rules 8 to 12 hold against the pod, in rule order.
pub fn blockers(
    review: &Review,
    pod: &PodPlacement,
    flags: Flags,
    pdbs: &[Pdb],
    object: &RawObject<'_>,
) -> Vec<Blocker> {
    let selecting: Vec<&Pdb> = pdbs.iter().filter(|p| p.selects(&pod.labels)).collect();
    let mut out = Vec::new();
    out.extend(replicated(review, pod, flags));
    out.extend(system_pod(review, flags, &selecting));
    out.extend(not_safe_to_evict(pod));
    if flags.local_storage {
        out.extend(local_storage(pod, object));
    }
    out.extend(disruption_budgets(pod, &selecting));
    out
}

/// Rule 8: a controller cluster-autoscaler recognises.
fn replicated(review: &Review, pod: &PodPlacement, flags: Flags) -> Option<Blocker> {
    let owner_path = (review.kind == "Pod").then(|| "/metadata/ownerReferences".to_string());
    match pod.controller_kind() {
        None => Some(Blocker::new(
            BlockingReason::NotReplicated,
            "it has no controller, so an evicted pod would not come back. Run it under a Deployment, \
             StatefulSet or Job, or annotate it cluster-autoscaler.kubernetes.io/safe-to-evict: \"true\" \
             if losing it is fine."
                .into(),
            owner_path,
        )),
        Some(kind) if flags.custom_controller_pods && !ca::STANDARD_CONTROLLERS.contains(&kind) => Some(Blocker::new(
            BlockingReason::NotReplicated,
            format!(
                "its controller is a {kind}, and with --skip-nodes-with-custom-controller-pods=true (the \
                 default) cluster-autoscaler only moves pods of ReplicationControllers, ReplicaSets, Jobs \
                 and StatefulSets. Annotate the pods cluster-autoscaler.kubernetes.io/safe-to-evict: \
                 \"true\" if they can be moved, or keep them off the pool."
            ),
            owner_path,
        )),
        Some(_) => None,
    }
}

/// Rule 9: kube-system pods need a PDB.
fn system_pod(review: &Review, flags: Flags, selecting: &[&Pdb]) -> Option<Blocker> {
    (flags.system_pods && review.namespace == ca::KUBE_SYSTEM && selecting.is_empty()).then(|| {
        Blocker::new(
            BlockingReason::UnmovableKubeSystemPod,
            "it is a kube-system pod and no PodDisruptionBudget selects it (blocking for as long as \
             the pod exists on cluster-autoscaler ≤ 1.32, kube-hetzner's default, and for its first hour \
             on ≥ 1.33). Keep it off the pool (see system-components-off-pools), add a \
             PodDisruptionBudget that selects it and allows a disruption (e.g. maxUnavailable: 1), or \
             annotate the pods cluster-autoscaler.kubernetes.io/safe-to-evict: \"true\"."
                .into(),
            None,
        )
    })
}

/// Rule 10: `safe-to-evict: "false"`.
fn not_safe_to_evict(pod: &PodPlacement) -> Option<Blocker> {
    (pod.annotations.get(ca::SAFE_TO_EVICT).map(String::as_str) == Some("false")).then(|| {
        Blocker::new(
            BlockingReason::NotSafeToEvictAnnotation,
            format!(
                "it is annotated {}: \"false\". Remove the annotation, or keep the workload off the pool.",
                ca::SAFE_TO_EVICT
            ),
            Some(pointer(&pod.template_path, &["metadata", "annotations", ca::SAFE_TO_EVICT])),
        )
    })
}

/// The volume names of the `safe-to-evict-local-volumes` annotation, split as
/// cluster-autoscaler splits them (on `,`, untrimmed).
pub fn listed_local_volumes(pod: &PodPlacement) -> Vec<&str> {
    pod.annotations
        .get(ca::SAFE_TO_EVICT_LOCAL_VOLUMES)
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').collect())
        .unwrap_or_default()
}

/// Rule 11: hostPath and disk-backed emptyDir volumes not listed as safe to lose.
fn local_storage(pod: &PodPlacement, object: &RawObject<'_>) -> Vec<Blocker> {
    let listed = listed_local_volumes(pod);
    pod.volumes
        .iter()
        .filter(|v| v.source.is_local_storage() && !listed.contains(&v.name.as_str()))
        .map(|v| {
            let spaced = listed.iter().any(|l| l.trim() == v.name);
            let note = if spaced {
                " The annotation lists it with surrounding spaces; cluster-autoscaler does not trim them."
            } else {
                ""
            };
            let detail = if v.source == VolumeSource::HostPath {
                format!(
                    "its hostPath volume {} is local storage. If the pod can lose access to it on \
                     eviction, list it in {} (comma-separated, no spaces); otherwise keep the workload \
                     off the pool.{note}",
                    v.name,
                    ca::SAFE_TO_EVICT_LOCAL_VOLUMES
                )
            } else {
                format!(
                    "its emptyDir volume {} is on the node's disk. List it in {} (comma-separated, no \
                     spaces) if its data may be lost on eviction, or use emptyDir.medium: Memory.{note}",
                    v.name,
                    ca::SAFE_TO_EVICT_LOCAL_VOLUMES
                )
            };
            let path = Some(raw::volume_pointer(object.value(), &pod.template_path, &v.name));
            let mut blocker = Blocker::new(BlockingReason::LocalStorageRequested, detail, path);
            blocker.empty_dir = (v.source == VolumeSource::EmptyDir).then(|| v.name.clone());
            blocker
        })
        .collect()
}

/// Rule 12: every PDB selecting the pod must allow a disruption.
fn disruption_budgets(pod: &PodPlacement, selecting: &[&Pdb]) -> Vec<Blocker> {
    selecting
        .iter()
        .filter_map(|pdb| {
            let why = pdb.blocks(pod.replicas)?;
            Some(Blocker::new(
                BlockingReason::NotEnoughPdb,
                format!(
                    "PodDisruptionBudget {}/{} selects it and {why}. Let it allow at least one \
                     disruption (maxUnavailable: 1, or minAvailable below the replicas).",
                    pdb.namespace, pdb.name
                ),
                None,
            ))
        })
        .collect()
}

/// Whether a Pod is terminal (rule 6: it neither moves nor blocks).
pub fn is_terminal(object: &serde_json::Value) -> bool {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    };
    matches!(
        (text("/spec/restartPolicy"), text("/status/phase")),
        (_, "Failed") | ("Never" | "OnFailure", "Succeeded")
    )
}
