//! The durable route for objects that something other than `kubectl apply`
//! owns, so that a patch to them would be reverted:
//!
//! - k3s's packaged add-ons (metrics-server, coredns, local-path-provisioner)
//!   are files in `/var/lib/rancher/k3s/server/manifests` that k3s rewrites and
//!   re-applies on every start. The route kept here: an empty `<file>.skip`
//!   beside the packaged manifest on every server (k3s then leaves the file,
//!   and what it deployed, alone) and the fixed object as a replacement
//!   manifest (a user AddOn). `disable:` in the k3s config is the other route,
//!   but it deletes every object of the add-on (its Service, ConfigMap, RBAC,
//!   APIService), so it needs a complete replacement, which a snapshot of the
//!   Deployment alone cannot give;
//! - objects of a Helm release are re-rendered by the next `helm upgrade`. For
//!   traefik (a k3s HelmChart, or kube-hetzner's), a `HelmChartConfig` carries
//!   the placement into the chart's values; other charts' values differ, so
//!   they are only reported.

use serde_json::{Map, Value, json};

use super::{Resource, strip_server_fields, to_yaml};

/// Where k3s servers keep the auto-deployed manifests.
pub const MANIFESTS_DIR: &str = "/var/lib/rancher/k3s/server/manifests";

const OWNER_GVK: &str = "objectset.rio.cattle.io/owner-gvk";
const OWNER_NAME: &str = "objectset.rio.cattle.io/owner-name";
const ADDON_GVK: &str = "k3s.cattle.io/v1, Kind=Addon";
const OBJECTSET_PREFIX: &str = "objectset.rio.cattle.io/";

/// A k3s packaged add-on whose manifest k3s rewrites on every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackagedAddon {
    /// The AddOn's name (the manifest's base name), as the objects' owner.
    pub addon: &'static str,
    /// The name `--disable` / `disable:` takes.
    pub component: &'static str,
    /// The manifest, relative to [`MANIFESTS_DIR`].
    pub manifest: &'static str,
}

/// The packaged add-ons that are plain manifests (traefik is a HelmChart).
pub const PACKAGED: &[PackagedAddon] = &[
    PackagedAddon {
        addon: "coredns",
        component: "coredns",
        manifest: "coredns.yaml",
    },
    PackagedAddon {
        addon: "local-storage",
        component: "local-storage",
        manifest: "local-storage.yaml",
    },
    PackagedAddon {
        addon: "metrics-server-deployment",
        component: "metrics-server",
        manifest: "metrics-server/metrics-server-deployment.yaml",
    },
];

impl PackagedAddon {
    /// The `.skip` file that makes k3s ignore the manifest.
    pub fn skip_file(&self) -> String {
        format!("{MANIFESTS_DIR}/{}.skip", self.manifest)
    }
}

fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The packaged add-on that deployed `object`, from the owner annotations
/// k3s's deploy controller puts on what it applies.
pub fn packaged_addon(object: &Value) -> Option<&'static PackagedAddon> {
    if annotation(object, OWNER_GVK) != Some(ADDON_GVK) {
        return None;
    }
    let owner = annotation(object, OWNER_NAME)?;
    PACKAGED.iter().find(|a| a.addon == owner)
}

/// The fixed object as a user AddOn for the manifests directory: without
/// server-owned fields and without the previous AddOn's `objectset.rio.cattle.io/`
/// bookkeeping (k3s writes its own).
pub fn replacement_manifest(fixed: &Value) -> Value {
    let mut object = strip_server_fields(fixed);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["annotations", "labels"] {
            if let Some(map) = meta.get_mut(field).and_then(Value::as_object_mut) {
                map.retain(|k, _| !k.starts_with(OBJECTSET_PREFIX));
                if map.is_empty() {
                    meta.remove(field);
                }
            }
        }
    }
    object
}

/// The Helm release an object belongs to (Helm's ownership annotations), and
/// its chart's name (the `helm.sh/chart` label without the version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmRelease {
    /// Release name (also the k3s HelmChart's name).
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Chart name, when the object says.
    pub chart: Option<String>,
}

/// The Helm release of `object`, if Helm manages it.
pub fn helm_release(object: &Value) -> Option<HelmRelease> {
    let name = annotation(object, "meta.helm.sh/release-name")?;
    let namespace = annotation(object, "meta.helm.sh/release-namespace").unwrap_or_default();
    let chart = object
        .pointer("/metadata/labels/helm.sh~1chart")
        .and_then(Value::as_str)
        .map(|c| match c.rsplit_once('-') {
            Some((name, version)) if version.starts_with(|ch: char| ch.is_ascii_digit()) => {
                name.to_string()
            }
            _ => c.to_string(),
        });
    Some(HelmRelease {
        name: name.to_string(),
        namespace: namespace.to_string(),
        chart,
    })
}

