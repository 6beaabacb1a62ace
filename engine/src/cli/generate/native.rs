//! `tollgate generate native-policies`: compile CEL policies into
//! ValidatingAdmissionPolicy and MutatingAdmissionPolicy manifests with
//! bindings ([`crate::generate::native`]), and say which cannot be.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use crate::cli::common::{load_context, load_policies};
use crate::cluster::Empty;
use crate::generate::native::{self, Generated};

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

/// Run `tollgate generate native-policies`.
pub fn run(args: NativePoliciesArgs) -> anyhow::Result<ExitCode> {
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
