//! Hostile test guest `huge-output`: returns 4 MiB of violation messages
//! (4096 violations of 1 KiB). The host must refuse the output (`output-limit`).

use tollgate_sdk::{Decision, Host, Metadata, Policy, Review, Violation};

/// The policy.
pub struct HugeOutput;

impl Policy for HugeOutput {
    type Settings = ();

    fn metadata() -> Metadata {
        Metadata {
            name: "huge-output".into(),
            kinds: vec!["*".into()],
            ..Default::default()
        }
    }

    fn evaluate(_: &Review, _: &(), _: &dyn Host) -> Decision {
        let filler = "x".repeat(1024);
        Decision::from_violations(
            (0..4096)
                .map(|i| Violation::new("huge", format!("{i}:{filler}")))
                .collect(),
        )
    }
}

tollgate_sdk::export_policy!(HugeOutput);
