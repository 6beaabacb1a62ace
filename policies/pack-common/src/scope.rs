//! Which reviews the pack judges, which pods its pod rules cover, and the
//! label-selector type used in settings.
//!
//! Every pod policy of the pack follows the same scoping, so that the CEL twins
//! can spell it out identically:
//! - DELETE and CONNECT are never judged; a Pod UPDATE is not judged either,
//!   because a running pod's placement fields cannot change (and denying a Pod
//!   UPDATE would block finalizer removal on a pre-existing pod);
//! - DaemonSet pods (by kind, controller or cluster-autoscaler's
//!   `daemonset-pod` annotation) and mirror pods are exempt from pod rules:
//!   cluster-autoscaler never blocks on them (rules 1 and 4).

use std::collections::BTreeMap;

use serde::Deserialize;
use tollgate_sdk::{
    Labels, Operation, PodPlacement, Review, SelectorOperator, SelectorRequirement,
};

use crate::ca;

/// A label selector in settings, in the `metav1.LabelSelector` form
/// (`matchLabels` and `matchExpressions`, all ANDed). An empty selector
/// matches every pod.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorSetting {
    /// Labels the pod must carry with exactly these values.
    pub match_labels: BTreeMap<String, String>,
    /// Requirements with operator `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub match_expressions: Vec<RequirementSetting>,
}

/// One `matchExpressions` entry of a [`SelectorSetting`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RequirementSetting {
    /// Label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn` (must be empty otherwise).
    pub values: Vec<String>,
}

impl RequirementSetting {
    /// The requirement as the SDK's type.
    ///
    /// # Errors
    /// An empty key, an unknown operator, or values that do not fit the operator.
    pub fn to_requirement(&self) -> Result<SelectorRequirement, String> {
        if self.key.is_empty() {
            return Err("a matchExpressions entry has an empty key".into());
        }
        let operator = match self.operator.as_str() {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => {
                return Err(format!(
                    "matchExpressions key {:?}: operator {other:?} is not one of In, NotIn, Exists, DoesNotExist",
                    self.key
                ));
            }
        };
        let wants_values = matches!(operator, SelectorOperator::In | SelectorOperator::NotIn);
        if wants_values == self.values.is_empty() {
            return Err(format!(
                "matchExpressions key {:?}: operator {} {} values",
                self.key,
                self.operator,
                if wants_values { "needs" } else { "takes no" }
            ));
        }
        Ok(SelectorRequirement {
            key: self.key.clone(),
            operator,
            values: self.values.clone(),
        })
    }
}

impl SelectorSetting {
    /// Check the selector.
    ///
    /// # Errors
    /// What is wrong with the first bad requirement.
    pub fn validate(&self) -> Result<(), String> {
        if self.match_labels.keys().any(String::is_empty) {
            return Err("matchLabels has an empty key".into());
        }
        self.match_expressions
            .iter()
            .try_for_each(|r| r.to_requirement().map(|_| ()))
    }

    /// Whether `labels` satisfy the selector. A requirement that does not
    /// validate matches nothing (settings are validated at load time).
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                r.to_requirement()
                    .is_ok_and(|req| req.matches_value(labels.get(&req.key).map(String::as_str)))
            })
    }
}

/// Validate a list of selector settings, naming the field in the error.
///
/// # Errors
/// `<field>[i]: <problem>` for the first bad selector.
pub fn validate_selectors(field: &str, selectors: &[SelectorSetting]) -> Result<(), String> {
    selectors
        .iter()
        .enumerate()
        .try_for_each(|(i, s)| s.validate().map_err(|e| format!("{field}[{i}]: {e}")))
}

/// Validate a list of names (namespaces, priority classes): none may be empty.
///
/// # Errors
/// `<field>[i] is empty` for the first empty entry.
pub fn validate_names(field: &str, names: &[String]) -> Result<(), String> {
    match names.iter().position(|n| n.trim().is_empty()) {
        Some(i) => Err(format!("{field}[{i}] is empty")),
        None => Ok(()),
    }
}

/// Whether any of `selectors` matches `labels`.
pub fn any_selects(selectors: &[SelectorSetting], labels: &Labels) -> bool {
    selectors.iter().any(|s| s.matches(labels))
}

