//! Tollgate as a KRM function (the kpt / kustomize function specification,
//! `config.kubernetes.io/v1` ResourceList): the items are mutated by the
//! policies' patches and judged, and the findings become `results`.
//!
//! The function config selects policies, settings and pools, either typed
//!
//! ```yaml
//! apiVersion: tollgate.dev/v1alpha1
//! kind: FunctionConfig
//! metadata: {name: tollgate}
//! spec:
//!   policies: [autoscaler-isolation]        # default
//!   settings: {policies: {...}}             # as a --settings file
//!   pools: [{name: k3s-batman, taints: [...], labels: {...}}]   # as a --pools file's list
//!   mutate: true                            # default
//! ```
//!
//! or as the ConfigMap kpt builds from `-- key=value` arguments (`policies`
//! comma-separated, `settings` and `pools` as YAML text, `mutate`).
//!
//! The items are also the cluster view: lookups (PDBs, namespaces) see the
//! other items, and pools come from a cluster-autoscaler Deployment among them
//! with the configured pools over them, or from the kube-hetzner preset.
//! Pods, ReplicaSets and Jobs that a controller among the items owns are left
//! to their controller, as in audit.
//!
//! Results: `error` for a violation of an enforcing policy that is still there
//! after mutation (or a failing policy), `warning` for warn/audit-mode
//! violations and policy warnings, `info` for each mutation applied.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::cluster::pools::{self, PoolsFile};
use crate::cluster::{ClusterView, Snapshot};
use crate::decision::{Mode, Verdict};
use crate::evaluator::{Evaluator, PRESET_POOLS_WARNING};
use crate::policy::{PolicySet, SetConfig};
use crate::review::Review;
use crate::wasm::{Runtime, RuntimeConfig};

/// The ResourceList apiVersion.
pub const API_VERSION: &str = "config.kubernetes.io/v1";

/// Why the function cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not a ResourceList.
    #[error("input is not a {API_VERSION} ResourceList: {0}")]
    NotResourceList(String),
    /// The function config is invalid, or its policies do not load.
    #[error("functionConfig: {0}")]
    Config(String),
}

/// What the function config selects.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionConfig {
    /// Policies (paths or bundled packs).
    #[serde(default = "default_policies")]
    pub policies: Vec<String>,
    /// A settings document, as a `--settings` file holds.
    #[serde(default)]
    pub settings: Option<Value>,
    /// Declared pools, as a `--pools` file's `pools` list.
    #[serde(default)]
    pub pools: Option<Value>,
    /// Whether to apply mutations (default true).
    #[serde(default = "default_mutate")]
    pub mutate: bool,
}

fn default_policies() -> Vec<String> {
    vec!["autoscaler-isolation".into()]
}

fn default_mutate() -> bool {
    true
}

impl Default for FunctionConfig {
    fn default() -> Self {
        FunctionConfig {
            policies: default_policies(),
            settings: None,
            pools: None,
            mutate: true,
        }
    }
}

impl FunctionConfig {
    /// Read a typed `FunctionConfig` (its `spec`) or a ConfigMap (its `data`).
    ///
    /// # Errors
    /// Unknown fields, or YAML in a ConfigMap value that does not parse.
    pub fn from_value(config: Option<&Value>) -> Result<Self, Error> {
        let Some(config) = config.filter(|c| !c.is_null()) else {
            return Ok(FunctionConfig::default());
        };
        let kind = config
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind == "ConfigMap" {
            return Self::from_config_map(config.get("data"));
        }
        let spec = config.get("spec").cloned().unwrap_or_else(|| json!({}));
        serde_json::from_value(spec).map_err(|e| Error::Config(format!("{kind} spec: {e}")))
    }

    fn from_config_map(data: Option<&Value>) -> Result<Self, Error> {
        let mut out = FunctionConfig::default();
        let Some(data) = data.and_then(Value::as_object) else {
            return Ok(out);
        };
        for (key, value) in data {
            let text = value.as_str().unwrap_or_default();
            let yaml = |what: &str| {
                crate::policy::parse_one(Path::new(what), text)
                    .map_err(|e| Error::Config(format!("ConfigMap data.{key}: {e}")))
            };
            match key.as_str() {
                "policies" => {
                    out.policies = text
                        .split([',', ' ', '\n'])
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                }
                "settings" => out.settings = Some(yaml("settings")?),
                "pools" => out.pools = Some(yaml("pools")?),
                "mutate" => {
                    out.mutate = text.parse().map_err(|_| {
                        Error::Config(format!(
                            "ConfigMap data.mutate: expected true or false, got {text:?}"
                        ))
                    })?;
                }
                other => {
                    return Err(Error::Config(format!(
                        "ConfigMap data.{other}: unknown key (expected policies, settings, pools, mutate)"
                    )));
                }
            }
        }
        Ok(out)
    }

