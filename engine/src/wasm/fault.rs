//! Classifies wasmtime errors into [`Fault`]s, in one place, by downcasting
//! (never by matching error text).

use crate::decision::{Fault, FaultKind};

use super::limits::{LogLimitExceeded, MemoryLimitExceeded};

/// The fault of a failed instantiation or call of policy `policy`.
pub(crate) fn classify(policy: &str, timeout_ms: u64, error: &wasmtime::Error) -> Fault {
    if let Some(e) = error.downcast_ref::<MemoryLimitExceeded>() {
        return Fault::new(FaultKind::MemoryLimit, format!("policy {policy}: {e}"));
    }
    if let Some(e) = error.downcast_ref::<LogLimitExceeded>() {
        return Fault::new(FaultKind::LogLimit, format!("policy {policy}: {e}"));
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Fault::new(
            FaultKind::Timeout,
            format!("policy {policy}: deadline of {timeout_ms} ms exceeded"),
        ),
        Some(wasmtime::Trap::StackOverflow) => Fault::new(
            FaultKind::StackOverflow,
            format!("policy {policy}: wasm stack overflow"),
        ),
        Some(trap) => Fault::new(FaultKind::Trap, format!("policy {policy} trapped: {trap}")),
        None => Fault::new(
            FaultKind::Trap,
            format!("policy {policy} failed: {error:#}"),
        ),
    }
}
