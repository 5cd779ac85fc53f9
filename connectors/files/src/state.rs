//! The source's position and the manifests used to diff changed files.
//!
//! The position (stored by every sink with its data) records, per table and
//! file, which content (by digest) has been applied and how far. A manifest
//! lists, for one table and one file content, every row's key and content
//! hash. Manifests are addressed by that content digest, so writing one early
//! is always safe; one is deleted only when no acknowledged or pending
//! position refers to it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use extsort::Sortable;
use serde::{Deserialize, Serialize};

use crate::diff::key_id;
use crate::error::FilesError;
use crate::spill::Spill;

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
    /// Contents of this file that a sink further ahead holds (a restart
    /// resumed from a sink behind it): the file is read again and diffed
    /// against every key any of them may have put in the targets, so each
    /// sink ends with the file as it is now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
}

/// The whole source position state: table → relative path → file state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesState {
    /// Files per table.
    pub tables: BTreeMap<String, BTreeMap<String, FileState>>,
    /// The run's generation (see `syncline_engine::connector::Start`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FilesState {
    /// Every (table, digest) this state refers to.
    pub fn digests(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (table, files) in &self.tables {
            for f in files.values() {
                for d in f.contents() {
                    out.insert((table.clone(), d.to_owned()));
                }
            }
        }
        out
    }

    /// Takes in what `ahead` (the state of a sink further ahead than this
    /// one) holds: every file on which the two differ is to be read again
    /// against the contents of both (see [`FileState::also`]), and a file
    /// only `ahead` knows is taken with its contents to diff against.
    pub fn hold_also(&mut self, ahead: &FilesState) {
        for (table, files) in &ahead.tables {
            let ours = self.tables.entry(table.clone()).or_default();
            for (rel, theirs) in files {
                match ours.get_mut(rel) {
                    Some(mine) if mine == theirs => {}
                    Some(mine) => {
                        for d in theirs.contents() {
                            if !mine.contents().any(|m| m == d) {
                                mine.also.push(d.to_owned());
                            }
                        }
                        mine.done = false;
                    }
                    None => {
                        let mut taken = theirs.clone();
                        taken.also = theirs.contents().map(str::to_owned).collect();
                        taken.done = false;
                        ours.insert(rel.clone(), taken);
                    }
                }
            }
        }
    }
}

impl FileState {
    /// The contents whose rows the targets may hold from this file: the
    /// one applied (or being applied), the one it is diffed against, and
    /// those a sink further ahead holds.
    pub fn contents(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.digest.as_str())
            .chain(self.base.as_deref())
            .chain(self.also.iter().map(String::as_str))
            .filter(|d| !d.is_empty())
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
    /// Keys (as JSON) the content holds more than once: none of their rows
    /// was kept, so the targets do not hold them from this content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
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

    fn path(&self, table: &str, digest: &str, kind: &str) -> PathBuf {
        self.dir.join(format!("{table}-{digest}.{kind}"))
    }