    fn evaluator(&self) -> Result<Evaluator, Error> {
        let origin = Path::new("functionConfig");
        let config = match &self.settings {
            Some(doc) => SetConfig::from_value(origin, doc.clone())
                .map_err(|e| Error::Config(e.to_string()))?,
            None => SetConfig::default(),
        };
        let runtime =
            Runtime::new(&RuntimeConfig::default()).map_err(|e| Error::Config(e.to_string()))?;
        let set = PolicySet::load(&runtime, &self.policies, &config)
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Evaluator::new(set))
    }

    fn declared_pools(&self) -> Result<Option<Vec<tollgate_sdk::model::NodePool>>, Error> {
        let Some(pools) = &self.pools else {
            return Ok(None);
        };
        let list = pools.get("pools").cloned().unwrap_or_else(|| pools.clone());
        let file: PoolsFile = serde_json::from_value(json!({ "pools": list }))
            .map_err(|e| Error::Config(format!("pools: {e}")))?;
        file.pools
            .iter()
            .map(|p| p.to_pool())
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
            .map_err(|e| Error::Config(format!("pools: {e}")))
    }
}

/// The function's output.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The ResourceList to write.
    pub list: Value,
    /// Whether a result has severity `error` (the function fails: exit 1).
    pub failed: bool,
}

/// Run the function on a parsed ResourceList.
///
/// # Errors
/// Only when the input is not a ResourceList; a bad function config comes
/// back as an `error` result with the items unchanged.
pub fn run(mut list: Value) -> Result<Outcome, Error> {
    let kind = list.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "ResourceList" {
        return Err(Error::NotResourceList(format!("kind is {kind:?}")));
    }
    let items = match list.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(Error::NotResourceList("items is not a list".into())),
    };
    let config = FunctionConfig::from_value(list.get("functionConfig"));
    let (items, results) =
        match config.and_then(|c| Ok((c.evaluator()?, c.declared_pools()?, c.mutate))) {
            Ok((evaluator, declared, mutate)) => process(items, &evaluator, declared, mutate),
            Err(e) => (items, vec![result("error", &e.to_string(), None, None)]),
        };
    let failed = results.iter().any(|r| r["severity"] == "error");
    let map = list
        .as_object_mut()
        .ok_or_else(|| Error::NotResourceList("not an object".into()))?;
    map.insert("apiVersion".into(), json!(API_VERSION));
    map.insert("items".into(), Value::Array(items));
    let mut all = map
        .remove("results")
        .and_then(|r| r.as_array().cloned())
        .unwrap_or_default();
    all.extend(results);
    if !all.is_empty() {
        map.insert("results".into(), Value::Array(all));
    }
    Ok(Outcome { list, failed })
}

fn process(
    mut items: Vec<Value>,
    evaluator: &Evaluator,
    declared: Option<Vec<tollgate_sdk::model::NodePool>>,
    mutate: bool,
) -> (Vec<Value>, Vec<Value>) {
    let mut snapshot = Snapshot::from_objects(items.clone());
    let mut results = Vec::new();
    if let Some(declared) = declared {
        snapshot.declare_pools(declared);
    }
    if !snapshot.has_pools() {
        snapshot.declare_pools(pools::preset());
        results.push(result("info", PRESET_POOLS_WARNING, None, None));
    }
    let snapshot = Arc::new(snapshot);
    let cluster: Arc<dyn ClusterView> = snapshot.clone();
    for item in &mut items {
        if !crate::audit::judged(item, &snapshot, evaluator) {
            continue;
        }
        let review = match Review::from_object(item.clone()) {
            Ok(review) => review,
            Err(e) => {
                results.push(result("error", &e.to_string(), Some(item), None));
                continue;
            }
        };
        let verdict = if mutate {
            evaluator.evaluate_mutating(&review, &cluster)
        } else {
            evaluator.evaluate(&review, &cluster)
        };
        results.extend(item_results(item, &verdict, mutate));
        if let Some(mutated) = verdict.mutated {
            *item = mutated;
        }
    }
    (items, results)
}

