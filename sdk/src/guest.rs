//! The guest side of the component boundary: wit-bindgen bindings for
//! `wit/policy.wit`, conversions between them and [`crate::model`], the
//! [`Host`] backed by the component's imports, and the glue that
//! [`crate::export_policy!`] expands to. Policy authors never touch this module.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::rc::Rc;

use crate::model::{self, Labels};
use crate::policy::{Host, Policy, load_settings};

#[allow(missing_docs, unsafe_code, clippy::all)]
/// Generated bindings (private to the SDK's macro).
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "policy-encoded",
        pub_export_macro: true,
        export_macro_name: "export_policy_world",
        default_bindings_module: "tollgate_sdk::guest::bindings",
    });
}

use bindings::tollgate::policy::{host as imports, types as wit};

/// Implementation of the generated `Guest::metadata` for `P`.
pub fn metadata<P: Policy>() -> wit::Metadata {
    let m = P::metadata();
    wit::Metadata {
        name: m.name,
        version: m.version,
        description: m.description,
        kinds: m.kinds,
        mutating: m.mutating,
        rules: m
            .rules
            .into_iter()
            .map(|r| wit::RuleInfo {
                id: r.id,
                description: r.description,
            })
            .collect(),
        capabilities: m
            .capabilities
            .into_iter()
            .map(|c| match c {
                model::Capability::Clocks => wit::Capability::Clocks,
            })
            .collect(),
    }
}

/// Implementation of the generated `Guest::validate_settings` for `P`.
pub fn validate_settings<P: Policy>(settings: &str) -> Result<(), String> {
    load_settings::<P>(settings).map(|_| ())
}

/// Implementation of the generated `Guest::evaluate` for `P`.
pub fn evaluate<P: Policy + 'static>(review: wit::Review, settings: &str) -> wit::Decision {
    judge::<P>(&review_from_wit(review), settings)
}

/// Implementation of the generated `Guest::evaluate_encoded` for `P`: the
/// review in the [`crate::wire`] encoding, decoded here instead of lowered
/// string by string by the host.
pub fn evaluate_encoded<P: Policy + 'static>(review: &[u8], settings: &str) -> wit::Decision {
    with_decoded(review, |decoded| match decoded {
        Ok(review) => judge::<P>(review, settings),
        Err(e) => decision_to_wit(model::Decision::from_violations(vec![
            model::Violation::new("invalid-review-encoding", e.to_string()),
        ])),
    })
}

/// Decode the host's encoded review and hand it to `judge`.
///
/// With the SDK's allocator the review is decoded into its scratch region
/// ([`crate::allocator`]) and, when all of it fit there, forgotten instead of
/// dropped: the next review's decoding reuses the memory. The region is
/// `6 × the encoded size + 2 KiB`: the benchmark Pod's review, 667 bytes
/// encoded, decodes into 62 blocks of 4.1 KB in all on a 64-bit target
/// (its labels twice), less on wasm32. What does not fit is allocated and
/// freed as usual.
fn with_decoded<R>(
    bytes: &[u8],
    judge: impl FnOnce(Result<&model::Review, crate::wire::WireError>) -> R,
) -> R {
    #[allow(unsafe_code)]
    // SAFETY: the host wrote these bytes with `wire::encode_review`, so every
    // string in them is UTF-8; the host is trusted for that as wit-bindgen's
    // bindings trust it for every lifted string.
    let decode = || unsafe { crate::wire::decode_encoded_review(bytes) };
    #[cfg(all(
        feature = "allocator",
        target_family = "wasm",
        not(target_feature = "atomics")
    ))]
    {
        let capacity = bytes.len().saturating_mul(6).saturating_add(2048);
        #[allow(unsafe_code)]
        // SAFETY: the only blocks ever allocated from the region are those of
        // a review decoded here, and that review is gone (forgotten or
        // dropped below) before the next call starts the region over.
        let in_region = unsafe { crate::ALLOCATOR.begin_scratch(capacity) };
        let decoded = decode();
        let all_in_region = crate::ALLOCATOR.end_scratch();
        let verdict = judge(decoded.as_ref().map_err(Clone::clone));
        if in_region && all_in_region {
            // Its memory is the region's, reused by the next review; dropping
            // it would only walk it to free nothing.
            core::mem::forget(decoded);
        }
        return verdict;
    }
    #[allow(unreachable_code)]
    judge(decode().as_ref().map_err(Clone::clone))
}

