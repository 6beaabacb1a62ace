//! Warm instances: a policy configured with `instances: reuse` keeps the
//! instances that finished an evaluation cleanly and calls them again,
//! instead of instantiating a fresh one per evaluation.
//!
//! A fresh instance costs about 15 µs of store setup, instantiation and
//! teardown on top of the call (docs/benchmarks.md), which dominates a
//! five-policy pack in the webhook. Reuse trades some isolation for it: the
//! guest's heap and globals carry over from one evaluation to the next. So an
//! instance is reused only while nothing suggests its state matters:
//!
//! - a fault during the call (trap, deadline, memory or log limit) retires
//!   it; a trapped instance could not be entered again anyway (an oversized
//!   output is refused after the call, from an instance that did nothing
//!   wrong, which is kept);
//! - an instance whose linear memory grows while serving a *reused*
//!   evaluation is retired after it (the first evaluation sizes the heap; a
//!   leak or a larger object ends the reuse);
//! - every instance is retired after [`MAX_USES`] evaluations;
//! - the host side holds no request data between evaluations: the review and
//!   the cluster view are detached after each call, and the per-evaluation
//!   counters (log lines, preset pools) start at zero.
//!
//! Idle instances hold pooling-allocator slots, so their number is bounded
//! per policy ([`WarmPool::new`]) and across the runtime
//! ([`super::runtime::Runtime`]'s idle budget).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::Store;

use super::host::State;
use super::world::Bound;

/// Evaluations after which a warm instance is retired regardless.
pub const MAX_USES: u32 = 1_000;

/// An instance and its store, between evaluations.
pub(crate) struct Warm {
    pub(crate) store: Store<State>,
    pub(crate) instance: Bound,
    /// Evaluations served so far.
    pub(crate) uses: u32,
}

/// The idle warm instances of one policy.
pub(crate) struct WarmPool {
    idle: Mutex<Vec<Warm>>,
    keep: usize,
    /// Idle instances the runtime may still keep, across all policies.
    budget: Arc<AtomicUsize>,
}

impl WarmPool {
    /// Keep at most `keep` idle instances, each taken from `budget`.
    pub(crate) fn new(keep: usize, budget: Arc<AtomicUsize>) -> Self {
        WarmPool {
            idle: Mutex::new(Vec::new()),
            keep,
            budget,
        }
    }

    /// An idle instance, if one is kept.
    pub(crate) fn take(&self) -> Option<Warm> {
        let warm = self.idle.lock().ok()?.pop()?;
        self.budget.fetch_add(1, Ordering::Relaxed);
        Some(warm)
    }

    /// Keep `warm` for the next evaluation if it may be reused and there is
    /// room (in this pool and in the runtime's idle budget); otherwise hand
    /// it back, to be retired.
    pub(crate) fn keep(&self, warm: Warm) -> Result<(), Warm> {
        let grew_on_reuse = warm.uses > 1 && warm.store.data().limiter.grew;
        if warm.uses >= MAX_USES || grew_on_reuse {
            return Err(warm);
        }
        let Ok(mut idle) = self.idle.lock() else {
            return Err(warm);
        };
        if idle.len() >= self.keep
            || self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err()
        {
            return Err(warm);
        }
        idle.push(warm);
        Ok(())
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().map(|v| v.len()).unwrap_or(0);
        self.budget.fetch_add(idle, Ordering::Relaxed);
    }
}

/// How a WASM policy gets its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Instances {
    /// A fresh instance for every evaluation: nothing carries over.
    #[default]
    Fresh,
    /// Warm instances, reused under the rules of this module.
    Reuse,
}
