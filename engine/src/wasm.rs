//! WASM policies: sandboxed wasmtime components of the `tollgate:policy` world.
//!
//! Each policy is compiled once (and cached on disk, see [`runtime`]) and
//! prepared as an `InstancePre`; by default every evaluation then gets a
//! **fresh instance** in a new `Store` from the pooling allocator, so no state
//! leaks between requests and a trap poisons nothing. A policy configured with
//! `instances: reuse` (the bundled pack's default) keeps warm instances
//! instead, under the rules in [`warm`]. Limits are in [`limits`];
//! the imports and the (empty) WASI context in [`host`]; wasmtime errors
//! become typed [`crate::decision::Fault`]s in [`fault`]. Which world a
//! component implements, and so whether it takes reviews encoded, is
//! [`world`]'s.
//!
//! Capabilities: none by default. WASI is linked (Rust's std imports it) with
//! no files, environment, arguments, network or stdio; clocks read zero unless
//! the policy's metadata asks for `clocks` and the operator grants it.

pub mod bindings;
mod convert;
mod fault;
mod host;
pub mod limits;
pub mod runtime;
mod ticker;
mod warm;
mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_sdk::model::{Capability, Decision, Metadata};
use wasmtime::UpdateDeadline;

use crate::cluster::ClusterView;
use crate::decision::{Fault, FaultKind};
use crate::review::Review;

pub use limits::Limits;
pub use runtime::{Runtime, RuntimeConfig};
pub use warm::{Instances, MAX_USES};

use host::State;
use warm::{Warm, WarmPool};
use world::{Bound, Pre};

/// The WIT review record, cached per review.
pub(crate) type WitReview = bindings::tollgate::policy::types::Review;

/// Why a WASM policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine could not be configured.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The file is not WebAssembly.
    #[error("{policy}: not a WebAssembly component (no \\0asm header)")]
    NotWasm {
        /// Policy name or file.
        policy: String,
    },
    /// The file is a core module, not a component.
    #[error(
        "{policy}: a core WebAssembly module, not a component; build the policy for wasm32-wasip2 (or componentize it with wasm-tools)"
    )]
    CoreModule {
        /// Policy name or file.
        policy: String,
    },
    /// wasmtime could not compile it.
    #[error("{policy}: invalid component: {detail}")]
    Compile {
        /// Policy name or file.
        policy: String,
        /// wasmtime's explanation.
        detail: String,
    },
    /// It does not implement the `tollgate:policy/policy` world.
    #[error("{policy}: does not implement the tollgate:policy@0.1.0 `policy` world: {detail}")]
    WrongWorld {
        /// Policy name or file.
        policy: String,
        /// What is missing or mismatched.
        detail: String,
    },
    /// Calling `metadata` or `validate-settings` at load failed.
    #[error("{policy}: failed while loading: {fault}")]
    Load {
        /// Policy name or file.
        policy: String,
        /// The fault.
        fault: Fault,
    },
    /// The settings were rejected by the policy.
    #[error("{policy}: invalid settings: {message}")]
    Settings {
        /// Policy name.
        policy: String,
        /// The policy's explanation.
        message: String,
    },
    /// The policy asks for a capability the operator did not grant.
    #[error("{policy}: asks for capability {capability:?}, which was not granted")]
    CapabilityDenied {
        /// Policy name.
        policy: String,
        /// The capability.
        capability: Capability,
    },
    /// A limit is beyond what the engine allows.
    #[error("{policy}: memory limit {asked} bytes is above the engine's maximum {max}")]
    LimitTooHigh {
        /// Policy name.
        policy: String,
        /// Requested bytes.
        asked: usize,
        /// Engine maximum.
        max: usize,
    },
}

/// What an evaluation returned, besides the decision.
#[derive(Debug)]
pub struct Outcome {
    /// The policy's decision.
    pub decision: Decision,
    /// Whether it read node pools that came from the preset (no cluster context).
    pub used_preset_pools: bool,
}

/// A loaded WASM policy, ready to evaluate.
#[derive(Clone)]
pub struct WasmPolicy {
    name: Arc<str>,
    metadata: Metadata,
    pre: Pre,
    runtime: Runtime,
    limits: Limits,
    clocks: bool,
    /// Idle warm instances when the policy reuses them.
    warm: Option<Arc<WarmPool>>,
}

impl std::fmt::Debug for WasmPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmPolicy")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish()
    }
}

