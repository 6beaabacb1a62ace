//! The opt-in patch of `pool-workloads-evictable` (`annotateLocalVolumes`):
//! list the pod's disk-backed emptyDir volumes in
//! `cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes`.
//!
//! Only emptyDirs are listed: their data lives and dies with the pod anyway.
//! hostPath data outlives the pod on the node, so whether losing access to it
//! is acceptable is the owner's call. Existing entries are kept as written;
//! the missing names are appended, so the patch is idempotent.

use serde_json::{Value, json};
use tollgate_sdk::patch::pointer;
use tollgate_sdk::{Patch, PodPlacement};

use autoscaler_isolation_common::ca;
use autoscaler_isolation_common::raw::{ensure_objects, template_segments};

use crate::drain::listed_local_volumes;

/// Add the volumes in `missing` to the pod's local-volumes annotation.
/// Returns `false` (no patch) when `missing` is empty.
pub fn list_local_volumes(
    patch: &mut Patch,
    object: &Value,
    pod: &PodPlacement,
    missing: &[String],
) -> bool {
    if missing.is_empty() {
        return false;
    }
    let mut names: Vec<&str> = listed_local_volumes(pod);
    names.extend(missing.iter().map(String::as_str));
    let mut segments = template_segments(&pod.template_path);
    segments.extend(["metadata", "annotations"]);
    let annotations = ensure_objects(patch, object, &segments);
    patch.add(
        pointer(&annotations, &[ca::SAFE_TO_EVICT_LOCAL_VOLUMES]),
        json!(names.join(",")),
    );
    true
}
