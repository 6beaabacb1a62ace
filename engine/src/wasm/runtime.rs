//! The wasmtime engine Tollgate runs policies on: its configuration (pooling
//! allocator, epoch interruption, with the [`Ticker`] that drives it) and the
//! on-disk cache of compiled components.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
    ProfilingStrategy,
};

use super::Error;
use super::host::{State, WasiContexts};
use super::ticker::Ticker;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Evaluations that may run at the same time (pool slots).
    pub max_concurrent: u32,
    /// The largest linear memory any policy may be granted.
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_concurrent: 64,
            max_memory_bytes: 128 << 20,
            cache_dir: default_cache_dir(),
        }
    }
}

/// `$TOLLGATE_CACHE_DIR`, else `$XDG_CACHE_HOME/tollgate`, else `~/.cache/tollgate`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TOLLGATE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tollgate"))
}

/// `$TOLLGATE_WASM_PROFILER`: `perfmap` or `jitdump` make the policies'
/// compiled code visible to `perf` (`/tmp/perf-<pid>.map`, or a jitdump file
/// for `perf inject --jit`), so a profile of the server names guest
/// functions instead of anonymous addresses (docs/benchmarks.md). It needs a
/// build with the `wasm-profiling` feature. Unset, empty or `none`: no profiler.
fn profiler_from_env() -> Result<ProfilingStrategy, Error> {
    profiler(std::env::var("TOLLGATE_WASM_PROFILER").ok().as_deref())
}

/// The profiling strategy `TOLLGATE_WASM_PROFILER` asks for.
fn profiler(setting: Option<&str>) -> Result<ProfilingStrategy, Error> {
    let strategy = match setting {
        None | Some("" | "none") => return Ok(ProfilingStrategy::None),
        Some("perfmap") => ProfilingStrategy::PerfMap,
        Some("jitdump") => ProfilingStrategy::JitDump,
        Some(other) => {
            return Err(Error::Engine(format!(
                "TOLLGATE_WASM_PROFILER is {other:?}; expected perfmap, jitdump or none"
            )));
        }
    };
    if cfg!(feature = "wasm-profiling") {
        Ok(strategy)
    } else {
        Err(Error::Engine(
            "TOLLGATE_WASM_PROFILER is set, but this build has no profiler: \
             build with `--features tollgate/wasm-profiling`"
                .into(),
        ))
    }
}

/// The engine, linker, ticker and compile cache shared by every WASM policy.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<State>>,
    pub(crate) ticker: Arc<Ticker>,
    cache_dir: Option<PathBuf>,
    pub(crate) max_memory_bytes: usize,
    pub(crate) wasi_contexts: Arc<WasiContexts>,
    /// Idle warm instances that may still be kept, across all policies
    /// (each holds pooling-allocator slots).
    pub(crate) idle_budget: Arc<AtomicUsize>,
    /// Idle warm instances kept per policy: enough for every thread that
    /// evaluates at once on this machine.
    pub(crate) warm_keep: usize,
}

impl Runtime {
    /// Build the engine.
    ///
    /// # Errors
    /// When wasmtime rejects the configuration or the linker cannot be built.
    pub fn new(config: &RuntimeConfig) -> Result<Self, Error> {
        let n = config.max_concurrent.max(1);
        // Slots for the evaluations running at once, plus as many for idle
        // warm instances.
        let slots = n * 2;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .max_memories_per_component(2)
            .max_memory_size(config.max_memory_bytes)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), reset only the
            // pages a policy dirtied instead of memsetting the whole resident
            // part of its memory after every evaluation.
            .pagemap_scan(Enabled::Auto);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .cranelift_opt_level(OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .profiler(profiler_from_env()?);
        let engine = Engine::new(&wasm).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        super::bindings::Policy::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| Error::Engine(format!("{e:#}")))?;
        Ok(Runtime {
            ticker: Arc::new(Ticker::start(engine.clone())),
            engine,
            linker: Arc::new(linker),
            cache_dir: config.cache_dir.clone(),
            max_memory_bytes: config.max_memory_bytes,
            wasi_contexts: Arc::new(WasiContexts::new(n as usize)),
            idle_budget: Arc::new(AtomicUsize::new(n as usize)),
            warm_keep: std::thread::available_parallelism()
                .map_or(2, |p| p.get() * 2)
                .min(n as usize),
        })
    }

    /// Compile a component, through the cache when there is one.
    pub(crate) fn compile(&self, policy: &str, bytes: &[u8]) -> Result<Component, Error> {
        check_component(policy, bytes)?;
        let cached = self
            .cache_dir
            .as_ref()
            .map(|dir| dir.join(self.cache_key(bytes)));
        if let Some(path) = &cached
            && path.is_file()
            && let Ok(component) = self.deserialize(path)
        {
            return Ok(component);
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| Error::Compile {
            policy: policy.to_string(),
            detail: format!("{e:#}"),
        })?;
        if let Some(path) = &cached
            && let Err(e) = store_artifact(path, &component)
        {
            tracing::debug!(policy, "compile cache not written: {e}");
        }
        Ok(component)
    }

    /// The cache file name: content hash and the engine's compatibility hash,
    /// so a different wasmtime or configuration never loads a stale artifact.
    fn cache_key(&self, bytes: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut compat);
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}-{:016x}.cwasm", compat.finish())
    }

    #[allow(unsafe_code)]
    fn deserialize(&self, path: &Path) -> wasmtime::Result<Component> {
        // SAFETY: wasmtime requires that the file be an artifact produced by
        // `Component::serialize` of a compatible engine. The cache directory is
        // Tollgate's own (created 0700), files are written atomically by
        // `store_artifact` from `Component::serialize`, and the name carries
        // the engine's compatibility hash; wasmtime additionally checks the
        // artifact's header and engine settings before using it.
        unsafe { Component::deserialize_file(&self.engine, path) }
    }
}

fn store_artifact(path: &Path, component: &Component) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let bytes = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    // Unique per writer, so concurrent compiles of one component never share a temp file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reject what is not a component before wasmtime sees it, with a message a
/// user can act on.
fn check_component(policy: &str, bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(Error::NotWasm {
            policy: policy.to_string(),
        });
    }
    // Core modules have layer 0 (bytes 6..8 = 00 00); components have layer 1.
    if bytes[6..8] == [0, 0] {
        return Err(Error::CoreModule {
            policy: policy.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use wasmtime::ProfilingStrategy;

    use super::profiler;

    #[test]
    fn the_profiler_variable_is_off_unless_set_and_refuses_unknown_values() {
        for off in [None, Some(""), Some("none")] {
            assert!(matches!(profiler(off), Ok(ProfilingStrategy::None)));
        }
        let unknown = profiler(Some("vtune")).unwrap_err().to_string();
        assert!(
            unknown.contains("TOLLGATE_WASM_PROFILER is \"vtune\""),
            "{unknown}"
        );
        for known in ["perfmap", "jitdump"] {
            let result = profiler(Some(known));
            if cfg!(feature = "wasm-profiling") {
                assert!(result.is_ok(), "{known}");
            } else {
                let message = result.unwrap_err().to_string();
                assert!(
                    message.contains("--features tollgate/wasm-profiling"),
                    "{message}"
                );
            }
        }
    }
}
