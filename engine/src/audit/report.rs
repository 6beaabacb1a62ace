//! The audit report and its renderings. The `-o json|yaml` shape is a
//! contract scripts rely on:
//!
//! ```json
//! {"summary": {"objects": 57, "findings": {"high": 9, "medium": 0, "low": 2},
//!              "nodes": {"removable": 1, "blocked": 3}},
//!  "findings": [{"policy": "system-components-off-pools", "rule": "...", "severity": "high", "result": "fail",
//!                "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "kube-system", "name": "metrics-server"},
//!                "message": "..."}],
//!  "scaleDown": {"assumptions": {"version": "v1.32.0", "versionSource": "image", "flags": {...}},
//!                "nodes": [{"name": "k3s-batman-1a2b", "pool": "k3s-batman", "removable": false,
//!                           "reasons": [{"reason": "NotUnderutilized", "message": "..."}],
//!                           "blockers": [{"pod": "kube-system/metrics-server-5d8f", "reason": "UnmovableKubeSystemPod", "message": "...", "fix": "..."}],
//!                           "utilization": 0.21, "pods": 4}]},
//!  "warnings": ["cluster/bad.yaml (document 2): invalid YAML ..."]}
//! ```

use std::io::{IsTerminal, Write};

use serde::Serialize;
use serde_json::Value;

use super::explain::ScaleDown;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A policy warning.
    Low,
    /// A violation of a policy in warn or audit mode.
    Medium,
    /// A violation of an enforcing policy, or a policy fault.
    High,
}

/// The object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// apiVersion.
    pub api_version: String,
    /// kind.
    pub kind: String,
    /// namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// name.
    pub name: String,
}

impl Resource {
    /// The identity of an object.
    pub fn of(object: &Value) -> Self {
        let s = |p: &str| {
            object
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Resource {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One policy finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Policy name.
    pub policy: String,
    /// Rule id (`policy-error` for a fault, `warning` for a warning).
    pub rule: String,
    /// `high`, `medium` or `low`.
    pub severity: Severity,
    /// `fail`, `warn` or `error` (PolicyReport's result).
    pub result: &'static str,
    /// The object.
    pub resource: Resource,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Finding {
    /// A finding.
    pub fn new(
        policy: &str,
        rule: &str,
        resource: &Resource,
        message: &str,
        severity: Severity,
        result: &'static str,
    ) -> Self {
        Finding {
            policy: policy.to_string(),
            rule: rule.to_string(),
            severity,
            result,
            resource: resource.clone(),
            message: message.to_string(),
        }
    }
}

/// Counts for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Objects judged.
    pub objects: usize,
    /// Findings by severity.
    pub findings: SeverityCounts,
    /// Pool nodes by verdict.
    pub nodes: NodeCounts,
}

/// Findings by severity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeverityCounts {
    /// High.
    pub high: usize,
    /// Medium.
    pub medium: usize,
    /// Low.
    pub low: usize,
}

/// Pool nodes by verdict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeCounts {
    /// Could be removed now.
    pub removable: usize,
    /// Held by a node-level reason or a blocking pod.
    pub blocked: usize,
}

/// The whole audit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Counts.
    pub summary: Summary,
    /// Policy findings, most severe first.
    pub findings: Vec<Finding>,
    /// The scale-down explanation.
    pub scale_down: ScaleDown,
    /// What could not be read.
    pub warnings: Vec<String>,
    /// Every judged object with the policies that judged it (the pass results
    /// of a PolicyReport; not part of the JSON output).
    #[serde(skip)]
    pub checked: Vec<Checked>,
}

/// An object judged, and by which policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The object.
    pub resource: Resource,
    /// The policies that judged it.
    pub policies: Vec<String>,
}

impl Report {
    /// Assemble a report.
    pub fn new(
        objects: usize,
        findings: Vec<Finding>,
        scale_down: ScaleDown,
        warnings: Vec<String>,
    ) -> Self {
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        let removable = scale_down.nodes.iter().filter(|n| n.removable).count();
        let summary = Summary {
            objects,
            findings: SeverityCounts {
                high: count(Severity::High),
                medium: count(Severity::Medium),
                low: count(Severity::Low),
            },
            nodes: NodeCounts {
                removable,
                blocked: scale_down.nodes.len() - removable,
            },
        };
        Report {
            summary,
            findings,
            scale_down,
            warnings,
            checked: Vec::new(),
        }
    }

