//! Change detection by polling: a [`Stamp`] records each watched file's
//! identity (inode, size, modification time, following symlinks, so a
//! Kubernetes Secret volume's `..data` swap counts as a change), and for a
//! directory each of its entries. Two equal stamps mean nothing changed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What one file looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

/// The state of a list of paths at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamp(Vec<(PathBuf, Option<FileStamp>)>);

impl Stamp {
    /// Stamp `paths`: files, and directories with their entries (one level,
    /// sorted). A missing path is recorded as missing.
    pub fn of(paths: &[PathBuf]) -> Self {
        let mut entries = Vec::new();
        for path in paths {
            entries.push((path.clone(), file_stamp(path)));
            if path.is_dir() {
                let mut children: Vec<PathBuf> = std::fs::read_dir(path)
                    .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default();
                children.sort();
                entries.extend(children.into_iter().map(|child| {
                    let stamp = file_stamp(&child);
                    (child, stamp)
                }));
            }
        }
        Stamp(entries)
    }
}

/// Wait, polling every `interval`, for a stamp that differs from both the
/// one in use (`loaded`) and the last one that failed to load (`failed`).
pub async fn next_change(
    interval: Duration,
    loaded: &Stamp,
    failed: Option<&Stamp>,
    stamp: impl Fn() -> Stamp,
) -> Stamp {
    loop {
        tokio::time::sleep(interval).await;
        let now = stamp();
        if &now != loaded && failed != Some(&now) {
            return now;
        }
    }
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: inode(&meta),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_changes_when_a_file_is_replaced_added_or_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "one").expect("write");
        let paths = [dir.path().to_path_buf()];
        let first = Stamp::of(&paths);
        assert_eq!(first, Stamp::of(&paths));
        let replacement = dir.path().join("a.tmp");
        std::fs::write(&replacement, "two").expect("write");
        std::fs::rename(&replacement, &file).expect("rename");
        let second = Stamp::of(&paths);
        assert_ne!(first, second);
        std::fs::write(dir.path().join("b.yaml"), "three").expect("write");
        assert_ne!(second, Stamp::of(&paths));
        std::fs::remove_file(&file).expect("remove");
        assert_ne!(second, Stamp::of(&paths));
    }
}
