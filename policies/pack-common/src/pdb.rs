//! PodDisruptionBudgets as cluster-autoscaler sees them: which pods one
//! selects, and whether it lets a drain evict one of them.
//!
//! The status is trusted only once the disruption controller has processed the
//! PDB (`status.observedGeneration` is set): on CREATE the API server fills the
//! status with zeroes, which would otherwise read as "no disruption allowed".
//! Without a trusted status the spec is judged: `maxUnavailable` that scales
//! to 0, or `minAvailable` that scales to the workload's replicas or more,
//! allows no disruption. Percentages round up, as in the disruption controller.

use serde_json::Value;
use tollgate_sdk::selector::LabelSelector;
use tollgate_sdk::{HostExt, Labels};

/// An `IntOrString` budget field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    /// A pod count.
    Int(i64),
    /// A percentage of the expected pods.
    Percent(i64),
}

impl IntOrPercent {
    /// Read a number or a `"N%"` string; anything else is unreadable.
    pub fn from_json(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_i64().map(IntOrPercent::Int),
            Value::String(s) => s
                .strip_suffix('%')?
                .trim()
                .parse()
                .ok()
                .map(IntOrPercent::Percent),
            _ => None,
        }
    }

    /// The pod count for `total` expected pods (percentages round up).
    pub fn scaled(self, total: i64) -> i64 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => p.saturating_mul(total).saturating_add(99).div_euclid(100),
        }
    }
}

impl std::fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Why a PDB's spec allows no disruption of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecBlock {
    /// `maxUnavailable` scales to 0.
    MaxUnavailable(IntOrPercent),
    /// `minAvailable` scales to the replicas or more.
    MinAvailable {
        /// The field as written.
        min: IntOrPercent,
        /// The workload's replicas.
        replicas: i32,
    },
}

impl SpecBlock {
    /// The spec field at fault (a JSON pointer into the PDB).
    pub fn path(self) -> &'static str {
        match self {
            SpecBlock::MaxUnavailable(_) => "/spec/maxUnavailable",
            SpecBlock::MinAvailable { .. } => "/spec/minAvailable",
        }
    }
}

impl std::fmt::Display for SpecBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecBlock::MaxUnavailable(m) => {
                write!(f, "maxUnavailable {m} allows no pod to be evicted")
            }
            SpecBlock::MinAvailable { min, replicas } => write!(
                f,
                "minAvailable {min} with {replicas} replica{} leaves no pod to evict",
                if *replicas == 1 { "" } else { "s" }
            ),
        }
    }
}

/// The parts of a PodDisruptionBudget a drain depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdb {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.selector`; `None` (absent or unreadable) selects no pod.
    pub selector: Option<LabelSelector>,
    /// `spec.minAvailable`.
    pub min_available: Option<IntOrPercent>,
    /// `spec.maxUnavailable`.
    pub max_unavailable: Option<IntOrPercent>,
    /// `status.disruptionsAllowed`, only when the status has been observed.
    pub disruptions_allowed: Option<i64>,
}

impl Pdb {
    /// Read a PDB object (`None` when it is not a PodDisruptionBudget).
    pub fn from_json(v: &Value) -> Option<Pdb> {
        if v.get("kind").and_then(Value::as_str) != Some("PodDisruptionBudget") {
            return None;
        }
        let text = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let spec = v.get("spec");
        let observed = v
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .is_some();
        Some(Pdb {
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
            selector: spec
                .and_then(|s| s.get("selector"))
                .and_then(LabelSelector::from_json),
            min_available: spec
                .and_then(|s| s.get("minAvailable"))
                .and_then(IntOrPercent::from_json),
            max_unavailable: spec
                .and_then(|s| s.get("maxUnavailable"))
                .and_then(IntOrPercent::from_json),
            disruptions_allowed: observed.then(|| {
                v.pointer("/status/disruptionsAllowed")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            }),
        })
    }

    /// Whether the PDB selects pods with these labels.
    pub fn selects(&self, labels: &Labels) -> bool {
        self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }

