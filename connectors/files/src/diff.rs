//! Diffing a changed file by key against what its earlier content put in
//! the targets, in bounded memory whatever the file's size.
//!
//! Before the content streams out, one pass over it and over the earlier
//! content's manifest feeds an external sort (`extsort`: sorted segments
//! of [`SEGMENT_ENTRIES`] entries spill to disk) by each key's 128-bit
//! hash. Walking the sorted entries a key at a time settles every content
//! row's change (new, changed or the same: one byte per row) and writes the
//! keys the content no longer has to a temporary file. The content then
//! streams as before, each row taking the change settled for its place.

use std::collections::HashSet;
use std::io::{BufRead as _, Read, Seek as _, Write};
use std::path::Path;

use extsort::Sortable;
use syncline_engine::model::{Op, Row, TableSchema};

use crate::error::FilesError;
use crate::format::{self, CsvDialect, FileFormat, Record};
use crate::read::{Elsewhere, key_row, key_string};
use crate::spill::Spill;
use crate::state::{Entry, ManifestStore};

/// Entries a sort holds in memory before it writes a sorted segment to
/// disk (about 60 bytes each, with a base row's key).
const SEGMENT_ENTRIES: usize = 500_000;

/// What a changed file is diffed against.
#[derive(Debug, Clone)]
pub(crate) struct Diff {
    /// The earlier contents (by digest) whose manifests are the base.
    pub(crate) base: Vec<String>,
    /// Several contents merged (a diff cut short, or a sink further ahead):
    /// every key of them is taken as present with a row that differs.
    pub(crate) merged: bool,
    /// The contents of the table's other files: a key one of them holds
    /// stays when this file no longer has it.
    pub(crate) others: Vec<String>,
}

/// A key's 128-bit hash: the identity a diff sorts and matches keys by.
pub(crate) fn key_id(key: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key.as_bytes())
}

/// The earlier content's row of a key (its place among the base rows), a
/// key it held more than once, or a row of the content.
const BASE_ROW: u8 = 0;
const BASE_REFUSED: u8 = 1;
const CONTENT_ROW: u8 = 2;
/// Not an entry: what [`Spill::done`] may add.
const FILLER: u8 = 3;

/// One entry of the sort.
#[derive(Debug)]
struct Keyed {
    id: u128,
    side: u8,
    /// The row's place in the content (content rows), or among the base
    /// rows.
    ord: u64,
    /// The row's content hash.
    hash: u64,
    /// The key as JSON: base rows only (a gone key is deleted by it).
    key: String,
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

/// Writes `key` as its length (4 bytes) and its UTF-8 bytes.
fn write_key<W: Write>(w: &mut W, key: &str) -> std::io::Result<()> {
    let len =
        u32::try_from(key.len()).map_err(|_| std::io::Error::other("a key of more than 4 GB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(key.as_bytes())
}

/// Reads a key [`write_key`] wrote.
fn read_key<R: Read>(r: &mut R) -> std::io::Result<String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut key)?;
    String::from_utf8(key).map_err(std::io::Error::other)
}

impl Sortable for Keyed {
    fn encode<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.id.to_le_bytes())?;
        w.write_all(&[self.side])?;
        w.write_all(&self.ord.to_le_bytes())?;
        w.write_all(&self.hash.to_le_bytes())?;
        write_key(w, &self.key)
    }

    fn decode<R: Read>(r: &mut R) -> std::io::Result<Self> {
        let mut head = [0u8; 33];
        r.read_exact(&mut head)?;
        Ok(Keyed {
            id: u128::from_le_bytes(array(&head[0..16])),
            side: head[16],
            ord: u64::from_le_bytes(array(&head[17..25])),
            hash: u64::from_le_bytes(array(&head[25..33])),
            key: read_key(r)?,
        })
    }
}

/// A key a removed file's content no longer puts in the targets, with its
/// place among the base rows: a removal's deletes go in the order the file
/// held its rows, which is the order its first read stored them in (a
/// delete per few stored rows, not one spread over the whole table).
struct Gone {
    place: u64,
    key: String,
}