/// Whether the pack judges this review at all (see the module docs).
pub fn judged(review: &Review) -> bool {
    match review.operation {
        Operation::Delete | Operation::Connect => false,
        Operation::Update => review.kind != "Pod",
        Operation::Create | Operation::None => true,
    }
}

/// Whether the pod is a mirror (static) pod.
pub fn is_mirror(pod: &PodPlacement) -> bool {
    pod.annotations.contains_key(ca::MIRROR_POD)
}

/// Whether the pack's pod rules cover the pod: not a DaemonSet pod, not a mirror pod.
pub fn pod_rules_apply(pod: &PodPlacement) -> bool {
    !pod.is_daemonset() && !is_mirror(pod)
}

/// The pod placement of a review the pack's pod rules cover, if any: the
/// review is judged, it has a pod, and the pod is neither a DaemonSet nor a
/// mirror pod.
pub fn covered_pod(review: &Review) -> Option<&PodPlacement> {
    review
        .pod
        .as_ref()
        .filter(|pod| judged(review) && pod_rules_apply(pod))
}

/// Whether a namespace/selector exemption list covers the review's pod.
pub fn exempt(
    review: &Review,
    pod: &PodPlacement,
    namespaces: &[String],
    selectors: &[SelectorSetting],
) -> bool {
    namespaces.iter().any(|ns| ns == &review.namespace) || any_selects(selectors, &pod.labels)
}

/// Settings shared by policies that single out system components.
#[derive(Debug, Clone, Copy)]
pub struct SystemScope<'a> {
    /// Namespaces, besides kube-system, whose pods are system components.
    pub namespaces: &'a [String],
    /// Pod label selectors that mark system components in any namespace.
    pub selectors: &'a [SelectorSetting],
    /// Pod label selectors that exempt pods from being system components.
    pub exempt_selectors: &'a [SelectorSetting],
}

impl SystemScope<'_> {
    /// Whether the review's pod is a system component: in kube-system or one of
    /// the extra namespaces, or matched by a selector, and not exempted.
    pub fn covers(&self, review: &Review, pod: &PodPlacement) -> bool {
        let by_namespace = review.namespace == ca::KUBE_SYSTEM
            || self.namespaces.iter().any(|ns| ns == &review.namespace);
        (by_namespace || any_selects(self.selectors, &pod.labels))
            && !any_selects(self.exempt_selectors, &pod.labels)
    }

    /// Why the pod counts as a system component, for messages.
    pub fn reason(&self, review: &Review) -> String {
        if review.namespace == ca::KUBE_SYSTEM
            || self.namespaces.iter().any(|ns| ns == &review.namespace)
        {
            format!("namespace {}", review.namespace)
        } else {
            "a system-component selector of the policy settings".to_string()
        }
    }

    /// Validate the three lists.
    ///
    /// # Errors
    /// The first problem found, naming the settings field.
    pub fn validate(&self) -> Result<(), String> {
        validate_names("namespaces", self.namespaces)?;
        validate_selectors("selectors", self.selectors)?;
        validate_selectors("exemptSelectors", self.exempt_selectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_sdk::testing::labels;

    #[test]
    fn selector_settings_match_and_validate() {
        let s: SelectorSetting = serde_json::from_value(serde_json::json!({
            "matchLabels": {"k8s-app": "metrics-server"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]
        }))
        .unwrap();
        assert!(s.validate().is_ok());
        assert!(s.matches(&labels(&[("k8s-app", "metrics-server")])));
        assert!(!s.matches(&labels(&[("k8s-app", "metrics-server"), ("tier", "web")])));
        assert!(SelectorSetting::default().matches(&Labels::new()));

        let bad = RequirementSetting {
            key: "a".into(),
            operator: "Exists".into(),
            values: vec!["x".into()],
        };
        assert!(bad.to_requirement().is_err());
        let bad = RequirementSetting {
            key: "a".into(),
            operator: "Gt".into(),
            values: vec!["1".into()],
        };
        assert!(bad.to_requirement().is_err());
        assert!(validate_names("namespaces", &["".into()]).is_err());
    }

    #[test]
    fn pod_updates_and_deletes_are_not_judged() {
        let mut review = Review {
            kind: "Pod".into(),
            operation: Operation::Update,
            ..Default::default()
        };
        assert!(!judged(&review));
        review.kind = "Deployment".into();
        assert!(judged(&review));
        review.operation = Operation::Delete;
        assert!(!judged(&review));
    }
}
