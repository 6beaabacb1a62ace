//! A cluster read from files: a file or a directory tree of multi-document
//! YAML or JSON, `kind: List` (as `kubectl get -A -o yaml` writes) included.
//!
//! Loading never fails because of one bad document: an unreadable file, an
//! invalid YAML or JSON document, or an object without `apiVersion`, `kind` or
//! `metadata.name` becomes a [`LoadWarning`] naming the file and the document,
//! and everything else is loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tollgate_sdk::model::NodePool;
use tollgate_sdk::placement::string_map;
use tollgate_sdk::selector::LabelSelector;

use super::pools::{self, Autoscaler};
use super::{ClusterView, group};

/// Files larger than this are skipped with a warning.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Why a snapshot could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path does not exist or cannot be read.
    #[error("{path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Something skipped while loading.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadWarning {
    /// The file.
    pub file: PathBuf,
    /// The 1-based document number in the file, when it concerns one document.
    pub document: Option<usize>,
    /// What was wrong.
    pub message: String,
}

impl std::fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.document {
            Some(n) => write!(
                f,
                "{} (document {n}): {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Objects loaded from files, indexed for lookups.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    objects: Vec<Arc<Value>>,
    by_kind: HashMap<(String, String), Vec<usize>>,
    by_namespace: HashMap<(String, String, String), Vec<usize>>,
    by_name: HashMap<(String, String, String, String), usize>,
    pools: Vec<NodePool>,
    autoscaler: Option<Autoscaler>,
    warnings: Vec<LoadWarning>,
}

impl Snapshot {
    /// Load a file or directory tree.
    ///
    /// # Errors
    /// Only when `path` itself cannot be read; bad files and documents inside
    /// become warnings.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let meta = std::fs::metadata(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        let mut files = Vec::new();
        if meta.is_dir() {
            collect_files(path, &mut files).map_err(|source| Error::Read {
                path: path.into(),
                source,
            })?;
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        let mut objects = Vec::new();
        let mut warnings = Vec::new();
        for file in files {
            read_file(&file, &mut objects, &mut warnings);
        }
        let mut snapshot = Snapshot::from_objects(objects);
        snapshot.warnings.extend(warnings);
        Ok(snapshot)
    }

    /// Parse objects from text (YAML or JSON, multi-document, Lists expanded),
    /// naming `origin` in warnings.
    pub fn parse_documents(origin: &Path, text: &str) -> (Vec<Value>, Vec<LoadWarning>) {
        let mut objects = Vec::new();
        let mut warnings = Vec::new();
        parse_text(origin, text, &mut objects, &mut warnings);
        (objects, warnings)
    }

    /// Index objects; discover node pools from the cluster-autoscaler Deployment.
    pub fn from_objects(objects: Vec<Value>) -> Self {
        let mut snapshot = Snapshot::default();
        for object in objects {
            snapshot.insert(object);
        }
        snapshot.autoscaler = pools::discover(snapshot.objects.iter().map(|o| o.as_ref()));
        snapshot.pools = snapshot
            .autoscaler
            .as_ref()
            .map(|a| a.pools.clone())
            .unwrap_or_default();
        snapshot
    }

    fn insert(&mut self, object: Value) {
        let api_version = str_at(&object, "/apiVersion");
        let key = (group(&api_version).to_string(), str_at(&object, "/kind"));
        let name_key = (
            key.0.clone(),
            key.1.clone(),
            str_at(&object, "/metadata/namespace"),
            str_at(&object, "/metadata/name"),
        );
        let index = match self.by_name.get(&name_key) {
            // A later document with the same identity replaces the earlier one.
            Some(&i) => {
                self.objects[i] = Arc::new(object);
                return;
            }
            None => self.objects.len(),
        };
        self.objects.push(Arc::new(object));
        self.by_kind.entry(key).or_default().push(index);
        self.by_namespace
            .entry((name_key.0.clone(), name_key.1.clone(), name_key.2.clone()))
            .or_default()
            .push(index);
        self.by_name.insert(name_key, index);
    }

    /// Replace the discovered pools by merging in declared ones.
    pub fn declare_pools(&mut self, declared: Vec<NodePool>) {
        self.pools = pools::merge(std::mem::take(&mut self.pools), declared);
    }

    /// Every object, in load order.
    pub fn objects(&self) -> &[Arc<Value>] {
        &self.objects
    }

    /// Objects of one kind (any group).
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.by_kind
            .iter()
            .filter(move |((_, k), _)| k == kind)
            .flat_map(|(_, idx)| idx.iter().map(|&i| &self.objects[i]))
    }

    /// The cluster-autoscaler Deployment's facts, if one was found.
    pub fn autoscaler(&self) -> Option<&Autoscaler> {
        self.autoscaler.as_ref()
    }

    /// What was skipped while loading.
    pub fn warnings(&self) -> &[LoadWarning] {
        &self.warnings
    }

    /// Whether no node pool is known (neither discovered nor declared).
    pub fn has_pools(&self) -> bool {
        !self.pools.is_empty()
    }
}

