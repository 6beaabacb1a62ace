//! Placement analysis of one pod against its pool: which of the pool's labels
//! the pod's node selection pins, which pool taints it fails to tolerate,
//! and which of its tolerations reach beyond the pool.
//!
//! Everything here is pure: it reads the SDK's [`PodPlacement`] and
//! [`NodePool`] records and never the host.

use tollgate_sdk::model::{
    Labels, NodePool, PodPlacement, SelectorOperator, Taint, TaintEffect, Toleration,
};
use tollgate_sdk::scheduling::tolerated;

/// The labels that identify the pool's nodes: the pool's `nodeSelector` when
/// the host knows one, otherwise the labels its nodes are expected to carry.
/// Empty when the pool can be recognised only by node name.
pub fn identity(pool: &NodePool) -> &Labels {
    if pool.node_selector.is_empty() {
        &pool.labels
    } else {
        &pool.node_selector
    }
}

/// Whether the pod's node selection admits only nodes labelled `key=value`:
/// `spec.nodeSelector` says so, or every required node-affinity term has a
/// requirement `key In [value]`.
pub fn pins(pod: &PodPlacement, key: &str, value: &str) -> bool {
    if pod.node_selector.get(key).is_some_and(|v| v == value) {
        return true;
    }
    !pod.required_node_affinity.is_empty()
        && pod.required_node_affinity.iter().all(|term| {
            term.match_expressions.iter().any(|r| {
                r.key == key
                    && r.operator == SelectorOperator::In
                    && !r.values.is_empty()
                    && r.values.iter().all(|v| v == value)
            })
        })
}

/// The pool labels the pod's node selection does not pin, in label order.
pub fn unpinned<'a>(pod: &PodPlacement, identity: &'a Labels) -> Vec<(&'a str, &'a str)> {
    identity
        .iter()
        .filter(|(k, v)| !pins(pod, k, v))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Why adding `key=value` to `spec.nodeSelector` would not make the pod
/// select the pool, if it would not: the pod already selects another value
/// of the key, or no required node-affinity term admits the value (the pod
/// would become unschedulable).
pub fn selector_conflict(pod: &PodPlacement, key: &str, value: &str) -> Option<String> {
    if let Some(other) = pod.node_selector.get(key) {
        return Some(format!("its nodeSelector asks for {key}={other}"));
    }
    let admitted = pod.required_node_affinity.is_empty()
        || pod.required_node_affinity.iter().any(|term| {
            term.match_expressions
                .iter()
                .filter(|r| r.key == key)
                .all(|r| r.matches_value(Some(value)))
        });
    (!admitted).then(|| format!("its required node affinity excludes {key}={value}"))
}

/// Taints that keep pods off a node: `NoSchedule` and `NoExecute`.
/// (`PreferNoSchedule` only lowers a node's score.)
pub fn repels(taint: &Taint) -> bool {
    taint.effect != TaintEffect::PreferNoSchedule
}

/// The pool's repelling taints the pod does not tolerate.
pub fn untolerated<'a>(pod: &PodPlacement, pool: &'a NodePool) -> Vec<&'a Taint> {
    pool.taints
        .iter()
        .filter(|t| repels(t) && !tolerated(&pod.tolerations, t))
        .collect()
}

/// The first repelling taint of another pool (not also one of `pool`'s own
/// taints) that `toleration` tolerates, with that pool.
pub fn foreign_taint<'a>(
    toleration: &Toleration,
    pool: &NodePool,
    pools: &'a [NodePool],
) -> Option<(&'a NodePool, &'a Taint)> {
    pools
        .iter()
        .filter(|other| other.name != pool.name)
        .find_map(|other| {
            other
                .taints
                .iter()
                .filter(|t| repels(t) && !pool.taints.contains(t))
                .find(|t| toleration.tolerates(t))
                .map(|t| (other, t))
        })
}

/// Other pools whose nodes the pod's node selection would also admit, judged
/// by the labels each pool's nodes present (its template labels).
pub fn other_pools_selected<'a>(
    pod: &PodPlacement,
    pool: &NodePool,
    pools: &'a [NodePool],
) -> Vec<&'a NodePool> {
    pools
        .iter()
        .filter(|other| other.name != pool.name)
        .filter(|other| {
            pod.selects(
                &format!("{}-template", other.name),
                &other.template_labels(),
            )
            .is_ok()
        })
        .collect()
}

