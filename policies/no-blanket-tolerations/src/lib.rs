//! `no-blanket-tolerations`: a non-DaemonSet pod must not carry a key-less
//! `operator: Exists` toleration.
//!
//! Such a toleration tolerates every taint (every taint of its effect, when it
//! names one): the autoscaler pools' dedicated taints, and cluster-autoscaler's
//! own `ToBeDeletedByClusterAutoscaler`, so the pod can land on, and come back
//! to, a node that is being drained (kubeone PR #2205 removed one from
//! metrics-server for this reason). DaemonSet and mirror pods are exempt: they
//! run on every node by design and never block scale-down. Operators can
//! exempt more by namespace or pod labels.
//!
//! Validation only; the CEL twin is `policy.cel.yaml`.

use autoscaler_isolation_common::scope::{self, SelectorSetting};
use autoscaler_isolation_common::{describe, raw, rule};
use serde::Deserialize;
use tollgate_sdk::{
    Decision, Host, Metadata, PodPlacement, Policy, Review, TaintEffect, Toleration, Violation,
};

/// Rule id: a key-less `Exists` toleration on a non-DaemonSet pod.
pub const BLANKET_TOLERATION: &str = "blanket-toleration";

/// Settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Namespaces whose pods may carry blanket tolerations. Default: none.
    pub exempt_namespaces: Vec<String>,
    /// Pod label selectors (`matchLabels`/`matchExpressions`) whose pods may
    /// carry blanket tolerations. Default: none.
    pub exempt_selectors: Vec<SelectorSetting>,
}

/// The policy.
pub struct NoBlanketTolerations;

impl Policy for NoBlanketTolerations {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "no-blanket-tolerations".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Non-DaemonSet pods must not tolerate every taint with a key-less Exists \
                          toleration: it lets them onto autoscaler pools and onto nodes \
                          cluster-autoscaler is deleting."
                .into(),
            kinds: autoscaler_isolation_common::pod_kinds(),
            mutating: false,
            rules: vec![rule(
                BLANKET_TOLERATION,
                "A non-DaemonSet pod has a toleration with operator Exists and no key, which \
                 tolerates every taint, ToBeDeletedByClusterAutoscaler and pool taints included.",
            )],
            capabilities: vec![],
        }
    }

    fn validate(settings: &Settings) -> Result<(), String> {
        scope::validate_names("exemptNamespaces", &settings.exempt_namespaces)?;
        scope::validate_selectors("exemptSelectors", &settings.exempt_selectors)
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let Some(pod) = scope::covered_pod(review) else {
            return Decision::allow();
        };
        if scope::exempt(
            review,
            pod,
            &settings.exempt_namespaces,
            &settings.exempt_selectors,
        ) {
            return Decision::allow();
        }
        let object = raw::RawObject::new(host);
        let violations = pod
            .tolerations
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_blanket())
            .map(|(i, t)| {
                Violation::new(BLANKET_TOLERATION, message(review, pod, t)).at(
                    raw::toleration_pointer(object.value(), &pod.template_path, i),
                )
            })
            .collect();
        Decision::from_violations(violations)
    }
}

/// What is wrong with a blanket toleration and how to fix it.
fn message(review: &Review, pod: &PodPlacement, t: &Toleration) -> String {
    let reach = match t.effect {
        None => "every taint, including autoscaler pool taints and ToBeDeletedByClusterAutoscaler".to_string(),
        Some(TaintEffect::NoSchedule) => {
            "every NoSchedule taint, including autoscaler pool taints and ToBeDeletedByClusterAutoscaler"
                .to_string()
        }
        Some(effect) => format!("every {} taint", effect.as_str()),
    };
    format!(
        "{}: the toleration with operator Exists and no key in {} tolerates {reach}, so its pods can be \
         scheduled onto autoscaler pool nodes and onto nodes cluster-autoscaler is draining. Replace it \
         with tolerations for the specific taints the pods need (for system components: key \
         node-role.kubernetes.io/control-plane, operator Exists, effect NoSchedule), or exempt the \
         workload with the policy's exemptNamespaces/exemptSelectors settings.",
        describe::subject(review),
        describe::template_field(&pod.template_path, "spec.tolerations"),
    )
}

