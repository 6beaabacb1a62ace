//! What an audit exports over OTLP (see docs/audit.md "OpenTelemetry").
//!
//! - Logs: a record per finding (event `tollgate.audit.finding`) and per
//!   scale-down blocker (event `tollgate.scaledown.blocker`), the message as
//!   the body, the object as `k8s.*` attributes ([`super::object_attributes`]).
//! - Metrics (gauges, so a periodic audit replaces the last values):
//!   `tollgate.audit.findings` by `tollgate.policy` and `tollgate.severity`
//!   (zeros included), `tollgate.audit.nodes.removable` and
//!   `tollgate.audit.nodes.blocked` by `tollgate.pool`, and the histogram
//!   `tollgate.audit.duration` (seconds).
//! - Traces: one trace per audit run, a root span `audit` and a child span
//!   per policy of the set whose duration is the policy's evaluation time
//!   summed over the objects and worker threads (so the children start with
//!   the run and may outlast it on several cores).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};

use super::{Providers, SCOPE, object_attributes};
use crate::audit::{PolicyTime, Report, Severity as FindingSeverity};

const SEVERITIES: [FindingSeverity; 3] = [
    FindingSeverity::High,
    FindingSeverity::Medium,
    FindingSeverity::Low,
];

fn severity_label(severity: FindingSeverity) -> &'static str {
    match severity {
        FindingSeverity::High => "high",
        FindingSeverity::Medium => "medium",
        FindingSeverity::Low => "low",
    }
}

/// One audit run, as measured by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// When the audit started.
    pub started: SystemTime,
    /// How long it took.
    pub elapsed: Duration,
    /// The policy set's names, in order.
    pub policies: &'a [&'a str],
    /// Each policy's evaluation time, in the same order.
    pub times: &'a [PolicyTime],
}

/// Export `report` through the providers that are on.
pub fn record(providers: &Providers, report: &Report, run: Run<'_>) {
    if providers.logger.is_some() {
        record_logs(providers, report);
    }
    if providers.meter.is_some() {
        record_metrics(providers, report, run);
    }
    if providers.tracer.is_some() {
        record_trace(providers, report, run);
    }
}

fn record_logs(providers: &Providers, report: &Report) {
    let Some(provider) = &providers.logger else {
        return;
    };
    let logger = provider.logger(SCOPE);
    let now = SystemTime::now();
    for finding in &report.findings {
        let mut record = logger.create_log_record();
        record.set_event_name("tollgate.audit.finding");
        record.set_timestamp(now);
        record.set_severity_number(match finding.severity {
            FindingSeverity::High => Severity::Error,
            FindingSeverity::Medium => Severity::Warn,
            FindingSeverity::Low => Severity::Info,
        });
        record.set_severity_text(severity_label(finding.severity));
        record.set_body(AnyValue::from(finding.message.clone()));
        record.add_attributes(object_attributes(&finding.resource));
        record.add_attributes([
            ("tollgate.policy", finding.policy.clone()),
            ("tollgate.rule", finding.rule.clone()),
            (
                "tollgate.severity",
                severity_label(finding.severity).to_string(),
            ),
            ("tollgate.result", finding.result.to_string()),
        ]);
        logger.emit(record);
    }
    for node in &report.scale_down.nodes {
        for blocker in &node.blockers {
            let mut record = logger.create_log_record();
            record.set_event_name("tollgate.scaledown.blocker");
            record.set_timestamp(now);
            record.set_severity_number(Severity::Warn);
            record.set_severity_text("warn");
            record.set_body(AnyValue::from(blocker.message.clone()));
            let (namespace, pod) = blocker.pod.split_once('/').unwrap_or(("", &blocker.pod));
            record.add_attributes([
                ("k8s.node.name", node.name.clone()),
                ("k8s.namespace.name", namespace.to_string()),
                ("k8s.pod.name", pod.to_string()),
                ("tollgate.pool", node.pool.clone()),
                ("tollgate.scaledown.reason", blocker.reason.to_string()),
                ("tollgate.scaledown.fix", blocker.fix.clone()),
            ]);
            logger.emit(record);
        }
    }
}

fn record_metrics(providers: &Providers, report: &Report, run: Run<'_>) {
    let Some(provider) = &providers.meter else {
        return;
    };
    let meter = provider.meter(SCOPE);
    let findings = meter
        .u64_gauge("tollgate.audit.findings")
        .with_description("Policy findings of the last audit")
        .with_unit("{finding}")
        .build();
    for policy in run.policies {
        for severity in SEVERITIES {
            let count = report
                .findings
                .iter()
                .filter(|f| f.policy == *policy && f.severity == severity)
                .count();
            findings.record(
                count as u64,
                &[
                    KeyValue::new("tollgate.policy", policy.to_string()),
                    KeyValue::new("tollgate.severity", severity_label(severity)),
                ],
            );
        }
    }
    let mut pools: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for node in &report.scale_down.nodes {
        let counts = pools.entry(node.pool.as_str()).or_default();
        if node.removable {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    let removable = meter
        .u64_gauge("tollgate.audit.nodes.removable")
        .with_description("Pool nodes cluster-autoscaler could remove")
        .with_unit("{node}")
        .build();
    let blocked = meter
        .u64_gauge("tollgate.audit.nodes.blocked")
        .with_description("Pool nodes cluster-autoscaler would keep")
        .with_unit("{node}")
        .build();
    for (pool, (yes, no)) in pools {
        let pool = [KeyValue::new("tollgate.pool", pool.to_string())];
        removable.record(yes, &pool);
        blocked.record(no, &pool);
    }
    meter
        .f64_histogram("tollgate.audit.duration")
        .with_description("Time to audit the cluster (evaluation and scale-down explanation)")
        .with_unit("s")
        .build()
        .record(run.elapsed.as_secs_f64(), &[]);
}

fn record_trace(providers: &Providers, report: &Report, run: Run<'_>) {
    let Some(provider) = &providers.tracer else {
        return;
    };
    let tracer = provider.tracer(SCOPE);
    let summary = &report.summary;
    let root = tracer
        .span_builder("audit")
        .with_kind(SpanKind::Internal)
        .with_start_time(run.started)
        .with_attributes([
            KeyValue::new("tollgate.objects", summary.objects as i64),
            KeyValue::new("tollgate.findings", report.findings.len() as i64),
            KeyValue::new("tollgate.nodes.removable", summary.nodes.removable as i64),
            KeyValue::new("tollgate.nodes.blocked", summary.nodes.blocked as i64),
        ])
        .start(&tracer);
    let parent = Context::current_with_span(root);
    for (policy, time) in run.policies.iter().zip(run.times) {
        let findings = report
            .findings
            .iter()
            .filter(|f| f.policy == *policy)
            .count();
        let mut span = tracer
            .span_builder(format!("policy {policy}"))
            .with_kind(SpanKind::Internal)
            .with_start_time(run.started)
            .with_attributes([
                KeyValue::new("tollgate.policy", policy.to_string()),
                KeyValue::new("tollgate.evaluations", time.runs as i64),
                KeyValue::new("tollgate.findings", findings as i64),
            ])
            .start_with_context(&tracer, &parent);
        span.end_with_timestamp(run.started + time.elapsed);
    }
    parent.span().end_with_timestamp(run.started + run.elapsed);
}
