//! The `Policy` trait a policy implements, and the `Host` it talks to.
//!
//! Under the real engine `Host` is backed by the component's imports; under
//! `cargo test` the [`crate::testing`] harness backs it with in-memory objects.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::{Decision, LogLevel, Metadata, NodePool, Review};

/// What the host offers a policy: the object under review and read-only
/// lookups into the engine's cluster view.
pub trait Host {
    /// The object under review, as JSON text.
    fn object_json(&self) -> String;
    /// The previous object of an UPDATE.
    fn old_object_json(&self) -> Option<String>;
    /// One object of the cluster view (namespace empty for cluster-scoped kinds).
    fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<String>;
    /// Objects of a kind, optionally in one namespace and matching a label selector.
    ///
    /// # Errors
    /// When the label selector does not parse.
    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, String>;
    /// The cluster's autoscaler node pools.
    fn node_pools(&self) -> Vec<NodePool>;
    /// Log a line (bounded by the host).
    fn log(&self, level: LogLevel, message: &str);
}

/// Convenience lookups over a [`Host`] that decode JSON.
pub trait HostExt: Host {
    /// The object under review, parsed.
    fn object(&self) -> Value {
        serde_json::from_str(&self.object_json()).unwrap_or(Value::Null)
    }

    /// Objects of a kind, parsed; an unparsable document is skipped.
    fn list_objects(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Vec<Value> {
        self.list(api_version, kind, namespace, label_selector)
            .unwrap_or_default()
            .iter()
            .filter_map(|doc| serde_json::from_str(doc).ok())
            .collect()
    }

    /// One object, parsed.
    fn get_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.get(api_version, kind, namespace, name)
            .and_then(|doc| serde_json::from_str(&doc).ok())
    }
}

impl<H: Host + ?Sized> HostExt for H {}

/// A placement policy.
pub trait Policy {
    /// Settings, read from JSON; absent settings are `Default`. A component
    /// parses and validates them once per instance and keeps them for the
    /// evaluations with the same settings text, hence `'static`.
    type Settings: DeserializeOwned + Default + 'static;

    /// Static facts about the policy.
    fn metadata() -> Metadata;

    /// Check settings beyond what deserialization checks.
    ///
    /// # Errors
    /// A message saying what is wrong with the settings.
    fn validate(_settings: &Self::Settings) -> Result<(), String> {
        Ok(())
    }

    /// Judge one review.
    fn evaluate(review: &Review, settings: &Self::Settings, host: &dyn Host) -> Decision;
}

/// Parse settings JSON text; empty text and `null` give the defaults.
///
/// # Errors
/// The deserialization error, as text.
pub fn parse_settings<S: DeserializeOwned + Default>(text: &str) -> Result<S, String> {
    let text = text.trim();
    if text.is_empty() || text == "null" {
        return Ok(S::default());
    }
    serde_json::from_str(text).map_err(|e| format!("invalid settings: {e}"))
}

/// Parse and validate settings for policy `P`.
///
/// # Errors
/// What is wrong with the settings.
pub fn load_settings<P: Policy>(text: &str) -> Result<P::Settings, String> {
    let settings = parse_settings::<P::Settings>(text)?;
    P::validate(&settings)?;
    Ok(settings)
}