tollgate_sdk::export_policy!(NoBlanketTolerations);

#[cfg(test)]
mod tests {
    use super::*;
    use autoscaler_isolation_common::fixtures::{
        self, every_non_daemonset_kind, metrics_server_template, object, rules,
    };
    use serde_json::{Value, json};
    use tollgate_sdk::testing::TestHost;

    fn with_blanket(mut template: Value) -> Value {
        if let Some(list) = template
            .pointer_mut("/spec/tolerations")
            .and_then(Value::as_array_mut)
        {
            list.push(json!({"operator": "Exists"}));
        }
        template
    }

    fn eval(object: Value, settings: Value) -> Decision {
        TestHost::new(object)
            .with_pools(vec![fixtures::batman_pool()])
            .evaluate::<NoBlanketTolerations>(settings)
    }

    #[test]
    fn k3s_metrics_server_is_allowed() {
        for obj in
            every_non_daemonset_kind("kube-system", "metrics-server", &metrics_server_template())
        {
            let d = eval(obj, json!({}));
            assert!(d.allowed, "{d:?}");
        }
    }

    #[test]
    fn blanket_toleration_is_denied_in_every_kind_with_its_path() {
        let template = with_blanket(metrics_server_template());
        for obj in every_non_daemonset_kind("kube-system", "metrics-server", &template) {
            let kind = obj["kind"].as_str().unwrap_or_default().to_string();
            let d = eval(obj, json!({}));
            assert!(!d.allowed, "{kind}");
            assert_eq!(rules(&d), vec![BLANKET_TOLERATION]);
            let path = d.violations[0].path.clone().unwrap_or_default();
            assert!(path.ends_with("/spec/tolerations/2"), "{kind}: {path}");
            assert!(
                d.violations[0]
                    .message
                    .contains("ToBeDeletedByClusterAutoscaler")
            );
        }
    }

    #[test]
    fn daemonsets_mirror_pods_and_exemptions_are_allowed() {
        let template = with_blanket(metrics_server_template());
        assert!(
            eval(
                object("DaemonSet", "kube-system", "kured", &template),
                json!({})
            )
            .allowed
        );
        let mut mirror = object("Pod", "kube-system", "etcd", &template);
        mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc"});
        assert!(eval(mirror, json!({})).allowed);
        let obj = object("Deployment", "monitoring", "agent", &template);
        assert!(eval(obj.clone(), json!({"exemptNamespaces": ["monitoring"]})).allowed);
        let by_label = json!({"exemptSelectors": [{"matchLabels": {"k8s-app": "metrics-server"}}]});
        assert!(eval(obj.clone(), by_label).allowed);
        assert!(!eval(obj, json!({"exemptNamespaces": ["other"]})).allowed);
    }

    #[test]
    fn an_effect_limited_blanket_toleration_still_counts() {
        let mut template = metrics_server_template();
        template["spec"]["tolerations"] = json!([{"operator": "Exists", "effect": "NoExecute"}]);
        let d = eval(object("StatefulSet", "default", "db", &template), json!({}));
        assert_eq!(rules(&d), vec![BLANKET_TOLERATION]);
        assert!(d.violations[0].message.contains("every NoExecute taint"));
    }

    #[test]
    fn settings_are_checked() {
        use tollgate_sdk::policy::load_settings;
        assert!(load_settings::<NoBlanketTolerations>(r#"{"exemptNamespace": []}"#).is_err());
        assert!(
            load_settings::<NoBlanketTolerations>(
                r#"{"exemptSelectors": [{"matchExpressions": [{"key": "a", "operator": "In"}]}]}"#
            )
            .is_err()
        );
        assert!(load_settings::<NoBlanketTolerations>("").is_ok());
    }
}
