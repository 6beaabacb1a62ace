//! The two worlds of the policy contract (wit/policy.wit): a component of
//! the plain `policy` world, built without the SDK, still loads and gets the
//! review record lowered field by field; a policy built with the SDK
//! implements `policy-encoded` and gets the review as one encoded buffer.
//! (tests/pack.rs checks that the bundled pack decides the same either way.)

use serde_json::json;
use tollgate::wasm::{Limits, WasmPolicy};

use crate::util::{Guest, no_context, review, runtime};

fn load(guest: Guest) -> WasmPolicy {
    let bytes = std::fs::read(guest.wasm()).expect("guest built");
    WasmPolicy::load(runtime(), guest.dir(), &bytes, Limits::default(), &[])
        .unwrap_or_else(|e| panic!("{} does not load: {e}", guest.dir()))
}

#[test]
fn a_plain_world_component_gets_the_review_record_lowered() {
    let policy = load(Guest::PlainWorld);
    assert!(!policy.takes_encoded_reviews());
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "containers": [{"name": "c", "image": "nginx"}],
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "pool", "effect": "NoSchedule"},
                            {"operator": "Exists"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "priorityClassName": "batch-low"
        }
    });
    let outcome = policy
        .evaluate(&review(pod), "{}", no_context())
        .expect("evaluates");
    assert_eq!(outcome.decision.violations.len(), 1);
    assert_eq!(
        outcome.decision.violations[0].message,
        "Pod shop/web-1 labels=app=web,tier=front pod=dedicated,*;kubernetes.io/os=linux;batch-low"
    );
}

#[test]
fn sdk_policies_take_the_review_encoded_and_can_be_given_it_lowered() {
    for guest in [Guest::Echo, Guest::Counter] {
        let policy = load(guest);
        assert!(policy.takes_encoded_reviews(), "{}", guest.dir());
        let lowered = policy.with_lowered_reviews().expect("plain world");
        assert!(!lowered.takes_encoded_reviews(), "{}", guest.dir());
    }
    // A plain component stays plain.
    let plain = load(Guest::PlainWorld)
        .with_lowered_reviews()
        .expect("plain");
    assert!(!plain.takes_encoded_reviews());
}
