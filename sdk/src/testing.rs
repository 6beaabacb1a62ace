//! Run a policy natively under `cargo test`, with an in-memory host.
//!
//! The review is built by the same extraction code the engine uses
//! ([`crate::placement::review`]), so a policy sees the same records here as
//! under the real host. Integration tests in `tests/` run the compiled
//! component through the engine as well.

use std::cell::RefCell;

use serde_json::Value;

use crate::model::{Decision, Labels, LogLevel, NodePool, Operation, Review};
use crate::placement;
use crate::policy::{Host, Policy, load_settings};
use crate::selector::LabelSelector;

/// An in-memory [`Host`]: the object under review, other objects for lookups,
/// and node pools.
#[derive(Debug, Default)]
pub struct TestHost {
    /// The object under review.
    pub object: Value,
    /// The old object of an UPDATE.
    pub old_object: Option<Value>,
    /// Objects answering `get` and `list`.
    pub objects: Vec<Value>,
    /// Node pools.
    pub pools: Vec<NodePool>,
    /// Lines the policy logged.
    pub logs: RefCell<Vec<(LogLevel, String)>>,
}

impl TestHost {
    /// A host reviewing `object`.
    pub fn new(object: Value) -> Self {
        TestHost {
            object,
            ..Default::default()
        }
    }

    /// Add node pools.
    pub fn with_pools(mut self, pools: Vec<NodePool>) -> Self {
        self.pools = pools;
        self
    }

    /// Add objects for lookups.
    pub fn with_objects(mut self, objects: Vec<Value>) -> Self {
        self.objects = objects;
        self
    }

    /// The review the engine would build for the object.
    ///
    /// # Panics
    /// When the object lacks `apiVersion` or `kind` (a broken test fixture).
    pub fn review(&self, operation: Operation) -> Review {
        placement::review(&self.object, operation).expect("test object needs apiVersion and kind")
    }

    /// Evaluate policy `P` with settings JSON against the object as a CREATE.
    ///
    /// # Panics
    /// When the settings are invalid (a broken test).
    pub fn evaluate<P: Policy>(&self, settings: Value) -> Decision {
        let settings = load_settings::<P>(&settings.to_string()).expect("valid test settings");
        P::evaluate(&self.review(Operation::Create), &settings, self)
    }
}

fn field<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Host for TestHost {
    fn object_json(&self) -> String {
        self.object.to_string()
    }

    fn old_object_json(&self) -> Option<String> {
        self.old_object.as_ref().map(Value::to_string)
    }

    fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<String> {
        self.objects
            .iter()
            .find(|o| {
                field(o, "/apiVersion") == api_version
                    && field(o, "/kind") == kind
                    && field(o, "/metadata/namespace") == namespace
                    && field(o, "/metadata/name") == name
            })
            .map(Value::to_string)
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let selector = LabelSelector::parse(label_selector.unwrap_or_default())?;
        Ok(self
            .objects
            .iter()
            .filter(|o| field(o, "/apiVersion") == api_version && field(o, "/kind") == kind)
            .filter(|o| namespace.is_none_or(|ns| field(o, "/metadata/namespace") == ns))
            .filter(|o| selector.matches(&placement::string_map(o.pointer("/metadata/labels"))))
            .map(Value::to_string)
            .collect())
    }

    fn node_pools(&self) -> Vec<NodePool> {
        self.pools.clone()
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
}

/// Labels (or annotations, or a node selector) from `(key, value)` pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
