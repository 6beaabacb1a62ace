//! `tollgate generate fixes` and `tollgate generate pools` on the example
//! cluster, checked the way a user would use them: the overlay is built with
//! the real `kubectl kustomize`, put back into the snapshot, and audited again;
//! pool configuration is checked against what kube-hetzner (Terraform) and
//! cluster-autoscaler's Hetzner provider accept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tollgate::cluster::Snapshot;

use crate::util::{Sandbox, tollgate, workspace};

fn example() -> PathBuf {
    workspace().join("examples/clusters/kube-hetzner")
}

/// Whether an external tool runs; if not, say why the test is skipped.
fn have(tool: &str, version_args: &[&str]) -> bool {
    match Command::new(tool).args(version_args).output() {
        Ok(out) if out.status.success() => true,
        _ => {
            eprintln!("skipped: `{tool}` is not installed on this machine");
            false
        }
    }
}

fn audit(snapshot: &Path) -> Value {
    let run = tollgate(
        &[
            "audit",
            "--snapshot",
            &snapshot.display().to_string(),
            "-o",
            "json",
        ],
        None,
    );
    assert!(
        run.code == 0 || run.code == 1,
        "audit failed: {}",
        run.stderr
    );
    run.json()
}

/// `(kind, policy)` of every finding of the two placement policies on
/// controllers and Nodes.
fn placement_findings(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| {
            matches!(
                f["policy"].as_str(),
                Some("system-components-off-pools" | "pool-nodes-tainted")
            ) && matches!(
                f["resource"]["kind"].as_str(),
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Node")
            )
        })
        .map(|f| {
            format!(
                "{} {} {}",
                f["resource"]["kind"], f["resource"]["name"], f["rule"]
            )
        })
        .collect()
}

