//! Node pools: discovered from the cluster-autoscaler Deployment (its
//! `--nodes=min:max:type:location:name` flags and the Hetzner
//! `HCLOUD_CLUSTER_CONFIG` nodeConfigs), declared in a pools file (which
//! overrides discovery pool by pool), or assumed from the kube-hetzner preset
//! when nothing is known.
//!
//! A pool's expected taints and labels are what its nodeConfig declares; when
//! it declares none, Tollgate's defaults: the dedicated taint
//! `dedicated=autoscaler:NoSchedule` and the label `node.kubernetes.io/role=autoscaler`.
//! Never `CriticalAddonsOnly` or the control-plane taint: every k3s add-on tolerates those.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::model::{Labels, NodePool, Taint, TaintEffect};
use tollgate_sdk::placement::{array, string_map, taint};

/// `source` of pools assumed from the kube-hetzner preset.
pub const PRESET: &str = "preset";
/// `source` of pools read from the cluster-autoscaler Deployment.
pub const DISCOVERED: &str = "cluster-autoscaler";
/// `source` of pools declared in a pools file.
pub const CONFIG: &str = "config";
/// kube-hetzner's default cluster-autoscaler version.
pub const PRESET_CA_VERSION: Version = Version {
    major: 1,
    minor: 32,
    patch: 0,
};

/// The default dedicated taint for pool nodes.
pub fn default_taint() -> Taint {
    Taint {
        key: "dedicated".into(),
        value: Some("autoscaler".into()),
        effect: TaintEffect::NoSchedule,
    }
}

/// The default label for pool nodes.
pub fn default_labels() -> Labels {
    BTreeMap::from([(
        "node.kubernetes.io/role".to_string(),
        "autoscaler".to_string(),
    )])
}

/// The pool assumed when the cluster is unknown: kube-hetzner's autoscaler
/// pools with Tollgate's default taint and label.
pub fn preset() -> Vec<NodePool> {
    vec![NodePool {
        name: "autoscaler".into(),
        min_size: 0,
        max_size: 0,
        node_selector: default_labels(),
        name_prefix: None,
        taints: vec![default_taint()],
        labels: default_labels(),
        source: PRESET.into(),
    }]
}

/// A cluster-autoscaler version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// Parse `v1.32.0`, `1.33`, or an image tag like `v1.32.0-amd64`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim_start_matches('v');
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        Some(Version {
            major: parts.next()?.ok()?,
            minor: parts.next().unwrap_or(Ok(0)).ok()?,
            patch: parts.next().unwrap_or(Ok(0)).ok()?,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the cluster-autoscaler Deployment tells about the cluster.
#[derive(Debug, Clone, Default)]
pub struct Autoscaler {
    /// `namespace/name` of the Deployment.
    pub deployment: String,
    /// The image.
    pub image: String,
    /// The version from the image tag.
    pub version: Option<Version>,
    /// `--flag=value` arguments (repeated flags keep every value).
    pub flags: BTreeMap<String, Vec<String>>,
    /// The node groups.
    pub pools: Vec<NodePool>,
}

impl Autoscaler {
    /// The last value of a flag.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }
}

/// Find the cluster-autoscaler Deployment among `objects` and read it.
pub fn discover<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Option<Autoscaler> {
    objects.into_iter().find_map(read_deployment)
}

fn read_deployment(object: &Value) -> Option<Autoscaler> {
    if object.get("kind")?.as_str()? != "Deployment" {
        return None;
    }
    let containers = object
        .pointer("/spec/template/spec/containers")?
        .as_array()?;
    let container = containers.iter().find(|c| {
        c.get("image")
            .and_then(Value::as_str)
            .is_some_and(|i| i.contains("cluster-autoscaler"))
    })?;
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let version = image
        .rsplit_once(':')
        .and_then(|(_, tag)| Version::parse(tag));
    let mut flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for arg in array(container.get("command")).chain(array(container.get("args"))) {
        let Some(arg) = arg.as_str() else { continue };
        let Some(flag) = arg.strip_prefix("--") else {
            continue;
        };
        let (name, value) = flag.split_once('=').unwrap_or((flag, "true"));
        flags
            .entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    let node_configs = array(container.get("env"))
        .find(|e| e.get("name").and_then(Value::as_str) == Some("HCLOUD_CLUSTER_CONFIG"))
        .and_then(|e| e.get("value").and_then(Value::as_str))
        .and_then(decode_cluster_config)
        .unwrap_or_default();
    let pools = flags
        .get("nodes")
        .into_iter()
        .flatten()
        .filter_map(|spec| pool_from_nodes_flag(spec, &node_configs))
        .collect();
    let metadata = object.get("metadata");
    let ns = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(Autoscaler {
        deployment: format!("{ns}/{name}"),
        image,
        version,
        flags,
        pools,
    })
}

/// `nodeConfigs` of a base64 (or plain) JSON `HCLOUD_CLUSTER_CONFIG`.
fn decode_cluster_config(value: &str) -> Option<serde_json::Map<String, Value>> {
    let text = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| value.to_string());
    let config: Value = serde_json::from_str(&text).ok()?;
    config.get("nodeConfigs")?.as_object().cloned()
}

/// `min:max:type:location:name`, with the group's nodeConfig if any.
fn pool_from_nodes_flag(
    spec: &str,
    node_configs: &serde_json::Map<String, Value>,
) -> Option<NodePool> {
    let parts: Vec<&str> = spec.split(':').collect();
    let [min, max, _server_type, _location, name] = parts.as_slice() else {
        return None;
    };
    let config = node_configs.get(*name);
    let declared_taints: Vec<Taint> = array(config.and_then(|c| c.get("taints")))
        .filter_map(taint)
        .collect();
    let declared_labels = string_map(config.and_then(|c| c.get("labels")));
    Some(NodePool {
        name: name.to_string(),
        min_size: min.parse().ok()?,
        max_size: max.parse().ok()?,
        node_selector: Labels::new(),
        name_prefix: Some(format!("{name}-")),
        taints: if declared_taints.is_empty() {
            vec![default_taint()]
        } else {
            declared_taints
        },
        labels: if declared_labels.is_empty() {
            default_labels()
        } else {
            declared_labels
        },
        source: DISCOVERED.into(),
    })
}

/// A pools file: `pools: [{name, minSize, maxSize, namePrefix, nodeSelector, taints, labels}]`,
/// with taints written as `key=value:Effect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsFile {
    /// The declared pools.
    pub pools: Vec<DeclaredPool>,
}

/// One declared pool.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclaredPool {
    /// Node group name.
    pub name: String,
    /// Minimum size (default 0).
    #[serde(default)]
    pub min_size: u32,
    /// Maximum size (default 0: unknown).
    #[serde(default)]
    pub max_size: u32,
    /// Node-name prefix (default `<name>-`).
    pub name_prefix: Option<String>,
    /// Labels that identify the nodes.
    #[serde(default)]
    pub node_selector: Labels,
    /// Expected taints, `key=value:Effect` (default the dedicated taint).
    #[serde(default)]
    pub taints: Vec<String>,
    /// Expected labels (default `node.kubernetes.io/role=autoscaler`).
    #[serde(default)]
    pub labels: Labels,
}

