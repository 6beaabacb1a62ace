//! `tollgate audit`: judge a cluster (a snapshot, or the live cluster through
//! the kubeconfig) with the policy pack and explain why its autoscaler pool
//! nodes cannot scale down; optionally as PolicyReports, and periodically
//! ([`periodic`]).
//!
//! Without `--snapshot` the live cluster is audited, as kubectl would reach
//! it: `--kubeconfig`/`$KUBECONFIG`/`~/.kube/config` and `--context`, or the
//! pod's service account in a cluster. `--cluster` says so explicitly.
//!
//! Exit codes: 0 clean, 1 findings or blocked nodes, 2 error (a periodic
//! audit exits 0 when stopped by SIGTERM or SIGINT).

mod periodic;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use tollgate_sdk::model::NodePool;

use super::common::{
    json_logs, load_policies, load_pools, load_snapshot, parse_duration, use_logs_on_this_thread,
};
use crate::audit::policy_report::{self, DEFAULT_MAX_RESULTS, Flavour, ReportObject};
use crate::audit::{self, Report, explain};
use crate::cluster::live::{self, Connect, DEFAULT_PAGE_SIZE};
use crate::cluster::pools::Version;
use crate::cluster::{ClusterView, Snapshot};
use crate::evaluator::Evaluator;
use crate::output::{Format, write_structured};
use crate::telemetry::otlp;

/// Arguments of `tollgate audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// A snapshot: a file or directory of Kubernetes objects (multi-document
    /// YAML or JSON, `kind: List` as `kubectl get -A -o yaml` writes).
    /// Without it, the live cluster is audited.
    #[arg(long, conflicts_with = "cluster")]
    pub snapshot: Option<PathBuf>,
    /// Audit the live cluster (the default when --snapshot is not given).
    #[arg(long)]
    pub cluster: bool,
    /// The kubeconfig file (default $KUBECONFIG, then ~/.kube/config, then the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Report findings about objects in this namespace only (the whole
    /// cluster is still read: placement and scale-down depend on all of it).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Objects per list request on a live cluster.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE)]
    pub page_size: u32,
    /// Policies to audit with (paths or bundled packs). Repeatable.
    #[arg(long = "policy", short = 'p', default_value = "autoscaler-isolation")]
    pub policies: Vec<String>,
    /// Policy settings (see `tollgate eval --help`).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Node pools declared explicitly (`pools: [{name, minSize, namePrefix, nodeSelector, taints, labels}]`);
    /// they override pools discovered from the cluster-autoscaler Deployment.
    #[arg(long)]
    pub pools: Option<PathBuf>,
    /// The cluster-autoscaler version whose rules apply (default: from its image).
    #[arg(long)]
    pub ca_version: Option<String>,
    /// A cluster-autoscaler flag override, `name=value` (e.g. `skip-nodes-with-local-storage=false`). Repeatable.
    #[arg(long = "ca-flag")]
    pub ca_flags: Vec<String>,
    /// The time the audit is judged at (RFC 3339; default now), for pod ages.
    #[arg(long)]
    pub now: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Audit the live cluster again every DURATION (`30s`, `10m`, `1h`),
    /// keeping watches open in between, until SIGTERM or SIGINT.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// With --interval: audit only while holding a coordination.k8s.io Lease,
    /// so that one of several replicas audits and writes reports.
    #[arg(long, requires = "interval")]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(long, default_value = "tollgate-audit")]
    pub lease_name: String,
    /// The Lease's namespace (default the pod's namespace in a cluster, else `default`).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// How long the Lease holds without renewal.
    #[arg(long, default_value = "15s", value_name = "DURATION", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// This replica's identity in the Lease (default `$POD_NAME`, else hostname and process id).
    #[arg(long)]
    pub lease_identity: Option<String>,
    /// Also produce the findings as report objects of this API.
    #[arg(long, value_enum)]
    pub report: Option<Flavour>,
    /// Write the report objects into this directory (stale ones removed).
    #[arg(long, requires = "report", value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Apply the report objects to the cluster by server-side apply (stale ones deleted).
    #[arg(long, requires = "report")]
    pub report_apply: bool,
    /// Results per report object; more are split over numbered reports.
    #[arg(long, default_value_t = DEFAULT_MAX_RESULTS)]
    pub report_max_results: usize,
}

