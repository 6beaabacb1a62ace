//! A Pod's records read straight from its JSON text, without a tree.
//!
//! Admission reviews are mostly Pods, and for a Pod the webhook needs only
//! the records. [`sparse_tree`](super::sparse_tree) builds a
//! `serde_json::Value` of the fields they read, which
//! [`review`](super::review) then walks and copies; [`pod_review`] reads the
//! same fields into typed structs on the way through the text and builds the
//! records from those, with no map of keys in between.
//!
//! It reads every field as `review` reads it from a tree, so the records are
//! equal (the tests compare them over objects with every field replaced by
//! values of every JSON type):
//! - a value of another JSON type than the one expected reads as absent, as
//!   `Value::get` and `Value::as_str` read it (a toleration that is not an
//!   object is a toleration with no fields, as in the tree);
//! - of a key that occurs twice, the last occurrence counts, as in a tree's
//!   map.
//!
//! Skipped values are parsed as the sparse tree parses them
//! ([`Discarded`]), so text this accepts parses into a full tree too.
//!
//! Anything but a Pod with a string `apiVersion` is left to the sparse tree
//! (where the pod template lives depends on the kind). Objects are written
//! with their kind first, so other kinds are told apart at once: reading
//! stops at a `kind` other than `Pod`, even one a later `kind` replaces.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::sparse::{Discarded, Key};
use crate::model::{
    HostPort, Labels, NodeSelectorTerm, Operation, Owner, PodPlacement, PreferredTerm, Review,
    SelectorOperator, SelectorRequirement, TaintEffect, Toleration, TolerationOperator, Volume,
    VolumeSource,
};
use crate::quantity;

/// The review of `text` for `operation` when `text` is one JSON object of
/// kind `Pod` with a string `apiVersion`; `None` for anything else,
/// including text that does not parse (the sparse tree then reports it).
///
/// The records equal those [`review`](super::review) builds from the parsed
/// tree, and text this returns records for parses into a tree.
pub fn pod_review(text: &str, operation: Operation) -> Option<Review> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let object = Seed::<Object<'_>>::new()
        .deserialize(&mut deserializer)
        .ok()?;
    deserializer.end().ok()?;
    object.into_review(operation)
}

/// How a value is read from each JSON type. Every type reads as `Default`
/// unless the implementation says otherwise; a list or object read as
/// `Default` is still parsed to its end.
trait Read<'de>: Default {
    fn from_bool(_: bool) -> Self {
        Self::default()
    }

    fn from_i64(_: i64) -> Self {
        Self::default()
    }

    fn from_u64(_: u64) -> Self {
        Self::default()
    }

    fn from_f64(_: f64) -> Self {
        Self::default()
    }

    fn from_str(_: Cow<'de, str>) -> Self {
        Self::default()
    }

    fn from_null() -> Self {
        Self::default()
    }

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        skip_seq(seq).map(|()| Self::default())
    }

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        skip_map(map).map(|()| Self::default())
    }
}

/// Parse a list to its end, keeping nothing.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Discarded>()?.is_some() {}
    Ok(())
}

/// Parse an object to its end, keeping nothing.
fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_key::<Discarded>()?.is_some() {
        map.next_value::<Discarded>()?;
    }
    Ok(())
}

/// Reads a `T` from whatever JSON value comes next.
struct Seed<T>(PhantomData<T>);

impl<T> Seed<T> {
    fn new() -> Self {
        Seed(PhantomData)
    }
}

