//! `tollgate krm` as a KRM function: run by the real `kpt fn eval --exec`, with
//! the kustomize exec-transformer config, and fed ResourceLists directly for
//! the exit-code and error contract.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tollgate::cluster::Snapshot;

use crate::util::{Sandbox, tollgate, workspace};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// The named Deployment of an example file, as YAML text.
fn example_deployment(file: &str, name: &str) -> String {
    let path = workspace()
        .join("examples/clusters/kube-hetzner/kube-system")
        .join(file);
    let snapshot = Snapshot::load(&path).expect("load");
    let object = snapshot
        .objects()
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
        .expect("deployment");
    tollgate::generate::to_yaml(object)
}

/// A package: k3s's metrics-server (unpinned) and kube-hetzner's
/// cluster-autoscaler (pinned, no priority class; its --nodes flags give the pools).
fn package(sandbox: &Sandbox) -> PathBuf {
    sandbox.write(
        "pkg/metrics-server.yaml",
        example_deployment("metrics-server.yaml", "metrics-server"),
    );
    sandbox.write(
        "pkg/cluster-autoscaler.yaml",
        example_deployment("cluster-autoscaler.yaml", "cluster-autoscaler"),
    );
    sandbox.path().join("pkg")
}

const WARN_PRIORITY: &str = "apiVersion: tollgate.dev/v1alpha1\nkind: FunctionConfig\nmetadata:\n  name: tollgate\nspec:\n  settings:\n    policies:\n      priority-classes: {mode: warn}\n";

fn kpt_available() -> bool {
    let ok = Command::new("kpt")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: `kpt` is not installed on this machine");
    }
    ok
}

fn kpt_eval(pkg: &Path, fn_config: Option<&Path>, results: &Path) -> (bool, Value) {
    let mut cmd = Command::new("kpt");
    cmd.args(["fn", "eval"])
        .arg(pkg)
        .arg("--exec")
        .arg(format!("{BIN} krm"))
        .arg("--results-dir")
        .arg(results);
    if let Some(config) = fn_config {
        cmd.arg("--fn-config").arg(config);
    }
    let out = cmd.output().expect("run kpt");
    let text =
        std::fs::read_to_string(results.join("results.yaml")).expect("kpt writes results.yaml");
    let results: Value = serde_saphyr::from_str(&text).expect("results YAML");
    (out.status.success(), results)
}

fn results_of(kpt_results: &Value) -> Vec<Value> {
    kpt_results["items"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn kpt_fn_eval_applies_mutations_and_reports_findings() {
    if !kpt_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let pkg = package(&sandbox);
    let config = sandbox.write("fn-config.yaml", WARN_PRIORITY);
    let (ok, results) = kpt_eval(&pkg, Some(&config), &sandbox.path().join("results-1"));
    assert!(ok, "kpt fails: {results}");
    let results = results_of(&results);
    let warning = results
        .iter()
        .find(|r| r["severity"] == "warning")
        .expect("the priority-classes finding, as a warning");
    assert_eq!(warning["resourceRef"]["name"], "cluster-autoscaler");
    assert_eq!(warning["resourceRef"]["namespace"], "kube-system");
    assert_eq!(
        warning["field"]["path"],
        "spec.template.spec.priorityClassName"
    );
    assert_eq!(warning["file"]["path"], "cluster-autoscaler.yaml");
    assert!(
        results
            .iter()
            .any(|r| r["severity"] == "info" && r["resourceRef"]["name"] == "metrics-server")
    );

    let written = std::fs::read_to_string(pkg.join("metrics-server.yaml")).expect("read");
    let deployment: Value = serde_saphyr::from_str(&written).expect("YAML");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0],
        json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}),
        "kpt wrote the pinned Deployment back"
    );
    serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(deployment)
        .expect("still a Deployment");

    // A second run changes nothing and reports no mutation.
    let (ok, again) = kpt_eval(&pkg, Some(&config), &sandbox.path().join("results-2"));
    assert!(ok);
    assert!(
        results_of(&again).iter().all(|r| r["severity"] != "info"),
        "{again}"
    );
    assert_eq!(
        std::fs::read_to_string(pkg.join("metrics-server.yaml")).unwrap(),
        written
    );
}

#[test]
fn kpt_fn_eval_fails_on_a_denial_and_leaves_the_package_alone() {
    if !kpt_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let pkg = package(&sandbox);
    let before = std::fs::read_to_string(pkg.join("metrics-server.yaml")).unwrap();
    let (ok, results) = kpt_eval(&pkg, None, &sandbox.path().join("results"));
    assert!(!ok, "an enforcing policy's violation fails the function");
    assert_eq!(results["items"][0]["exitCode"], 1);
    let error = results_of(&results)
        .into_iter()
        .find(|r| r["severity"] == "error")
        .expect("an error result");
    assert_eq!(error["resourceRef"]["name"], "cluster-autoscaler");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("system-component-priority")
    );
    assert_eq!(
        std::fs::read_to_string(pkg.join("metrics-server.yaml")).unwrap(),
        before
    );
}