/// How [`Gone`] keys are ordered.
type GoneOrder = fn(&Gone, &Gone) -> std::cmp::Ordering;

impl Gone {
    fn order(a: &Gone, b: &Gone) -> std::cmp::Ordering {
        a.place.cmp(&b.place)
    }
}

impl Sortable for Gone {
    fn encode<W: Write>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.place.to_le_bytes())?;
        write_key(w, &self.key)
    }

    fn decode<R: Read>(r: &mut R) -> std::io::Result<Self> {
        let mut place = [0u8; 8];
        r.read_exact(&mut place)?;
        Ok(Gone {
            place: u64::from_le_bytes(place),
            key: read_key(r)?,
        })
    }
}

/// Writes a gone key down: straight to `out` (a changed file's, in the
/// order of the keys' hashes), or into `by_place` (a removal's).
fn put_gone(
    out: &mut impl Write,
    by_place: &mut Option<Spill<Gone, GoneOrder>>,
    gone: Option<(u64, &str)>,
) -> std::io::Result<()> {
    match (gone, by_place) {
        (None, _) => Ok(()),
        (Some((place, key)), Some(sort)) => sort.push(Gone {
            place,
            key: key.to_owned(),
        }),
        (Some((_, key)), None) => writeln!(out, "{key}"),
    }
}

/// A content row's change, one byte each.
const SAME: u8 = 0;
const NEW: u8 = 1;
const CHANGED: u8 = 2;

/// How the content's rows are told apart from the earlier content's.
enum Mode {
    /// No earlier content: every row is new.
    New,
    /// Without a key only rows past the earlier content's count are new.
    Appended { base_rows: u64 },
    /// By key: each content row's change, settled before it streams.
    Keyed {
        changes: Vec<u8>,
        /// The keys (as JSON, a line each) the content no longer has.
        gone: std::fs::File,
        others: Vec<String>,
    },
}

/// What preparing a diff comes to.
pub(crate) enum Prepared {
    Ready(Differ),
    /// The file's bytes are no longer the content digested: read it again.
    Changed,
    /// Told to stop.
    Stopped,
}

/// Works out a changed file's changes record by record, in file order and
/// then its deletes in the order of their keys' hashes: the same changes in
/// the same order for the same content and base, so a resumed read skips
/// exactly what went out. A removed file's deletes go in the order of its
/// rows. Memory holds a byte per content row.
pub(crate) struct Differ {
    mode: Mode,
    /// Rows of the content read so far.
    rows: u64,
    known_rejects: HashSet<u64>,
}

/// Where a file's content is.
pub(crate) struct Content<'a> {
    pub(crate) abs: &'a Path,
    pub(crate) rel: &'a str,
    pub(crate) format: FileFormat,
    pub(crate) dialect: CsvDialect,
    pub(crate) digest: &'a str,
}

impl Differ {
    /// Prepares the diff of `content` against `diff` (every row new
    /// without one), reading the content once and the base's manifests;
    /// `keep_going` is asked between records.
    pub(crate) fn prepare(
        diff: Option<&Diff>,
        schema: &TableSchema,
        manifests: &ManifestStore,
        content: &Content<'_>,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Prepared, FilesError> {
        Self::prepare_with(
            diff,
            schema,
            manifests,
            Some(content),
            keep_going,
            SEGMENT_ENTRIES,
        )
    }