impl<'de, T: Read<'de>> DeserializeSeed<'de> for Seed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Read<'de>> Visitor<'de> for Seed<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<T, E> {
        Ok(T::from_bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<T, E> {
        Ok(T::from_i64(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<T, E> {
        Ok(T::from_u64(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<T, E> {
        Ok(T::from_f64(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<T, E> {
        Ok(T::from_str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<T, E> {
        Ok(T::from_str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<T, E> {
        Ok(T::from_str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::from_null())
    }

    fn visit_none<E>(self) -> Result<T, E> {
        Ok(T::from_null())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// A string, as `Value::as_str` reads it.
#[derive(Default)]
struct Text<'de>(Option<Cow<'de, str>>);

impl<'de> Read<'de> for Text<'de> {
    fn from_str(v: Cow<'de, str>) -> Self {
        Text(Some(v))
    }
}

impl Text<'_> {
    fn owned(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }

    fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// An integer, as `Value::as_i64` reads it.
#[derive(Default)]
struct Int(Option<i64>);

impl Read<'_> for Int {
    fn from_i64(v: i64) -> Self {
        Int(Some(v))
    }

    fn from_u64(v: u64) -> Self {
        Int(i64::try_from(v).ok())
    }
}

/// A boolean, as `Value::as_bool` reads it.
#[derive(Default)]
struct Flag(Option<bool>);

impl Read<'_> for Flag {
    fn from_bool(v: bool) -> Self {
        Flag(Some(v))
    }
}

/// A resource quantity, written as a JSON string or number (a number reads
/// as the tree's `Number` prints it).
#[derive(Default)]
struct Quantity<'de>(Option<Cow<'de, str>>);

impl<'de> Read<'de> for Quantity<'de> {
    fn from_str(v: Cow<'de, str>) -> Self {
        Quantity(Some(v))
    }

    fn from_i64(v: i64) -> Self {
        Quantity(Some(Cow::Owned(Number::from(v).to_string())))
    }

    fn from_u64(v: u64) -> Self {
        Quantity(Some(Cow::Owned(Number::from(v).to_string())))
    }

    fn from_f64(v: f64) -> Self {
        Quantity(Number::from_f64(v).map(|n| Cow::Owned(n.to_string())))
    }
}

/// Whether a key is there, whatever its value (even null).
#[derive(Default)]
struct Present(bool);

impl<'de> Read<'de> for Present {
    fn from_bool(_: bool) -> Self {
        Present(true)
    }

    fn from_i64(_: i64) -> Self {
        Present(true)
    }

    fn from_u64(_: u64) -> Self {
        Present(true)
    }

    fn from_f64(_: f64) -> Self {
        Present(true)
    }

    fn from_str(_: Cow<'de, str>) -> Self {
        Present(true)
    }

    fn from_null() -> Self {
        Present(true)
    }

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        skip_seq(seq).map(|()| Present(true))
    }

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        skip_map(map).map(|()| Present(true))
    }
}

/// A list, as `placement::array` reads it: anything else is empty.
impl<'de, T: Read<'de>> Read<'de> for Vec<T> {
    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(Seed::<T>::new())? {
            items.push(item);
        }
        Ok(items)
    }
}

/// A string map, as `placement::string_map` reads it: members whose value is
/// not a string are left out (also when an earlier one of the same key was a
/// string, since the tree keeps the last).
#[derive(Default)]
struct StringMap(Labels);

impl<'de> Read<'de> for StringMap {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut labels = Labels::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match map.next_value_seed(Seed::<Text<'de>>::new())?.owned() {
                Some(value) => {
                    labels.insert(key.0.into_owned(), value);
                }
                None => {
                    labels.remove(&*key.0);
                }
            }
        }
        Ok(StringMap(labels))
    }
}

/// Present or not, and if present read as `T` (from any JSON type, null
/// included).
impl<'de, T: Read<'de>> Read<'de> for Option<T> {
    fn from_bool(v: bool) -> Self {
        Some(T::from_bool(v))
    }

    fn from_i64(v: i64) -> Self {
        Some(T::from_i64(v))
    }

    fn from_u64(v: u64) -> Self {
        Some(T::from_u64(v))
    }

    fn from_f64(v: f64) -> Self {
        Some(T::from_f64(v))
    }

    fn from_str(v: Cow<'de, str>) -> Self {
        Some(T::from_str(v))
    }

    fn from_null() -> Self {
        Some(T::from_null())
    }

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        T::from_seq(seq).map(Some)
    }

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::from_map(map).map(Some)
    }
}

/// An object read field by field: each listed key's value is read into its
/// field (a later occurrence replaces an earlier one), other members are
/// parsed and skipped.
macro_rules! object {
    ($name:ident { $($key:literal => $field:ident: $ty:ty,)* }) => {
        #[derive(Default)]
        struct $name<'de> {
            $($field: $ty,)*
            _text: PhantomData<&'de str>,
        }

        impl<'de> Read<'de> for $name<'de> {
            fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut object = Self::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match &*key.0 {
                        $($key => object.$field = map.next_value_seed(Seed::new())?,)*
                        _ => {
                            map.next_value::<Discarded>()?;
                        }
                    }
                }
                Ok(object)
            }
        }
    };
}

