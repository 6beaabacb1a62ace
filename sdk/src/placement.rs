//! Builds a [`Review`] (and its placement records) from a Kubernetes object's
//! JSON. This is the one place that knows where a pod template lives in each
//! controller kind; the host engine computes the records once per request with
//! this code, and the native test harness uses the same code, so policies see
//! identical records natively and under the real host.
//!
//! Extraction is lenient about optional fields of the wrong type (they read as
//! absent) and strict only about what identifies the object (`apiVersion`, `kind`).
//!
//! From JSON text, [`sparse_tree`] parses only the fields read here, and
//! [`pod_review`] reads a Pod's records without a tree; a field read here
//! must be added to both (their tests compare the records).

use std::borrow::Cow;

use serde_json::Value;

use crate::model::{
    HostPort, Labels, NodeInfo, NodeSelectorTerm, Operation, Owner, PodPlacement, PreferredTerm,
    Review, SelectorOperator, SelectorRequirement, Taint, TaintEffect, Toleration,
    TolerationOperator, Volume, VolumeSource,
};
use crate::quantity;

mod direct;
mod sparse;

pub use direct::pod_review;
pub use sparse::{Discarded, sparse_tree};

/// Kinds whose objects carry a pod template, with the template's JSON pointer.
pub const POD_CONTROLLERS: &[(&str, &str)] = &[
    ("Deployment", "/spec/template"),
    ("StatefulSet", "/spec/template"),
    ("DaemonSet", "/spec/template"),
    ("ReplicaSet", "/spec/template"),
    ("ReplicationController", "/spec/template"),
    ("Job", "/spec/template"),
    ("CronJob", "/spec/jobTemplate/spec/template"),
];

/// Why an object could not be turned into a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewError {
    /// The document is not a JSON object.
    NotAnObject,
    /// `kind` is missing or not a string.
    MissingKind,
    /// `apiVersion` is missing or not a string.
    MissingApiVersion,
}

impl std::fmt::Display for ReviewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReviewError::NotAnObject => "not a Kubernetes object (expected a mapping)",
            ReviewError::MissingKind => "object has no kind",
            ReviewError::MissingApiVersion => "object has no apiVersion",
        })
    }
}

impl std::error::Error for ReviewError {}

/// The JSON pointer of the pod template inside an object of `kind`: `""` for a
/// Pod, `None` for kinds without pods.
pub fn template_path(kind: &str) -> Option<&'static str> {
    if kind == "Pod" {
        return Some("");
    }
    POD_CONTROLLERS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| *p)
}

/// Build the review of `object` for `operation`.
///
/// # Errors
/// When the object is not a mapping or lacks `apiVersion` or `kind`.
pub fn review(object: &Value, operation: Operation) -> Result<Review, ReviewError> {
    let map = object.as_object().ok_or(ReviewError::NotAnObject)?;
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .ok_or(ReviewError::MissingKind)?;
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or(ReviewError::MissingApiVersion)?;
    let metadata = object.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pod = template_path(kind).map(|path| pod_placement(object, kind, api_version, name, path));
    let node = (kind == "Node").then(|| node_info(object));
    Ok(Review {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        operation,
        labels: string_map(metadata.and_then(|m| m.get("labels"))),
        annotations: string_map(metadata.and_then(|m| m.get("annotations"))),
        pod,
        node,
        request: None,
    })
}

