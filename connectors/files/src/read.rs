//! Reading one file: the changes its content brings relative to what was
//! applied from it before, or its quarantine when it cannot be read.

use super::*;
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
    /// The file's changes, worked out whole: a changed file diffed against
    /// its earlier content, a Parquet file, or the file's quarantine.
    Whole(Pending),
    /// Every row of the content is new to what the file put in the
    /// targets (a new file, or one resumed before any earlier content was
    /// applied): it is read as a stream, in batches, never whole.
    Stream(Streaming),
}

/// A file to read as a stream.
pub(crate) struct Streaming {
    /// The content's digest, from a first pass over the bytes.
    pub(crate) digest: String,
    /// Rows of this content emitted before (a resumed read skips them).
    pub(crate) skip: u64,
    /// The file's state while its batches go out.
    pub(crate) file_state: FileState,
    pub(crate) commit_time: Option<DateTime<Utc>>,
}

/// Reads a file and works out the changes it brings relative to what was
/// applied from it before.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_and_diff(
    table: usize,
    abs: &Path,
    rel: &str,
    format: FileFormat,
    dialect: CsvDialect,
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
    if format != FileFormat::Parquet && !ahead {
        let skip = match &prev {
            None => Some(0),
            // Quarantined before any content of it was read.
            Some(p) if p.done && p.digest.is_empty() => Some(0),
            // The same content, cut short before it was all emitted, with
            // nothing earlier to diff against.
            Some(p) if !p.done && p.digest == digest && p.base.is_none() => Some(p.emitted),
            _ => None,
        };
        if let Some(skip) = skip {
            return Ok(Reading::Stream(Streaming {
                file_state: FileState {
                    digest: digest.clone(),
                    base: None,
                    size: meta.len(),
                    mtime_ns: mtime_ns(meta),
                    emitted: skip,
                    done: false,
                    quarantined: false,
                    also: Vec::new(),
                },
                digest,
                skip,
                commit_time,
            }));
        }
    }
    let bytes = match std::fs::read(abs) {
        Ok(b) => b,
        Err(e) => return quarantine(prev, e.to_string()),
    };
    // The bytes read now name the content (the file may have changed since
    // the first pass).
    let digest = format::content_digest(&bytes);
    let parsed: ParsedFile = match format::parse_file(abs, rel, &bytes, format, dialect, schema) {
        Ok(parsed) => parsed,
        Err(e) => {
            let reason = match e {
                FilesError::Read { detail, .. } => detail,
                other => other.to_string(),
            };
            return quarantine(prev, reason);
        }
    };
    drop(bytes);
    let table_name = &schema.id.name;
    let manifest = Manifest {
        rows: parsed
            .rows
            .iter()
            .map(|r| (key_string(schema, &r.row), r.hash))
            .collect(),
        rejected: parsed
            .dead_letters
            .iter()
            .map(|d| xxhash_rust::xxh3::xxh3_64(d.raw.as_bytes()))
            .collect(),
    };
    manifests.write(table_name, &digest, &manifest)?;
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

    // Resuming the same content: redo the same diff and skip what was emitted.
    if let Some(p) = prev.as_ref().filter(|p| p.digest == digest && !ahead) {
        let base = p.base.as_ref().and_then(|b| manifests.read(table_name, b));
        let changes = diff(schema, base.as_ref(), &parsed, &manifest, elsewhere);
        return Ok(Reading::Whole(Pending {
            table,
            rel: rel.to_owned(),
            file_state: new_state(p.base.clone()),
            changes,
            dead_letters: Vec::new(),
            skip: p.emitted,
            commit_time,
        }));
    }

    // New content: diff against what the target holds from this file.
    let merged = prev.as_ref().is_some_and(|p| !p.done || ahead);
    let (base_digest, base): (Option<String>, Option<Manifest>) = match &prev {
        None => (None, None),
        // Quarantined before any content of it was read: nothing applied.
        Some(p) if !merged && p.digest.is_empty() => (None, None),
        Some(p) if !merged => (
            Some(p.digest.clone()),
            manifests.read(table_name, &p.digest),
        ),
        Some(p) => {
            // Changed while half applied, or held further by another sink:
            // treat everything it may have written as present (deletes of
            // absent keys are no-ops; rows are upserted).
            let mut merged = Manifest::default();
            for d in p.contents() {
                if let Some(m) = manifests.read(table_name, d) {
                    merged.rows.extend(m.rows.into_iter().map(|(k, _)| (k, 0)));
                    merged.rejected.extend(m.rejected);
                }
            }
            (Some(p.digest.clone()), Some(merged))
        }
    };
    if base_digest.is_some() && base.is_none() {
        warn!(
            file = rel,
            "the manifest of the file's previous content is gone; its rows are upserted and no deletes can be derived"
        );
    }
    let changes = diff(schema, base.as_ref(), &parsed, &manifest, elsewhere);
    let known_rejects: HashSet<u64> = base
        .as_ref()
        .map(|b| b.rejected.iter().copied().collect())
        .unwrap_or_default();
    let dead_letters = parsed
        .dead_letters
        .into_iter()
        .zip(manifest.rejected.iter())
        .filter(|(_, h)| !known_rejects.contains(h))
        .map(|(d, _)| d)
        .collect();
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
    Ok(Reading::Whole(Pending {
        table,
        rel: rel.to_owned(),
        file_state,
        changes,
        dead_letters,
        skip: 0,
        commit_time,
    }))
}

