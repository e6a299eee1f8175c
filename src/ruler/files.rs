//! The rules directory: one folder per tenant, one file per namespace, as Loki's `local`
//! rule storage lays them out (`<rules-dir>/<tenant>/<namespace>`).
//!
//! Which question it answers: "which rule files are there, did they change, and how does
//! the rules API change them?" [`scan`] lists every file with its size and modification
//! time, so that the ruler reloads only when something changed; [`write_namespace`] and
//! [`delete_namespace`] are the rules API's writes, each atomic (a temporary file renamed
//! over the old one, then the directory synced): a reader sees the old file or the new one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::model::validate_tenant;

/// What identifies a file's version: its length and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub len: u64,
    pub modified: Option<SystemTime>,
}

/// Every namespace file under `dir`: `(tenant, namespace) -> (path, version)`. Hidden files
/// (and the temporary files of writes under way) and folders that are not valid tenant IDs
/// are skipped.
pub fn scan(dir: &Path) -> BTreeMap<(String, String), (PathBuf, Version)> {
    let mut out = BTreeMap::new();
    let Ok(tenants) = fs::read_dir(dir) else {
        return out;
    };
    for t in tenants.flatten() {
        let Ok(tenant) = t.file_name().into_string() else {
            continue;
        };
        if validate_tenant(&tenant).is_err() || !t.path().is_dir() {
            continue;
        }
        let Ok(files) = fs::read_dir(t.path()) else {
            continue;
        };
        for f in files.flatten() {
            let Ok(ns) = f.file_name().into_string() else {
                continue;
            };
            if ns.starts_with('.') {
                continue;
            }
            let Ok(meta) = f.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let version = Version {
                len: meta.len(),
                modified: meta.modified().ok(),
            };
            out.insert((tenant.clone(), ns), (f.path(), version));
        }
    }
    out
}

/// The path of a namespace's file.
pub fn namespace_path(dir: &Path, tenant: &str, namespace: &str) -> PathBuf {
    dir.join(tenant).join(namespace)
}

/// Replaces (or creates) a namespace file with `text`, atomically and durably.
pub fn write_namespace(
    dir: &Path,
    tenant: &str,
    namespace: &str,
    text: &str,
) -> std::io::Result<()> {
    let folder = dir.join(tenant);
    fs::create_dir_all(&folder)?;
    let tmp = folder.join(format!(".{namespace}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, folder.join(namespace))?;
    fs::File::open(&folder)?.sync_all()
}

/// Removes a namespace file; `Ok(false)` when there was none.
pub fn delete_namespace(dir: &Path, tenant: &str, namespace: &str) -> std::io::Result<bool> {
    let folder = dir.join(tenant);
    match fs::remove_file(folder.join(namespace)) {
        Ok(()) => {
            fs::File::open(&folder)?.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` atomically and durably (the ruler's state files).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(folder)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = folder.join(format!(".{name}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_seen_by_scan_and_deletes_remove_them() {
        let dir = tempfile::tempdir().unwrap();
        write_namespace(dir.path(), "team-a", "web.yaml", "groups: []\n").unwrap();
        write_namespace(dir.path(), "team-b", "db", "groups: []\n").unwrap();
        fs::create_dir_all(dir.path().join("bad|tenant")).unwrap();
        fs::write(dir.path().join("bad|tenant/x"), "groups: []").unwrap();
        let files = scan(dir.path());
        let keys: Vec<_> = files.keys().cloned().collect();
        assert_eq!(
            keys,
            vec![
                ("team-a".to_string(), "web.yaml".to_string()),
                ("team-b".to_string(), "db".to_string())
            ]
        );
        assert!(delete_namespace(dir.path(), "team-a", "web.yaml").unwrap());
        assert!(!delete_namespace(dir.path(), "team-a", "web.yaml").unwrap());
        assert_eq!(scan(dir.path()).len(), 1);
    }

    #[test]
    fn a_rewrite_changes_the_version() {
        let dir = tempfile::tempdir().unwrap();
        write_namespace(dir.path(), "t", "n", "groups: []\n").unwrap();
        let before = scan(dir.path());
        write_namespace(dir.path(), "t", "n", "groups: []\n# more\n").unwrap();
        assert_ne!(before, scan(dir.path()));
    }
}