fn pod_placement(
    object: &Value,
    kind: &str,
    api_version: &str,
    name: &str,
    template_path: &str,
) -> PodPlacement {
    // Template paths are written here (`template_path`), without escapes.
    let template = path(object, template_path.split('/').skip(1)).unwrap_or(&Value::Null);
    let metadata = template.get("metadata");
    let spec = template.get("spec").unwrap_or(&Value::Null);
    let controller = match kind {
        "Pod" => pod_controller(object),
        "Deployment" => Some(Owner {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: name.to_string(),
        }),
        "CronJob" => Some(Owner {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: name.to_string(),
        }),
        _ => Some(Owner {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }),
    };
    let affinity = path(spec, ["affinity", "nodeAffinity"]);
    let (cpu, memory) = requests(spec);
    PodPlacement {
        template_path: template_path.to_string(),
        controller,
        labels: string_map(metadata.and_then(|m| m.get("labels"))),
        annotations: string_map(metadata.and_then(|m| m.get("annotations"))),
        tolerations: array(spec.get("tolerations"))
            .filter_map(toleration)
            .collect(),
        node_selector: string_map(spec.get("nodeSelector")),
        required_node_affinity: array(affinity.and_then(|a| {
            path(
                a,
                [
                    "requiredDuringSchedulingIgnoredDuringExecution",
                    "nodeSelectorTerms",
                ],
            )
        }))
        .map(node_selector_term)
        .collect(),
        preferred_node_affinity: array(
            affinity.and_then(|a| a.get("preferredDuringSchedulingIgnoredDuringExecution")),
        )
        .map(|t| PreferredTerm {
            weight: t.get("weight").and_then(Value::as_i64).unwrap_or(0) as i32,
            preference: node_selector_term(t.get("preference").unwrap_or(&Value::Null)),
        })
        .collect(),
        priority_class_name: str_field(spec, "priorityClassName"),
        priority: spec
            .get("priority")
            .and_then(Value::as_i64)
            .map(|p| p as i32),
        volumes: array(spec.get("volumes")).filter_map(volume).collect(),
        host_ports: containers(spec)
            .flat_map(|c| array(c.get("ports")))
            .filter_map(|p| {
                let port = p
                    .get("hostPort")
                    .and_then(Value::as_i64)
                    .filter(|p| *p > 0)?;
                Some(HostPort {
                    port: port as i32,
                    protocol: str_field(p, "protocol").unwrap_or_else(|| "TCP".into()),
                })
            })
            .collect(),
        cpu_request_millis: cpu,
        memory_request_bytes: memory,
        replicas: if matches!(kind, "Pod" | "DaemonSet" | "CronJob" | "Job") {
            None
        } else {
            Some(
                path(object, ["spec", "replicas"])
                    .and_then(Value::as_i64)
                    .unwrap_or(1) as i32,
            )
        },
        node_name: str_field(spec, "nodeName"),
    }
}

/// The controlling ownerReference of an object.
pub fn pod_controller(object: &Value) -> Option<Owner> {
    array(path(object, ["metadata", "ownerReferences"]))
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|o| Owner {
            api_version: str_field(o, "apiVersion").unwrap_or_default(),
            kind: str_field(o, "kind").unwrap_or_default(),
            name: str_field(o, "name").unwrap_or_default(),
        })
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    array(spec.get("containers")).chain(array(spec.get("initContainers")))
}

/// Requests of one pod as the scheduler counts them: the larger of the sum
/// over containers and the largest init container, plus pod overhead.
fn requests(spec: &Value) -> (i64, i64) {
    let request = |c: &Value, name: &str, parse: fn(&str) -> Option<i64>| {
        path(c, ["resources", "requests", name])
            .and_then(quantity_str)
            .and_then(|q| parse(&q))
            .unwrap_or(0)
    };
    let sum = |name: &str, parse: fn(&str) -> Option<i64>| -> i64 {
        array(spec.get("containers"))
            .map(|c| request(c, name, parse))
            .sum()
    };
    let init_max = |name: &str, parse: fn(&str) -> Option<i64>| -> i64 {
        array(spec.get("initContainers"))
            .map(|c| request(c, name, parse))
            .max()
            .unwrap_or(0)
    };
    let overhead = |name: &str, parse: fn(&str) -> Option<i64>| -> i64 {
        spec.get("overhead")
            .and_then(|o| o.get(name))
            .and_then(quantity_str)
            .and_then(|q| parse(&q))
            .unwrap_or(0)
    };
    let cpu = sum("cpu", quantity::cpu_millis).max(init_max("cpu", quantity::cpu_millis))
        + overhead("cpu", quantity::cpu_millis);
    let memory = sum("memory", quantity::bytes).max(init_max("memory", quantity::bytes))
        + overhead("memory", quantity::bytes);
    (cpu, memory)
}

