//! Mutations written in CEL, in MutatingAdmissionPolicy's two forms: an
//! expression that yields a list of `JSONPatch{op, path, value}` values, and
//! an expression that yields an `Object{...}` apply configuration merged into
//! the object. Both become an RFC 6902 JSON Patch, the form every Tollgate
//! mode applies.
//!
//! The struct literals (`JSONPatch{...}`, `Object.spec.template{...}`) are
//! registered per policy as struct types that build plain maps, so no schema
//! is needed. The apply configuration is merged as server-side apply does for
//! the common cases: maps merge key by key, a `null` removes a field, lists
//! that Kubernetes declares as keyed (`containers` by `name`, `tolerations`
//! are atomic, ...) merge by key, and every other list is replaced whole.
//! Known gap: without the OpenAPI schema, keyed lists of custom resources are
//! replaced rather than merged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cel::common::ast::{Expr, IdedExpr};
use cel::common::types::{CelMap, CelMapKey, CelString, STRING_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, StructType, Value as CelValue};
use serde::Deserialize;
use serde_json::{Map, Value};

/// How a mutation's expression result is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PatchType {
    /// A list of `JSONPatch{op, path, from, value}`.
    #[serde(rename = "JSONPatch")]
    JsonPatch,
    /// An `Object{...}` apply configuration.
    ApplyConfiguration,
}

/// A struct literal type that builds a map of its fields.
struct MapStruct {
    ty: Type,
}

impl StructType for MapStruct {
    fn get_type(&self) -> &Type {
        &self.ty
    }

    fn new_value<'b, 'v>(
        &self,
        fields: BTreeMap<String, CowVal<'b, 'v>>,
    ) -> Result<Box<dyn Val + 'v>, ExecutionError> {
        let entries: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = fields
            .into_iter()
            .map(|(k, v)| (CelMapKey::from(k), v.into_owned()))
            .collect();
        Ok(Box::new(CelMap::from(entries)))
    }
}

/// Register the `JSONPatch` and `Object...` struct literal types that
/// `sources` construct, and `jsonpatch.escapeKey` when they call it (unless
/// the environment has it already), so that the expressions can run.
pub(crate) fn register_struct_types(env: &mut Env, sources: &[&str]) {
    if sources.iter().any(|s| s.contains("jsonpatch.escapeKey")) {
        // Fails only when the environment already declares it: then that one serves.
        let _ = env.add_overload(
            "jsonpatch.escapeKey",
            "jsonpatch_escape_key_string",
            vec![STRING_TYPE],
            escape_key,
        );
    }
    let mut names = BTreeSet::new();
    for source in sources {
        // A source that does not parse is reported by the real compilation.
        if let Ok(program) = env.compile(source) {
            struct_names(program.expression(), &mut names);
        }
    }
    for name in names {
        if name == "JSONPatch" || name == "Object" || name.starts_with("Object.") {
            // Registering the same name twice is refused; that cannot happen with a set.
            let _ = env.add_type(MapStruct {
                ty: Type::new_struct(name),
            });
        }
    }
}

/// The type names of every `Name{...}` struct literal in `expr`.
fn struct_names(expr: &IdedExpr, out: &mut BTreeSet<String>) {
    super::ast::visit(expr, &mut |e| {
        if let Expr::Struct(s) = &e.expr {
            out.insert(s.type_name.clone());
        }
    });
}

/// `jsonpatch.escapeKey(s)`: `s` as one JSON Pointer segment (`~` is `~0`, `/` is `~1`).
fn escape_key<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [key]: [CowVal<'b, 'v>; 1] = args
        .try_into()
        .map_err(|a: Vec<_>| ExecutionError::invalid_argument_count(1, a.len()))?;
    let key = key.as_ref().downcast_ref::<CelString>().ok_or_else(|| {
        ExecutionError::function_error("jsonpatch.escapeKey", "expected a string")
    })?;
    let escaped = key.inner().replace('~', "~0").replace('/', "~1");
    Ok(CowVal::Owned(Box::new(CelString::from(escaped))))
}

