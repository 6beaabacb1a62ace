//! `priority-classes`: system components carry a system priority class, pool
//! workloads do not, and pool workloads below cluster-autoscaler's expendable
//! cutoff are pointed out.
//!
//! - `system-component-priority`: a system component (kube-system, the
//!   configured `namespaces` or `selectors`, minus `exemptSelectors`; not a
//!   DaemonSet or mirror pod) must use one of `systemPriorityClasses`, so that
//!   it can preempt its way onto the control-plane nodes it is pinned to
//!   instead of staying pending (kube-hetzner's cluster-autoscaler has none);
//! - `pool-workload-system-priority`: a pod that is not a system component
//!   and can be scheduled onto a pool must not use a system class;
//! - `expendable-pool-workload` (a warning, never a denial): a pool workload
//!   whose priority is below `expendablePriorityCutoff` is expendable to
//!   cluster-autoscaler: it does not scale up for it and kills it with its
//!   node. The priority is `spec.priority`, else the value of its
//!   PriorityClass (or of the globalDefault class) from the cluster view.
//!
//! Validation only; the CEL twin (`policy.cel.yaml`) has the two denying rules.

#[cfg(test)]
mod tests;

use autoscaler_isolation_common::scope::{self, SelectorSetting, SystemScope};
use autoscaler_isolation_common::{ca, describe, pools, rule};
use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::patch::pointer;
use tollgate_sdk::{
    Decision, Host, HostExt, Metadata, NodePool, PodPlacement, Policy, Review, Violation,
};

/// Rule id: a system component without a system priority class.
pub const SYSTEM_COMPONENT_PRIORITY: &str = "system-component-priority";
/// Rule id: a pool workload with a system priority class.
pub const POOL_WORKLOAD_SYSTEM_PRIORITY: &str = "pool-workload-system-priority";
/// Warning id: a pool workload below the expendable cutoff.
pub const EXPENDABLE_POOL_WORKLOAD: &str = "expendable-pool-workload";

/// Settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Namespaces whose pods are system components, besides kube-system.
    /// Default: none. Keep in step with system-components-off-pools.
    pub namespaces: Vec<String>,
    /// Pod label selectors that make a pod a system component. Default: none.
    pub selectors: Vec<SelectorSetting>,
    /// Pod label selectors that take a pod out of the system components.
    /// Default: none.
    pub exempt_selectors: Vec<SelectorSetting>,
    /// The system priority classes. Default `system-cluster-critical`,
    /// `system-node-critical`.
    pub system_priority_classes: Vec<String>,
    /// cluster-autoscaler's `--expendable-pods-priority-cutoff`. Default -10.
    pub expendable_priority_cutoff: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespaces: Vec::new(),
            selectors: Vec::new(),
            exempt_selectors: Vec::new(),
            system_priority_classes: ca::SYSTEM_PRIORITY_CLASSES
                .iter()
                .map(|c| (*c).to_string())
                .collect(),
            expendable_priority_cutoff: ca::DEFAULT_EXPENDABLE_CUTOFF,
        }
    }
}

impl Settings {
    fn scope(&self) -> SystemScope<'_> {
        SystemScope {
            namespaces: &self.namespaces,
            selectors: &self.selectors,
            exempt_selectors: &self.exempt_selectors,
        }
    }

    fn is_system_class(&self, class: Option<&str>) -> bool {
        class.is_some_and(|c| self.system_priority_classes.iter().any(|s| s == c))
    }
}

/// The policy.
pub struct PriorityClasses;

