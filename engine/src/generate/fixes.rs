//! `generate fixes`: turn what the pack says about a snapshot into a kustomize
//! overlay.
//!
//! The evaluator decides everything: each object audit would judge is run
//! through [`Evaluator::evaluate_mutating`], and the patches the mutating
//! policies applied (in policy order, each on the object the previous left)
//! become the overlay's JSON patches. Nodes are judged as audit judges them;
//! a Node reported `missing-pool-taint` or `missing-pool-label` gets a patch
//! adding its pool's taints and labels (the pool is found with the SDK's
//! [`pool_of`], the lookup the policy itself uses). Nothing here decides what
//! is a violation.
//!
//! Not patched, and said so in the README: Pods and Jobs (their pod template
//! is immutable), and violations no mutation fixes.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use tollgate_sdk::model::{NodePool, Taint};
use tollgate_sdk::patch::{Patch, pointer};
use tollgate_sdk::placement::{array, string_map, taint};
use tollgate_sdk::scheduling::pool_of;

use super::pools::taint_json;
use super::{Resource, file_stem};
use crate::audit::{Finding, findings_of, judged};
use crate::cluster::{ClusterView, Snapshot};
use crate::decision::{Mode, Verdict};
use crate::defaulting::default_pod;
use crate::evaluator::Evaluator;
use crate::review::Review;

mod render;

pub use render::render;

/// The rule id of a Node missing its pool's taint.
pub const MISSING_POOL_TAINT: &str = "missing-pool-taint";
/// The rule id of a Node missing its pool's label.
pub const MISSING_POOL_LABEL: &str = "missing-pool-label";
/// Kinds whose pod template cannot change once created.
const IMMUTABLE_TEMPLATE: &[&str] = &["Pod", "Job"];

/// An object the pack's mutations change.
#[derive(Debug, Clone)]
pub struct ObjectFix {
    /// The object.
    pub resource: Resource,
    /// As in the snapshot.
    pub original: Value,
    /// After every mutation.
    pub fixed: Value,
    /// Each mutating policy's applied patch, in order.
    pub patches: Vec<(String, Vec<Value>)>,
    /// `policy/rule` of the violations the mutations remove.
    pub fixes: BTreeSet<String>,
}

/// A pool Node without its pool's taints or labels.
#[derive(Debug, Clone)]
pub struct NodeFix {
    /// The Node.
    pub resource: Resource,
    /// As in the snapshot.
    pub node: Value,
    /// Its pool.
    pub pool: String,
    /// The JSON patch.
    pub ops: Vec<Value>,
    /// What the patch adds, for people (`taint k=v:Effect`, `label k=v`).
    pub adds: Vec<String>,
}

/// An object a mutation would change but that cannot be patched in place.
#[derive(Debug, Clone)]
pub struct NotPatchable {
    /// The object.
    pub resource: Resource,
    /// The policies whose mutation it needs.
    pub policies: Vec<String>,
}

/// Everything `generate fixes` found, before rendering.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Objects to patch.
    pub objects: Vec<ObjectFix>,
    /// Nodes to patch.
    pub nodes: Vec<NodeFix>,
    /// Objects that need a mutation but cannot take one.
    pub not_patchable: Vec<NotPatchable>,
    /// Violations left after the fixes (no mutation addresses them).
    pub remaining: Vec<Finding>,
    /// Problems with the input (skipped documents, no pools).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether nothing needs a patch.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.nodes.is_empty()
    }
}

