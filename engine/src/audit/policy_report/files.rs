//! Report objects written to a directory, one YAML file per object:
//! `<kind>.<namespace>.<name>.yaml` for namespaced reports and
//! `<kind>.<name>.yaml` for cluster reports (kind in lower case). Files of the
//! same naming left by an earlier run and not rewritten now are removed, so
//! the directory always holds exactly the current reports (with `-n`, of that
//! namespace and the cluster).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Flavour, NAME_PREFIX, ReportObject};

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Stale files removed.
    pub removed: Vec<PathBuf>,
}

/// Why the reports could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Error {
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// The file name of a report object.
pub fn file_name(flavour: Flavour, object: &ReportObject) -> String {
    let kind = flavour.kind(object.namespace.is_some()).to_lowercase();
    match &object.namespace {
        Some(ns) => format!("{kind}.{ns}.{}.yaml", object.name),
        None => format!("{kind}.{}.yaml", object.name),
    }
}

/// Write `objects` into `dir` (created if missing) and remove stale reports:
/// of every namespace, or with `namespace` (an audit restricted by `-n`) of
/// that namespace and the cluster only.
///
/// # Errors
/// The directory or a file cannot be written or removed.
pub fn write(
    dir: &Path,
    flavour: Flavour,
    objects: &[ReportObject],
    namespace: Option<&str>,
) -> Result<Written, Error> {
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error { path, source }
    };
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let mut done = Written::default();
    let mut names = BTreeSet::new();
    for object in objects {
        let name = file_name(flavour, object);
        let path = dir.join(&name);
        let text = serde_saphyr::to_string(&object.object)
            .map_err(|e| at(&path)(std::io::Error::other(e)))?;
        std::fs::write(&path, text).map_err(at(&path))?;
        names.insert(name);
        done.written.push(path);
    }
    let namespaced = match namespace {
        Some(ns) => format!("{}.{ns}.", flavour.kind(true).to_lowercase()),
        None => format!("{}.", flavour.kind(true).to_lowercase()),
    };
    let prefixes = [
        namespaced,
        format!("{}.", flavour.kind(false).to_lowercase()),
    ];
    for entry in std::fs::read_dir(dir).map_err(at(dir))? {
        let path = entry.map_err(at(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let ours = prefixes.iter().any(|p| name.starts_with(p.as_str()))
            && name.contains(NAME_PREFIX)
            && name.ends_with(".yaml");
        if ours && !names.contains(name) {
            std::fs::remove_file(&path).map_err(at(&path))?;
            done.removed.push(path);
        }
    }
    Ok(done)
}
