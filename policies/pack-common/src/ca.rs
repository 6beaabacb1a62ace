//! The names cluster-autoscaler uses: pod and node annotations, the taints it
//! and k3s put on nodes, and the reasons it gives for a pod that blocks
//! scale-down (domain.md §1.2, §1.5). Policies quote these names in messages so
//! that a user can match them against cluster-autoscaler's own logs.

pub use tollgate_sdk::scheduling::{
    CONTROL_PLANE_LABEL, CONTROL_PLANE_TAINT, CRITICAL_ADDONS_ONLY, NODE_GROUP_LABEL,
    TO_BE_DELETED_TAINT,
};

/// Pod annotation: `"true"` makes the pod drainable whatever else holds
/// (rule 5), `"false"` blocks scale-down (rule 10).
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// Pod annotation: comma-separated names of local volumes that may be lost on
/// eviction (rule 11). cluster-autoscaler splits on `,` and does not trim.
pub const SAFE_TO_EVICT_LOCAL_VOLUMES: &str =
    "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes";
/// Annotation of mirror (static) pods; cluster-autoscaler skips them (rule 1).
pub const MIRROR_POD: &str = "kubernetes.io/config.mirror";
/// Node annotation: `"true"` removes the node from scale-down.
pub const SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
/// Prefix of node annotations that delay node deletion.
pub const DELAY_DELETION_PREFIX: &str = "delay-deletion.cluster-autoscaler.kubernetes.io/";
/// The one namespace whose pods are "system pods" for cluster-autoscaler (rule 9).
pub const KUBE_SYSTEM: &str = "kube-system";
/// The control-plane taint key older clusters use.
pub const LEGACY_MASTER_TAINT: &str = "node-role.kubernetes.io/master";
/// Control-plane taint keys; neither may serve as a pool taint.
pub const CONTROL_PLANE_TAINT_KEYS: &[&str] = &[CONTROL_PLANE_TAINT, LEGACY_MASTER_TAINT];
/// The controller kinds cluster-autoscaler accepts with
/// `--skip-nodes-with-custom-controller-pods=true` (rule 8). DaemonSet pods never
/// reach that rule (rule 4).
pub const STANDARD_CONTROLLERS: &[&str] =
    &["ReplicationController", "Job", "ReplicaSet", "StatefulSet"];
/// The priority classes reserved for system components.
pub const SYSTEM_PRIORITY_CLASSES: &[&str] = &["system-cluster-critical", "system-node-critical"];
/// cluster-autoscaler's default `--expendable-pods-priority-cutoff`.
pub const DEFAULT_EXPENDABLE_CUTOFF: i32 = -10;

/// Why cluster-autoscaler refuses to remove a node because of one of its pods
/// (`BlockingPodReason` in `utils/drain/drain.go`), in the order the rules run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlockingReason {
    /// Rule 8: no controller, or one cluster-autoscaler does not recognise.
    NotReplicated,
    /// Rule 9: a kube-system pod that no PodDisruptionBudget selects.
    UnmovableKubeSystemPod,
    /// Rule 10: `safe-to-evict: "false"`.
    NotSafeToEvictAnnotation,
    /// Rule 11: hostPath or disk-backed emptyDir not listed as safe to lose.
    LocalStorageRequested,
    /// Rule 12: a PodDisruptionBudget that allows no disruption.
    NotEnoughPdb,
}

impl BlockingReason {
    /// cluster-autoscaler's spelling of the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockingReason::NotReplicated => "NotReplicated",
            BlockingReason::UnmovableKubeSystemPod => "UnmovableKubeSystemPod",
            BlockingReason::NotSafeToEvictAnnotation => "NotSafeToEvictAnnotation",
            BlockingReason::LocalStorageRequested => "LocalStorageRequested",
            BlockingReason::NotEnoughPdb => "NotEnoughPdb",
        }
    }

    /// The pack's rule id for the reason (kebab-case, stable).
    pub fn rule_id(self) -> &'static str {
        match self {
            BlockingReason::NotReplicated => "not-replicated",
            BlockingReason::UnmovableKubeSystemPod => "unmovable-kube-system-pod",
            BlockingReason::NotSafeToEvictAnnotation => "not-safe-to-evict-annotation",
            BlockingReason::LocalStorageRequested => "local-storage-requested",
            BlockingReason::NotEnoughPdb => "not-enough-pdb",
        }
    }
}

impl std::fmt::Display for BlockingReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
