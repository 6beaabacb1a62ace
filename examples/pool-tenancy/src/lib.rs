//! # pool-tenancy: a custom Tollgate policy written with the SDK
//!
//! A platform team dedicates cluster-autoscaler node pools to tenants: "pods of
//! namespace `ci` run on pool `k3s-batman`, and nowhere else". This policy
//! enforces such bindings ([`Settings::tenancies`]). For every pod, and every
//! pod template of a workload, in a bound namespace it checks that
//!
//! - the pod **selects its pool**: its `nodeSelector` or every term of its
//!   required node affinity pins the labels that identify the pool's nodes
//!   (rule [`rules::MUST_SELECT_POOL`]);
//! - the pod **tolerates the pool's taints** ([`rules::MUST_TOLERATE_POOL_TAINT`]);
//! - the pod **tolerates nothing else of note**: no key-less `Exists`
//!   toleration ([`rules::BLANKET_TOLERATION`]) and no toleration of another
//!   pool's taint ([`rules::FOREIGN_TOLERATION`]).
//!
//! Pools come from the host ([`tollgate_sdk::Host::node_pools`]), which learns
//! them from the cluster-autoscaler Deployment, the engine's configuration or a
//! preset; a binding to a pool the host does not know is denied
//! ([`rules::UNKNOWN_POOL`]), and so is a binding to a pool whose nodes carry
//! no identifying label ([`rules::POOL_HAS_NO_LABELS`]).
//!
//! With `mutate: true` the policy repairs what it safely can: it adds the
//! pool's labels to `nodeSelector` and a narrow toleration per pool taint, and
//! the repaired object passes the policy unchanged (the patch is idempotent).
//!
//! Some problems are the pool's, not the pod's, and come as warnings: a pool
//! without a taint (anything can land on it), and a pool whose labels another
//! pool is expected to carry too (selecting them cannot tell the two apart; the
//! engine expects `node.kubernetes.io/role=autoscaler` on every pool that
//! declares no label of its own).
//!
//! Left alone on purpose: DaemonSets and their pods (they follow nodes, not
//! pools), and UPDATEs of Pods (a Pod's placement fields are immutable, so
//! judging them would only block unrelated updates; audit still reports them).

pub mod placement;
pub mod settings;

use tollgate_sdk::model::{Operation, PodPlacement, RuleInfo};
use tollgate_sdk::patch::{Patch, pointer};
use tollgate_sdk::serde_json::{Map, Value};
use tollgate_sdk::{Decision, Host, HostExt, Metadata, NodePool, Policy, Review, Violation};

pub use settings::{Settings, Tenancy};

/// Stable rule ids (kebab-case): what reports, scripts and tests key on.
pub mod rules {
    /// The namespace is bound to a pool the host does not know.
    pub const UNKNOWN_POOL: &str = "unknown-pool";
    /// The bound pool's nodes carry no label a pod could select them by.
    pub const POOL_HAS_NO_LABELS: &str = "pool-has-no-labels";
    /// The pod's node selection does not pin the pool's labels.
    pub const MUST_SELECT_POOL: &str = "must-select-pool";
    /// The pod does not tolerate one of the pool's taints.
    pub const MUST_TOLERATE_POOL_TAINT: &str = "must-tolerate-pool-taint";
    /// The pod has a key-less `Exists` toleration (it tolerates every taint).
    pub const BLANKET_TOLERATION: &str = "blanket-toleration";
    /// The pod tolerates the taint of another pool.
    pub const FOREIGN_TOLERATION: &str = "foreign-toleration";
}

/// Kinds judged: Pods and the workloads that stamp pods out of a template.
/// DaemonSets are left out on purpose (see the crate documentation).
pub const KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];

/// The `pool-tenancy` policy.
pub struct PoolTenancy;

impl Policy for PoolTenancy {
    type Settings = Settings;

