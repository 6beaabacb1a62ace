//! The ValidatingWebhookConfiguration and MutatingWebhookConfiguration: rules
//! for exactly the kinds the loaded policies judge (mutating: the kinds the
//! mutating policies judge), Tollgate's own namespace left out, the CA from
//! cert-manager's cainjector or the self-signed bundle.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Cond, Ctx, Error, Manifest, files, names, tls, webhook};
use crate::policy::PolicySet;

/// A built-in kind's REST identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// The kind.
    pub kind: &'static str,
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural resource name.
    pub resource: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

const fn r(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    resource: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        kind,
        group,
        version,
        resource,
        namespaced,
    }
}

/// The built-in kinds a policy may judge.
pub const RESOURCES: &[Resource] = &[
    r("Pod", "", "v1", "pods", true),
    r(
        "ReplicationController",
        "",
        "v1",
        "replicationcontrollers",
        true,
    ),
    r("Service", "", "v1", "services", true),
    r("ConfigMap", "", "v1", "configmaps", true),
    r("Secret", "", "v1", "secrets", true),
    r("ServiceAccount", "", "v1", "serviceaccounts", true),
    r(
        "PersistentVolumeClaim",
        "",
        "v1",
        "persistentvolumeclaims",
        true,
    ),
    r("Namespace", "", "v1", "namespaces", false),
    r("Node", "", "v1", "nodes", false),
    r("PersistentVolume", "", "v1", "persistentvolumes", false),
    r("Deployment", "apps", "v1", "deployments", true),
    r("StatefulSet", "apps", "v1", "statefulsets", true),
    r("DaemonSet", "apps", "v1", "daemonsets", true),
    r("ReplicaSet", "apps", "v1", "replicasets", true),
    r("Job", "batch", "v1", "jobs", true),
    r("CronJob", "batch", "v1", "cronjobs", true),
    r(
        "PodDisruptionBudget",
        "policy",
        "v1",
        "poddisruptionbudgets",
        true,
    ),
    r(
        "PriorityClass",
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        false,
    ),
    r(
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        true,
    ),
    r("Ingress", "networking.k8s.io", "v1", "ingresses", true),
    r(
        "NetworkPolicy",
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        true,
    ),
];

/// The operations a webhook is called for on `kind`. Placement is decided
/// when an object is created or changed; deletes and connects are never
/// judged. A Pod's placement fields and a Job's template cannot change after
/// creation, so they are judged on CREATE only: judging their UPDATEs would
/// reject label or status-adjacent edits of objects created before Tollgate,
/// and a mutation there would be refused by the API server's validation.
pub fn operations(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" | "Job" => &["CREATE"],
        _ => &["CREATE", "UPDATE"],
    }
}

/// The kinds each webhook intercepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Kinds any policy judges.
    pub validating: BTreeSet<&'static str>,
    /// Kinds a mutating policy judges.
    pub mutating: BTreeSet<&'static str>,
}

impl Rules {
    /// The kinds `set` judges.
    ///
    /// # Errors
    /// A policy that judges `*` or a kind not in [`RESOURCES`].
    pub fn of(set: &PolicySet) -> Result<Self, Error> {
        let mut rules = Rules::default();
        for policy in set.policies() {
            for kind in &policy.metadata.kinds {
                if kind == "*" {
                    return Err(Error::EveryKind(policy.name.clone()));
                }
                let resource = RESOURCES.iter().find(|r| r.kind == kind).ok_or_else(|| {
                    Error::UnknownKind {
                        policy: policy.name.clone(),
                        kind: kind.clone(),
                        known: RESOURCES
                            .iter()
                            .map(|r| r.kind)
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })?;
                rules.validating.insert(resource.kind);
                if policy.metadata.mutating {
                    rules.mutating.insert(resource.kind);
                }
            }
        }
        Ok(rules)
    }
}

/// Webhook rules for `kinds`: one per group, version, scope and operations,
/// resources sorted.
pub fn rules_for(kinds: &BTreeSet<&'static str>) -> Value {
    type Key = (&'static str, &'static str, bool, &'static [&'static str]);
    let mut grouped: BTreeMap<Key, BTreeSet<&str>> = BTreeMap::new();
    for resource in RESOURCES.iter().filter(|r| kinds.contains(r.kind)) {
        grouped
            .entry((
                resource.group,
                resource.version,
                resource.namespaced,
                operations(resource.kind),
            ))
            .or_default()
            .insert(resource.resource);
    }
    Value::Array(
        grouped
            .into_iter()
            .map(|((group, version, namespaced, operations), resources)| {
                json!({
                    "apiGroups": [group],
                    "apiVersions": [version],
                    "resources": resources,
                    "operations": operations,
                    "scope": if namespaced { "Namespaced" } else { "Cluster" },
                })
            })
            .collect(),
    )
}

fn configuration(
    ctx: &Ctx<'_>,
    kind: &str,
    webhook_name: &str,
    path: &str,
    kinds: &BTreeSet<&'static str>,
) -> Value {
    let s = ctx.settings;
    let mut metadata =
        json!({"name": names::WEBHOOK_CONFIGURATION, "labels": ctx.labels("admission")});
    if let Some(map) = metadata.as_object_mut() {
        map.extend(ctx.entries_if(
            Cond::TlsCertManager,
            json!({"annotations": tls::inject_annotation(ctx)}),
        ));
    }
    let mut client = json!({
        "service": {
            "name": names::WEBHOOK,
            "namespace": ctx.namespace(),
            "path": path,
            "port": webhook::SERVICE_PORT,
        },
    });
    if let Some(map) = client.as_object_mut() {
        map.extend(ctx.entries_if(
            Cond::TlsSelfSigned,
            json!({"caBundle": tls::ca_bundle(ctx)}),
        ));
    }
    let mut hook = json!({
        "name": webhook_name,
        "admissionReviewVersions": ["v1", "v1beta1"],
        "clientConfig": client,
        "failurePolicy": ctx.value("{{ .Values.webhook.failurePolicy | quote }}", || json!(s.failure_policy.as_str())),
        "matchPolicy": "Equivalent",
        "namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": [ctx.namespace()],
        }]},
        "rules": rules_for(kinds),
        "sideEffects": "None",
        "timeoutSeconds": ctx.value("{{ .Values.webhook.timeoutSeconds }}", || json!(s.timeout_seconds)),
    });
    if kind == "MutatingWebhookConfiguration" {
        // Another webhook's later change is judged again.
        hook["reinvocationPolicy"] = json!("IfNeeded");
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "webhooks": [hook],
    })
}

/// The webhook configurations (the mutating one only when a policy mutates).
pub fn manifests(ctx: &Ctx<'_>) -> Vec<Manifest> {
    let rules = &ctx.settings.rules;
    let mut all = Vec::new();
    if !rules.validating.is_empty() {
        all.push(configuration(
            ctx,
            "ValidatingWebhookConfiguration",
            "validate.tollgate.dev",
            "/validate",
            &rules.validating,
        ));
    }
    if !rules.mutating.is_empty() {
        all.push(configuration(
            ctx,
            "MutatingWebhookConfiguration",
            "mutate.tollgate.dev",
            "/mutate",
            &rules.mutating,
        ));
    }
    all.into_iter()
        .map(|object| Manifest {
            file: files::ADMISSION,
            when: None,
            object,
        })
        .collect()
}