impl WasmPolicy {
    /// Compile and prepare a component; read its metadata.
    ///
    /// `label` names the policy in errors until its metadata gives its name
    /// (usually the file path). `granted` lists the capabilities the operator allows.
    ///
    /// # Errors
    /// Not a component, does not compile, wrong world, or a fault in `metadata`.
    pub fn load(
        runtime: &Runtime,
        label: &str,
        bytes: &[u8],
        limits: Limits,
        granted: &[Capability],
    ) -> Result<Self, Error> {
        if limits.memory_bytes > runtime.max_memory_bytes {
            return Err(Error::LimitTooHigh {
                policy: label.to_string(),
                asked: limits.memory_bytes,
                max: runtime.max_memory_bytes,
            });
        }
        let component = runtime.compile(label, bytes)?;
        let wrong_world = |e: wasmtime::Error| Error::WrongWorld {
            policy: label.to_string(),
            detail: format!("{e:#}"),
        };
        let instance_pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(wrong_world)?;
        let pre = Pre::new(instance_pre).map_err(wrong_world)?;
        let mut policy = WasmPolicy {
            name: Arc::from(label),
            metadata: Metadata::default(),
            pre,
            runtime: runtime.clone(),
            limits,
            clocks: false,
            warm: None,
        };
        let metadata = policy
            .call(None, Arc::new(crate::cluster::Empty::default()), |p, s| {
                p.metadata(s)
            })
            .map(convert::metadata)
            .map_err(|fault| Error::Load {
                policy: label.to_string(),
                fault,
            })?;
        for capability in &metadata.capabilities {
            if !granted.contains(capability) {
                return Err(Error::CapabilityDenied {
                    policy: metadata.name.clone(),
                    capability: *capability,
                });
            }
        }
        policy.clocks = metadata.capabilities.contains(&Capability::Clocks);
        if !metadata.name.is_empty() {
            policy.name = Arc::from(metadata.name.as_str());
        }
        policy.metadata = metadata;
        Ok(policy)
    }

    /// The same policy with other limits (they apply per evaluation).
    ///
    /// # Errors
    /// A memory limit above the engine's maximum.
    pub fn with_limits(&self, limits: Limits) -> Result<Self, Error> {
        if limits.memory_bytes > self.runtime.max_memory_bytes {
            return Err(Error::LimitTooHigh {
                policy: self.name.to_string(),
                asked: limits.memory_bytes,
                max: self.runtime.max_memory_bytes,
            });
        }
        Ok(WasmPolicy {
            limits,
            ..self.clone()
        }
        .with_instances(self.instances()))
    }

    /// The same policy taking its instances as `instances` says (a new pool
    /// of warm instances when it reuses them).
    pub fn with_instances(&self, instances: Instances) -> Self {
        let warm = match instances {
            Instances::Fresh => None,
            Instances::Reuse => Some(Arc::new(WarmPool::new(
                self.runtime.warm_keep,
                self.runtime.idle_budget.clone(),
            ))),
        };
        WasmPolicy {
            warm,
            ..self.clone()
        }
    }

    /// Whether the component takes reviews in the SDK's `wire` encoding
    /// (it implements the `policy-encoded` world of wit/policy.wit).
    pub fn takes_encoded_reviews(&self) -> bool {
        self.pre.is_encoded()
    }

    /// The same policy with every review lowered as the WIT record, even
    /// when the component would take it encoded. Both calls give the same
    /// decision; parity tests and benchmarks compare them.
    ///
    /// # Errors
    /// When the component does not implement the plain `policy` world.
    pub fn with_lowered_reviews(&self) -> Result<Self, Error> {
        let pre = self.pre.plain().map_err(|e| Error::WrongWorld {
            policy: self.name.to_string(),
            detail: format!("{e:#}"),
        })?;
        Ok(WasmPolicy {
            pre,
            ..self.clone()
        }
        .with_instances(self.instances()))
    }

    /// How the policy gets its instances.
    pub fn instances(&self) -> Instances {
        if self.warm.is_some() {
            Instances::Reuse
        } else {
            Instances::Fresh
        }
    }

