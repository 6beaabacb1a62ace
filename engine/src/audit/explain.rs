//! The scale-down explainer: for every node of an autoscaler pool, decide as
//! cluster-autoscaler would whether it can be removed, following its pipeline
//! (docs/scale-down.md; the rules and their order come from
//! cluster-autoscaler's `simulator/drainability/rules`, `eligibility` and
//! `planner`):
//!
//! 1. node level: `NodeGroupMinSizeReached`, `ScaleDownDisabledAnnotation`,
//!    `ScaleDownUnreadyDisabled`, `NotUnderutilized`;
//! 2. every pod through the drainability rules in order (mirror, long
//!    terminating, replica count, DaemonSet, safe-to-evict, terminal,
//!    on-completion, replicated, system, not-safe-to-evict, local storage,
//!    PDB). cluster-autoscaler stops at the first blocking pod; Tollgate lists
//!    every blocking pod with the reason cluster-autoscaler would give it;
//! 3. when nothing blocks, whether the pods that must move fit on another node
//!    (resources, nodeSelector and node affinity, taints, host ports):
//!    `NoPlaceToMovePods`.
//!
//! Expendable pods (priority below the cutoff) are removed first, as CA does.
//! The version and flags of the cluster's cluster-autoscaler change the rules
//! as they change cluster-autoscaler's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tollgate_sdk::model::{NodeInfo, NodePool, Operation, PodPlacement};
use tollgate_sdk::placement::{self, array, string_map};
use tollgate_sdk::quantity;
use tollgate_sdk::scheduling::{TO_BE_DELETED_TAINT, pool_of};
use tollgate_sdk::selector::LabelSelector;

use super::time::{parse_duration, parse_timestamp};
use crate::cluster::pools::{Autoscaler, PRESET_CA_VERSION, Version};
use crate::cluster::{ClusterView, Snapshot};

const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
const SAFE_TO_EVICT_LOCAL_VOLUMES: &str =
    "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes";
const SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
const MIRROR: &str = "kubernetes.io/config.mirror";

/// cluster-autoscaler's scale-down flags that change the rules, with their defaults.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Flags {
    /// `--skip-nodes-with-system-pods` (true).
    pub skip_nodes_with_system_pods: bool,
    /// `--skip-nodes-with-local-storage` (true).
    pub skip_nodes_with_local_storage: bool,
    /// `--skip-nodes-with-custom-controller-pods` (true).
    pub skip_nodes_with_custom_controller_pods: bool,
    /// `--min-replica-count` (0).
    pub min_replica_count: i64,
    /// `--scale-down-utilization-threshold` (0.5).
    pub scale_down_utilization_threshold: f64,
    /// `--expendable-pods-priority-cutoff` (-10).
    pub expendable_pods_priority_cutoff: i64,
    /// `--blocking-system-pod-distruption-timeout` in seconds (1h; CA >= 1.33).
    pub blocking_system_pod_disruption_timeout: i64,
    /// `--ignore-daemonsets-utilization` (false).
    pub ignore_daemonsets_utilization: bool,
    /// `--ignore-mirror-pods-utilization` (false).
    pub ignore_mirror_pods_utilization: bool,
    /// `--scale-down-unready-enabled` (true).
    pub scale_down_unready_enabled: bool,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            skip_nodes_with_system_pods: true,
            skip_nodes_with_local_storage: true,
            skip_nodes_with_custom_controller_pods: true,
            min_replica_count: 0,
            scale_down_utilization_threshold: 0.5,
            expendable_pods_priority_cutoff: -10,
            blocking_system_pod_disruption_timeout: 3600,
            ignore_daemonsets_utilization: false,
            ignore_mirror_pods_utilization: false,
            scale_down_unready_enabled: true,
        }
    }
}

/// Why the flags could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cluster-autoscaler flag --{flag}={value}: {problem}")]
pub struct FlagError {
    /// The flag.
    pub flag: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub problem: &'static str,
}

