//! Kubernetes-native policies loaded unchanged, through the real binary:
//! a ValidatingAdmissionPolicy with params, variables, messageExpression and
//! audit annotations, bound by namespace (binding in the policy file or in
//! the `--context` snapshot); validation actions as modes; an unbound policy;
//! a MutatingAdmissionPolicy with JSONPatch and ApplyConfiguration mutations
//! under `eval --mutate`; and the same ValidatingAdmissionPolicy in `audit`.
//! The webhook cases are in admission.rs.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::util::{Eval, Sandbox, tollgate};

/// At most `params.data.maxReplicas` replicas for Deployments.
pub const REPLICA_LIMIT_VAP: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit
spec:
  failurePolicy: Fail
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  variables:
  - name: max
    expression: "int(params.data.maxReplicas)"
  validations:
  - expression: "object.spec.replicas <= variables.max"
    messageExpression: "'at most ' + string(variables.max) + ' replicas, got ' + string(object.spec.replicas)"
    reason: Invalid
  auditAnnotations:
  - key: replicas
    valueExpression: "string(object.spec.replicas)"
"#;

/// Binds `replica-limit` in namespaces labelled `env: prod` with `actions`.
pub fn replica_limit_binding(actions: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-prod
spec:
  policyName: replica-limit
  validationActions: {actions}
  paramRef:
    name: replica-limits
    parameterNotFoundAction: Deny
  matchResources:
    namespaceSelector:
      matchLabels:
        env: prod
"#
    )
}

/// Namespaces `prod` (env=prod) and `dev`, and the params in `prod`.
pub const CLUSTER: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {env: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: replica-limits, namespace: prod}
data: {maxReplicas: "3"}
"#;

/// A Deployment with `replicas` in `namespace`.
pub fn deployment(namespace: &str, name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    })
}

fn setup(sandbox: &Sandbox, actions: &str) -> (PathBuf, PathBuf) {
    let policy = sandbox.write(
        "vap.yaml",
        format!("{REPLICA_LIMIT_VAP}---\n{}", replica_limit_binding(actions)),
    );
    let cluster = sandbox.write("cluster/objects.yaml", CLUSTER);
    (policy, cluster)
}

#[test]
fn a_validating_admission_policy_with_params_judges_only_what_its_binding_selects() {
    let sandbox = Sandbox::new();
    let (policy, cluster) = setup(&sandbox, "[Deny]");
    let too_many = sandbox.write_json("prod-5.json", &deployment("prod", "web", 5));
    let (run, verdict) = Eval::new(&[&policy])
        .context(&cluster)
        .object(&too_many)
        .verdict();
    assert!(!verdict.allowed, "{}", run.stdout);
    let result = &verdict.results[0];
    assert_eq!(result.policy, "replica-limit");
    assert_eq!(result.violations[0].message, "at most 3 replicas, got 5");
    assert_eq!(
        result
            .annotations
            .get("replica-limit/replicas")
            .map(String::as_str),
        Some("5"),
        "audit annotation keys are prefixed with the policy name"
    );

    let fine = sandbox.write_json("prod-2.json", &deployment("prod", "web", 2));
    let (_, verdict) = Eval::new(&[&policy])
        .context(&cluster)
        .object(&fine)
        .verdict();
    assert!(verdict.allowed);
    assert_eq!(verdict.results.len(), 1, "the binding selects prod");
    assert!(verdict.results[0].violations.is_empty());

    let dev = sandbox.write_json("dev-5.json", &deployment("dev", "web", 5));
    let (_, verdict) = Eval::new(&[&policy])
        .context(&cluster)
        .object(&dev)
        .verdict();
    assert!(verdict.allowed);
    assert!(
        verdict.results.is_empty(),
        "the binding's namespaceSelector does not select dev: {:?}",
        verdict.results
    );
}

#[test]
fn missing_params_deny_through_the_failure_policy() {
    let sandbox = Sandbox::new();
    let (policy, _) = setup(&sandbox, "[Deny]");
    // prod exists and is selected, but holds no replica-limits ConfigMap.
    let cluster = sandbox.write(
        "bare/ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {env: prod}}\n",
    );
    let object = sandbox.write_json("prod-1.json", &deployment("prod", "web", 1));
    let (_, verdict) = Eval::new(&[&policy])
        .context(&cluster)
        .object(&object)
        .verdict();
    assert!(!verdict.allowed);
    let error = verdict.results[0].error.as_ref().expect("a fault");
    assert!(
        error.message.contains("no params found") && error.message.contains("replica-limit-prod"),
        "{}",
        error.message
    );
}

