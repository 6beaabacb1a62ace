//! Parsing only what [`review`](super::review) reads from an object's JSON
//! text: a *sparse tree*.
//!
//! The host receives objects as text (an AdmissionReview body). Building the
//! whole `serde_json::Value` of a Pod allocates for every container image,
//! env var, probe and status field, none of which the placement records use.
//! [`sparse_tree`] parses the text once, keeps the fields listed in
//! [`OBJECT`] whole, and steps over the rest without allocating. Records built
//! from the sparse tree equal those built from the full tree, because every
//! path `review` reads is kept (the tests check this over many objects).
//!
//! Skipped values are still parsed, not merely scanned: a string with a lone
//! surrogate, a number out of range or nesting past serde_json's recursion
//! limit fail here exactly as they would when parsing the full tree, so a
//! text this accepts always parses into a full tree later.
//!
//! A value whose JSON type is not the one the schema expects (a `spec` that is
//! a list, say) is kept whole, so lenient reading sees what it would have seen.
//! The one change to a kept value: a volume source other than `emptyDir`
//! reads as null, since the records only ask whether it is there.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Which parts of a value to keep.
#[derive(Clone, Copy)]
enum Keep {
    /// The whole value.
    All,
    /// An object's listed fields, each with what to keep of it; other fields
    /// are skipped.
    Fields(&'static [(&'static str, Keep)]),
    /// Every item of a list, keeping this of each.
    Items(&'static Keep),
    /// Only that the field is there: the value is checked and read as null
    /// (the records ask whether a volume source is set, not what it holds).
    Present,
}

/// A container: the host ports and requests.
const CONTAINER: Keep = Keep::Fields(&[
    ("ports", Keep::All),
    ("resources", Keep::Fields(&[("requests", Keep::All)])),
]);

/// A volume: its name and which source it has (and an emptyDir's medium).
const VOLUME: Keep = Keep::Fields(&[
    ("name", Keep::All),
    ("emptyDir", Keep::All),
    ("hostPath", Keep::Present),
    ("persistentVolumeClaim", Keep::Present),
    ("configMap", Keep::Present),
    ("secret", Keep::Present),
    ("projected", Keep::Present),
    ("downwardAPI", Keep::Present),
    ("ephemeral", Keep::Present),
]);

/// The fields of a pod spec that the records read.
const POD_SPEC_FIELDS: [(&str, Keep); 10] = [
    ("tolerations", Keep::All),
    ("nodeSelector", Keep::All),
    ("affinity", Keep::Fields(&[("nodeAffinity", Keep::All)])),
    ("priorityClassName", Keep::All),
    ("priority", Keep::All),
    ("volumes", Keep::Items(&VOLUME)),
    ("containers", Keep::Items(&CONTAINER)),
    ("initContainers", Keep::Items(&CONTAINER)),
    ("overhead", Keep::All),
    ("nodeName", Keep::All),
];

/// A pod template (`spec.template` of a controller).
const TEMPLATE: Keep = Keep::Fields(&[
    (
        "metadata",
        Keep::Fields(&[("labels", Keep::All), ("annotations", Keep::All)]),
    ),
    ("spec", Keep::Fields(&POD_SPEC_FIELDS)),
]);

/// `spec` of any kind: a Pod's spec, a controller's replicas and template, a
/// CronJob's job template, a Node's taints.
const SPEC_FIELDS: [(&str, Keep); 15] = {
    let pod = POD_SPEC_FIELDS;
    [
        pod[0],
        pod[1],
        pod[2],
        pod[3],
        pod[4],
        pod[5],
        pod[6],
        pod[7],
        pod[8],
        pod[9],
        ("replicas", Keep::All),
        ("template", TEMPLATE),
        (
            "jobTemplate",
            Keep::Fields(&[("spec", Keep::Fields(&[("template", TEMPLATE)]))]),
        ),
        ("taints", Keep::All),
        ("unschedulable", Keep::All),
    ]
};

/// What [`review`](super::review) reads of an object, of every kind.
const OBJECT: Keep = Keep::Fields(&[
    ("apiVersion", Keep::All),
    ("kind", Keep::All),
    (
        "metadata",
        Keep::Fields(&[
            ("name", Keep::All),
            ("generateName", Keep::All),
            ("namespace", Keep::All),
            ("labels", Keep::All),
            ("annotations", Keep::All),
            ("ownerReferences", Keep::All),
        ]),
    ),
    ("spec", Keep::Fields(&SPEC_FIELDS)),
]);

