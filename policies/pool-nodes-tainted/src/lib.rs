//! `pool-nodes-tainted`: every node of a cluster-autoscaler pool carries the
//! pool's dedicated taints and labels, and those taints are fit for purpose.
//!
//! A pool node without a dedicated taint accepts any pod; a system component
//! landing there keeps the pool from scaling to zero (kube-hetzner pools have
//! no taint unless one is declared). A pool node without its label cannot be
//! selected by the workloads meant for it. `CriticalAddonsOnly` and the
//! control-plane taints are tolerated by every k3s add-on and by the hcloud
//! CCM, so as pool taints they keep none of them away.
//!
//! Membership is [`tollgate_sdk::scheduling::pool_of`] (node-group label, name
//! prefix, identifying labels); nodes of no pool are allowed. Rules on the pool
//! definition itself (`pool-without-taint`, `pool-without-label`, and the two
//! forbidden-taint rules) are reported on the pool's nodes, the objects the
//! policy sees. An UPDATE is judged only when it changes the node's taints or
//! labels, so a misconfigured node never blocks unrelated updates (status,
//! heartbeats, controller annotations). Warnings, not violations: the node is
//! excluded from scale-down (`scale-down-disabled: "true"`), or carries
//! `delay-deletion.cluster-autoscaler.kubernetes.io/*` annotations.
//!
//! Validation only; the CEL twin is `policy.cel.yaml` (without the warnings).

#[cfg(test)]
mod tests;

use autoscaler_isolation_common::pools::{expected_labels, is_hard};
use autoscaler_isolation_common::{ca, describe, raw, rule};
use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::patch::pointer;
use tollgate_sdk::scheduling::pool_of;
use tollgate_sdk::{
    Decision, Host, HostExt, Metadata, NodeInfo, NodePool, Operation, Policy, Review, Taint,
    Violation,
};

/// Rule id: the node lacks one of the pool's dedicated taints.
pub const MISSING_POOL_TAINT: &str = "missing-pool-taint";
/// Rule id: the node lacks one of the pool's labels.
pub const MISSING_POOL_LABEL: &str = "missing-pool-label";
/// Rule id: the pool declares no NoSchedule/NoExecute taint.
pub const POOL_WITHOUT_TAINT: &str = "pool-without-taint";
/// Rule id: the pool declares no label to select it by.
pub const POOL_WITHOUT_LABEL: &str = "pool-without-label";
/// Rule id: `CriticalAddonsOnly` used as a pool taint.
pub const CRITICAL_ADDONS_ONLY_POOL_TAINT: &str = "critical-addons-only-pool-taint";
/// Rule id: a control-plane taint used as a pool taint.
pub const CONTROL_PLANE_POOL_TAINT: &str = "control-plane-pool-taint";

/// Settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Report pools that declare no NoSchedule/NoExecute taint
    /// (`pool-without-taint`). Default `true`.
    pub require_dedicated_taint: bool,
    /// Report pools that declare no label (`pool-without-label`). Default `true`.
    pub require_dedicated_label: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            require_dedicated_taint: true,
            require_dedicated_label: true,
        }
    }
}

/// The policy.
pub struct PoolNodesTainted;

