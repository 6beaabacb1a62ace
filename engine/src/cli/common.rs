//! Flags and input helpers shared by several verbs.

use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tracing::Dispatch;

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

/// Structured JSON logs on stderr, filtered by `TOLLGATE_LOG` (default `info`).
pub(super) fn json_logs() -> Dispatch {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(crate::telemetry::SERVICE_FILTER));
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .finish();
    Dispatch::new(subscriber)
}

thread_local! {
    static THREAD_LOGS: RefCell<Option<tracing::dispatcher::DefaultGuard>> = const { RefCell::new(None) };
}

/// Make `logs` this thread's subscriber for the thread's lifetime (`main`
/// installed the process-wide text logger before the verb was known).
pub(super) fn use_logs_on_this_thread(logs: &Dispatch) {
    let guard = tracing::dispatcher::set_default(logs);
    THREAD_LOGS.with(|slot| *slot.borrow_mut() = Some(guard));
}

/// Parse `9s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a duration such as 9s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// Every object the evaluation reads, listed once from the live cluster
/// (read-only, paginated, slimmed as it arrives; see [`crate::cluster::live`]).
///
/// # Errors
/// No usable kubeconfig or in-cluster configuration, or a list that fails.
pub fn read_live_cluster(
    connect: &crate::cluster::live::Connect,
) -> anyhow::Result<Vec<serde_json::Value>> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = connect.client().await?;
        let objects = crate::cluster::live::list_cluster(
            &client,
            crate::cluster::live::DEFAULT_PAGE_SIZE,
            &mut |_, _| {},
        )
        .await?;
        Ok(objects)
    })
}
