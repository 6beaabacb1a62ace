//! The kinds a live audit reads and what it keeps of each object.
//!
//! The kinds: what the pack's policies judge (Pods, the pod controllers,
//! Nodes, PodDisruptionBudgets), what their host lookups and the API
//! defaulting read (Namespaces, PriorityClasses), and what the scale-down
//! explainer needs (Pods, Nodes, PDBs, the controllers, and the
//! cluster-autoscaler Deployment among the Deployments).
//!
//! What is kept: everything the evaluation reads. `metadata.managedFields`
//! and the `kubectl.kubernetes.io/last-applied-configuration` annotation are
//! dropped, and of `status` only `phase` (Pods), `allocatable`, `capacity`
//! and the `Ready` condition (Nodes), and the disruption counters (PDBs) stay;
//! other kinds lose their status.

use kube::api::{ApiResource, DynamicObject, TypeMeta};
use serde_json::{Map, Value};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A kind read from the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name.
    pub plural: &'static str,
    /// The status fields kept (empty: the status is dropped).
    pub status: &'static [&'static str],
}

/// The kinds `tollgate serve --cluster` watches: what the webhook's policies
/// look up while judging one request (namespaces for selectors and
/// `namespaceObject`, the workloads and budgets `pdb-drainable` and
/// `pool-workloads-evictable` read, priority classes, and the
/// cluster-autoscaler Deployment the node pools come from). The installed
/// webhook's RBAC grants read access to exactly these
/// (`generate::install::rbac::WEBHOOK`).
pub const WEBHOOK_KINDS: &[&str] = &[
    "namespaces",
    "priorityclasses",
    "deployments",
    "statefulsets",
    "replicasets",
    "poddisruptionbudgets",
];

/// The [`KINDS`] named in [`WEBHOOK_KINDS`].
pub fn webhook_kinds() -> Vec<Kind> {
    KINDS
        .iter()
        .filter(|k| WEBHOOK_KINDS.contains(&k.plural))
        .copied()
        .collect()
}

/// Every kind a live audit reads, in listing order.
pub const KINDS: &[Kind] = &[
    Kind::core("Namespace", "namespaces", &[]),
    Kind::new("scheduling.k8s.io", "PriorityClass", "priorityclasses", &[]),
    Kind::core("Node", "nodes", &["allocatable", "capacity", "conditions"]),
    Kind::new("apps", "Deployment", "deployments", &[]),
    Kind::new("apps", "StatefulSet", "statefulsets", &[]),
    Kind::new("apps", "DaemonSet", "daemonsets", &[]),
    Kind::new("apps", "ReplicaSet", "replicasets", &[]),
    Kind::core("ReplicationController", "replicationcontrollers", &[]),
    Kind::new("batch", "Job", "jobs", &[]),
    Kind::new("batch", "CronJob", "cronjobs", &[]),
    Kind::new(
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &[
            "currentHealthy",
            "desiredHealthy",
            "disruptionsAllowed",
            "expectedPods",
            "observedGeneration",
        ],
    ),
    Kind::core("Pod", "pods", &["phase"]),
];

