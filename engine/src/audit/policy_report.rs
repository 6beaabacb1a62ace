//! An audit as Kubernetes report objects: `wgpolicyk8s.io/v1alpha2`
//! PolicyReport and ClusterPolicyReport, or `openreports.io/v1alpha1` Report
//! and ClusterReport (the same result shape; OpenReports also carries
//! `source` at the top).
//!
//! - One report per namespace for the findings about namespaced objects; one
//!   cluster report for cluster-scoped objects (Nodes, PriorityClasses, ...)
//!   and for the scale-down explanation (policy `scale-down`, one result per
//!   cluster-autoscaler reason: a node-level reason names the Node, a
//!   blocking pod names the Node and the Pod; a removable node passes).
//! - A report holds at most `max_results` results; more are split over
//!   numbered reports `tollgate-audit-1`, `tollgate-audit-2`, ...
//! - Every judged object gets a `pass` result for each policy that judged it
//!   and found nothing.
//! - Every report is labelled `app.kubernetes.io/managed-by: tollgate`, which
//!   is how stale ones are found and removed ([`files`], [`apply`]).

pub mod apply;
pub mod files;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::report::{Report, Resource, Severity};

/// `source` of every result.
pub const SOURCE: &str = "tollgate";
/// The label that marks reports Tollgate owns.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "tollgate";
/// The policy name of scale-down results.
pub const SCALE_DOWN_POLICY: &str = "scale-down";
/// Report names: `tollgate-audit-<n>`.
pub const NAME_PREFIX: &str = "tollgate-audit-";
/// Default bound on results per report object.
pub const DEFAULT_MAX_RESULTS: usize = 1000;

/// Which report API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavour {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport and ClusterPolicyReport.
    #[value(name = "policyreport")]
    PolicyReport,
    /// `openreports.io/v1alpha1` Report and ClusterReport.
    #[value(name = "openreports")]
    OpenReports,
}

impl Flavour {
    /// API group.
    pub fn group(self) -> &'static str {
        match self {
            Flavour::PolicyReport => "wgpolicyk8s.io",
            Flavour::OpenReports => "openreports.io",
        }
    }

    /// Version.
    pub fn version(self) -> &'static str {
        match self {
            Flavour::PolicyReport => "v1alpha2",
            Flavour::OpenReports => "v1alpha1",
        }
    }

    /// `group/version`.
    pub fn api_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }

    /// The kind of a namespaced or a cluster report.
    pub fn kind(self, namespaced: bool) -> &'static str {
        match (self, namespaced) {
            (Flavour::PolicyReport, true) => "PolicyReport",
            (Flavour::PolicyReport, false) => "ClusterPolicyReport",
            (Flavour::OpenReports, true) => "Report",
            (Flavour::OpenReports, false) => "ClusterReport",
        }
    }

    /// The plural resource name of a namespaced or a cluster report.
    pub fn plural(self, namespaced: bool) -> &'static str {
        match (self, namespaced) {
            (Flavour::PolicyReport, true) => "policyreports",
            (Flavour::PolicyReport, false) => "clusterpolicyreports",
            (Flavour::OpenReports, true) => "reports",
            (Flavour::OpenReports, false) => "clusterreports",
        }
    }
}

/// One report object to write or apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportObject {
    /// Its namespace (None for a cluster report).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The object.
    pub object: Value,
}

