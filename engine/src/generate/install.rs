//! `tollgate generate install`: the manifests that install Tollgate itself,
//! and the Helm chart made from the same builders (so the two cannot drift).
//!
//! [`Settings`] is what the user chose; [`manifests`] builds every object for
//! it; [`chart::files`] builds the chart, where the same builders write Helm
//! expressions in place of the chosen values (see [`Ctx`]). Submodules own one
//! group of objects each: [`rbac`], [`tls`], [`webhook`] (the server's
//! Deployment and what keeps it available), [`admission`] (the webhook
//! configurations and their rules), [`audit`], [`policies`].

pub mod admission;
pub mod audit;
pub mod chart;
mod pod;
pub mod policies;
pub mod rbac;
pub mod tls;
pub mod webhook;
pub mod yaml;

use serde_json::{Map, Value, json};

use self::admission::Rules;
use self::tls::Material;

/// Why the installation could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A policy judges a kind the generator has no resource name for.
    #[error(
        "policy {policy} judges kind {kind}, which is not a built-in Kubernetes kind the webhook rules know (known: {known})"
    )]
    UnknownKind {
        /// The policy.
        policy: String,
        /// The kind.
        kind: String,
        /// The kinds with a known resource.
        known: String,
    },
    /// A policy judges every kind.
    #[error(
        "policy {0} judges every kind (`*`); a webhook for every resource would intercept leases and events, so list the kinds it judges"
    )]
    EveryKind(String),
    /// The CA directory cannot be read or written, or holds unusable material.
    #[error("--ca-dir {path}: {message}")]
    CaDir {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate the self-signed certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Local policy files cannot be packaged into the ConfigMap.
    #[error("--policies {spec}: {message}")]
    Policies {
        /// The --policies value.
        spec: String,
        /// What went wrong.
        message: String,
    },
}

/// Where the webhook's serving certificate comes from.
#[derive(Debug, Clone)]
pub enum Tls {
    /// cert-manager issues and rotates it; its cainjector fills `caBundle`.
    CertManager,
    /// A CA and serving certificate made by `tollgate` (kept in `--ca-dir`).
    SelfSigned(Material),
}

/// How the periodic audit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditMode {
    /// A Deployment that keeps watches and re-audits on `--audit-interval`,
    /// one replica active through a Lease.
    Deployment,
    /// A CronJob that audits on `--audit-schedule`.
    Cronjob,
    /// No audit.
    None,
}

/// What the webhook does when the API server cannot reach it in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailurePolicy {
    /// Reject the request.
    Fail,
    /// Admit the request unjudged (the audit finds it later).
    Ignore,
}

impl FailurePolicy {
    /// The webhook configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::Fail => "Fail",
            FailurePolicy::Ignore => "Ignore",
        }
    }
}

/// What the user chose.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tollgate's namespace.
    pub namespace: String,
    /// The container image (entrypoint `tollgate`).
    pub image: String,
    /// The image pull policy.
    pub image_pull_policy: String,
    /// Webhook replicas.
    pub replicas: u32,
    /// Whether the pods run on control-plane nodes.
    pub control_plane: bool,
    /// Serving certificate source.
    pub tls: Tls,
    /// How the audit runs.
    pub audit: AuditMode,
    /// `tollgate audit --interval` for the Deployment.
    pub audit_interval: String,
    /// The CronJob's schedule.
    pub audit_schedule: String,
    /// Whether the audit writes PolicyReports to the cluster.
    pub audit_reports: bool,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, if telemetry is exported.
    pub otlp_endpoint: Option<String>,
    /// The webhook configurations' failure policy.
    pub failure_policy: FailurePolicy,
    /// The webhook configurations' timeoutSeconds (the server answers 1 s sooner).
    pub timeout_seconds: u32,
    /// The `--policies` the server and audit load (bundled packs as named,
    /// local files from the policies ConfigMap).
    pub policies: policies::Policies,
    /// The webhook rules derived from the policies.
    pub rules: Rules,
}

