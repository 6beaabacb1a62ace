//! `tollgate cel eval`: evaluate one CEL expression in the environment of
//! CEL policies against objects from files, for policy authors and
//! conformance scripts.
//!
//! Exit codes: 0 with the value printed, 1 with the evaluation or compile
//! error printed, 2 bad usage or an unreadable file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::common::read_input;
use super::eval::single_document;
use crate::cel::expression::{Bindings, Expression};
use crate::output::{Format, write_structured};

/// Arguments of `tollgate cel`.
#[derive(Debug, clap::Args)]
pub struct CelArgs {
    /// The CEL sub-command.
    #[command(subcommand)]
    pub command: CelCommand,
}

/// `tollgate cel` sub-commands.
#[derive(Debug, clap::Subcommand)]
pub enum CelCommand {
    /// Evaluate one expression and print its value as JSON.
    Eval(EvalArgs),
}

/// Output of `tollgate cel eval`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueFormat {
    /// Indented JSON.
    #[default]
    Json,
    /// YAML.
    Yaml,
}

/// Arguments of `tollgate cel eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The expression.
    #[arg(long = "expr", short = 'e')]
    pub expr: String,
    /// The object bound to `object` (YAML or JSON; `-` for standard input).
    #[arg(long)]
    pub object: Option<PathBuf>,
    /// The object bound to `oldObject`.
    #[arg(long)]
    pub old_object: Option<PathBuf>,
    /// The value bound to `params`.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// The Namespace bound to `namespaceObject`.
    #[arg(long)]
    pub namespace_object: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ValueFormat::Json)]
    pub output: ValueFormat,
}

/// Run `tollgate cel`.
pub fn run(args: CelArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CelCommand::Eval(args) => eval(args),
    }
}

fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut bindings = Bindings::new();
    // Unset inputs are null, as `oldObject` is on a CREATE in Kubernetes.
    for (name, file) in [
        ("object", &args.object),
        ("oldObject", &args.old_object),
        ("params", &args.params),
        ("namespaceObject", &args.namespace_object),
    ] {
        let value = match file {
            Some(path) => read_value(path)?,
            None => serde_json::Value::Null,
        };
        bindings.insert_json(name, &value);
    }
    let result = Expression::compile(&args.expr).and_then(|e| e.evaluate(&bindings));
    match result {
        Ok(value) => {
            let format = match args.output {
                ValueFormat::Json => Format::Json,
                ValueFormat::Yaml => Format::Yaml,
            };
            let mut out = std::io::stdout().lock();
            write_structured(&mut out, format, &value)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn read_value(path: &Path) -> anyhow::Result<serde_json::Value> {
    let (path, text) = read_input(path)?;
    single_document(&path, &text)
}
