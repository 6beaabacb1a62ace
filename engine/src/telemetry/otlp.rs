//! OpenTelemetry export over OTLP (gRPC or HTTP/protobuf, plain or TLS),
//! configured only by the standard environment variables, and off unless an
//! endpoint is set.
//!
//! [`init`] reads the environment (`otlp::config`) and, for each signal (traces,
//! metrics, logs) whose endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, or
//! `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`) and which is not
//! turned off (`OTEL_SDK_DISABLED=true`, `OTEL_{TRACES,METRICS,LOGS}_EXPORTER=none`),
//! builds an SDK provider with a batching exporter on the signal's protocol
//! (`otlp::transport`) and TLS settings (`otlp::tls`). The SDK itself reads the
//! endpoints, `OTEL_EXPORTER_OTLP_*_TIMEOUT`, `*_HEADERS`, `*_COMPRESSION`,
//! `*_INSECURE`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_BSP_*`, `OTEL_BLRP_*` and `OTEL_METRIC_EXPORT_INTERVAL`; the service
//! name defaults to `tollgate`. A signal whose settings cannot be used (an
//! unknown protocol, an unreadable certificate file) is not exported, with
//! one message naming the variable.
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
mod config;
mod tls;
mod transport;

use std::fmt::Display;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::Key;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

use self::config::{Config, Signal};
use crate::audit::Resource as Object;

/// The instrumentation scope of everything Tollgate exports.
pub const SCOPE: &str = "tollgate";

/// The service name when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "tollgate";

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

/// Log the first export failure of `signal` (later ones would repeat it).
fn report_failure<E: Display>(signal: &str, result: Result<(), E>) {
    if let Err(e) = result {
        log_failure_once(format_args!("OpenTelemetry export of {signal} failed: {e}"));
    }
}

/// Log `failure` if it is the first export failure.
fn log_failure_once(failure: impl Display) {
    if !FAILURE_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!("{failure} (further failures are not logged)");
    }
}

/// Start exporting the signals whose OTLP endpoint the environment sets.
/// Without one, nothing is built and the guard does nothing. Problems
/// (a bad variable, no runtime) are logged and leave export off.
pub fn init() -> Guard {
    let (config, warnings) = Config::from_env(&|name| std::env::var(name).ok());
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if !config.any() || ACTIVE.get().is_some() {
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
    // The tonic channels are created on (and driven by) this runtime; the
    // HTTP requests run on it.
    let providers = {
        let _entered = runtime.enter();
        build(&config, &service_resource(), runtime.handle())
    };
    if ACTIVE.set(providers).is_err() {
        return Guard::off();
    }
    Guard {
        runtime: Some(runtime),
    }
}

/// Build the providers; a signal whose exporter cannot be built is left
/// out with one error naming the cause (the same cause of several signals
/// is reported once).
fn build(config: &Config, resource: &Resource, runtime: &tokio::runtime::Handle) -> Providers {
    let mut providers = Providers {
        tracer: None,
        meter: None,
        logger: None,
    };
    let mut failed: Vec<(String, Vec<Signal>)> = Vec::new();
    for (signal, target) in config.targets() {
        let built = match signal {
            Signal::Traces => transport::spans(target, runtime).map(|exporter| {
                providers.tracer = Some(
                    SdkTracerProvider::builder()
                        .with_resource(resource.clone())
                        .with_batch_exporter(exporter)
                        .build(),
                );
            }),
            Signal::Metrics => transport::metrics(target, runtime).map(|exporter| {
                providers.meter = Some(
                    SdkMeterProvider::builder()
                        .with_resource(resource.clone())
                        .with_reader(PeriodicReader::builder(exporter).build())
                        .build(),
                );
            }),
            Signal::Logs => transport::logs(target, runtime).map(|exporter| {
                providers.logger = Some(
                    SdkLoggerProvider::builder()
                        .with_resource(resource.clone())
                        .with_batch_exporter(exporter)
                        .build(),
                );
            }),
        };
        if let Err(e) = built {
            let cause = crate::error_text::one_line(&e);
            match failed.iter_mut().find(|(c, _)| *c == cause) {
                Some((_, signals)) => signals.push(signal),
                None => failed.push((cause, vec![signal])),
            }
        }
    }
    for (cause, signals) in failed {
        let signals: Vec<&str> = signals.iter().map(|s| s.lower()).collect();
        tracing::error!("OpenTelemetry {} not exported: {cause}", signals.join(", "));
    }
    providers
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
