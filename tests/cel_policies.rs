//! CEL policy files (docs/cel-policies.md) through the CLI: allow and deny,
//! variables, matchConditions, messageExpression, `params` (operator settings
//! merged over `spec.settings`), `pod` as a controller's template, `int`
//! arithmetic, map-key membership, `pools` and `namespaceObject` from a
//! context, compile errors with line:column, runtime errors decided by the
//! failure policy, and the cost budget (refused at load when over budget for
//! every input, refused at evaluation for a large input).

use std::path::Path;

use serde_json::{Value, json};
use tollgate::decision::{FaultKind, Verdict};
use tollgate::evaluator::PRESET_POOLS_WARNING;

use crate::util::{Eval, ResultExt, Run, Sandbox, VerdictExt, admission_review};

/// A Deployment with `replicas` and labels.
fn deployment(namespace: &str, replicas: i64, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}
            }
        }
    })
}

/// A custom object whose `spec.items` has `n` integers.
fn widget(n: usize) -> Value {
    json!({
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {"items": (0..n).collect::<Vec<_>>()}
    })
}

/// Evaluate `policy` on `object` (written to the sandbox), optionally with settings.
fn judge(
    sandbox: &Sandbox,
    policy: &Path,
    object: &Value,
    settings: Option<Value>,
) -> (Run, Verdict) {
    let object = sandbox.write_json("object.json", object);
    let mut eval = Eval::new(&[policy]).object(&object);
    if let Some(settings) = settings {
        eval = eval.settings(sandbox.write_json("settings.json", &settings));
    }
    eval.verdict()
}

/// The first `:<line>:<column>` in `text`.
fn line_column(text: &str) -> Option<(u32, u32)> {
    text.match_indices(':').find_map(|(i, _)| {
        let mut parts = text[i + 1..].splitn(3, ':');
        let line = parts.next()?.parse().ok()?;
        let column: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some((line, column.parse().ok()?))
    })
}

const MAX_REPLICAS: &str = r#"  kinds: [Deployment]
  settings:
    maxReplicas: 5
    team: blue
  validations:
    - rule: max-replicas
      expression: "object.spec.replicas <= params.maxReplicas"
      messageExpression: "'team ' + params.team + ': ' + string(object.spec.replicas) + ' replicas, at most ' + string(params.maxReplicas)"
    - rule: named
      expression: "object.metadata.name != 'forbidden'"
"#;

#[test]
fn validations_allow_and_deny() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy("max-replicas", MAX_REPLICAS);
    let (run, verdict) = judge(
        &sandbox,
        &policy,
        &deployment("default", 3, json!({})),
        None,
    );
    run.assert_code(0);
    assert!(verdict.result("max-replicas").violations.is_empty());

    let (run, verdict) = judge(
        &sandbox,
        &policy,
        &deployment("default", 10, json!({})),
        None,
    );
    run.assert_code(1);
    let result = verdict.result("max-replicas");
    assert_eq!(result.violations.len(), 1, "{result:#?}");
    assert_eq!(result.violations[0].rule, "max-replicas");
    assert_eq!(
        result.violations[0].message, "team blue: 10 replicas, at most 5",
        "messageExpression"
    );

    let mut forbidden = deployment("default", 1, json!({}));
    forbidden["metadata"]["name"] = json!("forbidden");
    let (_, verdict) = judge(&sandbox, &policy, &forbidden, None);
    let violation = &verdict.result("max-replicas").violations[0];
    assert_eq!(violation.rule, "named");
    assert!(
        violation
            .message
            .contains("object.metadata.name != 'forbidden'"),
        "without a message, the expression: {violation:?}"
    );
}