impl Policy for PoolNodesTainted {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "pool-nodes-tainted".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Nodes of cluster-autoscaler pools carry their pool's dedicated taints and \
                          labels; CriticalAddonsOnly and control-plane taints are not pool taints."
                    .into(),
            kinds: vec!["Node".into()],
            mutating: false,
            rules: vec![
                rule(
                    MISSING_POOL_TAINT,
                    "A pool node lacks one of the pool's dedicated taints.",
                ),
                rule(
                    MISSING_POOL_LABEL,
                    "A pool node lacks one of the pool's labels.",
                ),
                rule(
                    POOL_WITHOUT_TAINT,
                    "The node's pool declares no NoSchedule/NoExecute taint.",
                ),
                rule(
                    POOL_WITHOUT_LABEL,
                    "The node's pool declares no label workloads can select it by.",
                ),
                rule(
                    CRITICAL_ADDONS_ONLY_POOL_TAINT,
                    "CriticalAddonsOnly is used as a pool taint (on the pool or its node); every k3s \
                     add-on tolerates it.",
                ),
                rule(
                    CONTROL_PLANE_POOL_TAINT,
                    "A control-plane taint is used as a pool taint (on the pool or its node); system \
                     components tolerate it.",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let Some(node) = &review.node else {
            return Decision::allow();
        };
        if !judged(review.operation, host) {
            return Decision::allow();
        }
        let pools = host.node_pools();
        let Some(pool) = pool_of(&pools, &review.name, &node.labels) else {
            return Decision::allow();
        };
        let object = raw::RawObject::new(host);
        let mut violations = definition_violations(review, pool, settings);
        violations.extend(forbidden_node_taints(review, node, pool, &object));
        violations.extend(missing_taints(review, node, pool));
        violations.extend(missing_labels(review, node, pool));
        warnings(review, node, pool)
            .into_iter()
            .fold(Decision::from_violations(violations), Decision::warn)
    }
}

/// Whether the operation is judged: never DELETE/CONNECT; an UPDATE only when
/// it changes the node's taints or labels (a `null` field counts as absent).
fn judged(operation: Operation, host: &dyn Host) -> bool {
    match operation {
        Operation::Delete | Operation::Connect => false,
        Operation::Create | Operation::None => true,
        Operation::Update => {
            let Some(old) = host
                .old_object_json()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            else {
                return true;
            };
            let new = host.object();
            let field = |v: &Value, p: &str| v.pointer(p).filter(|f| !f.is_null()).cloned();
            ["/spec/taints", "/metadata/labels"]
                .iter()
                .any(|p| field(&old, p) != field(&new, p))
        }
    }
}

/// Which forbidden class a taint key belongs to, if any.
fn forbidden_rule(key: &str) -> Option<&'static str> {
    if key == ca::CRITICAL_ADDONS_ONLY {
        Some(CRITICAL_ADDONS_ONLY_POOL_TAINT)
    } else if ca::CONTROL_PLANE_TAINT_KEYS.contains(&key) {
        Some(CONTROL_PLANE_POOL_TAINT)
    } else {
        None
    }
}

/// Why a forbidden taint keeps nothing off the pool.
fn forbidden_reason(rule: &str) -> &'static str {
    if rule == CRITICAL_ADDONS_ONLY_POOL_TAINT {
        "every k3s add-on (metrics-server, coredns, local-path-provisioner, traefik) tolerates \
         CriticalAddonsOnly with any effect, so it keeps none of them off the pool"
    } else {
        "system components tolerate the control-plane taint, so it keeps none of them off the pool, \
         and the pool's nodes pass for control planes"
    }
}

const TAINT_FIX: &str = "declare a dedicated taint instead, e.g. in kube-hetzner's autoscaler_nodepools: \
     taints = [{ key = \"dedicated\", value = \"autoscaler\", effect = \"NoSchedule\" }]";

/// Rules on the pool definition, reported on its node.
fn definition_violations(review: &Review, pool: &NodePool, settings: &Settings) -> Vec<Violation> {
    let subject = describe::subject(review);
    let mut out = Vec::new();
    if settings.require_dedicated_taint && !pool.taints.iter().any(is_hard) {
        out.push(Violation::new(
            POOL_WITHOUT_TAINT,
            format!(
                "{subject} belongs to autoscaler pool {}, which declares no NoSchedule/NoExecute taint: \
                 nothing keeps system components (metrics-server, coredns, CSI controller, CCM) off its \
                 nodes, and one of them landing there stops the pool from scaling to zero; {TAINT_FIX}.",
                pool.name
            ),
        ));
    }
    if settings.require_dedicated_label && expected_labels(pool).is_empty() {
        out.push(Violation::new(
            POOL_WITHOUT_LABEL,
            format!(
                "{subject} belongs to autoscaler pool {}, which declares no labels, so workloads cannot \
                 select the pool explicitly; declare one, e.g. labels = {{ \"node.kubernetes.io/role\" = \
                 \"autoscaler\" }} (keys under node-role.kubernetes.io/ cannot be set by the kubelet).",
                pool.name
            ),
        ));
    }
    for taint in &pool.taints {
        if let Some(rule) = forbidden_rule(&taint.key) {
            out.push(Violation::new(
                rule,
                format!(
                    "{subject} belongs to autoscaler pool {}, whose definition uses {taint} as a pool \
                     taint: {}; {TAINT_FIX}.",
                    pool.name,
                    forbidden_reason(rule)
                ),
            ));
        }
    }
    out
}

