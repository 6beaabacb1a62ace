//! `tollgate krm`: run as a KRM function (see [`crate::krm`]): a ResourceList
//! on standard input, the mutated ResourceList with results on standard output.
//!
//! Exit codes (KRM function convention): 0 when no result is an error, 1 when
//! one is (a denied item, a failing policy, an invalid functionConfig; the
//! ResourceList is still written), 2 when the input is not a ResourceList.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::generate::to_yaml;

/// Arguments of `tollgate krm` (none: the functionConfig configures it).
#[derive(Debug, clap::Args)]
pub struct KrmArgs {}

/// Run `tollgate krm`.
pub fn run(_args: KrmArgs) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("standard input")?;
    let list = crate::policy::parse_one(Path::new("<stdin>"), &text)?;
    let outcome = crate::krm::run(list)?;
    let mut out = std::io::stdout().lock();
    out.write_all(to_yaml(&outcome.list).as_bytes())?;
    out.flush()?;
    Ok(if outcome.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
