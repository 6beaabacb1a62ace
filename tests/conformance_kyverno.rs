//! Kyverno conformance, read in place from `$TOLLGATE_EXTERNAL_DIR`: the
//! Kyverno CLI's native ValidatingAdmissionPolicy cases (`kyverno-cli-vap/*`)
//! and the placement ValidatingPolicy and MutatingPolicy tests of the Kyverno
//! policy library (`kyverno-policies/*-vpol/*`, `*-mpol/*`). Each
//! `kyverno-test.yaml` lists resources and the expected result per policy:
//! pass, fail or skip, and for a mutation the patched resource.
//!
//! The cases run through the same path as `tollgate eval`: policies load
//! with [`PolicySet::load_in_context`], every resource is judged as the
//! object of a CREATE AdmissionReview (with the case's userInfo), and the
//! cluster view holds the case's namespaces (`values.yaml`), its params
//! (`paramResources`) and context objects. One difference is Kyverno's own:
//! the Kyverno CLI evaluates a ValidatingAdmissionPolicy that has no binding
//! as if it had one with `validationActions: [Deny]`, so the runner adds that
//! binding to the cluster view (Tollgate itself, like Kubernetes, ignores an
//! unbound policy).
//!
//! A policy result maps to Kyverno's vocabulary as: no result (the match
//! rules, binding or match conditions did not select the resource) = skip;
//! violations = fail; no violation = pass; for a mutation, pass = the mutated
//! object equals the expected patched resource. The figures are in
//! docs/conformance.md ("Kyverno").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use tollgate::cluster::{ClusterView, Snapshot};
use tollgate::evaluator::Evaluator;
use tollgate::policy::{PolicySet, SetConfig};
use tollgate::review::Review;

use crate::util::{external_dir, runtime};

/// The measured floors: passing expectations per suite. A drop fails CI.
const FLOOR_CLI_VAP: usize = 28;
const FLOOR_VPOL: usize = 23;
const FLOOR_MPOL: usize = 13;

#[derive(Debug, Default)]
struct Tally {
    pass: usize,
    fail: Vec<String>,
    skip: Vec<String>,
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tollgate::cluster::snapshot::split_documents(&text)
        .into_iter()
        .map(|(_, doc)| {
            tollgate::policy::parse_one(path, doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// The namespaces a `Value` file declares, as Namespace objects.
fn namespaces(values: &Value) -> Vec<Value> {
    let full = values
        .get("namespaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|ns| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": ns.get("metadata").cloned().unwrap_or(json!({}))})
        });
    let selectors = values
        .get("namespaceSelector")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|ns| {
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns.get("name"), "labels": ns.get("labels")}})
        });
    full.chain(selectors).collect()
}

