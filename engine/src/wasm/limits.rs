//! Per-policy resource limits and the store's resource limiter.
//!
//! | limit | default | enforced by |
//! |---|---|---|
//! | wall-clock deadline | 100 ms | epoch interruption at the deadline ([`super::ticker`]) |
//! | linear memory | 64 MiB | [`Limiter`] (typed error, not a guest abort) |
//! | table elements | 100,000 | [`Limiter`] |
//! | output (violations, patch, warnings) | 1 MiB | checked after the call |
//! | log | 200 lines or 64 KiB | the `host.log` import traps past it |
//! | wasm stack | 512 KiB | wasmtime `max_wasm_stack` (stack overflow trap) |
//!
//! A policy past its deadline stops at its next epoch check after the ticker
//! wakes at that deadline; one in a host call, once it returns.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits for one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline per evaluation, in milliseconds.
    pub timeout_ms: u64,
    /// Maximum linear memory, in bytes.
    pub memory_bytes: usize,
    /// Maximum output of one evaluation, in bytes.
    pub output_bytes: usize,
    /// Maximum log lines per evaluation.
    pub log_lines: usize,
    /// Maximum log bytes per evaluation.
    pub log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 100,
            memory_bytes: 64 << 20,
            output_bytes: 1 << 20,
            log_lines: 200,
            log_bytes: 64 << 10,
        }
    }
}

impl Limits {
    /// The deadline as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Raised (as the trap's cause) when a policy grows its memory past the limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (asked for {desired} bytes)")]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit: usize,
    /// The size the policy asked for.
    pub desired: usize,
}

/// Raised (as the trap's cause) when a policy logs past its limit.
#[derive(Debug, thiserror::Error)]
#[error("log limit exceeded ({lines} lines, {bytes} bytes)")]
pub struct LogLimitExceeded {
    /// Lines logged.
    pub lines: usize,
    /// Bytes logged.
    pub bytes: usize,
}

/// The store's resource limiter.
pub(crate) struct Limiter {
    pub memory_bytes: usize,
    /// Whether a memory grew since the flag was last cleared (warm
    /// instances are retired when it grows on reuse: [`super::warm`]).
    pub grew: bool,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(MemoryLimitExceeded {
                limit: self.memory_bytes,
                desired,
            }
            .into());
        }
        self.grew = true;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
