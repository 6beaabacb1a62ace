//! Which requests a native policy or binding applies to: `matchConstraints`
//! and a binding's `matchResources` (resourceRules with wildcards and
//! subresources, resourceNames, scope, excludeResourceRules, matchPolicy,
//! namespaceSelector, objectSelector), judged on a [`Request`] derived from
//! the admission request or, outside admission, from the object itself.

use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::model::{Labels, Operation};
use tollgate_sdk::selector::LabelSelector;

use super::resources;
use crate::cluster::{ClusterView, group};
use crate::review::Review;

/// `matchConstraints` or a binding's `matchResources`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchResources {
    namespace_selector: Option<Value>,
    object_selector: Option<Value>,
    #[serde(default)]
    resource_rules: Vec<Rule>,
    #[serde(default)]
    exclude_resource_rules: Vec<Rule>,
    match_policy: Option<MatchPolicy>,
}

/// A `NamedRuleWithOperations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    resource_names: Vec<String>,
    #[serde(default)]
    operations: Vec<String>,
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    api_versions: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    scope: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum MatchPolicy {
    Exact,
    Equivalent,
}

/// The attributes of a request that rules match on.
#[derive(Debug, Clone)]
pub struct Request {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`, `scale`), empty for the object itself.
    pub subresource: String,
    /// CREATE, UPDATE, DELETE or CONNECT (CREATE outside admission).
    pub operation: &'static str,
    /// The object's namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// Whether the resource is namespaced.
    pub namespaced: bool,
}

impl Request {
    /// The request's attributes: from the AdmissionReview's `resource` when
    /// there is one, else from the object's apiVersion and kind.
    pub fn of(review: &Review) -> Self {
        let object = review.object();
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let request = review.request();
        let from_request = |field: &str| {
            request
                .and_then(|r| r.pointer(&format!("/resource/{field}")))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let group_name = from_request("group").unwrap_or_else(|| group(api_version).to_string());
        let version = from_request("version").unwrap_or_else(|| {
            api_version
                .rsplit_once('/')
                .map_or(api_version, |(_, v)| v)
                .to_string()
        });
        let resource = from_request("resource")
            .unwrap_or_else(|| resources::resource_of(&group_name, review.kind()));
        let records = review.records();
        let namespaced = resources::by_kind(&group_name, review.kind())
            .map_or(!records.namespace.is_empty(), |r| r.namespaced);
        Request {
            subresource: records
                .request
                .as_ref()
                .and_then(|r| r.sub_resource.clone())
                .unwrap_or_default(),
            operation: match review.operation() {
                Operation::Update => "UPDATE",
                Operation::Delete => "DELETE",
                Operation::Connect => "CONNECT",
                Operation::Create | Operation::None => "CREATE",
            },
            namespace: if namespaced {
                records.namespace.clone()
            } else {
                String::new()
            },
            name: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            group: group_name,
            version,
            resource,
            namespaced,
        }
    }

    /// The same request as seen by a Pod rule (Kyverno's autogen: a pod
    /// controller is judged by its pod template).
    pub fn as_pod(&self) -> Self {
        Request {
            group: String::new(),
            version: "v1".into(),
            resource: "pods".into(),
            subresource: String::new(),
            namespaced: true,
            ..self.clone()
        }
    }
}

fn any(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// Operations: a rule without any selects every operation (the API server
/// refuses such a rule; the Kyverno CLI reads it this way).
fn any_operation(list: &[String], value: &str) -> bool {
    list.is_empty() || any(list, value)
}

impl Rule {
    /// Whether the rule selects the request (`equivalent`: any version, and
    /// groups that serve the same resource).
    fn matches(&self, req: &Request, equivalent: bool) -> bool {
        let group_ok = self.api_groups.iter().any(|g| {
            g == "*"
                || *g == req.group
                || (equivalent && resources::equivalent_groups(g, &req.group))
        });
        let version_ok = equivalent || any(&self.api_versions, &req.version);
        let resource_ok = self.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r, ""));
            (res == "*" || res == req.resource)
                && (sub == "*" && !req.subresource.is_empty() || sub == req.subresource)
        });
        let scope_ok = match self.scope.as_deref() {
            Some("Cluster") => !req.namespaced,
            Some("Namespaced") => req.namespaced,
            _ => true,
        };
        any_operation(&self.operations, req.operation)
            && group_ok
            && version_ok
            && resource_ok
            && scope_ok
            && (self.resource_names.is_empty() || self.resource_names.contains(&req.name))
    }
}

/// Why a selector could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not a valid label selector")]
pub struct SelectorError(&'static str);

impl MatchResources {
    /// Check the selectors once, at load.
    ///
    /// # Errors
    /// A selector that is not a `metav1.LabelSelector`.
    pub fn validate(&self) -> Result<(), SelectorError> {
        for (field, selector) in [
            ("namespaceSelector", &self.namespace_selector),
            ("objectSelector", &self.object_selector),
        ] {
            if let Some(s) = selector
                && LabelSelector::from_json(s).is_none()
            {
                return Err(SelectorError(field));
            }
        }
        Ok(())
    }

    /// The resources the rules name (for the kinds a policy judges); `None`
    /// when a rule has a wildcard or names an unknown resource.
    pub fn kinds(&self) -> Option<Vec<String>> {
        let mut kinds = Vec::new();
        for rule in &self.resource_rules {
            for resource in &rule.resources {
                let (res, _) = resource.split_once('/').unwrap_or((resource, ""));
                for g in &rule.api_groups {
                    let known = resources::by_resource(g, res)?;
                    if !kinds.iter().any(|k| k == known.kind) {
                        kinds.push(known.kind.to_string());
                    }
                }
            }
        }
        Some(kinds)
    }

    /// Whether the resource rules name pods.
    pub fn names_pods(&self) -> bool {
        self.resource_rules
            .iter()
            .any(|r| any(&r.api_groups, "") && r.resources.iter().any(|x| x == "pods" || x == "*"))
    }

    /// Whether the request matches. `binding` rules: empty resourceRules
    /// select everything the policy selects.
    pub fn matches(
        &self,
        req: &Request,
        review: &Review,
        cluster: &dyn ClusterView,
        binding: bool,
    ) -> bool {
        let equivalent = self.match_policy != Some(MatchPolicy::Exact);
        let included = (binding && self.resource_rules.is_empty())
            || self
                .resource_rules
                .iter()
                .any(|r| r.matches(req, equivalent));
        if !included
            || self
                .exclude_resource_rules
                .iter()
                .any(|r| r.matches(req, equivalent))
        {
            return false;
        }
        if let Some(selector) = self
            .object_selector
            .as_ref()
            .and_then(LabelSelector::from_json)
        {
            let labels_of =
                |o: Option<&Value>| labels(o.and_then(|o| o.pointer("/metadata/labels")));
            let new = (!review.is_delete()).then(|| review.object());
            let old = if review.is_delete() {
                Some(review.object())
            } else {
                review.old_object()
            };
            let matched = [new, old]
                .into_iter()
                .flatten()
                .any(|o| selector.matches(&labels_of(Some(o))));
            if !matched {
                return false;
            }
        }
        if let Some(selector) = self
            .namespace_selector
            .as_ref()
            .and_then(LabelSelector::from_json)
        {
            let labels = if req.resource == "namespaces" && req.group.is_empty() {
                namespace_labels(&req.name, review.object().pointer("/metadata/labels"))
            } else if req.namespaced {
                let ns = cluster.get("v1", "Namespace", "", &req.namespace);
                namespace_labels(
                    &req.namespace,
                    ns.as_ref().and_then(|n| n.pointer("/metadata/labels")),
                )
            } else {
                // Cluster-scoped objects are not selected by namespace.
                return true;
            };
            if !selector.matches(&labels) {
                return false;
            }
        }
        true
    }
}

fn labels(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// A namespace's labels, with the `kubernetes.io/metadata.name` label the
/// API server sets on every namespace.
fn namespace_labels(name: &str, v: Option<&Value>) -> Labels {
    let mut labels = labels(v);
    labels.insert("kubernetes.io/metadata.name".into(), name.to_string());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    fn req(resource: &str, sub: &str) -> Request {
        Request {
            group: "apps".into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            operation: "CREATE",
            namespace: "ns".into(),
            name: "web".into(),
            namespaced: true,
        }
    }

    #[test]
    fn wildcards_and_subresources() {
        let r = rule(
            json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}),
        );
        assert!(r.matches(&req("deployments", ""), false));
        assert!(!r.matches(&req("deployments", "scale"), false));
        let all = rule(
            json!({"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]}),
        );
        assert!(all.matches(&req("deployments", ""), false));
        assert!(!all.matches(&req("deployments", "status"), false));
        let subs = rule(
            json!({"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/scale"]}),
        );
        assert!(subs.matches(&req("deployments", "scale"), false));
        assert!(!subs.matches(&req("deployments", ""), false));
        let old = rule(
            json!({"apiGroups": ["extensions"], "apiVersions": ["v1beta1"], "operations": ["CREATE"], "resources": ["deployments"]}),
        );
        assert!(!old.matches(&req("deployments", ""), false));
        assert!(
            old.matches(&req("deployments", ""), true),
            "Equivalent matches other groups and versions"
        );
    }
}