/// Parse `text` (one JSON value) into the sparse tree that
/// [`review`](super::review) needs: the same records, a fraction of the
/// allocations.
///
/// # Errors
/// Exactly when parsing `text` into a full `serde_json::Value` fails.
pub fn sparse_tree(text: &str) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let tree = Sparse(OBJECT).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(tree)
}

/// Deserialize a value keeping what a [`Keep`] says.
struct Sparse(Keep);

impl<'de> DeserializeSeed<'de> for Sparse {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self.0 {
            Keep::All => serde::Deserialize::deserialize(deserializer),
            Keep::Present => {
                <Discarded as serde::Deserialize>::deserialize(deserializer)?;
                Ok(Value::Null)
            }
            keep => deserializer.deserialize_any(SparseVisitor(keep)),
        }
    }
}

struct SparseVisitor(Keep);

impl<'de> Visitor<'de> for SparseVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // A list where an object was expected is kept whole.
        let item = match self.0 {
            Keep::Items(item) => *item,
            _ => Keep::All,
        };
        let mut items = Vec::new();
        while let Some(value) = seq.next_element_seed(Sparse(item))? {
            items.push(value);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            // An object where a list was expected is kept whole.
            let keep = match self.0 {
                Keep::Fields(fields) => fields
                    .iter()
                    .find(|(name, _)| *name == key.0)
                    .map(|(_, keep)| *keep),
                _ => Some(Keep::All),
            };
            match keep {
                Some(keep) => {
                    let value = map.next_value_seed(Sparse(keep))?;
                    object.insert(key.0.into_owned(), value);
                }
                None => {
                    map.next_value::<Discarded>()?;
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// An object key, borrowed from the text when it has no escapes.
pub(super) struct Key<'de>(pub(super) Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// A JSON value that is parsed, and so checked as parsing it into a
/// `serde_json::Value` would check it, but not kept. Unlike
/// `serde::de::IgnoredAny`, which serde_json answers by scanning, this goes
/// through the parser proper: strings are unescaped and validated, numbers
/// read, and nesting counted against the recursion limit.
#[derive(Debug, Clone, Copy)]
pub struct Discarded;

impl<'de> serde::Deserialize<'de> for Discarded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Discarded;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Discarded, E> {
        Ok(Discarded)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Discarded, E> {
        Ok(Discarded)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Discarded, E> {
        Ok(Discarded)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Discarded, E> {
        Ok(Discarded)
    }

    fn visit_str<E>(self, _: &str) -> Result<Discarded, E> {
        Ok(Discarded)
    }

    fn visit_unit<E>(self) -> Result<Discarded, E> {
        Ok(Discarded)
    }

    fn visit_none<E>(self) -> Result<Discarded, E> {
        Ok(Discarded)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Discarded, A::Error> {
        while seq.next_element::<Discarded>()?.is_some() {}
        Ok(Discarded)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Discarded, A::Error> {
        while map.next_key::<Discarded>()?.is_some() {
            map.next_value::<Discarded>()?;
        }
        Ok(Discarded)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use serde_json::{Value, json};

    use super::sparse_tree;
    use crate::model::Operation;
    use crate::placement::review;

    /// The records from the sparse tree equal those from the full tree.
    fn same_records(object: &Value) {
        let text = object.to_string();
        let sparse = sparse_tree(&text).expect("valid JSON");
        assert_eq!(
            review(&sparse, Operation::Create),
            review(object, Operation::Create),
            "records differ for {text}"
        );
    }

    /// A pod spec with every field the records read, and some they do not.
    pub(in crate::placement) fn pod_spec() -> Value {
        json!({
            "priorityClassName": "system-cluster-critical", "priority": 2000000000,
            "nodeName": "pool-a-1", "serviceAccountName": "coredns",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                            {"key": "pool", "value": "a", "effect": "NoSchedule", "tolerationSeconds": 30}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 10, "preference": {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}}]},
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}},
            "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}, {"name": "h", "hostPath": {"path": "/x"}},
                        {"name": "d", "emptyDir": {}}, {"name": "c", "persistentVolumeClaim": {"claimName": "c"}},
                        {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                        {"name": "s", "secret": {"secretName": "s"}}, {"name": "m", "configMap": {"name": "m"}},
                        {"name": "n", "hostPath": null}, {"name": "e", "ephemeral": {}}, {"name": "a", "downwardAPI": {}},
                        {"name": "o", "nfs": {"server": "x"}}, {"nameless": true, "secret": {}}, "volume", 7],
            "containers": [{"name": "c", "image": "registry.k8s.io/coredns:v1.11", "args": ["-conf"],
                            "env": [{"name": "A", "value": "\u{e9}\\\"q"}],
                            "ports": [{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}],
                            "resources": {"requests": {"cpu": "100m", "memory": 73400320}, "limits": {"memory": "170Mi"}},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
            "overhead": {"cpu": "10m"}
        })
    }

    #[test]
    fn every_kind_reads_the_same_records_from_the_sparse_tree() {
        let metadata = json!({
            "name": "coredns-1", "namespace": "kube-system", "uid": "u", "generateName": "coredns-",
            "labels": {"k8s-app": "kube-dns", "app.kubernetes.io/name": "coredns"},
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "coredns-5", "controller": true}],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
        });
        let template = json!({"metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}}, "spec": pod_spec()});
        same_records(
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": pod_spec(), "status": {"phase": "Running", "podIP": "10.0.0.1"}}),
        );
        for kind in [
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "ReplicationController",
        ] {
            same_records(
                &json!({"apiVersion": "apps/v1", "kind": kind, "metadata": metadata,
                "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}}, "template": template}}),
            );
        }
        same_records(
            &json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": metadata,
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        );
        same_records(
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": metadata,
            "spec": {"unschedulable": true, "podCIDR": "10.42.0.0/24",
                     "taints": [{"key": "pool", "value": "a", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "2"}}}),
        );
        same_records(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"a": "b"}}),
        );
    }

    #[test]
    fn values_of_unexpected_types_read_as_in_the_full_tree() {
        for spec in [
            json!([1, 2]),
            json!("spec"),
            json!({"containers": {"c": {"ports": [{"hostPort": 80}]}}, "affinity": [1]}),
            json!({"containers": [1, "x", [{"hostPort": 80}]], "tolerations": {"key": "a"}}),
            json!({"volumes": {"name": "v", "hostPath": {}}, "nodeSelector": [1]}),
            json!({"volumes": [{"name": 1, "emptyDir": "Memory"}, {"name": "x", "emptyDir": {"medium": 1}}]}),
            json!({"template": [], "jobTemplate": {"spec": ["template"]}, "replicas": "3"}),
        ] {
            for kind in ["Pod", "Deployment", "CronJob", "Node"] {
                same_records(&json!({"apiVersion": "v1", "kind": kind,
                    "metadata": {"name": "x", "labels": ["a"]}, "spec": spec}));
            }
        }
        for object in [
            json!([1]),
            json!("Pod"),
            json!(null),
            json!({"kind": "Pod"}),
        ] {
            same_records(&object);
        }
    }

    #[test]
    fn what_no_record_reads_is_left_out() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u"},
            "spec": pod_spec(), "status": {"phase": "Running"}});
        let sparse = sparse_tree(&pod.to_string()).unwrap();
        assert_eq!(sparse.get("status"), None);
        assert_eq!(sparse.pointer("/metadata/uid"), None);
        assert_eq!(sparse.pointer("/spec/serviceAccountName"), None);
        assert_eq!(sparse.pointer("/spec/containers/0/image"), None);
        assert_eq!(sparse.pointer("/spec/containers/0/resources/limits"), None);
        assert_eq!(
            sparse.pointer("/spec/containers/0/resources/requests"),
            pod.pointer("/spec/containers/0/resources/requests")
        );
        assert_eq!(
            sparse.pointer("/spec/tolerations"),
            pod.pointer("/spec/tolerations")
        );
    }

    #[test]
    fn text_the_full_parse_refuses_is_refused_even_where_it_is_skipped() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            r#"{"kind": "Pod", "status": {"message": "\ud800"}}"#.to_string(),
            r#"{"kind": "Pod", "status": {"n": 1e999}}"#.to_string(),
            r#"{"kind": "Pod", "status": {"x": tru}}"#.to_string(),
            r#"{"kind": "Pod"} trailing"#.to_string(),
            format!(r#"{{"kind": "Pod", "status": {deep}}}"#),
        ] {
            assert!(
                serde_json::from_str::<Value>(&bad).is_err(),
                "the full parse accepts {bad}"
            );
            assert!(sparse_tree(&bad).is_err(), "the sparse parse accepts {bad}");
        }
    }
}
