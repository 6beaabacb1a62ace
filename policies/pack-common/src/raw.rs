//! The raw object behind a review: parsed lazily (only when a violation needs
//! an exact array index or a mutation needs to know what exists), and helpers
//! to build JSON pointers and JSON Patch operations against it.
//!
//! The SDK's placement records skip list entries they cannot read (a
//! toleration with an unknown operator, a volume without a name), so the
//! position of an entry in a record is not always its index in the object; the
//! pointer helpers here map one to the other.

use std::cell::OnceCell;

use serde_json::{Value, json};
use tollgate_sdk::patch::pointer;
use tollgate_sdk::placement::{array, taint, toleration};
use tollgate_sdk::{Host, HostExt, Patch};

/// The object under review, fetched from the host and parsed on first use.
pub struct RawObject<'h> {
    host: &'h dyn Host,
    value: OnceCell<Value>,
}

impl<'h> RawObject<'h> {
    /// A lazily fetched view of the host's object.
    pub fn new(host: &'h dyn Host) -> Self {
        RawObject {
            host,
            value: OnceCell::new(),
        }
    }

    /// The parsed object (`null` when the host's JSON does not parse).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| self.host.object())
    }
}

/// The segments of a template path (`/spec/template` gives `spec`, `template`).
pub fn template_segments(template_path: &str) -> Vec<&str> {
    template_path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The index in `items` of the `nth` entry that `readable` accepts; `nth`
/// itself when the list is shorter than expected.
fn raw_index(items: Option<&Value>, nth: usize, readable: impl Fn(&Value) -> bool) -> usize {
    array(items)
        .enumerate()
        .filter(|(_, v)| readable(v))
        .nth(nth)
        .map_or(nth, |(i, _)| i)
}

/// Pointer of the pod template's `nth` readable toleration.
pub fn toleration_pointer(object: &Value, template_path: &str, nth: usize) -> String {
    let list = pointer(template_path, &["spec", "tolerations"]);
    let index = raw_index(object.pointer(&list), nth, |v| toleration(v).is_some());
    format!("{list}/{index}")
}

/// Pointer of the pod template's volume called `name` (or of the volume list
/// when it is not found).
pub fn volume_pointer(object: &Value, template_path: &str, name: &str) -> String {
    let list = pointer(template_path, &["spec", "volumes"]);
    array(object.pointer(&list))
        .position(|v| v.get("name").and_then(Value::as_str) == Some(name))
        .map_or_else(|| list.clone(), |i| format!("{list}/{i}"))
}

/// Pointer of a Node's `nth` readable taint.
pub fn node_taint_pointer(object: &Value, nth: usize) -> String {
    let index = raw_index(object.pointer("/spec/taints"), nth, |v| taint(v).is_some());
    format!("/spec/taints/{index}")
}

/// Make sure every object along `segments` (raw keys from the document root)
/// exists, adding `{}` for missing ones and replacing non-objects (`null`)
/// with `{}`. Returns the pointer of the last segment.
pub fn ensure_objects(patch: &mut Patch, object: &Value, segments: &[&str]) -> String {
    let mut current = String::new();
    for segment in segments {
        current = pointer(&current, &[segment]);
        match object.pointer(&current) {
            Some(Value::Object(_)) => {}
            Some(_) => {
                patch.replace(current.clone(), json!({}));
            }
            None => {
                patch.add(current.clone(), json!({}));
            }
        }
    }
    current
}

/// Append `value` to the array at `segments` (raw keys from the root),
/// creating the array (and missing parent objects) when needed. An array this
/// patch already added counts as existing, so several appends to a new array
/// give one `add` of the array followed by `-` appends.
pub fn append(patch: &mut Patch, object: &Value, segments: &[&str], value: Value) {
    let path = pointer("", segments);
    let exists = object.pointer(&path).is_some_and(Value::is_array)
        || patch
            .ops()
            .iter()
            .any(|op| op.get("path").and_then(Value::as_str) == Some(path.as_str()));
    if exists {
        patch.add(format!("{path}/-"), value);
    } else {
        if let Some((_, parents)) = segments.split_last() {
            ensure_objects(patch, object, parents);
        }
        patch.add(path, Value::Array(vec![value]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_sdk::patch::apply;

    #[test]
    fn indices_skip_unreadable_entries() {
        let object = json!({"spec": {"template": {"spec": {
            "tolerations": [{"key": "a", "operator": "Bogus"}, {"operator": "Exists"}],
            "volumes": [{"name": "x", "emptyDir": {}}]}}}});
        assert_eq!(
            toleration_pointer(&object, "/spec/template", 0),
            "/spec/template/spec/tolerations/1"
        );
        assert_eq!(
            volume_pointer(&object, "/spec/template", "x"),
            "/spec/template/spec/volumes/0"
        );
    }

    #[test]
    fn parents_are_created_once() {
        let mut object = json!({"spec": {"template": {"metadata": null}}});
        let mut patch = Patch::new();
        ensure_objects(
            &mut patch,
            &object,
            &["spec", "template", "metadata", "annotations"],
        );
        append(
            &mut patch,
            &object,
            &["spec", "template", "spec", "tolerations"],
            json!(1),
        );
        append(
            &mut patch,
            &object,
            &["spec", "template", "spec", "tolerations"],
            json!(2),
        );
        apply(&mut object, patch.ops()).unwrap();
        assert_eq!(
            object,
            json!({"spec": {"template": {"metadata": {"annotations": {}},
            "spec": {"tolerations": [1, 2]}}}})
        );
    }
}