impl Flags {
    /// Apply `--name=value` settings (from the Deployment, then overrides).
    ///
    /// # Errors
    /// A value that does not parse; unknown flags are ignored (CA has many).
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), FlagError> {
        let bad = |problem| FlagError {
            flag: name.to_string(),
            value: value.to_string(),
            problem,
        };
        let boolean = || match value {
            "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
            "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
            _ => Err(bad("expected true or false")),
        };
        match name {
            "skip-nodes-with-system-pods" => self.skip_nodes_with_system_pods = boolean()?,
            "skip-nodes-with-local-storage" => self.skip_nodes_with_local_storage = boolean()?,
            "skip-nodes-with-custom-controller-pods" => {
                self.skip_nodes_with_custom_controller_pods = boolean()?
            }
            "ignore-daemonsets-utilization" => self.ignore_daemonsets_utilization = boolean()?,
            "ignore-mirror-pods-utilization" => self.ignore_mirror_pods_utilization = boolean()?,
            "scale-down-unready-enabled" => self.scale_down_unready_enabled = boolean()?,
            "min-replica-count" => {
                self.min_replica_count = value.parse().map_err(|_| bad("expected an integer"))?
            }
            "expendable-pods-priority-cutoff" => {
                self.expendable_pods_priority_cutoff =
                    value.parse().map_err(|_| bad("expected an integer"))?
            }
            "scale-down-utilization-threshold" => {
                self.scale_down_utilization_threshold =
                    value.parse().map_err(|_| bad("expected a number"))?
            }
            "blocking-system-pod-distruption-timeout" => {
                self.blocking_system_pod_disruption_timeout =
                    parse_duration(value).ok_or_else(|| bad("expected a duration such as 1h"))?
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the explainer assumes about cluster-autoscaler.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assumptions {
    /// The cluster-autoscaler version the rules follow.
    pub version: String,
    /// Where the version came from: `flag`, `image` or `preset`.
    pub version_source: &'static str,
    /// The cluster-autoscaler Deployment read, if any.
    pub deployment: Option<String>,
    /// The flags in effect.
    pub flags: Flags,
    /// "Now", seconds since the epoch (for pod ages).
    pub now: i64,
}

/// A node-level reason a node cannot be removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReason {
    /// cluster-autoscaler's reason name.
    pub reason: &'static str,
    /// What it means here.
    pub message: String,
}

/// A pod that stops its node from being removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    /// `namespace/name`.
    pub pod: String,
    /// cluster-autoscaler's reason name.
    pub reason: &'static str,
    /// What it means here.
    pub message: String,
    /// Which policy or mutation of the pack removes it.
    pub fix: String,
}

/// The verdict for one pool node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeExplanation {
    /// Node name.
    pub name: String,
    /// Its pool.
    pub pool: String,
    /// Whether cluster-autoscaler could remove it now.
    pub removable: bool,
    /// Node-level reasons.
    pub reasons: Vec<NodeReason>,
    /// Blocking pods.
    pub blockers: Vec<Blocker>,
    /// Utilization: max(CPU requests / allocatable, memory requests / allocatable).
    pub utilization: f64,
    /// Pods on the node (expendable ones excluded).
    pub pods: usize,
}