/// Run `tollgate generate <what> --snapshot <snapshot> <extra...>`.
fn generate(what: &str, snapshot: &Path, extra: &[&str]) -> crate::util::Run {
    let mut args = vec![
        "generate".to_string(),
        what.into(),
        "--snapshot".into(),
        snapshot.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    tollgate(&args, None)
}

fn generate_fixes(snapshot: &Path, out: &Path, extra: &[&str]) -> BTreeMap<String, String> {
    let out_arg = out.display().to_string();
    let mut args = vec!["-o", out_arg.as_str()];
    args.extend_from_slice(extra);
    let run = generate("fixes", snapshot, &args);
    assert_eq!(run.code, 0, "generate fixes failed: {}", run.stderr);
    read_tree(out)
}

/// Every file under `dir`, by relative path.
pub(crate) fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string();
                out.insert(rel, std::fs::read_to_string(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn kustomize(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8(out.stdout).expect("utf-8"))
}

fn parse(text: &str) -> Vec<Value> {
    let (objects, warnings) = Snapshot::parse_documents(Path::new("<generated>"), text);
    assert!(warnings.is_empty(), "{warnings:?}");
    objects
}

/// Deserialize a generated object into its k8s-openapi type (HelmChartConfig,
/// a k3s CRD, into its metadata and a parsed `valuesContent`).
fn assert_typed(object: &Value) {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core};
    let kind = object["kind"].as_str().unwrap_or_default();
    let result = match (object["apiVersion"].as_str().unwrap_or_default(), kind) {
        ("apps/v1", "Deployment") => {
            serde_json::from_value::<apps::Deployment>(object.clone()).map(drop)
        }
        ("apps/v1", "StatefulSet") => {
            serde_json::from_value::<apps::StatefulSet>(object.clone()).map(drop)
        }
        ("apps/v1", "DaemonSet") => {
            serde_json::from_value::<apps::DaemonSet>(object.clone()).map(drop)
        }
        ("v1", "Node") => serde_json::from_value::<core::Node>(object.clone()).map(drop),
        ("helm.cattle.io/v1", "HelmChartConfig") => {
            let values = object["spec"]["valuesContent"]
                .as_str()
                .expect("valuesContent");
            serde_saphyr::from_str::<Value>(values).expect("valuesContent is YAML");
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(
                object["metadata"].clone(),
            )
            .map(drop)
        }
        other => panic!("unexpected generated object {other:?}"),
    };
    if let Err(e) = result {
        panic!(
            "{kind} {} does not deserialize: {e}",
            object["metadata"]["name"]
        );
    }
}

/// Copy the snapshot and append `objects` as a last file: a later document with
/// the same identity replaces the earlier one, as applying it would. Each keeps
/// the snapshot's `status` (a subresource `kubectl apply` does not touch).
fn apply_to_copy(sandbox: &Sandbox, objects: &[Value]) -> PathBuf {
    let copy = sandbox.path().join("cluster");
    copy_dir(&example(), &copy);
    let original = Snapshot::load(&example()).expect("load example");
    let mut applied = Vec::new();
    for object in objects {
        let mut object = object.clone();
        let id = |o: &Value, p: &str| {
            o.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let old = original.objects().iter().find(|o| {
            [
                "/apiVersion",
                "/kind",
                "/metadata/namespace",
                "/metadata/name",
            ]
            .iter()
            .all(|p| id(o, p) == id(&object, p))
        });
        if let Some(status) = old.and_then(|o| o.get("status")) {
            object["status"] = status.clone();
        }
        applied.push(serde_json::to_string(&object).expect("json"));
    }
    std::fs::write(copy.join("zz-applied-fixes.yaml"), applied.join("\n---\n")).expect("write");
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

#[test]
fn fixes_round_trip_through_kubectl_kustomize_clears_placement_findings() {
    if !have("kubectl", &["version", "--client"]) {
        return;
    }
    let sandbox = Sandbox::new();
    let before = audit(&example());
    let findings = placement_findings(&before);
    assert!(
        findings.iter().any(|f| f.starts_with("\"Node\""))
            && findings.iter().any(|f| f.starts_with("\"Deployment\"")),
        "the example has placement findings on Nodes and Deployments: {findings:?}"
    );
    assert!(
        before["summary"]["nodes"]["blocked"].as_u64() > Some(0),
        "the example has blocked nodes"
    );

    let out = sandbox.path().join("fixes");
    let files = generate_fixes(&example(), &out, &[]);
    let built = kustomize(&out);
    for object in &built {
        assert_typed(object);
    }
    let kinds: BTreeSet<String> = built
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(
            [
                "Deployment coredns",
                "Deployment hcloud-cloud-controller-manager",
                "Deployment hcloud-csi-controller",
                "Deployment metrics-server",
                "Node k3s-batman-4b1c7e9d2a6f3058",
                "Node k3s-robin-7e2d9c4a1b8f6035",
            ]
            .map(String::from)
        ),
        "the overlay holds exactly the objects that need a change (the tainted batman node does not)"
    );
    for node in built.iter().filter(|o| o["kind"] == "Node") {
        assert!(
            node["spec"]["taints"].as_array().is_some_and(|t| t
                .iter()
                .any(|t| t["key"] == "dedicated"
                    && t["value"] == "autoscaler"
                    && t["effect"] == "NoSchedule")),
            "{node}"
        );
        assert_eq!(
            node["metadata"]["labels"]["node.kubernetes.io/role"],
            "autoscaler"
        );
        assert!(node.get("status").is_none() && node["metadata"].get("resourceVersion").is_none());
    }

    let fixed = apply_to_copy(&sandbox, &built);
    let after = audit(&fixed);
    assert_eq!(
        placement_findings(&after),
        Vec::<String>::new(),
        "no placement finding is left"
    );
    assert!(
        after["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["policy"] == "priority-classes"),
        "findings no mutation fixes are still reported"
    );

    // The k3s route: skip files for the packaged add-ons, and replacement
    // manifests equal to what the overlay builds.
    assert_eq!(
        files["k3s/skip-files.txt"],
        "/var/lib/rancher/k3s/server/manifests/coredns.yaml.skip\n\
         /var/lib/rancher/k3s/server/manifests/metrics-server/metrics-server-deployment.yaml.skip\n"
    );
    for (file, name) in [
        ("k3s/manifests/tollgate-coredns.yaml", "coredns"),
        (
            "k3s/manifests/tollgate-metrics-server.yaml",
            "metrics-server",
        ),
    ] {
        let replacement = parse(&files[file]);
        assert_eq!(replacement.len(), 1);
        assert_typed(&replacement[0]);
        let from_overlay = built
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .expect("built");
        assert_eq!(replacement[0]["spec"], from_overlay["spec"], "{file}");
        assert!(
            !files[file].contains("objectset.rio.cattle.io"),
            "the previous AddOn's bookkeeping is dropped: {file}"
        );
    }
    let readme = &files["README.md"];
    for needle in [
        ".yaml.skip",
        "disable:",
        "hcloud-csi",
        "priority-classes/system-component-priority",
    ] {
        assert!(readme.contains(needle), "README mentions {needle}");
    }

    // Idempotent: fixes generated from the fixed snapshot patch nothing.
    let again = generate_fixes(&fixed, &sandbox.path().join("again"), &[]);
    assert!(
        again.keys().all(|k| !k.starts_with("patches/")
            && !k.starts_with("resources/")
            && !k.starts_with("k3s/")),
        "{:?}",
        again.keys().collect::<Vec<_>>()
    );
    assert!(kustomize(&sandbox.path().join("again")).is_empty());
    assert!(again["README.md"].contains("Nothing to patch"));
}

#[test]
fn fixes_are_deterministic_and_replace_a_previous_overlay() {
    let sandbox = Sandbox::new();
    let settings = sandbox.write(
        "settings.yaml",
        "policies:\n  system-components-off-pools:\n    settings: {namespaces: [traefik]}\n",
    );
    let settings = settings.display().to_string();
    let first = generate_fixes(
        &example(),
        &sandbox.path().join("a"),
        &["--settings", &settings],
    );
    let second = generate_fixes(
        &example(),
        &sandbox.path().join("b"),
        &["--settings", &settings],
    );
    assert_eq!(first, second, "byte-identical on rerun");

    // traefik is a Helm release: a HelmChartConfig carries the placement into its values.
    let config = parse(&first["k3s/manifests/traefik-helmchartconfig.yaml"]);
    assert_typed(&config[0]);
    let values: Value =
        serde_saphyr::from_str(config[0]["spec"]["valuesContent"].as_str().unwrap()).unwrap();
    assert_eq!(
        values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"],
        "node-role.kubernetes.io/control-plane"
    );

    // Rerunning into the same directory replaces the overlay (nothing stale
    // stays); a directory that is not an overlay is refused.
    let replaced = generate_fixes(&example(), &sandbox.path().join("a"), &[]);
    assert!(!replaced.contains_key("k3s/manifests/traefik-helmchartconfig.yaml"));
    sandbox.write("other/notes.txt", "mine");
    let other = sandbox.path().join("other").display().to_string();
    let run = generate("fixes", &example(), &["-o", &other]);
    run.assert_bad_input(&["other", "not empty"]);
}

/// A pools file that gives robin its own taint and label, so that each form
/// can be checked to carry the declared values rather than the defaults.
const POOLS: &str = "pools:\n\
- {name: k3s-batman, minSize: 0, maxSize: 3, taints: ['dedicated=autoscaler:NoSchedule'], labels: {node.kubernetes.io/role: autoscaler}}\n\
- {name: k3s-robin, minSize: 0, maxSize: 2, taints: ['dedicated=robin:NoExecute'], labels: {pool: robin}}\n";

fn generate_pools(sandbox: &Sandbox) -> BTreeMap<String, String> {
    let pools = sandbox.write("pools.yaml", POOLS);
    let out = sandbox.path().join("pools");
    let run = generate(
        "pools",
        &example(),
        &[
            "--pools",
            &pools.display().to_string(),
            "-o",
            &out.display().to_string(),
        ],
    );
    assert_eq!(run.code, 0, "generate pools failed: {}", run.stderr);
    read_tree(&out)
}

/// `a * b` as jq merges objects: recursively, `b` winning; arrays replaced.
fn deep_merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                deep_merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}

/// The example's cluster-autoscaler Deployment (as kube-hetzner renders it).
fn example_autoscaler() -> Value {
    let snapshot = Snapshot::load(&example()).expect("load example");
    snapshot
        .objects()
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "cluster-autoscaler")
        .map(|o| o.as_ref().clone())
        .expect("cluster-autoscaler Deployment")
}

#[test]
fn pool_node_configs_merge_into_the_autoscalers_real_config() {
    use base64::Engine as _;
    let sandbox = Sandbox::new();
    let files = generate_pools(&sandbox);
    let fragment: Value = serde_json::from_str(&files["hcloud-cluster-config.json"]).expect("JSON");
    assert_eq!(
        fragment.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["nodeConfigs"]
    );
    for (group, config) in fragment["nodeConfigs"].as_object().unwrap() {
        // cluster-autoscaler decodes nodeConfigs.<group>.taints as []apiv1.Taint.
        for taint in config["taints"].as_array().unwrap() {
            serde_json::from_value::<k8s_openapi::api::core::v1::Taint>(taint.clone())
                .unwrap_or_else(|e| panic!("{group}: {taint} is not a Kubernetes taint: {e}"));
        }
    }

    // The example's HCLOUD_CLUSTER_CONFIG, in the form kube-hetzner renders it.
    let mut deployment = example_autoscaler();
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("env");
    let entry = env
        .iter_mut()
        .find(|e| e["name"] == "HCLOUD_CLUSTER_CONFIG")
        .expect("HCLOUD_CLUSTER_CONFIG");
    let engine = base64::engine::general_purpose::STANDARD;
    let mut config: Value =
        serde_json::from_slice(&engine.decode(entry["value"].as_str().unwrap()).unwrap()).unwrap();
    let real_keys: BTreeSet<String> = config["nodeConfigs"]["k3s-batman"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    deep_merge(&mut config, &fragment);
    for (group, node_config) in config["nodeConfigs"].as_object().unwrap() {
        let keys: BTreeSet<String> = node_config.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys, real_keys,
            "{group}: the merge adds no key the real config does not use"
        );
    }
    entry["value"] = Value::String(engine.encode(config.to_string()));

    // Read back the way the engine discovers pools from a live autoscaler.
    let autoscaler = tollgate::cluster::pools::discover([&deployment]).expect("discovered");
    let robin = autoscaler
        .pools
        .iter()
        .find(|p| p.name == "k3s-robin")
        .expect("robin");
    assert_eq!(
        robin
            .taints
            .iter()
            .map(|t| t.to_kubectl())
            .collect::<Vec<_>>(),
        ["dedicated=robin:NoExecute"]
    );
    assert_eq!(robin.labels.get("pool").map(String::as_str), Some("robin"));
}

#[test]
fn pool_hcl_is_a_valid_kube_hetzner_autoscaler_nodepools_value() {
    let sandbox = Sandbox::new();
    let files = generate_pools(&sandbox);
    let script = &files["kubectl.sh"];
    assert!(
        script.contains(
            "kubectl taint node k3s-robin-7e2d9c4a1b8f6035 dedicated=robin:NoExecute --overwrite\n"
        ),
        "{script}"
    );
    assert!(
        script.contains("kubectl label node k3s-robin-7e2d9c4a1b8f6035 pool=robin --overwrite\n"),
        "{script}"
    );
    let syntax = Command::new("sh")
        .arg("-n")
        .arg(sandbox.path().join("pools/kubectl.sh"))
        .status()
        .expect("sh");
    assert!(syntax.success(), "kubectl.sh is valid shell");

    if !have("terraform", &["version"]) {
        return;
    }
    // kube-hetzner's declaration of the variable (variables.tf at ee1b6bad,
    // shared/docs/domain.md §2.1): Terraform converts the snippet to this type
    // or fails on a missing, misspelled or mistyped attribute.
    let module = sandbox.path().join("module");
    std::fs::create_dir_all(&module).expect("mkdir");
    std::fs::write(
        module.join("variables.tf"),
        "variable \"autoscaler_nodepools\" {\n  type = list(object({\n    name = string\n    server_type = string\n    location = string\n    min_nodes = number\n    max_nodes = number\n    labels = optional(map(string), {})\n    kubelet_args = optional(list(string), [])\n    taints = optional(list(object({ key = string, value = string, effect = string })), [])\n  }))\n}\n",
    )
    .expect("write variables.tf");
    std::fs::write(module.join("pools.auto.tfvars"), &files["kube-hetzner.tf"])
        .expect("write tfvars");
    let mut console = Command::new("terraform")
        .arg("console")
        .current_dir(&module)
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("terraform console");
    use std::io::Write as _;
    console
        .stdin
        .take()
        .unwrap()
        .write_all(b"jsonencode(var.autoscaler_nodepools)\n")
        .unwrap();
    let out = console.wait_with_output().expect("terraform console");
    assert!(
        out.status.success(),
        "terraform rejects the snippet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let quoted: String =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("a string");
    let pools: Value = serde_json::from_str(&quoted).expect("JSON");
    let robin = pools
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "robin")
        .expect("robin, without the k3s- prefix");
    assert_eq!(robin["server_type"], "cx22");
    assert_eq!(robin["location"], "nbg1");
    assert_eq!(robin["max_nodes"], 2);
    assert_eq!(robin["labels"], serde_json::json!({"pool": "robin"}));
    assert_eq!(
        robin["taints"],
        serde_json::json!([{"key": "dedicated", "value": "robin", "effect": "NoExecute"}])
    );
}

#[test]
fn generators_reject_bad_input_in_one_line() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path().join("no-such-snapshot");
    let out = sandbox.path().join("out").display().to_string();
    generate("fixes", &missing, &["-o", &out]).assert_bad_input(&["no-such-snapshot"]);
    let bare = sandbox.write(
        "bare/ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
    );
    generate("pools", &bare, &[]).assert_bad_input(&["ns.yaml", "no node pools"]);
    let pools = sandbox.write("pools.yaml", "pools:\n- {name: p, taints: [not-a-taint]}\n");
    generate(
        "pools",
        &example(),
        &["--pools", &pools.display().to_string()],
    )
    .assert_bad_input(&["pools.yaml", "not-a-taint"]);
    assert!(!Path::new(&out).exists(), "nothing is written on bad input");
}

#[test]
fn pools_output_is_deterministic_and_goes_to_stdout_by_default() {
    let sandbox = Sandbox::new();
    assert_eq!(generate_pools(&sandbox), generate_pools(&Sandbox::new()));
    let run = generate("pools", &example(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for file in [
        "==> hcloud-cluster-config.json <==",
        "==> kube-hetzner.tf <==",
        "==> kubectl.sh <==",
    ] {
        assert!(run.stdout.contains(file), "{}", run.stdout);
    }
}
