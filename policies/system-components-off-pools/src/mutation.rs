//! The patches of `system-components-off-pools`: require the control-plane
//! label in every nodeSelectorTerm, and tolerate the control-plane taint.
//!
//! Both work on the raw object (the record's terms are read from it too, so
//! indices agree) and are idempotent: a term that already pins the label, or
//! a toleration that already tolerates the taint, gives no operation.

use serde_json::{Value, json};
use tollgate_sdk::patch::pointer;
use tollgate_sdk::placement::{array, node_selector_term};
use tollgate_sdk::scheduling::tolerated;
use tollgate_sdk::{Patch, PodPlacement, Taint};

use autoscaler_isolation_common::pools::{term_excludes, term_pins};
use autoscaler_isolation_common::raw::{append, ensure_objects, template_segments};

const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";

/// Add `{key: label, operator: Exists}` to every nodeSelectorTerm that does not
/// pin `label`, or create the required node affinity. Returns `false` (and
/// adds nothing) when a term forbids the label.
pub fn pin_to_control_plane(
    patch: &mut Patch,
    object: &Value,
    pod: &PodPlacement,
    label: &str,
) -> bool {
    let requirement = json!({"key": label, "operator": "Exists"});
    let mut segments = template_segments(&pod.template_path);
    segments.extend(["spec", "affinity", "nodeAffinity", REQUIRED]);
    let terms_path = pointer(&pointer("", &segments), &["nodeSelectorTerms"]);
    let terms: Vec<&Value> = array(object.pointer(&terms_path)).collect();
    if terms.is_empty() {
        ensure_objects(patch, object, &segments);
        patch.add(terms_path, json!([{"matchExpressions": [requirement]}]));
        return true;
    }
    let parsed: Vec<_> = terms.iter().map(|t| node_selector_term(t)).collect();
    if parsed.iter().any(|t| term_excludes(t, label)) {
        return false;
    }
    for (i, (raw_term, term)) in terms.iter().zip(&parsed).enumerate() {
        if term_pins(term, label) {
            continue;
        }
        let expressions = format!("{terms_path}/{i}/matchExpressions");
        if raw_term
            .get("matchExpressions")
            .is_some_and(Value::is_array)
        {
            patch.add(format!("{expressions}/-"), requirement.clone());
        } else {
            patch.add(expressions, json!([requirement]));
        }
    }
    true
}

/// Append a toleration of `taint` (`Exists` on its key and effect) unless the
/// pod already tolerates it.
pub fn tolerate(patch: &mut Patch, object: &Value, pod: &PodPlacement, taint: &Taint) {
    if tolerated(&pod.tolerations, taint) {
        return;
    }
    let mut segments = template_segments(&pod.template_path);
    segments.extend(["spec", "tolerations"]);
    let toleration =
        json!({"key": taint.key, "operator": "Exists", "effect": taint.effect.as_str()});
    append(patch, object, &segments, toleration);
}
