//! Test guest `plain-world`: a policy of the plain `policy` world of
//! wit/policy.wit, built with wit-bindgen alone (no SDK), as a policy written
//! before `policy-encoded` existed or in another language would be. It
//! exports no `evaluate-encoded`, so the host must lower the review record
//! field by field. Its one violation, `seen-record`, spells out the record:
//!
//! `<Kind> <namespace>/<name> labels=<k=v,...> pod=<tolerations>;<node-selector>;<priority-class>`
//! where `<tolerations>` lists each toleration's key (`*` for none) and
//! `<node-selector>` its `k=v` pairs, or `pod=none`.

#[allow(missing_docs, unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "policy",
    });

    use tollgate::policy::types::{KeyValue, Violation};

    struct PlainWorld;

    fn pairs(kvs: &[KeyValue]) -> String {
        kvs.iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect::<Vec<_>>()
            .join(",")
    }

    impl Guest for PlainWorld {
        fn metadata() -> Metadata {
            Metadata {
                name: "plain-world".into(),
                version: "0.1.0".into(),
                description: "Describes the review record it was given".into(),
                kinds: vec!["*".into()],
                mutating: false,
                rules: vec![],
                capabilities: vec![],
            }
        }

        fn validate_settings(_: String) -> Result<(), String> {
            Ok(())
        }

        fn evaluate(review: Review, _: String) -> Decision {
            let pod = match &review.pod {
                None => "none".to_string(),
                Some(p) => format!(
                    "{};{};{}",
                    p.tolerations
                        .iter()
                        .map(|t| t.key.clone().unwrap_or_else(|| "*".into()))
                        .collect::<Vec<_>>()
                        .join(","),
                    pairs(&p.node_selector),
                    p.priority_class_name.clone().unwrap_or_default()
                ),
            };
            Decision {
                allowed: false,
                violations: vec![Violation {
                    rule: "seen-record".into(),
                    message: format!(
                        "{} {}/{} labels={} pod={pod}",
                        review.kind,
                        review.namespace,
                        review.name,
                        pairs(&review.labels)
                    ),
                    path: None,
                }],
                patch: None,
                warnings: vec![],
            }
        }
    }

    export!(PlainWorld);
}
