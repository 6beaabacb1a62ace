//! How the pack names things in messages: the object under review, a field of
//! its pod template, a toleration, a list of pools.

use tollgate_sdk::{NodePool, Review, TaintEffect, Toleration, TolerationOperator};

/// `Kind namespace/name` (or `Kind name` for cluster-scoped objects).
pub fn subject(review: &Review) -> String {
    let name = review.display_name();
    if name.is_empty() {
        format!("{} (unnamed)", review.kind)
    } else {
        format!("{} {name}", review.kind)
    }
}

/// A field of the pod template in the dotted form users write in manifests:
/// `spec.template.spec.affinity` for a Deployment, `spec.affinity` for a Pod.
pub fn template_field(template_path: &str, field: &str) -> String {
    let prefix = template_path.trim_start_matches('/').replace('/', ".");
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// A toleration as a short human-readable phrase.
pub fn toleration(t: &Toleration) -> String {
    let effect = t.effect.map(TaintEffect::as_str).unwrap_or("any effect");
    match (&t.key, t.operator) {
        (None, TolerationOperator::Exists) => format!("operator Exists without a key ({effect})"),
        (None, TolerationOperator::Equal) => format!("empty key ({effect})"),
        (Some(key), TolerationOperator::Exists) => format!("{key} Exists ({effect})"),
        (Some(key), TolerationOperator::Equal) => {
            format!("{key}={} ({effect})", t.value.as_deref().unwrap_or(""))
        }
    }
}

/// Pool names joined with `, `.
pub fn pool_names<'a>(pools: impl IntoIterator<Item = &'a NodePool>) -> String {
    pools
        .into_iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            template_field("/spec/jobTemplate/spec/template", "spec.volumes"),
            "spec.jobTemplate.spec.template.spec.volumes"
        );
        assert_eq!(template_field("", "spec.volumes"), "spec.volumes");
        let review = Review {
            kind: "Node".into(),
            name: "n1".into(),
            ..Default::default()
        };
        assert_eq!(subject(&review), "Node n1");
        let t = Toleration {
            key: None,
            operator: TolerationOperator::Exists,
            value: None,
            effect: None,
            toleration_seconds: None,
        };
        assert_eq!(toleration(&t), "operator Exists without a key (any effect)");
    }
}
