//! CEL policies: YAML files of CEL expressions (docs/cel-policies.md),
//! compiled once at load with the `cel` crate and evaluated against the same
//! Review and with the same failure handling as WASM policies.
//!
//! The request's JSON is converted to CEL values once ([`Inputs`], cached on
//! the Review) and shared by every CEL policy; expressions borrow it through a
//! variable resolver, so nothing is copied per policy. Each expression's cost
//! is bounded before it runs ([`cost`]).

pub(crate) mod ast;
pub mod cost;
mod escaped;
pub mod expression;
pub mod library;
mod mutation;
mod optimize;
mod policy;
mod shared;
mod slots;
pub mod value;

use cel::common::value::Val;
use tollgate_sdk::model::Decision;

pub use mutation::PatchType;
pub use policy::{Bindings, CelPolicy, Error, environment};

use crate::review::Review;
use value::{CelVal, descend, map_of, to_cel};

/// What a CEL evaluation returned.
#[derive(Debug)]
pub struct Outcome {
    /// The decision.
    pub decision: Decision,
    /// Whether it read node pools that came from the preset.
    pub used_preset_pools: bool,
    /// Whether a match condition was false (the policy did not apply).
    pub skipped: bool,
    /// Audit annotations (key, value) the policy produced.
    pub annotations: Vec<(String, String)>,
}

/// A review's values in CEL form, shared by every CEL policy.
pub struct Inputs {
    object: CelVal,
    old_object: CelVal,
    request: CelVal,
    /// The pod, or the pod template of a pod controller, or null.
    pod: CelVal,
    /// The longest list or map in the inputs.
    pub longest: u64,
    /// Policy variables and match conditions computed from these inputs
    /// alone, shared by the policies that declare the same ones.
    pub(crate) shared_variables: shared::Values,
    /// The cluster's values (`pools`, `namespaceObject`), converted on first
    /// use and shared by the CEL policies evaluating this review against the
    /// same cluster view (identified by address).
    cluster: std::sync::OnceLock<(usize, std::sync::Arc<ClusterValues>)>,
}

/// `pools` and `namespaceObject` in CEL form.
pub(crate) struct ClusterValues {
    pub(crate) pools: CelVal,
    pub(crate) namespace_object: CelVal,
    pub(crate) preset_pools: bool,
    pub(crate) longest: u64,
    /// The longest list or map in `pools`.
    pub(crate) pools_longest: u64,
    /// The longest list or map in `namespaceObject`.
    pub(crate) namespace_longest: u64,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("longest", &self.longest)
            .finish()
    }
}

impl Inputs {
    /// Convert a review's object, old object and request.
    pub fn new(review: &Review) -> Self {
        let mut longest = 0;
        let null = || -> CelVal { Box::new(cel::common::types::CelNull) };
        // A DELETE has no object; the judged (deleted) object is oldObject, as in Kubernetes.
        let (object, old_object) = if review.is_delete() {
            (null(), to_cel(review.object(), &mut longest))
        } else {
            let old = review
                .old_object()
                .map_or_else(null, |old| to_cel(old, &mut longest));
            (to_cel(review.object(), &mut longest), old)
        };
        let request = match review.request() {
            Some(r) => to_cel(r, &mut longest),
            None => map_of(vec![(
                "operation".into(),
                Box::new(cel::common::types::CelString::from(String::new())),
            )]),
        };
        // The pod (template) under the object, found once: a shared copy.
        let pod = review
            .records()
            .pod
            .as_ref()
            .filter(|_| !review.is_delete())
            .and_then(|p| {
                let segments = p.template_path.split('/').filter(|s| !s.is_empty());
                descend(object.as_ref(), segments)
            })
            .and_then(value::to_static)
            .unwrap_or_else(null);
        Inputs {
            object,
            old_object,
            request,
            pod,
            longest,
            shared_variables: shared::Values::default(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// The cluster's values for this review, converted once per cluster view.
    pub(crate) fn cluster(
        &self,
        namespace: &str,
        cluster: &dyn crate::cluster::ClusterView,
    ) -> std::sync::Arc<ClusterValues> {
        let id = cluster as *const dyn crate::cluster::ClusterView as *const () as usize;
        let (cached_id, values) = self.cluster.get_or_init(|| {
            (
                id,
                std::sync::Arc::new(self.convert_cluster(namespace, cluster)),
            )
        });
        if *cached_id == id {
            values.clone()
        } else {
            std::sync::Arc::new(self.convert_cluster(namespace, cluster))
        }
    }

    fn convert_cluster(
        &self,
        namespace: &str,
        cluster: &dyn crate::cluster::ClusterView,
    ) -> ClusterValues {
        let (mut pools_longest, mut namespace_longest) = (0, 0);
        let pools = cluster.node_pools();
        let pools_json = serde_json::to_value(pools).unwrap_or(serde_json::Value::Null);
        let namespace_object = cluster
            .get("v1", "Namespace", "", namespace)
            .map(|ns| to_cel(&ns, &mut namespace_longest))
            .unwrap_or_else(|| Box::new(cel::common::types::CelNull));
        let pools_value = to_cel(&pools_json, &mut pools_longest);
        let longest = self.longest.max(pools_longest).max(namespace_longest);
        ClusterValues {
            pools: pools_value,
            pools_longest,
            namespace_longest,
            namespace_object,
            preset_pools: pools
                .iter()
                .any(|p| p.source == crate::cluster::pools::PRESET),
            longest,
        }
    }

    /// The pod (template) value, or null.
    fn pod(&self) -> &(dyn Val + 'static) {
        self.pod.as_ref()
    }
}
