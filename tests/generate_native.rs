//! `tollgate generate native-policies`: CelPolicies compiled into
//! ValidatingAdmissionPolicy / MutatingAdmissionPolicy manifests.
//!
//! Every generated object deserializes into the k8s-openapi type of its kind
//! and serializes back to the same JSON (no field is lost); output is
//! byte-identical on rerun; policies that cannot be expressed are named with
//! the reason; and the round trip holds: the generated manifests, loaded back
//! into Tollgate, give the CelPolicy's verdicts (allowed, violation messages,
//! mutated object) on the corpus, the demo cluster and objects of our own,
//! and for every CEL twin of the bundled pack with the demo cluster's node
//! pools inlined.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1 as admission;
use serde_json::{Value, json};
use tollgate::cluster::{ClusterView, Snapshot};
use tollgate::decision::Verdict;
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::review::Review;

use crate::util::{Sandbox, runtime, tollgate, workspace};

/// A CelPolicy that uses what has to be rewritten (`pod`, `params`), plus
/// namespaceObject, a messageExpression and both kinds of mutation.
const TEST_POLICY: &str = r#"apiVersion: tollgate.dev/v1alpha1
kind: CelPolicy
metadata:
  name: team-placement
spec:
  kinds: [Pod, Deployment, CronJob]
  settings:
    requiredLabel: team
    exempt: ["kube-system"]
    maxTolerations: 2
  matchConditions:
    - name: not-exempt
      expression: "!(object.metadata.namespace in params.exempt)"
  variables:
    - name: labels
      expression: "has(pod.metadata.labels) ? pod.metadata.labels : {}"
  validations:
    - rule: team-label
      expression: "params.requiredLabel in variables.labels"
      messageExpression: "'pods need the label ' + params.requiredLabel + ' (namespace ' + (namespaceObject == null ? '?' : namespaceObject.metadata.name) + ')'"
    - rule: few-tolerations
      expression: "!has(pod.spec.tolerations) || size(pod.spec.tolerations) <= params.maxTolerations"
      message: too many tolerations
  mutations:
    - patchType: ApplyConfiguration
      applyConfiguration:
        expression: "Object{metadata: Object.metadata{annotations: {'example.com/checked': 'true'}}}"
"#;

fn cel_policies() -> Vec<PathBuf> {
    vec![workspace().join("policies/no-blanket-tolerations/policy.cel.yaml")]
}

fn generate(sandbox: &Sandbox, policies: &[PathBuf], out: &str) -> (crate::util::Run, PathBuf) {
    generate_with(sandbox, policies, out, &[])
}

fn generate_with(
    sandbox: &Sandbox,
    policies: &[PathBuf],
    out: &str,
    extra: &[&str],
) -> (crate::util::Run, PathBuf) {
    let dir = sandbox.path().join(out);
    let mut args = vec![
        "generate".to_string(),
        "native-policies".into(),
        "-o".into(),
        dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    for p in policies {
        args.push("--policy".into());
        args.push(p.display().to_string());
    }
    (tollgate(&args, None), dir)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the output directory")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read");
    let (docs, warnings) = Snapshot::parse_documents(path, &text);
    assert!(warnings.is_empty(), "{warnings:?}");
    docs
}

/// Deserialize into the k8s-openapi type and serialize back unchanged.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) {
    let object: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("not a valid {}: {e}\n{doc:#}", doc["kind"]));
    assert_eq!(
        &serde_json::to_value(&object).expect("serialize"),
        doc,
        "a field of the {} was lost",
        doc["kind"]
    );
}

