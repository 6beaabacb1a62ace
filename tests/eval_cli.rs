//! The `tollgate eval` contract, through the real binary: the JSON shape of
//! `-o json`, the other output formats, exit codes (0 allowed, 1 denied, 2 bad
//! input or usage), `--object` from a file or standard input, `--request`
//! AdmissionReviews (a real Kubewarden sample read in place, and one built
//! around kubectl's output), `--settings`, `--mutate`, directories of
//! policies, the bundled pack, and clean one-line errors for bad input.
//!
//! Policies are the `echo` test guest and CEL files written per test; the
//! bundled pack is only checked for pack-independent behaviour.

use std::path::PathBuf;

use serde_json::{Value, json};
use tollgate::decision::{FaultKind, Verdict};

use crate::util::{
    Eval, Guest, ResultExt, Run, Sandbox, VerdictExt, admission_review, assert_echo_ran,
    external_dir, kubectl_deployment, pod, pool_tenancy_wasm, workspace,
};

/// A CEL policy that denies Deployments with more than `max` replicas.
fn replicas_policy(sandbox: &Sandbox, name: &str, max: u32) -> PathBuf {
    sandbox.write_cel_policy(
        name,
        &format!(
            "  kinds: [Deployment]\n  validations:\n    - rule: too-many-replicas\n      expression: \"object.spec.replicas <= {max}\"\n      message: at most {max} replicas\n"
        ),
    )
}

/// A Kubewarden AdmissionReview sample, read in place.
fn kubewarden_review(file: &str) -> PathBuf {
    let path = external_dir()
        .join("kubewarden/kwctl/tests/data")
        .join(file);
    assert!(
        path.is_file(),
        "{} is missing (set TOLLGATE_EXTERNAL_DIR)",
        path.display()
    );
    path
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON")
}

#[test]
fn json_output_follows_the_documented_contract() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let settings = sandbox.write_json("settings.json", &json!({"patch": true}));
    let run = Eval::new(&[Guest::Echo.arg()])
        .settings(&settings)
        .object(&object)
        .arg("-o")
        .arg("json")
        .run();
    run.assert_code(1);
    let out = run.json();
    assert_eq!(out["allowed"], json!(false));
    assert!(
        out.get("mutated").is_none(),
        "`mutated` is only present with --mutate: {out:#}"
    );
    let results = out["results"].as_array().expect("results is a list");
    assert_eq!(results.len(), 1, "{out:#}");
    let result = &results[0];
    assert_eq!(result["policy"], json!("echo"));
    assert_eq!(result["allowed"], json!(false));
    let violations = result["violations"]
        .as_array()
        .expect("violations is a list");
    assert!(!violations.is_empty());
    for violation in violations {
        assert!(
            violation["rule"].is_string() && violation["message"].is_string(),
            "{violation}"
        );
    }
    assert!(result["warnings"].is_array(), "{result:#}");
    assert!(
        result.get("error").is_some_and(Value::is_null),
        "error is present and null: {result:#}"
    );
    let patch = result["patch"]
        .as_array()
        .expect("patch is the policy's JSON Patch");
    assert_eq!(patch[0]["op"], json!("add"), "{patch:?}");
}

#[test]
fn exit_code_follows_the_verdict() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    Eval::new(&[Guest::Echo.arg()])
        .object(&object)
        .run()
        .assert_code(1);
    let allow = sandbox.write_json("allow.json", &json!({"allow": true}));
    Eval::new(&[Guest::Echo.arg()])
        .settings(&allow)
        .object(&object)
        .run()
        .assert_code(0);
}

#[test]
fn yaml_and_text_outputs_report_the_same_verdict() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let yaml = Eval::new(&[Guest::Echo.arg()])
        .object(&object)
        .arg("-o")
        .arg("yaml")
        .run();
    yaml.assert_code(1);
    let parsed: Value = serde_saphyr::from_str(&yaml.stdout).expect("-o yaml prints YAML");
    assert_eq!(parsed["allowed"], json!(false));
    assert_eq!(parsed["results"][0]["policy"], json!("echo"));

    let text = Eval::new(&[Guest::Echo.arg()]).object(&object).run();
    text.assert_code(1);
    assert!(text.stdout.contains("DENIED"), "{}", text.stdout);
    assert!(
        text.stdout.contains("echo") && text.stdout.contains("seen-review"),
        "{}",
        text.stdout
    );
}

#[test]
fn object_is_read_from_standard_input() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: piped\n  namespace: stdin-ns\nspec:\n  containers: [{name: c, image: nginx}]\n";
    let (_, verdict) = Eval::new(&[Guest::Echo.arg()])
        .object("-")
        .stdin(yaml)
        .verdict();
    assert_echo_ran(&verdict, "stdin-ns", "piped");
}