/// The changes that turn `base` (what was applied) into `parsed`.
pub(crate) fn diff(
    schema: &TableSchema,
    base: Option<&Manifest>,
    parsed: &ParsedFile,
    manifest: &Manifest,
    elsewhere: &Elsewhere<'_>,
) -> Vec<(Op, Row)> {
    let Some(base) = base else {
        return parsed
            .rows
            .iter()
            .map(|r| (Op::Insert, r.row.clone()))
            .collect();
    };
    if schema.key.is_empty() {
        // Without a key only appended rows can be told apart.
        return parsed
            .rows
            .iter()
            .skip(base.rows.len())
            .map(|r| (Op::Insert, r.row.clone()))
            .collect();
    }
    let old: HashMap<&str, u64> = base.rows.iter().map(|(k, h)| (k.as_str(), *h)).collect();
    let mut changes = Vec::new();
    for (r, (key, hash)) in parsed.rows.iter().zip(&manifest.rows) {
        match old.get(key.as_str()) {
            None => changes.push((Op::Insert, r.row.clone())),
            Some(h) if h != hash => changes.push((Op::Update, r.row.clone())),
            Some(_) => {}
        }
    }
    let new_keys: HashSet<&str> = manifest.rows.iter().map(|(k, _)| k.as_str()).collect();
    let gone: Vec<&str> = base
        .rows
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !new_keys.contains(k))
        .collect();
    if gone.is_empty() {
        return changes;
    }
    // A key another file of the table still has stays.
    let held = elsewhere.keys();
    let mut deleted = HashSet::new();
    for k in gone {
        if !held.contains(k)
            && deleted.insert(k)
            && let Some(row) = key_row(schema, k)
        {
            changes.push((Op::Delete, row));
        }
    }
    changes
}

/// The other files of a table, by the contents the targets hold from them.
pub(crate) struct Elsewhere<'a> {
    pub(crate) manifests: &'a ManifestStore,
    pub(crate) table: &'a str,
    pub(crate) digests: &'a [String],
}

impl Elsewhere<'_> {
    /// Every key those contents hold.
    pub(crate) fn keys(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        for d in self.digests {
            if let Some(m) = self.manifests.read(self.table, d) {
                out.extend(m.rows.into_iter().map(|(k, _)| k));
            }
        }
        out
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