/// Turn a mutation's result into JSON Patch operations against `object`,
/// and apply them to it.
///
/// # Errors
/// A message when the value has the wrong shape or does not apply.
pub(crate) fn to_patch(
    kind: PatchType,
    value: &CelValue,
    object: &mut Value,
) -> Result<Vec<json_patch::PatchOperation>, String> {
    let json = value
        .json()
        .map_err(|e| format!("the result cannot be converted to JSON: {e}"))?;
    let ops: Vec<json_patch::PatchOperation> = match kind {
        PatchType::JsonPatch => {
            if !json.is_array() {
                return Err(format!(
                    "expected a list of JSONPatch, got {}",
                    type_name(&json)
                ));
            }
            serde_json::from_value(json).map_err(|e| format!("not a valid JSONPatch list: {e}"))?
        }
        PatchType::ApplyConfiguration => {
            let Value::Object(config) = json else {
                return Err(format!(
                    "expected an Object{{...}} apply configuration, got {}",
                    type_name(&json)
                ));
            };
            let mut merged = object.clone();
            apply(&mut merged, &config);
            json_patch::diff(object, &merged).0
        }
    };
    json_patch::patch(object, &ops).map_err(|e| format!("the patch does not apply: {e}"))?;
    Ok(ops)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// The merge keys of the lists Kubernetes' built-in types declare as keyed
/// (`x-kubernetes-list-type: map`), by field name.
fn merge_keys(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "readinessGates" => match field {
            "readinessGates" => &["conditionType"],
            _ => &["name"],
        },
        "volumeMounts" | "volumeDevices" => &["mountPath"],
        "ports" => &["containerPort", "protocol"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "conditions" => &["type"],
        "hostAliases" => &["ip"],
        _ => return None,
    })
}

/// Merge `config` into `target` as server-side apply does for the common cases.
pub(crate) fn apply(target: &mut Value, config: &Map<String, Value>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return;
    };
    for (key, value) in config {
        match value {
            Value::Null => {
                map.remove(key);
            }
            Value::Object(sub) => {
                let entry = map.entry(key.clone()).or_insert(Value::Null);
                apply(entry, sub);
            }
            Value::Array(items) => match (merge_keys(key), map.get_mut(key)) {
                (Some(keys), Some(Value::Array(existing))) => merge_list(existing, items, keys),
                _ => {
                    map.insert(key.clone(), value.clone());
                }
            },
            _ => {
                map.insert(key.clone(), value.clone());
            }
        }
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], keys: &[&str]) {
    let key_of = |v: &Value| -> Vec<Value> {
        keys.iter()
            .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
            .collect()
    };
    for item in items {
        let wanted = key_of(item);
        match existing.iter_mut().find(|e| key_of(e) == wanted) {
            Some(found) => match item {
                Value::Object(sub) => apply(found, sub),
                other => *found = other.clone(),
            },
            None => existing.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn apply_configuration_merges_maps_and_keyed_lists() {
        let mut pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": [{"key": "t"}]}});
        let config = json!({"metadata": {"labels": {"b": "2"}},
            "spec": {"containers": [{"name": "c", "imagePullPolicy": "Always"}, {"name": "d"}],
                     "tolerations": [{"key": "u"}]}});
        apply(&mut pod, config.as_object().unwrap());
        assert_eq!(pod["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "c", "image": "x", "imagePullPolicy": "Always"}, {"name": "d"}])
        );
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([{"key": "u"}]),
            "atomic lists are replaced"
        );
    }

    #[test]
    fn struct_literals_build_maps_and_json_patches() {
        let mut env = crate::cel::environment();
        let src = "[JSONPatch{op: 'add', path: '/metadata/labels', value: {'a/b~': 'b'}}, JSONPatch{op: 'replace', path: '/metadata/labels/' + jsonpatch.escapeKey('a/b~'), value: 'c'}]";
        register_struct_types(&mut env, &[src]);
        let env = std::sync::Arc::new(env);
        let program = env.compile(src).unwrap();
        let value = program.execute(&cel::Context::with_env(env)).unwrap();
        let mut object = json!({"metadata": {}});
        let ops = to_patch(PatchType::JsonPatch, &value, &mut object).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(object, json!({"metadata": {"labels": {"a/b~": "c"}}}));
    }
}