/// Judge the snapshot and collect the fixes.
pub fn plan(snapshot: &Arc<Snapshot>, evaluator: &Evaluator) -> Plan {
    let cluster: Arc<dyn ClusterView> = snapshot.clone();
    let mut plan = Plan {
        warnings: snapshot
            .warnings()
            .iter()
            .map(ToString::to_string)
            .collect(),
        ..Plan::default()
    };
    if !snapshot.has_pools() {
        plan.warnings.push(
            "no node pools found: no cluster-autoscaler Deployment with --nodes flags in the snapshot and no --pools file"
                .into(),
        );
    }
    let mut objects: Vec<&Arc<Value>> = snapshot
        .objects()
        .iter()
        .filter(|o| judged(o, snapshot, evaluator))
        .collect();
    objects.sort_by_key(|o| file_stem(&Resource::of(o)));
    for object in objects {
        let resource = Resource::of(object);
        let Ok(review) =
            Review::from_object(default_pod(object.as_ref().clone(), cluster.as_ref()))
        else {
            continue;
        };
        if resource.kind == "Node" {
            let verdict = evaluator.evaluate(&review, &cluster);
            plan_node(&mut plan, &resource, object, &verdict, cluster.node_pools());
        } else {
            let before = evaluator.evaluate(&review, &cluster);
            let after = evaluator.evaluate_mutating(&review, &cluster);
            plan_object(&mut plan, &resource, object, &before, &after);
        }
    }
    plan
}

fn violations(findings: Vec<Finding>) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| f.result != "warn")
        .collect()
}

fn rule_key(f: &Finding) -> String {
    format!("{}/{}", f.policy, f.rule)
}

fn plan_object(
    plan: &mut Plan,
    resource: &Resource,
    object: &Value,
    before: &Verdict,
    after: &Verdict,
) {
    let remaining = violations(findings_of(resource, after));
    let still: BTreeSet<String> = remaining.iter().map(rule_key).collect();
    plan.remaining.extend(remaining);
    let patches: Vec<(String, Vec<Value>)> = after
        .results
        .iter()
        .filter(|r| r.mode != Mode::Audit)
        .filter_map(|r| {
            let ops = r.patch.as_ref()?.as_array()?.clone();
            (!ops.is_empty()).then(|| (r.policy.clone(), ops))
        })
        .collect();
    let Some(fixed) = after.mutated.as_ref().filter(|m| *m != object) else {
        return;
    };
    if patches.is_empty() {
        return;
    }
    if IMMUTABLE_TEMPLATE.contains(&resource.kind.as_str()) {
        plan.not_patchable.push(NotPatchable {
            resource: resource.clone(),
            policies: patches.into_iter().map(|(p, _)| p).collect(),
        });
        return;
    }
    let fixes = violations(findings_of(resource, before))
        .iter()
        .map(rule_key)
        .filter(|k| !still.contains(k))
        .collect();
    plan.objects.push(ObjectFix {
        resource: resource.clone(),
        original: object.clone(),
        fixed: fixed.clone(),
        patches,
        fixes,
    });
}

fn plan_node(
    plan: &mut Plan,
    resource: &Resource,
    node: &Value,
    verdict: &Verdict,
    pools: &[NodePool],
) {
    let findings = violations(findings_of(resource, verdict));
    let labels = string_map(node.pointer("/metadata/labels"));
    let pool = pool_of(pools, &resource.name, &labels);
    let wants = |rule: &str| findings.iter().any(|f| f.rule == rule);
    let (taints, labels_missing) = (wants(MISSING_POOL_TAINT), wants(MISSING_POOL_LABEL));
    let fixable = pool.is_some() && (taints || labels_missing);
    plan.remaining.extend(
        findings
            .iter()
            .filter(|f| {
                !(fixable && (f.rule == MISSING_POOL_TAINT || f.rule == MISSING_POOL_LABEL))
            })
            .cloned(),
    );
    let Some(pool) = pool.filter(|_| fixable) else {
        return;
    };
    let mut patch = Patch::new();
    let mut adds = Vec::new();
    if taints {
        add_taints(node, pool, &mut patch, &mut adds);
    }
    if labels_missing {
        add_labels(node, pool, &mut patch, &mut adds);
    }
    if patch.is_empty() {
        return;
    }
    plan.nodes.push(NodeFix {
        resource: resource.clone(),
        node: node.clone(),
        pool: pool.name.clone(),
        ops: patch.ops().to_vec(),
        adds,
    });
}