/// Object names, fixed so that scripts and the docs can rely on them.
pub mod names {
    /// The webhook's Deployment, Service, ServiceAccount, PDB and RBAC.
    pub const WEBHOOK: &str = "tollgate-webhook";
    /// The audit's Deployment or CronJob, ServiceAccount, RBAC and Lease.
    pub const AUDIT: &str = "tollgate-audit";
    /// The PriorityClass of Tollgate's pods.
    pub const PRIORITY_CLASS: &str = "tollgate";
    /// The Secret with the serving certificate.
    pub const TLS_SECRET: &str = "tollgate-webhook-tls";
    /// The webhook configurations.
    pub const WEBHOOK_CONFIGURATION: &str = "tollgate";
    /// The ConfigMap with local policy files.
    pub const POLICIES_CONFIGMAP: &str = "tollgate-policies";
}

/// A condition on part of the output: evaluated here for manifests, written
/// as `{{- if ... }}` in the chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// `--tls cert-manager`.
    TlsCertManager,
    /// `--tls self-signed`.
    TlsSelfSigned,
    /// `--audit deployment`.
    AuditDeployment,
    /// `--audit cronjob`.
    AuditCronJob,
    /// `--audit` other than none.
    AuditEnabled,
    /// The audit writes reports to the cluster.
    AuditReports,
    /// `--otlp-endpoint` given.
    Otlp,
    /// Pods on control-plane nodes (not `--no-control-plane`).
    ControlPlane,
}

impl Cond {
    /// The Helm condition.
    pub fn expression(self) -> &'static str {
        match self {
            Cond::TlsCertManager => r#"eq .Values.tls.mode "cert-manager""#,
            Cond::TlsSelfSigned => r#"eq .Values.tls.mode "self-signed""#,
            Cond::AuditDeployment => r#"eq .Values.audit.mode "deployment""#,
            Cond::AuditCronJob => r#"eq .Values.audit.mode "cronjob""#,
            Cond::AuditEnabled => r#"ne .Values.audit.mode "none""#,
            Cond::AuditReports => r#"and (ne .Values.audit.mode "none") .Values.audit.reports"#,
            Cond::Otlp => ".Values.otlp.endpoint",
            Cond::ControlPlane => ".Values.controlPlane",
        }
    }

    /// Whether it holds for `settings`.
    pub fn holds(self, settings: &Settings) -> bool {
        match self {
            Cond::TlsCertManager => matches!(settings.tls, Tls::CertManager),
            Cond::TlsSelfSigned => matches!(settings.tls, Tls::SelfSigned(_)),
            Cond::AuditDeployment => settings.audit == AuditMode::Deployment,
            Cond::AuditCronJob => settings.audit == AuditMode::Cronjob,
            Cond::AuditEnabled => settings.audit != AuditMode::None,
            Cond::AuditReports => settings.audit != AuditMode::None && settings.audit_reports,
            Cond::Otlp => settings.otlp_endpoint.is_some(),
            Cond::ControlPlane => settings.control_plane,
        }
    }
}

/// What the builders write: concrete manifests, or chart templates.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The settings (for the chart: the defaults its values.yaml states).
    pub settings: &'a Settings,
    /// Whether Helm expressions replace the values.
    pub chart: bool,
}

