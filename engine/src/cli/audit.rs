//! `tollgate audit`: judge a cluster snapshot with the policy pack and
//! explain why its autoscaler pool nodes cannot scale down.
//!
//! Exit codes: 0 clean, 1 findings or blocked nodes, 2 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};

use super::common::{load_policies, load_pools, load_snapshot};
use crate::audit::{self, explain};
use crate::cluster::pools::Version;
use crate::evaluator::Evaluator;
use crate::output::{Format, write_structured};

/// Arguments of `tollgate audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// A snapshot: a file or directory of Kubernetes objects (multi-document
    /// YAML or JSON, `kind: List` as `kubectl get -A -o yaml` writes).
    #[arg(long)]
    pub snapshot: PathBuf,
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
}

/// Run `tollgate audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let declared = args.pools.as_deref().map(load_pools).transpose()?;
    let snapshot = load_snapshot(&args.snapshot, declared)?;
    let mut overrides = explain::Overrides::default();
    if let Some(v) = &args.ca_version {
        overrides.version =
            Some(Version::parse(v).with_context(|| {
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
    let assumptions = explain::assumptions(snapshot.autoscaler(), &overrides)?;
    let evaluator = Evaluator::new(load_policies(
        &args.policies,
        args.settings.as_deref(),
        &snapshot,
    )?);
    let report = audit::run(Arc::new(snapshot), &evaluator, &assumptions);
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Text => audit::report::write_text(&mut out, &report, true)?,
        format => write_structured(&mut out, format, &report)?,
    }
    out.flush()?;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
