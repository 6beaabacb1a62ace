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
//! The policy judges the object **as it is**, as the policy contract asks of a
//! mutating policy (docs/policy-contract.md, "The decision"). With
//! `mutate: true` its decision also carries a JSON Patch that fixes what it
//! safely can: the pool's labels added to `nodeSelector` (unless the pod
//! already selects another value of the label, or its required node affinity
//! excludes the pool's value) and a narrow toleration per pool taint. The
//! violations the patch fixes are still reported; their messages add
//! ([`FIXED_BY_MUTATION`]) that `tollgate eval --mutate` or the mutating
//! webhook adds what is missing.
//!
//! - Mutating (`tollgate eval --mutate`, the `/mutate` webhook), the engine
//!   applies the patch and runs the policy again on the patched object; that
//!   second decision is the verdict, so a pod whose only problems the patch
//!   fixes is admitted, patched. The patched object yields no patch (the patch
//!   is idempotent).
//! - Validating (`tollgate eval` without `--mutate`, `tollgate audit`, the
//!   `/validate` webhook), the violations stand.
//!
//! Blanket and foreign tolerations are never removed silently. `mutate: false`
//! only drops the patch and the notes about it.
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

/// How the message of a violation the patch fixes continues (with
/// `mutate: true`): "…; `tollgate eval --mutate` or the mutating webhook adds
/// it to nodeSelector". The violation is reported all the same: it describes
/// the object as it is.
pub const FIXED_BY_MUTATION: &str = "; `tollgate eval --mutate` or the mutating webhook adds ";

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

