//! OpenTelemetry export over OTLP/gRPC, configured only by the standard
//! environment variables, and off unless an endpoint is set.
//!
//! [`init`] reads the environment and, for each signal (traces, metrics,
//! logs) whose endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, or
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`) and which is not
//! turned off (`OTEL_SDK_DISABLED=true`, `OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none`),
//! builds an SDK provider with a batching OTLP/gRPC exporter. The SDK itself
//! reads the endpoints, `OTEL_EXPORTER_OTLP_*_TIMEOUT`, `*_HEADERS`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`, `OTEL_BLRP_*`
//! and `OTEL_METRIC_EXPORT_INTERVAL`; the service name defaults to
//! `tollgate`. Only gRPC is built in: `OTEL_EXPORTER_OTLP_PROTOCOL` other
//! than `grpc` turns export off with one warning (docs/audit.md says why).
//!
//! The exporters run on a small runtime of their own, so export never
//! competes with admission or audit work for the caller's runtime. The
//! [`Guard`] that [`init`] returns flushes and shuts the providers down
//! when dropped: a one-shot `tollgate audit` exports everything before it
//! exits. Export failures never fail the command; the first one is logged.
//!
//! What is exported: [`audit`] (a log record per finding and per blocker,
//! metrics, a trace per run) and [`admission`] (a span per review, review
//! counts and latency).

pub mod admission;
pub mod audit;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::Key;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::audit::Resource as Object;

/// The instrumentation scope of everything Tollgate exports.
pub const SCOPE: &str = "tollgate";

/// The service name when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "tollgate";

/// The three OpenTelemetry signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }

    fn lower(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }
}

/// Which signals to export, as the environment says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Wanted {
    traces: bool,
    metrics: bool,
    logs: bool,
}

impl Wanted {
    /// Read the standard variables through `env`. A protocol other than
    /// gRPC turns its signals off, with one warning per variable.
    fn from_env(env: &dyn Fn(&str) -> Option<String>) -> (Wanted, Vec<String>) {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let mut wanted = Wanted::default();
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return (wanted, Vec::new());
        }
        let mut refused: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
        for signal in Signal::ALL {
            let s = signal.upper();
            let endpoint = set(&format!("OTEL_EXPORTER_OTLP_{s}_ENDPOINT"))
                .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"));
            let exporter = set(&format!("OTEL_{s}_EXPORTER"));
            if endpoint.is_none() || exporter.is_some_and(|e| e.trim() == "none") {
                continue;
            }
            let protocol = [
                format!("OTEL_EXPORTER_OTLP_{s}_PROTOCOL"),
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
            ]
            .into_iter()
            .find_map(|var| set(&var).map(|p| (var, p.trim().to_string())));
            if let Some(protocol) = protocol
                && protocol.1 != "grpc"
            {
                refused.entry(protocol).or_default().push(signal.lower());
                continue;
            }
            match signal {
                Signal::Traces => wanted.traces = true,
                Signal::Metrics => wanted.metrics = true,
                Signal::Logs => wanted.logs = true,
            }
        }
        let warnings = refused
            .into_iter()
            .map(|((var, protocol), signals)| {
                format!(
                    "{var}={protocol}: this build exports OTLP over gRPC only (set grpc and the collector's gRPC port, 4317); not exported: {}",
                    signals.join(", ")
                )
            })
            .collect();
        (wanted, warnings)
    }

    fn any(self) -> bool {
        self.traces || self.metrics || self.logs
    }
}

/// The SDK providers of the signals being exported.
#[derive(Debug)]
pub struct Providers {
    /// Traces, when exported.
    pub tracer: Option<SdkTracerProvider>,
    /// Metrics, when exported.
    pub meter: Option<SdkMeterProvider>,
    /// Logs, when exported.
    pub logger: Option<SdkLoggerProvider>,
}

static ACTIVE: OnceLock<Providers> = OnceLock::new();

/// The providers, when [`init`] found an endpoint (`None` costs one load).
pub fn active() -> Option<&'static Providers> {
    ACTIVE.get()
}

/// Flushes and shuts down the exporters when dropped (drop it outside any
/// async context).
#[must_use = "dropping the guard shuts the exporters down"]
#[derive(Debug)]
pub struct Guard {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Guard {
    fn off() -> Self {
        Guard { runtime: None }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        if let Some(p) = active() {
            if let Some(t) = &p.tracer {
                report_failure("traces", t.shutdown());
            }
            if let Some(l) = &p.logger {
                report_failure("logs", l.shutdown());
            }
            if let Some(m) = &p.meter {
                report_failure("metrics", m.shutdown());
            }
        }
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

static FAILURE_LOGGED: AtomicBool = AtomicBool::new(false);

/// Log the first export failure (later ones would repeat it).
fn report_failure<E: Display>(signal: &str, result: Result<(), E>) {
    if let Err(e) = result
        && !FAILURE_LOGGED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "OpenTelemetry export of {signal} failed: {e} (further failures are not logged)"
        );
    }
}

/// Start exporting the signals whose OTLP endpoint the environment sets.
/// Without one, nothing is built and the guard does nothing. Problems
/// (a bad variable, no runtime) are logged and leave export off.
pub fn init() -> Guard {
    let (wanted, warnings) = Wanted::from_env(&|name| std::env::var(name).ok());
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if !wanted.any() || ACTIVE.get().is_some() {
        return Guard::off();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tollgate-otlp")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!("OpenTelemetry export is off: cannot start its runtime: {e}");
            return Guard::off();
        }
    };
    // The tonic channels are created on (and driven by) this runtime.
    let providers = {
        let _entered = runtime.enter();
        build(wanted, &service_resource())
    };
    if ACTIVE.set(providers).is_err() {
        return Guard::off();
    }
    Guard {
        runtime: Some(runtime),
    }
}