    /// A manifest written as a file streams: each entry as it is read. It
    /// is written beside what earlier reads of the content that were cut
    /// short wrote, which stays as it is until the new manifest is
    /// finished: until [`ManifestWriter::finish`], [`ManifestStore::read`]
    /// gives the entries of all of them (the keys any of the reads may have
    /// put in the targets).
    /// The keys of a `keyed` table's rows are sorted as they are written,
    /// to find those written more than once
    /// ([`ManifestWriter::duplicate_keys`]).
    pub fn writer(
        &self,
        table: &str,
        digest: &str,
        keyed: bool,
    ) -> Result<ManifestWriter, FilesError> {
        let (partial, rewrite) = (
            self.path(table, digest, PARTIAL),
            self.path(table, digest, REWRITE),
        );
        // An earlier read cut short: its entries join those of the reads
        // cut short before it, and a new rewrite begins.
        if let Ok(mut earlier) = std::fs::File::open(&rewrite) {
            let fail = |e: std::io::Error| FilesError::State {
                path: partial.clone(),
                detail: e.to_string(),
            };
            let mut into = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&partial)
                .map_err(fail)?;
            // A line the crash cut short is ended, so it cannot join the
            // next one.
            std::io::Write::write_all(&mut into, b"\n").map_err(fail)?;
            std::io::copy(&mut earlier, &mut into).map_err(fail)?;
            std::io::Write::write_all(&mut into, b"\n").map_err(fail)?;
        }
        let current = rewrite;
        let file = std::fs::File::create(&current).map_err(|e| FilesError::State {
            path: current.clone(),
            detail: e.to_string(),
        })?;
        let spill = self.spill_dir()?;
        let sort_dir = tempfile::Builder::new()
            .prefix("keys")
            .tempdir_in(&spill)
            .map_err(|e| FilesError::State {
                path: spill.clone(),
                detail: e.to_string(),
            })?;
        let ids = keyed.then(|| {
            Spill::new(
                ID_SEGMENT,
                sort_dir.path().to_path_buf(),
                KeyId::order as IdOrder,
            )
        });
        Ok(ManifestWriter {
            out: std::io::BufWriter::with_capacity(1 << 16, file),
            current,
            partial,
            done: self.path(table, digest, DONE),
            ids,
            _sort_dir: sort_dir,
        })
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A folder beside the manifests for what a diff spills to disk
    /// (created).
    pub fn spill_dir(&self) -> Result<PathBuf, FilesError> {
        let dir = self.dir.join("spill");
        std::fs::create_dir_all(&dir).map_err(|e| FilesError::State {
            path: dir.clone(),
            detail: e.to_string(),
        })?;
        Ok(dir)
    }

    /// Whether a manifest of the content is present (finished, earlier
    /// version's, or a read cut short).
    pub fn exists(&self, table: &str, digest: &str) -> bool {
        [DONE, LEGACY, PARTIAL, REWRITE]
            .iter()
            .any(|kind| self.path(table, digest, kind).exists())
    }

    /// The entries of a content's manifest, in order, read as a stream
    /// (never all in memory, an earlier version's JSON manifest excepted):
    /// a finished one, else one written by an earlier version, else what
    /// the reads cut short wrote.
    pub fn entries(&self, table: &str, digest: &str) -> Box<dyn Iterator<Item = Entry> + Send> {
        if let Ok(file) = std::fs::File::open(self.path(table, digest, DONE)) {
            return Box::new(line_entries(file));
        }
        if let Ok(bytes) = std::fs::read(self.path(table, digest, LEGACY)) {
            let m: Manifest = serde_json::from_slice(&bytes).unwrap_or_default();
            return Box::new(
                m.rows
                    .into_iter()
                    .map(|(key, hash)| Entry::Row { key, hash })
                    .chain(m.rejected.into_iter().map(Entry::Rejected))
                    .chain(m.refused.into_iter().map(Entry::Refused)),
            );
        }
        let files: Vec<std::fs::File> = [PARTIAL, REWRITE]
            .iter()
            .filter_map(|kind| std::fs::File::open(self.path(table, digest, kind)).ok())
            .collect();
        Box::new(files.into_iter().flat_map(line_entries))
    }

    /// Deletes every manifest not in `keep`.
    pub fn retain(&self, keep: &BTreeSet<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let keep: BTreeSet<String> = keep
            .iter()
            .flat_map(|(t, d)| {
                [DONE, LEGACY, PARTIAL, REWRITE].map(|kind| format!("{t}-{d}.{kind}"))
            })
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A finished manifest's file extension.
const DONE: &str = "manifest";
/// Key ids [`ManifestWriter`] sorts in memory before it writes a sorted
/// segment of them to disk: 8 MB. One less than a power of two: the sort
/// writes once it holds one more than this, and a buffer of a power of two
/// is full then, not doubled.
const ID_SEGMENT: usize = (1 << 19) - 1;
/// The entries of reads of a content that were cut short.
const PARTIAL: &str = "partial";
/// A manifest written whole as JSON by earlier versions.
const LEGACY: &str = "json";
/// A manifest being written, beside the partial one.
const REWRITE: &str = "rewrite";

/// A row key's id ([`key_id`]), as an external sort holds it.
struct KeyId(u128);

/// How [`KeyId`]s are ordered.
type IdOrder = fn(&KeyId, &KeyId) -> std::cmp::Ordering;

impl KeyId {
    fn order(a: &KeyId, b: &KeyId) -> std::cmp::Ordering {
        a.0.cmp(&b.0)
    }
}

impl Sortable for KeyId {
    fn encode<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.0.to_le_bytes())
    }

