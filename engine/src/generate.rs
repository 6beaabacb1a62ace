//! The generated-manifests mode: Tollgate writes Kubernetes objects instead
//! of judging them. [`native`] compiles CEL policies into native admission
//! policies.

mod cel_text;
pub mod native;
