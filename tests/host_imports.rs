//! The host imports a WASM policy sees, checked end to end with the `echo`
//! guest: node pools discovered from a `--context` snapshot (the
//! cluster-autoscaler Deployment's `--nodes` flags), `list-objects` by
//! namespace and label selector, `get-object`, `old-object-json`, and, without
//! a context, the preset pool with the evaluator's preset warning.

use std::sync::Arc;

use serde_json::json;
use tollgate::cluster::{ClusterView, Snapshot};
use tollgate::evaluator::PRESET_POOLS_WARNING;

use crate::util::{
    Eval, Guest, ResultExt, Sandbox, VerdictExt, admission_review, load, no_context, pod, review,
};

/// Run `echo` (allowing, with `settings`) on a Pod in `team` with
/// [`Sandbox::write_cluster`] as context.
fn echo_in_cluster(settings: serde_json::Value) -> tollgate::decision::PolicyResult {
    let sandbox = Sandbox::new();
    let context = sandbox.write_cluster();
    let object = sandbox.write_json("pod.json", &pod("team", "new"));
    let mut all = json!({"allow": true});
    all.as_object_mut()
        .expect("map")
        .extend(settings.as_object().expect("settings map").clone());
    let settings = sandbox.write_json("settings.json", &all);
    let (_, verdict) = Eval::new(&[Guest::Echo.arg()])
        .settings(&settings)
        .context(&context)
        .object(&object)
        .verdict();
    verdict.result("echo").clone()
}

#[test]
fn pools_are_discovered_from_the_context() {
    let echo = echo_in_cluster(json!({}));
    assert_eq!(
        echo.fact("seen-pools"),
        "pools=1: k3s-batman(cluster-autoscaler,0..3)"
    );
    assert!(
        !echo.warnings.iter().any(|w| w == PRESET_POOLS_WARNING),
        "no preset with a context: {echo:#?}"
    );
}

#[test]
fn objects_are_listed_by_namespace() {
    let echo = echo_in_cluster(json!({}));
    assert_eq!(
        echo.fact("seen-pods"),
        "pods=3: db-1,web-1,web-2",
        "only Pods of the review's namespace"
    );
}

#[test]
fn objects_are_listed_by_label_selector() {
    for (selector, expected) in [
        ("app=web", "pods=2: web-1,web-2"),
        ("app!=web", "pods=1: db-1"),
        ("app in (db,cache)", "pods=1: db-1"),
        ("app=web,tier", "pods=1: web-2"),
        ("!tier", "pods=2: db-1,web-1"),
    ] {
        let echo = echo_in_cluster(json!({"podSelector": selector}));
        assert_eq!(echo.fact("seen-pods"), expected, "selector {selector:?}");
    }
}

#[test]
fn an_invalid_label_selector_is_an_error_the_policy_sees() {
    let echo = echo_in_cluster(json!({"podSelector": "app in (web"}));
    assert_eq!(
        echo.error, None,
        "a bad selector is not a fault of the policy"
    );
    assert!(
        echo.fact("seen-pods").starts_with("list error:"),
        "{echo:#?}"
    );
}

#[test]
fn get_object_reads_the_namespace() {
    let echo = echo_in_cluster(json!({}));
    assert_eq!(
        echo.fact("seen-namespace"),
        r#"namespace team labels {"tenant":"blue"}"#
    );
}

#[test]
fn old_object_is_visible_only_on_update() {
    let sandbox = Sandbox::new();
    let old = pod("team", "web-1");
    let mut new = old.clone();
    new["metadata"]["labels"]["version"] = json!("2");
    let update = sandbox.write_json(
        "update.json",
        &admission_review("u-1", "UPDATE", "team", new.clone(), Some(old)),
    );
    let (_, verdict) = Eval::new(&[Guest::Echo.arg()]).request(&update).verdict();
    assert_eq!(
        verdict.result("echo").fact("seen-old-object"),
        "old object present"
    );

    let object = sandbox.write_json("pod.json", &new);
    let (_, verdict) = Eval::new(&[Guest::Echo.arg()]).object(&object).verdict();
    assert_eq!(
        verdict.result("echo").fact("seen-old-object"),
        "old object absent"
    );
}

#[test]
fn without_context_the_preset_pool_is_assumed_and_flagged() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let (_, verdict) = Eval::new(&[Guest::Echo.arg()]).object(&object).verdict();
    let echo = verdict.result("echo");
    assert_eq!(echo.fact("seen-pools"), "pools=1: autoscaler(preset,0..0)");
    assert_eq!(
        echo.warnings
            .iter()
            .filter(|w| *w == PRESET_POOLS_WARNING)
            .count(),
        1,
        "{echo:#?}"
    );
    assert_eq!(echo.fact("seen-pods"), "pods=0: ", "no context, no objects");
}

/// The same lookups through the library: a `Snapshot` as the cluster view.
#[test]
fn library_snapshot_is_the_cluster_view() {
    let sandbox = Sandbox::new();
    let snapshot = Snapshot::load(&sandbox.write_cluster()).expect("snapshot loads");
    assert!(snapshot.warnings().is_empty(), "{:?}", snapshot.warnings());
    let view: Arc<dyn ClusterView> = Arc::new(snapshot);
    let evaluator = load(&[Guest::Echo.wasm()], json!({"podSelector": "app=web"}));
    let verdict = evaluator.evaluate(&review(pod("team", "new")), &view);
    let echo = verdict.result("echo");
    assert_eq!(
        echo.fact("seen-pools"),
        "pools=1: k3s-batman(cluster-autoscaler,0..3)"
    );
    assert_eq!(echo.fact("seen-pods"), "pods=2: web-1,web-2");
    assert!(!echo.warnings.iter().any(|w| w == PRESET_POOLS_WARNING));

    let verdict = evaluator.evaluate(&review(pod("team", "new")), &no_context());
    let echo = verdict.result("echo");
    assert_eq!(echo.fact("seen-pools"), "pools=1: autoscaler(preset,0..0)");
    assert!(
        echo.warnings.iter().any(|w| w == PRESET_POOLS_WARNING),
        "{echo:#?}"
    );
}
