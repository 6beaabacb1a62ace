//! OpenTelemetry export over OTLP/gRPC and OTLP/HTTP (protobuf), plain and
//! over TLS. A collector inside the test receives what the real `tollgate
//! audit` exports on one port: the official opentelemetry-proto collector
//! services on tonic for gRPC, and `POST /v1/{logs,metrics,traces}` decoded
//! with the same protobuf types for HTTP. The decoded content is checked
//! against the JSON report the same run printed. The webhook's export is
//! tested with the other `tollgate serve` tests in admission.rs, on this
//! [`Collector`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::IntoResponse;
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
use prost::Message;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde_json::Value;

use crate::util::{Sandbox, cache_dir, workspace};

// ---------------------------------------------------------------------------
// The collector

/// Every export request the collector received, as decoded, and the path
/// of each (the gRPC method or the HTTP path).
#[derive(Debug, Default, Clone)]
struct Received {
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    paths: Arc<Mutex<BTreeSet<String>>>,
}

#[tonic::async_trait]
impl LogsService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().unwrap().push(request.into_inner());
        self.paths.lock().unwrap().insert(GRPC_LOGS.to_string());
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
        self.paths.lock().unwrap().insert(GRPC_METRICS.to_string());
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
        self.paths.lock().unwrap().insert(GRPC_TRACES.to_string());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

const GRPC_LOGS: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const GRPC_METRICS: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const GRPC_TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// An OTLP/HTTP export: a protobuf request POSTed to a path ending in
/// `/logs`, `/metrics` or `/traces` (the `/v1/<signal>` the generic endpoint
/// gets, or a per-signal endpoint's own path), answered with the empty
/// protobuf response.
async fn http_export(
    received: Received,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let content_type = headers.get(header::CONTENT_TYPE);
    if content_type.is_none_or(|t| t != "application/x-protobuf") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "protobuf only").into_response();
    }
    fn push<T: Message + Default>(list: &Mutex<Vec<T>>, body: &Bytes) -> bool {
        T::decode(body.as_ref())
            .map(|request| list.lock().unwrap().push(request))
            .is_ok()
    }
    let path = uri.path();
    let decoded = if path.ends_with("/logs") {
        push(&received.logs, &body)
    } else if path.ends_with("/metrics") {
        push(&received.metrics, &body)
    } else if path.ends_with("/traces") {
        push(&received.traces, &body)
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !decoded {
        return (StatusCode::BAD_REQUEST, "not an OTLP export request").into_response();
    }
    received.paths.lock().unwrap().insert(path.to_string());
    // Every Export*ServiceResponse without a partial success encodes empty.
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::<u8>::new(),
    )
        .into_response()
}

/// An OTLP collector on 127.0.0.1 speaking gRPC and HTTP/protobuf on one
/// port, in plain text or TLS, stopped with its runtime on drop.
pub(crate) struct Collector {
    _runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    scheme: &'static str,
    received: Received,
}

impl Collector {
    /// A plain-text collector (gRPC over h2c, HTTP/1.1).
    pub(crate) fn start() -> Self {
        Self::serve(None)
    }

    /// A collector serving `tls` (ALPN h2 and http/1.1).
    fn start_tls(tls: Arc<ServerConfig>) -> Self {
        Self::serve(Some(tls))
    }

