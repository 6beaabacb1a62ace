//! Hostile test guest `log-flood`: calls the host's `log` import in a loop
//! forever. The host must stop it at its log limit (`log-limit`).

use tollgate_sdk::{Decision, Host, LogLevel, Metadata, Policy, Review};

/// The policy.
pub struct LogFlood;

impl Policy for LogFlood {
    type Settings = ();

    fn metadata() -> Metadata {
        Metadata {
            name: "log-flood".into(),
            kinds: vec!["*".into()],
            ..Default::default()
        }
    }

    fn evaluate(_: &Review, _: &(), host: &dyn Host) -> Decision {
        let mut line: u64 = 0;
        loop {
            host.log(LogLevel::Debug, &format!("log-flood line {line}"));
            line = line.wrapping_add(1);
        }
    }
}

tollgate_sdk::export_policy!(LogFlood);
