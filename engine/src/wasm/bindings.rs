//! Generated host bindings for `wit/policy.wit` (only the `bindgen!` output).
//!
//! `host.log` is trappable so the host can stop a policy that floods the log.
//! [`encoded`] is the `policy-encoded` world, which adds `evaluate-encoded`
//! to `policy`; it shares the types and the host interface generated here.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    imports: {
        "tollgate:policy/host.log": trappable,
    },
});

/// The `policy-encoded` world.
pub mod encoded {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy-encoded",
        with: {
            "tollgate:policy/types": super::tollgate::policy::types,
            "tollgate:policy/host": super::tollgate::policy::host,
        },
    });
}