    fn serve(tls: Option<Arc<ServerConfig>>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("start the collector's runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the collector");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the collector's address");
        let received = Received::default();
        let http = received.clone();
        let router = tonic::service::Routes::new(LogsServiceServer::new(received.clone()))
            .add_service(MetricsServiceServer::new(received.clone()))
            .add_service(TraceServiceServer::new(received.clone()))
            .into_axum_router()
            .fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                http_export(http.clone(), uri, headers, body)
            });
        // Tokio listeners are registered with the runtime they are made in.
        let entered = runtime.enter();
        let scheme = match tls {
            None => {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                runtime.spawn(async move { axum::serve(listener, router).await });
                "http"
            }
            Some(tls) => {
                let server = axum_server::from_tcp_rustls(
                    listener,
                    axum_server::tls_rustls::RustlsConfig::from_config(tls),
                )
                .expect("serve TLS");
                runtime.spawn(server.serve(router.into_make_service()));
                "https"
            }
        };
        drop(entered);
        Collector {
            _runtime: runtime,
            addr,
            scheme,
            received,
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The gRPC methods and HTTP paths export requests came to.
    fn paths(&self) -> BTreeSet<String> {
        self.received.paths.lock().unwrap().clone()
    }

    fn is_empty(&self) -> bool {
        self.log_records().is_empty() && self.spans().is_empty() && self.metrics().is_empty()
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

// ---------------------------------------------------------------------------
// Certificates

/// A CA, a server certificate for 127.0.0.1 and a client certificate it
/// signed; the CA and the client pair are written to files for the
/// `OTEL_EXPORTER_OTLP_*` TLS variables.
struct Pki {
    files: Sandbox,
    ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    ca_der: CertificateDer<'static>,
    server: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

impl Pki {
    fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tollgate OTLP test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("a leaf key");
            let cert = params.signed_by(&key, &issuer).expect("a signed leaf");
            (cert, key)
        };
        let (server, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) =
            leaf(vec!["tollgate".into()], ExtendedKeyUsagePurpose::ClientAuth);
        let files = Sandbox::new();
        Pki {
            ca: files.write("ca.pem", ca.pem()),
            client_cert: files.write("client.pem", client.pem()),
            client_key: files.write("client.key", client_key.serialize_pem()),
            files,
            ca_der: ca.der().clone(),
            server: (
                server.der().clone(),
                PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
            ),
        }
    }

    /// The collector's TLS configuration; `client_auth`: it requires a
    /// client certificate signed by the CA.
    fn server_config(&self, client_auth: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = if client_auth {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("the CA as a root");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(vec![self.server.0.clone()], self.server.1.clone_key())
            .expect("the server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    fn path(path: &std::path::Path) -> &str {
        path.to_str().expect("a UTF-8 path")
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

/// Run the demo audit with `env` added to the resource variables, expect
/// no export problem, and check what `collector` received against the
/// report: a log record per finding and per blocker, the metrics, and one
/// trace with a span per policy.
fn audit_and_check_export(collector: &Collector, env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.extend([
        ("OTEL_SERVICE_NAME", "tollgate-otlp-test"),
        ("OTEL_RESOURCE_ATTRIBUTES", "k8s.cluster.name=demo"),
    ]);
    let (report, output) = demo_audit(&env);
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

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn a_one_shot_audit_exports_findings_blockers_metrics_and_one_trace() {
    let collector = Collector::start();
    audit_and_check_export(
        &collector,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint())],
    );
    assert_eq!(
        collector.paths(),
        set(&[GRPC_LOGS, GRPC_METRICS, GRPC_TRACES]),
        "gRPC is the default protocol"
    );
}

#[test]
fn over_http_protobuf_the_generic_endpoint_gets_v1_paths_and_a_signal_endpoint_is_kept() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let logs_endpoint = format!("{endpoint}/collector/logs");
    audit_and_check_export(
        &collector,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &logs_endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    assert_eq!(
        collector.paths(),
        set(&["/collector/logs", "/v1/metrics", "/v1/traces"])
    );
}

#[test]
fn the_protocol_is_chosen_per_signal() {
    let collector = Collector::start();
    let (_, output) = demo_audit(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
    ]);
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        collector.paths(),
        set(&["/v1/logs", "/v1/metrics", GRPC_TRACES])
    );
}

#[test]
fn over_tls_the_ca_file_and_a_client_certificate_work_on_both_transports() {
    let pki = Pki::new();
    for protocol in ["grpc", "http/protobuf"] {
        let collector = Collector::start_tls(pki.server_config(true));
        audit_and_check_export(
            &collector,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", Pki::path(&pki.ca)),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    Pki::path(&pki.client_cert),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", Pki::path(&pki.client_key)),
            ],
        );
        assert_eq!(
            collector.paths().len(),
            3,
            "{protocol}: {:?}",
            collector.paths()
        );
    }
}

