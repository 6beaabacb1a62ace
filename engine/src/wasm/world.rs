//! Which world of `wit/policy.wit` a component implements, and calling its
//! exports whichever it is.
//!
//! A component of the `policy-encoded` world (every policy built with the
//! Rust SDK) takes the review as one buffer in the SDK's `wire` encoding,
//! written once per review and copied into the guest with one allocation;
//! a component of the plain `policy` world gets the review record lowered
//! field by field, one host-to-guest allocation per string and list. Both
//! calls must return the same decision (tests/pack.rs checks the bundled
//! pack on the corpus; tests/worlds.rs a component of the plain world).

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::encoded::{PolicyEncoded, PolicyEncodedPre};
use super::bindings::tollgate::policy::types as wit;
use super::bindings::{Policy, PolicyPre};
use super::convert;
use super::host::State;
use crate::review::Review;

/// A component prepared for instantiation, by the world it implements.
#[derive(Clone)]
pub(crate) enum Pre {
    /// The plain `policy` world.
    Plain(PolicyPre<State>),
    /// `policy-encoded`: `policy` plus `evaluate-encoded`.
    Encoded(PolicyEncodedPre<State>),
}

impl Pre {
    /// The richest world the component implements.
    ///
    /// # Errors
    /// wasmtime's explanation of why it implements neither.
    pub(crate) fn new(instance_pre: InstancePre<State>) -> wasmtime::Result<Self> {
        match PolicyEncodedPre::new(instance_pre.clone()) {
            Ok(pre) => Ok(Pre::Encoded(pre)),
            Err(_) => PolicyPre::new(instance_pre).map(Pre::Plain),
        }
    }

    /// The same component called through the plain world only, with the
    /// review lowered as a record even when it could take it encoded.
    pub(crate) fn plain(&self) -> wasmtime::Result<Self> {
        match self {
            Pre::Plain(_) => Ok(self.clone()),
            Pre::Encoded(pre) => PolicyPre::new(pre.instance_pre().clone()).map(Pre::Plain),
        }
    }

    /// Whether reviews go to the component encoded.
    pub(crate) fn is_encoded(&self) -> bool {
        matches!(self, Pre::Encoded(_))
    }

    /// A new instance in `store`.
    pub(crate) fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Bound> {
        match self {
            Pre::Plain(pre) => pre.instantiate(store).map(Bound::Plain),
            Pre::Encoded(pre) => pre.instantiate(store).map(Bound::Encoded),
        }
    }
}

/// An instance of a policy component.
pub(crate) enum Bound {
    /// Of the plain `policy` world.
    Plain(Policy),
    /// Of `policy-encoded`.
    Encoded(PolicyEncoded),
}

impl Bound {
    /// Call `metadata`.
    pub(crate) fn metadata(&self, store: &mut Store<State>) -> wasmtime::Result<wit::Metadata> {
        match self {
            Bound::Plain(p) => p.call_metadata(store),
            Bound::Encoded(p) => p.call_metadata(store),
        }
    }

    /// Call `validate-settings`.
    pub(crate) fn validate_settings(
        &self,
        store: &mut Store<State>,
        settings: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Bound::Plain(p) => p.call_validate_settings(store, settings),
            Bound::Encoded(p) => p.call_validate_settings(store, settings),
        }
    }

    /// Judge `review`: `evaluate-encoded` with the review's encoded records,
    /// or `evaluate` with its WIT record (each built once per review).
    pub(crate) fn evaluate(
        &self,
        store: &mut Store<State>,
        review: &Review,
        settings: &str,
    ) -> wasmtime::Result<wit::Decision> {
        match self {
            Bound::Plain(p) => {
                let record = review
                    .wasm_cache()
                    .get_or_init(|| convert::review(review.records()));
                p.call_evaluate(store, record, settings)
            }
            Bound::Encoded(p) => p.call_evaluate_encoded(store, review.encoded_records(), settings),
        }
    }
}
