//! Hostile test guest `deep-recursion`: recurses without bound in `evaluate`.
//! The host must stop it when the wasm stack is exhausted (`stack-overflow`).
//!
//! The recursive function keeps only scalars, so its frames live on the wasm
//! (native) stack rather than Rust's shadow stack in linear memory; the result
//! is used after each call so the recursion cannot become a loop.

use std::hint::black_box;

use tollgate_sdk::{Decision, Host, Metadata, Policy, Review};

/// The policy.
pub struct DeepRecursion;

#[inline(never)]
fn descend(depth: u64, salt: u64) -> u64 {
    if depth == u64::MAX {
        return salt;
    }
    let below = descend(depth + 1, salt ^ depth);
    below.wrapping_mul(31).wrapping_add(depth)
}

impl Policy for DeepRecursion {
    type Settings = ();

    fn metadata() -> Metadata {
        Metadata {
            name: "deep-recursion".into(),
            kinds: vec!["*".into()],
            ..Default::default()
        }
    }

    fn evaluate(_: &Review, _: &(), _: &dyn Host) -> Decision {
        let result = descend(black_box(0), black_box(7));
        black_box(result);
        Decision::allow()
    }
}

tollgate_sdk::export_policy!(DeepRecursion);