/// Pod-template fields the traefik chart takes verbatim from its values, by
/// JSON pointer under the pod template and values path.
const TRAEFIK_VALUES: &[(&str, &[&str])] = &[
    ("/spec/affinity", &["affinity"]),
    ("/spec/nodeSelector", &["nodeSelector"]),
    ("/spec/tolerations", &["tolerations"]),
    ("/spec/priorityClassName", &["priorityClassName"]),
];

/// A `HelmChartConfig` for the traefik release that carries what the fix
/// changed in the pod template into the chart's values, or `None` when the
/// object is not traefik's or the fix changes nothing the chart exposes.
/// `chart_namespace` is the namespace of the HelmChart (HelmChartConfig must
/// share it).
pub fn traefik_chart_config(
    original: &Value,
    fixed: &Value,
    chart_namespace: &str,
) -> Option<Value> {
    let release = helm_release(original)?;
    if release.chart.as_deref() != Some("traefik") {
        return None;
    }
    let before = original.pointer("/spec/template")?;
    let after = fixed.pointer("/spec/template")?;
    let mut values = Map::new();
    for (pointer, path) in TRAEFIK_VALUES {
        let new = after.pointer(pointer);
        if new != before.pointer(pointer)
            && let Some(new) = new
        {
            insert(&mut values, path, new.clone());
        }
    }
    let old_annotations = before.pointer("/metadata/annotations");
    let added: Map<String, Value> = after
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, v)| old_annotations.and_then(|a| a.get(k.as_str())) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !added.is_empty() {
        insert(
            &mut values,
            &["deployment", "podAnnotations"],
            Value::Object(added),
        );
    }
    if values.is_empty() {
        return None;
    }
    Some(json!({
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChartConfig",
        "metadata": {"name": release.name, "namespace": chart_namespace},
        "spec": {"valuesContent": to_yaml(&Value::Object(values))},
    }))
}

fn insert(values: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            values.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = values
                .entry((*first).to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(map) = entry.as_object_mut() {
                insert(map, rest, value);
            }
        }
    }
}

/// The namespace of the HelmChart named `release` among `objects`, if one is there.
pub fn helm_chart_namespace<'a>(
    objects: impl IntoIterator<Item = &'a Value>,
    release: &str,
) -> Option<String> {
    objects
        .into_iter()
        .map(Resource::of)
        .find(|r| {
            r.kind == "HelmChart"
                && r.api_version.starts_with("helm.cattle.io/")
                && r.name == release
        })
        .map(|r| r.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k3s_deployment(owner: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "namespace": "kube-system",
                "annotations": {OWNER_GVK: ADDON_GVK, OWNER_NAME: owner, "objectset.rio.cattle.io/id": ""},
                "labels": {"k8s-app": "x", "objectset.rio.cattle.io/hash": "abc"}},
            "spec": {}})
    }

    #[test]
    fn recognises_packaged_addons_by_their_owner() {
        let metrics = k3s_deployment("metrics-server-deployment");
        let addon = packaged_addon(&metrics).expect("metrics-server is packaged");
        assert_eq!(addon.component, "metrics-server");
        assert_eq!(
            addon.skip_file(),
            "/var/lib/rancher/k3s/server/manifests/metrics-server/metrics-server-deployment.yaml.skip"
        );
        assert_eq!(
            packaged_addon(&k3s_deployment("my-addon")),
            None,
            "user AddOns are not packaged"
        );
        let replacement = replacement_manifest(&metrics);
        assert_eq!(replacement["metadata"].get("annotations"), None);
        assert_eq!(replacement["metadata"]["labels"], json!({"k8s-app": "x"}));
    }

    #[test]
    fn traefik_chart_config_carries_changed_placement() {
        let original = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "traefik", "namespace": "traefik",
                "annotations": {"meta.helm.sh/release-name": "traefik", "meta.helm.sh/release-namespace": "traefik"},
                "labels": {"helm.sh/chart": "traefik-37.1.2"}},
            "spec": {"template": {"metadata": {"annotations": {"a": "1"}}, "spec": {"tolerations": []}}}});
        let mut fixed = original.clone();
        fixed["spec"]["template"]["metadata"]["annotations"]["b"] = json!("2");
        fixed["spec"]["template"]["spec"]["tolerations"] =
            json!([{"key": "k", "operator": "Exists"}]);
        let config = traefik_chart_config(&original, &fixed, "kube-system").expect("a config");
        assert_eq!(
            config["metadata"],
            json!({"name": "traefik", "namespace": "kube-system"})
        );
        let values: Value =
            serde_saphyr::from_str(config["spec"]["valuesContent"].as_str().unwrap()).unwrap();
        assert_eq!(
            values,
            json!({"deployment": {"podAnnotations": {"b": "2"}},
            "tolerations": [{"key": "k", "operator": "Exists"}]})
        );
        assert_eq!(
            traefik_chart_config(&original, &original, "kube-system"),
            None
        );
    }
}
