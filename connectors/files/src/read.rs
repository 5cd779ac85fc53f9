//! Reading one file: the changes its content brings relative to what was
//! applied from it before, or its quarantine when it cannot be read.

use super::*;
use crate::diff::{Diff, key_id};
use crate::state::Entry;
use crate::sync::{Pending, mtime_ns};

/// About how many records the snapshot will read from the files of
/// `files` not yet done, for its progress, without reading them (see
/// [`format::record_estimate`]); a file that cannot be looked at counts
/// nothing (reading it reports why).
pub(crate) fn expected_rows(
    table: &Table,
    root: &Path,
    files: &[String],
    done: Option<&BTreeMap<String, FileState>>,
) -> u64 {
    files
        .iter()
        .filter(|f| !done.and_then(|d| d.get(*f)).is_some_and(|s| s.done))
        .filter_map(|f| {
            let path = root.join(f);
            let format = table.format_of(&path)?;
            format::record_estimate(&path, format).ok()
        })
        .sum()
}

pub(crate) fn key_string(schema: &TableSchema, row: &Row) -> String {
    let key: Vec<&Value> = schema.key_of(row);
    serde_json::to_string(&key).unwrap_or_default()
}

/// A row holding only the key values (others NULL), from a key string.
pub(crate) fn key_row(schema: &TableSchema, key: &str) -> Option<Row> {
    let values: Vec<Value> = serde_json::from_str(key).ok()?;
    let mut row = vec![Value::Null; schema.columns.len()];
    for (&i, v) in schema.key.iter().zip(values) {
        row[i] = v;
    }
    Some(row)
}

/// What reading a file comes to.
pub(crate) enum Reading {
    /// The content is what the targets hold from the file already.
    Unchanged,
    /// The file cannot be read: its quarantine.
    Whole(Pending),
    /// The content is read as a stream, in batches, never whole: every
    /// row new to what the file put in the targets (a new file, or one
    /// resumed before any earlier content was applied), or diffed by key
    /// against what it put there.
    Stream(Streaming),
}

/// A file to read as a stream.
pub(crate) struct Streaming {
    /// The content's digest, from a first pass over the bytes.
    pub(crate) digest: String,
    /// Changes of this content emitted before (a resumed read skips them).
    pub(crate) skip: u64,
    /// The file's state while its batches go out.
    pub(crate) file_state: FileState,
    pub(crate) commit_time: Option<DateTime<Utc>>,
    /// What the content is diffed against; `None`: every row is new.
    pub(crate) diff: Option<Diff>,
    /// The contents of the table's other files.
    pub(crate) others: Vec<String>,
}

/// Reads a file and works out the changes it brings relative to what was
/// applied from it before.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_and_diff(
    table: usize,
    abs: &Path,
    rel: &str,
    schema: &TableSchema,
    prev: Option<FileState>,
    meta: &std::fs::Metadata,
    manifests: &ManifestStore,
    elsewhere: &Elsewhere<'_>,
) -> Result<Reading, FilesError> {
    let commit_time = meta.modified().ok().map(DateTime::<Utc>::from);
    let quarantine = |prev: Option<FileState>, reason: String| {
        Ok(Reading::Whole(quarantined(
            table,
            rel,
            schema,
            prev,
            meta,
            reason,
            commit_time,
        )))
    };
    let digest = match format::file_digest(abs) {
        Ok(d) => d,
        Err(FilesError::Read { detail, .. }) => return quarantine(prev, detail),
        Err(e) => return Err(e),
    };
    if prev
        .as_ref()
        .is_some_and(|p| p.done && !p.quarantined && p.digest == digest)
    {
        return Ok(Reading::Unchanged);
    }
    // Contents a sink further ahead holds, or a diff cut short that was
    // made against several: diffed against them all below. (Rows without a
    // key cannot be told apart, so such a table only appends.)
    let ahead = !schema.key.is_empty() && prev.as_ref().is_some_and(|p| !p.also.is_empty());
    let table_name = &schema.id.name;
    let new_state = |base: Option<String>| FileState {
        digest: digest.clone(),
        base,
        size: meta.len(),
        mtime_ns: mtime_ns(meta),
        emitted: 0,
        done: false,
        quarantined: false,
        also: Vec::new(),
    };
    // The base: the contents diffed against, and whether they are merged.
    let streaming = |file_state: FileState, skip: u64, base: Option<(Vec<String>, bool)>| {
        Reading::Stream(Streaming {
            digest: digest.clone(),
            skip,
            file_state: FileState {
                emitted: skip,
                ..file_state
            },
            commit_time,
            diff: base.map(|(base, merged)| Diff {
                base,
                merged,
                others: elsewhere.digests.to_vec(),
            }),
            others: elsewhere.digests.to_vec(),
        })
    };

    // Resuming the same content: redo the same diff and skip what was emitted.
    if let Some(p) = prev.as_ref().filter(|p| p.digest == digest && !ahead) {
        let base = p
            .base
            .as_ref()
            .filter(|b| manifests.exists(table_name, b))
            .map(|b| (vec![b.clone()], false));
        return Ok(streaming(new_state(p.base.clone()), p.emitted, base));
    }

    // New content: diff against what the target holds from this file.
    let merged = prev.as_ref().is_some_and(|p| !p.done || ahead);
    let (base_digest, base): (Option<String>, Option<(Vec<String>, bool)>) = match &prev {
        None => (None, None),
        // Quarantined before any content of it was read: nothing applied.
        Some(p) if !merged && p.digest.is_empty() => (None, None),
        Some(p) if !merged => (
            Some(p.digest.clone()),
            manifests
                .exists(table_name, &p.digest)
                .then(|| (vec![p.digest.clone()], false)),
        ),
        // Changed while half applied, or held further by another sink:
        // everything it may have written is taken as present (deletes of
        // absent keys are no-ops; rows are upserted).
        Some(p) => (
            Some(p.digest.clone()),
            Some((p.contents().map(str::to_owned).collect(), true)),
        ),
    };
    if base_digest.is_some() && base.is_none() {
        warn!(
            file = rel,
            "the manifest of the file's previous content is gone; its rows are upserted and no deletes can be derived"
        );
    }
    // A resumed diff must be the same diff: record the base only when it
    // is one whole manifest; a merged one keeps the contents it merged
    // until it is all emitted.
    let mut file_state = new_state(
        prev.as_ref()
            .filter(|_| !merged && base.is_some())
            .map(|p| p.digest.clone()),
    );
    if merged && let Some(p) = &prev {
        file_state.also = p
            .contents()
            .filter(|d| *d != digest)
            .map(str::to_owned)
            .collect();
    }
    Ok(streaming(file_state, 0, base))
}

