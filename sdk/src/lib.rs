//! # tollgate-sdk
//!
//! Write [Tollgate](https://github.com/tollgate-dev/tollgate) placement policies
//! in Rust and compile them to `wasm32-wasip2` components.
//!
//! ```
//! use tollgate_sdk::{Decision, Host, Metadata, Policy, Review, Violation};
//!
//! pub struct NoBlanketTolerations;
//!
//! impl Policy for NoBlanketTolerations {
//!     type Settings = ();
//!     fn metadata() -> Metadata {
//!         Metadata { name: "no-blanket".into(), kinds: vec!["Pod".into()], ..Default::default() }
//!     }
//!     fn evaluate(review: &Review, _: &(), _: &dyn Host) -> Decision {
//!         let blanket = review.pod.iter().flat_map(|p| &p.tolerations).any(|t| t.is_blanket());
//!         Decision::from_violations(if blanket {
//!             vec![Violation::new("blanket-toleration", "remove the key-less Exists toleration")]
//!         } else {
//!             vec![]
//!         })
//!     }
//! }
//!
//! tollgate_sdk::export_policy!(NoBlanketTolerations);
//! ```
//!
//! Modules:
//! - [`model`]: the contract's records (`Review`, `PodPlacement`, `Decision`, ...);
//! - [`policy`]: the [`Policy`] trait and the [`Host`] lookups;
//! - [`scheduling`]: Kubernetes placement predicates (tolerations, node affinity, pools);
//! - [`selector`]: label selectors; [`patch`]: JSON Patch builder; [`quantity`]: resource quantities;
//! - [`placement`]: building a `Review` from an object (shared with the engine);
//! - [`testing`]: run a policy natively under `cargo test`;
//! - [`wire`]: the review as one byte buffer (the contract's `evaluate-encoded`);
//! - `guest` (feature `guest`): the component bindings behind [`export_policy!`].

#[cfg(any(feature = "allocator", test))]
pub mod allocator;
pub mod model;
pub mod patch;
pub mod placement;
pub mod policy;
pub mod quantity;
pub mod scheduling;
pub mod selector;
pub mod testing;
pub mod wire;

#[cfg(feature = "guest")]
pub mod guest;

pub use model::*;
pub use patch::Patch;
pub use policy::{Host, HostExt, Policy};
pub use serde_json;

/// The component's global allocator: small blocks recycled by size class
/// ([`allocator::Recycling`]) in front of Talc, which allocates and frees
/// faster than the target's default dlmalloc (a policy's evaluation
/// allocates for every string the host hands it).
#[cfg(all(
    feature = "allocator",
    target_family = "wasm",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: allocator::Recycling<talc::wasm::WasmDynamicTalc> =
    allocator::Recycling::new(talc::wasm::new_wasm_dynamic_allocator());
