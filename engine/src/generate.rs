//! Generated-manifests mode: Tollgate writes manifests instead of judging them.
//!
//! - [`fixes`]: a kustomize overlay of the pack's mutations for a snapshot,
//!   Node patches for pool taints and labels, and the durable route for k3s's
//!   packaged add-ons ([`k3s`]);
//! - [`pools`]: each pool's taint and label in the forms the node-pool side
//!   takes (kube-hetzner HCL, cluster-autoscaler Hetzner nodeConfigs, kubectl);
//! - [`install`]: Tollgate's own installation and its Helm chart;
//! - [`native`]: CEL policies compiled into native admission policies.
//!
//! Every generator returns [`Files`]: relative path to contents, rendered
//! deterministically (sorted keys, sorted objects, no timestamps), so a rerun on
//! the same input is byte-identical. Writing them is the CLI's job.

mod cel_text;
pub mod fixes;
pub mod install;
pub mod k3s;
pub mod kustomize;
pub mod native;
pub mod pools;

use std::collections::BTreeMap;

use serde_json::Value;

pub use crate::audit::Resource;

/// Generated files: path relative to the output directory, and contents.
pub type Files = BTreeMap<String, String>;

/// Render a value as one YAML document (JSON, which is YAML too, should the
/// YAML serializer refuse it).
pub fn to_yaml(value: &Value) -> String {
    let text = serde_saphyr::to_string(value).unwrap_or_else(|_| value.to_string());
    if text.ends_with('\n') {
        text
    } else {
        text + "\n"
    }
}

/// `(group, version)` of an apiVersion (`""` group for core).
pub fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// A file-name stem for an object: `kind_namespace_name` (lowercase kind;
/// `kind_name` when cluster-scoped).
pub fn file_stem(resource: &Resource) -> String {
    let kind = resource.kind.to_ascii_lowercase();
    if resource.namespace.is_empty() {
        format!("{kind}_{}", resource.name)
    } else {
        format!("{kind}_{}_{}", resource.namespace, resource.name)
    }
}

/// Fields the API server owns: they are dropped from generated objects so
/// that applying them neither conflicts (`resourceVersion`) nor asserts stale
/// state (`status`, which is a subresource that apply never changes).
pub fn strip_server_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(field);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    object
}
