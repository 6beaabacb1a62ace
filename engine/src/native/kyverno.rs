//! What is particular to Kyverno's ValidatingPolicy and MutatingPolicy: the
//! ValidatingPolicy's autogen (a Pod policy also judges the pod templates of
//! Deployments, StatefulSets, DaemonSets, Jobs, ReplicaSets and CronJobs),
//! `spec.evaluation` (admission, background), and the Kyverno-only CEL
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

/// Where a ValidatingPolicy runs (`spec.evaluation`): in admission, and in
/// the background (Tollgate: audit and `eval --object`). Both by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Evaluation {
    pub(super) admission: bool,
    pub(super) background: bool,
}

impl Evaluation {
    /// Read `spec.evaluation` (absent: both on).
    pub(super) fn of(spec: Option<&Value>) -> Self {
        let enabled = |path: &str| {
            spec.and_then(|e| e.pointer(path))
                .and_then(Value::as_bool)
                .unwrap_or(true)
        };
        Evaluation {
            admission: enabled("/admission/enabled"),
            background: enabled("/background/enabled"),
        }
    }

    /// Whether the policy runs for a review that is (or is not) an admission request.
    pub(super) fn runs(self, in_admission: bool) -> bool {
        if in_admission {
            self.admission
        } else {
            self.background
        }
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
    fn evaluation_switches_admission_and_background() {
        let background_only = serde_json::json!({"admission": {"enabled": false}});
        let e = Evaluation::of(Some(&background_only));
        assert!(!e.runs(true) && e.runs(false));
        assert!(Evaluation::of(None).runs(true));
    }

    #[test]
    fn autogen_is_on_unless_emptied() {
        assert!(autogen(None));
        assert!(!autogen(Some(
            &serde_json::json!({"podControllers": {"controllers": []}})
        )));
    }
}
