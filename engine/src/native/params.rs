//! A native policy's `params`: the policy's `paramKind` and the binding's
//! `paramRef` (by name, or by label selector, in the binding's namespace or
//! the request's), found among the objects given next to the policies or in
//! the cluster view, and what happens when none is found
//! (`parameterNotFoundAction`).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use tollgate_sdk::selector::LabelSelector;

use super::resources;
use crate::cluster::{ClusterView, Snapshot, group};

/// `spec.paramKind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamKind {
    /// The params' apiVersion.
    pub api_version: String,
    /// The params' kind.
    pub kind: String,
}

/// A binding's `paramRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamRef {
    name: Option<String>,
    namespace: Option<String>,
    selector: Option<Value>,
    parameter_not_found_action: Option<NotFoundAction>,
}

/// What a binding does when no param is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum NotFoundAction {
    /// The binding allows the request without validating.
    Allow,
    /// The binding denies the request.
    #[default]
    Deny,
}

impl ParamRef {
    /// The action when no param is found (`Deny` when unset).
    pub fn not_found_action(&self) -> NotFoundAction {
        self.parameter_not_found_action.unwrap_or_default()
    }

    /// Check the reference once, at load.
    ///
    /// # Errors
    /// Neither or both of name and selector, or an invalid selector.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.name, &self.selector) {
            (Some(_), Some(_)) => Err("paramRef: name and selector are mutually exclusive".into()),
            (None, None) => Err("paramRef: one of name or selector is required".into()),
            (None, Some(s)) if LabelSelector::from_json(s).is_none() => {
                Err("paramRef.selector is not a valid label selector".into())
            }
            _ => Ok(()),
        }
    }

    /// The params for a request in `request_namespace`: from `local` (objects
    /// given with the policies) first, then from the cluster view. An object
    /// without a namespace counts as being in `default`.
    pub fn resolve(
        &self,
        kind: &ParamKind,
        request_namespace: &str,
        local: &Snapshot,
        cluster: &dyn ClusterView,
    ) -> Vec<Arc<Value>> {
        let namespaced =
            resources::by_kind(group(&kind.api_version), &kind.kind).is_none_or(|r| r.namespaced);
        let namespace = match (&self.namespace, namespaced) {
            (_, false) => String::new(),
            (Some(ns), true) => ns.clone(),
            (None, true) => request_namespace.to_string(),
        };
        // Objects without a namespace (files) stand for `default`.
        let namespaces: Vec<&str> = match namespace.as_str() {
            "" | "default" if namespaced => vec!["default", ""],
            ns => vec![ns],
        };
        let views: [&dyn ClusterView; 2] = [local, cluster];
        for view in views {
            for ns in &namespaces {
                let found = match (&self.name, &self.selector) {
                    (Some(name), _) => view
                        .get(&kind.api_version, &kind.kind, ns, name)
                        .into_iter()
                        .collect(),
                    (None, Some(selector)) => {
                        let selector = LabelSelector::from_json(selector).unwrap_or_default();
                        view.list(&kind.api_version, &kind.kind, Some(ns), &selector)
                    }
                    (None, None) => Vec::new(),
                };
                if !found.is_empty() {
                    return found;
                }
            }
        }
        Vec::new()
    }
}
