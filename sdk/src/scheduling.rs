//! The scheduler's placement predicates, as Kubernetes defines them: does a
//! toleration tolerate a taint, does a node selector term match a node, may a
//! pod land on a node, and which node pool a node belongs to.

use crate::model::{
    Labels, NodePool, NodeSelectorTerm, PodPlacement, SelectorOperator, SelectorRequirement, Taint,
    TaintEffect, Toleration, TolerationOperator,
};

/// The label cluster-autoscaler's Hetzner provider uses for node groups.
pub const NODE_GROUP_LABEL: &str = "hcloud/node-group";
/// The label k3s puts on every server.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The taint kube-hetzner puts on control planes.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";
/// The taint cluster-autoscaler puts on a node it is deleting.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";
/// A taint every k3s add-on tolerates; never a pool taint.
pub const CRITICAL_ADDONS_ONLY: &str = "CriticalAddonsOnly";

impl Toleration {
    /// Whether this toleration tolerates `taint` (Kubernetes `ToleratesTaint`).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if let Some(effect) = self.effect
            && effect != taint.effect
        {
            return false;
        }
        match (&self.key, self.operator) {
            (None, TolerationOperator::Exists) => true,
            (None, TolerationOperator::Equal) => false,
            (Some(key), _) if key != &taint.key => false,
            (Some(_), TolerationOperator::Exists) => true,
            (Some(_), TolerationOperator::Equal) => {
                self.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
            }
        }
    }

    /// Whether this is a key-less `Exists` toleration (tolerates every taint).
    pub fn is_blanket(&self) -> bool {
        self.key.is_none() && self.operator == TolerationOperator::Exists
    }
}

/// Whether one of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

impl SelectorRequirement {
    /// Whether the requirement holds for a value that is present (`Some`) or absent.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
            SelectorOperator::Gt | SelectorOperator::Lt => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                match (v.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(v), Ok(b)) if self.operator == SelectorOperator::Gt => v > b,
                    (Ok(v), Ok(b)) => v < b,
                    _ => false,
                }
            }
        }
    }
}

impl NodeSelectorTerm {
    /// Whether a node with `name` and `labels` satisfies every requirement. An
    /// empty term matches nothing, as in Kubernetes.
    pub fn matches(&self, name: &str, labels: &Labels) -> bool {
        if self.match_expressions.is_empty() && self.match_fields.is_empty() {
            return false;
        }
        self.match_expressions
            .iter()
            .all(|r| r.matches_value(labels.get(&r.key).map(String::as_str)))
            && self
                .match_fields
                .iter()
                .all(|r| r.matches_value((r.key == "metadata.name").then_some(name)))
    }
}

/// Why a pod may not be placed on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// A `nodeSelector` entry the node lacks.
    NodeSelector(String),
    /// No required node affinity term matches.
    NodeAffinity,
    /// A NoSchedule or NoExecute taint the pod does not tolerate.
    Taint(Taint),
    /// The node is cordoned.
    Unschedulable,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::NodeSelector(key) => write!(f, "node does not match nodeSelector {key}"),
            Unfit::NodeAffinity => f.write_str("node does not match the required node affinity"),
            Unfit::Taint(t) => write!(f, "untolerated taint {t}"),
            Unfit::Unschedulable => f.write_str("node is cordoned"),
        }
    }
}

impl PodPlacement {
    /// Whether the pod's nodeSelector and required node affinity admit a node
    /// with these labels.
    pub fn selects(&self, name: &str, labels: &Labels) -> Result<(), Unfit> {
        for (key, value) in &self.node_selector {
            if labels.get(key) != Some(value) {
                return Err(Unfit::NodeSelector(format!("{key}={value}")));
            }
        }
        if !self.required_node_affinity.is_empty()
            && !self
                .required_node_affinity
                .iter()
                .any(|t| t.matches(name, labels))
        {
            return Err(Unfit::NodeAffinity);
        }
        Ok(())
    }

    /// The first NoSchedule/NoExecute taint of `taints` the pod does not tolerate.
    pub fn untolerated<'a>(&self, taints: &'a [Taint]) -> Option<&'a Taint> {
        taints
            .iter()
            .filter(|t| t.effect != TaintEffect::PreferNoSchedule)
            .find(|t| !tolerated(&self.tolerations, t))
    }

    /// Whether the scheduler's node filters (selector, affinity, taints) admit
    /// the node. Resources and host ports are the caller's to check.
    pub fn fits(&self, name: &str, labels: &Labels, taints: &[Taint]) -> Result<(), Unfit> {
        self.selects(name, labels)?;
        match self.untolerated(taints) {
            Some(t) => Err(Unfit::Taint(t.clone())),
            None => Ok(()),
        }
    }

    /// Whether the pod tolerates every taint of `pool`.
    pub fn tolerates_pool(&self, pool: &NodePool) -> bool {
        !pool.taints.is_empty() && pool.taints.iter().all(|t| tolerated(&self.tolerations, t))
    }

    /// The controller kind, if any.
    pub fn controller_kind(&self) -> Option<&str> {
        self.controller.as_ref().map(|o| o.kind.as_str())
    }

    /// Whether the pods are DaemonSet pods (by controller or by
    /// cluster-autoscaler's `daemonset-pod` annotation).
    pub fn is_daemonset(&self) -> bool {
        self.controller_kind() == Some("DaemonSet")
            || self
                .annotations
                .get("cluster-autoscaler.kubernetes.io/daemonset-pod")
                .map(String::as_str)
                == Some("true")
    }
}

