//! The built-in Kubernetes resources: which kind a resource name (`pods`)
//! stands for and back, and whether it is namespaced. Admission rules name
//! resources, objects name kinds; outside admission (audit, `eval --object`)
//! Tollgate needs this table to know that a Deployment is `apps/deployments`.
//! Kinds not in the table (custom resources) get the lower-case plural
//! Kubernetes would derive, and count as namespaced when the object has a
//! namespace.

/// One built-in resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Preferred version.
    pub version: &'static str,
    /// Plural resource name.
    pub resource: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

const fn r(
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version,
        resource,
        kind,
        namespaced,
    }
}

/// The built-in resources Tollgate knows by name.
pub const BUILT_IN: &[Resource] = &[
    r("", "v1", "pods", "Pod", true),
    r("", "v1", "services", "Service", true),
    r("", "v1", "configmaps", "ConfigMap", true),
    r("", "v1", "secrets", "Secret", true),
    r("", "v1", "serviceaccounts", "ServiceAccount", true),
    r(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    ),
    r("", "v1", "endpoints", "Endpoints", true),
    r("", "v1", "events", "Event", true),
    r("", "v1", "limitranges", "LimitRange", true),
    r("", "v1", "resourcequotas", "ResourceQuota", true),
    r(
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
    ),
    r("", "v1", "podtemplates", "PodTemplate", true),
    r("", "v1", "namespaces", "Namespace", false),
    r("", "v1", "nodes", "Node", false),
    r("", "v1", "persistentvolumes", "PersistentVolume", false),
    r("apps", "v1", "deployments", "Deployment", true),
    r("apps", "v1", "statefulsets", "StatefulSet", true),
    r("apps", "v1", "daemonsets", "DaemonSet", true),
    r("apps", "v1", "replicasets", "ReplicaSet", true),
    r(
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        true,
    ),
    r("batch", "v1", "jobs", "Job", true),
    r("batch", "v1", "cronjobs", "CronJob", true),
    r(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
    ),
    r(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
    ),
    r("networking.k8s.io", "v1", "ingresses", "Ingress", true),
    r(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    r(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
    ),
    r(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
    ),
    r("coordination.k8s.io", "v1", "leases", "Lease", true),
    r("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
    ),
    r(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    ),
    r(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
    ),
    r("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", false),
    r(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
    ),
    r("storage.k8s.io", "v1", "csidrivers", "CSIDriver", false),
    r("storage.k8s.io", "v1", "csinodes", "CSINode", false),
    r(
        "storage.k8s.io",
        "v1",
        "volumeattachments",
        "VolumeAttachment",
        false,
    ),
    r(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    ),
    r(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        false,
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        false,
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        false,
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingadmissionpolicies",
        "MutatingAdmissionPolicy",
        false,
    ),
    r(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingadmissionpolicybindings",
        "MutatingAdmissionPolicyBinding",
        false,
    ),
    r("helm.cattle.io", "v1", "helmcharts", "HelmChart", true),
    r(
        "helm.cattle.io",
        "v1",
        "helmchartconfigs",
        "HelmChartConfig",
        true,
    ),
];

/// Groups whose resources are the same objects served under another group
/// (what `matchPolicy: Equivalent` treats as one).
const EQUIVALENT_GROUPS: &[(&str, &str)] = &[
    ("apps", "extensions"),
    ("networking.k8s.io", "extensions"),
    ("policy", "extensions"),
];

/// The built-in resource of a kind in a group.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    BUILT_IN
        .iter()
        .find(|r| r.kind == kind && (r.group == group || equivalent_groups(r.group, group)))
}

/// The built-in resource of a resource name in a group.
pub fn by_resource(group: &str, resource: &str) -> Option<&'static Resource> {
    BUILT_IN
        .iter()
        .find(|r| r.resource == resource && r.group == group)
}

/// Whether two groups serve the same resources (`apps` and `extensions`).
pub fn equivalent_groups(a: &str, b: &str) -> bool {
    a == b
        || EQUIVALENT_GROUPS
            .iter()
            .any(|&(x, y)| (x == a && y == b) || (x == b && y == a))
}

/// The resource name of a kind: the table's, or the lower-case plural
/// Kubernetes derives for custom resources.
pub fn resource_of(group: &str, kind: &str) -> String {
    if let Some(r) = by_kind(group, kind) {
        return r.resource.to_string();
    }
    let lower = kind.to_lowercase();
    if lower.ends_with('s')
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_resources_both_ways() {
        assert_eq!(resource_of("apps", "Deployment"), "deployments");
        assert_eq!(resource_of("", "Endpoints"), "endpoints");
        assert_eq!(resource_of("example.com", "Policy"), "policies");
        assert_eq!(resource_of("example.com", "Ingress"), "ingresses");
        assert_eq!(by_resource("", "pods").map(|r| r.kind), Some("Pod"));
        assert_eq!(
            by_kind("extensions", "Deployment").map(|r| r.group),
            Some("apps")
        );
        assert!(!by_kind("", "Namespace").unwrap().namespaced);
    }
}
