//! Generated-manifests mode: Tollgate writes Kubernetes manifests instead of
//! judging them. One module per kind of output.

pub mod install;