#[test]
fn operator_settings_are_merged_over_spec_settings() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy("max-replicas", MAX_REPLICAS);
    let ten = deployment("default", 10, json!({}));
    let (run, _) = judge(&sandbox, &policy, &ten, Some(json!({"maxReplicas": 20})));
    run.assert_code(0);
    let (run, verdict) = judge(&sandbox, &policy, &ten, Some(json!({"maxReplicas": 8})));
    run.assert_code(1);
    assert_eq!(
        verdict.result("max-replicas").violations[0].message,
        "team blue: 10 replicas, at most 8",
        "the operator's maxReplicas, the file's team"
    );
    let per_policy = json!({"policies": {"max-replicas": {"settings": {"team": "red"}}}});
    let (_, verdict) = judge(&sandbox, &policy, &ten, Some(per_policy));
    assert_eq!(
        verdict.result("max-replicas").violations[0].message,
        "team red: 10 replicas, at most 5"
    );
}

#[test]
fn variables_are_computed_in_order() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "registry",
        r#"  variables:
    - name: image
      expression: "pod.spec.containers[0].image"
    - name: trusted
      expression: "variables.image.startsWith('registry.example.com/')"
  validations:
    - rule: trusted-registry
      expression: "variables.trusted"
      messageExpression: "'image ' + variables.image + ' is not from registry.example.com'"
"#,
    );
    let (_, verdict) = judge(
        &sandbox,
        &policy,
        &deployment("default", 1, json!({})),
        None,
    );
    let result = verdict.result("registry");
    assert_eq!(result.error, None, "{result:#?}");
    assert_eq!(
        result.violations[0].message,
        "image nginx is not from registry.example.com"
    );
}

#[test]
fn match_conditions_decide_whether_the_policy_applies() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "prod-only",
        r#"  matchConditions:
    - name: in-prod
      expression: "object.metadata.namespace == 'prod'"
  validations:
    - rule: never
      expression: "false"
      message: denied in prod
"#,
    );
    let (run, verdict) = judge(&sandbox, &policy, &deployment("dev", 1, json!({})), None);
    run.assert_code(0);
    assert!(verdict.result("prod-only").violations.is_empty());
    let (run, verdict) = judge(&sandbox, &policy, &deployment("prod", 1, json!({})), None);
    run.assert_code(1);
    assert_eq!(
        verdict.result("prod-only").violations[0].message,
        "denied in prod"
    );
}

#[test]
fn pod_is_the_template_of_a_controller_and_the_object_of_a_pod() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "pod-view",
        r#"  kinds: [Deployment, Pod]
  validations:
    - rule: template
      expression: "pod.spec.containers[0].image == 'nginx' && pod.metadata.labels.app == 'web'"
    - rule: pod-is-object-for-pods
      expression: "object.kind != 'Pod' || pod.metadata.name == object.metadata.name"
"#,
    );
    let (run, verdict) = judge(
        &sandbox,
        &policy,
        &deployment("default", 1, json!({})),
        None,
    );
    run.assert_code(0);
    assert_eq!(verdict.result("pod-view").error, None);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    judge(&sandbox, &policy, &pod, None).0.assert_code(0);
}

#[test]
fn json_integers_are_cel_ints() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "ints",
        r#"  kinds: [Deployment]
  validations:
    - rule: add
      expression: "object.spec.replicas + 1 == 4"
    - rule: negative
      expression: "object.spec.replicas - 5 == -2"
"#,
    );
    let (run, verdict) = judge(
        &sandbox,
        &policy,
        &deployment("default", 3, json!({})),
        None,
    );
    run.assert_code(0);
    let result = verdict.result("ints");
    assert_eq!(result.error, None, "{result:#?}");
    assert!(result.violations.is_empty(), "{result:#?}");
}

#[test]
fn label_keys_with_dots_and_slashes_are_map_keys() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "named-app",
        r#"  kinds: [Deployment]
  validations:
    - rule: app-name
      expression: "'app.kubernetes.io/name' in object.metadata.labels"