#[test]
fn mutate_applies_the_patch_and_prints_the_mutated_object() {
    let sandbox = Sandbox::new();
    let original = pod("default", "web");
    let object = sandbox.write_json("pod.json", &original);
    let settings = sandbox.write_json("settings.json", &json!({"allow": true, "patch": true}));
    let (run, verdict) = Eval::new(&[Guest::Echo.arg()])
        .settings(&settings)
        .object(&object)
        .arg("--mutate")
        .verdict();
    run.assert_code(0);
    let mutated = verdict.mutated.expect("--mutate prints the mutated object");
    assert_eq!(
        mutated["metadata"]["annotations"]["tollgate.dev/echo"],
        json!("seen")
    );
    assert_eq!(
        mutated["spec"], original["spec"],
        "only the patch changes the object"
    );
}

#[test]
fn a_policy_in_audit_mode_reports_its_patch_but_does_not_mutate() {
    let sandbox = Sandbox::new();
    let original = pod("default", "web");
    let object = sandbox.write_json("pod.json", &original);
    let settings = sandbox.write(
        "settings.yaml",
        "policies:\n  echo:\n    settings: {allow: true, patch: true}\n    mode: audit\n",
    );
    let (run, verdict) = Eval::new(&[Guest::Echo.arg()])
        .settings(&settings)
        .object(&object)
        .arg("--mutate")
        .verdict();
    run.assert_code(0);
    assert!(verdict.results[0].patch.is_some(), "the patch is reported");
    assert_eq!(
        verdict.mutated,
        Some(original),
        "an audit-mode policy never changes the object"
    );
}

#[test]
fn a_patch_that_does_not_apply_is_a_bad_output_fault() {
    let sandbox = Sandbox::new();
    let original = pod("default", "web");
    let object = sandbox.write_json("pod.json", &original);
    for (failure_policy, code) in [("Fail", 1), ("Ignore", 0)] {
        let settings = sandbox.write(
            "settings.yaml",
            format!("policies:\n  echo:\n    settings: {{allow: true, badPatch: true}}\n    failurePolicy: {failure_policy}\n"),
        );
        let (run, verdict) = Eval::new(&[Guest::Echo.arg()])
            .settings(&settings)
            .object(&object)
            .arg("--mutate")
            .verdict();
        run.assert_code(code);
        let echo = verdict.result("echo");
        assert_eq!(echo.fault(), Some(FaultKind::BadOutput), "{echo:#?}");
        assert_eq!(
            verdict.mutated.as_ref(),
            Some(&original),
            "a patch that fails is not applied"
        );
    }
}

#[test]
fn request_from_a_real_admission_review_sample() {
    for file in [
        "unprivileged-pod-admission-review.json",
        "privileged-pod-admission-review.json",
    ] {
        let path = kubewarden_review(file);
        let sample = read_json(&path);
        let request = &sample["request"];
        let (_, verdict) = Eval::new(&[Guest::Echo.arg()]).request(&path).verdict();
        let echo = verdict.result("echo");
        let expected = format!(
            "Pod {}/{} CREATE",
            request["object"]["metadata"]["namespace"]
                .as_str()
                .expect("namespaced sample"),
            request["object"]["metadata"]["name"]
                .as_str()
                .expect("named sample"),
        );
        assert_eq!(echo.fact("seen-review"), expected, "{file}");
        assert_eq!(
            echo.fact("seen-request-uid"),
            request["uid"].as_str().expect("uid"),
            "{file}"
        );
        assert_eq!(echo.fact("seen-old-object"), "old object absent", "{file}");
    }
}

#[test]
fn request_around_a_kubectl_generated_deployment() {
    let sandbox = Sandbox::new();
    let old = kubectl_deployment();
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(3);
    let review = admission_review("7b3c-uid", "UPDATE", "default", new, Some(old));
    let request = sandbox.write_json("review.json", &review);
    let (_, verdict) = Eval::new(&[
        Guest::Echo.arg(),
        replicas_policy(&sandbox, "replicas", 2)
            .display()
            .to_string(),
    ])
    .request(&request)
    .verdict();
    let echo = verdict.result("echo");
    assert_eq!(
        echo.fact("seen-review"),
        "Deployment default/web UPDATE",
        "the namespace comes from the request"
    );
    assert_eq!(echo.fact("seen-request-uid"), "7b3c-uid");
    assert_eq!(echo.fact("seen-old-object"), "old object present");
    let cel = verdict.result("replicas");
    assert_eq!(
        cel.violations.len(),
        1,
        "the new object (3 replicas) is judged: {cel:#?}"
    );
    assert_eq!(cel.violations[0].rule, "too-many-replicas");
}

