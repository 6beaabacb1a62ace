//! # Tollgate
//!
//! A placement-policy engine for Kubernetes clusters with cluster-autoscaler
//! node pools. Policies (sandboxed WASM components or CEL files) decide
//! taints and tolerations, node affinity, priority classes and evictability;
//! one evaluator serves every mode.
//!
//! ```no_run
//! use std::sync::Arc;
//! use tollgate::{cluster::{ClusterView, Empty}, evaluator::Evaluator, policy::{PolicySet, SetConfig}, review::Review, wasm::{Runtime, RuntimeConfig}};
//!
//! let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
//! let set = PolicySet::load(&runtime, &["autoscaler-isolation".into()], &SetConfig::default()).unwrap();
//! let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "kube-system"}, "spec": {}});
//! let cluster: Arc<dyn ClusterView> = Arc::new(Empty::default());
//! let verdict = Evaluator::new(set).evaluate(&Review::from_object(pod).unwrap(), &cluster);
//! println!("allowed: {}", verdict.allowed);
//! ```
//!
//! ## Core concepts
//! - [`review::Review`]: one object to judge, with placement records computed once.
//! - [`policy::PolicySet`]: the loaded, configured policies; a bundled pack is one.
//! - [`cluster::ClusterView`]: read-only lookups and node pools (a snapshot, or empty).
//! - [`evaluator::Evaluator`]: the only place policies run.
//! - [`decision::Verdict`]: every policy's [`decision::PolicyResult`], combined.
//!
//! ## Modules
//! Core (no CLI, HTTP or mode code): [`review`], [`decision`], [`policy`],
//! [`evaluator`], [`wasm`], [`cel`], [`native`], [`cluster`], [`pack`].
//! Modes and edges: [`admission`], [`audit`], [`generate`], [`defaulting`], [`cli`], [`output`], [`telemetry`].

pub mod admission;
pub mod audit;
pub mod cel;
pub mod cli;
pub mod cluster;
pub mod decision;
pub mod defaulting;
pub mod error_text;
pub mod evaluator;
pub mod generate;
pub mod krm;
pub mod native;
pub mod output;
pub mod pack;
pub mod policy;
pub mod review;
pub mod telemetry;
pub mod wasm;
