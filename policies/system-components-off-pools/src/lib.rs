//! `system-components-off-pools`: system components must not be able to land
//! on a cluster-autoscaler pool.
//!
//! A non-DaemonSet kube-system pod on a pool node blocks that node's removal
//! (cluster-autoscaler rule 9, `UnmovableKubeSystemPod`; permanently on CA ≤
//! 1.32, which kube-hetzner ships), so the pool never scales to zero. k3s's
//! metrics-server, coredns and local-path-provisioner, hcloud's CCM and CSI
//! controller all tolerate control-plane taints without being pinned there,
//! and drift onto pool nodes during drains (kube-hetzner #1233, #1234).
//!
//! A pod is a system component when it is in kube-system or one of the
//! `namespaces` of the settings, or matches one of the `selectors`, and no
//! `exemptSelectors` matches it. DaemonSet and mirror pods are out of scope.
//! Two rules:
//! - `missing-control-plane-affinity`: its nodeSelector or required node
//!   affinity must pin it to control-plane nodes (every term requires the
//!   control-plane label with `Exists` or `In`), or reach no pool at all;
//! - `tolerates-pool-taint`: none of its tolerations may tolerate a pool's
//!   taint (a key-less `Exists` toleration tolerates them all).
//!
//! The policy judges the object as it is and returns its violations together
//! with the patch that fixes what it can (mutate, then validate, as the API
//! server runs admission webhooks). With `mutate` (default on) the patch fixes
//! the first rule: it adds the control-plane requirement to every
//! nodeSelectorTerm that lacks it (or creates the required affinity), and a
//! toleration of the control-plane taint when the pod does not tolerate it
//! yet; the `missing-control-plane-affinity` violation is still reported, and
//! its message says that `tollgate eval --mutate` and the mutating webhook add
//! the affinity. The engine's mutating path applies the patch and judges the
//! patched object again, which leaves only what the patch does not fix. A pod
//! that is pinned already but does not tolerate the control-plane taint gets
//! the toleration alone, without a violation. `mutate: false` only drops the
//! patch (and the note).
//!
//! The patch never removes a user's toleration: dropping a toleration can
//! strand a running workload on taints the policy does not know about, so
//! pool tolerations are denied with an explanation instead. A term that
//! forbids the control-plane label is left alone (the rule then denies with
//! no patch): adding a contradictory requirement would make the pod
//! unschedulable silently.
//!
//! With no pools at all the policy allows everything (the host supplies a
//! preset pool when none is configured). The CEL twin (`policy.cel.yaml`)
//! carries the two validation rules with the same verdicts, whatever
//! `mutate` says.

mod mutation;
#[cfg(test)]
mod tests;

use autoscaler_isolation_common::scope::{self, SelectorSetting, SystemScope};
use autoscaler_isolation_common::{ca, describe, pools, raw, rule};
use serde::Deserialize;
use tollgate_sdk::scheduling::tolerated;
use tollgate_sdk::{
    Decision, Host, Metadata, NodePool, Patch, PodPlacement, Policy, Review, Taint, Violation,
};

/// Rule id: the pod is not pinned to control-plane nodes and can reach a pool.
pub const MISSING_CONTROL_PLANE_AFFINITY: &str = "missing-control-plane-affinity";
/// Rule id: a toleration of the pod tolerates a pool taint.
pub const TOLERATES_POOL_TAINT: &str = "tolerates-pool-taint";

/// The control-plane taint kube-hetzner puts on control planes.
const DEFAULT_CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";

/// Settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Namespaces whose pods are system components, besides kube-system
    /// (which always is). Default: none.
    pub namespaces: Vec<String>,
    /// Pod label selectors (`matchLabels`/`matchExpressions`) that make a pod
    /// a system component in any namespace. Default: none.
    pub selectors: Vec<SelectorSetting>,
    /// Pod label selectors that take a pod out of the system components.
    /// Default: none.
    pub exempt_selectors: Vec<SelectorSetting>,
    /// The node label that marks control-plane nodes. Default
    /// `node-role.kubernetes.io/control-plane` (k3s sets it to `"true"`).
    pub control_plane_label: String,
    /// The control-plane taint (`key[=value]:Effect`) the mutation makes the
    /// pod tolerate. Default `node-role.kubernetes.io/control-plane:NoSchedule`.
    pub control_plane_taint: String,
    /// Whether to add the missing affinity and toleration. Default `true`.
    pub mutate: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespaces: Vec::new(),
            selectors: Vec::new(),
            exempt_selectors: Vec::new(),
            control_plane_label: ca::CONTROL_PLANE_LABEL.to_string(),
            control_plane_taint: DEFAULT_CONTROL_PLANE_TAINT.to_string(),
            mutate: true,
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
}

/// The policy.
pub struct SystemComponentsOffPools;

