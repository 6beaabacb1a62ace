//! Report objects from a hand-built audit: grouping by namespace, pass
//! results, scale-down results, the split over numbered reports, and the
//! directory writer's removal of stale reports.

use serde_json::Value;

use super::*;
use crate::audit::explain::{Assumptions, Blocker, Flags, NodeExplanation, NodeReason, ScaleDown};
use crate::audit::report::{Checked, Finding};

fn resource(kind: &str, namespace: &str, name: &str) -> Resource {
    Resource {
        api_version: if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        }
        .into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn audit() -> Report {
    let web = resource("Deployment", "shop", "web");
    let db = resource("Deployment", "shop", "db");
    let node = resource("Node", "", "k3s-batman-1");
    let findings = vec![
        Finding::new(
            "pool-opt-in",
            "missing-toleration",
            &web,
            "web lacks the toleration",
            Severity::High,
            "fail",
        ),
        Finding::new(
            "pool-nodes-tainted",
            "untainted",
            &node,
            "node is not tainted",
            Severity::Medium,
            "fail",
        ),
    ];
    let scale_down = ScaleDown {
        assumptions: Assumptions {
            version: "v1.32.0".into(),
            version_source: "preset",
            deployment: None,
            flags: Flags::default(),
            now: 0,
        },
        nodes: vec![
            NodeExplanation {
                name: "k3s-batman-1".into(),
                pool: "k3s-batman".into(),
                removable: false,
                reasons: vec![NodeReason {
                    reason: "NotUnderutilized",
                    message: "busy".into(),
                }],
                blockers: vec![Blocker {
                    pod: "kube-system/metrics-server-1".into(),
                    reason: "UnmovableKubeSystemPod",
                    message: "kube-system pod without a PDB".into(),
                    fix: "system-components-off-pools".into(),
                }],
                utilization: 0.9,
                pods: 3,
            },
            NodeExplanation {
                name: "k3s-batman-2".into(),
                pool: "k3s-batman".into(),
                removable: true,
                reasons: vec![],
                blockers: vec![],
                utilization: 0.1,
                pods: 1,
            },
        ],
    };
    let mut report = Report::new(3, findings, scale_down, vec![]);
    report.checked = vec![
        Checked {
            resource: web,
            policies: vec!["pool-opt-in".into(), "priority-classes".into()],
        },
        Checked {
            resource: db,
            policies: vec!["pool-opt-in".into()],
        },
        Checked {
            resource: node,
            policies: vec!["pool-nodes-tainted".into()],
        },
    ];
    report
}

fn results(object: &ReportObject) -> Vec<(String, String, String)> {
    object.object["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&r["resources"][0]["name"]),
                s(&r["policy"]),
                s(&r["result"]),
            )
        })
        .collect()
}

