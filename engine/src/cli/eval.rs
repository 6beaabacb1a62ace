//! `tollgate eval`: evaluate policies against one object or AdmissionReview.
//!
//! Exit codes: 0 allowed, 1 denied, 2 bad input or usage.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};

use super::common::{load_context, load_policies, read_input};
use crate::evaluator::Evaluator;
use crate::output::{Format, write_verdict};
use crate::review::Review;

/// Arguments of `tollgate eval`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["object", "request"])))]
pub struct EvalArgs {
    /// A .wasm component, a CEL policy file, a directory of policies, or a
    /// bundled pack (`autoscaler-isolation`). Repeatable.
    #[arg(long = "policy", short = 'p', required = true)]
    pub policies: Vec<String>,
    /// Settings: a policy's settings, or `policies: {<name>: {settings, mode, failurePolicy}}`.
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// A snapshot (file or directory of Kubernetes objects) used as the cluster
    /// view for lookups and node-pool discovery.
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// Node pools declared explicitly (`pools: [{name, minSize, namePrefix, nodeSelector, taints, labels}]`);
    /// they override pools discovered from the context.
    #[arg(long)]
    pub pools: Option<PathBuf>,
    /// The object to judge (YAML or JSON; `-` for standard input).
    #[arg(long)]
    pub object: Option<PathBuf>,
    /// An AdmissionReview to judge (its request's object).
    #[arg(long)]
    pub request: Option<PathBuf>,
    /// Apply mutations in order and print the mutated object too.
    #[arg(long)]
    pub mutate: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Run `tollgate eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let (path, text, admission) = match (&args.object, &args.request) {
        (Some(p), _) => {
            let (path, text) = read_input(p)?;
            (path, text, false)
        }
        (None, Some(p)) => {
            let (path, text) = read_input(p)?;
            (path, text, true)
        }
        (None, None) => bail!("one of --object or --request is required"),
    };
    let doc = single_document(&path, &text)?;
    let review = if admission {
        Review::from_admission(doc).with_context(|| path.display().to_string())?
    } else {
        Review::from_object(doc).with_context(|| path.display().to_string())?
    };
    let cluster = load_context(args.context.as_deref(), args.pools.as_deref())?;
    let set = load_policies(&args.policies, args.settings.as_deref(), cluster.as_ref())?;
    let evaluator = Evaluator::new(set);
    let verdict = if args.mutate {
        evaluator.evaluate_mutating(&review, &cluster)
    } else {
        evaluator.evaluate(&review, &cluster)
    };
    let mut out = std::io::stdout().lock();
    write_verdict(&mut out, args.output, &review.describe(), &verdict)?;
    out.flush()?;
    Ok(if verdict.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The one document of an `--object`/`--request` input.
pub(super) fn single_document(
    path: &std::path::Path,
    text: &str,
) -> anyhow::Result<serde_json::Value> {
    let docs = crate::cluster::snapshot::split_documents(text);
    match docs.as_slice() {
        [] => bail!("{}: empty document", path.display()),
        [(_, doc)] => Ok(crate::policy::parse_one(path, doc)?),
        more => bail!(
            "{}: {} documents; --object and --request take one",
            path.display(),
            more.len()
        ),
    }
}
