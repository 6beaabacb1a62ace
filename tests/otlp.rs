//! OpenTelemetry export over OTLP/gRPC. A collector inside the test (the
//! official opentelemetry-proto collector services on tonic) receives what
//! the real `tollgate audit` exports, and the decoded content is checked
//! against the JSON report the same run printed. The webhook's export is
//! tested with the other `tollgate serve` tests in admission.rs, on this
//! [`Collector`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;

use crate::util::{cache_dir, workspace};

// ---------------------------------------------------------------------------
// The collector

/// Every export request the collector received, as decoded.
#[derive(Debug, Default, Clone)]
struct Received {
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC collector on 127.0.0.1, stopped with its runtime on drop.
pub(crate) struct Collector {
    _runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    received: Received,
}

impl Collector {
    pub(crate) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("start the collector's runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the collector");
        let addr = listener.local_addr().expect("the collector's address");
        let received = Received::default();
        let server = tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(received.clone()))
            .add_service(MetricsServiceServer::new(received.clone()))
            .add_service(TraceServiceServer::new(received.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        runtime.spawn(server);
        Collector {
            _runtime: runtime,
            addr,
            received,
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn log_records(&self) -> Vec<(BTreeMap<String, String>, LogRecord)> {
        let requests = self.received.logs.lock().unwrap();
        requests
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|r| {
                let resource = r
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                r.scope_logs
                    .iter()
                    .flat_map(|s| &s.log_records)
                    .map(move |l| (resource.clone(), l.clone()))
            })
            .collect()
    }

    pub(crate) fn metrics(&self) -> Vec<Metric> {
        let requests = self.received.metrics.lock().unwrap();
        requests
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| s.metrics.clone())
            .collect()
    }

    pub(crate) fn spans(&self) -> Vec<Span> {
        let requests = self.received.traces.lock().unwrap();
        requests
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

pub(crate) fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// Run the real binary with only the given OTEL_* variables.
fn tollgate_with(collector_env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command
        .args(args)
        .env("TOLLGATE_CACHE_DIR", cache_dir())
        .env_remove("TOLLGATE_LOG");
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
        command.env_remove(name);
    }
    command.envs(collector_env.iter().copied());
    command.output().expect("run the tollgate binary")
}

fn demo_audit(env: &[(&str, &str)]) -> (Value, Output) {
    let snapshot = workspace().join("examples/clusters/kube-hetzner");
    let snapshot = snapshot.to_str().expect("a UTF-8 path");
    let output = tollgate_with(env, &["audit", "--snapshot", snapshot, "-o", "json"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the demo cluster has findings\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = serde_json::from_slice(&output.stdout).expect("the report is JSON");
    (report, output)
}

fn s(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------
// Audit

#[test]
fn a_one_shot_audit_exports_findings_blockers_metrics_and_one_trace() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let (report, output) = demo_audit(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_SERVICE_NAME", "tollgate-otlp-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=demo"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("OpenTelemetry"),
        "no export problem expected:\n{stderr}"
    );
    let findings = report["findings"].as_array().expect("findings[]");
    let nodes = report["scaleDown"]["nodes"].as_array().expect("nodes[]");

    // Logs: one record per finding and per blocker, on the configured resource.
    let records = collector.log_records();
    assert!(!records.is_empty(), "no log record arrived");
    for (resource, _) in &records {
        assert_eq!(resource["service.name"], "tollgate-otlp-test");
        assert_eq!(resource["k8s.cluster.name"], "demo");
    }
    let finding_records: Vec<(BTreeMap<String, String>, &LogRecord)> = records
        .iter()
        .filter_map(|(_, r)| {
            let a = attributes(&r.attributes);
            a.contains_key("tollgate.policy").then_some((a, r))
        })
        .collect();
    assert_eq!(finding_records.len(), findings.len());
    for finding in findings {
        let resource = &finding["resource"];
        let found = finding_records.iter().any(|(a, r)| {
            a["tollgate.policy"] == s(&finding["policy"])
                && a["tollgate.rule"] == s(&finding["rule"])
                && a["tollgate.severity"] == s(&finding["severity"])
                && a["tollgate.resource.kind"] == s(&resource["kind"])
                && a["tollgate.resource.name"] == s(&resource["name"])
                && text(r.body.as_ref()) == s(&finding["message"])
        });
        assert!(found, "no log record for finding {finding}");
    }
    let (metrics_server, record) = finding_records
        .iter()
        .find(|(a, _)| {
            a.get("k8s.deployment.name").map(String::as_str) == Some("metrics-server")
                && a["tollgate.policy"] == "system-components-off-pools"
        })
        .expect("a record for the metrics-server Deployment's finding");
    assert_eq!(metrics_server["k8s.namespace.name"], "kube-system");
    assert_eq!(
        metrics_server["tollgate.rule"],
        "missing-control-plane-affinity"
    );
    assert_eq!(metrics_server["tollgate.severity"], "high");
    assert_eq!(record.severity_text, "high");
    assert_eq!(record.severity_number, 17, "SEVERITY_NUMBER_ERROR");

    let blocker_records: Vec<BTreeMap<String, String>> = records
        .iter()
        .map(|(_, r)| attributes(&r.attributes))
        .filter(|a| a.contains_key("tollgate.scaledown.reason"))
        .collect();
    let blockers: Vec<(&Value, &Value)> = nodes
        .iter()
        .flat_map(|n| {
            n["blockers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |b| (n, b))
        })
        .collect();
    assert_eq!(blocker_records.len(), blockers.len());
    let (node, blocker) = blockers
        .iter()
        .find(|(_, b)| s(&b["pod"]).starts_with("kube-system/metrics-server-"))
        .expect("the demo's metrics-server pod blocks its node");
    let pod = s(&blocker["pod"]);
    let pod_name = pod.trim_start_matches("kube-system/");
    let record = blocker_records
        .iter()
        .find(|a| a.get("k8s.pod.name").map(String::as_str) == Some(pod_name))
        .expect("a record for the metrics-server blocker");
    assert_eq!(record["k8s.node.name"], s(&node["name"]));
    assert_eq!(record["k8s.namespace.name"], "kube-system");
    assert_eq!(record["tollgate.pool"], s(&node["pool"]));
    assert_eq!(
        record["tollgate.scaledown.reason"],
        "UnmovableKubeSystemPod"
    );

    // Metrics: node counts per pool and findings per policy and severity.
    let metrics = collector.metrics();
    let gauge = |name: &str| -> BTreeMap<BTreeMap<String, String>, i64> {
        let metric = metrics
            .iter()
            .rev()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no metric {name}"));
        let Some(metric::Data::Gauge(gauge)) = &metric.data else {
            panic!("{name} is not a gauge: {metric:?}");
        };
        gauge
            .data_points
            .iter()
            .map(|p| {
                let value = match p.value {
                    Some(number_data_point::Value::AsInt(i)) => i,
                    other => panic!("{name}: not an integer: {other:?}"),
                };
                (attributes(&p.attributes), value)
            })
            .collect()
    };
    let pools: BTreeSet<String> = nodes.iter().map(|n| s(&n["pool"])).collect();
    assert!(pools.len() >= 2, "the demo has two autoscaler pools");
    let removable = gauge("tollgate.audit.nodes.removable");
    let blocked = gauge("tollgate.audit.nodes.blocked");
    for pool in &pools {
        let key = BTreeMap::from([("tollgate.pool".to_string(), pool.clone())]);
        let count = |removable: bool| {
            nodes
                .iter()
                .filter(|n| s(&n["pool"]) == *pool && n["removable"].as_bool() == Some(removable))
                .count() as i64
        };
        assert_eq!(removable[&key], count(true), "removable nodes of {pool}");
        assert_eq!(blocked[&key], count(false), "blocked nodes of {pool}");
    }
    let by_policy = gauge("tollgate.audit.findings");
    for (attributes, value) in &by_policy {
        let expected = findings
            .iter()
            .filter(|f| {
                s(&f["policy"]) == attributes["tollgate.policy"]
                    && s(&f["severity"]) == attributes["tollgate.severity"]
            })
            .count() as i64;
        assert_eq!(*value, expected, "findings of {attributes:?}");
    }
    let policies_with_findings: BTreeSet<String> =
        findings.iter().map(|f| s(&f["policy"])).collect();
    let policies_measured: BTreeSet<String> = by_policy
        .keys()
        .map(|a| a["tollgate.policy"].clone())
        .collect();
    assert!(policies_with_findings.is_subset(&policies_measured));
    let duration = metrics
        .iter()
        .find(|m| m.name == "tollgate.audit.duration")
        .expect("the audit duration");
    let Some(metric::Data::Histogram(histogram)) = &duration.data else {
        panic!("tollgate.audit.duration is not a histogram");
    };
    assert_eq!(histogram.data_points[0].count, 1);
    assert!(histogram.data_points[0].sum.is_some_and(|s| s > 0.0));

    // Traces: one trace, a root span per run and a child span per policy.
    let spans = collector.spans();
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one trace per audit: {spans:#?}");
    let root = roots[0];
    assert_eq!(root.name, "audit");
    assert!(root.end_time_unix_nano > root.start_time_unix_nano);
    let root_attributes = attributes(&root.attributes);
    assert_eq!(
        root_attributes["tollgate.findings"],
        findings.len().to_string()
    );
    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| !s.parent_span_id.is_empty())
        .collect();
    let mut span_policies = BTreeSet::new();
    for child in &children {
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent_span_id, root.span_id);
        let a = attributes(&child.attributes);
        let policy = a["tollgate.policy"].clone();
        assert_eq!(child.name, format!("policy {policy}"));
        let expected = findings
            .iter()
            .filter(|f| s(&f["policy"]) == policy)
            .count();
        assert_eq!(a["tollgate.findings"], expected.to_string(), "{policy}");
        assert!(span_policies.insert(policy), "one span per policy");
    }
    assert_eq!(span_policies, policies_measured);
    for policy in &policies_with_findings {
        let span = children
            .iter()
            .find(|c| attributes(&c.attributes)["tollgate.policy"] == *policy)
            .expect("a span for the policy");
        assert!(
            attributes(&span.attributes)["tollgate.evaluations"] != "0",
            "{policy} judged objects"
        );
        assert!(span.end_time_unix_nano > span.start_time_unix_nano);
    }
}

#[test]
fn without_an_endpoint_or_with_a_dead_one_the_audit_is_unchanged() {
    let (quiet, output) = demo_audit(&[("OTEL_SERVICE_NAME", "tollgate-otlp-test")]);
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A port nothing listens on: bind one and close it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let endpoint = format!("http://{dead}");
    let (report, output) = demo_audit(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    assert_eq!(report["findings"], quiet["findings"]);
    assert_eq!(report["scaleDown"]["nodes"], quiet["scaleDown"]["nodes"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let failures = stderr
        .lines()
        .filter(|l| l.contains("OpenTelemetry export"))
        .count();
    assert_eq!(failures, 1, "an export failure is logged once:\n{stderr}");
}

#[test]
fn http_protobuf_is_refused_in_one_warning_and_nothing_is_sent() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let (_, output) = demo_audit(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"));
    assert!(lines[0].contains("gRPC only"));
    assert!(collector.log_records().is_empty());
    assert!(collector.spans().is_empty());
    assert!(collector.metrics().is_empty());
}