fn item_results(item: &Value, verdict: &Verdict, mutate: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for r in &verdict.results {
        if mutate && r.mode != Mode::Audit && r.patch.is_some() {
            out.push(result(
                "info",
                &format!("{}: mutated (its patch is applied)", r.policy),
                Some(item),
                None,
            ));
        }
        let severity = if r.mode == Mode::Enforce {
            "error"
        } else {
            "warning"
        };
        for v in &r.violations {
            let message = format!("{}: {} ({})", r.policy, v.message, v.rule);
            out.push(result(severity, &message, Some(item), v.path.as_deref()));
        }
        if let Some(fault) = &r.error {
            let severity = if r.allowed { "warning" } else { "error" };
            out.push(result(
                severity,
                &format!("{}: {}", r.policy, fault.message),
                Some(item),
                None,
            ));
        }
        for w in r
            .warnings
            .iter()
            .filter(|w| w.as_str() != PRESET_POOLS_WARNING && r.error.is_none())
        {
            if r.mode == Mode::Warn && r.violations.iter().any(|v| w.contains(&v.message)) {
                continue;
            }
            out.push(result(
                "warning",
                &format!("{}: {w}", r.policy),
                Some(item),
                None,
            ));
        }
    }
    out
}

/// One KRM result.
fn result(severity: &str, message: &str, item: Option<&Value>, pointer: Option<&str>) -> Value {
    let mut r = Map::new();
    r.insert("message".into(), json!(message));
    r.insert("severity".into(), json!(severity));
    if let Some(item) = item {
        let s = |p: &str| item.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let mut reference = json!({"apiVersion": s("/apiVersion"), "kind": s("/kind"), "name": s("/metadata/name")});
        if !s("/metadata/namespace").is_empty() {
            reference["namespace"] = json!(s("/metadata/namespace"));
        }
        r.insert("resourceRef".into(), reference);
        let annotation = |keys: &[&str]| {
            keys.iter().find_map(|k| {
                item.pointer("/metadata/annotations")
                    .and_then(|a| a.get(*k))
                    .and_then(Value::as_str)
            })
        };
        if let Some(path) = annotation(&[
            "internal.config.kubernetes.io/path",
            "config.kubernetes.io/path",
        ]) {
            let mut file = json!({ "path": path });
            if let Some(index) = annotation(&[
                "internal.config.kubernetes.io/index",
                "config.kubernetes.io/index",
            ])
            .and_then(|i| i.parse::<u64>().ok())
            {
                file["index"] = json!(index);
            }
            r.insert("file".into(), file);
        }
    }
    if let Some(pointer) = pointer.filter(|p| !p.is_empty()) {
        r.insert("field".into(), json!({ "path": field_path(pointer) }));
    }
    Value::Object(r)
}

/// A JSON pointer as a KRM field path: `spec.template.spec.tolerations[0]`,
/// keys with dots or slashes bracketed (`metadata.labels.[node.kubernetes.io/role]`).
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for raw in pointer.trim_start_matches('/').split('/') {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        if segment.contains(['.', '/']) {
            out.push_str(&format!("[{segment}]"));
        } else {
            out.push_str(&segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_read_like_kpt_paths() {
        assert_eq!(
            field_path("/spec/template/spec/tolerations/0"),
            "spec.template.spec.tolerations[0]"
        );
        assert_eq!(
            field_path("/metadata/labels/node.kubernetes.io~1role"),
            "metadata.labels.[node.kubernetes.io/role]"
        );
    }

    #[test]
    fn config_map_function_configs_are_read() {
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "f"},
            "data": {"policies": "autoscaler-isolation", "mutate": "false", "pools": "- {name: p}\n"}});
        let config = FunctionConfig::from_value(Some(&config)).expect("valid");
        assert!(!config.mutate);
        assert_eq!(config.declared_pools().unwrap().unwrap()[0].name, "p");
        let bad = json!({"kind": "ConfigMap", "data": {"mutate": "yes"}});
        assert!(
            FunctionConfig::from_value(Some(&bad))
                .unwrap_err()
                .to_string()
                .contains("data.mutate")
        );
        let unknown = json!({"kind": "FunctionConfig", "spec": {"polices": []}});
        assert!(
            FunctionConfig::from_value(Some(&unknown))
                .unwrap_err()
                .to_string()
                .contains("polices")
        );
    }

    #[test]
    fn not_a_resource_list_is_an_error() {
        assert!(run(json!({"kind": "List", "items": []})).is_err());
        let empty = run(json!({"apiVersion": API_VERSION, "kind": "ResourceList", "items": []}))
            .expect("runs");
        assert!(!empty.failed);
    }
}