impl Ctx<'_> {
    /// Tollgate's namespace (`{{ .Release.Namespace }}` in the chart).
    pub fn namespace(&self) -> String {
        if self.chart {
            "{{ .Release.Namespace }}".into()
        } else {
            self.settings.namespace.clone()
        }
    }

    /// `actual`, or the Helm expression `expression` in the chart.
    pub fn value(&self, expression: &str, actual: impl FnOnce() -> Value) -> Value {
        if self.chart {
            yaml::raw(expression)
        } else {
            actual()
        }
    }

    /// Map entries present when `cond` holds.
    pub fn entries_if(&self, cond: Cond, entries: Value) -> Map<String, Value> {
        if self.chart {
            yaml::if_entries(cond.expression(), entries)
        } else if cond.holds(self.settings) {
            entries.as_object().cloned().unwrap_or_default()
        } else {
            Map::new()
        }
    }

    /// Sequence items present when `cond` holds.
    pub fn items_if(&self, cond: Cond, items: Vec<Value>) -> Vec<Value> {
        if self.chart {
            vec![yaml::if_items(cond.expression(), items)]
        } else if cond.holds(self.settings) {
            items
        } else {
            Vec::new()
        }
    }

    /// Labels of every object of `component`.
    pub fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "tollgate",
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "tollgate",
        })
    }

    /// Metadata of a namespaced object of `component`.
    pub fn metadata(&self, name: &str, component: &str) -> Value {
        json!({"name": name, "namespace": self.namespace(), "labels": self.labels(component)})
    }
}

/// One object and where it goes.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file (without extension) it is written to, in apply order.
    pub file: &'static str,
    /// Present only when this holds (chart: the template's `if`).
    pub when: Option<Cond>,
    /// The object.
    pub object: Value,
}

/// The files manifests are grouped into, in the order `kubectl apply -f dir` reads them.
pub mod files {
    /// Namespace.
    pub const NAMESPACE: &str = "00-namespace";
    /// ServiceAccounts, roles and bindings.
    pub const RBAC: &str = "10-rbac";
    /// Certificates: cert-manager objects or the Secret.
    pub const TLS: &str = "20-tls";
    /// The webhook server: PriorityClass, ConfigMap, Deployment, PDB, Service.
    pub const WEBHOOK: &str = "30-webhook";
    /// The audit Deployment or CronJob.
    pub const AUDIT: &str = "40-audit";
    /// The webhook configurations, last: the server exists before the API server calls it.
    pub const ADMISSION: &str = "50-admission";
    /// Every file, in order.
    pub const ALL: &[&str] = &[NAMESPACE, RBAC, TLS, WEBHOOK, AUDIT, ADMISSION];
}

/// Every object for `ctx`, in apply order; objects whose condition does not
/// hold are left out unless building the chart.
pub fn build(ctx: &Ctx<'_>) -> Vec<Manifest> {
    let mut all = Vec::new();
    if !ctx.chart {
        // Helm installs into an existing namespace (`--create-namespace`).
        all.push(Manifest {
            file: files::NAMESPACE,
            when: None,
            object: json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ctx.namespace(), "labels": ctx.labels("namespace")},
            }),
        });
    }
    all.extend(rbac::manifests(ctx));
    all.extend(tls::manifests(ctx));
    all.extend(webhook::manifests(ctx));
    all.extend(audit::manifests(ctx));
    all.extend(admission::manifests(ctx));
    if ctx.chart {
        all
    } else {
        all.into_iter()
            .filter(|m| m.when.is_none_or(|c| c.holds(ctx.settings)))
            .collect()
    }
}

/// The installation manifests for `settings`.
pub fn manifests(settings: &Settings) -> Vec<Manifest> {
    build(&Ctx {
        settings,
        chart: false,
    })
}

/// Manifests as one multi-document YAML stream.
pub fn to_stream(manifests: &[Manifest]) -> String {
    manifests
        .iter()
        .map(|m| format!("---\n{}", yaml::document(&m.object)))
        .collect()
}

/// Manifests grouped into files (`<file>.yaml`, apply order), each a YAML stream.
pub fn to_files(manifests: &[Manifest]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for manifest in manifests {
        let name = format!("{}.yaml", manifest.file);
        let text = format!("---\n{}", yaml::document(&manifest.object));
        match out.iter_mut().find(|(file, _)| *file == name) {
            Some((_, body)) => body.push_str(&text),
            None => out.push((name, text)),
        }
    }
    out
}