impl Policy for PriorityClasses {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "priority-classes".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "System components use system-cluster-critical or system-node-critical; \
                          workloads that can run on autoscaler pools do not, and are warned about when \
                          cluster-autoscaler treats them as expendable."
                .into(),
            kinds: autoscaler_isolation_common::pod_kinds(),
            mutating: false,
            rules: vec![
                rule(SYSTEM_COMPONENT_PRIORITY, "A system component has no system priority class."),
                rule(POOL_WORKLOAD_SYSTEM_PRIORITY, "A workload that can run on an autoscaler pool uses a system priority class."),
                rule(
                    EXPENDABLE_POOL_WORKLOAD,
                    "Warning only: a workload that can run on an autoscaler pool has a priority below the \
                     expendable cutoff.",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn validate(settings: &Settings) -> Result<(), String> {
        settings.scope().validate()?;
        if settings.system_priority_classes.is_empty() {
            return Err("systemPriorityClasses is empty".into());
        }
        scope::validate_names("systemPriorityClasses", &settings.system_priority_classes)
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let Some(pod) = scope::covered_pod(review) else {
            return Decision::allow();
        };
        let class = pod.priority_class_name.as_deref();
        let class_path = pointer(&pod.template_path, &["spec", "priorityClassName"]);
        if settings.scope().covers(review, pod) {
            if settings.is_system_class(class) {
                return Decision::allow();
            }
            let v = Violation::new(
                SYSTEM_COMPONENT_PRIORITY,
                system_message(review, pod, settings),
            );
            return Decision::from_violations(vec![v.at(class_path)]);
        }
        let all_pools = host.node_pools();
        let admitting = pools::admitting(&all_pools, pod);
        if admitting.is_empty() {
            return Decision::allow();
        }
        let mut violations = Vec::new();
        if settings.is_system_class(class) {
            let message = pool_message(review, pod, &admitting, class.unwrap_or_default());
            violations.push(Violation::new(POOL_WORKLOAD_SYSTEM_PRIORITY, message).at(class_path));
        }
        let decision = Decision::from_violations(violations);
        match priority(pod, host) {
            Some(p) if p < settings.expendable_priority_cutoff => decision.warn(
                expendable_message(review, &admitting, p, settings.expendable_priority_cutoff),
            ),
            _ => decision,
        }
    }
}

/// The pod's priority: `spec.priority`, else its class's value, else the
/// globalDefault class's value; `None` when none is known.
fn priority(pod: &PodPlacement, host: &dyn Host) -> Option<i32> {
    if pod.priority.is_some() {
        return pod.priority;
    }
    let value = |class: &Value| {
        class
            .get("value")
            .and_then(Value::as_i64)
            .and_then(|v| i32::try_from(v).ok())
    };
    match &pod.priority_class_name {
        Some(name) => host
            .get_object("scheduling.k8s.io/v1", "PriorityClass", "", name)
            .as_ref()
            .and_then(value),
        None => host
            .list_objects("scheduling.k8s.io/v1", "PriorityClass", None, None)
            .iter()
            .find(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .and_then(value),
    }
}

fn system_message(review: &Review, pod: &PodPlacement, settings: &Settings) -> String {
    let current = pod
        .priority_class_name
        .as_deref()
        .map_or("no priorityClassName".to_string(), |c| {
            format!("priority class {c}")
        });
    format!(
        "{} is a system component ({}) but has {current}. Set {} to one of {} (system-node-critical for \
         node-level agents, system-cluster-critical otherwise), so that its pods can preempt their way \
         onto the control-plane nodes they are pinned to instead of staying pending.",
        describe::subject(review),
        settings.scope().reason(review),
        describe::template_field(&pod.template_path, "spec.priorityClassName"),
        settings.system_priority_classes.join(", "),
    )
}

fn pool_message(
    review: &Review,
    pod: &PodPlacement,
    admitting: &[&NodePool],
    class: &str,
) -> String {
    format!(
        "{} can be scheduled onto autoscaler pool(s) {} but uses the system priority class {class}, \
         reserved for system components: its pods can preempt cluster-critical pods, and it reads as a \
         system component it is not. Set {} to a workload priority class (or keep the workload off the \
         pools if it is a system component, and list it in the policy's namespaces or selectors).",
        describe::subject(review),
        describe::pool_names(admitting.iter().copied()),
        describe::template_field(&pod.template_path, "spec.priorityClassName"),
    )
}

fn expendable_message(
    review: &Review,
    admitting: &[&NodePool],
    priority: i32,
    cutoff: i32,
) -> String {
    format!(
        "{EXPENDABLE_POOL_WORKLOAD}: {} can be scheduled onto autoscaler pool(s) {} with priority {priority}, \
         below cluster-autoscaler's --expendable-pods-priority-cutoff ({cutoff}): cluster-autoscaler does not \
         scale up for its pending pods and kills them with their node when scaling down.",
        describe::subject(review),
        describe::pool_names(admitting.iter().copied()),
    )
}

tollgate_sdk::export_policy!(PriorityClasses);