impl Kind {
    const fn core(
        kind: &'static str,
        plural: &'static str,
        status: &'static [&'static str],
    ) -> Self {
        Kind::new("", kind, plural, status)
    }

    const fn new(
        group: &'static str,
        kind: &'static str,
        plural: &'static str,
        status: &'static [&'static str],
    ) -> Self {
        Kind {
            group,
            version: "v1",
            kind,
            plural,
            status,
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// kube's description of the resource.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.to_string(),
            version: self.version.to_string(),
            api_version: self.api_version(),
            kind: self.kind.to_string(),
            plural: self.plural.to_string(),
        }
    }

    /// Drop what evaluation does not read, and set `apiVersion` and `kind`
    /// (list items and watch events may omit them).
    pub fn slim(&self, object: &mut DynamicObject) {
        object.types = Some(TypeMeta {
            api_version: self.api_version(),
            kind: self.kind.to_string(),
        });
        object.metadata.managed_fields = None;
        if let Some(annotations) = &mut object.metadata.annotations {
            annotations.remove(LAST_APPLIED);
            if annotations.is_empty() {
                object.metadata.annotations = None;
            }
        }
        if let Value::Object(data) = &mut object.data {
            self.slim_status(data);
        }
    }

    fn slim_status(&self, data: &mut Map<String, Value>) {
        let kept = match data.remove("status") {
            Some(Value::Object(status)) => {
                let mut kept: Map<String, Value> = status
                    .into_iter()
                    .filter(|(k, _)| self.status.contains(&k.as_str()))
                    .collect();
                if let Some(Value::Array(conditions)) = kept.get_mut("conditions") {
                    conditions.retain(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
                }
                kept
            }
            _ => return,
        };
        if !kept.is_empty() {
            data.insert("status".into(), Value::Object(kept));
        }
    }

    /// [`Kind::slim`], then the object as JSON.
    pub fn slim_value(&self, mut object: DynamicObject) -> Value {
        self.slim(&mut object);
        to_value(&object)
    }
}

/// Warnings for policies that judge kinds a live audit does not read (their
/// objects are not audited): `(policy, kinds it judges)` in, one line each out.
pub fn unread_kinds<'a>(
    policies: impl IntoIterator<Item = (&'a str, &'a [String])>,
) -> Vec<String> {
    let read = |kind: &str| KINDS.iter().any(|k| k.kind == kind);
    let mut warnings = Vec::new();
    for (policy, kinds) in policies {
        let unread: Vec<&str> = kinds
            .iter()
            .map(String::as_str)
            .filter(|k| !read(k))
            .collect();
        if unread.is_empty() {
            continue;
        }
        let what = if unread.contains(&"*") {
            "every kind".to_string()
        } else {
            unread.join(", ")
        };
        warnings.push(format!(
            "policy {policy} judges {what}; a live audit reads only {} (docs/audit.md)",
            KINDS.iter().map(|k| k.kind).collect::<Vec<_>>().join(", ")
        ));
    }
    warnings
}

/// A (slimmed) object as the evaluation reads it.
pub fn to_value(object: &DynamicObject) -> Value {
    // DynamicObject is plain data (TypeMeta, ObjectMeta, a JSON map): serializing cannot fail.
    serde_json::to_value(object).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_judging_unread_kinds_are_named() {
        let pods = vec!["Pod".to_string(), "Deployment".to_string()];
        let services = vec!["Service".to_string(), "Pod".to_string()];
        let all = vec!["*".to_string()];
        let warnings = unread_kinds([
            ("pods", pods.as_slice()),
            ("services", services.as_slice()),
            ("all", all.as_slice()),
        ]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("policy services judges Service;"));
        assert!(warnings[1].starts_with("policy all judges every kind;"));
    }

    #[test]
    fn keeps_what_evaluation_reads_and_drops_the_rest() {
        let node: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "n1", "managedFields": [{"manager": "kubelet"}],
                "annotations": {LAST_APPLIED: "{}", "keep": "me"}},
            "spec": {"taints": []},
            "status": {"allocatable": {"cpu": "2"}, "images": [{"names": ["x"]}],
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]}
        }))
        .unwrap();
        let slim = KINDS
            .iter()
            .find(|k| k.kind == "Node")
            .unwrap()
            .slim_value(node);
        assert_eq!(
            slim,
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "annotations": {"keep": "me"}},
                "spec": {"taints": []},
                "status": {"allocatable": {"cpu": "2"}, "conditions": [{"type": "Ready", "status": "True"}]}})
        );
        let deployment: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "x", "annotations": {LAST_APPLIED: "{}"}},
            "spec": {"replicas": 1}, "status": {"replicas": 1}
        }))
        .unwrap();
        let slim = KINDS
            .iter()
            .find(|k| k.kind == "Deployment")
            .unwrap()
            .slim_value(deployment);
        assert_eq!(
            slim,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "x"}, "spec": {"replicas": 1}})
        );
    }
}