/// The explainer's answer for a cluster.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDown {
    /// What was assumed about cluster-autoscaler.
    pub assumptions: Assumptions,
    /// One entry per pool node, ordered by pool and name.
    pub nodes: Vec<NodeExplanation>,
}

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--ca-version`.
    pub version: Option<Version>,
    /// `--ca-flag name=value`, in order.
    pub flags: Vec<(String, String)>,
    /// `--now` (seconds since the epoch).
    pub now: Option<i64>,
}

/// Work out the assumptions from the cluster-autoscaler Deployment and overrides.
///
/// # Errors
/// A flag value that does not parse.
pub fn assumptions(
    autoscaler: Option<&Autoscaler>,
    overrides: &Overrides,
) -> Result<Assumptions, FlagError> {
    let mut flags = Flags::default();
    if let Some(ca) = autoscaler {
        for (name, values) in &ca.flags {
            if let Some(v) = values.last() {
                flags.apply(name, v)?;
            }
        }
    }
    for (name, value) in &overrides.flags {
        flags.apply(name, value)?;
    }
    let (version, version_source) = match (overrides.version, autoscaler.and_then(|a| a.version)) {
        (Some(v), _) => (v, "flag"),
        (None, Some(v)) => (v, "image"),
        (None, None) => (PRESET_CA_VERSION, "preset"),
    };
    Ok(Assumptions {
        version: version.to_string(),
        version_source,
        deployment: autoscaler.map(|a| a.deployment.clone()),
        flags,
        now: overrides.now.unwrap_or_else(super::time::now),
    })
}

/// A node as the simulation sees it.
struct Node {
    name: String,
    info: NodeInfo,
    ready: bool,
    cpu: i64,
    memory: i64,
    pods_capacity: i64,
}

/// A pod as the simulation sees it.
struct Pod {
    object: Arc<Value>,
    key: String,
    namespace: String,
    placement: PodPlacement,
}

/// Explain every pool node of `snapshot`.
pub fn explain(snapshot: &Snapshot, assumptions: &Assumptions) -> ScaleDown {
    let version = Version::parse(&assumptions.version).unwrap_or(PRESET_CA_VERSION);
    let flags = &assumptions.flags;
    let pools = snapshot.node_pools();
    let nodes: Vec<Node> = snapshot.of_kind("Node").filter_map(node).collect();
    let pods: Vec<Pod> = snapshot
        .of_kind("Pod")
        .filter_map(pod)
        .filter(|p| !is_expendable(&p.placement, flags))
        .collect();
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in &pods {
        if let Some(n) = &p.placement.node_name {
            by_node.entry(n.as_str()).or_default().push(p);
        }
    }
    let mut pool_sizes: BTreeMap<&str, u32> = BTreeMap::new();
    let membership: Vec<Option<&NodePool>> = nodes
        .iter()
        .map(|n| pool_of(pools, &n.name, &n.info.labels))
        .collect();
    for pool in membership.iter().flatten() {
        *pool_sizes.entry(pool.name.as_str()).or_default() += 1;
    }
    let usage: Vec<Usage> = nodes
        .iter()
        .map(|n| {
            let mut u = Usage::default();
            for p in by_node
                .get(n.name.as_str())
                .into_iter()
                .flatten()
                .filter(|p| !is_terminal(&p.object))
            {
                u.add(&p.placement);
            }
            u
        })
        .collect();
    let mut pdbs: BTreeMap<String, Vec<(LabelSelector, Arc<Value>)>> = BTreeMap::new();
    for pdb in snapshot.of_kind("PodDisruptionBudget") {
        // A PDB without a selector selects nothing.
        let Some(selector) = pdb
            .pointer("/spec/selector")
            .and_then(LabelSelector::from_json)
        else {
            continue;
        };
        let namespace = pdb
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        pdbs.entry(namespace.to_string())
            .or_default()
            .push((selector, pdb.clone()));
    }
    let ctx = Ctx {
        snapshot,
        pdbs,
        flags,
        version,
        now: assumptions.now,
    };
    let mut explanations: Vec<NodeExplanation> = nodes
        .iter()
        .zip(&membership)
        .filter_map(|(node, pool)| {
            let pool = (*pool)?;
            let on_node = by_node
                .get(node.name.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            Some(ctx.explain_node(
                node,
                pool,
                pool_sizes[pool.name.as_str()],
                on_node,
                &nodes,
                &usage,
            ))
        })
        .collect();
    explanations.sort_by(|a, b| (&a.pool, &a.name).cmp(&(&b.pool, &b.name)));
    ScaleDown {
        assumptions: assumptions.clone(),
        nodes: explanations,
    }
}

struct Ctx<'a> {
    snapshot: &'a Snapshot,
    /// PodDisruptionBudgets by namespace, with their parsed selectors.
    pdbs: BTreeMap<String, Vec<(LabelSelector, Arc<Value>)>>,
    flags: &'a Flags,
    version: Version,
    now: i64,
}

/// A pod's drainability: moved, skipped, or blocking.
enum Drain {
    Move,
    Skip,
    Block(&'static str, String),
}

impl Ctx<'_> {
    fn explain_node(
        &self,
        node: &Node,
        pool: &NodePool,
        pool_size: u32,
        pods: &[&Pod],
        all_nodes: &[Node],
        usage: &[Usage],
    ) -> NodeExplanation {
        let mut reasons = Vec::new();
        if pool_size <= pool.min_size {
            reasons.push(NodeReason {
                reason: "NodeGroupMinSizeReached",
                message: format!(
                    "pool {} has {pool_size} node(s), its minimum is {}",
                    pool.name, pool.min_size
                ),
            });
        }
        if node
            .info
            .annotations
            .get(SCALE_DOWN_DISABLED)
            .map(String::as_str)
            == Some("true")
        {
            reasons.push(NodeReason {
                reason: "ScaleDownDisabledAnnotation",
                message: format!(
                    "the node is annotated {SCALE_DOWN_DISABLED}=true; remove the annotation"
                ),
            });
        }
        if !node.ready && !self.flags.scale_down_unready_enabled {
            reasons.push(NodeReason {
                reason: "ScaleDownUnreadyDisabled",
                message: "the node is not ready and --scale-down-unready-enabled=false".into(),
            });
        }
        let utilization = self.utilization(node, pods);
        if utilization > self.flags.scale_down_utilization_threshold {
            reasons.push(NodeReason {
                reason: "NotUnderutilized",
                message: format!(
                    "utilization {:.0}% is above the {:.0}% threshold (--scale-down-utilization-threshold)",
                    utilization * 100.0,
                    self.flags.scale_down_utilization_threshold * 100.0
                ),
            });
        }
        let mut blockers = Vec::new();
        let mut to_move = Vec::new();
        for pod in pods {
            match self.drainability(pod) {
                Drain::Move => to_move.push(*pod),
                Drain::Skip => {}
                Drain::Block(reason, message) => blockers.push(Blocker {
                    pod: pod.key.clone(),
                    reason,
                    fix: fix(reason, pod, &self.workload(pod)),
                    message,
                }),
            }
        }
        // cluster-autoscaler simulates the removal of eligible nodes only.
        if blockers.is_empty()
            && reasons.is_empty()
            && let Some((pod, why)) = self.find_places(node, &to_move, all_nodes, usage)
        {
            reasons.push(NodeReason {
                reason: "NoPlaceToMovePods",
                message: format!("pod {} fits on no other node: {why}", pod.key),
            });
        }
        NodeExplanation {
            name: node.name.clone(),
            pool: pool.name.clone(),
            removable: reasons.is_empty() && blockers.is_empty(),
            reasons,
            blockers,
            utilization,
            pods: pods.len(),
        }
    }

    fn utilization(&self, node: &Node, pods: &[&Pod]) -> f64 {
        let counted = pods.iter().filter(|p| {
            !(self.flags.ignore_daemonsets_utilization && p.placement.is_daemonset()
                || self.flags.ignore_mirror_pods_utilization
                    && p.placement.annotations.contains_key(MIRROR))
                && !is_terminal(&p.object)
        });
        let (cpu, memory) = counted.fold((0i64, 0i64), |(c, m), p| {
            (
                c + p.placement.cpu_request_millis,
                m + p.placement.memory_request_bytes,
            )
        });
        let ratio = |used: i64, total: i64| {
            if total > 0 {
                used as f64 / total as f64
            } else {
                0.0
            }
        };
        ratio(cpu, node.cpu).max(ratio(memory, node.memory))
    }

    /// The drainability rules, in cluster-autoscaler's order; the first that decides wins.
    fn drainability(&self, pod: &Pod) -> Drain {
        let p = &pod.placement;
        let annotation = |k: &str| p.annotations.get(k).map(String::as_str);
        let flags = self.flags;
        // 1. Mirror pods are skipped.
        if p.annotations.contains_key(MIRROR) {
            return Drain::Skip;
        }
        // 2. Long-terminating pods are skipped.
        if let Some(deleted) = pod
            .object
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(parse_timestamp)
        {
            let grace = pod
                .object
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            if self.now > deleted + grace + 30 {
                return Drain::Skip;
            }
        }
        // 3. Replica count (only with --skip-nodes-with-custom-controller-pods).
        if flags.skip_nodes_with_custom_controller_pods
            && let Some(owner) = &p.controller
            && matches!(
                owner.kind.as_str(),
                "ReplicationController" | "ReplicaSet" | "Job" | "StatefulSet" | "DaemonSet"
            )
            && self.snapshot.of_kind(&owner.kind).next().is_some()
        {
            match self
                .snapshot
                .get(&owner.api_version, &owner.kind, &pod.namespace, &owner.name)
            {
                None => {
                    return Drain::Block(
                        "ControllerNotFound",
                        format!(
                            "its controller {} {} does not exist",
                            owner.kind, owner.name
                        ),
                    );
                }
                Some(controller)
                    if matches!(owner.kind.as_str(), "ReplicationController" | "ReplicaSet") =>
                {
                    let replicas = controller
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    if replicas < flags.min_replica_count {
                        return Drain::Block(
                            "MinReplicasReached",
                            format!(
                                "{} {} has {replicas} replicas, below --min-replica-count={}",
                                owner.kind, owner.name, flags.min_replica_count
                            ),
                        );
                    }
                }
                Some(_) => {}
            }
        }
        // 4. DaemonSet pods never block.
        if p.is_daemonset() {
            return Drain::Skip;
        }
        // 5. safe-to-evict: "true" short-circuits the rest.
        if annotation(SAFE_TO_EVICT) == Some("true") {
            return Drain::Move;
        }
        // 6. Terminal pods.
        if is_terminal(&pod.object) {
            return Drain::Skip;
        }
        // 7. on-completion (CA >= 1.36).
        if self.version
            >= (Version {
                major: 1,
                minor: 36,
                patch: 0,
            })
            && annotation(SAFE_TO_EVICT) == Some("on-completion")
        {
            return Drain::Block(
                "BlockedByOnCompletionPod",
                format!("{SAFE_TO_EVICT}=on-completion: the node waits until the pod completes"),
            );
        }
        // 8. Replicated.
        match p.controller_kind() {
            None => {
                return Drain::Block(
                    "NotReplicated",
                    "the pod has no controller; a bare pod cannot be recreated elsewhere".into(),
                );
            }
            Some(kind)
                if flags.skip_nodes_with_custom_controller_pods
                    && !matches!(
                        kind,
                        "ReplicationController" | "Job" | "ReplicaSet" | "StatefulSet"
                    ) =>
            {
                return Drain::Block(
                    "NotReplicated",
                    format!(
                        "its controller kind {kind} is not a standard one (--skip-nodes-with-custom-controller-pods=true)"
                    ),
                );
            }
            Some(_) => {}
        }
        let pdbs = self.pdbs_for(pod);
        // 9. kube-system pods need a PDB.
        if flags.skip_nodes_with_system_pods && pod.namespace == "kube-system" && pdbs.is_empty() {
            let timeout_applies = self.version
                >= (Version {
                    major: 1,
                    minor: 33,
                    patch: 0,
                });
            let age = pod
                .object
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .and_then(parse_timestamp)
                .map(|created| self.now - created);
            match (timeout_applies, age) {
                (true, Some(age)) if age > flags.blocking_system_pod_disruption_timeout => {
                    return Drain::Move;
                }
                _ => {
                    let when = if timeout_applies {
                        format!(
                            " (cluster-autoscaler {} stops blocking {}s after the pod's creation)",
                            self.version, flags.blocking_system_pod_disruption_timeout
                        )
                    } else {
                        format!(
                            " (cluster-autoscaler {} blocks for as long as the pod exists)",
                            self.version
                        )
                    };
                    return Drain::Block(
                        "UnmovableKubeSystemPod",
                        format!("non-DaemonSet kube-system pod with no PodDisruptionBudget{when}"),
                    );
                }
            }
        }
        // 10. safe-to-evict: "false".
        if annotation(SAFE_TO_EVICT) == Some("false") {
            return Drain::Block(
                "NotSafeToEvictAnnotation",
                format!("annotated {SAFE_TO_EVICT}=false"),
            );
        }
        // 11. Local storage.
        if flags.skip_nodes_with_local_storage {
            let allowed: HashSet<&str> = annotation(SAFE_TO_EVICT_LOCAL_VOLUMES)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .collect();
            let local: Vec<&str> = p
                .volumes
                .iter()
                .filter(|v| v.source.is_local_storage() && !allowed.contains(v.name.as_str()))
                .map(|v| v.name.as_str())
                .collect();
            if !local.is_empty() {
                return Drain::Block(
                    "LocalStorageRequested",
                    format!(
                        "local storage (hostPath or disk-backed emptyDir) not listed in {SAFE_TO_EVICT_LOCAL_VOLUMES}: {}",
                        local.join(", ")
                    ),
                );
            }
        }
        // 12. PDBs must allow a disruption.
        for pdb in &pdbs {
            let allowed = disruptions_allowed(pdb, self.snapshot);
            if allowed < 1 {
                let name = pdb
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Drain::Block(
                    "NotEnoughPdb",
                    format!(
                        "PodDisruptionBudget {}/{name} allows {allowed} disruptions",
                        pod.namespace
                    ),
                );
            }
        }
        Drain::Move
    }

    /// The object a user edits for this pod: its controller, followed up
    /// through ReplicaSet -> Deployment and Job -> CronJob when they exist.
    fn workload(&self, pod: &Pod) -> String {
        let Some(mut owner) = pod.placement.controller.clone() else {
            return format!("pod {}", pod.key);
        };
        while let Some(parent) = self
            .snapshot
            .get(&owner.api_version, &owner.kind, &pod.namespace, &owner.name)
            .and_then(|o| placement::pod_controller(&o))
        {
            owner = parent;
        }
        format!("{} {}/{}", owner.kind, pod.namespace, owner.name)
    }

    fn pdbs_for(&self, pod: &Pod) -> Vec<Arc<Value>> {
        self.pdbs
            .get(&pod.namespace)
            .into_iter()
            .flatten()
            .filter(|(selector, _)| selector.matches(&pod.placement.labels))
            .map(|(_, pdb)| pdb.clone())
            .collect()
    }

    /// Schedule the pods that must move onto other nodes, in simulation. The
    /// first pod with nowhere to go, and why, when there is one.
    fn find_places<'p>(
        &self,
        leaving: &Node,
        pods: &[&'p Pod],
        nodes: &[Node],
        usage: &[Usage],
    ) -> Option<(&'p Pod, String)> {
        let candidates: Vec<usize> = (0..nodes.len())
            .filter(|&i| {
                let n = &nodes[i];
                n.name != leaving.name
                    && n.ready
                    && !n.info.unschedulable
                    && !n.info.taints.iter().any(|t| t.key == TO_BE_DELETED_TAINT)
            })
            .collect();
        // What this simulation placed, on top of each node's current usage.
        let mut placed_here: BTreeMap<usize, Usage> = BTreeMap::new();
        for pod in pods {
            let p = &pod.placement;
            let mut why = Vec::new();
            let mut placed = false;
            for &i in &candidates {
                let node = &nodes[i];
                let extra = placed_here.get(&i);
                let used = |f: fn(&Usage) -> i64| f(&usage[i]) + extra.map_or(0, f);
                let port_taken = |h: &tollgate_sdk::model::HostPort| {
                    let key = (h.port, h.protocol.clone());
                    usage[i].ports.contains(&key) || extra.is_some_and(|e| e.ports.contains(&key))
                };
                let problem =
                    if let Err(unfit) = p.fits(&node.name, &node.info.labels, &node.info.taints) {
                        Some(unfit.to_string())
                    } else if used(|u| u.cpu) + p.cpu_request_millis > node.cpu {
                        Some("insufficient cpu".into())
                    } else if used(|u| u.memory) + p.memory_request_bytes > node.memory {
                        Some("insufficient memory".into())
                    } else if used(|u| u.pods) + 1 > node.pods_capacity {
                        Some("too many pods".into())
                    } else if p.host_ports.iter().any(port_taken) {
                        Some("host port in use".into())
                    } else {
                        None
                    };
                match problem {
                    Some(problem) => why.push(format!("{}: {problem}", node.name)),
                    None => {
                        placed_here.entry(i).or_default().add(p);
                        placed = true;
                        break;
                    }
                }
            }
            if !placed {
                why.truncate(5);
                let why = if why.is_empty() {
                    "no other schedulable node".to_string()
                } else {
                    why.join("; ")
                };
                return Some((pod, why));
            }
        }
        None
    }
}

/// Requests already on a node.
#[derive(Debug, Clone, Default)]
struct Usage {
    cpu: i64,
    memory: i64,
    pods: i64,
    ports: HashSet<(i32, String)>,
}

impl Usage {
    fn add(&mut self, p: &PodPlacement) {
        self.cpu += p.cpu_request_millis;
        self.memory += p.memory_request_bytes;
        self.pods += 1;
        self.ports
            .extend(p.host_ports.iter().map(|h| (h.port, h.protocol.clone())));
    }
}

/// What removes a blocker: the pack's policy or mutation for it.
fn fix(reason: &str, pod: &Pod, owner: &str) -> String {
    let system = pod.namespace == "kube-system";
    match reason {
        "UnmovableKubeSystemPod" => format!(
            "system-components-off-pools: pin {owner} to control-plane nodes (`tollgate generate fixes` writes the patch that adds the required affinity); or give it a PodDisruptionBudget that allows a disruption"
        ),
        "LocalStorageRequested" if system => format!(
            "system-components-off-pools: keep {owner} off pools; or pool-workloads-evictable's annotateLocalVolumes mutation lists its emptyDirs in safe-to-evict-local-volumes"
        ),
        "LocalStorageRequested" => format!(
            "pool-workloads-evictable: list the emptyDirs of {owner} in {SAFE_TO_EVICT_LOCAL_VOLUMES} (its annotateLocalVolumes mutation does it); move hostPath users off pools"
        ),
        "NotSafeToEvictAnnotation" => format!(
            "pool-workloads-evictable: remove {SAFE_TO_EVICT}=false from {owner}, or keep it off pools (pool-opt-in)"
        ),
        "NotReplicated" => format!("pool-workloads-evictable: run {owner} under a Deployment, StatefulSet or Job, or keep it off pools"),
        "NotEnoughPdb" => "pdb-drainable: let the PodDisruptionBudget allow at least one disruption (maxUnavailable >= 1, or minAvailable below the replicas)".into(),
        "ControllerNotFound" | "MinReplicasReached" => format!("pool-workloads-evictable: check the controller of {owner}"),
        "BlockedByOnCompletionPod" => format!("wait for {owner} to complete, or drop the on-completion annotation"),
        _ => String::new(),
    }
}

/// `status.disruptionsAllowed`, or from the spec when there is no status.
fn disruptions_allowed(pdb: &Value, snapshot: &Snapshot) -> i64 {
    if let Some(allowed) = pdb
        .pointer("/status/disruptionsAllowed")
        .and_then(Value::as_i64)
    {
        return allowed;
    }
    let namespace = pdb
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let selector = pdb
        .pointer("/spec/selector")
        .and_then(LabelSelector::from_json)
        .unwrap_or_default();
    let healthy = snapshot
        .list("v1", "Pod", Some(namespace), &LabelSelector::default())
        .iter()
        .filter(|p| selector.matches(&string_map(p.pointer("/metadata/labels"))))
        .filter(|p| p.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
        .count() as i64;
    let resolve = |v: &Value| match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map(|p| (p * healthy + 99) / 100),
        _ => None,
    };
    if let Some(max) = pdb.pointer("/spec/maxUnavailable").and_then(resolve) {
        return max;
    }
    if let Some(min) = pdb.pointer("/spec/minAvailable").and_then(resolve) {
        return healthy - min;
    }
    1
}

fn is_terminal(pod: &Value) -> bool {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let restart = pod
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    phase == "Failed" || (phase == "Succeeded" && matches!(restart, "Never" | "OnFailure"))
}

fn is_expendable(p: &PodPlacement, flags: &Flags) -> bool {
    p.priority
        .is_some_and(|prio| i64::from(prio) < flags.expendable_pods_priority_cutoff)
}

fn node(object: &Arc<Value>) -> Option<Node> {
    let review = placement::review(object, Operation::None).ok()?;
    let allocatable = |name: &str, parse: fn(&str) -> Option<i64>| {
        object
            .pointer("/status/allocatable")
            .or_else(|| object.pointer("/status/capacity"))
            .and_then(|a| a.get(name))
            .and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_i64().map(|i| i.to_string()))
            })
            .and_then(|q| parse(&q))
            .unwrap_or(0)
    };
    let ready = array(object.pointer("/status/conditions"))
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .is_none_or(|c| c.get("status").and_then(Value::as_str) == Some("True"));
    Some(Node {
        name: review.name,
        info: review.node?,
        ready,
        cpu: allocatable("cpu", quantity::cpu_millis),
        memory: allocatable("memory", quantity::bytes),
        pods_capacity: Some(allocatable("pods", quantity::bytes))
            .filter(|p| *p > 0)
            .unwrap_or(110),
    })
}

fn pod(object: &Arc<Value>) -> Option<Pod> {
    let review = placement::review(object, Operation::None).ok()?;
    Some(Pod {
        key: review.display_name(),
        namespace: review.namespace.clone(),
        placement: review.pod?,
        object: object.clone(),
    })
}

#[cfg(test)]
mod tests;
