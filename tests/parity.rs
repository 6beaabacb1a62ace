//! One evaluator, three modes: for every object of the corpus (the real
//! manifests of k3s, metrics-server, cluster-autoscaler, kube-hetzner and the
//! Hetzner CSI and CCM) and of the README's example cluster, `tollgate serve`, `tollgate eval` and
//! `tollgate audit` give the same verdicts with the bundled pack and the same
//! cluster context.
//!
//! `audit` reports a Pod, ReplicaSet or Job whose controller is in the
//! cluster through that controller (one finding per cause), so for those it
//! is not compared; `serve` and `eval` still are.
//!
//! Pods are given the API server's defaults first (what a webhook receives;
//! `audit` applies the same defaults itself). Two runs: with every policy in
//! `audit` mode each mode reports the same rules of the same policies per
//! object (the webhook in its `auditAnnotations`), and with the pack as
//! shipped (enforce) each mode allows or denies the same objects.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use tollgate::cluster::Snapshot;

use crate::admission::{Cert, Server, block_on};
use crate::util::{Sandbox, admission_review, tollgate, workspace};

const PACK: &[&str] = &[
    "system-components-off-pools",
    "pool-opt-in",
    "pool-workloads-evictable",
    "no-blanket-tolerations",
    "priority-classes",
    "pool-nodes-tainted",
    "pdb-drainable",
];