/// The object. Unlike the others it stops at a `kind` other than `Pod`
/// (objects are written with their kind first), leaving the text to the
/// sparse tree without reading the rest twice.
#[derive(Default)]
struct Object<'de> {
    api_version: Text<'de>,
    kind: Text<'de>,
    metadata: Metadata<'de>,
    spec: PodSpec<'de>,
}

impl<'de> Read<'de> for Object<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut object = Self::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match &*key.0 {
                "apiVersion" => object.api_version = map.next_value_seed(Seed::new())?,
                "kind" => {
                    object.kind = map.next_value_seed(Seed::new())?;
                    if object.kind.as_str() != Some("Pod") {
                        return Err(serde::de::Error::custom("not a Pod"));
                    }
                }
                "metadata" => object.metadata = map.next_value_seed(Seed::new())?,
                "spec" => object.spec = map.next_value_seed(Seed::new())?,
                _ => {
                    map.next_value::<Discarded>()?;
                }
            }
        }
        Ok(object)
    }
}

object!(Metadata {
    // `name` counts when present, even when it is not a string.
    "name" => name: Option<Text<'de>>,
    "generateName" => generate_name: Text<'de>,
    "namespace" => namespace: Text<'de>,
    "labels" => labels: StringMap,
    "annotations" => annotations: StringMap,
    "ownerReferences" => owner_references: Vec<OwnerReference<'de>>,
});

object!(OwnerReference {
    "apiVersion" => api_version: Text<'de>,
    "kind" => kind: Text<'de>,
    "name" => name: Text<'de>,
    "controller" => controller: Flag,
});

object!(PodSpec {
    "tolerations" => tolerations: Vec<TolerationFields<'de>>,
    "nodeSelector" => node_selector: StringMap,
    "affinity" => affinity: Affinity<'de>,
    "priorityClassName" => priority_class_name: Text<'de>,
    "priority" => priority: Int,
    "volumes" => volumes: Vec<VolumeFields<'de>>,
    "containers" => containers: Vec<Container<'de>>,
    "initContainers" => init_containers: Vec<Container<'de>>,
    "overhead" => overhead: Requests<'de>,
    "nodeName" => node_name: Text<'de>,
});

object!(TolerationFields {
    "key" => key: Text<'de>,
    "operator" => operator: Text<'de>,
    "value" => value: Text<'de>,
    "effect" => effect: Text<'de>,
    "tolerationSeconds" => seconds: Int,
});

object!(Affinity {
    "nodeAffinity" => node_affinity: NodeAffinity<'de>,
});

object!(NodeAffinity {
    "requiredDuringSchedulingIgnoredDuringExecution" => required: Required<'de>,
    "preferredDuringSchedulingIgnoredDuringExecution" => preferred: Vec<Preferred<'de>>,
});

object!(Required {
    "nodeSelectorTerms" => terms: Vec<Term<'de>>,
});

object!(Preferred {
    "weight" => weight: Int,
    "preference" => preference: Term<'de>,
});

object!(Term {
    "matchExpressions" => match_expressions: Vec<Requirement<'de>>,
    "matchFields" => match_fields: Vec<Requirement<'de>>,
});

object!(Requirement {
    "key" => key: Text<'de>,
    "operator" => operator: Text<'de>,
    "values" => values: Vec<Text<'de>>,
});

object!(VolumeFields {
    "name" => name: Text<'de>,
    "emptyDir" => empty_dir: Option<EmptyDir<'de>>,
    "hostPath" => host_path: Present,
    "persistentVolumeClaim" => persistent_volume_claim: Present,
    "configMap" => config_map: Present,
    "secret" => secret: Present,
    "projected" => projected: Present,
    "downwardAPI" => downward_api: Present,
    "ephemeral" => ephemeral: Present,
});

object!(EmptyDir {
    "medium" => medium: Text<'de>,
});