impl NodePool {
    /// Whether a node belongs to this pool: by the `hcloud/node-group` label when
    /// present, otherwise by the name prefix, otherwise by the node selector.
    pub fn contains(&self, node_name: &str, labels: &Labels) -> bool {
        if let Some(group) = labels.get(NODE_GROUP_LABEL) {
            return group == &self.name;
        }
        if let Some(prefix) = &self.name_prefix
            && node_name.starts_with(prefix.as_str())
        {
            return true;
        }
        !self.node_selector.is_empty()
            && self
                .node_selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// The labels the pool's nodes must carry: its labels and its node selector.
    pub fn expected_labels(&self) -> Labels {
        let mut labels = self.labels.clone();
        labels.extend(
            self.node_selector
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        labels
    }

    /// The labels a node of the pool would show: `kubernetes.io/os: linux`
    /// (every pool node is a Linux node), its expected labels and its
    /// selector. The `hcloud/node-group` label is left out: it lives on the
    /// Hetzner server and on cluster-autoscaler's in-memory template, not on
    /// the Kubernetes Node.
    pub fn template_labels(&self) -> Labels {
        let mut labels = Labels::from([("kubernetes.io/os".to_string(), "linux".to_string())]);
        labels.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.extend(
            self.node_selector
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        labels
    }

    /// Whether a pod could be scheduled onto a node of this pool as the pool's
    /// template node presents itself (labels, taints).
    pub fn admits(&self, pod: &PodPlacement) -> bool {
        pod.fits(
            &format!("{}-template", self.name),
            &self.template_labels(),
            &self.taints,
        )
        .is_ok()
    }
}

/// The pool a node belongs to, if any.
pub fn pool_of<'a>(
    pools: &'a [NodePool],
    node_name: &str,
    labels: &Labels,
) -> Option<&'a NodePool> {
    pools.iter().find(|p| p.contains(node_name, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: TaintEffect) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect,
        }
    }

    fn tol(
        key: Option<&str>,
        op: TolerationOperator,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op,
            value: value.map(Into::into),
            effect,
            toleration_seconds: None,
        }
    }

    #[test]
    fn toleration_semantics_follow_kubernetes() {
        let pool = taint("dedicated", Some("autoscaler"), TaintEffect::NoSchedule);
        assert!(tol(None, TolerationOperator::Exists, None, None).tolerates(&pool));
        assert!(tol(Some("dedicated"), TolerationOperator::Exists, None, None).tolerates(&pool));
        assert!(
            tol(
                Some("dedicated"),
                TolerationOperator::Equal,
                Some("autoscaler"),
                Some(TaintEffect::NoSchedule)
            )
            .tolerates(&pool)
        );
        assert!(
            !tol(
                Some("dedicated"),
                TolerationOperator::Equal,
                Some("other"),
                None
            )
            .tolerates(&pool)
        );
        assert!(
            !tol(
                Some("dedicated"),
                TolerationOperator::Exists,
                None,
                Some(TaintEffect::NoExecute)
            )
            .tolerates(&pool)
        );
        assert!(
            !tol(
                Some("CriticalAddonsOnly"),
                TolerationOperator::Exists,
                None,
                None
            )
            .tolerates(&pool)
        );
    }

    #[test]
    fn node_affinity_and_pool_membership() {
        let term = NodeSelectorTerm {
            match_expressions: vec![SelectorRequirement {
                key: CONTROL_PLANE_LABEL.into(),
                operator: SelectorOperator::Exists,
                values: vec![],
            }],
            match_fields: vec![],
        };
        let mut labels = Labels::new();
        assert!(!term.matches("n", &labels));
        labels.insert(CONTROL_PLANE_LABEL.into(), "true".into());
        assert!(term.matches("n", &labels));

        let pool = NodePool {
            name: "k3s-batman".into(),
            name_prefix: Some("k3s-batman-".into()),
            ..Default::default()
        };
        assert!(pool.contains("k3s-batman-66d1b255", &Labels::new()));
        assert!(!pool.contains("k3s-control-plane-fsn1-abc", &Labels::new()));
        let mut other = Labels::new();
        other.insert(NODE_GROUP_LABEL.into(), "other".into());
        assert!(
            !pool.contains("k3s-batman-66d1b255", &other),
            "the node-group label wins over the prefix"
        );
    }
}