"#,
    );
    let labelled = deployment("default", 1, json!({"app.kubernetes.io/name": "web"}));
    judge(&sandbox, &policy, &labelled, None).0.assert_code(0);
    let (run, verdict) = judge(
        &sandbox,
        &policy,
        &deployment("default", 1, json!({"app": "web"})),
        None,
    );
    run.assert_code(1);
    assert_eq!(verdict.result("named-app").violations[0].rule, "app-name");
}

#[test]
fn pools_and_namespace_object_come_from_the_context() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "context",
        r#"  kinds: [Deployment]
  validations:
    - rule: pool
      expression: "pools.exists(p, p.name == 'k3s-batman' && p.maxSize == 3)"
    - rule: tenant
      expression: "namespaceObject != null && namespaceObject.metadata.labels.tenant == 'blue'"
"#,
    );
    let object = sandbox.write_json("object.json", &deployment("team", 1, json!({})));
    let (run, verdict) = Eval::new(&[&policy])
        .context(sandbox.write_cluster())
        .object(&object)
        .verdict();
    run.assert_code(0);
    let result = verdict.result("context");
    assert!(
        result.violations.is_empty() && result.error.is_none(),
        "{result:#?}"
    );
    assert!(!result.warnings.iter().any(|w| w == PRESET_POOLS_WARNING));

    let (run, verdict) = Eval::new(&[&policy]).object(&object).verdict();
    run.assert_code(1);
    let result = verdict.result("context");
    let rules: Vec<&str> = result.violations.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(
        rules,
        ["pool", "tenant"],
        "no context: the preset pool and no namespace"
    );
    assert!(
        result.warnings.iter().any(|w| w == PRESET_POOLS_WARNING),
        "{result:#?}"
    );
}

/// docs/cel-policies.md: for a DELETE `object` is null; as in Kubernetes,
/// `oldObject` is the object being deleted.
#[test]
fn on_delete_object_is_null_and_old_object_is_the_deleted_object() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "deletes",
        r#"  kinds: [Deployment]
  validations:
    - rule: object-is-null
      expression: "object == null"
    - rule: old-object-is-the-deleted-one
      expression: "oldObject != null && oldObject.metadata.name == 'web'"
    - rule: operation
      expression: "request.operation == 'DELETE'"
"#,
    );
    let review = admission_review(
        "d-1",
        "DELETE",
        "default",
        Value::Null,
        Some(deployment("default", 1, json!({}))),
    );
    let request = sandbox.write_json("review.json", &review);
    let (_, verdict) = Eval::new(&[&policy]).request(&request).verdict();
    let result = verdict.result("deletes");
    assert_eq!(result.error, None, "{result:#?}");
    assert!(result.violations.is_empty(), "{:#?}", result.violations);
}

#[test]
fn compile_error_names_the_file_and_expression_with_line_and_column() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "broken",
        "  validations:\n    - rule: ok\n      expression: \"true\"\n    - rule: broken\n      expression: \"object.spec.replicas >\"\n",
    );
    let object = sandbox.write_json("object.json", &deployment("default", 1, json!({})));
    let run = Eval::new(&[&policy]).object(&object).run();
    let file = policy.display().to_string();
    run.assert_bad_input(&[&file, "object.spec.replicas >", "validations[1]"]);
    let (line, column) = line_column(
        run.stderr_lines()[0]
            .split(&file)
            .nth(1)
            .unwrap_or_default(),
    )
    .unwrap_or_else(|| panic!("no line:column in {}", run.stderr));
    assert_eq!(line, 1, "{}", run.stderr);
    assert!(column > 0, "{}", run.stderr);
}

