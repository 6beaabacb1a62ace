//! Pool-related predicates over a pod's placement record: which pools its
//! selection reaches, which of its tolerations open a pool, whether it is
//! pinned to control-plane nodes, whether it selects a pool on purpose.
//!
//! "Reaching" a pool uses the pool's template node as the SDK presents it:
//! node name `<pool>-template` and [`NodePool::template_labels`] (the pool's
//! labels and node selector, and `kubernetes.io/os: linux`, which every Linux
//! node carries, so that a pod with the common
//! `nodeSelector: {kubernetes.io/os: linux}` of every k3s add-on reaches
//! pools). Being admitted by a pool is [`NodePool::admits`]: that template
//! node's selection and NoSchedule/NoExecute taints.

use tollgate_sdk::{
    Labels, NodePool, NodeSelectorTerm, PodPlacement, SelectorOperator, Taint, TaintEffect,
};

/// The labels every node of the pool is expected to carry: the pool's
/// `labels` and its identifying `node_selector` (the `hcloud/node-group` label
/// is left out: it lives on the Hetzner server, not on the Kubernetes Node).
pub fn expected_labels(pool: &NodePool) -> Labels {
    pool.expected_labels()
}

/// The name of the pool's template node (as in [`NodePool::admits`]).
pub fn template_name(pool: &NodePool) -> String {
    format!("{}-template", pool.name)
}

/// Whether the pod's nodeSelector and required node affinity accept the pool's
/// template node (taints are not considered).
pub fn selection_reaches(pod: &PodPlacement, pool: &NodePool) -> bool {
    pod.selects(&template_name(pool), &pool.template_labels())
        .is_ok()
}

/// The pools whose template nodes the pod's selection accepts (taints aside).
pub fn reached_by_selection<'a>(pools: &'a [NodePool], pod: &PodPlacement) -> Vec<&'a NodePool> {
    pools.iter().filter(|p| selection_reaches(pod, p)).collect()
}

/// The pools the pod can be scheduled onto ([`NodePool::admits`]: selection
/// and taints).
pub fn admitting<'a>(pools: &'a [NodePool], pod: &PodPlacement) -> Vec<&'a NodePool> {
    pools.iter().filter(|p| p.admits(pod)).collect()
}

/// Whether a taint keeps untolerating pods off a node (NoSchedule, NoExecute).
pub fn is_hard(taint: &Taint) -> bool {
    taint.effect != TaintEffect::PreferNoSchedule
}

/// Whether the pool has a hard taint and the pod tolerates all its hard taints,
/// i.e. the pool's taints do not keep the pod off it.
pub fn taints_open(pod: &PodPlacement, pool: &NodePool) -> bool {
    pool.taints.iter().any(is_hard) && pod.untolerated(&pool.taints).is_none()
}

/// A pool taint one of the pod's tolerations tolerates.
#[derive(Debug, Clone, Copy)]
pub struct PoolTaint<'a> {
    /// The pool.
    pub pool: &'a NodePool,
    /// Its taint.
    pub taint: &'a Taint,
}

/// For each toleration of the pod (by index into `pod.tolerations`), the pool
/// taints it tolerates, any effect included. Tolerations that open no pool are
/// left out.
pub fn pool_tolerations<'a>(
    pod: &PodPlacement,
    pools: &'a [NodePool],
) -> Vec<(usize, Vec<PoolTaint<'a>>)> {
    pod.tolerations
        .iter()
        .enumerate()
        .filter_map(|(i, toleration)| {
            let opened: Vec<PoolTaint<'a>> = pools
                .iter()
                .flat_map(|pool| {
                    pool.taints
                        .iter()
                        .map(move |taint| PoolTaint { pool, taint })
                })
                .filter(|pt| toleration.tolerates(pt.taint))
                .collect();
            (!opened.is_empty()).then_some((i, opened))
        })
        .collect()
}

/// Whether a node selector term requires the control-plane label to exist
/// (`Exists`, or `In` with any values).
pub fn term_pins(term: &NodeSelectorTerm, label: &str) -> bool {
    term.match_expressions.iter().any(|r| {
        r.key == label && matches!(r.operator, SelectorOperator::Exists | SelectorOperator::In)
    })
}

/// Whether a term forbids the control-plane label (`DoesNotExist` or `NotIn`);
/// adding an `Exists` requirement to such a term would make it match nothing.
pub fn term_excludes(term: &NodeSelectorTerm, label: &str) -> bool {
    term.match_expressions.iter().any(|r| {
        r.key == label
            && matches!(
                r.operator,
                SelectorOperator::DoesNotExist | SelectorOperator::NotIn
            )
    })
}

