//! The source's position and the manifests used to diff changed files.
//!
//! The position (stored by every sink with its data) records, per table and
//! file, which content (by digest) has been applied and how far. A manifest
//! lists, for one table and one file content, every row's key and content
//! hash. Manifests are addressed by that content digest, so writing one early
//! is always safe; one is deleted only when no acknowledged or pending
//! position refers to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::FilesError;

/// How far one file has been applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Content digest being applied (or applied, once `done`).
    pub digest: String,
    /// Digest of the previous content this one is diffed against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// File size when read.
    pub size: u64,
    /// Modification time when read (ns since the epoch).
    pub mtime_ns: i64,
    /// Changes of this content already emitted.
    pub emitted: u64,
    /// Every change of this content has been emitted.
    pub done: bool,
    /// The file as last seen (`size`, `mtime_ns`) could not be read and was
    /// quarantined (a dead letter says why); `digest` is still the last
    /// content that could. Such a file is read again at every start and
    /// whenever it changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantined: bool,
}

/// The whole source position state: table → relative path → file state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesState {
    /// Files per table.
    pub tables: BTreeMap<String, BTreeMap<String, FileState>>,
}

impl FilesState {
    /// Every (table, digest) this state refers to.
    pub fn digests(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (table, files) in &self.tables {
            for f in files.values() {
                out.insert((table.clone(), f.digest.clone()));
                if let Some(b) = &f.base {
                    out.insert((table.clone(), b.clone()));
                }
            }
        }
        out
    }
}

/// One file content's rows: key (as JSON) and content hash, in file order,
/// plus hashes of its rejected records.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// `(key as JSON, row hash)` per good row.
    pub rows: Vec<(String, u64)>,
    /// Hashes of rejected records' raw text.
    pub rejected: Vec<u64>,
}

/// Manifests on disk.
#[derive(Debug, Clone)]
pub struct ManifestStore {
    dir: PathBuf,
}

impl ManifestStore {
    /// A store in `dir` (created).
    pub fn open(dir: &Path) -> Result<Self, FilesError> {
        std::fs::create_dir_all(dir).map_err(|e| FilesError::State {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(ManifestStore {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, table: &str, digest: &str) -> PathBuf {
        self.dir.join(format!("{table}-{digest}.json"))
    }

    /// Writes a manifest atomically (temp file + rename).
    pub fn write(&self, table: &str, digest: &str, manifest: &Manifest) -> Result<(), FilesError> {
        let path = self.path(table, digest);
        if path.exists() {
            return Ok(());
        }
        let err = |e: String| FilesError::State {
            path: self.dir.clone(),
            detail: e,
        };
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec(manifest).map_err(|e| err(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))
    }

    /// Reads a manifest, if present.
    pub fn read(&self, table: &str, digest: &str) -> Option<Manifest> {
        let bytes = std::fs::read(self.path(table, digest)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Deletes every manifest not in `keep`.
    pub fn retain(&self, keep: &BTreeSet<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let keep: BTreeSet<String> = keep.iter().map(|(t, d)| format!("{t}-{d}.json")).collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
