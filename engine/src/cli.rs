//! The command line: clap definitions, one file per verb. Each verb resolves
//! what the user typed into engine objects (the place "file X: problem"
//! errors come from) and returns the process exit code.

mod audit;
mod cel;
mod common;
mod eval;
mod generate;
mod krm;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tollgate: placement policies for Kubernetes clusters with autoscaled node pools.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
pub struct Cli {
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate policies against one object or AdmissionReview.
    Eval(eval::EvalArgs),
    /// Audit a cluster (a snapshot or the live one) and explain why pool nodes cannot scale down.
    Audit(audit::AuditArgs),
    /// Serve the policies as a validating and mutating admission webhook over HTTPS.
    Serve(serve::ServeArgs),
    /// Write manifests: fixes, node-pool configuration, the installation, native admission policies.
    Generate(generate::GenerateArgs),
    /// Run as a KRM function (kpt, kustomize): a ResourceList on stdin, mutated items and results on stdout.
    Krm(krm::KrmArgs),
    /// Work with CEL expressions (`tollgate cel eval --expr ...`).
    Cel(cel::CelArgs),
}

/// Run the parsed command line.
///
/// # Errors
/// Bad input or usage; `main` prints it on one line and exits 2.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Eval(args) => eval::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Krm(args) => krm::run(args),
        Command::Cel(args) => cel::run(args),
    }
}
