//! The engine's read-only view of a cluster: objects by kind, namespace and
//! labels, and the autoscaler node pools. Policies' host lookups, CEL's
//! `namespaceObject` and `pools`, and audit all read from a [`ClusterView`].
//!
//! Backed by a [`Snapshot`] of files or of a live cluster's objects (read
//! through kube-rs by [`live`]), or by [`Empty`] when there is no context
//! (then node pools come from the kube-hetzner preset, see [`pools`]).

pub mod live;
pub mod pools;
pub mod snapshot;

use std::sync::Arc;

use serde_json::Value;
use tollgate_sdk::model::NodePool;
use tollgate_sdk::selector::LabelSelector;

pub use snapshot::Snapshot;

/// Read-only lookups into a cluster.
pub trait ClusterView: Send + Sync {
    /// One object. `api_version` matches on its group only (any version);
    /// `namespace` is empty for cluster-scoped kinds.
    fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str)
    -> Option<Arc<Value>>;

    /// Objects of a kind (group-matched), in one namespace or all, matching `selector`.
    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Vec<Arc<Value>>;

    /// The autoscaler node pools.
    fn node_pools(&self) -> &[NodePool];
}

/// The API group of an apiVersion (`""` for the core group).
pub fn group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// No objects; node pools from the kube-hetzner preset.
#[derive(Debug, Clone)]
pub struct Empty {
    pools: Vec<NodePool>,
}

impl Default for Empty {
    fn default() -> Self {
        Empty {
            pools: pools::preset(),
        }
    }
}

impl Empty {
    /// No objects, with declared node pools instead of the preset.
    pub fn with_pools(pools: Vec<NodePool>) -> Self {
        Empty { pools }
    }
}

impl ClusterView for Empty {
    fn get(&self, _: &str, _: &str, _: &str, _: &str) -> Option<Arc<Value>> {
        None
    }

    fn list(&self, _: &str, _: &str, _: Option<&str>, _: &LabelSelector) -> Vec<Arc<Value>> {
        Vec::new()
    }

    fn node_pools(&self) -> &[NodePool] {
        &self.pools
    }
}
