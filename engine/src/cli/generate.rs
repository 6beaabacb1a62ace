//! `tollgate generate`: write manifests instead of judging them.
//!
//! `tollgate generate native-policies` compiles CEL policies into
//! ValidatingAdmissionPolicy / MutatingAdmissionPolicy manifests with their
//! bindings (docs/native-policies.md). Exit codes: 0 every policy was
//! compiled, 1 some cannot be expressed natively (listed on stderr, the
//! others are still written), 2 bad input or usage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::Value;

use super::common::{load_context, load_policies};
use crate::cluster::Empty;
use crate::generate::native::{self, Generated};

/// Arguments of `tollgate generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// What to generate.
    #[command(subcommand)]
    pub what: Generate,
}

/// What `tollgate generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Compile CEL policies into ValidatingAdmissionPolicy and
    /// MutatingAdmissionPolicy manifests with bindings, so that the API server
    /// enforces them without the webhook.
    NativePolicies(NativePoliciesArgs),
}

/// Arguments of `tollgate generate native-policies`.
#[derive(Debug, clap::Args)]
pub struct NativePoliciesArgs {
    /// CEL policy files, directories, or a bundled pack. Repeatable.
    #[arg(long = "policy", short = 'p', required = true)]
    pub policies: Vec<String>,
    /// Settings (see `tollgate eval --help`): baked into the generated
    /// policies; a policy's mode becomes its binding's validationActions.
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// A snapshot whose node pools are inlined into policies that read
    /// `pools` (without it or --pools, such policies cannot be generated).
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// Node pools declared explicitly (`pools: [...]`), over the context's, to inline.
    #[arg(long)]
    pub pools: Option<PathBuf>,
    /// A directory to write one `<policy>.yaml` per policy into, or `-` for
    /// one multi-document YAML stream on standard output.
    #[arg(short = 'o', long = "output", default_value = "-")]
    pub output: PathBuf,
}

/// Run `tollgate generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Generate::NativePolicies(args) => native_policies(args),
    }
}

fn native_policies(args: NativePoliciesArgs) -> anyhow::Result<ExitCode> {
    let set = load_policies(&args.policies, args.settings.as_deref(), &Empty::default())?;
    // Pools are inlined only when the user names where they come from, never the preset.
    let pools = if args.context.is_some() || args.pools.is_some() {
        let cluster = load_context(args.context.as_deref(), args.pools.as_deref())?;
        Some(serde_json::to_value(cluster.node_pools()).context("the node pools")?)
    } else {
        None
    };
    let output = native::generate(&set, pools.as_ref());
    if args.output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        for generated in &output.generated {
            out.write_all(render(generated)?.as_bytes())?;
        }
        out.flush()?;
    } else {
        std::fs::create_dir_all(&args.output).with_context(|| args.output.display().to_string())?;
        for generated in &output.generated {
            let path = args.output.join(format!("{}.yaml", generated.policy));
            std::fs::write(&path, render(generated)?)
                .with_context(|| path.display().to_string())?;
        }
    }
    for skipped in &output.not_expressible {
        eprintln!(
            "tollgate: {} ({}) cannot be expressed as a native policy: {}",
            skipped.policy, skipped.source, skipped.reason
        );
    }
    Ok(if output.not_expressible.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The objects of one policy as a multi-document YAML stream.
fn render(generated: &Generated) -> anyhow::Result<String> {
    let mut text = String::new();
    for object in &generated.objects {
        text.push_str("---\n");
        text.push_str(&yaml(object)?);
    }
    Ok(text)
}

fn yaml(object: &Value) -> anyhow::Result<String> {
    serde_saphyr::to_string(object).context("cannot render YAML")
}