/// Everything one audit pass needs besides the cluster.
struct Auditor {
    evaluator: Evaluator,
    overrides: explain::Overrides,
    declared: Option<Vec<NodePool>>,
    namespace: Option<String>,
    output: Format,
    report: Option<Flavour>,
    report_dir: Option<PathBuf>,
    report_max_results: usize,
    /// Warnings added to every report (a live audit's unread kinds).
    warnings: Vec<String>,
}

impl Auditor {
    /// `context` is where native policies' bindings and params are looked up
    /// besides the policy files: the snapshot, or nothing for a live cluster.
    fn new(args: &AuditArgs, context: &dyn ClusterView) -> anyhow::Result<Self> {
        let mut overrides = explain::Overrides::default();
        if let Some(v) = &args.ca_version {
            overrides.version = Some(Version::parse(v).with_context(|| {
                format!("--ca-version {v}: expected a version such as v1.32.0")
            })?);
        }
        for flag in &args.ca_flags {
            let Some((name, value)) = flag.trim_start_matches("--").split_once('=') else {
                bail!("--ca-flag {flag}: expected name=value");
            };
            overrides.flags.push((name.to_string(), value.to_string()));
        }
        if let Some(now) = &args.now {
            overrides.now = Some(
                audit::time::parse_timestamp(now)
                    .with_context(|| format!("--now {now}: expected an RFC 3339 time"))?,
            );
        }
        if args.report.is_some() && args.report_dir.is_none() && !args.report_apply {
            bail!("--report needs --report-dir DIR or --report-apply");
        }
        Ok(Auditor {
            declared: args.pools.as_deref().map(load_pools).transpose()?,
            evaluator: Evaluator::new(load_policies(
                &args.policies,
                args.settings.as_deref(),
                context,
            )?),
            overrides,
            namespace: args.namespace.clone(),
            output: args.output,
            report: args.report,
            report_dir: args.report_dir.clone(),
            report_max_results: args.report_max_results,
            warnings: Vec::new(),
        })
    }

    /// A snapshot of live objects, with the declared pools over the discovered ones.
    fn snapshot_of(&self, objects: Vec<serde_json::Value>) -> Snapshot {
        let mut snapshot = Snapshot::from_objects(objects);
        if let Some(pools) = &self.declared {
            snapshot.declare_pools(pools.clone());
        }
        snapshot
    }

    /// Audit one snapshot (and export it over OTLP when that is on).
    fn audit(&self, snapshot: Snapshot) -> anyhow::Result<Report> {
        let otlp = otlp::active();
        let started = (SystemTime::now(), Instant::now());
        let assumptions = explain::assumptions(snapshot.autoscaler(), &self.overrides)?;
        let set = self.evaluator.policies().policies();
        let mut times = otlp.map(|_| vec![audit::PolicyTime::default(); set.len()]);
        let mut report = audit::run_timed(
            Arc::new(snapshot),
            &self.evaluator,
            &assumptions,
            times.as_deref_mut(),
        );
        report.warnings.extend(self.warnings.iter().cloned());
        let report = match &self.namespace {
            Some(ns) => report.restrict_to_namespace(ns),
            None => report,
        };
        if let (Some(providers), Some(times)) = (otlp, &times) {
            let names: Vec<&str> = set.iter().map(|p| p.name.as_str()).collect();
            let run = otlp::audit::Run {
                started: started.0,
                elapsed: started.1.elapsed(),
                policies: &names,
                times,
            };
            otlp::audit::record(providers, &report, run);
        }
        Ok(report)
    }