/// The toleration that tolerates `taint` and nothing broader: `Equal` on key
/// and value, or `Exists` on the key when the taint has no value.
pub fn toleration_for(taint: &Taint) -> tollgate_sdk::serde_json::Value {
    use tollgate_sdk::serde_json::json;
    match taint.value.as_deref().filter(|v| !v.is_empty()) {
        Some(value) => json!({
            "key": taint.key, "operator": "Equal", "value": value, "effect": taint.effect.as_str()
        }),
        None => json!({"key": taint.key, "operator": "Exists", "effect": taint.effect.as_str()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_sdk::model::{NodeSelectorTerm, SelectorRequirement, TolerationOperator};

    fn term(key: &str, op: SelectorOperator, values: &[&str]) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: vec![SelectorRequirement {
                key: key.into(),
                operator: op,
                values: values.iter().map(|v| (*v).to_string()).collect(),
            }],
            match_fields: vec![],
        }
    }

    #[test]
    fn node_selector_and_affinity_pin_a_label() {
        let mut pod = PodPlacement::default();
        assert!(!pins(&pod, "role", "ci"));
        pod.node_selector.insert("role".into(), "ci".into());
        assert!(pins(&pod, "role", "ci"));

        let mut pod = PodPlacement {
            required_node_affinity: vec![term("role", SelectorOperator::In, &["ci"])],
            ..Default::default()
        };
        assert!(pins(&pod, "role", "ci"));
        pod.required_node_affinity
            .push(term("role", SelectorOperator::Exists, &[]));
        assert!(
            !pins(&pod, "role", "ci"),
            "an Exists term admits every value"
        );
        pod.required_node_affinity = vec![term("role", SelectorOperator::In, &["ci", "web"])];
        assert!(
            !pins(&pod, "role", "ci"),
            "In with a second value admits other nodes"
        );
    }

    #[test]
    fn conflicts_are_explained() {
        let mut pod = PodPlacement::default();
        assert_eq!(selector_conflict(&pod, "role", "ci"), None);
        pod.node_selector.insert("role".into(), "web".into());
        assert!(selector_conflict(&pod, "role", "ci").is_some_and(|m| m.contains("role=web")));

        let mut pod = PodPlacement {
            required_node_affinity: vec![term("role", SelectorOperator::NotIn, &["ci"])],
            ..Default::default()
        };
        assert!(selector_conflict(&pod, "role", "ci").is_some());
        pod.required_node_affinity
            .push(term("zone", SelectorOperator::Exists, &[]));
        assert_eq!(
            selector_conflict(&pod, "role", "ci"),
            None,
            "the second term admits it"
        );
    }

    #[test]
    fn tolerations_for_valued_and_valueless_taints() {
        let valued = Taint {
            key: "dedicated".into(),
            value: Some("ci".into()),
            effect: TaintEffect::NoSchedule,
        };
        assert_eq!(toleration_for(&valued)["operator"], "Equal");
        let bare = Taint {
            key: "dedicated".into(),
            value: None,
            effect: TaintEffect::NoExecute,
        };
        assert_eq!(toleration_for(&bare)["operator"], "Exists");
        assert_eq!(toleration_for(&bare)["effect"], "NoExecute");

        let pool = NodePool {
            name: "a".into(),
            taints: vec![valued.clone()],
            ..Default::default()
        };
        let other = Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: TaintEffect::NoSchedule,
        };
        let pools = vec![
            pool.clone(),
            NodePool {
                name: "b".into(),
                taints: vec![other],
                ..Default::default()
            },
        ];
        let by_key = Toleration {
            key: Some("dedicated".into()),
            operator: TolerationOperator::Exists,
            value: None,
            effect: None,
            toleration_seconds: None,
        };
        assert_eq!(
            foreign_taint(&by_key, &pool, &pools).map(|(p, _)| p.name.as_str()),
            Some("b")
        );
    }
}
