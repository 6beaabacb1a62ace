//! Generated host bindings for `wit/policy.wit` (only the `bindgen!` output).
//!
//! `host.log` is trappable so the host can stop a policy that floods the log.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    imports: {
        "tollgate:policy/host.log": trappable,
    },
});
