//! The operator's per-policy selection (`match`, `matchConditions` in the
//! settings file): a policy judges only the requests it selects, in `eval`
//! (objects and AdmissionReviews) and in `audit`; a condition that errors is
//! decided by the failure policy; a malformed selection is bad input.

use serde_json::{Value, json};

use crate::util::{Sandbox, tollgate};

const POLICY: &str = "no-blanket-tolerations";

/// A Pod in `team-a` that tolerates every taint: the bundled pack denies it.
fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "team-a", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "tolerations": [{"operator": "Exists"}]}
    })
}

/// The same Pod before it tolerated every taint.
fn untolerating() -> Value {
    let mut pod = pod();
    pod["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("tolerations");
    pod
}

fn namespace(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": labels}})
}

/// The pack's result for [`POLICY`] on `input` (`--object` or `--request`),
/// with `settings` (YAML for POLICY's entry) and an optional context.
fn judge(
    sandbox: &Sandbox,
    settings: &str,
    input: (&str, Value),
    context: Option<Value>,
) -> Option<Value> {
    let settings = sandbox.write(
        "settings.yaml",
        format!("policies:\n  {POLICY}:\n{}", indent(settings)),
    );
    let object = sandbox.write_json("input.json", &input.1);
    let mut args = vec![
        "eval".to_string(),
        "--policy".into(),
        "autoscaler-isolation".into(),
        "--settings".into(),
        settings.display().to_string(),
        input.0.into(),
        object.display().to_string(),
        "-o".into(),
        "json".into(),
    ];
    if let Some(context) = context {
        let path = sandbox.write_json(
            "context.json",
            &json!({"apiVersion": "v1", "kind": "List", "items": [context]}),
        );
        args.extend(["--context".into(), path.display().to_string()]);
    }
    let run = tollgate(&args, None);
    assert!(
        run.code == 0 || run.code == 1,
        "eval failed: {}",
        run.stderr
    );
    let out = run.json();
    out["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["policy"] == POLICY)
        .cloned()
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn denied(result: &Option<Value>) -> bool {
    result.as_ref().is_some_and(|r| r["allowed"] == false)
}

#[test]
fn without_a_selection_the_policy_judges_every_pod() {
    let sandbox = Sandbox::new();
    assert!(denied(&judge(
        &sandbox,
        "mode: enforce",
        ("--object", pod()),
        None
    )));
}

#[test]
fn a_namespace_selector_reads_the_namespace_labels_from_the_cluster_view() {
    let sandbox = Sandbox::new();
    let settings = "match:\n  namespaceSelector:\n    matchLabels: {tier: platform}";
    let outside = judge(
        &sandbox,
        settings,
        ("--object", pod()),
        Some(namespace(json!({"tier": "apps"}))),
    );
    assert_eq!(
        outside, None,
        "a namespace the selector does not select is not judged"
    );
    let inside = judge(
        &sandbox,
        settings,
        ("--object", pod()),
        Some(namespace(json!({"tier": "platform"}))),
    );
    assert!(denied(&inside), "{inside:?}");
}

#[test]
fn an_object_selector_and_match_conditions_narrow_the_policy() {
    let sandbox = Sandbox::new();
    let by_label = "match:\n  objectSelector:\n    matchExpressions: [{key: app, operator: NotIn, values: [web]}]";
    assert_eq!(judge(&sandbox, by_label, ("--object", pod()), None), None);
    let by_cel = "matchConditions:\n  - name: not-team-a\n    expression: \"object.metadata.namespace != 'team-a'\"";
    assert_eq!(judge(&sandbox, by_cel, ("--object", pod()), None), None);
    let other = "matchConditions:\n  - name: not-team-b\n    expression: \"object.metadata.namespace != 'team-b'\"";
    assert!(denied(&judge(&sandbox, other, ("--object", pod()), None)));
}

#[test]
fn operations_in_resource_rules_select_admission_requests() {
    let sandbox = Sandbox::new();
    let settings = "match:\n  resourceRules:\n    - {apiGroups: [apps], apiVersions: [\"*\"], resources: [deployments], operations: [UPDATE]}";
    let deployment = |pod: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": pod["metadata"], "spec": pod["spec"]}}
        })
    };
    let review = |operation: &str| {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "1", "operation": operation, "namespace": "team-a", "name": "web",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "userInfo": {"username": "someone"},
                // The UPDATE adds the blanket toleration (the pack judges changes).
                "object": deployment(pod()),
                "oldObject": if operation == "UPDATE" { deployment(untolerating()) } else { Value::Null }
            }
        })
    };
    assert!(denied(&judge(
        &sandbox,
        "mode: enforce",
        ("--request", review("CREATE")),
        None
    )));
    assert_eq!(
        judge(&sandbox, settings, ("--request", review("CREATE")), None),
        None,
        "a CREATE is not an UPDATE"
    );
    assert!(denied(&judge(
        &sandbox,
        settings,
        ("--request", review("UPDATE")),
        None
    )));
    // Outside admission (eval --object, audit) the request counts as a CREATE.
    assert_eq!(
        judge(&sandbox, settings, ("--object", deployment(pod())), None),
        None
    );
}