/// A quantity may be written as a JSON string or number.
fn quantity_str(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn node_info(object: &Value) -> NodeInfo {
    let metadata = object.get("metadata");
    NodeInfo {
        labels: string_map(metadata.and_then(|m| m.get("labels"))),
        annotations: string_map(metadata.and_then(|m| m.get("annotations"))),
        taints: array(path(object, ["spec", "taints"]))
            .filter_map(taint)
            .collect(),
        unschedulable: path(object, ["spec", "unschedulable"]).and_then(Value::as_bool)
            == Some(true),
    }
}

/// Parse a `Taint` object.
pub fn taint(v: &Value) -> Option<Taint> {
    Some(Taint {
        key: str_field(v, "key")?,
        value: str_field(v, "value").filter(|s| !s.is_empty()),
        effect: TaintEffect::parse(v.get("effect")?.as_str()?)?,
    })
}

/// Parse a `Toleration` object.
pub fn toleration(v: &Value) -> Option<Toleration> {
    let operator = match v.get("operator").and_then(Value::as_str) {
        Some("Exists") => TolerationOperator::Exists,
        None | Some("Equal") | Some("") => TolerationOperator::Equal,
        Some(_) => return None,
    };
    Some(Toleration {
        key: str_field(v, "key").filter(|k| !k.is_empty()),
        operator,
        value: str_field(v, "value"),
        effect: v
            .get("effect")
            .and_then(Value::as_str)
            .and_then(TaintEffect::parse),
        toleration_seconds: v.get("tolerationSeconds").and_then(Value::as_i64),
    })
}

/// Parse a `NodeSelectorTerm` object.
pub fn node_selector_term(v: &Value) -> NodeSelectorTerm {
    let requirements = |field: &str| {
        array(v.get(field))
            .filter_map(|r| {
                Some(SelectorRequirement {
                    key: str_field(r, "key")?,
                    operator: SelectorOperator::parse(r.get("operator")?.as_str()?)?,
                    values: array(r.get("values"))
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect(),
                })
            })
            .collect()
    };
    NodeSelectorTerm {
        match_expressions: requirements("matchExpressions"),
        match_fields: requirements("matchFields"),
    }
}

fn volume(v: &Value) -> Option<Volume> {
    let name = str_field(v, "name")?;
    let source = if let Some(empty_dir) = v.get("emptyDir") {
        if empty_dir.get("medium").and_then(Value::as_str) == Some("Memory") {
            VolumeSource::EmptyDirMemory
        } else {
            VolumeSource::EmptyDir
        }
    } else if v.get("hostPath").is_some() {
        VolumeSource::HostPath
    } else if v.get("persistentVolumeClaim").is_some() {
        VolumeSource::PersistentVolumeClaim
    } else if v.get("configMap").is_some() {
        VolumeSource::ConfigMap
    } else if v.get("secret").is_some() {
        VolumeSource::Secret
    } else if v.get("projected").is_some() {
        VolumeSource::Projected
    } else if v.get("downwardAPI").is_some() {
        VolumeSource::DownwardApi
    } else if v.get("ephemeral").is_some() {
        VolumeSource::Ephemeral
    } else {
        VolumeSource::Other
    };
    Some(Volume { name, source })
}

/// Iterate over a JSON array, or nothing when it is absent or not an array.
pub fn array(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array)
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// A string-to-string map (labels, annotations, nodeSelector); values that are
/// not strings are skipped.
pub fn string_map(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The value at `keys` below `v`, each key an object member: a JSON pointer
/// without the allocations of [`Value::pointer`]'s unescaping.
fn path<'v, 'k>(v: &'v Value, keys: impl IntoIterator<Item = &'k str>) -> Option<&'v Value> {
    keys.into_iter().try_fold(v, |v, key| v.get(key))
}

fn str_field(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_template_is_read_with_replicaset_controller() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
            "spec": {"replicas": 2, "template": {
                "metadata": {"labels": {"k8s-app": "metrics-server"}},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "volumes": [{"name": "tmp-dir", "emptyDir": {}},
                                {"name": "mem", "emptyDir": {"medium": "Memory"}}],
                    "containers": [{"name": "m", "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}},
                                    "ports": [{"containerPort": 10250, "hostPort": 10250}]}]
                }}}
        });
        let review = review(&deploy, Operation::Create).unwrap();
        let pod = review.pod.unwrap();
        assert_eq!(pod.template_path, "/spec/template");
        assert_eq!(pod.controller.unwrap().kind, "ReplicaSet");
        assert_eq!(pod.replicas, Some(2));
        assert_eq!(pod.tolerations.len(), 2);
        assert_eq!(pod.tolerations[1].key, None);
        assert_eq!(pod.tolerations[1].operator, TolerationOperator::Exists);
        assert_eq!(pod.volumes[0].source, VolumeSource::EmptyDir);
        assert_eq!(pod.volumes[1].source, VolumeSource::EmptyDirMemory);
        assert_eq!(pod.cpu_request_millis, 100);
        assert_eq!(pod.memory_request_bytes, 70 << 20);
        assert_eq!(
            pod.host_ports,
            vec![HostPort {
                port: 10250,
                protocol: "TCP".into()
            }]
        );
    }

    #[test]
    fn cronjob_template_and_job_controller() {
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"nodeSelector": {"a": "b"}}}}}}});
        let pod = review(&cron, Operation::None).unwrap().pod.unwrap();
        assert_eq!(pod.template_path, "/spec/jobTemplate/spec/template");
        assert_eq!(pod.controller.unwrap().kind, "Job");
        assert_eq!(pod.node_selector.get("a").map(String::as_str), Some("b"));
    }

    #[test]
    fn identifies_missing_kind() {
        assert_eq!(
            review(&json!({"apiVersion": "v1"}), Operation::None),
            Err(ReviewError::MissingKind)
        );
        assert_eq!(
            review(&json!([1]), Operation::None),
            Err(ReviewError::NotAnObject)
        );
    }
}