#[test]
fn validation_actions_are_modes_and_an_unbound_policy_judges_nothing() {
    let sandbox = Sandbox::new();
    let (policy, cluster) = setup(&sandbox, "[Warn, Audit]");
    let object = sandbox.write_json("prod-5.json", &deployment("prod", "web", 5));
    let (_, verdict) = Eval::new(&[&policy])
        .context(&cluster)
        .object(&object)
        .verdict();
    assert!(verdict.allowed, "Warn allows");
    assert!(
        verdict.results[0]
            .warnings
            .iter()
            .any(|w| w.contains("at most 3 replicas")),
        "{:?}",
        verdict.results[0].warnings
    );

    let unbound = sandbox.write("unbound.yaml", REPLICA_LIMIT_VAP);
    let (run, verdict) = Eval::new(&[&unbound])
        .context(&cluster)
        .object(&object)
        .verdict();
    assert!(verdict.allowed && verdict.results.is_empty());
    assert!(
        run.stderr.contains("replica-limit") && run.stderr.contains("has no binding"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_binding_in_the_context_snapshot_binds_a_policy_file() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write("vap.yaml", REPLICA_LIMIT_VAP);
    let cluster = sandbox.write("cluster/objects.yaml", CLUSTER);
    sandbox.write("cluster/binding.yaml", replica_limit_binding("[Deny]"));
    let object = sandbox.write_json("prod-4.json", &deployment("prod", "web", 4));
    let (_, verdict) = Eval::new(&[&policy])
        .context(cluster.parent().expect("a directory"))
        .object(&object)
        .verdict();
    assert!(!verdict.allowed);
    assert_eq!(
        verdict.results[0].violations[0].message,
        "at most 3 replicas, got 4"
    );
}

/// Labels Deployments with a JSONPatch and annotates them with an apply configuration.
pub const MAP: &str = r#"apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicy
metadata:
  name: stamp
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["deployments"]
  matchConditions:
  - name: not-stamped
    expression: "!has(object.metadata.annotations) || !('example.com/stamped' in object.metadata.annotations)"
  reinvocationPolicy: IfNeeded
  mutations:
  - patchType: JSONPatch
    jsonPatch:
      expression: >
        [JSONPatch{op: "add", path: "/metadata/labels/" + jsonpatch.escapeKey("example.com/team"), value: "platform"}]
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{metadata: Object.metadata{annotations: {"example.com/stamped": "true"}},
               spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{
                 containers: [Object.spec.template.spec.containers{name: "c", imagePullPolicy: "Always"}]}}}}
---
apiVersion: admissionregistration.k8s.io/v1beta1
kind: MutatingAdmissionPolicyBinding
metadata:
  name: stamp-all
spec:
  policyName: stamp
"#;

#[test]
fn a_mutating_admission_policy_patches_under_eval_mutate() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write("map.yaml", MAP);
    let object = sandbox.write_json("web.json", &deployment("dev", "web", 1));
    let (run, verdict) = Eval::new(&[&policy])
        .object(&object)
        .arg("--mutate")
        .verdict();
    assert!(verdict.allowed, "{}", run.stdout);
    let mutated = verdict.mutated.expect("--mutate prints the mutated object");
    assert_eq!(
        mutated["metadata"]["labels"]["example.com/team"],
        "platform"
    );
    assert_eq!(
        mutated["metadata"]["labels"]["app"], "web",
        "labels are kept"
    );
    assert_eq!(
        mutated["metadata"]["annotations"]["example.com/stamped"],
        "true"
    );
    let containers = &mutated["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers,
        &json!([{"name": "c", "image": "nginx", "imagePullPolicy": "Always"}]),
        "containers merge by name"
    );
    let patch = verdict.results[0]
        .patch
        .as_ref()
        .expect("the patch is reported");
    assert!(
        patch.as_array().is_some_and(|ops| !ops.is_empty()),
        "{patch}"
    );
}

