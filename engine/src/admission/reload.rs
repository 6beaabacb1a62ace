//! The served policy set: where it comes from ([`Source`]), and [`watch`],
//! which rebuilds it when its files change and swaps it in whole.
//!
//! A new set is built completely (every policy read, compiled and its
//! settings validated) on the blocking pool before it replaces the old one in
//! one atomic store, so a review is judged entirely by the old set or
//! entirely by the new one, never by a half-loaded one. A set that fails to
//! load is logged and the old one kept; it is retried when the files change
//! again. A change is acted on only once the files have stayed the same for a
//! short settling time, so a set is not built from a half-copied directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::State;
use super::watch::{Stamp, next_change};
use crate::evaluator::Evaluator;
use crate::policy::{self, PolicySet, SetConfig};
use crate::wasm::Runtime;

/// How long files must stay unchanged before a changed set is loaded.
const SETTLE: Duration = Duration::from_millis(200);

/// Why a policy set was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A policy or the settings could not be loaded.
    #[error(transparent)]
    Policy(Box<policy::Error>),
    /// The loading task panicked or was cancelled at shutdown.
    #[error("loading the policies was interrupted: {0}")]
    Interrupted(String),
}

/// Where the policy set comes from: `--policies` specs and `--settings`.
/// Native policy bindings are also read from the server's current cluster
/// view, passed to each load.
#[derive(Clone)]
pub struct Source {
    /// Paths (files, directories) or bundled pack names.
    pub specs: Vec<String>,
    /// The settings file.
    pub settings: Option<PathBuf>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("specs", &self.specs)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Source {
    /// The files and directories to watch (bundled packs cannot change).
    pub fn watched(&self) -> Vec<PathBuf> {
        self.specs
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .chain(self.settings.iter().cloned())
            .collect()
    }

    /// The files' current stamp.
    pub fn stamp(&self) -> Stamp {
        Stamp::of(&self.watched())
    }

    /// Read, compile and configure the set, reading native policy bindings
    /// also from `context`.
    ///
    /// # Errors
    /// The first policy or settings problem.
    pub fn load(
        &self,
        runtime: &Runtime,
        context: &dyn crate::cluster::ClusterView,
    ) -> Result<PolicySet, Error> {
        let config = match &self.settings {
            Some(path) => SetConfig::load(path).map_err(|e| Error::Policy(Box::new(e)))?,
            None => SetConfig::default(),
        };
        let set = PolicySet::load_in_context(runtime, &self.specs, &config, context)
            .map_err(|e| Error::Policy(Box::new(e)))?;
        for warning in set.warnings() {
            tracing::warn!("policies: {warning}");
        }
        Ok(set)
    }

    /// [`Source::load`] on the blocking pool, with the stamp taken before
    /// reading.
    ///
    /// # Errors
    /// As [`Source::load`].
    pub async fn load_blocking(
        self: &Arc<Self>,
        runtime: &Runtime,
        context: Arc<dyn crate::cluster::ClusterView>,
    ) -> Result<(PolicySet, Stamp), Error> {
        let source = self.clone();
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || {
            let stamp = source.stamp();
            source
                .load(&runtime, context.as_ref())
                .map(|set| (set, stamp))
        })
        .await
        .map_err(|e| Error::Interrupted(e.to_string()))?
    }
}

/// Poll the source every `interval`; on a settled change, build the new set
/// and install it in `state`. `loaded` is the stamp of the set in use.
/// Never returns.
pub async fn watch(
    source: Arc<Source>,
    runtime: Runtime,
    state: State,
    interval: Duration,
    mut loaded: Stamp,
) {
    let mut failed: Option<Stamp> = None;
    loop {
        let now = next_change(interval, &loaded, failed.as_ref(), || source.stamp()).await;
        tokio::time::sleep(SETTLE).await;
        if source.stamp() != now {
            continue;
        }
        let started = Instant::now();
        match source.load_blocking(&runtime, state.cluster()).await {
            Ok((set, stamp)) => {
                let count = set.policies().len();
                state.install(Evaluator::new(set));
                state.metrics().policy_reload(true);
                tracing::info!(
                    policies = count,
                    ms = started.elapsed().as_millis() as u64,
                    "policy set reloaded"
                );
                loaded = stamp;
                failed = None;
            }
            Err(e) => {
                state.metrics().policy_reload(false);
                tracing::error!("policy set not reloaded, keeping the current one: {e}");
                failed = Some(now);
            }
        }
    }
}