/// Add each pool taint the node lacks; a node taint with the same key and
/// effect but another value is replaced (as `kubectl taint --overwrite` does).
fn add_taints(node: &Value, pool: &NodePool, patch: &mut Patch, adds: &mut Vec<String>) {
    let have: Vec<Taint> = array(node.pointer("/spec/taints"))
        .filter_map(taint)
        .collect();
    let mut new = Vec::new();
    for want in &pool.taints {
        let same = |t: &Taint| {
            t.key == want.key
                && t.effect == want.effect
                && t.value.as_deref().unwrap_or("") == want.value.as_deref().unwrap_or("")
        };
        if have.iter().any(same) {
            continue;
        }
        adds.push(format!("taint {want}"));
        match have
            .iter()
            .position(|t| t.key == want.key && t.effect == want.effect)
        {
            Some(i) => {
                patch.replace(format!("/spec/taints/{i}"), taint_json(want));
            }
            None => new.push(taint_json(want)),
        }
    }
    if new.is_empty() {
    } else if node.pointer("/spec/taints").is_some_and(Value::is_array) {
        for t in new {
            patch.add("/spec/taints/-", t);
        }
    } else if node.get("spec").is_some_and(Value::is_object) {
        patch.add("/spec/taints", Value::Array(new));
    } else {
        patch.add("/spec", json!({"taints": new}));
    }
}

/// Add each expected label (the pool's labels and node selector) the node lacks.
fn add_labels(node: &Value, pool: &NodePool, patch: &mut Patch, adds: &mut Vec<String>) {
    let have = string_map(node.pointer("/metadata/labels"));
    let missing: Vec<(String, String)> = pool
        .expected_labels()
        .into_iter()
        .filter(|(k, v)| have.get(k) != Some(v))
        .collect();
    if missing.is_empty() {
        return;
    }
    adds.extend(missing.iter().map(|(k, v)| format!("label {k}={v}")));
    if node
        .pointer("/metadata/labels")
        .is_some_and(Value::is_object)
    {
        for (k, v) in missing {
            patch.add(pointer("/metadata/labels", &[&k]), json!(v));
        }
    } else {
        let labels: serde_json::Map<String, Value> =
            missing.into_iter().map(|(k, v)| (k, json!(v))).collect();
        patch.add("/metadata/labels", Value::Object(labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> NodePool {
        NodePool {
            name: "k3s-batman".into(),
            taints: crate::cluster::pools::preset()[0].taints.clone(),
            labels: crate::cluster::pools::default_labels(),
            ..NodePool::default()
        }
    }

    fn patched(node: &Value) -> (Value, Vec<String>) {
        let mut patch = Patch::new();
        let mut adds = Vec::new();
        add_taints(node, &pool(), &mut patch, &mut adds);
        add_labels(node, &pool(), &mut patch, &mut adds);
        let ops: json_patch::Patch =
            serde_json::from_value(Value::Array(patch.ops().to_vec())).unwrap();
        let mut node = node.clone();
        json_patch::patch(&mut node, &ops).expect("the patch applies");
        (node, adds)
    }

    #[test]
    fn node_patches_apply_to_any_starting_shape() {
        // No spec, no labels: both are created.
        let (bare, adds) =
            patched(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}}));
        assert_eq!(
            bare["spec"]["taints"],
            json!([{"key": "dedicated", "value": "autoscaler", "effect": "NoSchedule"}])
        );
        assert_eq!(
            bare["metadata"]["labels"],
            json!({"node.kubernetes.io/role": "autoscaler"})
        );
        assert_eq!(
            adds,
            [
                "taint dedicated=autoscaler:NoSchedule",
                "label node.kubernetes.io/role=autoscaler"
            ]
        );
        // Same key and effect, other value: replaced in place; other taints kept.
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n", "labels": {"node.kubernetes.io/role": "batch", "a": "b"}},
            "spec": {"taints": [{"key": "x", "effect": "NoExecute"}, {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}});
        let (fixed, _) = patched(&node);
        assert_eq!(
            fixed["spec"]["taints"][0],
            json!({"key": "x", "effect": "NoExecute"})
        );
        assert_eq!(fixed["spec"]["taints"][1]["value"], "autoscaler");
        assert_eq!(fixed["spec"]["taints"].as_array().unwrap().len(), 2);
        assert_eq!(
            fixed["metadata"]["labels"],
            json!({"node.kubernetes.io/role": "autoscaler", "a": "b"})
        );
        // Already right: no operation.
        let (again, adds) = patched(&fixed);
        assert_eq!((again, adds.len()), (fixed, 0));
    }
}
