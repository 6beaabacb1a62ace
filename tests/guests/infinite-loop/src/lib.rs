//! Hostile test guest `infinite-loop`: loads normally, then never returns from
//! `evaluate`. The host must stop it at the policy's deadline (`timeout`).

use std::hint::black_box;

use tollgate_sdk::{Decision, Host, Metadata, Policy, Review};

/// The policy.
pub struct InfiniteLoop;

impl Policy for InfiniteLoop {
    type Settings = ();

    fn metadata() -> Metadata {
        Metadata {
            name: "infinite-loop".into(),
            kinds: vec!["*".into()],
            ..Default::default()
        }
    }

    fn evaluate(_: &Review, _: &(), _: &dyn Host) -> Decision {
        let mut spins: u64 = 0;
        loop {
            spins = black_box(spins.wrapping_add(1));
        }
    }
}

tollgate_sdk::export_policy!(InfiniteLoop);