fn judge<P: Policy + 'static>(review: &model::Review, settings: &str) -> wit::Decision {
    let decision = match &*loaded_settings::<P>(settings) {
        Ok(settings) => P::evaluate(review, settings, &ImportedHost),
        Err(e) => model::Decision::from_violations(vec![model::Violation::new(
            "invalid-settings",
            e.clone(),
        )]),
    };
    decision_to_wit(decision)
}

/// Settings as loaded for one text by one policy type.
type Loaded = (TypeId, String, Rc<dyn Any>);

thread_local! {
    /// The settings of the last evaluation and their text. A warm instance
    /// is called with the same settings text every time, so they are parsed
    /// and validated once per instance instead of once per review. They come
    /// from the policy's configuration, never from a request.
    static LAST_SETTINGS: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

/// [`load_settings`] of `text` for `P`, or the result of the last call with
/// the same text and policy type.
fn loaded_settings<P: Policy + 'static>(text: &str) -> Rc<Result<P::Settings, String>> {
    let policy = TypeId::of::<P>();
    let cached = LAST_SETTINGS.with_borrow(|last| {
        last.as_ref()
            .filter(|(last_policy, last_text, _)| *last_policy == policy && last_text == text)
            .and_then(|(_, _, loaded)| Rc::clone(loaded).downcast().ok())
    });
    cached.unwrap_or_else(|| {
        let loaded = Rc::new(load_settings::<P>(text));
        LAST_SETTINGS.set(Some((policy, text.to_string(), loaded.clone())));
        loaded
    })
}

fn decision_to_wit(decision: model::Decision) -> wit::Decision {
    wit::Decision {
        allowed: decision.allowed,
        violations: decision
            .violations
            .into_iter()
            .map(|v| wit::Violation {
                rule: v.rule,
                message: v.message,
                path: v.path,
            })
            .collect(),
        patch: decision.patch,
        warnings: decision.warnings,
    }
}

/// The [`Host`] backed by the component's imports.
pub struct ImportedHost;

impl Host for ImportedHost {
    fn object_json(&self) -> String {
        imports::object_json()
    }

    fn old_object_json(&self) -> Option<String> {
        imports::old_object_json()
    }

    fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<String> {
        imports::get_object(api_version, kind, namespace, name)
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, String> {
        imports::list_objects(api_version, kind, namespace, label_selector)
    }

    fn node_pools(&self) -> Vec<model::NodePool> {
        imports::node_pools()
            .into_iter()
            .map(pool_from_wit)
            .collect()
    }

    fn log(&self, level: model::LogLevel, message: &str) {
        let level = match level {
            model::LogLevel::Trace => imports::LogLevel::Trace,
            model::LogLevel::Debug => imports::LogLevel::Debug,
            model::LogLevel::Info => imports::LogLevel::Info,
            model::LogLevel::Warn => imports::LogLevel::Warn,
            model::LogLevel::Error => imports::LogLevel::Error,
        };
        imports::log(level, message)
    }
}

fn labels(kvs: Vec<wit::KeyValue>) -> Labels {
    kvs.into_iter().map(|kv| (kv.key, kv.value)).collect()
}

fn effect(e: wit::TaintEffect) -> model::TaintEffect {
    match e {
        wit::TaintEffect::NoSchedule => model::TaintEffect::NoSchedule,
        wit::TaintEffect::PreferNoSchedule => model::TaintEffect::PreferNoSchedule,
        wit::TaintEffect::NoExecute => model::TaintEffect::NoExecute,
    }
}

fn taint(t: wit::Taint) -> model::Taint {
    model::Taint {
        key: t.key,
        value: t.value,
        effect: effect(t.effect),
    }
}

fn term(t: wit::NodeSelectorTerm) -> model::NodeSelectorTerm {
    let reqs = |rs: Vec<wit::SelectorRequirement>| {
        rs.into_iter()
            .map(|r| model::SelectorRequirement {
                key: r.key,
                operator: match r.operator {
                    wit::SelectorOperator::In => model::SelectorOperator::In,
                    wit::SelectorOperator::NotIn => model::SelectorOperator::NotIn,
                    wit::SelectorOperator::Exists => model::SelectorOperator::Exists,
                    wit::SelectorOperator::DoesNotExist => model::SelectorOperator::DoesNotExist,
                    wit::SelectorOperator::Gt => model::SelectorOperator::Gt,
                    wit::SelectorOperator::Lt => model::SelectorOperator::Lt,
                },
                values: r.values,
            })
            .collect()
    };
    model::NodeSelectorTerm {
        match_expressions: reqs(t.match_expressions),
        match_fields: reqs(t.match_fields),
    }
}

fn pod_from_wit(p: wit::PodPlacement) -> model::PodPlacement {
    model::PodPlacement {
        template_path: p.template_path,
        controller: p.controller.map(|o| model::Owner {
            api_version: o.api_version,
            kind: o.kind,
            name: o.name,
        }),
        labels: labels(p.labels),
        annotations: labels(p.annotations),
        tolerations: p
            .tolerations
            .into_iter()
            .map(|t| model::Toleration {
                key: t.key,
                operator: match t.operator {
                    wit::TolerationOperator::Equal => model::TolerationOperator::Equal,
                    wit::TolerationOperator::Exists => model::TolerationOperator::Exists,
                },
                value: t.value,
                effect: t.effect.map(effect),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
        node_selector: labels(p.node_selector),
        required_node_affinity: p.required_node_affinity.into_iter().map(term).collect(),
        preferred_node_affinity: p
            .preferred_node_affinity
            .into_iter()
            .map(|t| model::PreferredTerm {
                weight: t.weight,
                preference: term(t.preference),
            })
            .collect(),
        priority_class_name: p.priority_class_name,
        priority: p.priority,
        volumes: p
            .volumes
            .into_iter()
            .map(|v| model::Volume {
                name: v.name,
                source: match v.source {
                    wit::VolumeSource::EmptyDir => model::VolumeSource::EmptyDir,
                    wit::VolumeSource::EmptyDirMemory => model::VolumeSource::EmptyDirMemory,
                    wit::VolumeSource::HostPath => model::VolumeSource::HostPath,
                    wit::VolumeSource::PersistentVolumeClaim => {
                        model::VolumeSource::PersistentVolumeClaim
                    }
                    wit::VolumeSource::ConfigMap => model::VolumeSource::ConfigMap,
                    wit::VolumeSource::Secret => model::VolumeSource::Secret,
                    wit::VolumeSource::Projected => model::VolumeSource::Projected,
                    wit::VolumeSource::DownwardApi => model::VolumeSource::DownwardApi,
                    wit::VolumeSource::Ephemeral => model::VolumeSource::Ephemeral,
                    wit::VolumeSource::Other => model::VolumeSource::Other,
                },
            })
            .collect(),
        host_ports: p
            .host_ports
            .into_iter()
            .map(|h| model::HostPort {
                port: h.port,
                protocol: h.protocol,
            })
            .collect(),
        cpu_request_millis: p.cpu_request_millis,
        memory_request_bytes: p.memory_request_bytes,
        replicas: p.replicas,
        node_name: p.node_name,
    }
}

fn review_from_wit(r: wit::Review) -> model::Review {
    let review_labels = labels(r.labels);
    let review_annotations = labels(r.annotations);
    model::Review {
        api_version: r.api_version,
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
        operation: match r.operation {
            wit::Operation::Create => model::Operation::Create,
            wit::Operation::Update => model::Operation::Update,
            wit::Operation::Delete => model::Operation::Delete,
            wit::Operation::Connect => model::Operation::Connect,
            wit::Operation::None => model::Operation::None,
        },
        // A Pod's labels and annotations travel once, in the review.
        pod: r.pod.map(|p| {
            let mut pod = pod_from_wit(p);
            if pod.template_path.is_empty() {
                pod.labels = review_labels.clone();
                pod.annotations = review_annotations.clone();
            }
            pod
        }),
        labels: review_labels,
        annotations: review_annotations,
        node: r.node.map(|n| model::NodeInfo {
            labels: labels(n.labels),
            annotations: labels(n.annotations),
            taints: n.taints.into_iter().map(taint).collect(),
            unschedulable: n.unschedulable,
        }),
        request: r.request.map(|q| model::RequestInfo {
            uid: q.uid,
            sub_resource: q.sub_resource,
            user: q.user,
            groups: q.groups,
            dry_run: q.dry_run,
        }),
    }
}

fn pool_from_wit(p: wit::NodePool) -> model::NodePool {
    model::NodePool {
        name: p.name,
        min_size: p.min_size,
        max_size: p.max_size,
        node_selector: labels(p.node_selector),
        name_prefix: p.name_prefix,
        taints: p.taints.into_iter().map(taint).collect(),
        labels: labels(p.labels),
        source: p.source,
    }
}

/// Export a type implementing [`crate::Policy`] as the component's `policy`
/// world (see the crate documentation for a whole policy). The component's
/// exports are emitted for wasm targets only, so a policy crate also builds,
/// links with other policies and tests natively.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[doc(hidden)]
        pub struct __TollgatePolicyExport;

        impl $crate::guest::bindings::Guest for __TollgatePolicyExport {
            fn metadata() -> $crate::guest::bindings::Metadata {
                $crate::guest::metadata::<$policy>()
            }

            fn validate_settings(settings: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                $crate::guest::validate_settings::<$policy>(&settings)
            }

            fn evaluate(
                review: $crate::guest::bindings::Review,
                settings: ::std::string::String,
            ) -> $crate::guest::bindings::Decision {
                $crate::guest::evaluate::<$policy>(review, &settings)
            }

            fn evaluate_encoded(
                review: ::std::vec::Vec<u8>,
                settings: ::std::string::String,
            ) -> $crate::guest::bindings::Decision {
                $crate::guest::evaluate_encoded::<$policy>(&review, &settings)
            }
        }

        // Only components export the world: natively (under `cargo test`, or
        // when several policies link into one test binary) the symbols would clash.
        #[cfg(target_family = "wasm")]
        #[allow(unsafe_code)]
        const _: () = {
            $crate::guest::bindings::export_policy_world!(__TollgatePolicyExport with_types_in $crate::guest::bindings);
        };
    };
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde::Deserialize;

    use super::judge;
    use crate::model::{Decision, Metadata, Review, Violation};
    use crate::policy::{Host, Policy};

    thread_local! {
        /// Settings validated so far on this thread.
        static VALIDATED: Cell<u32> = const { Cell::new(0) };
    }

    #[derive(Default, Deserialize)]
    struct Limit {
        max: usize,
    }

    /// Denies a review whose name is longer than its settings' `max`.
    struct NameLength;

    impl Policy for NameLength {
        type Settings = Limit;

        fn metadata() -> Metadata {
            Metadata::default()
        }

        fn validate(settings: &Limit) -> Result<(), String> {
            VALIDATED.set(VALIDATED.get() + 1);
            (settings.max <= 10)
                .then_some(())
                .ok_or("max is over 10".into())
        }

        fn evaluate(review: &Review, settings: &Limit, _: &dyn Host) -> Decision {
            if review.name.len() > settings.max {
                Decision::from_violations(vec![Violation::new("too-long", "")])
            } else {
                Decision::allow()
            }
        }
    }

    /// The same settings type under another policy.
    struct Other;

    impl Policy for Other {
        type Settings = Limit;

        fn metadata() -> Metadata {
            Metadata::default()
        }

        fn validate(_: &Limit) -> Result<(), String> {
            VALIDATED.set(VALIDATED.get() + 100);
            Ok(())
        }

        fn evaluate(_: &Review, _: &Limit, _: &dyn Host) -> Decision {
            Decision::from_violations(vec![Violation::new("other", "")])
        }
    }

    fn rules(decision: crate::guest::bindings::Decision) -> Vec<String> {
        decision.violations.into_iter().map(|v| v.rule).collect()
    }

    #[test]
    fn settings_are_loaded_once_per_text_and_policy() {
        let review = Review {
            name: "seven-c".into(),
            ..Review::default()
        };
        VALIDATED.set(0);
        for _ in 0..2 {
            assert_eq!(
                rules(judge::<NameLength>(&review, r#"{"max": 3}"#)),
                ["too-long"]
            );
        }
        assert_eq!(VALIDATED.get(), 1, "the same text is loaded once");
        assert!(rules(judge::<NameLength>(&review, r#"{"max": 9}"#)).is_empty());
        assert_eq!(VALIDATED.get(), 2, "another text is loaded");
        for _ in 0..2 {
            assert_eq!(
                rules(judge::<NameLength>(&review, r#"{"max": 50}"#)),
                ["invalid-settings"]
            );
        }
        assert_eq!(VALIDATED.get(), 3, "an invalid text is refused once");
        assert_eq!(rules(judge::<Other>(&review, r#"{"max": 50}"#)), ["other"]);
        assert_eq!(VALIDATED.get(), 103, "another policy loads its own");
        // No settings: the defaults (max 0).
        assert_eq!(rules(judge::<NameLength>(&review, "")), ["too-long"]);
        assert_eq!(VALIDATED.get(), 104);
    }
}
