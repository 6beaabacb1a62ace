//! Test guest `counter`: keeps a count in a global and reports it, so tests
//! can see whether an instance is fresh or reused.
//!
//! It denies every object with one violation, rule `evaluations`, message
//! `evaluation <n> of this instance: <namespace/name>`: `n` is 1 in a fresh
//! instance and grows while an instance is reused. The setting `grow: true`
//! makes it keep 1 MiB more of heap per evaluation (a leak), so its memory
//! grows on every evaluation.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Deserialize;
use tollgate_sdk::{Decision, Host, Metadata, Policy, Review, RuleInfo, Violation};

/// The policy.
pub struct Counter;

/// The counter guest's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Leak 1 MiB per evaluation.
    pub grow: bool,
}

static EVALUATIONS: AtomicU32 = AtomicU32::new(0);
static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

impl Policy for Counter {
    type Settings = Settings;

    fn metadata() -> Metadata {
        Metadata {
            name: "counter".into(),
            kinds: vec!["*".into()],
            rules: vec![RuleInfo {
                id: "evaluations".into(),
                description: "how many evaluations this instance has served".into(),
            }],
            ..Default::default()
        }
    }

    fn evaluate(review: &Review, settings: &Settings, _: &dyn Host) -> Decision {
        let n = EVALUATIONS.fetch_add(1, Ordering::Relaxed) + 1;
        if settings.grow
            && let Ok(mut leaked) = LEAKED.lock()
        {
            leaked.push(vec![1; 1 << 20]);
        }
        Decision::from_violations(vec![Violation::new(
            "evaluations",
            format!("evaluation {n} of this instance: {}", review.display_name()),
        )])
    }
}

tollgate_sdk::export_policy!(Counter);
