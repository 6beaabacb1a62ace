//! `tollgate generate install` and `tollgate generate helm-chart`: resolve
//! their flags and write files; the builders live in
//! [`crate::generate::install`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::FromArgMatches as _;

use crate::cli::common::load_policies;
use crate::generate::install::{
    self, AuditMode, FailurePolicy, Settings, Tls, admission::Rules, policies::Policies,
    tls::Material,
};

/// TLS choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// cert-manager issues and rotates the serving certificate; its cainjector fills caBundle.
    CertManager,
    /// A CA and serving certificate generated here and kept in --ca-dir.
    SelfSigned,
}

/// Arguments of `tollgate generate install`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Tollgate's namespace (left out of the webhooks' namespaceSelector).
    #[arg(short = 'n', long, default_value = "tollgate")]
    pub namespace: String,
    /// The container image (its entrypoint is the `tollgate` binary).
    #[arg(long, default_value = concat!("ghcr.io/tollgate-dev/tollgate:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The image pull policy.
    #[arg(long, default_value = "IfNotPresent", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: String,
    /// Webhook server replicas.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub replicas: u32,
    /// Schedule Tollgate's pods on any node instead of requiring control-plane
    /// nodes (for clusters without schedulable control planes, e.g. managed Kubernetes).
    #[arg(long)]
    pub no_control_plane: bool,
    /// Where the serving certificate comes from.
    #[arg(long, value_enum, default_value_t = TlsMode::CertManager)]
    pub tls: TlsMode,
    /// With `--tls self-signed`: the directory that keeps the CA and the
    /// serving certificate; missing files are created, existing ones reused,
    /// so reruns write the same manifests.
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,
    /// How the periodic audit runs.
    #[arg(long, value_enum, default_value_t = AuditMode::Deployment)]
    pub audit: AuditMode,
    /// Re-audit interval of the audit Deployment (e.g. 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = interval)]
    pub audit_interval: String,
    /// Schedule of the audit CronJob.
    #[arg(long, default_value = "*/10 * * * *")]
    pub audit_schedule: String,
    /// Do not write PolicyReports to the cluster (and grant no write access).
    #[arg(long)]
    pub no_audit_reports: bool,
    /// OTLP endpoint for traces, metrics and logs (OTEL_EXPORTER_OTLP_ENDPOINT).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// What the API server does when the webhook cannot answer in time.
    #[arg(long, value_enum, ignore_case = true, default_value_t = FailurePolicy::Ignore)]
    pub failure_policy: FailurePolicy,
    /// The webhooks' timeoutSeconds; the server answers one second sooner.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=30))]
    pub timeout_seconds: u32,
    /// Policies to install: bundled packs by name, or local policy files and
    /// directories (packaged into a ConfigMap). The webhook rules cover the
    /// kinds they judge. Repeatable.
    #[arg(long = "policies", short = 'p', visible_alias = "policy", num_args = 1.., default_value = "autoscaler-isolation")]
    pub policies: Vec<String>,
    /// Where to write: `-` for one YAML stream on standard output, or a
    /// directory (one file per group, numbered in apply order).
    #[arg(short = 'o', long = "output", default_value = "-")]
    pub output: PathBuf,
}