#[test]
fn runtime_error_is_a_fault_decided_by_the_failure_policy() {
    let sandbox = Sandbox::new();
    for (failure_policy, code) in [("Fail", 1), ("Ignore", 0)] {
        let policy = sandbox.write_cel_policy(
            "missing-key",
            &format!(
                "  kinds: [Deployment]\n  failurePolicy: {failure_policy}\n  validations:\n    - rule: strategy\n      expression: \"object.spec.strategy.type == 'Recreate'\"\n"
            ),
        );
        let (run, verdict) = judge(
            &sandbox,
            &policy,
            &deployment("default", 1, json!({})),
            None,
        );
        run.assert_code(code);
        let result = verdict.result("missing-key");
        assert_eq!(result.fault(), Some(FaultKind::Expression), "{result:#?}");
        let message = &result.error.as_ref().expect("fault").message;
        assert!(
            message.contains("missing-key") && message.contains("object.spec.strategy.type"),
            "{message}"
        );
        assert_eq!(
            result.warnings.iter().any(|w| w.contains("ignored")),
            failure_policy == "Ignore",
            "{result:#?}"
        );
    }
}

#[test]
fn an_expression_over_budget_for_every_input_is_refused_at_load() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "pathological",
        "  validations:\n    - expression: \"lists.range(1000).all(x, lists.range(1000).all(y, x + y >= 0))\"\n",
    );
    let object = sandbox.write_json("object.json", &deployment("default", 1, json!({})));
    let file = policy.display().to_string();
    Eval::new(&[&policy])
        .object(&object)
        .run()
        .assert_bad_input(&[&file, "lists.range(1000)", "budget"]);
}

#[test]
fn a_nested_comprehension_over_a_huge_list_is_refused_not_run() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write_cel_policy(
        "pairs",
        "  kinds: [Widget]\n  validations:\n    - rule: pairs\n      expression: \"object.spec.items.all(x, object.spec.items.all(y, x + y >= 0))\"\n",
    );
    let (run, verdict) = judge(&sandbox, &policy, &widget(5000), None);
    run.assert_code(1);
    let result = verdict.result("pairs");
    assert_eq!(result.fault(), Some(FaultKind::Budget), "{result:#?}");
    assert!(
        result
            .error
            .as_ref()
            .is_some_and(|f| f.message.contains("object.spec.items.all")),
        "{result:#?}"
    );

    let (run, verdict) = judge(&sandbox, &policy, &widget(10), None);
    run.assert_code(0);
    assert_eq!(
        verdict.result("pairs").error,
        None,
        "a small list is within budget"
    );
}

/// Match conditions spend from their own budget (2,500,000 in the API
/// server), smaller than the policy's (10,000,000): the same four
/// expressions fit as validations but not as match conditions.
#[test]
fn match_conditions_have_their_own_smaller_budget() {
    let sandbox = Sandbox::new();
    let scan = "object.spec.items.all(x, x >= 0)";
    let as_conditions = sandbox.write_cel_policy(
        "conditions",
        &format!(
            "  kinds: [Widget]\n  matchConditions:\n{}  validations:\n    - rule: ok\n      expression: \"true\"\n",
            (0..4)
                .map(|i| format!("    - name: c{i}\n      expression: \"{scan}\"\n"))
                .collect::<String>()
        ),
    );
    let as_validations = sandbox.write_cel_policy(
        "validations",
        &format!(
            "  kinds: [Widget]\n  validations:\n{}",
            (0..4)
                .map(|i| format!("    - rule: v{i}\n      expression: \"{scan}\"\n"))
                .collect::<String>()
        ),
    );
    let widget = widget(100_000);
    let (run, verdict) = judge(&sandbox, &as_conditions, &widget, None);
    run.assert_code(1);
    let result = verdict.result("conditions");
    assert_eq!(result.fault(), Some(FaultKind::Budget), "{result:#?}");
    assert!(
        result
            .error
            .as_ref()
            .is_some_and(|f| f.message.contains("match conditions")
                && f.message.contains("policy conditions")
                && f.message.contains(scan)),
        "{result:#?}"
    );
    let (run, _) = judge(&sandbox, &as_validations, &widget, None);
    run.assert_code(0);
}
