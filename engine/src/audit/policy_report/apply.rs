//! Report objects applied to the cluster by server-side apply (field manager
//! `tollgate`), and reports Tollgate applied earlier (labelled
//! `app.kubernetes.io/managed-by: tollgate`) that this run did not produce
//! deleted. These are the only writes Tollgate ever makes to a cluster.

use std::collections::BTreeSet;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};

use super::{Flavour, MANAGED_BY, MANAGED_BY_LABEL, ReportObject};
use crate::cluster::live::describe;

/// The server-side apply field manager.
pub const FIELD_MANAGER: &str = "tollgate";

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// `namespace/name` (or `name`) of the reports applied.
    pub applied: Vec<String>,
    /// `namespace/name` (or `name`) of the stale reports deleted.
    pub deleted: Vec<String>,
}

/// Why reports could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The report CRD is missing.
    #[error(
        "cannot apply {kind} {name}: the {plural}.{group} CustomResourceDefinition is not installed"
    )]
    MissingCrd {
        /// Report kind.
        kind: &'static str,
        /// Report name.
        name: String,
        /// Resource plural.
        plural: &'static str,
        /// API group.
        group: &'static str,
    },
    /// Another API error.
    #[error("cannot {action} {kind} {name}: {}", describe(.cause))]
    Api {
        /// `apply`, `list` or `delete`.
        action: &'static str,
        /// Report kind.
        kind: &'static str,
        /// Report name (empty for a list).
        name: String,
        /// The API error (described in the message, not chained).
        cause: kube::Error,
    },
}

fn resource(flavour: Flavour, namespaced: bool) -> ApiResource {
    ApiResource {
        group: flavour.group().into(),
        version: flavour.version().into(),
        api_version: flavour.api_version(),
        kind: flavour.kind(namespaced).into(),
        plural: flavour.plural(namespaced).into(),
    }
}

fn key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Apply `objects` and delete the stale reports of `flavour`: in every
/// namespace, or with `namespace` (an audit restricted by `-n`) in that
/// namespace and at cluster scope only.
///
/// # Errors
/// The first API request that fails; a missing CRD is named as such.
pub async fn apply(
    client: &Client,
    flavour: Flavour,
    objects: &[ReportObject],
    namespace: Option<&str>,
) -> Result<Applied, Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut done = Applied::default();
    for object in objects {
        let namespaced = object.namespace.is_some();
        let ar = resource(flavour, namespaced);
        let api: Api<DynamicObject> = match &object.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let kind = flavour.kind(namespaced);
        api.patch(&object.name, &params, &Patch::Apply(&object.object))
            .await
            .map_err(|cause| match &cause {
                kube::Error::Api(s) if s.code == 404 => Error::MissingCrd {
                    kind,
                    name: key(object.namespace.as_deref(), &object.name),
                    plural: flavour.plural(namespaced),
                    group: flavour.group(),
                },
                _ => Error::Api {
                    action: "apply",
                    kind,
                    name: key(object.namespace.as_deref(), &object.name),
                    cause,
                },
            })?;
        done.applied
            .push(key(object.namespace.as_deref(), &object.name));
    }
    let current: BTreeSet<String> = done.applied.iter().cloned().collect();
    for namespaced in [true, false] {
        let ar = resource(flavour, namespaced);
        let kind = flavour.kind(namespaced);
        let api_error = |action, name: String| {
            move |cause| Error::Api {
                action,
                kind,
                name,
                cause,
            }
        };
        let all: Api<DynamicObject> = match namespace {
            Some(ns) if namespaced => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let mut params = ListParams::default()
            .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
            .limit(500);
        let mut stale = Vec::new();
        loop {
            let page = all
                .list(&params)
                .await
                .map_err(api_error("list", String::new()))?;
            for item in &page.items {
                let name = item.metadata.name.clone().unwrap_or_default();
                let ns = item.metadata.namespace.clone();
                if !current.contains(&key(ns.as_deref(), &name)) {
                    stale.push((ns, name));
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        for (ns, name) in stale {
            let api: Api<DynamicObject> = match &ns {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
                None => Api::all_with(client.clone(), &ar),
            };
            let id = key(ns.as_deref(), &name);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(cause) => return Err(api_error("delete", id)(cause)),
            }
            done.deleted.push(id);
        }
    }
    Ok(done)
}
