//! Hostile test guest `memory-bomb`: allocates 1 MiB chunks in `evaluate`,
//! writing every byte so that the pages are really used, until growing the
//! linear memory fails. The host must stop it at its memory limit (`memory-limit`).

use std::hint::black_box;

use tollgate_sdk::{Decision, Host, Metadata, Policy, Review};

/// The policy.
pub struct MemoryBomb;

const CHUNK: usize = 1 << 20;

impl Policy for MemoryBomb {
    type Settings = ();

    fn metadata() -> Metadata {
        Metadata {
            name: "memory-bomb".into(),
            kinds: vec!["*".into()],
            ..Default::default()
        }
    }

    fn evaluate(_: &Review, _: &(), _: &dyn Host) -> Decision {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            chunk.resize(CHUNK, 0xA5u8);
            hoard.push(black_box(chunk));
        }
    }
}

tollgate_sdk::export_policy!(MemoryBomb);