    fn metadata() -> Metadata {
        let rule = |id: &str, description: &str| RuleInfo {
            id: id.to_string(),
            description: description.to_string(),
        };
        Metadata {
            name: "pool-tenancy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Pods of a bound namespace must select their node pool and tolerate \
                          only that pool's taints"
                .into(),
            kinds: KINDS.iter().map(|k| (*k).to_string()).collect(),
            mutating: true,
            rules: vec![
                rule(
                    rules::UNKNOWN_POOL,
                    "the namespace is bound to a pool the host does not know",
                ),
                rule(
                    rules::POOL_HAS_NO_LABELS,
                    "the bound pool's nodes carry no label to select them by",
                ),
                rule(
                    rules::MUST_SELECT_POOL,
                    "nodeSelector or required node affinity must pin the pool's labels",
                ),
                rule(
                    rules::MUST_TOLERATE_POOL_TAINT,
                    "the pod must tolerate every NoSchedule/NoExecute taint of its pool",
                ),
                rule(rules::BLANKET_TOLERATION, "no key-less Exists toleration"),
                rule(
                    rules::FOREIGN_TOLERATION,
                    "no toleration of another pool's taint",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn validate(settings: &Settings) -> Result<(), String> {
        settings.validate()
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let Some(pod) = &review.pod else {
            return Decision::allow();
        };
        let Some(tenancy) = settings.tenancy_for(&review.namespace) else {
            return Decision::allow();
        };
        if review.kind == "DaemonSet" || pod.is_daemonset() {
            return Decision::allow();
        }
        if review.kind == "Pod" && matches!(review.operation, Operation::Update | Operation::Delete)
        {
            return Decision::allow();
        }
        let pools = host.node_pools();
        let Some(pool) = pools.iter().find(|p| p.name == tenancy.pool) else {
            let known: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
            return Decision::from_violations(vec![Violation::new(
                rules::UNKNOWN_POOL,
                format!(
                    "namespace {} is bound to node pool {}, which the cluster view does not know \
                     (known pools: {}); fix the tenancy or the engine's pool configuration",
                    tenancy.namespace,
                    tenancy.pool,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    },
                ),
            )]);
        };
        // The raw object is needed only to build patches.
        let object = if settings.mutate {
            host.object()
        } else {
            Value::Null
        };
        Judgement::new(pod, tenancy, pool, &pools, settings.mutate, object).run()
    }
}

/// One evaluation: the pod, its pool, and what is found and repaired.
struct Judgement<'a> {
    pod: &'a PodPlacement,
    tenancy: &'a Tenancy,
    pool: &'a NodePool,
    pools: &'a [NodePool],
    mutate: bool,
    /// The object under review as JSON (`Null` unless mutating).
    object: Value,
    /// JSON pointer of the pod spec inside the object.
    spec: String,
    violations: Vec<Violation>,
    /// Advice that stands whatever the verdict.
    notes: Vec<String>,
    /// What the patch does, reported only when the object is allowed.
    repairs: Vec<String>,
    patch: Patch,
}

impl<'a> Judgement<'a> {
    fn new(
        pod: &'a PodPlacement,
        tenancy: &'a Tenancy,
        pool: &'a NodePool,
        pools: &'a [NodePool],
        mutate: bool,
        object: Value,
    ) -> Self {
        Judgement {
            pod,
            tenancy,
            pool,
            pools,
            mutate,
            object,
            spec: format!("{}/spec", pod.template_path),
            violations: Vec::new(),
            notes: Vec::new(),
            repairs: Vec::new(),
            patch: Patch::new(),
        }
    }

    fn run(mut self) -> Decision {
        let identity = placement::identity(self.pool);
        if identity.is_empty() {
            self.deny(Violation::new(
                rules::POOL_HAS_NO_LABELS,
                format!(
                    "namespace {} is bound to node pool {}, but the pool's nodes carry no \
                         label that pods could select; declare labels (and a taint) for the \
                         pool, e.g. in kube-hetzner's autoscaler_nodepools",
                    self.tenancy.namespace, self.pool.name
                ),
            ));
        } else {
            self.check_selection(identity);
        }
        self.check_taints();
        self.check_tolerations();
        self.decision()
    }

    /// The pod must pin every identifying label of the pool, and no other pool.
    fn check_selection(&mut self, identity: &tollgate_sdk::Labels) {
        let missing = placement::unpinned(self.pod, identity);
        let mut added: Vec<(&str, &str)> = Vec::new();
        for (key, value) in &missing {
            match placement::selector_conflict(self.pod, key, value) {
                None if self.mutate => added.push((key, value)),
                conflict => {
                    let why = conflict.map(|c| format!(" ({c})")).unwrap_or_default();
                    self.deny(
                        Violation::new(
                            rules::MUST_SELECT_POOL,
                            format!(
                                "pods of namespace {} must run on node pool {}: select \
                                 {key}={value} in nodeSelector or in every required \
                                 node-affinity term{why}",
                                self.tenancy.namespace, self.pool.name
                            ),
                        )
                        .at(format!("{}/nodeSelector", self.spec)),
                    );
                }
            }
        }
        if !added.is_empty() {
            self.add_node_selector(&added);
        }
        if missing.len() == added.len() {
            // The pod selects the pool (possibly after the repair). If another
            // pool is expected to carry the same labels, the pod cannot do
            // better: the pool needs a label of its own.
            let effective = placement::with_selector(self.pod, &added);
            for other in placement::other_pools_selected(&effective, self.pool, self.pools) {
                self.notes.push(format!(
                    "node pool {} is expected to carry the same labels as {}, so selecting \
                     them may also place pods of namespace {} on {}; give pool {} a label of \
                     its own (declare it for the pool, e.g. in kube-hetzner's \
                     autoscaler_nodepools) and bind the namespace to it",
                    other.name, self.pool.name, self.tenancy.namespace, other.name, self.pool.name
                ));
            }
        }
    }

    /// Every repelling taint of the pool must be tolerated.
    fn check_taints(&mut self) {
        if !self.pool.taints.iter().any(placement::repels) {
            self.notes.push(format!(
                "node pool {} has no NoSchedule/NoExecute taint, so pods of other namespaces \
                 (and kube-system add-ons) can land on it too; declare a taint for the pool",
                self.pool.name
            ));
            return;
        }
        let missing = placement::untolerated(self.pod, self.pool);
        if missing.is_empty() {
            return;
        }
        if self.mutate {
            let added: Vec<Value> = missing
                .iter()
                .map(|t| placement::toleration_for(t))
                .collect();
            self.add_tolerations(added);
            return;
        }
        for taint in missing {
            self.deny(
                Violation::new(
                    rules::MUST_TOLERATE_POOL_TAINT,
                    format!(
                        "pods of namespace {} must tolerate the taint {taint} of node pool {}; \
                         add the toleration {}",
                        self.tenancy.namespace,
                        self.pool.name,
                        placement::toleration_for(taint)
                    ),
                )
                .at(format!("{}/tolerations", self.spec)),
            );
        }
    }

    /// No toleration may reach beyond the pool: neither a blanket one nor one
    /// of another pool's taints.
    fn check_tolerations(&mut self) {
        for (i, toleration) in self.pod.tolerations.iter().enumerate() {
            let path = format!("{}/tolerations/{i}", self.spec);
            if toleration.is_blanket() {
                self.deny(
                    Violation::new(
                        rules::BLANKET_TOLERATION,
                        format!(
                            "tolerations[{i}] has no key and operator Exists, so it tolerates \
                             every taint: other pools', the control plane's and \
                             ToBeDeletedByClusterAutoscaler; tolerate only the taints of node \
                             pool {}",
                            self.pool.name
                        ),
                    )
                    .at(path),
                );
            } else if let Some((other, taint)) =
                placement::foreign_taint(toleration, self.pool, self.pools)
            {
                self.deny(
                    Violation::new(
                        rules::FOREIGN_TOLERATION,
                        format!(
                            "tolerations[{i}] tolerates the taint {taint} of node pool {}; pods \
                             of namespace {} may tolerate only the taints of node pool {} \
                             (use operator Equal with the pool's value)",
                            other.name, self.tenancy.namespace, self.pool.name
                        ),
                    )
                    .at(path),
                );
            }
        }
    }

    fn deny(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    /// Patch `spec.nodeSelector`: the whole map when the object has none,
    /// otherwise one key at a time so that the pod's own keys stay.
    fn add_node_selector(&mut self, added: &[(&str, &str)]) {
        let path = format!("{}/nodeSelector", self.spec);
        self.ensure_spec();
        if self
            .raw_field("nodeSelector")
            .is_some_and(|v| v.is_object())
        {
            for (k, v) in added {
                self.patch
                    .add(pointer(&path, &[k]), Value::String((*v).to_string()));
            }
        } else {
            let map: Map<String, Value> = added
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
                .collect();
            self.patch.add(path, Value::Object(map));
        }
        let listed: Vec<String> = added.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.repairs.push(format!(
            "added nodeSelector {} (namespace {} runs on node pool {})",
            listed.join(", "),
            self.tenancy.namespace,
            self.pool.name
        ));
    }

    /// Patch `spec.tolerations`: append to the object's list, or create it.
    fn add_tolerations(&mut self, added: Vec<Value>) {
        let path = format!("{}/tolerations", self.spec);
        self.ensure_spec();
        let listed: Vec<String> = added.iter().map(Value::to_string).collect();
        if self.raw_field("tolerations").is_some_and(|v| v.is_array()) {
            for toleration in added {
                self.patch.add(format!("{path}/-"), toleration);
            }
        } else {
            self.patch.add(path, Value::Array(added));
        }
        self.repairs.push(format!(
            "added toleration {} for node pool {}",
            listed.join(", "),
            self.pool.name
        ));
    }

    /// A field of the pod spec as the object spells it (the review's records
    /// cannot tell an absent list from an empty one).
    fn raw_field(&self, name: &str) -> Option<&Value> {
        self.object.pointer(&format!("{}/{name}", self.spec))
    }

    /// Make sure the patch's parent exists: a template without `spec` gets one.
    fn ensure_spec(&mut self) {
        let has_spec = self
            .object
            .pointer(&self.spec)
            .is_some_and(Value::is_object);
        let added = self
            .patch
            .ops()
            .iter()
            .any(|op| op.get("path").and_then(Value::as_str) == Some(self.spec.as_str()));
        let has_template = self
            .object
            .pointer(&self.pod.template_path)
            .is_some_and(Value::is_object);
        if !has_spec && !added && has_template {
            self.patch.add(self.spec.clone(), Value::Object(Map::new()));
        }
    }

    /// Deny with the violations, or allow with the repairs; the notes go
    /// along either way.
    fn decision(self) -> Decision {
        let Judgement {
            violations,
            mut notes,
            repairs,
            patch,
            ..
        } = self;
        if violations.is_empty() {
            notes.extend(repairs);
            Decision {
                warnings: notes,
                ..Decision::allow().with_patch(patch)
            }
        } else {
            Decision {
                warnings: notes,
                ..Decision::from_violations(violations)
            }
        }
    }
}

tollgate_sdk::export_policy!(PoolTenancy);