/// Run one `kyverno-test.yaml`; rows are counted into `tally`.
fn run_case(test_file: &Path, tally: &mut Tally) {
    let dir = test_file.parent().expect("a test file is in a directory");
    let case = dir
        .strip_prefix(external_dir())
        .unwrap_or(dir)
        .display()
        .to_string();
    let test = documents(test_file).remove(0);
    let at = |field: &str| strings(test.get(field)).into_iter().map(|f| dir.join(f));
    let policy_files: Vec<PathBuf> = at("policies").collect();
    let resources: Vec<Value> = at("resources").flat_map(|f| documents(&f)).collect();
    let mut cluster_objects: Vec<Value> =
        at("paramResources").flat_map(|f| documents(&f)).collect();
    if let Some(values) = test.get("variables").and_then(Value::as_str) {
        for doc in documents(&dir.join(values)) {
            cluster_objects.extend(namespaces(&doc));
        }
    }
    if let Some(context) = test.get("context").and_then(Value::as_str) {
        for doc in documents(&dir.join(context)) {
            cluster_objects.extend(
                doc.pointer("/spec/resources")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    let user_info = test
        .get("userinfo")
        .and_then(Value::as_str)
        .and_then(|f| documents(&dir.join(f)).into_iter().next())
        .and_then(|d| d.get("userInfo").cloned())
        .unwrap_or(json!({}));
    // The Kyverno CLI binds an unbound ValidatingAdmissionPolicy with Deny.
    let policy_docs: Vec<Value> = policy_files.iter().flat_map(|f| documents(f)).collect();
    let kind_of = |d: &Value| {
        d.get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    for vap in policy_docs
        .iter()
        .filter(|d| kind_of(d) == "ValidatingAdmissionPolicy")
    {
        let name = vap
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let bound = policy_docs.iter().any(|d| {
            kind_of(d) == "ValidatingAdmissionPolicyBinding"
                && d.pointer("/spec/policyName").and_then(Value::as_str) == Some(name)
        });
        if !bound {
            cluster_objects.push(json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": format!("{name}-kyverno-cli")},
                "spec": {"policyName": name, "validationActions": ["Deny"]},
            }));
        }
    }
    let cluster: Arc<dyn ClusterView> = Arc::new(Snapshot::from_objects(cluster_objects));
    let specs: Vec<String> = policy_files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let rows: Vec<&Value> = test
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let row_count: usize = rows.iter().map(|r| strings(r.get("resources")).len()).sum();
    let set = match PolicySet::load_in_context(
        runtime(),
        &specs,
        &SetConfig::default(),
        cluster.as_ref(),
    ) {
        Ok(set) => set,
        Err(e) => {
            let reason = format!("{case}: {row_count} expectations skipped: {e}");
            println!("  skip {reason}");
            tally.skip.extend(std::iter::repeat_n(reason, row_count));
            return;
        }
    };
    let evaluator = Evaluator::new(set);
    for row in rows {
        let policy = row.get("policy").and_then(Value::as_str).unwrap_or("");
        let kind = row.get("kind").and_then(Value::as_str).unwrap_or("");
        let expected = row.get("result").and_then(Value::as_str).unwrap_or("");
        for wanted in strings(row.get("resources")) {
            let (namespace, name) = wanted.split_once('/').unwrap_or(("", &wanted));
            let Some(object) = resources.iter().find(|r| {
                kind_of(r) == kind
                    && r.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                    && (namespace.is_empty()
                        || r.pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or("default")
                            == namespace)
            }) else {
                tally
                    .fail
                    .push(format!("{case}: {kind} {wanted}: not among the resources"));
                continue;
            };
            let patched = row
                .get("patchedResources")
                .and_then(Value::as_str)
                .map(|f| documents(&dir.join(f)))
                .map(|docs| {
                    docs.into_iter().find(|d| {
                        kind_of(d) == kind
                            && d.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                    })
                });
            let got = match patched {
                None => judge(&evaluator, object, &user_info, &cluster, policy),
                Some(expected) => judge_mutation(&evaluator, object, &cluster, policy, expected),
            };
            let line =
                format!("{case}: {policy} on {kind} {wanted}: expected {expected}, got {got}");
            if got == expected {
                tally.pass += 1;
            } else {
                println!("  FAIL {line}");
                tally.fail.push(line);
            }
        }
    }
}

/// Kyverno's result for `policy` on `object`: pass, fail, skip, or error.
fn judge(
    evaluator: &Evaluator,
    object: &Value,
    user_info: &Value,
    cluster: &Arc<dyn ClusterView>,
    policy: &str,
) -> String {
    let review = admission_review(object, user_info);
    let verdict = evaluator.evaluate(&review, cluster);
    let result = verdict
        .results
        .iter()
        .find(|r| r.policy == policy || r.policy.starts_with(&format!("{policy}/")));
    match result {
        None => "skip".into(),
        Some(r) if r.error.is_some() => format!(
            "error ({})",
            r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("")
        ),
        Some(r) if r.violations.is_empty() => "pass".into(),
        Some(_) => "fail".into(),
    }
}

/// Kyverno's result for a mutating `policy` on `object` whose patched form
/// is `expected`: pass when the mutated object is `expected`.
fn judge_mutation(
    evaluator: &Evaluator,
    object: &Value,
    cluster: &Arc<dyn ClusterView>,
    policy: &str,
    expected: Option<Value>,
) -> String {
    let Some(expected) = expected else {
        return "error (no patched resource of that kind and name)".into();
    };
    let review = admission_review(object, &json!({}));
    let verdict = evaluator.evaluate_mutating(&review, cluster);
    if !verdict.results.iter().any(|r| r.policy == policy) {
        return "skip".into();
    }
    match verdict.mutated {
        Some(mutated) if mutated == expected => "pass".into(),
        Some(mutated) => format!("a different object: {mutated}"),
        None => "no mutated object".into(),
    }
}

/// A CREATE AdmissionReview of `object` (in `default` when it has no namespace).
fn admission_review(object: &Value, user_info: &Value) -> Review {
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    Review::from_admission(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "kyverno-conformance", "operation": "CREATE",
                    "namespace": namespace, "userInfo": user_info, "object": object},
    }))
    .expect("the resources are Kubernetes objects")
}

