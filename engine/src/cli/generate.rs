//! `tollgate generate`: write manifests instead of judging them (see
//! [`crate::generate`]). One subcommand per generator.
//!
//! Exit codes: 0 written, 2 bad input or usage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;

mod install;
mod native;

use super::common::{load_policies, load_pools, load_snapshot, read_live_cluster};
use crate::cluster::ClusterView;
use crate::evaluator::Evaluator;
use crate::generate::{Files, fixes, kustomize, pools};

/// Arguments of `tollgate generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// What to generate.
    #[command(subcommand)]
    pub command: GenerateCommand,
}

/// The generators.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// A kustomize overlay of the pack's fixes for a snapshot: patched
    /// workloads, pool-node taints and labels, and the k3s add-on route.
    Fixes(FixesArgs),
    /// Each pool's taints and labels as kube-hetzner HCL, cluster-autoscaler
    /// Hetzner nodeConfigs JSON, and kubectl commands.
    Pools(PoolsArgs),
    /// Tollgate's own installation: namespace, RBAC, TLS, webhook server, audit, webhook configurations.
    Install(Box<install::InstallArgs>),
    /// The Helm chart with the same objects as `generate install` (deploy/helm/tollgate).
    HelmChart(install::HelmChartArgs),
    /// Compile CEL policies into ValidatingAdmissionPolicy and
    /// MutatingAdmissionPolicy manifests with bindings, so that the API server
    /// enforces them without the webhook.
    NativePolicies(native::NativePoliciesArgs),
}

/// The cluster (a snapshot or the live cluster) and its declared pools,
/// shared by the generators.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// A snapshot: a file or directory of Kubernetes objects (as for `tollgate audit`).
    #[arg(long, required_unless_present = "cluster", conflicts_with = "cluster")]
    pub snapshot: Option<PathBuf>,
    /// Read the live cluster instead, read-only (kubeconfig, `--context`, or
    /// the in-cluster service account; the ClusterRole is in docs/audit.md).
    #[arg(long)]
    pub cluster: bool,
    /// With --cluster: the kubeconfig file (default $KUBECONFIG, then ~/.kube/config).
    #[arg(long, requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// With --cluster: the kubeconfig context (default its current context).
    #[arg(long, requires = "cluster")]
    pub context: Option<String>,
    /// Node pools declared explicitly (`pools: [{name, minSize, maxSize, namePrefix, nodeSelector, taints, labels}]`);
    /// they override pools discovered from the cluster-autoscaler Deployment.
    #[arg(long)]
    pub pools: Option<PathBuf>,
}

/// Arguments of `tollgate generate fixes`.
#[derive(Debug, clap::Args)]
pub struct FixesArgs {
    #[command(flatten)]
    snapshot: SnapshotArgs,
    /// Policies whose mutations make the fixes (paths or bundled packs). Repeatable.
    #[arg(long = "policy", short = 'p', default_value = "autoscaler-isolation")]
    pub policies: Vec<String>,
    /// Policy settings (see `tollgate eval --help`).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// The directory to write the overlay to (created; a previous overlay there is replaced).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
}

/// Arguments of `tollgate generate pools`.
#[derive(Debug, clap::Args)]
pub struct PoolsArgs {
    #[command(flatten)]
    snapshot: SnapshotArgs,
    /// kube-hetzner's `cluster_name` (node groups are `<cluster_name>-<pool>`).
    #[arg(long, default_value = "k3s")]
    pub cluster_name: String,
    /// A directory to write `kube-hetzner.tf`, `hcloud-cluster-config.json` and
    /// `kubectl.sh` to, or `-` for standard output.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "DIR|-",
        default_value = "-"
    )]
    pub output: PathBuf,
}

/// Run `tollgate generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        GenerateCommand::Fixes(args) => run_fixes(args),
        GenerateCommand::Pools(args) => run_pools(args),
        GenerateCommand::Install(args) => install::run_install(&args),
        GenerateCommand::HelmChart(args) => install::run_helm_chart(&args),
        GenerateCommand::NativePolicies(args) => native::run(args),
    }
}

fn snapshot(args: &SnapshotArgs) -> anyhow::Result<crate::cluster::Snapshot> {
    let declared = args.pools.as_deref().map(load_pools).transpose()?;
    if let Some(path) = &args.snapshot {
        return load_snapshot(path, declared);
    }
    let connect = crate::cluster::live::Connect {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let mut snapshot = crate::cluster::Snapshot::from_objects(read_live_cluster(&connect)?);
    if let Some(pools) = declared {
        snapshot.declare_pools(pools);
    }
    Ok(snapshot)
}

fn run_fixes(args: FixesArgs) -> anyhow::Result<ExitCode> {
    let snapshot = Arc::new(snapshot(&args.snapshot)?);
    let evaluator = Evaluator::new(load_policies(
        &args.policies,
        args.settings.as_deref(),
        snapshot.as_ref(),
    )?);
    let plan = fixes::plan(&snapshot, &evaluator);
    for warning in &plan.warnings {
        eprintln!("tollgate: warning: {warning}");
    }
    let files = fixes::render(&plan, &snapshot);
    write_dir(
        &args.output,
        &files,
        ("kustomization.yaml", kustomize::MARKER),
        &[
            "kustomization.yaml",
            "README.md",
            "resources",
            "patches",
            "k3s",
        ],
    )?;
    println!(
        "wrote {}: {} object(s) and {} node(s) patched, {} finding(s) no mutation fixes (see README.md)",
        args.output.display(),
        plan.objects.len(),
        plan.nodes.len(),
        plan.remaining.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_pools(args: PoolsArgs) -> anyhow::Result<ExitCode> {
    let snapshot = snapshot(&args.snapshot)?;
    for warning in snapshot.warnings() {
        eprintln!("tollgate: warning: {warning}");
    }
    let pools = snapshot.node_pools().to_vec();
    if pools.is_empty() {
        bail!(
            "{}: no node pools: no cluster-autoscaler Deployment with --nodes flags and no --pools file",
            args.snapshot
                .snapshot
                .as_ref()
                .map_or_else(|| "the cluster".to_string(), |p| p.display().to_string())
        );
    }
    let options = pools::Options {
        cluster_name: args.cluster_name,
    };
    let files = pools::generate(&snapshot, &pools, &options);
    if args.output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        for (name, text) in &files {
            writeln!(out, "# ==> {name} <==")?;
            out.write_all(text.as_bytes())?;
            writeln!(out)?;
        }
        out.flush()?;
    } else {
        write_dir(
            &args.output,
            &files,
            ("kube-hetzner.tf", pools::MARKER),
            &[
                "kube-hetzner.tf",
                "hcloud-cluster-config.json",
                "kubectl.sh",
            ],
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `files` under `dir`. An existing non-empty `dir` must hold a previous
/// output of the same generator (its `marker` file starts with the marker
/// text); the entries it `owns` are removed first, so nothing stale remains.
fn write_dir(dir: &Path, files: &Files, marker: (&str, &str), owns: &[&str]) -> anyhow::Result<()> {
    let non_empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
    if non_empty {
        let previous = std::fs::read_to_string(dir.join(marker.0)).unwrap_or_default();
        if !previous.starts_with(marker.1) {
            bail!(
                "{}: not empty and not a previous output of this command (no generated {}); choose an empty or new directory",
                dir.display(),
                marker.0
            );
        }
        for entry in owns {
            let path = dir.join(entry);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else if path.exists() {
                std::fs::remove_file(&path)
            } else {
                Ok(())
            };
            removed.with_context(|| format!("removing the previous {}", path.display()))?;
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