#[test]
fn a_directory_of_policies_loads_each_policy_in_it() {
    let sandbox = Sandbox::new();
    sandbox.copy(Guest::Echo.wasm(), "policies/echo.wasm");
    sandbox.write_cel_policy(
        "policies/named-pods",
        "  validations:\n    - expression: \"object.metadata.name != ''\"\n",
    );
    sandbox.write(
        "policies/not-a-policy.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    );
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let (_, verdict) = Eval::new(&[sandbox.path().join("policies")])
        .object(&object)
        .verdict();
    let mut names: Vec<&str> = verdict.results.iter().map(|r| r.policy.as_str()).collect();
    names.sort();
    assert_eq!(names, ["echo", "named-pods"]);
    assert!(verdict.result("named-pods").allowed);
}

#[test]
fn bundled_pack_loads_and_answers_json() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let (_, verdict) = Eval::new(&["autoscaler-isolation"])
        .object(&object)
        .verdict();
    assert!(!verdict.results.is_empty(), "the pack judges Pods");
    for result in &verdict.results {
        assert!(!result.policy.is_empty(), "{result:#?}");
    }
}

/// The pool-tenancy example (README and sample files) judged as its README
/// shows: `settings`, the sample pod, `--mutate` when `mutate`, and (when
/// `with_context`) a context whose cluster-autoscaler has the `k3s-batman`
/// pool with Tollgate's default label and taint. `None` when the example does
/// not exist.
fn pool_tenancy_eval(settings: &str, mutate: bool, with_context: bool) -> Option<(Run, Verdict)> {
    let Some(wasm) = pool_tenancy_wasm() else {
        eprintln!("examples/pool-tenancy does not exist; nothing to check");
        return None;
    };
    let sandbox = Sandbox::new();
    let example = workspace().join("examples/pool-tenancy");
    let mut eval = Eval::new(&[wasm])
        .settings(example.join(settings))
        .object(example.join("pod.yaml"));
    if with_context {
        eval = eval.context(sandbox.write_cluster());
    }
    if mutate {
        eval = eval.arg("--mutate");
    }
    Some(eval.verdict())
}

/// The rules pod.yaml's comment says the pod is denied for: "denies it (a, b)".
fn pool_tenancy_promised_rules() -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join("examples/pool-tenancy/pod.yaml"))
        .expect("pod.yaml");
    let comment: String = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .collect::<Vec<_>>()
        .join(" ");
    let (_, rest) = comment
        .split_once("denies it (")
        .expect("pod.yaml's comment says which rules deny it");
    let (list, _) = rest.split_once(')').expect("a closed rule list");
    list.split(',').map(|r| r.trim().to_string()).collect()
}

#[test]
fn example_pool_tenancy_denies_its_sample_pod() {
    let Some((run, verdict)) = pool_tenancy_eval("settings.yaml", false, true) else {
        return;
    };
    run.assert_code(1);
    let rules: Vec<&str> = verdict
        .results
        .iter()
        .flat_map(|r| &r.violations)
        .map(|v| v.rule.as_str())
        .collect();
    for rule in pool_tenancy_promised_rules() {
        assert!(
            rules.contains(&rule.as_str()),
            "pod.yaml says it is denied for {rule}: {rules:?}"
        );
    }
}

#[test]
fn example_pool_tenancy_repairs_its_sample_pod_when_mutating() {
    let Some((run, verdict)) = pool_tenancy_eval("settings-mutate.yaml", true, true) else {
        return;
    };
    run.assert_code(0);
    let mutated = verdict.mutated.expect("--mutate prints the object");
    assert_eq!(
        mutated["spec"]["nodeSelector"]["node.kubernetes.io/role"],
        json!("autoscaler"),
        "{mutated:#}"
    );
    let toleration = json!({"effect": "NoSchedule", "key": "dedicated", "operator": "Equal", "value": "autoscaler"});
    let tolerations = mutated["spec"]["tolerations"]
        .as_array()
        .expect("tolerations added");
    assert!(tolerations.contains(&toleration), "{tolerations:#?}");
}

#[test]
fn example_pool_tenancy_fails_closed_without_context() {
    let Some((run, verdict)) = pool_tenancy_eval("settings.yaml", false, false) else {
        return;
    };
    run.assert_code(1);
    let rules: Vec<&str> = verdict
        .results
        .iter()
        .flat_map(|r| &r.violations)
        .map(|v| v.rule.as_str())
        .collect();
    assert_eq!(rules, ["unknown-pool"], "k3s-batman is not the preset pool");
}

#[test]
fn usage_errors_exit_2() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    Eval::new::<&str>(&[]).object(&object).run().assert_code(2);
    Eval::new(&[Guest::Echo.arg()]).run().assert_code(2);
    Eval::new(&[Guest::Echo.arg()])
        .object(&object)
        .arg("-o")
        .arg("xml")
        .run()
        .assert_code(2);
}

