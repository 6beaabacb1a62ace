//! Flags and input helpers shared by several verbs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use tollgate_sdk::model::NodePool;

use crate::cluster::pools::PoolsFile;
use crate::cluster::{ClusterView, Empty, Snapshot};
use crate::policy::{PolicySet, SetConfig};
use crate::wasm::{Runtime, RuntimeConfig};

/// Load the policy set named by `--policy` flags with `--settings`; native
/// policy bindings are also read from `context`. What loading noticed (a
/// policy without a binding) is printed as warnings.
pub fn load_policies(
    specs: &[String],
    settings: Option<&Path>,
    context: &dyn ClusterView,
) -> anyhow::Result<PolicySet> {
    let config = match settings {
        Some(path) => SetConfig::load(path)?,
        None => SetConfig::default(),
    };
    let runtime = Runtime::new(&RuntimeConfig::default())?;
    let set = PolicySet::load_in_context(&runtime, specs, &config, context)?;
    for warning in set.warnings() {
        eprintln!("tollgate: warning: {warning}");
    }
    Ok(set)
}

/// The cluster view of `--context` with `--pools` declared over it, or the
/// empty view with the declared pools (or the preset ones).
pub fn load_context(
    context: Option<&Path>,
    pools: Option<&Path>,
) -> anyhow::Result<Arc<dyn ClusterView>> {
    let declared = pools.map(load_pools).transpose()?;
    Ok(match context {
        Some(path) => {
            let snapshot = load_snapshot(path, declared)?;
            for warning in snapshot.warnings() {
                eprintln!("tollgate: warning: {warning}");
            }
            Arc::new(snapshot)
        }
        None => match declared {
            Some(pools) => Arc::new(Empty::with_pools(pools)),
            None => Arc::new(Empty::default()),
        },
    })
}

/// Load a snapshot with declared pools over the discovered ones (what was
/// skipped is in `Snapshot::warnings`).
pub fn load_snapshot(path: &Path, declared: Option<Vec<NodePool>>) -> anyhow::Result<Snapshot> {
    let mut snapshot = Snapshot::load(path)?;
    if let Some(pools) = declared {
        snapshot.declare_pools(pools);
    }
    Ok(snapshot)
}

/// Read a pools file (`pools: [{name, minSize, namePrefix, nodeSelector, taints, labels}]`).
pub fn load_pools(path: &Path) -> anyhow::Result<Vec<NodePool>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let doc = crate::policy::parse_one(path, &text)?;
    let file: PoolsFile = serde_json::from_value(doc)
        .with_context(|| format!("{}: invalid pools file", path.display()))?;
    file.pools
        .iter()
        .map(|p| p.to_pool())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Read a file, or standard input for `-`.
pub fn read_input(path: &Path) -> anyhow::Result<(PathBuf, String)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("standard input")?;
        return Ok((PathBuf::from("<stdin>"), text));
    }
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    Ok((path.to_path_buf(), text))
}