    /// Only the findings (and checked objects) in `namespace`; the scale-down
    /// explanation, which is about nodes, is kept whole.
    pub fn restrict_to_namespace(self, namespace: &str) -> Self {
        let findings = self
            .findings
            .into_iter()
            .filter(|f| f.resource.namespace == namespace)
            .collect();
        let checked: Vec<Checked> = self
            .checked
            .into_iter()
            .filter(|c| c.resource.namespace == namespace)
            .collect();
        let mut report = Report::new(checked.len(), findings, self.scale_down, self.warnings);
        report.checked = checked;
        report
    }

    /// Whether the cluster is clean: no findings above low and no blocked node.
    pub fn is_clean(&self) -> bool {
        self.summary.findings.high + self.summary.findings.medium == 0
            && self.summary.nodes.blocked == 0
    }
}

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Render the report for a terminal: pools, nodes and blockers first, then
/// findings by severity. Colour when `out` is a TTY (and NO_COLOR is unset).
///
/// # Errors
/// I/O errors.
pub fn write_text(out: &mut dyn Write, report: &Report, tty: bool) -> std::io::Result<()> {
    let style = Style {
        on: tty && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let a = &report.scale_down.assumptions;
    let source = match a.version_source {
        "image" => format!(
            "from {}",
            a.deployment.as_deref().unwrap_or("its Deployment")
        ),
        "flag" => "from --ca-version".into(),
        _ => "kube-hetzner's default; no cluster-autoscaler Deployment found".into(),
    };
    writeln!(out, "{}", style.paint("1", "Scale-down"))?;
    writeln!(
        out,
        "  rules of cluster-autoscaler {} ({source})",
        a.version
    )?;
    let mut pool = "";
    for node in &report.scale_down.nodes {
        if node.pool != pool {
            pool = &node.pool;
            writeln!(out, "\n  pool {}", style.paint("1", pool))?;
        }
        let verdict = if node.removable {
            style.paint("32", "removable")
        } else {
            style.paint("31", "blocked")
        };
        writeln!(
            out,
            "    {} {verdict} (utilization {:.0}%, {} pods)",
            node.name,
            node.utilization * 100.0,
            node.pods
        )?;
        for r in &node.reasons {
            writeln!(out, "      {} {}", style.paint("33", r.reason), r.message)?;
        }
        for b in &node.blockers {
            writeln!(
                out,
                "      {} {}: {}",
                style.paint("31", b.reason),
                b.pod,
                b.message
            )?;
            if !b.fix.is_empty() {
                writeln!(out, "        fix: {}", b.fix)?;
            }
        }
    }
    if report.scale_down.nodes.is_empty() {
        writeln!(out, "  no autoscaler pool nodes")?;
    }
    writeln!(out, "\n{}", style.paint("1", "Policy findings"))?;
    for severity in [Severity::High, Severity::Medium, Severity::Low] {
        let of: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if of.is_empty() {
            continue;
        }
        let label = match severity {
            Severity::High => style.paint("31", "high"),
            Severity::Medium => style.paint("33", "medium"),
            Severity::Low => style.paint("2", "low"),
        };
        writeln!(out, "  {label} ({})", of.len())?;
        for f in of {
            writeln!(
                out,
                "    {} [{}/{}] {}",
                f.resource, f.policy, f.rule, f.message
            )?;
        }
    }
    if report.findings.is_empty() {
        writeln!(out, "  none")?;
    }
    for w in &report.warnings {
        writeln!(out, "{} {w}", style.paint("33", "warning:"))?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "\n{} objects judged; findings: {} high, {} medium, {} low; pool nodes: {} removable, {} blocked",
        s.objects,
        s.findings.high,
        s.findings.medium,
        s.findings.low,
        s.nodes.removable,
        s.nodes.blocked
    )
}
