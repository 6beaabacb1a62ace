//! The per-evaluation store state and the `host` imports a policy may call.
//!
//! Every lookup answers from the in-memory [`ClusterView`]; nothing here does
//! I/O or writes anywhere. WASI is linked with an empty context: no
//! preopened directories, no environment or arguments, stdin closed, stdout
//! and stderr discarded, every socket address and name lookup denied, and both
//! clocks frozen at zero unless the policy asked for `clocks` and was granted it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::cluster::ClusterView;
use crate::review::Review;

use super::bindings::tollgate::policy::{host, types};
use super::convert;
use super::limits::{Limiter, Limits, LogLimitExceeded};

/// What one evaluation's store holds.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    policy: Arc<str>,
    review: Option<Review>,
    cluster: Arc<dyn ClusterView>,
    limits: Limits,
    log_lines: usize,
    log_bytes: usize,
    /// Whether the policy asked for node pools that came from the preset.
    pub(crate) used_preset_pools: bool,
    /// When the call in progress must stop (the epoch deadline callback
    /// interrupts the policy once this has passed).
    pub(crate) deadline: Instant,
}

/// The cluster view an idle state points at: empty, shared.
pub(crate) fn idle_cluster() -> Arc<dyn ClusterView> {
    static IDLE: std::sync::OnceLock<Arc<dyn ClusterView>> = std::sync::OnceLock::new();
    IDLE.get_or_init(|| Arc::new(crate::cluster::Empty::default()))
        .clone()
}

struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl State {
    pub(crate) fn new(
        policy: Arc<str>,
        review: Option<Review>,
        cluster: Arc<dyn ClusterView>,
        limits: Limits,
        wasi: WasiCtx,
        deadline: Instant,
    ) -> Self {
        State {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                grew: false,
            },
            policy,
            review,
            cluster,
            limits,
            log_lines: 0,
            log_bytes: 0,
            used_preset_pools: false,
            deadline,
        }
    }

    /// Attach the next evaluation's review and cluster view to a warm
    /// instance's state, with its counters at zero.
    pub(crate) fn begin(
        &mut self,
        review: Option<Review>,
        cluster: Arc<dyn ClusterView>,
        deadline: Instant,
    ) {
        self.review = review;
        self.deadline = deadline;
        self.cluster = cluster;
        self.log_lines = 0;
        self.log_bytes = 0;
        self.used_preset_pools = false;
        self.limiter.grew = false;
    }

    /// Detach the review and cluster view after an evaluation, so an idle
    /// warm instance holds no request data on the host side.
    pub(crate) fn end(&mut self) {
        self.review = None;
        self.cluster = idle_cluster();
    }

    /// The WASI context, for [`WasiContexts::give_back`] once the store is gone.
    pub(crate) fn into_wasi(self) -> WasiCtx {
        self.wasi
    }
}

/// WASI contexts kept for reuse between evaluations. Building one seeds two
/// random number generators from the OS (about 1.3 µs, a twentieth of a
/// fresh-instance evaluation). Reuse leaks nothing between evaluations: a
/// context has no preopens, environment, arguments or streams, and the
/// resources a policy opens live in the store's [`ResourceTable`], which is
/// new for every evaluation. Only the random generators' positions carry
/// over: they depend on how much randomness earlier evaluations drew, never
/// on request data.
pub(crate) struct WasiContexts {
    frozen: Mutex<Vec<WasiCtx>>,
    real_clocks: Mutex<Vec<WasiCtx>>,
    keep: usize,
}

impl WasiContexts {
    /// Keep at most `keep` idle contexts of each kind.
    pub(crate) fn new(keep: usize) -> Self {
        WasiContexts {
            frozen: Mutex::new(Vec::new()),
            real_clocks: Mutex::new(Vec::new()),
            keep,
        }
    }

    fn idle(&self, clocks: bool) -> &Mutex<Vec<WasiCtx>> {
        if clocks {
            &self.real_clocks
        } else {
            &self.frozen
        }
    }

    /// An idle context, or a new one: no network, and clocks frozen at zero
    /// unless `clocks` was granted.
    pub(crate) fn take(&self, clocks: bool) -> WasiCtx {
        if let Some(ctx) = self.idle(clocks).lock().ok().and_then(|mut v| v.pop()) {
            return ctx;
        }
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if !clocks {
            wasi.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
        }
        wasi.build()
    }

    /// Return a context taken with the same `clocks`.
    pub(crate) fn give_back(&self, clocks: bool, ctx: WasiCtx) {
        if let Ok(mut idle) = self.idle(clocks).lock()
            && idle.len() < self.keep
        {
            idle.push(ctx);
        }
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for State {}

impl host::Host for State {
    fn log(&mut self, level: host::LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        self.log_bytes += message.len();
        if self.log_lines > self.limits.log_lines || self.log_bytes > self.limits.log_bytes {
            return Err(LogLimitExceeded {
                lines: self.log_lines,
                bytes: self.log_bytes,
            }
            .into());
        }
        let policy = &*self.policy;
        match level {
            host::LogLevel::Trace => tracing::trace!(policy, "{message}"),
            host::LogLevel::Debug => tracing::debug!(policy, "{message}"),
            host::LogLevel::Info => tracing::info!(policy, "{message}"),
            host::LogLevel::Warn => tracing::warn!(policy, "{message}"),
            host::LogLevel::Error => tracing::error!(policy, "{message}"),
        }
        Ok(())
    }

    fn object_json(&mut self) -> String {
        self.review
            .as_ref()
            .map(|r| r.object_text().to_string())
            .unwrap_or_else(|| "null".into())
    }

    fn old_object_json(&mut self) -> Option<String> {
        self.review
            .as_ref()
            .and_then(|r| r.old_object_text().map(str::to_string))
    }

    fn get_object(
        &mut self,
        api_version: String,
        kind: String,
        namespace: String,
        name: String,
    ) -> Option<String> {
        self.cluster
            .get(&api_version, &kind, &namespace, &name)
            .map(|o| o.to_string())
    }

    fn list_objects(
        &mut self,
        api_version: String,
        kind: String,
        namespace: Option<String>,
        label_selector: Option<String>,
    ) -> Result<Vec<String>, String> {
        let selector = tollgate_sdk::selector::LabelSelector::parse(
            label_selector.as_deref().unwrap_or_default(),
        )?;
        Ok(self
            .cluster
            .list(&api_version, &kind, namespace.as_deref(), &selector)
            .iter()
            .map(|o| o.to_string())
            .collect())
    }

    fn node_pools(&mut self) -> Vec<types::NodePool> {
        let pools = self.cluster.node_pools();
        self.used_preset_pools |= pools
            .iter()
            .any(|p| p.source == crate::cluster::pools::PRESET);
        pools.iter().map(convert::pool).collect()
    }
}
