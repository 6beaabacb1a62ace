//! Test guest `echo`: a well-behaved policy whose violations describe what it
//! saw, so tests can check the review record and every host import end to end.
//!
//! Each fact is one violation (rule, message):
//!
//! | rule | message |
//! |---|---|
//! | `seen-review` | `<Kind> <namespace/name> <OPERATION>` |
//! | `seen-request-uid` | the admission request's uid (only for admission requests) |
//! | `seen-pools` | `pools=<n>: <name>(<source>,<min>..<max>), ...` from `host.node-pools` |
//! | `seen-pods` | `pods=<n>: <name>,...` (sorted) from `host.list-objects` of Pods in the review's namespace, or `list error: <message>` |
//! | `seen-namespace` | `namespace <ns> labels <json>` from `host.get-object`, or `namespace <ns> absent` |
//! | `seen-old-object` | `old object present` or `old object absent` |
//!
//! Settings (JSON): `allow` reports the facts as warnings (`<rule>: <message>`)
//! and allows; `podSelector` is the label selector for the Pod listing;
//! `patch` adds the annotation `tollgate.dev/echo: seen`; `badPatch` returns a
//! patch whose path does not exist in the object.

use serde::Deserialize;
use tollgate_sdk::patch::pointer;
use tollgate_sdk::serde_json::{Value, json};
use tollgate_sdk::{Decision, Host, HostExt, Metadata, Patch, Policy, Review, RuleInfo, Violation};

/// The policy.
pub struct Echo;

/// The echo guest's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Report facts as warnings and allow.
    pub allow: bool,
    /// Label selector for the Pod listing.
    pub pod_selector: Option<String>,
    /// Add an annotation.
    pub patch: bool,
    /// Return a patch that does not apply.
    pub bad_patch: bool,
}

/// The annotation the `patch` setting adds.
const ANNOTATION: &str = "tollgate.dev/echo";

const RULES: &[&str] = &[
    "seen-review",
    "seen-request-uid",
    "seen-pools",
    "seen-pods",
    "seen-namespace",
    "seen-old-object",
];

fn facts(review: &Review, settings: &Settings, host: &dyn Host) -> Vec<(&'static str, String)> {
    let operation = tollgate_sdk::serde_json::to_value(review.operation)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut facts = vec![(
        "seen-review",
        format!("{} {} {operation}", review.kind, review.display_name()),
    )];
    if let Some(request) = &review.request {
        facts.push(("seen-request-uid", request.uid.clone()));
    }
    let pools = host.node_pools();
    let described: Vec<String> = pools
        .iter()
        .map(|p| format!("{}({},{}..{})", p.name, p.source, p.min_size, p.max_size))
        .collect();
    facts.push((
        "seen-pools",
        format!("pools={}: {}", pools.len(), described.join(", ")),
    ));
    let namespace = (!review.namespace.is_empty()).then_some(review.namespace.as_str());
    let pods = match host.list("v1", "Pod", namespace, settings.pod_selector.as_deref()) {
        Ok(docs) => {
            let mut names: Vec<String> = docs
                .iter()
                .filter_map(|d| tollgate_sdk::serde_json::from_str::<Value>(d).ok())
                .filter_map(|o| {
                    o.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            names.sort();
            format!("pods={}: {}", names.len(), names.join(","))
        }
        Err(e) => format!("list error: {e}"),
    };
    facts.push(("seen-pods", pods));
    let ns = match host.get_object("v1", "Namespace", "", &review.namespace) {
        Some(object) => format!(
            "namespace {} labels {}",
            review.namespace,
            object
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}))
        ),
        None => format!("namespace {} absent", review.namespace),
    };
    facts.push(("seen-namespace", ns));
    let old = if host.old_object_json().is_some() {
        "old object present"
    } else {
        "old object absent"
    };
    facts.push(("seen-old-object", old.to_string()));
    facts
}

fn patch(settings: &Settings, host: &dyn Host) -> Patch {
    let mut patch = Patch::new();
    if settings.patch {
        if host
            .object()
            .pointer("/metadata/annotations")
            .is_some_and(Value::is_object)
        {
            patch.add(
                pointer("/metadata/annotations", &[ANNOTATION]),
                json!("seen"),
            );
        } else {
            patch.add("/metadata/annotations", json!({ ANNOTATION: "seen" }));
        }
    }
    if settings.bad_patch {
        patch.replace("/spec/tollgate-missing/field", json!(1));
    }
    patch
}

impl Policy for Echo {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "echo".into(),
            version: "0.1.0".into(),
            description: "reports what it saw".into(),
            kinds: vec!["*".into()],
            mutating: true,
            rules: RULES
                .iter()
                .map(|r| RuleInfo {
                    id: r.to_string(),
                    description: String::new(),
                })
                .collect(),
            capabilities: vec![],
        }
    }

    fn evaluate(review: &Review, settings: &Settings, host: &dyn Host) -> Decision {
        let facts = facts(review, settings, host);
        let decision = if settings.allow {
            facts
                .into_iter()
                .fold(Decision::allow(), |d, (rule, message)| {
                    d.warn(format!("{rule}: {message}"))
                })
        } else {
            Decision::from_violations(
                facts
                    .into_iter()
                    .map(|(rule, message)| Violation::new(rule, message))
                    .collect(),
            )
        };
        decision.with_patch(patch(settings, host))
    }
}

tollgate_sdk::export_policy!(Echo);