impl Policy for SystemComponentsOffPools {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "system-components-off-pools".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "System components (kube-system and configured namespaces or selectors) must \
                          be pinned to control-plane nodes and must not tolerate autoscaler pool \
                          taints; adds the control-plane affinity and toleration when missing."
                    .into(),
            kinds: autoscaler_isolation_common::pod_kinds(),
            mutating: true,
            rules: vec![
                rule(
                    MISSING_CONTROL_PLANE_AFFINITY,
                    "A system component's nodeSelector and required node affinity neither pin it to \
                     control-plane nodes nor keep it off every autoscaler pool.",
                ),
                rule(
                    TOLERATES_POOL_TAINT,
                    "A system component tolerates an autoscaler pool's dedicated taint.",
                ),
            ],
            capabilities: vec![],
        }
    }

    fn validate(settings: &Settings) -> Result<(), String> {
        settings.scope().validate()?;
        if settings.control_plane_label.trim().is_empty() {
            return Err("controlPlaneLabel is empty".into());
        }
        Taint::parse(&settings.control_plane_taint)
            .map(|_| ())
            .ok_or_else(|| {
                format!(
                    "controlPlaneTaint {:?} is not key[=value]:Effect",
                    settings.control_plane_taint
                )
            })
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let Some(pod) = scope::covered_pod(review) else {
            return Decision::allow();
        };
        if !settings.scope().covers(review, pod) {
            return Decision::allow();
        }
        let pools = host.node_pools();
        if pools.is_empty() {
            return Decision::allow();
        }
        let eval = Evaluation {
            review,
            pod,
            settings,
            pools: &pools,
            object: raw::RawObject::new(host),
        };
        let mut patch = Patch::new();
        let mut violations = eval.check_affinity(&mut patch);
        violations.extend(eval.check_tolerations());
        Decision::from_violations(violations).with_patch(patch)
    }
}

/// One evaluation of a system component against the cluster's pools.
struct Evaluation<'a> {
    review: &'a Review,
    pod: &'a PodPlacement,
    settings: &'a Settings,
    pools: &'a [NodePool],
    object: raw::RawObject<'a>,
}

impl Evaluation<'_> {
    /// Rule `missing-control-plane-affinity`, fixed in `patch` where possible
    /// (the violation is reported either way), and the control-plane
    /// toleration added to a pod that is, or that the patch makes, pinned.
    fn check_affinity(&self, patch: &mut Patch) -> Vec<Violation> {
        let (pod, settings) = (self.pod, self.settings);
        let label = settings.control_plane_label.as_str();
        let reached = pools::reached_by_selection(self.pools, pod);
        let mut pinned = pools::pins_control_plane(pod, label);
        let mut violations = Vec::new();
        if !pinned && !reached.is_empty() {
            pinned = settings.mutate
                && mutation::pin_to_control_plane(patch, self.object.value(), pod, label);
            let mut message = affinity_message(self.review, pod, settings, &reached);
            if pinned {
                message.push_str(&describe::fixed_by_patch(&self.patch_summary()));
            }
            let path = tollgate_sdk::patch::pointer(&pod.template_path, &["spec", "affinity"]);
            violations.push(Violation::new(MISSING_CONTROL_PLANE_AFFINITY, message).at(path));
        }
        if pinned
            && settings.mutate
            && let Some(taint) = Taint::parse(&settings.control_plane_taint)
        {
            mutation::tolerate(patch, self.object.value(), pod, &taint);
        }
        violations
    }

    /// What the patch does for an unpinned pod, for the violation message.
    fn patch_summary(&self) -> String {
        let label = &self.settings.control_plane_label;
        match Taint::parse(&self.settings.control_plane_taint) {
            Some(taint) if !tolerated(&self.pod.tolerations, &taint) => format!(
                "add the required {label} affinity and a toleration of {}",
                self.settings.control_plane_taint
            ),
            _ => format!("add the required {label} affinity"),
        }
    }

    /// Rule `tolerates-pool-taint`: one violation per toleration that opens a pool.
    fn check_tolerations(&self) -> Vec<Violation> {
        let pod = self.pod;
        pools::pool_tolerations(pod, self.pools)
            .into_iter()
            .filter_map(|(index, opened)| {
                let toleration = pod.tolerations.get(index)?;
                let taints = opened
                    .iter()
                    .map(|pt| format!("{} of pool {}", pt.taint, pt.pool.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                let message = format!(
                    "{}: the toleration {} in {} tolerates the autoscaler pool taint {taints}, so the \
                     scheduler may place this system component on a pool node, where it blocks \
                     scale-down (UnmovableKubeSystemPod). Remove it; system components should tolerate \
                     only the control-plane taint (and CriticalAddonsOnly where control planes carry it).",
                    describe::subject(self.review),
                    describe::toleration(toleration),
                    describe::template_field(&pod.template_path, "spec.tolerations"),
                );
                let path = raw::toleration_pointer(self.object.value(), &pod.template_path, index);
                Some(Violation::new(TOLERATES_POOL_TAINT, message).at(path))
            })
            .collect()
    }
}

/// What is wrong with an unpinned system component and how to fix it.
fn affinity_message(
    review: &Review,
    pod: &PodPlacement,
    settings: &Settings,
    reached: &[&NodePool],
) -> String {
    let label = &settings.control_plane_label;
    let conflict = pod
        .required_node_affinity
        .iter()
        .any(|t| pools::term_excludes(t, label));
    let not_mutated = if conflict {
        format!(
            " A nodeSelectorTerm requires {label} to be absent, so it was not changed automatically."
        )
    } else {
        String::new()
    };
    format!(
        "{} is a system component ({}) but its nodeSelector and required node affinity let it be \
         scheduled onto autoscaler pool(s) {}. A kube-system pod without a PodDisruptionBudget on a \
         pool node blocks scale-down (UnmovableKubeSystemPod), so the pool never reaches zero. Add \
         {{key: {label}, operator: Exists}} to every term of {} (or create it), and tolerate the \
         control-plane taint {}.{not_mutated}",
        describe::subject(review),
        settings.scope().reason(review),
        describe::pool_names(reached.iter().copied()),
        describe::template_field(
            &pod.template_path,
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        ),
        settings.control_plane_taint,
    )
}

tollgate_sdk::export_policy!(SystemComponentsOffPools);
