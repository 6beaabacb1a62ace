//! A small RFC 6902 JSON Patch builder for policies that mutate.
//!
//! Paths are JSON pointers; use [`pointer`] to join segments so that keys such
//! as `cluster-autoscaler.kubernetes.io/safe-to-evict` are escaped (`/` as `~1`).

use serde_json::{Value, json};

/// A JSON Patch under construction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    ops: Vec<Value>,
}

impl Patch {
    /// An empty patch.
    pub fn new() -> Self {
        Patch::default()
    }

    /// `add` `value` at `path`.
    pub fn add(&mut self, path: impl Into<String>, value: Value) -> &mut Self {
        self.ops
            .push(json!({"op": "add", "path": path.into(), "value": value}));
        self
    }

    /// `replace` the value at `path`.
    pub fn replace(&mut self, path: impl Into<String>, value: Value) -> &mut Self {
        self.ops
            .push(json!({"op": "replace", "path": path.into(), "value": value}));
        self
    }

    /// `remove` the value at `path`.
    pub fn remove(&mut self, path: impl Into<String>) -> &mut Self {
        self.ops.push(json!({"op": "remove", "path": path.into()}));
        self
    }

    /// Whether the patch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations.
    pub fn ops(&self) -> &[Value] {
        &self.ops
    }

    /// The patch as JSON text, or `None` when empty.
    pub fn to_json(&self) -> Option<String> {
        (!self.ops.is_empty()).then(|| Value::Array(self.ops.clone()).to_string())
    }
}

/// Escape one JSON-pointer segment (`~` as `~0`, `/` as `~1`).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Join a base pointer and raw (unescaped) segments.
pub fn pointer(base: &str, segments: &[&str]) -> String {
    let mut out = base.to_string();
    for s in segments {
        out.push('/');
        out.push_str(&escape(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_annotation_keys() {
        assert_eq!(
            pointer("/spec/template", &["metadata", "annotations", "a.io/b~c"]),
            "/spec/template/metadata/annotations/a.io~1b~0c"
        );
        let mut p = Patch::new();
        assert_eq!(p.to_json(), None);
        p.add("/a", json!(1));
        assert_eq!(
            p.to_json().unwrap(),
            r#"[{"op":"add","path":"/a","value":1}]"#
        );
    }
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError(pub String);

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ApplyError {}

/// Apply `add`, `replace` and `remove` operations (what policies emit) to a
/// document: in native tests, and in policies that judge the object as their
/// own patch would leave it. The engine applies patches with a full RFC 6902
/// implementation.
///
/// # Errors
/// An operation whose parent path does not exist, or an unsupported op.
pub fn apply(doc: &mut Value, ops: &[Value]) -> Result<(), ApplyError> {
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let (parent, last) = path
            .rsplit_once('/')
            .ok_or_else(|| ApplyError(format!("bad path {path}")))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = doc
            .pointer_mut(parent)
            .ok_or_else(|| ApplyError(format!("no parent for {path}")))?;
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match (kind, target) {
            ("add", Value::Array(a)) if last == "-" => a.push(value),
            ("add", Value::Array(a)) => {
                let i: usize = last
                    .parse()
                    .map_err(|_| ApplyError(format!("bad index in {path}")))?;
                if i > a.len() {
                    return Err(ApplyError(format!("index out of range in {path}")));
                }
                a.insert(i, value);
            }
            ("add" | "replace", Value::Object(m)) => {
                m.insert(last, value);
            }
            ("replace", Value::Array(a)) => {
                let slot = last.parse::<usize>().ok().and_then(|i| a.get_mut(i));
                *slot.ok_or_else(|| ApplyError(format!("no element at {path}")))? = value;
            }
            ("remove", Value::Object(m)) => {
                m.remove(&last)
                    .ok_or_else(|| ApplyError(format!("nothing to remove at {path}")))?;
            }
            ("remove", Value::Array(a)) => {
                let i = last.parse::<usize>().ok().filter(|i| *i < a.len());
                a.remove(i.ok_or_else(|| ApplyError(format!("no element at {path}")))?);
            }
            (other, _) => return Err(ApplyError(format!("cannot {other} at {path}"))),
        }
    }
    Ok(())
}
