//! Which requests a policy judges, as the operator narrows it in the settings
//! file: `match` (the shape of a ValidatingAdmissionPolicy's
//! `matchConstraints`: resourceRules with groups, versions, resources and
//! operations, excludeResourceRules, namespaceSelector, objectSelector,
//! matchPolicy) and `matchConditions` (CEL, as in Kubernetes). Applied
//! before the policy runs, in every mode; a request it does not select is
//! not judged by that policy at all.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cel::CelPolicy;
use crate::cluster::ClusterView;
use crate::decision::Fault;
use crate::native::matching::{MatchResources, Request};
use crate::review::Review;

/// A named CEL condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchCondition {
    /// The condition's name, for messages.
    pub name: String,
    /// A CEL expression over `object`, `oldObject`, `request`,
    /// `namespaceObject` and `params` that must be true.
    pub expression: String,
}

/// A policy's selection, compiled.
#[derive(Debug, Clone)]
pub struct Selection {
    resources: Option<MatchResources>,
    /// The match conditions as a CEL policy that only has match conditions.
    conditions: Option<CelPolicy>,
}

/// Why a selection could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A label selector is malformed.
    #[error("{file}: policy {policy}: match: {message}")]
    Selector {
        /// The settings file.
        file: String,
        /// The policy.
        policy: String,
        /// What is wrong.
        message: String,
    },
    /// A match condition does not compile.
    #[error(transparent)]
    Condition(#[from] crate::cel::Error),
}

impl Selection {
    /// Build the selection of `policy` from its configuration; `None` when
    /// the operator did not narrow it.
    ///
    /// # Errors
    /// A malformed selector or a condition that does not compile.
    pub fn new(
        file: &Path,
        policy: &str,
        resources: Option<&MatchResources>,
        conditions: &[MatchCondition],
    ) -> Result<Option<Self>, Error> {
        if resources.is_none() && conditions.is_empty() {
            return Ok(None);
        }
        if let Some(r) = resources {
            r.validate().map_err(|e| Error::Selector {
                file: file.display().to_string(),
                policy: policy.to_string(),
                message: e.to_string(),
            })?;
        }
        let conditions = if conditions.is_empty() {
            None
        } else {
            let doc = json!({
                "apiVersion": "tollgate.dev/v1alpha1",
                "kind": "CelPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "matchConditions": conditions
                        .iter()
                        .map(|c| json!({"name": c.name, "expression": c.expression}))
                        .collect::<Vec<Value>>(),
                    "validations": [{"rule": "selected", "expression": "true"}],
                },
            });
            Some(CelPolicy::compile(file, doc)?)
        };
        Ok(Some(Selection {
            resources: resources.cloned(),
            conditions,
        }))
    }

    /// Whether the policy judges this review.
    ///
    /// # Errors
    /// A match condition that fails to evaluate: as in Kubernetes, the
    /// policy's failure policy then decides.
    pub fn selects(&self, review: &Review, cluster: &dyn ClusterView) -> Result<bool, Fault> {
        // Like a binding's matchResources: no resourceRules means every
        // request the policy itself judges.
        if let Some(resources) = &self.resources
            && !resources.matches(&Request::of(review), review, cluster, true)
        {
            return Ok(false);
        }
        match &self.conditions {
            Some(conditions) => Ok(!conditions.evaluate(review, cluster)?.skipped),
            None => Ok(true),
        }
    }
}