    /// Print the report on standard output.
    fn print(&self, report: &Report) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.output {
            Format::Text => audit::report::write_text(&mut out, report, true)?,
            format => write_structured(&mut out, format, report)?,
        }
        out.flush()?;
        Ok(())
    }

    /// The report objects (none without `--report`).
    fn report_objects(&self, report: &Report) -> Vec<ReportObject> {
        match self.report {
            Some(flavour) => policy_report::build(
                report,
                flavour,
                self.report_max_results,
                report.scale_down.assumptions.now,
            ),
            None => Vec::new(),
        }
    }

    /// Write the report objects to `--report-dir`, if given.
    fn write_reports(&self, objects: &[ReportObject]) -> anyhow::Result<()> {
        let (Some(flavour), Some(dir)) = (self.report, &self.report_dir) else {
            return Ok(());
        };
        let done = policy_report::files::write(dir, flavour, objects, self.namespace.as_deref())
            .context("cannot write the reports")?;
        tracing::info!(
            written = done.written.len(),
            removed = done.removed.len(),
            dir = %dir.display(),
            "reports written"
        );
        Ok(())
    }

    /// Apply the report objects to the cluster (`--report-apply`).
    async fn apply_reports(
        &self,
        client: &kube::Client,
        objects: &[ReportObject],
    ) -> Result<(), policy_report::apply::Error> {
        let Some(flavour) = self.report else {
            return Ok(());
        };
        let done = policy_report::apply::apply(client, flavour, objects, self.namespace.as_deref())
            .await?;
        tracing::info!(
            applied = done.applied.len(),
            deleted = done.deleted.len(),
            "reports applied"
        );
        Ok(())
    }
}

fn exit_code(report: &Report) -> ExitCode {
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Run `tollgate audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    // Dropped on return: a one-shot audit exports everything before exiting.
    let _otlp = otlp::init();
    let Some(path) = &args.snapshot else {
        let auditor = Auditor::new(&args, &crate::cluster::Empty::default())?;
        return run_live(args, auditor);
    };
    for (given, flag) in [
        (args.interval.is_some(), "--interval"),
        (args.report_apply, "--report-apply"),
        (args.kubeconfig.is_some(), "--kubeconfig"),
        (args.context.is_some(), "--context"),
    ] {
        if given {
            bail!("{flag} applies to a live cluster, not to --snapshot");
        }
    }
    let declared = args.pools.as_deref().map(load_pools).transpose()?;
    let snapshot = load_snapshot(path, declared)?;
    let auditor = Auditor::new(&args, &snapshot)?;
    let report = auditor.audit(snapshot)?;
    auditor.print(&report)?;
    auditor.write_reports(&auditor.report_objects(&report))?;
    Ok(exit_code(&report))
}

fn run_live(args: AuditArgs, mut auditor: Auditor) -> anyhow::Result<ExitCode> {
    auditor.warnings = live::kinds::unread_kinds(
        auditor
            .evaluator
            .policies()
            .policies()
            .iter()
            .map(|p| (p.name.as_str(), p.metadata.kinds.as_slice())),
    );
    let connect = Connect {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .worker_threads(2)
        .thread_name("tollgate-audit");
    let Some(interval) = args.interval else {
        let runtime = builder.build().context("cannot start the async runtime")?;
        let result = runtime.block_on(audit_once(
            connect,
            &auditor,
            args.page_size,
            args.report_apply,
        ));
        runtime.shutdown_timeout(Duration::from_secs(2));
        return result;
    };
    // A periodic audit is a service: structured logs at info, like `serve`.
    let logs = json_logs();
    tracing::dispatcher::with_default(&logs, || {
        let options = periodic::Options::new(&args, interval)?;
        let thread_logs = logs.clone();
        builder.on_thread_start(move || use_logs_on_this_thread(&thread_logs));
        let runtime = builder.build().context("cannot start the async runtime")?;
        let result = runtime.block_on(periodic::run(connect, Arc::new(auditor), options));
        runtime.shutdown_timeout(Duration::from_secs(2));
        result.map(|()| ExitCode::SUCCESS)
    })
}

/// List the cluster, audit it once, print and report.
async fn audit_once(
    connect: Connect,
    auditor: &Auditor,
    page_size: u32,
    apply: bool,
) -> anyhow::Result<ExitCode> {
    let client = connect.client().await?;
    let tty = std::io::stderr().is_terminal();
    let mut progress = |kind: &live::Kind, read: usize| {
        if tty {
            eprint!("\r\x1b[2Klisting {}: {read}", kind.plural);
        }
    };
    let objects = live::list_cluster(&client, page_size, &mut progress).await?;
    if tty {
        eprint!("\r\x1b[2Kauditing {} objects\r", objects.len());
    }
    let report = tokio::task::block_in_place(|| auditor.audit(auditor.snapshot_of(objects)))?;
    if tty {
        eprint!("\x1b[2K");
    }
    auditor.print(&report)?;
    let objects = auditor.report_objects(&report);
    auditor.write_reports(&objects)?;
    if apply {
        auditor.apply_reports(&client, &objects).await?;
    }
    Ok(exit_code(&report))
}