/// Build the providers; a signal whose exporter cannot be built is left
/// out with a warning.
fn build(wanted: Wanted, resource: &Resource) -> Providers {
    let warn = |signal: &str, e: &dyn Display| {
        tracing::warn!("OpenTelemetry {signal} are not exported: {e}");
    };
    let tracer = wanted
        .traces
        .then(|| {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
        })
        .and_then(|built| built.map_err(|e| warn("traces", &e)).ok())
        .map(|exporter| {
            SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_batch_exporter(exporter)
                .build()
        });
    let meter = wanted
        .metrics
        .then(|| {
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()
        })
        .and_then(|built| built.map_err(|e| warn("metrics", &e)).ok())
        .map(|exporter| {
            SdkMeterProvider::builder()
                .with_resource(resource.clone())
                .with_reader(PeriodicReader::builder(exporter).build())
                .build()
        });
    let logger = wanted
        .logs
        .then(|| {
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .build()
        })
        .and_then(|built| built.map_err(|e| warn("logs", &e)).ok())
        .map(|exporter| {
            SdkLoggerProvider::builder()
                .with_resource(resource.clone())
                .with_batch_exporter(exporter)
                .build()
        });
    Providers {
        tracer,
        meter,
        logger,
    }
}

/// The resource the SDK detects (`OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, the SDK's own attributes), named
/// [`DEFAULT_SERVICE_NAME`] when the environment names no service.
fn service_resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(DEFAULT_SERVICE_NAME)
            .build()
    }
}

/// The attributes that name a Kubernetes object: `k8s.namespace.name` and
/// the semantic conventions' `k8s.<kind>.name` where one exists for the
/// kind, plus `tollgate.resource.{api_version,kind,name}` for every kind.
pub fn object_attributes(object: &Object) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("tollgate.resource.api_version", object.api_version.clone()),
        ("tollgate.resource.kind", object.kind.clone()),
        ("tollgate.resource.name", object.name.clone()),
    ];
    if !object.namespace.is_empty() {
        out.push(("k8s.namespace.name", object.namespace.clone()));
    }
    if let Some(key) = k8s_name_key(&object.kind) {
        out.push((key, object.name.clone()));
    }
    out
}

/// The semantic conventions' name attribute of a Kubernetes kind.
fn k8s_name_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod" => "k8s.pod.name",
        "Node" => "k8s.node.name",
        "Namespace" => "k8s.namespace.name",
        "Deployment" => "k8s.deployment.name",
        "ReplicaSet" => "k8s.replicaset.name",
        "StatefulSet" => "k8s.statefulset.name",
        "DaemonSet" => "k8s.daemonset.name",
        "Job" => "k8s.job.name",
        "CronJob" => "k8s.cronjob.name",
        "ReplicationController" => "k8s.replicationcontroller.name",
        "HorizontalPodAutoscaler" => "k8s.hpa.name",
        "ResourceQuota" => "k8s.resourcequota.name",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(vars: &[(&str, &str)]) -> (Wanted, Vec<String>) {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Wanted::from_env(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert!(!wanted(&[]).0.any());
        assert!(
            !wanted(&[
                ("OTEL_SERVICE_NAME", "x"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", " ")
            ])
            .0
            .any()
        );
    }

    #[test]
    fn the_generic_endpoint_turns_every_signal_on() {
        let (w, warnings) = wanted(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert_eq!(
            w,
            Wanted {
                traces: true,
                metrics: true,
                logs: true
            }
        );
        assert!(warnings.is_empty());
    }

    #[test]
    fn signal_endpoints_and_exporter_none_select_signals() {
        let (w, _) = wanted(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4317",
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://collector:4317"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ]);
        assert_eq!(
            w,
            Wanted {
                traces: true,
                metrics: false,
                logs: false
            }
        );
        let (w, _) = wanted(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(!w.any());
    }

    #[test]
    fn http_protobuf_is_refused_with_one_warning() {
        let (w, warnings) = wanted(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ]);
        assert_eq!(
            w,
            Wanted {
                traces: false,
                metrics: true,
                logs: false
            }
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"));
        assert!(warnings[0].contains("gRPC only"));
        assert!(
            warnings[0].ends_with("not exported: traces, logs"),
            "{}",
            warnings[0]
        );
    }

    #[test]
    fn objects_get_semantic_convention_names() {
        let object = |kind: &str, namespace: &str| Object {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: "metrics-server".into(),
        };
        let deployment = object_attributes(&object("Deployment", "kube-system"));
        assert!(deployment.contains(&("k8s.deployment.name", "metrics-server".into())));
        assert!(deployment.contains(&("k8s.namespace.name", "kube-system".into())));
        let node = object_attributes(&object("Node", ""));
        assert!(node.contains(&("k8s.node.name", "metrics-server".into())));
        assert!(!node.iter().any(|(k, _)| *k == "k8s.namespace.name"));
        let pdb = object_attributes(&object("PodDisruptionBudget", "shop"));
        assert!(pdb.iter().all(|(k, _)| !k.ends_with(".name")
            || k.starts_with("tollgate.")
            || *k == "k8s.namespace.name"));
    }
}
