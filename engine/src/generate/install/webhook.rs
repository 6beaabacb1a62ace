//! The webhook server and what keeps it available: its PriorityClass, the
//! Deployment (replicas spread over control-plane nodes, hardened, probed
//! over HTTPS), a PodDisruptionBudget that never blocks a drain, and the
//! Service the API server calls.

use serde_json::{Value, json};

use super::{Ctx, Manifest, files, names, pod, policies};

/// The port the server listens on in the pod.
pub const CONTAINER_PORT: u16 = 8443;
/// The Service port the API server calls.
pub const SERVICE_PORT: u16 = 443;
/// The PriorityClass value: above ordinary workloads, below the system classes.
pub const PRIORITY: i64 = 1_000_000;
/// How long in-flight reviews may finish after SIGTERM (`serve --shutdown-grace`).
pub const SHUTDOWN_GRACE_SECONDS: u32 = 15;

/// The pod labels the Service, PDB and anti-affinity select.
pub fn selector() -> Value {
    json!({"app.kubernetes.io/name": "tollgate", "app.kubernetes.io/component": "webhook"})
}

fn probe(path: &str, period: u32, failures: u32) -> Value {
    json!({
        "httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    })
}

fn deployment(ctx: &Ctx<'_>) -> Value {
    let mut deployment = deployment_object(ctx);
    if let Some(spec) = deployment["spec"]["template"]["spec"].as_object_mut() {
        spec.extend(pod::placement(ctx, Some(selector())));
    }
    deployment
}

/// The Deployment before [`deployment`] adds the placement entries.
fn deployment_object(ctx: &Ctx<'_>) -> Value {
    let s = ctx.settings;
    let (image, pull_policy) = pod::image(ctx);
    let mut args = vec![
        json!("serve"),
        json!("--tls-cert=/etc/tollgate/tls/tls.crt"),
        json!("--tls-key=/etc/tollgate/tls/tls.key"),
        json!(format!("--addr=0.0.0.0:{CONTAINER_PORT}")),
        // Namespace labels, workloads and node pools from watches of the
        // kinds its RBAC lets it read (rbac::WEBHOOK).
        json!("--cluster"),
        // The server answers before the API server gives up on it.
        ctx.value(
            r#""--request-timeout={{ sub .Values.webhook.timeoutSeconds 1 }}s""#,
            || json!(format!("--request-timeout={}s", s.timeout_seconds - 1)),
        ),
        ctx.value(
            r#""--failure-policy={{ lower .Values.webhook.failurePolicy }}""#,
            || {
                json!(format!(
                    "--failure-policy={}",
                    s.failure_policy.as_str().to_lowercase()
                ))
            },
        ),
        json!(format!("--shutdown-grace={SHUTDOWN_GRACE_SECONDS}s")),
    ];
    args.extend(pod::policies_args(ctx));
    let mut volumes = vec![json!({"name": "tls", "secret": {"secretName": names::TLS_SECRET}})];
    let mut mounts =
        vec![json!({"name": "tls", "mountPath": "/etc/tollgate/tls", "readOnly": true})];
    if let Some((volume, mount)) = pod::policies_volume(ctx) {
        volumes.push(volume);
        mounts.push(mount);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(names::WEBHOOK, "webhook"),
        "spec": {
            "replicas": ctx.value("{{ .Values.replicas }}", || json!(s.replicas)),
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": ctx.labels("webhook")},
                "spec": {
                    "serviceAccountName": names::WEBHOOK,
                    "priorityClassName": names::PRIORITY_CLASS,
                    "securityContext": pod::pod_security_context(),
                    "terminationGracePeriodSeconds": SHUTDOWN_GRACE_SECONDS + 15,
                    "containers": [{
                        "name": "webhook",
                        "image": image,
                        "imagePullPolicy": pull_policy,
                        "args": args,
                        "env": pod::env(ctx, names::WEBHOOK, "k8s.deployment.name"),
                        "ports": [{"name": "https", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                        "startupProbe": probe("/healthz", 2, 30),
                        "livenessProbe": probe("/healthz", 10, 3),
                        "readinessProbe": probe("/readyz", 5, 2),
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "128Mi"},
                            "limits": {"cpu": "1", "memory": "512Mi"},
                        },
                        "securityContext": pod::container_security_context(),
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
}

/// PriorityClass, policies ConfigMap, Deployment, PodDisruptionBudget, Service.
pub fn manifests(ctx: &Ctx<'_>) -> Vec<Manifest> {
    let at = |object: Value| Manifest {
        file: files::WEBHOOK,
        when: None,
        object,
    };
    let mut all = vec![at(json!({
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": names::PRIORITY_CLASS, "labels": ctx.labels("webhook")},
        "value": PRIORITY,
        "globalDefault": false,
        "preemptionPolicy": "PreemptLowerPriority",
        "description": "Tollgate's admission webhook and audit: placed ahead of ordinary workloads so that admission keeps working",
    }))];
    all.extend(policies::manifests(ctx));
    all.push(at(deployment(ctx)));
    all.push(at(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.metadata(names::WEBHOOK, "webhook"),
        // One replica at a time: drains proceed, and never all at once.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector()}},
    })));
    all.push(at(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(names::WEBHOOK, "webhook"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(),
            "ports": [{"name": "https", "port": SERVICE_PORT, "targetPort": "https", "protocol": "TCP"}],
        },
    })));
    all
}