impl ClusterView for Snapshot {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let key = (
            group(api_version).to_string(),
            kind.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        self.by_name.get(&key).map(|&i| self.objects[i].clone())
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> Vec<Arc<Value>> {
        let indices = match namespace {
            Some(ns) => self.by_namespace.get(&(
                group(api_version).to_string(),
                kind.to_string(),
                ns.to_string(),
            )),
            None => self
                .by_kind
                .get(&(group(api_version).to_string(), kind.to_string())),
        };
        indices
            .into_iter()
            .flatten()
            .map(|&i| &self.objects[i])
            .filter(|o| {
                selector.requirements.is_empty()
                    || selector
                        .matches(&string_map(o.get("metadata").and_then(|m| m.get("labels"))))
            })
            .cloned()
            .collect()
    }

    fn node_pools(&self) -> &[NodePool] {
        &self.pools
    }
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

fn read_file(file: &Path, objects: &mut Vec<Value>, warnings: &mut Vec<LoadWarning>) {
    let warn = |message: String| LoadWarning {
        file: file.to_path_buf(),
        document: None,
        message,
    };
    match std::fs::metadata(file) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            warnings.push(warn(format!(
                "skipped: {} bytes is over the {MAX_FILE_BYTES}-byte limit",
                m.len()
            )));
            return;
        }
        Err(e) => {
            warnings.push(warn(format!("unreadable: {e}")));
            return;
        }
        Ok(_) => {}
    }
    match std::fs::read_to_string(file) {
        Ok(text) => parse_text(file, &text, objects, warnings),
        Err(e) => warnings.push(warn(format!("unreadable: {e}"))),
    }
}

fn parse_text(file: &Path, text: &str, objects: &mut Vec<Value>, warnings: &mut Vec<LoadWarning>) {
    for (n, (first_line, doc)) in split_documents(text).into_iter().enumerate() {
        let document = n + 1;
        let warn = |message: String| LoadWarning {
            file: file.to_path_buf(),
            document: Some(document),
            message,
        };
        let value = if doc.trim_start().starts_with(['{', '[']) {
            serde_json::from_str::<Value>(doc).map_err(|e| format!("invalid JSON: {e}"))
        } else {
            serde_saphyr::from_str::<Option<Value>>(doc)
                .map(|v| v.unwrap_or(Value::Null))
                .map_err(|e| {
                    format!(
                        "invalid YAML (document starts at line {first_line}): {}",
                        one_line(&e.to_string())
                    )
                })
        };
        match value {
            Ok(Value::Null) => {}
            Ok(value) => expand(value, &warn, objects, warnings),
            Err(message) => warnings.push(warn(message)),
        }
    }
}

/// Expand Lists (typed or `kind: List`) and check each object's identity.
fn expand(
    value: Value,
    warn: &dyn Fn(String) -> LoadWarning,
    objects: &mut Vec<Value>,
    warnings: &mut Vec<LoadWarning>,
) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind.ends_with("List") && value.get("items").is_some_and(Value::is_array) {
        let api_version = value.get("apiVersion").cloned();
        let item_kind = kind
            .strip_suffix("List")
            .filter(|k| !k.is_empty())
            .map(str::to_string);
        let Value::Object(mut map) = value else {
            return;
        };
        let Some(Value::Array(items)) = map.remove("items") else {
            return;
        };
        for mut item in items {
            if let Value::Object(m) = &mut item {
                if let Some(k) = &item_kind
                    && !m.contains_key("kind")
                {
                    m.insert("kind".into(), Value::String(k.clone()));
                    if let Some(v) = &api_version {
                        m.entry("apiVersion").or_insert(v.clone());
                    }
                }
            }
            expand(item, warn, objects, warnings);
        }
        return;
    }
    let missing: Vec<&str> = [
        ("apiVersion", "/apiVersion"),
        ("kind", "/kind"),
        ("metadata.name", "/metadata/name"),
    ]
    .into_iter()
    .filter(|(_, p)| {
        value
            .pointer(p)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    })
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        let what = describe(&value);
        warnings.push(warn(format!(
            "skipped {what}: missing {}",
            missing.join(", ")
        )));
        return;
    }
    objects.push(value);
}

fn describe(value: &Value) -> String {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    match value.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_string(),
    }
}

/// Split YAML text on `---` document markers; each non-empty document with
/// its first line number.
pub fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs.into_iter()
        .filter(|(_, d)| !d.trim().is_empty())
        .collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_documents_are_skipped_with_a_warning() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n---\napiVersion: v1\nkind: Pod\nmetadata: {namespace: a}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n";
        let (objects, warnings) = Snapshot::parse_documents(Path::new("x.yaml"), text);
        assert_eq!(objects.len(), 2, "{warnings:?}");
        assert_eq!(warnings.len(), 2);
        assert_eq!(warnings[0].document, Some(2));
        assert!(
            warnings[0].message.contains("invalid YAML"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].message.contains("missing metadata.name"),
            "{}",
            warnings[1]
        );
        assert!(warnings[1].to_string().starts_with("x.yaml (document 3)"));
    }
}