    /// The policy's name (from its metadata).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The policy's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Ask the policy whether `settings` (JSON text) are valid.
    ///
    /// # Errors
    /// The policy's message, or the fault if it failed.
    pub fn validate_settings(&self, settings: &str) -> Result<(), Error> {
        let empty = Arc::new(crate::cluster::Empty::default());
        match self.call(None, empty, |p, s| p.validate_settings(s, settings)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Settings {
                policy: self.name.to_string(),
                message,
            }),
            Err(fault) => Err(Error::Load {
                policy: self.name.to_string(),
                fault,
            }),
        }
    }

    /// Evaluate one review, in a fresh instance or a warm one
    /// ([`Instances`]).
    ///
    /// # Errors
    /// A [`Fault`] when the policy traps, times out, exceeds a limit or returns
    /// more output than allowed.
    pub fn evaluate(
        &self,
        review: &Review,
        settings: &str,
        cluster: Arc<dyn ClusterView>,
    ) -> Result<Outcome, Fault> {
        self.evaluate_before(review, settings, cluster, None)
    }

    /// [`WasmPolicy::evaluate`], interrupted at `deadline` when that comes
    /// before the policy's own time limit.
    ///
    /// # Errors
    /// As [`WasmPolicy::evaluate`].
    pub fn evaluate_before(
        &self,
        review: &Review,
        settings: &str,
        cluster: Arc<dyn ClusterView>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Outcome, Fault> {
        let deadline = self.deadline_for(deadline);
        let mut used_preset_pools = false;
        let call = |p: &Bound, s: &mut wasmtime::Store<State>| p.evaluate(s, review, settings);
        let decision = match &self.warm {
            Some(pool) => self.call_warm(
                pool,
                review,
                cluster,
                deadline,
                &mut used_preset_pools,
                call,
            ),
            None => self.call_with(
                Some(review.clone()),
                cluster,
                deadline,
                &mut used_preset_pools,
                call,
            ),
        }?;
        let size = convert::decision_size(&decision);
        if size > self.limits.output_bytes {
            return Err(Fault::new(
                FaultKind::OutputLimit,
                format!(
                    "policy {}: output of {size} bytes exceeds the limit of {} bytes",
                    self.name, self.limits.output_bytes
                ),
            ));
        }
        Ok(Outcome {
            decision: convert::decision(decision),
            used_preset_pools,
        })
    }

    fn call<R>(
        &self,
        review: Option<Review>,
        cluster: Arc<dyn ClusterView>,
        f: impl FnOnce(&Bound, &mut wasmtime::Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let mut ignored = false;
        let deadline = self.deadline_for(None);
        self.call_with(review, cluster, deadline, &mut ignored, f)
    }

    /// Instantiate fresh, call `f`, and classify any failure.
    fn call_with<R>(
        &self,
        review: Option<Review>,
        cluster: Arc<dyn ClusterView>,
        deadline: Instant,
        used_preset_pools: &mut bool,
        f: impl FnOnce(&Bound, &mut wasmtime::Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let _ticking = self.runtime.ticker.busy(deadline);
        let mut store = self.new_store(review, cluster, deadline);
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|instance| f(&instance, &mut store))
            .map_err(|e| self.classify(&e));
        *used_preset_pools = store.data().used_preset_pools;
        self.retire(store);
        result
    }

    /// Call `f` on a warm instance (a kept one, or a new one that will be
    /// kept if the call goes well: [`warm`]).
    fn call_warm<R>(
        &self,
        pool: &WarmPool,
        review: &Review,
        cluster: Arc<dyn ClusterView>,
        deadline: Instant,
        used_preset_pools: &mut bool,
        f: impl FnOnce(&Bound, &mut wasmtime::Store<State>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        // A new instance is made within the call's deadline too.
        let _ticking = self.runtime.ticker.busy(deadline);
        let mut warm = match pool.take() {
            Some(warm) => warm,
            None => {
                let mut store = self.new_store(None, host::idle_cluster(), deadline);
                match self.pre.instantiate(&mut store) {
                    Ok(instance) => Warm {
                        store,
                        instance,
                        uses: 0,
                    },
                    Err(e) => {
                        let fault = self.classify(&e);
                        self.retire(store);
                        return Err(fault);
                    }
                }
            }
        };
        warm.store
            .data_mut()
            .begin(Some(review.clone()), cluster, deadline);
        warm.store.set_epoch_deadline(1);
        let result = f(&warm.instance, &mut warm.store).map_err(|e| self.classify(&e));
        warm.uses += 1;
        *used_preset_pools = warm.store.data().used_preset_pools;
        warm.store.data_mut().end();
        // A fault retires the instance; a clean call keeps it if it may be reused.
        let kept = if result.is_ok() {
            pool.keep(warm)
        } else {
            Err(warm)
        };
        if let Err(retired) = kept {
            self.retire(retired.store);
        }
        result
    }

    /// When the next call must stop: the policy's time limit from now, or
    /// `deadline` when that comes sooner. A call cut by it stops at or just
    /// after it, never before, so the caller sees the deadline passed.
    fn deadline_for(&self, deadline: Option<Instant>) -> Instant {
        let limit = Instant::now() + Duration::from_millis(self.limits.timeout_ms);
        deadline.map_or(limit, |d| d.min(limit))
    }

    /// A new store for one instance of this policy, interrupted at the first
    /// epoch tick after `deadline` ([`ticker`]: every tick asks each running
    /// store whether its deadline has passed).
    fn new_store(
        &self,
        review: Option<Review>,
        cluster: Arc<dyn ClusterView>,
        deadline: Instant,
    ) -> wasmtime::Store<State> {
        let wasi = self.runtime.wasi_contexts.take(self.clocks);
        let state = State::new(
            self.name.clone(),
            review,
            cluster,
            self.limits,
            wasi,
            deadline,
        );
        let mut store = wasmtime::Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| {
            Ok(if Instant::now() >= store.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        store
    }

    /// Drop a store, keeping its WASI context for the next one.
    fn retire(&self, store: wasmtime::Store<State>) {
        let wasi = store.into_data().into_wasi();
        self.runtime.wasi_contexts.give_back(self.clocks, wasi);
    }

    /// The fault of a failed instantiation or call.
    fn classify(&self, e: &wasmtime::Error) -> Fault {
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return Fault::new(
                FaultKind::Unavailable,
                format!("policy {}: too many concurrent evaluations: {e}", self.name),
            );
        }
        fault::classify(&self.name, self.limits.timeout_ms, e)
    }
}