#[test]
fn generated_manifests_are_kubernetes_objects_and_deterministic() {
    let sandbox = Sandbox::new();
    let mine = sandbox.write("team-placement.yaml", TEST_POLICY);
    let mut policies = cel_policies();
    policies.push(mine);
    let (run, first) = generate(&sandbox, &policies, "first");
    run.assert_code(0);
    let (_, second) = generate(&sandbox, &policies, "second");
    let names: Vec<String> = files(&first)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["no-blanket-tolerations.yaml", "team-placement.yaml"]
    );
    let mut kinds = BTreeSet::new();
    for (a, b) in files(&first).iter().zip(files(&second)) {
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{} differs between runs",
            a.display()
        );
        for doc in documents(a) {
            assert_eq!(doc["apiVersion"], "admissionregistration.k8s.io/v1");
            let kind = doc["kind"].as_str().expect("a kind").to_string();
            match kind.as_str() {
                "ValidatingAdmissionPolicy" => typed::<admission::ValidatingAdmissionPolicy>(&doc),
                "ValidatingAdmissionPolicyBinding" => {
                    typed::<admission::ValidatingAdmissionPolicyBinding>(&doc)
                }
                "MutatingAdmissionPolicy" => typed::<admission::MutatingAdmissionPolicy>(&doc),
                "MutatingAdmissionPolicyBinding" => {
                    typed::<admission::MutatingAdmissionPolicyBinding>(&doc)
                }
                other => panic!("unexpected kind {other}"),
            }
            kinds.insert(kind);
        }
    }
    assert_eq!(
        kinds.len(),
        4,
        "both policy kinds and their bindings: {kinds:?}"
    );
}

#[test]
fn policies_that_cannot_be_expressed_are_named_with_the_reason() {
    let sandbox = Sandbox::new();
    let pools = workspace().join("policies/pool-opt-in/policy.cel.yaml");
    let out = tollgate(
        &[
            "generate",
            "native-policies",
            "--policy",
            &pools.display().to_string(),
            "--policy",
            &cel_policies()[0].display().to_string(),
        ],
        None,
    );
    out.assert_code(1);
    assert!(
        out.stderr.contains("pool-opt-in") && out.stderr.contains("reads `pools`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("name: no-blanket-tolerations"),
        "the others are still written"
    );
    let wasm = tollgate(
        &[
            "generate",
            "native-policies",
            "--policy",
            "autoscaler-isolation",
            "-o",
            &sandbox.path().join("w").display().to_string(),
        ],
        None,
    );
    wasm.assert_code(1);
    assert!(wasm.stderr.contains("a WASM component"), "{}", wasm.stderr);
}

fn load(paths: &[PathBuf]) -> Evaluator {
    let specs: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    Evaluator::new(
        PolicySet::load(runtime(), &specs, &SetConfig::default())
            .unwrap_or_else(|e| panic!("policies load: {e}")),
    )
}

/// What a verdict says, comparable across CelPolicy and native forms.
fn summary(verdict: &Verdict) -> (bool, BTreeSet<String>, Option<Value>) {
    let messages = verdict
        .results
        .iter()
        .flat_map(|r| r.violations.iter().map(|v| v.message.clone()))
        .collect();
    (verdict.allowed, messages, verdict.mutated.clone())
}

fn demo_cluster() -> PathBuf {
    workspace().join("examples/clusters/kube-hetzner")
}

/// Load `policies` and the manifests generated from them, judge the corpus,
/// the demo cluster's objects and `extra` objects with both against the demo
/// cluster, and require the same verdicts; returns (compared, denied).
fn round_trip(policies: &[PathBuf], generated: &Path, extra: Vec<Value>) -> (usize, usize) {
    let cel = load(policies);
    let native = load(&files(generated));
    assert!(
        native
            .policies()
            .policies()
            .iter()
            .all(|p| matches!(p.kind, tollgate::policy::Kind::Native(_))),
        "the generated files load as native policies"
    );
    let demo = Snapshot::load(&demo_cluster()).expect("demo snapshot");
    let mut objects: Vec<Value> = crate::corpus::objects()
        .into_iter()
        .map(|(_, o)| o)
        .collect();
    objects.extend(demo.objects().iter().map(|o| (**o).clone()));
    objects.extend(extra);
    let demo: Arc<dyn ClusterView> = Arc::new(demo);
    let mut compared = 0;
    let mut denied = 0;
    for object in objects {
        let Ok(review) = Review::from_object(object) else {
            continue;
        };
        if !cel
            .policies()
            .policies()
            .iter()
            .any(|p| p.judges(review.kind()))
        {
            continue;
        }
        let want = summary(&cel.evaluate_mutating(&review, &demo));
        let got = summary(&native.evaluate_mutating(&review, &demo));
        assert_eq!(got, want, "{}", review.describe());
        compared += 1;
        denied += usize::from(!want.0);
    }
    (compared, denied)
}

#[test]
fn generated_policies_give_the_cel_policies_verdicts() {
    let sandbox = Sandbox::new();
    let mine = sandbox.write("team-placement.yaml", TEST_POLICY);
    let mut policies = cel_policies();
    policies.push(mine);
    let (run, generated) = generate(&sandbox, &policies, "native");
    run.assert_code(0);
    let labelled = |ns: &str, labels: Value, tolerations: usize| {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p", "namespace": ns, "labels": labels},
               "spec": {"containers": [{"name": "c", "image": "x"}],
                        "tolerations": (0..tolerations).map(|i| json!({"key": format!("k{i}"), "operator": "Exists"})).collect::<Vec<_>>()}})
    };
    let extra = vec![
        labelled("default", json!({"team": "a"}), 1),
        labelled("default", json!({}), 3),
        labelled("kube-system", json!({}), 3),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "blanket", "namespace": "apps"},
               "spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": [{"operator": "Exists"}]}}),
    ];
    let (compared, denied) = round_trip(&policies, &generated, extra);
    assert!(compared >= 30, "only {compared} objects compared");
    assert!(
        denied >= 3,
        "only {denied} denials: the comparison must include denials"
    );
}