/// `Kind namespace/name`.
fn key(object: &Value) -> String {
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// A Pod, ReplicaSet or Job whose controlling owner is among `keys`.
fn reported_through_its_controller(object: &Value, keys: &BTreeSet<String>) -> bool {
    let kind = object["kind"].as_str().unwrap_or_default();
    matches!(kind, "Pod" | "ReplicaSet" | "Job")
        && object["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|owner| owner["controller"] == true)
            .any(|owner| {
                keys.contains(&format!(
                    "{} {}/{}",
                    owner["kind"].as_str().unwrap_or_default(),
                    object["metadata"]["namespace"].as_str().unwrap_or_default(),
                    owner["name"].as_str().unwrap_or_default()
                ))
            })
}

/// Policy → its violated rules, for one object.
type Rules = BTreeMap<String, BTreeSet<String>>;

/// The corpus and the README's example cluster, Pods defaulted, objects
/// without a name left out (a generateName template cannot be told apart in
/// the audit's report), each (kind, namespace, name) once.
fn corpus() -> Vec<Value> {
    let example = Snapshot::load(&workspace().join("examples/clusters/kube-hetzner"))
        .expect("the example cluster loads");
    let objects: Vec<Value> = crate::corpus::objects()
        .into_iter()
        .map(|(_, object)| object)
        .chain(example.objects().iter().map(|o| o.as_ref().clone()))
        .filter(|o| o["metadata"]["name"].is_string())
        .collect();
    let view = Snapshot::from_objects(objects.clone());
    let mut seen = BTreeSet::new();
    objects
        .into_iter()
        .map(|o| tollgate::defaulting::default_pod(o, &view))
        .filter(|o| seen.insert(key(o)))
        .collect()
}

fn eval_rules(sandbox: &Sandbox, context: &str, settings: &str, object: &Value) -> (bool, Rules) {
    let file = sandbox.write_json("object.json", object);
    let run = tollgate(
        &[
            "eval",
            "-p",
            "autoscaler-isolation",
            "--context",
            context,
            "--settings",
            settings,
            "--object",
            &file.display().to_string(),
            "-o",
            "json",
        ],
        None,
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let verdict = run.json();
    let mut rules = Rules::new();
    for result in verdict["results"].as_array().into_iter().flatten() {
        for violation in result["violations"].as_array().into_iter().flatten() {
            rules
                .entry(result["policy"].as_str().unwrap_or_default().to_string())
                .or_default()
                .insert(violation["rule"].as_str().unwrap_or_default().to_string());
        }
    }
    (verdict["allowed"] == true, rules)
}

/// Per object: whether an enforce-mode finding denies it, and the rules.
fn audit_rules(context: &str, settings: &str) -> BTreeMap<String, (bool, Rules)> {
    let run = tollgate(
        &[
            "audit",
            "--snapshot",
            context,
            "--settings",
            settings,
            "-o",
            "json",
        ],
        None,
    );
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
    let mut out: BTreeMap<String, (bool, Rules)> = BTreeMap::new();
    for finding in run.json()["findings"].as_array().into_iter().flatten() {
        let r = &finding["resource"];
        let key = format!(
            "{} {}/{}",
            r["kind"].as_str().unwrap_or_default(),
            r["namespace"].as_str().unwrap_or_default(),
            r["name"].as_str().unwrap_or_default()
        );
        let entry = out.entry(key).or_insert((true, Rules::new()));
        if finding["severity"] == "high" {
            entry.0 = false;
        }
        entry
            .1
            .entry(finding["policy"].as_str().unwrap_or_default().to_string())
            .or_default()
            .insert(finding["rule"].as_str().unwrap_or_default().to_string());
    }
    out
}

/// The webhook's answer: allowed, and the audit-mode rules from its
/// `auditAnnotations` (`<policy>: rule,rule`).
fn serve_rules(response: &Value) -> (bool, Rules) {
    let mut rules = Rules::new();
    for (policy, value) in response["auditAnnotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if PACK.contains(&policy.as_str()) {
            rules.insert(
                policy.clone(),
                value
                    .as_str()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_string)
                    .collect(),
            );
        }
    }
    (response["allowed"] == true, rules)
}

#[test]
fn serve_eval_and_audit_judge_the_corpus_alike() {
    let sandbox = Sandbox::new();
    let objects = corpus();
    assert!(
        objects.len() > 30,
        "the corpus has {} objects",
        objects.len()
    );
    let context = sandbox.write_json(
        "cluster/objects.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": objects}),
    );
    let context = context.display().to_string();
    let audit_mode: serde_json::Map<String, Value> = PACK
        .iter()
        .map(|p| (p.to_string(), json!({"mode": "audit"})))
        .collect();
    let observe = sandbox.write_json("audit-mode.json", &json!({"policies": audit_mode}));
    let enforce = sandbox.write_json("as-shipped.json", &json!({"policies": {}}));

    let keys: BTreeSet<String> = objects.iter().map(key).collect();
    let cert = Cert::new();
    let mut judged_by_some_rule = 0;
    let mut audited = 0;
    let mut denied = 0;
    for (settings, observing) in [(&observe, true), (&enforce, false)] {
        let settings = settings.display().to_string();
        let audit = audit_rules(&context, &settings);
        let server = Server::start(
            &sandbox,
            &cert,
            &["--context", &context, "--settings", &settings],
        );
        let answers: Vec<Value> = block_on(async {
            let mut conn = server.connect(&cert).await;
            let mut answers = Vec::new();
            for (n, object) in objects.iter().enumerate() {
                let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
                let review = admission_review(
                    &format!("uid-{n}"),
                    "CREATE",
                    namespace,
                    object.clone(),
                    None,
                );
                answers.push(conn.review("/validate", &review).await);
            }
            answers
        });
        for (object, answer) in objects.iter().zip(&answers) {
            let key = key(object);
            let (served_allowed, served_rules) = serve_rules(answer);
            let (evaluated_allowed, evaluated_rules) =
                eval_rules(&sandbox, &context, &settings, object);
            assert_eq!(
                served_allowed, evaluated_allowed,
                "{key}: serve vs eval: {answer}"
            );
            if !reported_through_its_controller(object, &keys) {
                let (audited_allowed, audited_rules) =
                    audit.get(&key).cloned().unwrap_or((true, Rules::new()));
                assert_eq!(audited_allowed, evaluated_allowed, "{key}: audit vs eval");
                assert_eq!(audited_rules, evaluated_rules, "{key}: audit vs eval");
                audited += 1;
            }
            if observing {
                assert_eq!(
                    served_rules, evaluated_rules,
                    "{key}: serve vs eval: {answer}"
                );
                judged_by_some_rule += usize::from(!evaluated_rules.is_empty());
            } else {
                denied += usize::from(!evaluated_allowed);
            }
        }
    }
    assert!(
        audited > objects.len(),
        "audit compared on {audited} of 2 × {} objects",
        objects.len()
    );
    assert!(
        judged_by_some_rule >= 15,
        "only {judged_by_some_rule} objects broke a rule"
    );
    assert!(denied >= 10, "only {denied} objects were denied as shipped");
}