/// The transformer config of docs/generate.md: a FunctionConfig with kustomize's
/// `config.kubernetes.io/function` exec annotation.
fn transformer_config(wrapper: &str) -> String {
    WARN_PRIORITY.replace(
        "  name: tollgate\n",
        &format!("  name: tollgate\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: {wrapper}\n"),
    )
}

#[test]
fn kustomize_exec_transformer_config_is_a_function_config() {
    // What kustomize sends the exec function: the resources, and the
    // transformer config (annotation included) as functionConfig.
    let config: Value = serde_saphyr::from_str(&transformer_config("./tollgate-krm")).unwrap();
    let run = tollgate(
        &["krm"],
        Some(&resource_list(vec![unpinned()], Some(config))),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out: Value = serde_saphyr::from_str(&run.stdout).expect("a ResourceList");
    assert_eq!(
        out["items"][0]["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );

    // The standalone kustomize runs exec functions (`kubectl kustomize` does not:
    // it has no --enable-exec and skips them).
    if Command::new("kustomize").arg("version").output().is_err() {
        eprintln!(
            "skipped the kustomize build: the standalone `kustomize` is not installed on this machine"
        );
        return;
    }
    let sandbox = Sandbox::new();
    let pkg = package(&sandbox);
    let wrapper = sandbox.write("pkg/tollgate-krm", format!("#!/bin/sh\nexec '{BIN}' krm\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    sandbox.write("pkg/tollgate.yaml", transformer_config("./tollgate-krm"));
    sandbox.write(
        "pkg/kustomization.yaml",
        "resources: [metrics-server.yaml, cluster-autoscaler.yaml]\ntransformers: [tollgate.yaml]\n",
    );
    let out = Command::new("kustomize")
        .args(["build", "--enable-alpha-plugins", "--enable-exec"])
        .arg(&pkg)
        .output()
        .expect("kustomize build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (objects, _) =
        Snapshot::parse_documents(Path::new("<built>"), &String::from_utf8_lossy(&out.stdout));
    let metrics = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "metrics-server")
        .expect("built");
    assert!(metrics["spec"]["template"]["spec"]["affinity"].is_object());
}

fn resource_list(items: Vec<Value>, config: Option<Value>) -> Vec<u8> {
    let mut list =
        json!({"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items});
    if let Some(config) = config {
        list["functionConfig"] = config;
    }
    serde_json::to_vec(&list).unwrap()
}

fn unpinned() -> Value {
    serde_saphyr::from_str(&example_deployment("metrics-server.yaml", "metrics-server")).unwrap()
}

#[test]
fn krm_contract_exit_codes_and_config_errors() {
    // Validation only (ConfigMap config, as `kpt fn eval -- mutate=false` builds it):
    // the item is unchanged and its finding is an error, so the function fails.
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fn"},
        "data": {"mutate": "false", "pools": "- {name: k3s-batman}\n"}});
    let run = tollgate(
        &["krm"],
        Some(&resource_list(vec![unpinned()], Some(config))),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let out: Value = serde_saphyr::from_str(&run.stdout).expect("a ResourceList");
    assert_eq!(
        out["items"][0],
        unpinned(),
        "mutate=false leaves items alone"
    );
    let results = out["results"].as_array().unwrap();
    assert!(
        results.iter().any(|r| r["severity"] == "error"
            && r["field"]["path"] == "spec.template.spec.affinity"
            && r["message"].as_str().unwrap().contains("k3s-batman")),
        "{results:?}"
    );

    // A bad functionConfig is an error result; the items pass through.
    let bad = json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "FunctionConfig", "metadata": {"name": "f"},
        "spec": {"policies": ["no-such-pack"]}});
    let run = tollgate(&["krm"], Some(&resource_list(vec![unpinned()], Some(bad))));
    assert_eq!(run.code, 1);
    let out: Value = serde_saphyr::from_str(&run.stdout).expect("a ResourceList");
    assert_eq!(out["items"][0], unpinned());
    assert!(
        out["results"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("functionConfig: "),
        "{out}"
    );

    // Input that is not a ResourceList: one line on stderr, exit 2.
    tollgate(&["krm"], Some(b"apiVersion: v1\nkind: List\nitems: []\n"))
        .assert_bad_input(&["ResourceList"]);
}
