//! Flags and input helpers shared by several verbs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::cluster::{ClusterView, Empty, Snapshot};
use crate::policy::{PolicySet, SetConfig};
use crate::wasm::{Runtime, RuntimeConfig};

/// Load the policy set named by `--policy` flags with `--settings`.
pub fn load_policies(specs: &[String], settings: Option<&Path>) -> anyhow::Result<PolicySet> {
    let config = match settings {
        Some(path) => SetConfig::load(path)?,
        None => SetConfig::default(),
    };
    let runtime = Runtime::new(&RuntimeConfig::default())?;
    Ok(PolicySet::load(&runtime, specs, &config)?)
}

/// The cluster view of `--context`, or the empty view with preset pools.
pub fn load_context(context: Option<&Path>) -> anyhow::Result<Arc<dyn ClusterView>> {
    Ok(match context {
        Some(path) => {
            let snapshot = Snapshot::load(path)?;
            for warning in snapshot.warnings() {
                eprintln!("tollgate: warning: {warning}");
            }
            Arc::new(snapshot)
        }
        None => Arc::new(Empty::default()),
    })
}

/// Read a file, or standard input for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<(PathBuf, String)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("standard input")?;
        return Ok((PathBuf::from("<stdin>"), text));
    }
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok((path.to_path_buf(), text))
}