/// Every CEL twin of the bundled pack, with the demo cluster's node pools
/// inlined, judges as the CelPolicy does against that cluster.
#[test]
fn the_packs_cel_twins_with_inlined_pools_give_the_same_verdicts() {
    let sandbox = Sandbox::new();
    let mut twins: Vec<PathBuf> = std::fs::read_dir(workspace().join("policies"))
        .expect("policies/")
        .map(|e| e.expect("entry").path().join("policy.cel.yaml"))
        .filter(|p| p.is_file())
        .collect();
    twins.sort();
    assert!(twins.len() >= 5, "{twins:?}");
    let context = demo_cluster().display().to_string();
    let (run, generated) = generate_with(&sandbox, &twins, "native", &["--context", &context]);
    run.assert_code(0);
    assert_eq!(files(&generated).len(), twins.len(), "{}", run.stderr);
    let (compared, denied) = round_trip(&twins, &generated, vec![]);
    assert!(compared >= 30, "only {compared} objects compared");
    assert!(denied >= 3, "only {denied} denials");
}

#[test]
fn settings_and_modes_are_baked_into_the_generated_policies() {
    let sandbox = Sandbox::new();
    let mine = sandbox.write("team-placement.yaml", TEST_POLICY);
    let settings = sandbox.write_json(
        "settings.json",
        &json!({"policies": {"team-placement": {"mode": "warn", "settings": {"maxTolerations": 5}}}}),
    );
    let out = tollgate(
        &[
            "generate",
            "native-policies",
            "--policy",
            &mine.display().to_string(),
            "--settings",
            &settings.display().to_string(),
        ],
        None,
    );
    out.assert_code(0);
    let path = sandbox.write("out.yaml", &out.stdout);
    let docs = documents(&path);
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("a binding");
    assert_eq!(binding["spec"]["validationActions"], json!(["Warn"]));
    let vap = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .expect("a policy");
    let settings = vap["spec"]["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "settings")
        .expect("the settings variable");
    let literal = settings["expression"].as_str().expect("an expression");
    assert!(
        literal.contains(r#""maxTolerations": dyn(5)"#)
            && literal.contains(r#""requiredLabel": dyn("team")"#),
        "the operator's settings over the defaults: {literal}"
    );
}