/// Build the report objects of an audit. `timestamp` (seconds since the
/// epoch) stamps every result.
pub fn build(
    report: &Report,
    flavour: Flavour,
    max_results: usize,
    timestamp: i64,
) -> Vec<ReportObject> {
    let max_results = max_results.max(1);
    let mut by_namespace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let stamp = json!({"seconds": timestamp, "nanos": 0});
    let mut failed: BTreeSet<(&Resource, &str)> = BTreeSet::new();
    for f in &report.findings {
        failed.insert((&f.resource, f.policy.as_str()));
        by_namespace
            .entry(f.resource.namespace.clone())
            .or_default()
            .push(json!({
                "source": SOURCE,
                "policy": f.policy,
                "rule": f.rule,
                "result": f.result,
                "severity": severity(f.severity),
                "message": f.message,
                "resources": [reference(&f.resource)],
                "timestamp": stamp,
                "scored": true,
            }));
    }
    for checked in &report.checked {
        for policy in &checked.policies {
            if failed.contains(&(&checked.resource, policy.as_str())) {
                continue;
            }
            by_namespace
                .entry(checked.resource.namespace.clone())
                .or_default()
                .push(json!({
                    "source": SOURCE,
                    "policy": policy,
                    "result": "pass",
                    "message": "no violation",
                    "resources": [reference(&checked.resource)],
                    "timestamp": stamp,
                    "scored": true,
                }));
        }
    }
    by_namespace
        .entry(String::new())
        .or_default()
        .extend(scale_down_results(report, &stamp));
    let mut objects = Vec::new();
    for (namespace, mut results) in by_namespace {
        if results.is_empty() {
            continue;
        }
        results.sort_by_cached_key(order_key);
        for (i, chunk) in results.chunks(max_results).enumerate() {
            let name = format!("{NAME_PREFIX}{}", i + 1);
            let namespace = (!namespace.is_empty()).then(|| namespace.clone());
            objects.push(ReportObject {
                object: report_object(flavour, namespace.as_deref(), &name, chunk),
                namespace,
                name,
            });
        }
    }
    objects
}

fn report_object(
    flavour: Flavour,
    namespace: Option<&str>,
    name: &str,
    results: &[Value],
) -> Value {
    let mut metadata = json!({"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let count = |r: &str| results.iter().filter(|v| v["result"] == r).count();
    let mut object = json!({
        "apiVersion": flavour.api_version(),
        "kind": flavour.kind(namespace.is_some()),
        "metadata": metadata,
        "summary": {
            "pass": count("pass"),
            "fail": count("fail"),
            "warn": count("warn"),
            "error": count("error"),
            "skip": count("skip"),
        },
        "results": results,
    });
    if flavour == Flavour::OpenReports {
        object["source"] = json!(SOURCE);
    }
    object
}

/// The scale-down explanation as results of policy `scale-down`.
fn scale_down_results(report: &Report, stamp: &Value) -> Vec<Value> {
    let mut results = Vec::new();
    for node in &report.scale_down.nodes {
        let node_ref = json!({"apiVersion": "v1", "kind": "Node", "name": node.name});
        let base = |rule: &str, result: &str, message: &str, resources: Value| {
            json!({
                "source": SOURCE,
                "policy": SCALE_DOWN_POLICY,
                "rule": rule,
                "result": result,
                "message": message,
                "resources": resources,
                "timestamp": stamp,
                "scored": true,
                "category": "cluster-autoscaler",
                "properties": {"pool": node.pool, "node": node.name},
            })
        };
        if node.removable {
            results.push(base(
                "removable",
                "pass",
                &format!(
                    "cluster-autoscaler could remove this node of pool {}",
                    node.pool
                ),
                json!([node_ref]),
            ));
            continue;
        }
        for reason in &node.reasons {
            let mut r = base(reason.reason, "fail", &reason.message, json!([node_ref]));
            r["severity"] = json!("medium");
            results.push(r);
        }
        for blocker in &node.blockers {
            let (ns, pod) = blocker.pod.split_once('/').unwrap_or(("", &blocker.pod));
            let pod_ref = json!({"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": pod});
            let mut r = base(
                blocker.reason,
                "fail",
                &format!(
                    "pod {} blocks the removal: {}",
                    blocker.pod, blocker.message
                ),
                json!([node_ref, pod_ref]),
            );
            r["severity"] = json!("medium");
            r["properties"]["pod"] = json!(blocker.pod);
            if !blocker.fix.is_empty() {
                r["properties"]["fix"] = json!(blocker.fix);
            }
            results.push(r);
        }
    }
    results
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

fn reference(r: &Resource) -> Value {
    let mut v = json!({"apiVersion": r.api_version, "kind": r.kind, "name": r.name});
    if !r.namespace.is_empty() {
        v["namespace"] = json!(r.namespace);
    }
    v
}

/// Results ordered by resource, then policy and rule, so report contents and
/// their split into numbered reports are stable between runs.
fn order_key(result: &Value) -> (String, String, String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let first = &result["resources"][0];
    (
        s(&first["kind"]),
        s(&first["name"]),
        s(&result["policy"]),
        s(&result["rule"]),
        s(&result["resources"][1]["name"]),
    )
}

#[cfg(test)]
mod tests;