object!(Container {
    "ports" => ports: Vec<Port<'de>>,
    "resources" => resources: Resources<'de>,
});

object!(Port {
    "hostPort" => host_port: Int,
    "protocol" => protocol: Text<'de>,
});

object!(Resources {
    "requests" => requests: Requests<'de>,
});

object!(Requests {
    "cpu" => cpu: Quantity<'de>,
    "memory" => memory: Quantity<'de>,
});

impl Object<'_> {
    /// The records, as `review` builds them for a Pod; `None` unless this
    /// is a Pod with a string `apiVersion`.
    fn into_review(self, operation: Operation) -> Option<Review> {
        if self.kind.as_str() != Some("Pod") {
            return None;
        }
        let api_version = self.api_version.owned()?;
        let metadata = self.metadata;
        let name = match metadata.name {
            Some(name) => name.owned(),
            None => metadata.generate_name.owned(),
        }
        .unwrap_or_default();
        let controller = metadata
            .owner_references
            .into_iter()
            .find(|o| o.controller.0 == Some(true))
            .map(|o| Owner {
                api_version: o.api_version.owned().unwrap_or_default(),
                kind: o.kind.owned().unwrap_or_default(),
                name: o.name.owned().unwrap_or_default(),
            });
        let labels = metadata.labels.0;
        let annotations = metadata.annotations.0;
        let pod = self.spec.into_placement(controller, &labels, &annotations);
        Some(Review {
            api_version,
            kind: "Pod".to_string(),
            namespace: metadata.namespace.owned().unwrap_or_default(),
            name,
            operation,
            labels,
            annotations,
            pod: Some(pod),
            node: None,
            request: None,
        })
    }
}

impl PodSpec<'_> {
    fn into_placement(
        self,
        controller: Option<Owner>,
        labels: &Labels,
        annotations: &Labels,
    ) -> PodPlacement {
        let request = |resource| {
            let of = |c: &Container<'_>| c.resources.requests.parse(resource);
            let sum: i64 = self.containers.iter().map(of).sum();
            let init = self.init_containers.iter().map(of).max().unwrap_or(0);
            sum.max(init) + self.overhead.parse(resource)
        };
        let cpu_request_millis = request(Resource::Cpu);
        let memory_request_bytes = request(Resource::Memory);
        let host_ports = self
            .containers
            .iter()
            .chain(&self.init_containers)
            .flat_map(|c| &c.ports)
            .filter_map(|p| {
                let port = p.host_port.0.filter(|p| *p > 0)?;
                Some(HostPort {
                    port: port as i32,
                    protocol: p
                        .protocol
                        .as_str()
                        .map_or_else(|| "TCP".to_string(), str::to_string),
                })
            })
            .collect();
        let node_affinity = self.affinity.node_affinity;
        PodPlacement {
            template_path: String::new(),
            controller,
            labels: labels.clone(),
            annotations: annotations.clone(),
            tolerations: self
                .tolerations
                .into_iter()
                .filter_map(TolerationFields::into_toleration)
                .collect(),
            node_selector: self.node_selector.0,
            required_node_affinity: node_affinity
                .required
                .terms
                .into_iter()
                .map(Term::into_term)
                .collect(),
            preferred_node_affinity: node_affinity
                .preferred
                .into_iter()
                .map(|p| PreferredTerm {
                    weight: p.weight.0.unwrap_or(0) as i32,
                    preference: p.preference.into_term(),
                })
                .collect(),
            priority_class_name: self.priority_class_name.owned(),
            priority: self.priority.0.map(|p| p as i32),
            volumes: self
                .volumes
                .into_iter()
                .filter_map(VolumeFields::into_volume)
                .collect(),
            host_ports,
            cpu_request_millis,
            memory_request_bytes,
            replicas: None,
            node_name: self.node_name.owned(),
        }
    }
}

/// The resources whose requests the records sum.
#[derive(Clone, Copy)]
enum Resource {
    Cpu,
    Memory,
}