    fn decode<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        let mut bytes = [0u8; 16];
        r.read_exact(&mut bytes)?;
        Ok(KeyId(u128::from_le_bytes(bytes)))
    }
}

/// Writes one manifest entry per line: `<hash> <key as JSON>` for a row,
/// `! <hash>` for a rejected record (JSON escapes line breaks, so a key
/// never spans lines).
pub struct ManifestWriter {
    out: std::io::BufWriter<std::fs::File>,
    /// The file written to (the rewrite beside the partial manifest).
    current: PathBuf,
    partial: PathBuf,
    done: PathBuf,
    /// The id of every row's key written (a keyed table's), sorted as they
    /// come (segments spill to `_sort_dir`), so that keys written more than
    /// once are found in a few MB whatever the file's size; taken by
    /// [`ManifestWriter::duplicate_keys`].
    ids: Option<Spill<KeyId, IdOrder>>,
    _sort_dir: tempfile::TempDir,
}

impl std::fmt::Debug for ManifestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestWriter")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl ManifestWriter {
    fn fail(&self, e: &std::io::Error) -> FilesError {
        FilesError::State {
            path: self.current.clone(),
            detail: e.to_string(),
        }
    }

    /// A good row's key and content hash.
    pub fn row(&mut self, key: &str, hash: u64) -> Result<(), FilesError> {
        use std::io::Write as _;
        if let Some(ids) = self.ids.as_mut() {
            ids.push(KeyId(key_id(key)))
                .map_err(|e| FilesError::State {
                    path: self.current.clone(),
                    detail: format!("sorting the keys of the manifest: {e}"),
                })?;
        }
        writeln!(self.out, "{hash:016x} {key}").map_err(|e| self.fail(&e))
    }

    /// A rejected record's hash.
    pub fn rejected(&mut self, hash: u64) -> Result<(), FilesError> {
        use std::io::Write as _;
        writeln!(self.out, "! {hash:016x}").map_err(|e| self.fail(&e))
    }

    /// A key the content holds more than once (see [`Manifest::refused`]).
    pub fn refused(&mut self, key: &str) -> Result<(), FilesError> {
        use std::io::Write as _;
        writeln!(self.out, "x {key}").map_err(|e| self.fail(&e))
    }

    /// The keys of the rows written, each written more than once, in key
    /// order with how many times. The ids of the keys, sorted as they were
    /// written, show which repeat; those keys are then counted by their
    /// text in one more pass over the manifest (an id two keys share is
    /// not taken for a repeat). Called once, after the last row: later
    /// calls find none.
    pub fn duplicate_keys(&mut self) -> Result<Vec<(String, u64)>, FilesError> {
        self.flush()?;
        let Some(ids) = self.ids.take() else {
            return Ok(Vec::new());
        };
        let fail = |e: std::io::Error| FilesError::State {
            path: self.current.clone(),
            detail: format!("sorting the keys of the manifest: {e}"),
        };
        let mut repeated = HashSet::new();
        let mut last = None;
        // A filler id, if any, is one more id: at most a false repeat,
        // which the count by text below drops.
        for id in ids.done(|| KeyId(u128::MAX)).map_err(fail)? {
            let id = id.map_err(fail)?.0;
            if last == Some(id) {
                repeated.insert(id);
            }
            last = Some(id);
        }
        if repeated.is_empty() {
            return Ok(Vec::new());
        }
        let file = std::fs::File::open(&self.current).map_err(|e| self.fail(&e))?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for entry in line_entries(file) {
            if let Entry::Row { key, .. } = entry
                && repeated.contains(&key_id(&key))
            {
                *counts.entry(key).or_default() += 1;
            }
        }
        Ok(counts.into_iter().filter(|(_, n)| *n > 1).collect())
    }

    /// Hands what was written to the system, so that a process killed
    /// after a batch that needs these entries went out still has them.
    pub fn flush(&mut self) -> Result<(), FilesError> {
        use std::io::Write as _;
        self.out.flush().map_err(|e| self.fail(&e))
    }

    /// The manifest is whole: it becomes the content's manifest.
    pub fn finish(mut self) -> Result<(), FilesError> {
        self.flush()?;
        std::fs::rename(&self.current, &self.done).map_err(|e| self.fail(&e))?;
        // What the cut-short reads wrote is in the whole one now.
        let _ = std::fs::remove_file(&self.partial);
        Ok(())
    }
}

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A good row: its key (as JSON) and content hash.
    Row { key: String, hash: u64 },
    /// A rejected record's hash.
    Rejected(u64),
    /// A key the content holds more than once.
    Refused(String),
}

