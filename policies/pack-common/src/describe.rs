//! How the pack names things in messages: the object under review, a field of
//! its pod template, a toleration, a list of pools, and the note a mutating
//! policy appends to a violation its own patch fixes.

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

/// Where [`fixed_by_patch`]'s note starts in a violation message.
pub const FIXED_BY_PATCH: &str = " Mutation fixes this: ";

/// The note a mutating policy appends to the message of a violation its patch
/// fixes (the violation is still reported: it describes the object as it is),
/// e.g. `fixed_by_patch("adds the affinity")`.
pub fn fixed_by_patch(what: &str) -> String {
    format!("{FIXED_BY_PATCH}`tollgate eval --mutate` and the mutating webhook {what}.")
}

/// A message without its [`fixed_by_patch`] note.
pub fn without_patch_note(message: &str) -> &str {
    message
        .split_once(FIXED_BY_PATCH)
        .map_or(message, |(base, _)| base)
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
        let message = format!("Pin it.{}", fixed_by_patch("add it"));
        assert_eq!(
            message,
            "Pin it. Mutation fixes this: `tollgate eval --mutate` and the mutating webhook add it."
        );
        assert_eq!(without_patch_note(&message), "Pin it.");
    }
}