#[test]
fn a_collector_the_ca_file_does_not_vouch_for_receives_nothing() {
    let pki = Pki::new();
    let other = Pki::new();
    for protocol in ["grpc", "http/protobuf"] {
        let collector = Collector::start_tls(pki.server_config(false));
        let (_, output) = demo_audit(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", Pki::path(&other.ca)),
            // Retries end at the timeout: keep the test short.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let failures: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("OpenTelemetry export"))
            .collect();
        assert_eq!(
            failures.len(),
            1,
            "{protocol}: one failure logged:\n{stderr}"
        );
        assert!(collector.is_empty(), "{protocol}");
        if protocol == "http/protobuf" {
            // The HTTP transport logs the cause the SDK leaves out.
            assert!(
                failures[0].contains("certificate"),
                "the refused certificate is named: {}",
                failures[0]
            );
        }
    }
}

#[test]
fn a_missing_or_unusable_certificate_file_is_one_error_naming_variable_and_file() {
    let pki = Pki::new();
    let missing = pki.files.path().join("missing.pem");
    let not_pem = pki
        .files
        .write("not-pem.pem", "this is not a certificate\n");
    let collector = Collector::start_tls(pki.server_config(true));
    let endpoint = collector.endpoint();
    // The TLS variables, and what the one error line mentions.
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let other = Pki::new();
    let cases: [Case; 5] = [
        (
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", Pki::path(&missing))],
            &[
                "OTEL_EXPORTER_OTLP_CERTIFICATE=",
                "missing.pem",
                "cannot read the file",
            ],
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", Pki::path(&not_pem))],
            &[
                "OTEL_EXPORTER_OTLP_CERTIFICATE=",
                "not-pem.pem",
                "no PEM certificate",
            ],
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", Pki::path(&pki.ca)),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    Pki::path(&pki.client_cert),
                ),
            ],
            &[
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is set but OTEL_EXPORTER_OTLP_CLIENT_KEY is not",
            ],
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", Pki::path(&pki.ca)),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    Pki::path(&pki.client_cert),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", Pki::path(&pki.ca)),
            ],
            &[
                "OTEL_EXPORTER_OTLP_CLIENT_KEY=",
                "ca.pem",
                "no PEM private key",
            ],
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", Pki::path(&pki.ca)),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    Pki::path(&pki.client_cert),
                ),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
                    Pki::path(&other.client_key),
                ),
            ],
            &[
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY=",
                "are not a usable client certificate and key",
            ],
        ),
    ];
    for (protocol, (tls_env, mentions)) in ["grpc", "http/protobuf"].iter().cycle().zip(cases) {
        let mut env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", *protocol),
        ];
        env.extend(tls_env);
        let (_, output) = demo_audit(&env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{protocol}: one error for all signals:\n{stderr}"
        );
        assert!(lines[0].contains("ERROR"), "{}", lines[0]);
        assert!(
            lines[0].contains("traces, metrics, logs not exported"),
            "{}",
            lines[0]
        );
        for mention in mentions {
            assert!(
                lines[0].contains(mention),
                "{protocol}: {mention:?} in {}",
                lines[0]
            );
        }
    }
    assert!(collector.is_empty());
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
fn http_json_is_refused_in_one_warning_and_nothing_is_sent() {
    let collector = Collector::start();
    let endpoint = collector.endpoint();
    let (_, output) = demo_audit(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json"));
    assert!(lines[0].contains("JSON bodies is not built in"));
    assert!(
        lines[0].ends_with("not exported: traces, metrics, logs"),
        "{}",
        lines[0]
    );
    assert!(collector.is_empty());
}
