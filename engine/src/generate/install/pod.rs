//! What the webhook and audit pods share: the hardened security contexts,
//! placement on control-plane nodes, the environment (downward API and
//! OpenTelemetry), the image, and the policies volume.

use serde_json::{Map, Value, json};

use super::{Cond, Ctx, names};

/// The non-root user and group the container runs as (no user in the image needed).
pub const USER_ID: u32 = 65532;

/// Where the policies ConfigMap is mounted.
pub const POLICIES_MOUNT: &str = "/etc/tollgate/policies";

/// The pod's security context: non-root, RuntimeDefault seccomp.
pub fn pod_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The container's security context: read-only root, no privilege, no capabilities.
pub fn container_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// Pod spec entries for placement: spread over nodes (preferred
/// anti-affinity on `spread`, the pods' own labels) and, unless
/// `--no-control-plane`, required control-plane nodes with their taints
/// tolerated.
pub fn placement(ctx: &Ctx<'_>, spread: Option<Value>) -> Map<String, Value> {
    let control_plane = json!({
        "affinity": {"nodeAffinity": control_plane_affinity()},
        "tolerations": control_plane_tolerations(),
    });
    let Some(labels) = spread else {
        return ctx.entries_if(Cond::ControlPlane, control_plane);
    };
    let mut affinity = Map::new();
    affinity.insert(
        "podAntiAffinity".into(),
        json!({
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": labels}},
            }],
        }),
    );
    affinity.extend(ctx.entries_if(
        Cond::ControlPlane,
        json!({"nodeAffinity": control_plane_affinity()}),
    ));
    let mut entries = Map::new();
    entries.insert("affinity".into(), Value::Object(affinity));
    entries.extend(ctx.entries_if(
        Cond::ControlPlane,
        json!({"tolerations": control_plane_tolerations()}),
    ));
    entries
}

/// Required node affinity to control-plane nodes.
fn control_plane_affinity() -> Value {
    json!({
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
            ]}],
        },
    })
}

/// The control-plane taint (and k3s' CriticalAddonsOnly), tolerated.
fn control_plane_tolerations() -> Value {
    json!([
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
    ])
}

/// The container image and pull policy entries.
pub fn image(ctx: &Ctx<'_>) -> (Value, Value) {
    let s = ctx.settings;
    (
        ctx.value("{{ .Values.image | quote }}", || json!(s.image)),
        ctx.value("{{ .Values.imagePullPolicy | quote }}", || {
            json!(s.image_pull_policy)
        }),
    )
}

/// Environment: the pod's name and namespace, and the OpenTelemetry
/// variables naming the service `service` with Kubernetes resource attributes
/// (`owner_kind` is the controller's attribute, e.g. `k8s.deployment.name`).
pub fn env(ctx: &Ctx<'_>, service: &str, owner_kind: &str) -> Value {
    let s = ctx.settings;
    let mut env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        json!({"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}),
        json!({"name": "OTEL_SERVICE_NAME", "value": service}),
        json!({"name": "OTEL_RESOURCE_ATTRIBUTES", "value": format!(
            "service.namespace=tollgate,k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME),k8s.node.name=$(NODE_NAME),{owner_kind}={service}"
        )}),
    ];
    env.extend(ctx.items_if(
        Cond::Otlp,
        vec![json!({
            "name": "OTEL_EXPORTER_OTLP_ENDPOINT",
            "value": ctx.value("{{ .Values.otlp.endpoint | quote }}", || {
                json!(s.otlp_endpoint.clone().unwrap_or_default())
            }),
        })],
    ));
    Value::Array(env)
}

/// The policies volume and its mount, when local policy files are packaged.
pub fn policies_volume(ctx: &Ctx<'_>) -> Option<(Value, Value)> {
    if ctx.chart || ctx.settings.policies.files.is_empty() {
        return None;
    }
    Some((
        json!({"name": "policies", "configMap": {"name": names::POLICIES_CONFIGMAP}}),
        json!({"name": "policies", "mountPath": POLICIES_MOUNT, "readOnly": true}),
    ))
}

/// The policies the server and audit load, as `--policy=<value>` arguments
/// (both verbs take the flag once per value).
pub fn policies_args(ctx: &Ctx<'_>) -> Vec<Value> {
    ctx.settings
        .policies
        .args()
        .into_iter()
        .map(|p| json!(format!("--policy={p}")))
        .collect()
}