#[test]
fn a_match_condition_that_errors_is_decided_by_the_failure_policy() {
    let sandbox = Sandbox::new();
    let condition =
        "matchConditions:\n  - name: broken\n    expression: \"object.metadata.nothing == 'x'\"";
    let fail = judge(
        &sandbox,
        &format!("failurePolicy: Fail\n{condition}"),
        ("--object", pod()),
        None,
    )
    .expect("judged");
    assert_eq!(fail["allowed"], false, "{fail}");
    let message = fail["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("object.metadata.nothing"), "{fail}");
    let ignore = judge(
        &sandbox,
        &format!("failurePolicy: Ignore\n{condition}"),
        ("--object", pod()),
        None,
    )
    .expect("judged");
    assert_eq!(ignore["allowed"], true, "{ignore}");
}

#[test]
fn a_malformed_selection_is_bad_input_naming_the_file_and_policy() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod());
    for entry in [
        "match:\n  namespaceSelector:\n    matchExpressions: [{key: tier, operator: Near}]",
        "matchConditions:\n  - name: bad\n    expression: \"object.(\"",
    ] {
        let settings = sandbox.write(
            "settings.yaml",
            format!("policies:\n  {POLICY}:\n{}", indent(entry)),
        );
        tollgate(
            &[
                "eval",
                "--policy",
                "autoscaler-isolation",
                "--settings",
                &settings.display().to_string(),
                "--object",
                &object.display().to_string(),
            ],
            None,
        )
        .assert_bad_input(&["settings.yaml", POLICY]);
    }
}

#[test]
fn audit_applies_the_selection_too() {
    let sandbox = Sandbox::new();
    let demo = crate::util::workspace().join("examples/clusters/kube-hetzner");
    let audit = |settings: Option<&str>| {
        let mut args = vec![
            "audit".to_string(),
            "--snapshot".into(),
            demo.display().to_string(),
            "-o".into(),
            "json".into(),
        ];
        if let Some(settings) = settings {
            let path = sandbox.write("audit-settings.yaml", settings);
            args.extend(["--settings".into(), path.display().to_string()]);
        }
        let run = tollgate(&args, None);
        assert!(
            run.code == 0 || run.code == 1,
            "audit failed: {}",
            run.stderr
        );
        run.json()["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["policy"] == "system-components-off-pools")
            .count()
    };
    let all = audit(None);
    assert!(all > 0, "the demo has system-components-off-pools findings");
    let none = audit(Some(
        "policies:\n  system-components-off-pools:\n    match:\n      namespaceSelector:\n        matchLabels: {kubernetes.io/metadata.name: nowhere}\n",
    ));
    assert_eq!(
        none, 0,
        "a namespace selector that selects no namespace leaves no findings"
    );
}