/// The entries of a manifest file as a stream, up to a line a crash cut
/// short.
fn line_entries(file: std::fs::File) -> impl Iterator<Item = Entry> + Send {
    use std::io::BufRead as _;
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| !line.is_empty())
        .map_while(|line| {
            if let Some(key) = line.strip_prefix("x ") {
                Some(Entry::Refused(key.to_owned()))
            } else if let Some(hash) = line.strip_prefix("! ") {
                u64::from_str_radix(hash, 16).ok().map(Entry::Rejected)
            } else {
                let (hash, key) = line.split_once(' ')?;
                let hash = u64::from_str_radix(hash, 16).ok()?;
                Some(Entry::Row {
                    key: key.to_owned(),
                    hash,
                })
            }
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Keys written more than once are found exactly, with their counts in
    /// key order, when the ids spill to disk in several sorted segments;
    /// the manifest keeps every line.
    #[test]
    fn keys_written_more_than_once_are_found_across_spilled_segments() {
        let dir = tempfile::tempdir().unwrap();
        let store = ManifestStore::open(dir.path()).unwrap();
        let mut w = store.writer("items", "d1", true).unwrap();
        let rows = ID_SEGMENT * 2 + 10;
        for i in 0..rows {
            w.row(&format!("[{i}]"), i as u64).unwrap();
            if i == 7 || i == ID_SEGMENT + 3 {
                // Again at once, and again in a later segment.
                w.row(&format!("[{i}]"), 1).unwrap();
            }
        }
        w.row("[7]", 2).unwrap();
        w.row("[\"a \\\"b\\\"\"]", 0).unwrap();
        w.rejected(5).unwrap();
        w.row("[\"a \\\"b\\\"\"]", 0).unwrap();
        let found = w.duplicate_keys().unwrap();
        assert_eq!(
            found,
            vec![
                ("[\"a \\\"b\\\"\"]".to_owned(), 2),
                (format!("[{}]", ID_SEGMENT + 3), 2),
                ("[7]".to_owned(), 3),
            ]
        );
        assert!(w.duplicate_keys().unwrap().is_empty());
        w.finish().unwrap();
        let written = store.entries("items", "d1").count();
        assert_eq!(written, rows + 6);
    }

    /// A repeat is found when the last row written fills a sorted segment
    /// exactly (the sort then holds nothing in memory and everything on
    /// disk).
    #[test]
    fn a_repeat_is_found_when_the_last_row_fills_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let store = ManifestStore::open(dir.path()).unwrap();
        let mut w = store.writer("items", "d1", true).unwrap();
        let rows = 2 * (ID_SEGMENT + 1);
        for i in 0..rows - 1 {
            w.row(&format!("[{i}]"), 0).unwrap();
        }
        w.row("[3]", 1).unwrap();
        assert_eq!(w.duplicate_keys().unwrap(), vec![("[3]".to_owned(), 2)]);
    }
}
