//! ServiceAccounts and least-privilege RBAC. Every grant carries its reason
//! (docs/install.md tabulates them): the webhook only reads, and the audit
//! reads the kinds it judges, holds its Lease, and writes only its reports.

use serde_json::{Value, json};

use super::{Cond, Ctx, Manifest, files, names};

/// One RBAC rule and why it is needed.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resources.
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Restricted to these object names (empty: any).
    pub names: &'static [&'static str],
    /// Why.
    pub reason: &'static str,
}

const READ: &[&str] = &["get", "list", "watch"];

/// The webhook's cluster-wide grants: read-only lookups.
pub const WEBHOOK: &[Grant] = &[
    Grant {
        group: "",
        resources: &["namespaces"],
        verbs: READ,
        names: &[],
        reason: "namespace labels for policies' namespaceSelector and CEL's namespaceObject; pool-opt-in reads the namespace's opt-in label",
    },
    Grant {
        group: "apps",
        resources: &["deployments", "replicasets", "statefulsets"],
        verbs: READ,
        names: &[],
        reason: "pdb-drainable finds the workloads a PodDisruptionBudget selects; node pools are read from the cluster-autoscaler Deployment",
    },
    Grant {
        group: "policy",
        resources: &["poddisruptionbudgets"],
        verbs: READ,
        names: &[],
        reason: "pool workloads are checked against the budgets that select them",
    },
    Grant {
        group: "scheduling.k8s.io",
        resources: &["priorityclasses"],
        verbs: READ,
        names: &[],
        reason: "priority-classes resolves priorityClassName to a value (expendable cutoff)",
    },
];

/// The audit's cluster-wide grants: read what it judges.
pub const AUDIT: &[Grant] = &[
    Grant {
        group: "",
        resources: &["namespaces", "nodes", "pods", "replicationcontrollers"],
        verbs: READ,
        names: &[],
        reason: "the objects audited: Nodes and their pods for the scale-down explainer, namespaces for selectors",
    },
    Grant {
        group: "apps",
        resources: &["daemonsets", "deployments", "replicasets", "statefulsets"],
        verbs: READ,
        names: &[],
        reason: "pod controllers are judged through their templates; owners decide drainability (ControllerNotFound, MinReplicasReached)",
    },
    Grant {
        group: "batch",
        resources: &["cronjobs", "jobs"],
        verbs: READ,
        names: &[],
        reason: "pod controllers are judged through their templates",
    },
    Grant {
        group: "policy",
        resources: &["poddisruptionbudgets"],
        verbs: READ,
        names: &[],
        reason: "NotEnoughPdb and pdb-drainable",
    },
    Grant {
        group: "scheduling.k8s.io",
        resources: &["priorityclasses"],
        verbs: READ,
        names: &[],
        reason: "the Priority admission plugin's defaulting (priorityClassName to priority) is applied before judging",
    },
];

/// The audit's report grants (only when it writes reports to the cluster).
pub const AUDIT_REPORTS: &[Grant] = &[Grant {
    group: "wgpolicyk8s.io",
    resources: &["clusterpolicyreports", "policyreports"],
    verbs: &["create", "delete", "get", "list", "patch"],
    names: &[],
    reason: "reports are applied server-side (patch, create); stale ones are listed and deleted",
}];

/// The audit's grants in its own namespace: the leader-election Lease.
pub const AUDIT_LEASE: &[Grant] = &[
    Grant {
        group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["create"],
        names: &[],
        reason: "the first replica creates the Lease (create cannot be limited by name)",
    },
    Grant {
        group: "coordination.k8s.io",
        resources: &["leases"],
        verbs: &["get", "update"],
        names: &[names::AUDIT],
        reason: "the leader renews the Lease, the others watch it expire; only the Lease named tollgate-audit",
    },
];

fn rules(grants: &[Grant]) -> Value {
    Value::Array(
        grants
            .iter()
            .map(|g| {
                let mut rule =
                    json!({"apiGroups": [g.group], "resources": g.resources, "verbs": g.verbs});
                if !g.names.is_empty() {
                    rule["resourceNames"] = json!(g.names);
                }
                rule
            })
            .collect(),
    )
}

fn cluster_role(ctx: &Ctx<'_>, name: &str, component: &str, grants: &[Grant]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": ctx.labels(component)},
        "rules": rules(grants),
    })
}

fn binding(ctx: &Ctx<'_>, kind: &str, name: &str, component: &str, account: &str) -> Value {
    let mut metadata = json!({"name": name, "labels": ctx.labels(component)});
    if kind == "RoleBinding" {
        metadata["namespace"] = json!(ctx.namespace());
    }
    let role_kind = kind.trim_end_matches("Binding");
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ctx.namespace()}],
    })
}

fn service_account(ctx: &Ctx<'_>, name: &str, component: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": ctx.metadata(name, component),
        "automountServiceAccountToken": true,
    })
}

/// A component's ServiceAccount with its cluster-wide role and binding.
fn identity(
    ctx: &Ctx<'_>,
    when: Option<Cond>,
    name: &str,
    component: &str,
    grants: &[Grant],
) -> Vec<Manifest> {
    [
        service_account(ctx, name, component),
        cluster_role(ctx, name, component, grants),
        binding(ctx, "ClusterRoleBinding", name, component, name),
    ]
    .into_iter()
    .map(|object| Manifest {
        file: files::RBAC,
        when,
        object,
    })
    .collect()
}

/// ServiceAccounts, roles and bindings.
pub fn manifests(ctx: &Ctx<'_>) -> Vec<Manifest> {
    let reports = format!("{}-reports", names::AUDIT);
    let at = |when: Cond, object: Value| Manifest {
        file: files::RBAC,
        when: Some(when),
        object,
    };
    let mut all = identity(ctx, None, names::WEBHOOK, "webhook", WEBHOOK);
    all.extend(identity(
        ctx,
        Some(Cond::AuditEnabled),
        names::AUDIT,
        "audit",
        AUDIT,
    ));
    all.extend([
        at(
            Cond::AuditReports,
            cluster_role(ctx, &reports, "audit", AUDIT_REPORTS),
        ),
        at(
            Cond::AuditReports,
            binding(ctx, "ClusterRoleBinding", &reports, "audit", names::AUDIT),
        ),
        at(
            Cond::AuditDeployment,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": ctx.metadata(names::AUDIT, "audit"),
                "rules": rules(AUDIT_LEASE),
            }),
        ),
        at(
            Cond::AuditDeployment,
            binding(ctx, "RoleBinding", names::AUDIT, "audit", names::AUDIT),
        ),
    ]);
    all
}

#[cfg(test)]
mod webhook_grants {
    use super::WEBHOOK;
    use crate::cluster::live::kinds::webhook_kinds;

    #[test]
    fn the_webhook_may_list_and_watch_every_kind_serve_cluster_watches() {
        for kind in webhook_kinds() {
            let granted = WEBHOOK.iter().any(|g| {
                g.group == kind.group
                    && g.resources.contains(&kind.plural)
                    && ["list", "watch"].iter().all(|v| g.verbs.contains(v))
            });
            assert!(granted, "{} is watched but not granted", kind.plural);
        }
    }

    #[test]
    fn the_webhook_is_granted_nothing_it_does_not_watch() {
        let watched: Vec<(&str, &str)> = webhook_kinds()
            .iter()
            .map(|k| (k.group, k.plural))
            .collect();
        for grant in WEBHOOK {
            for resource in grant.resources {
                assert!(
                    watched.contains(&(grant.group, resource)),
                    "{resource} is granted but never read"
                );
            }
        }
    }
}