fn test_files(root: &Path, pattern: impl Fn(&Path) -> Option<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| pattern(&p))
        .collect();
    out.sort();
    out
}

/// Print the suite's figures; fail on any failure or a pass count below `floor`.
fn check(suite: &str, tally: &Tally, floor: usize) {
    report(suite, tally);
    assert!(tally.fail.is_empty(), "{suite} failures: {:#?}", tally.fail);
    assert!(
        tally.pass >= floor,
        "{suite}: pass count {} fell below {floor}",
        tally.pass
    );
}

fn report(suite: &str, tally: &Tally) {
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &tally.skip {
        *reasons.entry(s.as_str()).or_default() += 1;
    }
    println!(
        "{suite}: pass {}, fail {}, skip {}",
        tally.pass,
        tally.fail.len(),
        tally.skip.len()
    );
    for (reason, n) in reasons {
        println!("  skip x{n}: {reason}");
    }
}

#[test]
fn kyverno_cli_validating_admission_policy_cases() {
    let root = external_dir().join("kyverno-cli-vap");
    let mut tally = Tally::default();
    for file in test_files(&root, |p| {
        Some(p.join("kyverno-test.yaml")).filter(|f| f.is_file())
    }) {
        run_case(&file, &mut tally);
    }
    check("kyverno-cli-vap", &tally, FLOOR_CLI_VAP);
}

#[test]
fn kyverno_placement_validating_policies() {
    let tally = library_suite("-vpol");
    check("kyverno-policies (ValidatingPolicy)", &tally, FLOOR_VPOL);
}

#[test]
fn kyverno_placement_mutating_policies() {
    let tally = library_suite("-mpol");
    check("kyverno-policies (MutatingPolicy)", &tally, FLOOR_MPOL);
}

/// Every policy folder of the Kyverno library's `*<suffix>` folders.
fn library_suite(suffix: &str) -> Tally {
    let root = external_dir().join("kyverno-policies");
    let mut tally = Tally::default();
    for suite in test_files(&root, |p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.ends_with(suffix))
            .map(|_| p.to_path_buf())
    }) {
        for policy_dir in test_files(&suite, |p| Some(p.to_path_buf()).filter(|p| p.is_dir())) {
            let file = policy_dir.join(".kyverno-test/kyverno-test.yaml");
            if file.is_file() {
                run_case(&file, &mut tally);
            } else {
                let reason = format!(
                    "{}: only a chainsaw test (needs a live cluster), no kyverno-test.yaml",
                    policy_dir
                        .strip_prefix(&root)
                        .unwrap_or(&policy_dir)
                        .display()
                );
                println!("  skip {reason}");
                tally.skip.push(reason);
            }
        }
    }
    tally
}