    /// Prepares the deletes of a removed file: every key of `diff`'s base
    /// (taken as merged: each listed key may be in the targets) that no
    /// other file of the table holds, found on disk as a changed file's
    /// gone keys are. Never [`Prepared::Changed`].
    pub(crate) fn removal(
        diff: &Diff,
        schema: &TableSchema,
        manifests: &ManifestStore,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Prepared, FilesError> {
        Self::prepare_with(
            Some(diff),
            schema,
            manifests,
            None,
            keep_going,
            SEGMENT_ENTRIES,
        )
    }

    /// [`Differ::prepare`] (or, without content, [`Differ::removal`]),
    /// sorting `segment` entries at a time in memory.
    fn prepare_with(
        diff: Option<&Diff>,
        schema: &TableSchema,
        manifests: &ManifestStore,
        content: Option<&Content<'_>>,
        keep_going: &dyn Fn() -> bool,
        segment: usize,
    ) -> Result<Prepared, FilesError> {
        let Some(diff) = diff else {
            return Ok(Prepared::Ready(Differ {
                mode: Mode::New,
                rows: 0,
                known_rejects: HashSet::new(),
            }));
        };
        let table = schema.id.name.as_str();
        let keyed = !schema.key.is_empty();
        let spill = manifests.spill_dir()?;
        let fail = |detail: String| FilesError::State {
            path: spill.clone(),
            detail,
        };
        // The sort's segments, removed with it.
        let sort_dir = tempfile::tempdir_in(&spill).map_err(|e| fail(e.to_string()))?;
        let mut sorter = Spill::new(
            segment,
            sort_dir.path().to_path_buf(),
            |a: &Keyed, b: &Keyed| (a.id, a.side, a.ord).cmp(&(b.id, b.side, b.ord)),
        );
        let mut known_rejects = HashSet::new();
        let mut base_rows = 0u64;
        for digest in &diff.base {
            for entry in manifests.entries(table, digest) {
                if !keep_going() {
                    return Ok(Prepared::Stopped);
                }
                let keyed_entry = match entry {
                    Entry::Row { key, hash } => {
                        base_rows += 1;
                        Keyed {
                            id: key_id(&key),
                            side: BASE_ROW,
                            ord: base_rows - 1,
                            hash: if diff.merged { 0 } else { hash },
                            key,
                        }
                    }
                    Entry::Rejected(hash) => {
                        known_rejects.insert(hash);
                        continue;
                    }
                    // A merged base takes every key as present.
                    Entry::Refused(_) if diff.merged => continue,
                    Entry::Refused(key) => Keyed {
                        id: key_id(&key),
                        side: BASE_REFUSED,
                        ord: 0,
                        hash: 0,
                        key: String::new(),
                    },
                };
                if keyed {
                    sorter
                        .push(keyed_entry)
                        .map_err(|e| fail(format!("sorting the keys of the diff: {e}")))?;
                }
            }
        }
        if !keyed {
            return Ok(Prepared::Ready(Differ {
                mode: Mode::Appended { base_rows },
                rows: 0,
                known_rejects,
            }));
        }

        // The content's keys (a removed file has none).
        let mut rows = 0u64;
        if let Some(content) = content {
            let file = std::fs::File::open(content.abs)
                .map_err(|e| FilesError::read(content.abs, e.to_string()))?;
            let mut failed = None;
            let read = format::stream_records(
                content.abs,
                content.rel,
                file,
                content.format,
                content.dialect,
                schema,
                |record| {
                    if let Record::Row(r) = record {
                        let entry = Keyed {
                            id: key_id(&key_string(schema, &r.row)),
                            side: CONTENT_ROW,
                            ord: rows,
                            hash: r.hash,
                            key: String::new(),
                        };
                        rows += 1;
                        if let Err(e) = sorter.push(entry) {
                            failed = Some(e);
                            return false;
                        }
                    }
                    keep_going()
                },
            )?;
            if let Some(e) = failed {
                return Err(fail(format!("sorting the keys of the diff: {e}")));
            }
            match read {
                None => return Ok(Prepared::Stopped),
                Some(read) if read != content.digest => return Ok(Prepared::Changed),
                Some(_) => {}
            }
        }

        // A key at a time.
        let len = usize::try_from(rows).map_err(|_| fail("too many rows".into()))?;
        let mut changes = vec![SAME; len];
        let gone = tempfile::tempfile_in(&spill).map_err(|e| fail(e.to_string()))?;
        let mut gone_out = std::io::BufWriter::new(gone);
        // A removal's gone keys, sorted again by their place.
        let place_dir = tempfile::tempdir_in(&spill).map_err(|e| fail(e.to_string()))?;
        let mut by_place = content.is_none().then(|| {
            Spill::new(
                segment,
                place_dir.path().to_path_buf(),
                Gone::order as GoneOrder,
            )
        });
        let sorted = sorter
            .done(|| Keyed {
                id: u128::MAX,
                side: FILLER,
                ord: 0,
                hash: 0,
                key: String::new(),
            })
            .map_err(|e| fail(format!("sorting the keys of the diff: {e}")))?;
        let mut group = Group::default();
        for entry in sorted {
            if !keep_going() {
                return Ok(Prepared::Stopped);
            }
            let entry = entry.map_err(|e| fail(format!("reading the sorted keys: {e}")))?;
            if entry.side == FILLER {
                continue;
            }
            if group.id != Some(entry.id) {
                put_gone(&mut gone_out, &mut by_place, group.settle(&mut changes))
                    .map_err(|e| fail(e.to_string()))?;
                group = Group {
                    id: Some(entry.id),
                    ..Group::default()
                };
            }
            match entry.side {
                BASE_ROW => {
                    if group.key.is_none() {
                        group.key = Some(entry.key);
                        group.place = entry.ord;
                    }
                    group.last_hash = Some(entry.hash);
                }
                BASE_REFUSED => group.refused = true,
                _ => group.content.push((entry.ord, entry.hash)),
            }
        }
        put_gone(&mut gone_out, &mut by_place, group.settle(&mut changes))
            .map_err(|e| fail(e.to_string()))?;
        if let Some(sort) = by_place {
            let filler = || Gone {
                place: u64::MAX,
                key: String::new(),
            };
            let sorted = sort
                .done(filler)
                .map_err(|e| fail(format!("sorting the keys a removed file had: {e}")))?;
            for g in sorted {
                if !keep_going() {
                    return Ok(Prepared::Stopped);
                }
                let g = g.map_err(|e| fail(format!("reading the sorted keys: {e}")))?;
                if g.place != u64::MAX {
                    writeln!(gone_out, "{}", g.key).map_err(|e| fail(e.to_string()))?;
                }
            }
        }
        let mut gone = gone_out
            .into_inner()
            .map_err(|e| fail(e.error().to_string()))?;
        gone.rewind().map_err(|e| fail(e.to_string()))?;
        Ok(Prepared::Ready(Differ {
            mode: Mode::Keyed {
                changes,
                gone,
                others: diff.others.clone(),
            },
            rows: 0,
            known_rejects,
        }))
    }

    /// The change the next good row of the content brings, if any.
    pub(crate) fn row(&mut self) -> Option<Op> {
        let ord = self.rows;
        self.rows += 1;
        match &self.mode {
            Mode::New => Some(Op::Insert),
            Mode::Appended { base_rows } => (ord >= *base_rows).then_some(Op::Insert),
            Mode::Keyed { changes, .. } => {
                match usize::try_from(ord).ok().and_then(|i| changes.get(i)) {
                    Some(&NEW) => Some(Op::Insert),
                    Some(&CHANGED) => Some(Op::Update),
                    Some(_) => None,
                    // A row the diff did not see (the file grew since):
                    // an upsert; the file is read again.
                    None => Some(Op::Update),
                }
            }
        }
    }

    /// Whether a rejected record was reported from the earlier content.
    pub(crate) fn known_reject(&self, hash: u64) -> bool {
        self.known_rejects.contains(&hash)
    }

    /// The deletes of keys the content no longer has, once it is all read,
    /// less those another file of the table holds; read from disk as they
    /// go out. `None`: `keep_going` said stop while the other files'
    /// manifests were read.
    pub(crate) fn deletes<'s>(
        &'s mut self,
        schema: &'s TableSchema,
        manifests: &'s ManifestStore,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Option<Deletes<'s>>, FilesError> {
        self.deletes_with(schema, manifests, keep_going, HOLD_CHUNK)
    }

    /// [`Differ::deletes`], checking `chunk` gone keys at a time.
    fn deletes_with<'s>(
        &'s mut self,
        schema: &'s TableSchema,
        manifests: &'s ManifestStore,
        keep_going: &dyn Fn() -> bool,
        chunk: usize,
    ) -> Result<Option<Deletes<'s>>, FilesError> {
        let Mode::Keyed { gone, others, .. } = &mut self.mode else {
            return Ok(Some(Box::new(std::iter::empty())));
        };
        let fail = |e: std::io::Error| FilesError::State {
            path: manifests.dir().to_path_buf(),
            detail: format!("reading the keys a file no longer has: {e}"),
        };
        if !others.is_empty() {
            let elsewhere = Elsewhere {
                manifests,
                table: &schema.id.name,
                digests: others,
            };
            match keys_not_held(gone, &elsewhere, keep_going, chunk).map_err(fail)? {
                Some(going) => *gone = going,
                None => return Ok(None),
            }
        }
        let lines = std::io::BufReader::new(&*gone).lines();
        Ok(Some(Box::new(lines.map(move |line| match line {
            Err(e) => Err(fail(e)),
            // A key that cannot be read back is an error, never a delete
            // dropped.
            Ok(key) => delete_of(manifests, &key, key_row(schema, &key)),
        }))))
    }
}

