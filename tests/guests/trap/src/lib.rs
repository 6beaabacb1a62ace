//! Hostile test guest `trap`: panics in `evaluate` (policies are built with
//! `panic = "abort"`, so the panic is a wasm trap). The host must report a `trap`.

use tollgate_sdk::{Decision, Host, Metadata, Policy, Review};

/// The policy.
pub struct Trap;

impl Policy for Trap {
    type Settings = ();

    fn metadata() -> Metadata {
        Metadata {
            name: "trap".into(),
            kinds: vec!["*".into()],
            ..Default::default()
        }
    }

    fn evaluate(review: &Review, _: &(), _: &dyn Host) -> Decision {
        panic!("trap guest: deliberate panic while judging {}", review.name);
    }
}

tollgate_sdk::export_policy!(Trap);