/// The dead letter of a key a file's content holds `times` times: none of
/// its rows is kept (which one the file means cannot be told), and the
/// targets hold no row of it from this file, or, when another file of the
/// table holds the key too (`elsewhere`), the row written last.
pub(crate) fn duplicate_key(
    schema: &TableSchema,
    rel: &str,
    key: &str,
    times: u64,
    elsewhere: bool,
) -> DeadLetter {
    // The key's columns and values, as JSON.
    let shown = key_row(schema, key).map_or_else(
        || key.to_owned(),
        |row| {
            let object: serde_json::Map<String, serde_json::Value> = schema
                .key
                .iter()
                .filter_map(|&i| Some((schema.columns.get(i)?.name.clone(), row.get(i)?.to_json())))
                .collect();
            serde_json::Value::Object(object).to_string()
        },
    );
    let what = if elsewhere {
        "none of its rows is taken from this file, but another file of the table holds this key too, so it stays and the targets keep the row written last, which may be one of these"
    } else {
        "none of its rows is taken, so the targets hold no row of it from this file"
    };
    DeadLetter {
        table: schema.id.clone(),
        origin: rel.to_owned(),
        line: None,
        reason: format!(
            "the key {shown} appears {times} times in this file and a file holds a key once: {what}; it is read again when the file changes"
        ),
        raw: shown,
        stage: DeadLetterStage::Read,
        kept: None,
    }
}

/// The other files of a table, by the contents the targets hold from them.
pub(crate) struct Elsewhere<'a> {
    pub(crate) manifests: &'a ManifestStore,
    pub(crate) table: &'a str,
    pub(crate) digests: &'a [String],
}

impl Elsewhere<'_> {
    /// Which of the keys `ids` (see [`key_id`]) those contents hold (not
    /// counting a key one held more than once, which it did not keep):
    /// their manifests are read as streams, memory holds `ids`. `None`:
    /// `keep_going` said stop.
    pub(crate) fn holding(
        &self,
        ids: &HashSet<u128>,
        keep_going: &dyn Fn() -> bool,
    ) -> Option<HashSet<u128>> {
        let mut held = HashSet::new();
        if ids.is_empty() {
            return Some(held);
        }
        for d in self.digests {
            let (mut rows, mut refused) = (HashSet::new(), HashSet::new());
            for entry in self.manifests.entries(self.table, d) {
                if !keep_going() {
                    return None;
                }
                match entry {
                    Entry::Row { key, .. } => {
                        let id = key_id(&key);
                        if ids.contains(&id) {
                            rows.insert(id);
                        }
                    }
                    Entry::Refused(key) => {
                        let id = key_id(&key);
                        if ids.contains(&id) {
                            refused.insert(id);
                        }
                    }
                    Entry::Rejected(_) => {}
                }
            }
            held.extend(rows.difference(&refused));
        }
        Some(held)
    }
}

/// A file that cannot be read as a whole (truncated, empty, its header
/// without the key, unreadable): no changes, one dead letter naming the
/// file and why, and a state under which what its earlier content put in
/// the targets stays as it is and the file is read again once it changes
/// (a half-copied file, when the copy completes).
pub(crate) fn quarantined(
    table: usize,
    rel: &str,
    schema: &TableSchema,
    prev: Option<FileState>,
    meta: &std::fs::Metadata,
    reason: String,
    commit_time: Option<DateTime<Utc>>,
) -> Pending {
    let (size, mtime) = (meta.len(), mtime_ns(meta));
    // Quarantined before as it is now: said already.
    let known = prev
        .as_ref()
        .is_some_and(|p| p.quarantined && p.size == size && p.mtime_ns == mtime);
    if !known {
        warn!(file = rel, reason = %reason, "file quarantined");
    }
    let file_state = match prev {
        Some(p) => FileState {
            size,
            mtime_ns: mtime,
            quarantined: true,
            ..p
        },
        None => FileState {
            digest: String::new(),
            base: None,
            size,
            mtime_ns: mtime,
            emitted: 0,
            done: true,
            quarantined: true,
            also: Vec::new(),
        },
    };
    Pending {
        table,
        rel: rel.to_owned(),
        file_state,
        changes: Vec::new(),
        dead_letters: if known {
            Vec::new()
        } else {
            vec![DeadLetter {
                table: schema.id.clone(),
                origin: rel.to_owned(),
                line: None,
                raw: String::new(),
                reason: format!(
                    "the file cannot be read, so none of its rows were taken: {reason}; it is read again when it changes, and rows its earlier content brought stay as they are"
                ),
                stage: DeadLetterStage::Read,
                kept: None,
            }]
        },
        skip: 0,
        commit_time,
    }
}