impl DeclaredPool {
    /// The pool, or a message naming the bad taint.
    ///
    /// # Errors
    /// A taint that is not `key[=value]:Effect`.
    pub fn to_pool(&self) -> Result<NodePool, String> {
        let taints = self
            .taints
            .iter()
            .map(|t| {
                Taint::parse(t).ok_or_else(|| {
                    format!(
                        "pool {}: invalid taint {t:?} (expected key=value:Effect)",
                        self.name
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NodePool {
            name: self.name.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
            node_selector: self.node_selector.clone(),
            name_prefix: Some(
                self.name_prefix
                    .clone()
                    .unwrap_or_else(|| format!("{}-", self.name)),
            ),
            taints: if taints.is_empty() {
                vec![default_taint()]
            } else {
                taints
            },
            labels: if self.labels.is_empty() {
                default_labels()
            } else {
                self.labels.clone()
            },
            source: CONFIG.into(),
        })
    }
}

/// Discovered pools overridden (by name) and extended by declared ones.
pub fn merge(discovered: Vec<NodePool>, declared: Vec<NodePool>) -> Vec<NodePool> {
    let mut pools = discovered;
    for pool in declared {
        match pools.iter_mut().find(|p| p.name == pool.name) {
            Some(existing) => *existing = pool,
            None => pools.push(pool),
        }
    }
    pools
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_kube_hetzner_autoscaler() {
        let config = base64::engine::general_purpose::STANDARD.encode(
            json!({"nodeConfigs": {"k3s-batman": {"labels": {"pool": "batman"},
                "taints": [{"key": "dedicated", "value": "batman", "effect": "NoExecute"}]}}})
            .to_string(),
        );
        let deploy = json!({"kind": "Deployment", "metadata": {"name": "cluster-autoscaler", "namespace": "kube-system"},
            "spec": {"template": {"spec": {"containers": [{
                "image": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.0",
                "command": ["./cluster-autoscaler", "--cloud-provider=hetzner",
                            "--nodes=0:3:cx32:fsn1:k3s-batman", "--nodes=1:2:cx22:nbg1:k3s-robin"],
                "env": [{"name": "HCLOUD_CLUSTER_CONFIG", "value": config}]}]}}}});
        let ca = discover([&deploy]).unwrap();
        assert_eq!(
            ca.version,
            Some(Version {
                major: 1,
                minor: 32,
                patch: 0
            })
        );
        assert_eq!(ca.flag("cloud-provider"), Some("hetzner"));
        assert_eq!(ca.pools.len(), 2);
        assert_eq!(
            ca.pools[0].taints[0].to_kubectl(),
            "dedicated=batman:NoExecute"
        );
        assert_eq!(ca.pools[0].name_prefix.as_deref(), Some("k3s-batman-"));
        assert_eq!(ca.pools[1].min_size, 1);
        assert_eq!(
            ca.pools[1].taints,
            vec![default_taint()],
            "undeclared taints default"
        );
    }
}