#[test]
fn one_report_per_namespace_and_one_for_the_cluster() {
    let objects = build(
        &audit(),
        Flavour::PolicyReport,
        DEFAULT_MAX_RESULTS,
        1_700_000_000,
    );
    assert_eq!(objects.len(), 2);
    let cluster = &objects[0];
    assert_eq!(
        (
            cluster.namespace.as_deref(),
            cluster.object["kind"].as_str()
        ),
        (None, Some("ClusterPolicyReport"))
    );
    let shop = &objects[1];
    assert_eq!(shop.namespace.as_deref(), Some("shop"));
    assert_eq!(shop.object["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(
        shop.object["metadata"]["labels"][MANAGED_BY_LABEL],
        MANAGED_BY
    );
    assert_eq!(
        results(shop),
        [
            ("db".into(), "pool-opt-in".into(), "pass".into()),
            ("web".into(), "pool-opt-in".into(), "fail".into()),
            ("web".into(), "priority-classes".into(), "pass".into()),
        ]
    );
    assert_eq!(
        shop.object["summary"],
        json!({"pass": 2, "fail": 1, "warn": 0, "error": 0, "skip": 0})
    );
    let fail = &shop.object["results"][1];
    assert_eq!(fail["severity"], "high");
    assert_eq!(fail["source"], SOURCE);
    assert_eq!(
        fail["timestamp"],
        json!({"seconds": 1_700_000_000, "nanos": 0})
    );
    // The node's policy finding, a node-level reason, a blocking pod, a removable node.
    let rules: Vec<(String, String, String)> = cluster.object["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["policy"].as_str().unwrap().into(),
                r["rule"].as_str().unwrap_or_default().into(),
                r["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            (
                "pool-nodes-tainted".into(),
                "untainted".into(),
                "fail".into()
            ),
            (
                "scale-down".into(),
                "NotUnderutilized".into(),
                "fail".into()
            ),
            (
                "scale-down".into(),
                "UnmovableKubeSystemPod".into(),
                "fail".into()
            ),
            ("scale-down".into(), "removable".into(), "pass".into()),
        ]
    );
    let blocker = &cluster.object["results"][2];
    assert_eq!(
        blocker["resources"][1],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "kube-system", "name": "metrics-server-1"})
    );
    assert_eq!(blocker["properties"]["fix"], "system-components-off-pools");
}

#[test]
fn large_namespaces_split_into_numbered_reports_and_openreports_carry_source() {
    let objects = build(&audit(), Flavour::OpenReports, 2, 0);
    let names: Vec<(Option<&str>, &str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o.namespace.as_deref(),
                o.name.as_str(),
                o.object["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (None, "tollgate-audit-1", "ClusterReport"),
            (None, "tollgate-audit-2", "ClusterReport"),
            (Some("shop"), "tollgate-audit-1", "Report"),
            (Some("shop"), "tollgate-audit-2", "Report"),
        ]
    );
    assert!(
        objects
            .iter()
            .all(|o| o.object["results"].as_array().unwrap().len() <= 2)
    );
    assert!(objects.iter().all(
        |o| o.object["source"] == SOURCE && o.object["apiVersion"] == "openreports.io/v1alpha1"
    ));
}

#[test]
fn the_directory_holds_exactly_the_current_reports() {
    let dir = tempfile::tempdir().unwrap();
    let unrelated = dir.path().join("notes.yaml");
    std::fs::write(&unrelated, "keep: me\n").unwrap();
    let first = files::write(
        dir.path(),
        Flavour::PolicyReport,
        &build(&audit(), Flavour::PolicyReport, 2, 0),
        None,
    )
    .unwrap();
    assert_eq!(first.written.len(), 4);
    assert!(first.removed.is_empty());
    let mut smaller = audit().restrict_to_namespace("shop");
    smaller.scale_down.nodes.remove(0);
    let other = dir.path().join("policyreport.other.tollgate-audit-1.yaml");
    std::fs::write(&other, "kind: PolicyReport\n").unwrap();
    let second = files::write(
        dir.path(),
        Flavour::PolicyReport,
        &build(&smaller, Flavour::PolicyReport, 2, 0),
        Some("shop"),
    )
    .unwrap();
    assert!(
        other.exists(),
        "an audit restricted to shop keeps other namespaces' reports"
    );
    let removed: Vec<String> = second
        .removed
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        removed,
        ["clusterpolicyreport.tollgate-audit-2.yaml"],
        "one removable node is one result: one cluster report left"
    );
    let text = std::fs::read_to_string(dir.path().join("policyreport.shop.tollgate-audit-1.yaml"))
        .unwrap();
    let object: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(object["kind"], "PolicyReport");
    assert!(
        unrelated.exists(),
        "files Tollgate did not write are left alone"
    );
    let third = files::write(
        dir.path(),
        Flavour::PolicyReport,
        &build(&smaller, Flavour::PolicyReport, 2, 0),
        None,
    )
    .unwrap();
    assert_eq!(third.removed, [other], "a whole-cluster audit removes it");
}