impl Requests<'_> {
    /// The request for `resource`, 0 when absent or not a quantity.
    fn parse(&self, resource: Resource) -> i64 {
        let (text, parse): (_, fn(&str) -> Option<i64>) = match resource {
            Resource::Cpu => (&self.cpu.0, quantity::cpu_millis),
            Resource::Memory => (&self.memory.0, quantity::bytes),
        };
        text.as_deref().and_then(parse).unwrap_or(0)
    }
}

impl TolerationFields<'_> {
    fn into_toleration(self) -> Option<Toleration> {
        let operator = match self.operator.as_str() {
            Some("Exists") => TolerationOperator::Exists,
            None | Some("Equal") | Some("") => TolerationOperator::Equal,
            Some(_) => return None,
        };
        Some(Toleration {
            key: self.key.owned().filter(|k| !k.is_empty()),
            operator,
            value: self.value.owned(),
            effect: self.effect.as_str().and_then(TaintEffect::parse),
            toleration_seconds: self.seconds.0,
        })
    }
}

impl Term<'_> {
    fn into_term(self) -> NodeSelectorTerm {
        let requirements = |list: Vec<Requirement<'_>>| {
            list.into_iter()
                .filter_map(|r| {
                    let operator = SelectorOperator::parse(r.operator.as_str()?)?;
                    Some(SelectorRequirement {
                        key: r.key.owned()?,
                        operator,
                        values: r.values.into_iter().filter_map(Text::owned).collect(),
                    })
                })
                .collect()
        };
        NodeSelectorTerm {
            match_expressions: requirements(self.match_expressions),
            match_fields: requirements(self.match_fields),
        }
    }
}