// Bad input: exit 2, one line on stderr naming the file and the problem.

#[test]
fn missing_object_file_is_bad_input() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("missing.yaml").display().to_string();
    Eval::new(&[Guest::Echo.arg()])
        .object(&missing)
        .run()
        .assert_bad_input(&[&missing, "No such file"]);
}

#[test]
fn missing_policy_file_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let missing = sandbox.path().join("nope.wasm").display().to_string();
    Eval::new(&[&missing])
        .object(&object)
        .run()
        .assert_bad_input(&[&missing, "no such file"]);
}

#[test]
fn invalid_yaml_object_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n",
    );
    let name = object.display().to_string();
    Eval::new(&[Guest::Echo.arg()])
        .object(&object)
        .run()
        .assert_bad_input(&[&name, "invalid YAML"]);
}

#[test]
fn invalid_json_object_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write("pod.json", "{\"apiVersion\": \"v1\", \"kind\": \"Pod\",");
    let name = object.display().to_string();
    Eval::new(&[Guest::Echo.arg()])
        .object(&object)
        .run()
        .assert_bad_input(&[&name, "JSON"]);
}

#[test]
fn object_without_kind_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write(
        "pod.yaml",
        "apiVersion: v1\nmetadata: {name: web, namespace: default}\n",
    );
    let name = object.display().to_string();
    Eval::new(&[Guest::Echo.arg()])
        .object(&object)
        .run()
        .assert_bad_input(&[&name, "kind"]);
}

#[test]
fn core_wasm_module_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    // The smallest valid core module: magic and version 1, no sections.
    let module = sandbox
        .write("module.wasm", b"\0asm\x01\0\0\0")
        .display()
        .to_string();
    Eval::new(&[&module])
        .object(&object)
        .run()
        .assert_bad_input(&[&module, "core WebAssembly module"]);
}

/// Deterministic bytes that are neither WebAssembly nor UTF-8.
fn random_bytes() -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    let mut bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    bytes[0] = 0xff;
    bytes
}

#[test]
fn random_bytes_are_not_a_policy() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let wasm = sandbox
        .write("random.wasm", random_bytes())
        .display()
        .to_string();
    Eval::new(&[&wasm])
        .object(&object)
        .run()
        .assert_bad_input(&[&wasm, "not a WebAssembly component"]);
    let blob = sandbox
        .write("random.bin", random_bytes())
        .display()
        .to_string();
    Eval::new(&[&blob])
        .object(&object)
        .run()
        .assert_bad_input(&[&blob, "not a policy"]);
}

#[test]
fn yaml_that_is_not_a_policy_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let deployment = sandbox
        .write_json("deployment.json", &kubectl_deployment())
        .display()
        .to_string();
    Eval::new(&[&deployment])
        .object(&object)
        .run()
        .assert_bad_input(&[&deployment, "not a policy", "Deployment"]);
}

#[test]
fn empty_standard_input_is_bad_input() {
    Eval::new(&[Guest::Echo.arg()])
        .object("-")
        .stdin("")
        .run()
        .assert_bad_input(&["<stdin>", "empty"]);
}

#[test]
fn admission_review_without_request_is_bad_input() {
    let sandbox = Sandbox::new();
    let review = sandbox.write_json(
        "review.json",
        &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
    );
    let name = review.display().to_string();
    Eval::new(&[Guest::Echo.arg()])
        .request(&review)
        .run()
        .assert_bad_input(&[&name, "no request"]);
}

#[test]
fn invalid_settings_file_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let settings = sandbox.write(
        "settings.yaml",
        "policies:\n  echo:\n    failurePolicy: Sometimes\n",
    );
    let name = settings.display().to_string();
    Eval::new(&[Guest::Echo.arg()])
        .settings(&settings)
        .object(&object)
        .run()
        .assert_bad_input(&[&name, "Sometimes"]);
}

#[test]
fn settings_for_a_policy_that_is_not_loaded_is_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let settings = sandbox.write(
        "settings.yaml",
        "policies:\n  ehco:\n    settings: {allow: true}\n",
    );
    let name = settings.display().to_string();
    Eval::new(&[Guest::Echo.arg()])
        .settings(&settings)
        .object(&object)
        .run()
        .assert_bad_input(&[&name, "ehco"]);
}

#[test]
fn settings_the_policy_rejects_are_bad_input() {
    let sandbox = Sandbox::new();
    let object = sandbox.write_json("pod.json", &pod("default", "web"));
    let settings = sandbox.write_json("settings.json", &json!({"alow": true}));
    Eval::new(&[Guest::Echo.arg()])
        .settings(&settings)
        .object(&object)
        .run()
        .assert_bad_input(&["echo", "alow"]);
}