/// Gone keys whose ids one pass over the other files' manifests holds in
/// memory (about 40 bytes each in the set).
const HOLD_CHUNK: usize = 1 << 20;

/// The keys of the file `gone` (one per line, from its start) that none of
/// `elsewhere` holds, in a new temporary file at its start: `chunk` keys
/// at a time, so memory holds at most `chunk` ids whatever the number of
/// keys; each chunk reads the other files' manifests once. `None`:
/// `keep_going` said stop.
fn keys_not_held(
    gone: &mut std::fs::File,
    elsewhere: &Elsewhere<'_>,
    keep_going: &dyn Fn() -> bool,
    chunk: usize,
) -> std::io::Result<Option<std::fs::File>> {
    use std::io::{BufReader, SeekFrom};
    let spill = elsewhere
        .manifests
        .spill_dir()
        .map_err(std::io::Error::other)?;
    let mut going = tempfile::tempfile_in(spill)?;
    let mut out = std::io::BufWriter::new(&mut going);
    let mut start = 0u64;
    let mut line = String::new();
    loop {
        gone.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::new(&*gone);
        let (mut ids, mut keys, mut bytes) = (HashSet::new(), 0usize, 0u64);
        while keys < chunk {
            line.clear();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            keys += 1;
            ids.insert(key_id(line.trim_end_matches('\n')));
        }
        if keys == 0 {
            break;
        }
        let Some(held) = elsewhere.holding(&ids, keep_going) else {
            return Ok(None);
        };
        drop(ids);
        gone.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::new(&*gone);
        for _ in 0..keys {
            line.clear();
            reader.read_line(&mut line)?;
            let key = line.trim_end_matches('\n');
            if !held.contains(&key_id(key)) {
                writeln!(out, "{key}")?;
            }
        }
        start += bytes;
    }
    out.flush()?;
    drop(out);
    going.rewind()?;
    Ok(Some(going))
}