#[test]
fn audit_judges_the_snapshot_with_a_validating_admission_policy() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write("vap.yaml", REPLICA_LIMIT_VAP);
    sandbox.write("snap/objects.yaml", CLUSTER);
    sandbox.write("snap/binding.yaml", replica_limit_binding("[Deny]"));
    let snapshot = sandbox.write_json(
        "snap/deployments.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": [
            deployment("prod", "big", 6), deployment("prod", "small", 1), deployment("dev", "big", 9)]}),
    );
    let out = tollgate(
        &[
            "audit",
            "--snapshot",
            &snapshot
                .parent()
                .expect("a directory")
                .display()
                .to_string(),
            "--policy",
            &policy.display().to_string(),
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(out.code, 1, "a finding: {}\n{}", out.stdout, out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    let findings: Vec<(String, String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["policy"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{}/{}",
                    f["resource"]["namespace"].as_str().unwrap_or_default(),
                    f["resource"]["name"].as_str().unwrap_or_default()
                ),
                f["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].0, "replica-limit");
    assert_eq!(findings[0].1, "prod/big");
    assert!(
        findings[0].2.contains("at most 3 replicas, got 6"),
        "{findings:?}"
    );
}

#[test]
fn a_bad_native_policy_is_one_clear_error() {
    let sandbox = Sandbox::new();
    let broken = sandbox.write(
        "broken.yaml",
        REPLICA_LIMIT_VAP.replace(
            "object.spec.replicas <= variables.max",
            "object.spec.replicas <=",
        ),
    );
    let object = sandbox.write_json("d.json", &deployment("prod", "web", 1));
    Eval::new(&[&broken])
        .object(&object)
        .run()
        .assert_bad_input(&[
            "broken.yaml",
            "replica-limit",
            "spec.validations[0].expression",
        ]);
    let typo = sandbox.write(
        "typo.yaml",
        REPLICA_LIMIT_VAP.replace("auditAnnotations:", "auditAnnotation:"),
    );
    Eval::new(&[&typo])
        .object(&object)
        .run()
        .assert_bad_input(&[
            "typo.yaml",
            "ValidatingAdmissionPolicy replica-limit",
            "auditAnnotation",
        ]);
}

/// `replica-limit` bound to the params labelled `tier: limits`, with `action`
/// when none is found.
fn selector_binding(action: &str) -> String {
    replica_limit_binding("[Deny]").replace(
        "    name: replica-limits\n    parameterNotFoundAction: Deny\n",
        &format!(
            "    selector:\n      matchLabels:\n        tier: limits\n    parameterNotFoundAction: {action}\n"
        ),
    )
}

#[test]
fn params_by_selector_run_the_policy_once_per_param_and_none_found_can_allow() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write(
        "vap.yaml",
        format!("{REPLICA_LIMIT_VAP}---\n{}", selector_binding("Allow")),
    );
    let cluster = sandbox.write(
        "cluster/objects.yaml",
        format!(
            "{CLUSTER}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a, namespace: prod, labels: {{tier: limits}}}}\ndata: {{maxReplicas: \"4\"}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b, namespace: prod, labels: {{tier: limits}}}}\ndata: {{maxReplicas: \"2\"}}\n"
        ),
    );
    let object = sandbox.write_json("prod-3.json", &deployment("prod", "web", 3));
    let (_, verdict) = Eval::new(&[&policy])
        .context(&cluster)
        .object(&object)
        .verdict();
    let messages: Vec<&str> = verdict.results[0]
        .violations
        .iter()
        .map(|v| v.message.as_str())
        .collect();
    assert_eq!(
        messages,
        ["at most 2 replicas, got 3"],
        "only param b is exceeded"
    );

    // No labelled params: Allow lets the request through unjudged.
    let bare = sandbox.write(
        "bare/ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {env: prod}}\n",
    );
    let (_, verdict) = Eval::new(&[&policy])
        .context(&bare)
        .object(&object)
        .verdict();
    assert!(
        verdict.allowed && verdict.results[0].error.is_none(),
        "{verdict:?}"
    );
}

#[test]
fn kyverno_only_libraries_and_contradictory_actions_are_refused_by_name() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("d.json", &deployment("prod", "web", 1));
    let kyverno = sandbox.write(
        "vpol.yaml",
        r#"apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: lookup}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  validations:
  - expression: "resource.Get('v1', 'configmaps', 'default', 'x').data.ok == 'yes'"
"#,
    );
    Eval::new(&[&kyverno])
        .object(&object)
        .run()
        .assert_bad_input(&[
            "vpol.yaml",
            "ValidatingPolicy lookup",
            "Kyverno-only",
            "resource",
        ]);
    let both = sandbox.write(
        "both.yaml",
        format!(
            "{REPLICA_LIMIT_VAP}---\n{}",
            replica_limit_binding("[Deny, Warn]")
        ),
    );
    Eval::new(&[&both])
        .object(&object)
        .run()
        .assert_bad_input(&["both.yaml", "replica-limit-prod", "Deny and Warn"]);
}

#[test]
fn a_kyverno_validating_policy_judges_pods_and_pod_templates() {
    let sandbox = Sandbox::new();
    let policy = sandbox.write(
        "vpol.yaml",
        r#"apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata: {name: no-host-network}
spec:
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}
  validations:
  - expression: "!has(object.spec.hostNetwork) || !object.spec.hostNetwork"
    message: hostNetwork is not allowed
"#,
    );
    let mut host = deployment("prod", "web", 1);
    host["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    let controller = sandbox.write_json("deploy.json", &host);
    let (_, verdict) = Eval::new(&[&policy]).object(&controller).verdict();
    assert!(
        !verdict.allowed,
        "autogen judges the Deployment's pod template"
    );
    assert_eq!(
        verdict.results[0].violations[0].message,
        "hostNetwork is not allowed"
    );
    let pod = sandbox.write_json(
        "pod.json",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "prod"},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    );
    let (_, verdict) = Eval::new(&[&policy]).object(&pod).verdict();
    assert!(verdict.allowed && verdict.results.len() == 1);
}