/// Arguments of `tollgate generate helm-chart`.
#[derive(Debug, Clone, clap::Args)]
pub struct HelmChartArgs {
    /// The chart directory to write (e.g. deploy/helm/tollgate).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

/// Run `tollgate generate install`.
pub fn run_install(args: &InstallArgs) -> anyhow::Result<ExitCode> {
    {
        {
            let settings = resolve(&args)?;
            let manifests = install::manifests(&settings);
            if args.output == Path::new("-") {
                let mut out = std::io::stdout().lock();
                out.write_all(install::to_stream(&manifests).as_bytes())?;
                out.flush()?;
            } else {
                // A group left out this time (e.g. `--audit none`) must not
                // stay behind for `kubectl apply -f dir`.
                let ours: Vec<String> = install::files::ALL
                    .iter()
                    .map(|f| format!("{f}.yaml"))
                    .collect();
                write_files(&args.output, &install::to_files(&manifests), &ours)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `tollgate generate helm-chart`.
pub fn run_helm_chart(args: &HelmChartArgs) -> anyhow::Result<ExitCode> {
    {
        {
            let defaults = resolve(&default_install_args())?;
            let templates = args.output.join("templates");
            let ours: Vec<String> = std::fs::read_dir(&templates)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    std::fs::read_to_string(p)
                        .is_ok_and(|t| t.starts_with(install::chart::GENERATED))
                })
                .filter_map(|p| {
                    p.file_name()
                        .map(|n| format!("templates/{}", n.to_string_lossy()))
                })
                .collect();
            write_files(&args.output, &install::chart::files(&defaults), &ours)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `generate install` with no flags: the chart's defaults come from the same clap attributes.
fn default_install_args() -> InstallArgs {
    let command = clap::Command::new("install");
    let command = <InstallArgs as clap::Args>::augment_args(command);
    let matches = command.get_matches_from(["install"]);
    InstallArgs::from_arg_matches(&matches).expect("the defaults parse")
}

/// Turn flags into settings: load the policies for their kinds, package
/// local policy files, and read or create the self-signed material.
pub fn resolve(args: &InstallArgs) -> anyhow::Result<Settings> {
    if !is_dns_label(&args.namespace) {
        bail!(
            "--namespace {}: not a valid namespace name (lowercase letters, digits and '-', at most 63)",
            args.namespace
        );
    }
    let set = load_policies(&args.policies, None, &crate::cluster::Empty::default())?;
    let rules = Rules::of(&set)?;
    let policies = Policies::resolve(&args.policies)?;
    let tls = match (args.tls, &args.ca_dir) {
        (TlsMode::CertManager, None) => Tls::CertManager,
        (TlsMode::CertManager, Some(_)) => bail!("--ca-dir is for --tls self-signed"),
        (TlsMode::SelfSigned, Some(dir)) => {
            Tls::SelfSigned(Material::load_or_create(dir, &args.namespace)?)
        }
        (TlsMode::SelfSigned, None) => bail!(
            "--tls self-signed needs --ca-dir DIR: the CA and serving certificate are kept there \
             (created on the first run) so that reruns write the same manifests"
        ),
    };
    if let Some(endpoint) = &args.otlp_endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        bail!("--otlp-endpoint {endpoint}: expected an http:// or https:// URL");
    }
    Ok(Settings {
        namespace: args.namespace.clone(),
        image: args.image.clone(),
        image_pull_policy: args.image_pull_policy.clone(),
        replicas: args.replicas,
        control_plane: !args.no_control_plane,
        tls,
        audit: args.audit,
        audit_interval: args.audit_interval.clone(),
        audit_schedule: args.audit_schedule.clone(),
        audit_reports: !args.no_audit_reports,
        otlp_endpoint: args.otlp_endpoint.clone(),
        failure_policy: args.failure_policy,
        timeout_seconds: args.timeout_seconds,
        policies,
        rules,
    })
}

/// A duration `tollgate audit --interval` accepts, kept as typed.
fn interval(text: &str) -> Result<String, String> {
    match crate::cli::common::parse_duration(text)? {
        d if d.is_zero() => Err(format!("{text:?}: the interval must be longer than zero")),
        _ => Ok(text.to_string()),
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Write `files` (relative paths) under `dir`, creating directories, and
/// remove the files of `ours` (relative paths this command writes) that
/// `files` no longer has.
fn write_files(dir: &Path, files: &[(String, String)], ours: &[String]) -> anyhow::Result<()> {
    for stale in ours.iter().filter(|o| !files.iter().any(|(f, _)| f == *o)) {
        let path = dir.join(stale);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove stale {}", path.display()));
            }
            _ => {}
        }
    }
    for (relative, text) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    Ok(())
}