/// A key read back from the manifests as a delete, or the error that it
/// cannot be (the manifests were written by this source, so never expected).
pub(crate) fn delete_of(
    manifests: &ManifestStore,
    key: &str,
    row: Option<Row>,
) -> Result<(Op, Row), FilesError> {
    row.map(|row| (Op::Delete, row))
        .ok_or_else(|| FilesError::State {
            path: manifests.dir().to_path_buf(),
            detail: format!(
                "the key {key} in a manifest cannot be read back, so it cannot be deleted"
            ),
        })
}

/// The deletes of a diff, read from disk as they go out.
pub(crate) type Deletes<'s> = Box<dyn Iterator<Item = Result<(Op, Row), FilesError>> + 's>;

/// The entries of one key.
#[derive(Default)]
struct Group {
    id: Option<u128>,
    /// The key, from the first base row.
    key: Option<String>,
    /// The first base row's place among the base rows.
    place: u64,
    /// The hash of the last base row of the key: what the targets hold of
    /// it (an earlier version's manifest may list a key twice).
    last_hash: Option<u64>,
    refused: bool,
    content: Vec<(u64, u64)>,
}

impl Group {
    /// Settles the changes of the key's content rows; or, if the content
    /// no longer has the key, returns it with its place among the base rows.
    fn settle(&self, changes: &mut [u8]) -> Option<(u64, &str)> {
        // A key the earlier content held more than once is not in the
        // targets from it.
        let present = self.key.is_some() && !self.refused;
        for &(ord, hash) in &self.content {
            let change = if !present {
                NEW
            } else if self.last_hash == Some(hash) {
                SAME
            } else {
                CHANGED
            };
            if let Some(slot) = usize::try_from(ord).ok().and_then(|i| changes.get_mut(i)) {
                *slot = change;
            }
        }
        match &self.key {
            Some(key) if self.content.is_empty() && present => Some((self.place, key)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::{BTreeSet, HashMap};
    use std::sync::Arc;

    use syncline_engine::model::{DataType, Value};

    use super::*;

    fn schema() -> Arc<TableSchema> {
        syncline_acceptance::fixtures::table(
            "items",
            &[("id", DataType::Int64), ("name", DataType::Text)],
            &[0],
            1,
        )
    }

    const COMMA: CsvDialect = CsvDialect { delimiter: b',' };

    /// The key of row `id` as the manifests hold it.
    fn key(id: i64) -> String {
        key_string(&schema(), &vec![Value::Int(id), Value::Null])
    }

    /// Writes `rows` as a CSV and returns its digest and each row's key and
    /// hash, as the reader sees them.
    fn csv(path: &Path, rows: &[(i64, String)]) -> (String, Vec<(String, u64)>) {
        let mut text = String::from("id,name\n");
        for (id, name) in rows {
            text.push_str(&format!("{id},{name}\n"));
        }
        std::fs::write(path, text).unwrap();
        let schema = schema();
        let mut out = Vec::new();
        let digest = format::stream_records(
            path,
            "a.csv",
            std::fs::File::open(path).unwrap(),
            FileFormat::Csv,
            COMMA,
            &schema,
            |r| {
                if let Record::Row(r) = r {
                    out.push((key_string(&schema, &r.row), r.hash));
                }
                true
            },
        )
        .unwrap()
        .unwrap();
        (digest, out)
    }

    fn manifest(store: &ManifestStore, digest: &str, rows: &[(String, u64)], refused: &[String]) {
        let mut w = store.writer("items", digest, true).unwrap();
        for (k, h) in rows {
            w.row(k, *h).unwrap();
        }
        for k in refused {
            w.refused(k).unwrap();
        }
        w.finish().unwrap();
    }

    /// What the diff of `content` against `base` must be, worked out in
    /// memory: each content row's change, and the gone keys.
    fn expected(
        base: &[(String, u64)],
        refused: &[String],
        merged: bool,
        content: &[(String, u64)],
        held: &[String],
    ) -> (Vec<Option<Op>>, BTreeSet<String>) {
        let mut by_key: HashMap<&str, u64> = HashMap::new();
        for (k, h) in base {
            by_key.insert(k.as_str(), if merged { 0 } else { *h });
        }
        if !merged {
            for k in refused {
                by_key.remove(k.as_str());
            }
        }
        let ops = content
            .iter()
            .map(|(k, h)| match by_key.get(k.as_str()) {
                None => Some(Op::Insert),
                Some(last) if last == h => None,
                Some(_) => Some(Op::Update),
            })
            .collect();
        let present: BTreeSet<&str> = content.iter().map(|(k, _)| k.as_str()).collect();
        let gone = by_key
            .keys()
            .filter(|k| !present.contains(*k) && !held.iter().any(|h| h == *k))
            .map(|k| (*k).to_owned())
            .collect();
        (ops, gone)
    }

    fn run(
        store: &ManifestStore,
        path: &Path,
        digest: &str,
        diff: &Diff,
        segment: usize,
        rows: usize,
    ) -> (Vec<Option<Op>>, BTreeSet<String>) {
        let schema = schema();
        let content = Content {
            abs: path,
            rel: "a.csv",
            format: FileFormat::Csv,
            dialect: COMMA,
            digest,
        };
        let Prepared::Ready(mut differ) = Differ::prepare_with(
            Some(diff),
            &schema,
            store,
            Some(&content),
            &|| true,
            segment,
        )
        .unwrap() else {
            panic!("the content is as digested");
        };
        let ops = (0..rows).map(|_| differ.row()).collect();
        let gone: Vec<String> = differ
            .deletes_with(&schema, store, &|| true, segment)
            .unwrap()
            .expect("not stopped")
            .map(|d| {
                let (op, row) = d.unwrap();
                assert_eq!(op, Op::Delete);
                key_string(&schema, &row)
            })
            .collect();
        let keys: BTreeSet<String> = gone.iter().cloned().collect();
        assert_eq!(keys.len(), gone.len(), "a key deleted twice: {gone:?}");
        (ops, keys)
    }

    /// A removed file's deletes go in the order the file held its rows
    /// (neither the keys' order nor their hashes'), across sorted segments,
    /// less the keys another file holds.
    #[test]
    fn a_removal_deletes_in_the_files_row_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = ManifestStore::open(&dir.path().join("m")).unwrap();
        let path = dir.path().join("a.csv");
        let ids: Vec<i64> = (1..=100).map(|i| (i * 37) % 101).collect();
        let base_rows: Vec<(i64, String)> = ids.iter().map(|&i| (i, format!("n{i}"))).collect();
        let (base_digest, base) = csv(&path, &base_rows);
        manifest(&store, &base_digest, &base, &[]);
        let (_, other) = csv(&dir.path().join("b.csv"), &[(ids[10], "x".into())]);
        manifest(&store, "other", &other, &[]);
        let removal = Diff {
            base: vec![base_digest],
            merged: true,
            others: vec!["other".into()],
        };
        let Prepared::Ready(mut differ) =
            Differ::prepare_with(Some(&removal), &schema(), &store, None, &|| true, 7).unwrap()
        else {
            panic!("a removal is always ready");
        };
        let gone: Vec<String> = differ
            .deletes_with(&schema(), &store, &|| true, 7)
            .unwrap()
            .expect("not stopped")
            .map(|d| key_string(&schema(), &d.unwrap().1))
            .collect();
        let want: Vec<String> = ids
            .iter()
            .filter(|&&i| i != ids[10])
            .map(|&i| key(i))
            .collect();
        assert_eq!(gone, want);
    }

    /// A diff whose last entry fills a sorted segment (the sort then holds
    /// nothing in memory and everything on disk) still settles every row
    /// and finds the gone key.
    #[test]
    fn a_diff_whose_last_entry_fills_a_segment_settles_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = ManifestStore::open(&dir.path().join("m")).unwrap();
        let path = dir.path().join("a.csv");
        let base_rows: Vec<(i64, String)> = (1..=4).map(|i| (i, format!("n{i}"))).collect();
        let (base_digest, base) = csv(&path, &base_rows);
        manifest(&store, &base_digest, &base, &[]);
        let (digest, _) = csv(
            &path,
            &[
                (1, "n1".into()),
                (2, "changed".into()),
                (3, "n3".into()),
                (5, "n5".into()),
            ],
        );
        let diff = Diff {
            base: vec![base_digest],
            merged: false,
            others: Vec::new(),
        };
        // Eight entries in segments of three: written at the fourth and the
        // eighth.
        let (ops, gone) = run(&store, &path, &digest, &diff, 3, 4);
        assert_eq!(ops, vec![None, Some(Op::Update), None, Some(Op::Insert)]);
        assert_eq!(gone, BTreeSet::from([key(4)]));
    }

    /// The diff on disk (in segments of 7 entries, so hundreds of sorted
    /// segments are merged) settles what a diff in memory does: new,
    /// changed and unchanged rows, gone keys less those another file
    /// holds (not counting one it holds twice), a key the earlier content
    /// held twice (new now), a key twice in the content, and a merged
    /// base; and a content that is no longer the one digested is said to
    /// have changed.
    #[test]
    fn the_diff_on_disk_settles_what_a_diff_in_memory_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = ManifestStore::open(&dir.path().join("m")).unwrap();
        let path = dir.path().join("a.csv");
        let base_rows: Vec<(i64, String)> = (1..=1000).map(|i| (i, format!("n{i}"))).collect();
        let (base_digest, base) = csv(&path, &base_rows);
        let refused = [key(5)];
        manifest(&store, &base_digest, &base, &refused);
        // Another file holds 101 and 201 once, and 301 twice.
        let (_, other) = csv(
            &dir.path().join("b.csv"),
            &[
                (101, "b".into()),
                (201, "b".into()),
                (301, "b".into()),
                (301, "c".into()),
            ],
        );
        manifest(&store, "other", &other, &[key(301)]);

        let mut rows: Vec<(i64, String)> = base_rows
            .iter()
            .filter(|(i, _)| i % 100 != 1)
            .map(|(i, n)| {
                (
                    *i,
                    if i % 10 == 0 {
                        format!("v2 {n}")
                    } else {
                        n.clone()
                    },
                )
            })
            .collect();
        rows.extend((1001..=1010).map(|i| (i, format!("new {i}"))));
        rows.push((7, "seven again".into()));
        let (digest, content) = csv(&path, &rows);
        for merged in [false, true] {
            let diff = Diff {
                base: vec![base_digest.clone()],
                merged,
                others: vec!["other".into()],
            };
            for segment in [7, SEGMENT_ENTRIES] {
                let got = run(&store, &path, &digest, &diff, segment, content.len());
                let want = expected(&base, &refused, merged, &content, &[key(101), key(201)]);
                assert_eq!(got, want, "merged {merged}, segments of {segment}");
            }
        }
        let (ops, gone) = run(
            &store,
            &path,
            &digest,
            &Diff {
                base: vec![base_digest.clone()],
                merged: false,
                others: vec!["other".into()],
            },
            7,
            content.len(),
        );
        assert_eq!(
            ops.iter().filter(|o| **o == Some(Op::Update)).count(),
            100 + 1
        );
        assert_eq!(
            ops.iter().filter(|o| **o == Some(Op::Insert)).count(),
            10 + 1,
            "the new rows and the key held twice before"
        );
        assert_eq!(gone.len(), 10 - 2);
        assert!(gone.contains(&key(301)), "b.csv holds 301 twice: not kept");

        // The file changed after it was digested.
        let content = Content {
            abs: &path,
            rel: "a.csv",
            format: FileFormat::Csv,
            dialect: COMMA,
            digest: &base_digest,
        };
        let diff = Diff {
            base: vec![base_digest.clone()],
            merged: false,
            others: Vec::new(),
        };
        assert!(matches!(
            Differ::prepare_with(Some(&diff), &schema(), &store, Some(&content), &|| true, 7)
                .unwrap(),
            Prepared::Changed
        ));

        // The file removed: every key it listed goes (a merged base: the
        // refused one too, which is harmless), but those another file
        // holds once.
        let removal = Diff {
            base: vec![base_digest.clone()],
            merged: true,
            others: vec!["other".into()],
        };
        let Prepared::Ready(mut differ) =
            Differ::removal(&removal, &schema(), &store, &|| true).unwrap()
        else {
            panic!("a removal is always ready");
        };
        // Stopped while it reads the other file's manifest: no deletes.
        assert!(
            differ
                .deletes_with(&schema(), &store, &|| false, 7)
                .unwrap()
                .is_none()
        );
        let mut gone: Vec<String> = differ
            .deletes_with(&schema(), &store, &|| true, 7)
            .unwrap()
            .expect("not stopped")
            .map(|d| key_string(&schema(), &d.unwrap().1))
            .collect();
        gone.sort();
        let mut want: Vec<String> = (1..=1000)
            .filter(|i| *i != 101 && *i != 201)
            .map(key)
            .collect();
        want.sort();
        // Each key once, across the chunks of 7.
        assert_eq!(gone, want);
    }
}