impl VolumeFields<'_> {
    fn into_volume(self) -> Option<Volume> {
        let name = self.name.owned()?;
        let source = if let Some(empty_dir) = &self.empty_dir {
            if empty_dir.medium.as_str() == Some("Memory") {
                VolumeSource::EmptyDirMemory
            } else {
                VolumeSource::EmptyDir
            }
        } else if self.host_path.0 {
            VolumeSource::HostPath
        } else if self.persistent_volume_claim.0 {
            VolumeSource::PersistentVolumeClaim
        } else if self.config_map.0 {
            VolumeSource::ConfigMap
        } else if self.secret.0 {
            VolumeSource::Secret
        } else if self.projected.0 {
            VolumeSource::Projected
        } else if self.downward_api.0 {
            VolumeSource::DownwardApi
        } else if self.ephemeral.0 {
            VolumeSource::Ephemeral
        } else {
            VolumeSource::Other
        };
        Some(Volume { name, source })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::pod_review;
    use crate::model::Operation;
    use crate::placement::review;
    use crate::placement::sparse::tests::pod_spec;

    /// `pod_review` of `text` is the tree's review when the tree's is a Pod
    /// with a string apiVersion, and `None` otherwise.
    fn reads_as_the_tree(text: &str) {
        let direct = pod_review(text, Operation::Update);
        let tree = serde_json::from_str::<Value>(text).ok();
        let is_pod = tree.as_ref().is_some_and(|t| {
            t.get("kind").and_then(Value::as_str) == Some("Pod")
                && t.get("apiVersion").is_some_and(Value::is_string)
        });
        match (direct, tree) {
            (Some(direct), Some(tree)) if is_pod => assert_eq!(
                Ok(direct),
                review(&tree, Operation::Update),
                "records differ for {text}"
            ),
            (None, _) if !is_pod => {}
            (direct, _) => panic!("for {text}: read {direct:?}; a Pod: {is_pod}"),
        }
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "coredns-1", "generateName": "coredns-", "namespace": "kube-system", "uid": "u",
                "labels": {"k8s-app": "kube-dns", "app.kubernetes.io/name": "coredns"},
                "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": "n", "controller": false},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "coredns-5", "controller": true}],
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": pod_spec(),
            "status": {"phase": "Running"}
        })
    }

    /// Every JSON pointer in `value`.
    fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    let key = key.replace('~', "~0").replace('/', "~1");
                    pointers(value, format!("{at}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    pointers(value, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }

    #[test]
    fn a_pod_reads_as_in_the_tree_whatever_type_each_value_has() {
        let pod = pod();
        reads_as_the_tree(&pod.to_string());
        reads_as_the_tree(&serde_json::to_string_pretty(&pod).unwrap());
        let variants = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-3),
            json!(7),
            json!(4_294_967_296_i64),
            json!(u64::MAX),
            json!(2.5),
            json!(""),
            json!("x"),
            json!("Exists"),
            json!("Memory"),
            json!([]),
            json!([1, "a", {"b": "c"}, null]),
            json!({}),
            json!({"a": "b", "c": 1}),
        ];
        let mut paths = Vec::new();
        pointers(&pod, String::new(), &mut paths);
        assert!(paths.len() >= 100, "{} paths", paths.len());
        for path in &paths {
            for variant in &variants {
                let mut changed = pod.clone();
                *changed.pointer_mut(path).unwrap() = variant.clone();
                reads_as_the_tree(&changed.to_string());
            }
            if let Some((parent, key)) = path.rsplit_once('/') {
                let mut removed = pod.clone();
                match removed.pointer_mut(parent).unwrap() {
                    Value::Object(map) => {
                        drop(map.remove(&key.replace("~1", "/").replace("~0", "~")))
                    }
                    Value::Array(items) => drop(items.remove(key.parse::<usize>().unwrap())),
                    _ => unreachable!(),
                }
                reads_as_the_tree(&removed.to_string());
            }
        }
    }

    #[test]
    fn of_a_key_that_occurs_twice_the_last_counts() {
        // Reading stops at the first kind that is not Pod.
        let pod_last = r#"{"kind": "Node", "apiVersion": "v1", "kind": "Pod"}"#;
        assert_eq!(pod_review(pod_last, Operation::Create), None);
        for text in [
            r#"{"kind": "Pod", "apiVersion": "v1", "kind": "Node"}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "apiVersion": 1}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "metadata": {"labels": {"a": "x", "a": 1, "b": 1, "b": "y"}}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "a", "name": null, "generateName": "g"}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "metadata": {"namespace": "a"}, "metadata": {"name": "b"}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "spec": {"nodeName": "a"}, "spec": {"priority": 3}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "spec": {"tolerations": [{"key": "a", "operator": "Exists", "operator": "In"}]}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "spec": {"volumes": [{"name": "v", "emptyDir": {}, "emptyDir": null}]}}"#,
        ] {
            reads_as_the_tree(text);
        }
    }

    #[test]
    fn escaped_text_reads_as_in_the_tree() {
        reads_as_the_tree(
            r#"{"kind": "P\u006fd", "apiVersion": "v\u0031", "metadata": {"name": "caf\u00e9",
               "labels": {"k\u00e9y": "\"quoted\"\n"}}, "spec": {"nodeSelector": {"a\/b": "c\\d"},
               "tolerations": [{"k\u0065y": "x", "operator": "Exi\u0073ts"}]}}"#,
        );
    }

    #[test]
    fn other_kinds_and_bad_text_are_left_to_the_sparse_tree() {
        for text in [
            r#"{"kind": "Deployment", "apiVersion": "apps/v1", "spec": {"template": {}}}"#,
            r#"{"spec": {"template": {}}, "kind": "Deployment", "apiVersion": "apps/v1"}"#,
            // Left to the sparse tree, which reports the bad text after the kind.
            r#"{"kind": "Deployment", "apiVersion": "apps/v1", "spec": {"replicas": 1e999}}"#,
            r#"{"kind": "Node", "apiVersion": "v1"}"#,
            r#"{"kind": "Pod"}"#,
            r#"{"apiVersion": "v1"}"#,
            r#"[{"kind": "Pod", "apiVersion": "v1"}]"#,
            r#""Pod""#,
            "null",
            r#"{"kind": "Pod", "apiVersion": "v1", "status": {"message": "\ud800"}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "status": {"n": 1e999}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "spec": {"priority": 1e999}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1", "spec": {"x": tru}}"#,
            r#"{"kind": "Pod", "apiVersion": "v1"} trailing"#,
            r#"{"kind": "Pod", "apiVersion": "v1""#,
        ] {
            assert_eq!(pod_review(text, Operation::Create), None, "{text}");
        }
        let deep = format!(
            r#"{{"kind": "Pod", "apiVersion": "v1", "spec": {{"tolerations": {}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert_eq!(pod_review(&deep, Operation::Create), None);
    }
}
