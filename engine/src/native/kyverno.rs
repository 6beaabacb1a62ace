//! What is particular to Kyverno's ValidatingPolicy: its autogen (a Pod
//! policy also judges the pod templates of Deployments, StatefulSets,
//! DaemonSets, Jobs, ReplicaSets and CronJobs), and the Kyverno-only CEL
//! libraries Tollgate does not provide, which make a policy unloadable.

use serde_json::Value;

/// Kyverno's own CEL libraries, by the variable or function they reference.
const KYVERNO_ONLY: &[&str] = &[
    "resource",
    "http",
    "globalContext",
    "imageData",
    "image",
    "generator",
    "json",
    "yaml",
    "x509",
    "random",
    "envoy",
];

/// Whether autogen is on: Kyverno's default, unless
/// `spec.autogen.podControllers.controllers` is set to an empty list.
pub(super) fn autogen(spec: Option<&Value>) -> bool {
    match spec.and_then(|a| a.pointer("/podControllers/controllers")) {
        Some(Value::Array(controllers)) => !controllers.is_empty(),
        _ => true,
    }
}

/// The first Kyverno-only library an expression uses.
pub(super) fn kyverno_only(sources: &[&str]) -> Option<&'static str> {
    let env = crate::cel::environment();
    for source in sources {
        let Ok(program) = env.compile(source) else {
            continue; // reported by the real compilation
        };
        let references = program.references();
        if let Some(name) = KYVERNO_ONLY
            .iter()
            .find(|n| references.has_variable(n) || references.has_function(n))
        {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_kyverno_only_libraries() {
        assert_eq!(
            kyverno_only(&["resource.Get('v1', 'configmaps', 'default', 'x').data"]),
            Some("resource")
        );
        assert_eq!(kyverno_only(&["object.spec.replicas > 1"]), None);
    }

    #[test]
    fn autogen_is_on_unless_emptied() {
        assert!(autogen(None));
        assert!(!autogen(Some(
            &serde_json::json!({"podControllers": {"controllers": []}})
        )));
    }
}