/// Whether the pod can only run on nodes carrying the control-plane label: its
/// nodeSelector names the label, or it has required node affinity and every
/// term pins the label.
pub fn pins_control_plane(pod: &PodPlacement, label: &str) -> bool {
    pod.node_selector.contains_key(label)
        || (!pod.required_node_affinity.is_empty()
            && pod
                .required_node_affinity
                .iter()
                .all(|t| term_pins(t, label)))
}

/// Whether the pod selects the pool on purpose: its nodeSelector carries one of
/// the pool's expected labels, or every required node affinity term has an `In`
/// requirement on one of them that accepts the pool's value.
pub fn selects_explicitly(pod: &PodPlacement, pool: &NodePool) -> bool {
    let expected = expected_labels(pool);
    let by_selector = pod
        .node_selector
        .iter()
        .any(|(k, v)| expected.get(k) == Some(v));
    let term_selects = |term: &NodeSelectorTerm| {
        term.match_expressions.iter().any(|r| {
            r.operator == SelectorOperator::In
                && expected.get(&r.key).is_some_and(|v| r.values.contains(v))
        })
    };
    by_selector
        || (!pod.required_node_affinity.is_empty()
            && pod.required_node_affinity.iter().all(term_selects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_sdk::{SelectorRequirement, Toleration, TolerationOperator};

    fn pool() -> NodePool {
        NodePool {
            name: "k3s-batman".into(),
            name_prefix: Some("k3s-batman-".into()),
            taints: vec![Taint {
                key: "dedicated".into(),
                value: Some("autoscaler".into()),
                effect: TaintEffect::NoSchedule,
            }],
            labels: [(
                "node.kubernetes.io/role".to_string(),
                "autoscaler".to_string(),
            )]
            .into(),
            ..Default::default()
        }
    }

    fn req(key: &str, operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
        SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn control_plane_pinning_needs_every_term() {
        let cp = "node-role.kubernetes.io/control-plane";
        let mut pod = PodPlacement::default();
        assert!(!pins_control_plane(&pod, cp));
        pod.required_node_affinity = vec![
            NodeSelectorTerm {
                match_expressions: vec![req(cp, SelectorOperator::Exists, &[])],
                match_fields: vec![],
            },
            NodeSelectorTerm {
                match_expressions: vec![req("zone", SelectorOperator::In, &["a"])],
                match_fields: vec![],
            },
        ];
        assert!(!pins_control_plane(&pod, cp));
        pod.required_node_affinity[1].match_expressions.push(req(
            cp,
            SelectorOperator::In,
            &["true"],
        ));
        assert!(pins_control_plane(&pod, cp));
    }

    #[test]
    fn pool_reach_and_explicit_selection() {
        let pools = vec![pool()];
        let mut pod = PodPlacement::default();
        assert_eq!(reached_by_selection(&pools, &pod).len(), 1);
        assert!(admitting(&pools, &pod).is_empty(), "the taint keeps it off");
        pod.tolerations.push(Toleration {
            key: Some("dedicated".into()),
            operator: TolerationOperator::Exists,
            value: None,
            effect: None,
            toleration_seconds: None,
        });
        assert!(taints_open(&pod, &pools[0]));
        assert_eq!(pool_tolerations(&pod, &pools).len(), 1);
        assert!(!selects_explicitly(&pod, &pools[0]));
        pod.node_selector
            .insert("node.kubernetes.io/role".into(), "autoscaler".into());
        assert!(selects_explicitly(&pod, &pools[0]));
        pod.node_selector
            .insert("node.kubernetes.io/role".into(), "static".into());
        assert!(reached_by_selection(&pools, &pod).is_empty());
    }

    #[test]
    fn the_template_carries_the_os_label_but_not_the_node_group() {
        let mut pool = pool();
        pool.taints.clear();
        let mut pod = PodPlacement::default();
        pod.node_selector
            .insert("kubernetes.io/os".into(), "linux".into());
        assert!(selection_reaches(&pod, &pool));
        assert_eq!(admitting(std::slice::from_ref(&pool), &pod).len(), 1);
        pod.node_selector
            .insert(crate::ca::NODE_GROUP_LABEL.into(), pool.name.clone());
        assert!(
            !selection_reaches(&pod, &pool),
            "hcloud/node-group is not a Kubernetes node label"
        );
    }
}