/// One evaluation: the pod, its pool, what is wrong with it, and (when
/// mutating) the patch that fixes what it can.
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
    /// Everything wrong with the object as it is, fixed by the patch or not.
    violations: Vec<Violation>,
    /// Problems of the pool rather than the pod: warnings.
    notes: Vec<String>,
    /// Empty unless mutating.
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
            patch: Patch::new(),
        }
    }

    fn run(mut self) -> Decision {
        let identity = placement::identity(self.pool);
        if identity.is_empty() {
            self.report(Violation::new(
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
            let conflict = placement::selector_conflict(self.pod, key, value);
            let fixed = self.mutate && conflict.is_none();
            let why = conflict.map(|c| format!(" ({c})")).unwrap_or_default();
            let mut message = format!(
                "pods of namespace {} must run on node pool {}: select {key}={value} in \
                 nodeSelector or in every required node-affinity term{why}",
                self.tenancy.namespace, self.pool.name
            );
            if fixed {
                message.push_str(FIXED_BY_MUTATION);
                message.push_str("it to nodeSelector");
                added.push((key, value));
            }
            self.report(
                Violation::new(rules::MUST_SELECT_POOL, message)
                    .at(format!("{}/nodeSelector", self.spec)),
            );
        }
        if !added.is_empty() {
            self.add_node_selector(&added);
        }
        if missing.is_empty() {
            // The pod selects the pool. If another pool is expected to carry
            // the same labels, the pod cannot do better: the pool needs a
            // label of its own.
            for other in placement::other_pools_selected(self.pod, self.pool, self.pools) {
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
        let mut added = Vec::new();
        for taint in placement::untolerated(self.pod, self.pool) {
            let toleration = placement::toleration_for(taint);
            let mut message = format!(
                "pods of namespace {} must tolerate the taint {taint} of node pool {}; add the \
                 toleration {toleration}",
                self.tenancy.namespace, self.pool.name,
            );
            if self.mutate {
                message.push_str(FIXED_BY_MUTATION);
                message.push_str("it");
                added.push(toleration);
            }
            self.report(
                Violation::new(rules::MUST_TOLERATE_POOL_TAINT, message)
                    .at(format!("{}/tolerations", self.spec)),
            );
        }
        if !added.is_empty() {
            self.add_tolerations(added);
        }
    }

    /// No toleration may reach beyond the pool: neither a blanket one nor one
    /// of another pool's taints.
    fn check_tolerations(&mut self) {
        for (i, toleration) in self.pod.tolerations.iter().enumerate() {
            let path = format!("{}/tolerations/{i}", self.spec);
            if toleration.is_blanket() {
                self.report(
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
                self.report(
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

    fn report(&mut self, violation: Violation) {
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
    }

    /// Patch `spec.tolerations`: append to the object's list, or create it.
    fn add_tolerations(&mut self, added: Vec<Value>) {
        let path = format!("{}/tolerations", self.spec);
        self.ensure_spec();
        if self.raw_field("tolerations").is_some_and(|v| v.is_array()) {
            for toleration in added {
                self.patch.add(format!("{path}/-"), toleration);
            }
        } else {
            self.patch.add(path, Value::Array(added));
        }
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

    /// The violations of the object as it is, the patch (when mutating) and
    /// the notes; allowed when nothing is wrong.
    fn decision(self) -> Decision {
        let Judgement {
            violations,
            notes,
            patch,
            ..
        } = self;
        Decision {
            warnings: notes,
            ..Decision::from_violations(violations).with_patch(patch)
        }
    }
}

tollgate_sdk::export_policy!(PoolTenancy);

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_sdk::serde_json::json;
    use tollgate_sdk::{Taint, TaintEffect, Toleration, TolerationOperator};

    fn pool() -> NodePool {
        NodePool {
            name: "k3s-batman".into(),
            labels: [("role".to_string(), "ci".to_string())].into(),
            taints: vec![Taint {
                key: "dedicated".into(),
                value: Some("ci".into()),
                effect: TaintEffect::NoSchedule,
            }],
            ..Default::default()
        }
    }

    fn judge(pod: &PodPlacement, mutate: bool) -> Decision {
        let tenancy = Tenancy {
            namespace: "ci".into(),
            pool: "k3s-batman".into(),
        };
        let pool = pool();
        let pools = [pool.clone()];
        let object = json!({"apiVersion": "v1", "kind": "Pod", "spec": {}});
        Judgement::new(pod, &tenancy, &pool, &pools, mutate, object).run()
    }

    #[test]
    fn the_object_is_judged_as_it_is_and_the_patch_comes_along() {
        let bare = PodPlacement::default();
        let validating = judge(&bare, false);
        let mutating = judge(&bare, true);
        for decision in [&validating, &mutating] {
            assert!(!decision.allowed);
            let rules: Vec<&str> = decision
                .violations
                .iter()
                .map(|v| v.rule.as_str())
                .collect();
            assert_eq!(
                rules,
                [rules::MUST_SELECT_POOL, rules::MUST_TOLERATE_POOL_TAINT]
            );
        }
        assert_eq!(validating.patch, None);
        assert!(
            validating
                .violations
                .iter()
                .all(|v| !v.message.contains(FIXED_BY_MUTATION))
        );
        assert!(
            mutating
                .violations
                .iter()
                .all(|v| v.message.contains(FIXED_BY_MUTATION))
        );
        let ops: Vec<Value> = mutating
            .patch
            .as_deref()
            .and_then(|p| tollgate_sdk::serde_json::from_str(p).ok())
            .unwrap_or_default();
        let paths: Vec<&str> = ops.iter().filter_map(|op| op["path"].as_str()).collect();
        assert_eq!(paths, ["/spec/nodeSelector", "/spec/tolerations"]);
    }

    #[test]
    fn a_compliant_pod_gets_no_patch() {
        let mut pod = PodPlacement::default();
        pod.node_selector.insert("role".into(), "ci".into());
        pod.tolerations = vec![Toleration {
            key: Some("dedicated".into()),
            operator: TolerationOperator::Equal,
            value: Some("ci".into()),
            effect: Some(TaintEffect::NoSchedule),
            toleration_seconds: None,
        }];
        let decision = judge(&pod, true);
        assert!(
            decision.allowed && decision.violations.is_empty(),
            "{decision:?}"
        );
        assert_eq!(decision.patch, None);
    }
}