/// Forbidden taints on the node that the pool definition does not already explain.
fn forbidden_node_taints(
    review: &Review,
    node: &NodeInfo,
    pool: &NodePool,
    object: &raw::RawObject<'_>,
) -> Vec<Violation> {
    node.taints
        .iter()
        .enumerate()
        .filter(|(_, t)| !pool.taints.iter().any(|p| p.key == t.key))
        .filter_map(|(i, taint)| {
            let rule = forbidden_rule(&taint.key)?;
            let message = format!(
                "{} is a node of autoscaler pool {} and carries {taint}: {}; remove it (kubectl taint \
                 node {} {}-) and give the pool a dedicated taint.",
                describe::subject(review),
                pool.name,
                forbidden_reason(rule),
                review.name,
                taint.key
            );
            Some(Violation::new(rule, message).at(raw::node_taint_pointer(object.value(), i)))
        })
        .collect()
}

/// Taints are the same when key, effect and value (absent = empty) agree.
fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key
        && a.effect == b.effect
        && a.value.as_deref().unwrap_or("") == b.value.as_deref().unwrap_or("")
}

/// `missing-pool-taint`: one violation per pool taint the node lacks.
fn missing_taints(review: &Review, node: &NodeInfo, pool: &NodePool) -> Vec<Violation> {
    pool.taints
        .iter()
        .filter(|want| !node.taints.iter().any(|have| same_taint(have, want)))
        .map(|want| {
            let found: Vec<String> =
                node.taints.iter().filter(|t| t.key == want.key).map(Taint::to_kubectl).collect();
            let found = if found.is_empty() { String::new() } else { format!(" (it has {})", found.join(", ")) };
            let message = format!(
                "{} is a node of autoscaler pool {} but lacks the pool's taint {want}{found}, so any pod \
                 can be scheduled onto it, system components included, and the pool cannot scale to \
                 zero once one lands. Taint it (kubectl taint node {} {want} --overwrite) and make sure the \
                 pool's node config registers the taint (k3s node-taint).",
                describe::subject(review),
                pool.name,
                review.name
            );
            Violation::new(MISSING_POOL_TAINT, message).at("/spec/taints")
        })
        .collect()
}

/// `missing-pool-label`: one violation per expected label the node lacks.
fn missing_labels(review: &Review, node: &NodeInfo, pool: &NodePool) -> Vec<Violation> {
    expected_labels(pool)
        .into_iter()
        .filter(|(k, v)| node.labels.get(k) != Some(v))
        .map(|(key, value)| {
            let found = node.labels.get(&key).map(|v| format!(" (it has {key}={v})")).unwrap_or_default();
            let hint = if key.starts_with("node-role.kubernetes.io/") {
                " The kubelet may not set node-role.kubernetes.io/ labels on itself (NodeRestriction); \
                 use a key under node.kubernetes.io/ or your own domain."
            } else {
                ""
            };
            let message = format!(
                "{} is a node of autoscaler pool {} but lacks the pool's label {key}={value}{found}, so \
                 workloads that select the pool cannot run on it. Label it (kubectl label node {} \
                 {key}={value} --overwrite) and make sure the pool's node config sets the label (k3s \
                 node-label).{hint}",
                describe::subject(review),
                pool.name,
                review.name
            );
            Violation::new(MISSING_POOL_LABEL, message).at(pointer("/metadata/labels", &[&key]))
        })
        .collect()
}

/// Node annotations that keep cluster-autoscaler from removing the node.
fn warnings(review: &Review, node: &NodeInfo, pool: &NodePool) -> Vec<String> {
    let mut out = Vec::new();
    if node
        .annotations
        .get(ca::SCALE_DOWN_DISABLED)
        .map(String::as_str)
        == Some("true")
    {
        out.push(format!(
            "{} (pool {}) is annotated {}=true: cluster-autoscaler will never remove it; drop the \
             annotation when it is no longer needed.",
            describe::subject(review),
            pool.name,
            ca::SCALE_DOWN_DISABLED
        ));
    }
    let delays: Vec<&str> = node
        .annotations
        .keys()
        .filter(|k| k.starts_with(ca::DELAY_DELETION_PREFIX))
        .map(String::as_str)
        .collect();
    if !delays.is_empty() {
        out.push(format!(
            "{} (pool {}) carries {}: cluster-autoscaler waits for them (up to \
             --node-deletion-delay-timeout) before deleting the node.",
            describe::subject(review),
            pool.name,
            delays.join(", ")
        ));
    }
    out
}

tollgate_sdk::export_policy!(PoolNodesTainted);
