//! The policies the installed server and audit load: bundled packs by name,
//! and local policy files packaged into a ConfigMap mounted into the pods
//! (the server reloads a mounted directory when the ConfigMap changes).

use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::pod::POLICIES_MOUNT;
use super::{Ctx, Error, Manifest, files, names};
use crate::pack;

/// The largest ConfigMap payload accepted (the API server stores objects of
/// at most 1 MiB; this leaves room for the metadata).
pub const MAX_CONFIGMAP_BYTES: usize = 1_000_000;

/// Resolved `--policies`.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Bundled packs, by name.
    pub packs: Vec<String>,
    /// Local policy files: (file name, contents), sorted by name.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Policies {
    /// Resolve `--policies` values: a bundled pack name, a policy file, or a
    /// directory of them (its `.wasm`, `.yaml`, `.yml` and `.json` files).
    ///
    /// # Errors
    /// Unreadable files, two files with the same name, or more than
    /// [`MAX_CONFIGMAP_BYTES`] in all.
    pub fn resolve(specs: &[String]) -> Result<Self, Error> {
        let mut policies = Policies::default();
        for spec in specs {
            let path = Path::new(spec);
            let problem = |message: String| Error::Policies {
                spec: spec.clone(),
                message,
            };
            if !path.exists() && pack::policies(spec).is_some() {
                policies.packs.push(spec.clone());
                continue;
            }
            let paths = if path.is_dir() {
                let mut entries: Vec<_> = std::fs::read_dir(path)
                    .map_err(|e| problem(e.to_string()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_file()
                            && matches!(
                                p.extension().and_then(|e| e.to_str()),
                                Some("wasm" | "yaml" | "yml" | "json")
                            )
                    })
                    .collect();
                entries.sort();
                entries
            } else {
                vec![path.to_path_buf()]
            };
            for file in paths {
                let name = file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| {
                        n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                    })
                    .ok_or_else(|| {
                        problem(format!(
                            "{}: a ConfigMap key must be letters, digits, '-', '_' or '.'",
                            file.display()
                        ))
                    })?
                    .to_string();
                let bytes = std::fs::read(&file)
                    .map_err(|e| problem(format!("{}: {e}", file.display())))?;
                if policies.files.iter().any(|(n, _)| *n == name) {
                    return Err(problem(format!(
                        "two policy files are named {name}; they share one ConfigMap"
                    )));
                }
                policies.files.push((name, bytes));
            }
        }
        policies.files.sort_by(|a, b| a.0.cmp(&b.0));
        let total: usize = policies.files.iter().map(|(n, b)| n.len() + b.len()).sum();
        if total > MAX_CONFIGMAP_BYTES {
            return Err(Error::Policies {
                spec: specs.join(" "),
                message: format!(
                    "the local policy files hold {total} bytes, more than the {MAX_CONFIGMAP_BYTES} a ConfigMap can carry; \
                     build them into the image and name their path instead"
                ),
            });
        }
        Ok(policies)
    }

    /// The `--policies` values inside the pods.
    pub fn args(&self) -> Vec<String> {
        let mut args = self.packs.clone();
        if !self.files.is_empty() {
            args.push(POLICIES_MOUNT.to_string());
        }
        args
    }
}

/// The ConfigMap with the local policy files (text as `data`, the rest as
/// `binaryData`), when there are any.
pub fn manifests(ctx: &Ctx<'_>) -> Vec<Manifest> {
    let packaged = &ctx.settings.policies.files;
    if ctx.chart || packaged.is_empty() {
        return Vec::new();
    }
    let mut data = Map::new();
    let mut binary = Map::new();
    for (name, bytes) in packaged {
        match std::str::from_utf8(bytes) {
            Ok(text) if !name.ends_with(".wasm") => {
                data.insert(name.clone(), json!(text));
            }
            _ => {
                binary.insert(
                    name.clone(),
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
                );
            }
        }
    }
    let mut object = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(names::POLICIES_CONFIGMAP, "policies"),
    });
    if !data.is_empty() {
        object["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        object["binaryData"] = Value::Object(binary);
    }
    vec![Manifest {
        file: files::WEBHOOK,
        when: None,
        object,
    }]
}