    /// Whether the observed status allows no disruption.
    pub fn status_blocks(&self) -> bool {
        self.disruptions_allowed.is_some_and(|n| n < 1)
    }

    /// Why the spec allows no disruption of a workload with `replicas` (unknown
    /// replicas: only a `maxUnavailable` that is 0 on its own is judged).
    pub fn spec_blocks(&self, replicas: Option<i32>) -> Option<SpecBlock> {
        if let Some(max) = self.max_unavailable {
            let blocks = match (max, replicas) {
                (IntOrPercent::Int(n), _) => n < 1,
                (IntOrPercent::Percent(p), None) => p < 1,
                (IntOrPercent::Percent(_), Some(r)) => r > 0 && max.scaled(i64::from(r)) < 1,
            };
            return blocks.then_some(SpecBlock::MaxUnavailable(max));
        }
        let (min, replicas) = (self.min_available?, replicas.filter(|r| *r > 0)?);
        (min.scaled(i64::from(replicas)) >= i64::from(replicas))
            .then_some(SpecBlock::MinAvailable { min, replicas })
    }

    /// The drain verdict for one workload: the status when observed, else the spec.
    pub fn blocks(&self, replicas: Option<i32>) -> Option<String> {
        match self.disruptions_allowed {
            Some(n) if n < 1 => Some(format!("status.disruptionsAllowed is {n}")),
            Some(_) => None,
            None => self.spec_blocks(replicas).map(|b| b.to_string()),
        }
    }
}

/// The PodDisruptionBudgets of a namespace (unreadable ones skipped).
pub fn in_namespace(host: &dyn tollgate_sdk::Host, namespace: &str) -> Vec<Pdb> {
    host.list_objects("policy/v1", "PodDisruptionBudget", Some(namespace), None)
        .iter()
        .filter_map(Pdb::from_json)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: Value, status: Option<Value>) -> Pdb {
        let mut v = json!({"kind": "PodDisruptionBudget", "metadata": {"name": "p", "namespace": "n"}, "spec": spec});
        if let Some(s) = status {
            v["status"] = s;
        }
        Pdb::from_json(&v).unwrap()
    }

    #[test]
    fn spec_judgement() {
        let sel = json!({"matchLabels": {"app": "a"}});
        assert!(
            pdb(json!({"selector": sel, "maxUnavailable": 0}), None)
                .spec_blocks(Some(3))
                .is_some()
        );
        assert!(
            pdb(json!({"selector": sel, "maxUnavailable": "10%"}), None)
                .spec_blocks(Some(1))
                .is_none()
        );
        assert!(
            pdb(json!({"selector": sel, "maxUnavailable": "0%"}), None)
                .spec_blocks(None)
                .is_some()
        );
        assert!(
            pdb(json!({"selector": sel, "minAvailable": 1}), None)
                .spec_blocks(Some(1))
                .is_some()
        );
        assert!(
            pdb(json!({"selector": sel, "minAvailable": 1}), None)
                .spec_blocks(Some(2))
                .is_none()
        );
        assert!(
            pdb(json!({"selector": sel, "minAvailable": "50%"}), None)
                .spec_blocks(Some(1))
                .is_some()
        );
        assert!(
            pdb(json!({"selector": sel, "minAvailable": "50%"}), None)
                .spec_blocks(Some(3))
                .is_none()
        );
        assert!(
            pdb(json!({"selector": sel, "minAvailable": 1}), None)
                .spec_blocks(None)
                .is_none()
        );
    }

    #[test]
    fn status_is_trusted_only_when_observed() {
        let zeroes = json!({"disruptionsAllowed": 0, "currentHealthy": 0});
        let p = pdb(json!({"minAvailable": 0}), Some(zeroes));
        assert!(!p.status_blocks());
        assert!(!p.selects(&Labels::new()), "no selector selects nothing");
        let p = pdb(
            json!({"selector": {}}),
            Some(json!({"observedGeneration": 1, "disruptionsAllowed": 0})),
        );
        assert!(p.status_blocks());
        assert!(
            p.selects(&Labels::new()),
            "an empty selector selects everything"
        );
        assert!(p.blocks(Some(5)).is_some());
    }
}
