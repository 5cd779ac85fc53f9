//! The running source: the first full read of the folder, then following
//! it (new, changed and removed files), each file's changes emitted with
//! their position.

use super::*;

/// The running source: its state and the next sequence number.
pub(crate) struct FolderSync {
    src: FilesSource,
    state: FilesState,
    seq: u64,
    manifests: ManifestStore,
    acked_digests: std::collections::BTreeSet<(String, String)>,
}

/// The folder's watcher and the events it reports.
pub(crate) struct Watch {
    _debouncer: notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    events: tokio::sync::mpsc::UnboundedReceiver<notify_debouncer_full::DebounceEventResult>,
}

/// One file's changes ready to emit.
struct Pending {
    table: usize,
    rel: String,
    file_state: FileState,
    changes: Vec<(Op, Row)>,
    dead_letters: Vec<DeadLetter>,
    skip: u64,
    commit_time: Option<DateTime<Utc>>,
}

impl FolderSync {
    pub(crate) fn new(src: FilesSource, ctx: &SourceContext) -> Result<Self> {
        let (state, seq) = match &ctx.resume {
            Some(p) => {
                let state: FilesState = serde_json::from_value(p.state.clone()).map_err(|e| {
                    Error::new(
                        ErrorKind::State,
                        format!(
                            "the stored position of source `{}` is not a files position: {e}",
                            ctx.name
                        ),
                    )
                })?;
                // Batches are rebuilt from the files as they are now, which
                // a sink further ahead may not have seen: number them above
                // everything any sink holds.
                (state, p.seq.max(ctx.highest_held))
            }
            None => (FilesState::default(), ctx.highest_held),
        };
        let manifests = ManifestStore::open(&src.state_dir)?;
        let acked_digests = state.digests();
        Ok(FolderSync {
            src,
            state,
            seq,
            manifests,
            acked_digests,
        })
    }

    fn id(&self, table: usize) -> TableId {
        self.src.tables[table].id(&self.src.name)
    }

    fn schema(&self, table: usize) -> Result<Arc<TableSchema>> {
        self.src.tables[table]
            .schema
            .clone()
            .ok_or_else(|| Error::internal("files source run before discover"))
    }

    pub(crate) async fn initial(&mut self, ctx: &SourceContext) -> Result<()> {
        for t in 0..self.src.tables.len() {
            let id = self.id(t);
            ctx.status.set_phase(&id, Phase::Snapshot);
            let files = self.src.list(&self.src.tables[t])?;
            let expected = expected_rows(
                &self.src.tables[t],
                &self.src.root,
                &files,
                self.state.tables.get(&id.name),
            );
            ctx.status.set_snapshot_total(&id, expected);
            if self.src.tables[t].cfg.mode == SyncMode::Full {
                self.full_refresh(t, &files, ctx).await?;
            } else {
                for rel in &files {
                    if ctx.cancel.is_cancelled() {
                        return Ok(());
                    }
                    self.sync_file(t, rel, BatchKind::Snapshot, ctx).await?;
                }
                let gone: Vec<String> = self
                    .state
                    .tables
                    .get(&id.name)
                    .map(|m| m.keys().filter(|k| !files.contains(k)).cloned().collect())
                    .unwrap_or_default();
                for rel in gone {
                    self.sync_file(t, &rel, BatchKind::Stream, ctx).await?;
                }
            }
            let phase = if ctx.follow && self.src.tables[t].cfg.mode == SyncMode::Cdc {
                Phase::Streaming
            } else {
                Phase::Done
            };
            ctx.status.set_phase(&id, phase);
        }
        Ok(())
    }

    /// `full` mode: when anything differs from what was applied, truncate and
    /// load every file again.
    async fn full_refresh(
        &mut self,
        t: usize,
        files: &[String],
        ctx: &SourceContext,
    ) -> Result<()> {
        let name = self.src.tables[t].cfg.name.clone();
        let applied = self.state.tables.get(&name).cloned().unwrap_or_default();
        let mut unchanged = applied.len() == files.len() && applied.values().all(|f| f.done);
        if unchanged {
            for rel in files {
                let meta = std::fs::metadata(self.src.root.join(rel)).ok();
                let same = applied
                    .get(rel)
                    .zip(meta)
                    .is_some_and(|(f, m)| f.size == m.len() && f.mtime_ns == mtime_ns(&m));
                if !same {
                    unchanged = false;
                    break;
                }
            }
        }
        if unchanged {
            info!(table = %name, "full refresh: no file changed since the last run");
            return Ok(());
        }
        let schema = self.schema(t)?;
        self.state.tables.insert(name.clone(), BTreeMap::new());
        let truncate = Change {
            op: Op::Truncate,
            table: schema,
            before: None,
            after: None,
        };
        self.emit(vec![truncate], Vec::new(), BatchKind::Snapshot, None, ctx)
            .await?;
        for rel in files {
            self.sync_file(t, rel, BatchKind::Snapshot, ctx).await?;
        }
        Ok(())
    }

    /// Brings one file's contribution up to date: new, changed, resumed or
    /// removed, inside the table's tracing span.
    async fn sync_file(
        &mut self,
        t: usize,
        rel: &str,
        kind: BatchKind,
        ctx: &SourceContext,
    ) -> Result<()> {
        let span = tracing::info_span!("table", table = %self.src.tables[t].cfg.name, file = rel);
        self.sync_file_in_span(t, rel, kind, ctx)
            .instrument(span)
            .await
    }

    async fn sync_file_in_span(
        &mut self,
        t: usize,
        rel: &str,
        kind: BatchKind,
        ctx: &SourceContext,
    ) -> Result<()> {
        let table_name = self.src.tables[t].cfg.name.clone();
        let prev = self
            .state
            .tables
            .get(&table_name)
            .and_then(|m| m.get(rel))
            .cloned();
        let abs = self.src.root.join(rel);
        let meta = match std::fs::metadata(&abs) {
            Ok(m) if m.is_file() => Some(m),
            _ => None,
        };
        let Some(meta) = meta else {
            if let Some(prev) = prev {
                return self.removed(t, rel, prev, ctx).await;
            }
            return Ok(());
        };
        if let Some(p) = &prev
            && p.done
            && !p.quarantined
            && p.size == meta.len()
            && p.mtime_ns == mtime_ns(&meta)
        {
            return Ok(());
        }
        let pending = {
            let table = &self.src.tables[t];
            let schema = self.schema(t)?;
            let format = table.format_of(&abs).ok_or_else(|| FilesError::Table {
                table: table_name.clone(),
                detail: format!("cannot tell the format of {rel}"),
            })?;
            let dialect = table.dialect();
            let manifests = self.manifests.clone();
            let rel_owned = rel.to_owned();
            let prev = prev.clone();
            let meta = meta.clone();
            let others = self.other_digests(&table_name, rel);
            let table_owned = table_name.clone();
            tokio::task::spawn_blocking(move || {
                let elsewhere = Elsewhere {
                    manifests: &manifests,
                    table: &table_owned,
                    digests: &others,
                };
                read_and_diff(
                    t, &abs, &rel_owned, format, dialect, &schema, prev, &meta, &manifests,
                    &elsewhere,
                )
            })
            .await
            .map_err(|_| Error::internal("file reader stopped"))??
        };
        let Some(pending) = pending else {
            // Same content as already applied (touched, not changed).
            if let Some(mut p) = prev {
                p.size = meta.len();
                p.mtime_ns = mtime_ns(&meta);
                self.state
                    .tables
                    .entry(table_name)
                    .or_default()
                    .insert(rel.to_owned(), p);
            }
            return Ok(());
        };
        debug!(table = %table_name, file = rel, changes = pending.changes.len(), "file read");
        self.emit_file(pending, kind, ctx).await
    }

    async fn removed(
        &mut self,
        t: usize,
        rel: &str,
        prev: FileState,
        ctx: &SourceContext,
    ) -> Result<()> {
        let schema = self.schema(t)?;
        let table_name = schema.id.name.clone();
        let mut keys: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for digest in [Some(&prev.digest), prev.base.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(m) = self.manifests.read(&table_name, digest) {
                for (k, _) in m.rows {
                    if seen.insert(k.clone()) {
                        keys.push(k);
                    }
                }
            }
        }
        if schema.key.is_empty() {
            warn!(table = %table_name, file = rel, "file removed; without a key its rows cannot be deleted");
        }
        // A key another file of the table still has stays.
        let others = self.other_digests(&table_name, rel);
        let held = Elsewhere {
            manifests: &self.manifests,
            table: &table_name,
            digests: &others,
        }
        .keys();
        let changes: Vec<(Op, Row)> = keys
            .iter()
            .filter(|k| !held.contains(k.as_str()))
            .filter_map(|k| key_row(&schema, k))
            .map(|row| (Op::Delete, row))
            .collect();
        info!(table = %table_name, file = rel, deletes = changes.len(), "file removed");
        // The removal enters the position with the last batch; deletes
        // re-emitted after a crash are harmless.
        let chunks: Vec<Vec<Change>> = changes
            .chunks(self.src.batch_rows)
            .map(|c| {
                c.iter()
                    .map(|(_, row)| Change {
                        op: Op::Delete,
                        table: schema.clone(),
                        before: Some(row.clone()),
                        after: None,
                    })
                    .collect()
            })
            .collect();
        let last = chunks.len().saturating_sub(1);
        let mut chunks = chunks.into_iter();
        for i in 0..=last {
            if i == last
                && let Some(files) = self.state.tables.get_mut(&table_name)
            {
                files.remove(rel);
            }
            let batch = chunks.next().unwrap_or_default();
            self.emit(batch, Vec::new(), BatchKind::Stream, Some(Utc::now()), ctx)
                .await?;
        }
        Ok(())
    }

    /// The content digests of the other files of `table` (and the contents
    /// they are diffed against): what those files hold in the targets.
    fn other_digests(&self, table: &str, rel: &str) -> Vec<String> {
        self.state
            .tables
            .get(table)
            .into_iter()
            .flatten()
            .filter(|(other, _)| other.as_str() != rel)
            .flat_map(|(_, f)| [Some(f.digest.clone()), f.base.clone()])
            .flatten()
            .filter(|d| !d.is_empty())
            .collect()
    }

    /// Emits a file's changes in batches, recording progress in the state.
    async fn emit_file(&mut self, p: Pending, kind: BatchKind, ctx: &SourceContext) -> Result<()> {
        let schema = self.schema(p.table)?;
        let table_name = schema.id.name.clone();
        let total = p.changes.len() as u64;
        let mut state = p.file_state;
        let mut dead_letters = p.dead_letters;
        let mut offset = p.skip.min(total);
        let mut first = true;
        loop {
            let end = (offset + self.src.batch_rows as u64).min(total);
            let changes: Vec<Change> = p.changes[offset as usize..end as usize]
                .iter()
                .map(|(op, row)| match op {
                    Op::Delete => Change {
                        op: Op::Delete,
                        table: schema.clone(),
                        before: Some(row.clone()),
                        after: None,
                    },
                    op => Change {
                        op: *op,
                        table: schema.clone(),
                        before: None,
                        after: Some(row.clone()),
                    },
                })
                .collect();
            state.emitted = end;
            state.done = end == total;
            self.state
                .tables
                .entry(table_name.clone())
                .or_default()
                .insert(p.rel.clone(), state.clone());
            let letters = if first {
                std::mem::take(&mut dead_letters)
            } else {
                Vec::new()
            };
            if !changes.is_empty() || !letters.is_empty() || first {
                self.emit(changes, letters, kind, p.commit_time, ctx)
                    .await?;
            }
            first = false;
            offset = end;
            if offset >= total {
                return Ok(());
            }
        }
    }

    async fn emit(
        &mut self,
        changes: Vec<Change>,
        dead_letters: Vec<DeadLetter>,
        kind: BatchKind,
        commit_time: Option<DateTime<Utc>>,
        ctx: &SourceContext,
    ) -> Result<()> {
        self.seq += 1;
        let state =
            serde_json::to_value(&self.state).map_err(|e| Error::internal(e.to_string()))?;
        let batch = Batch {
            position: Position {
                seq: self.seq,
                state,
            },
            kind,
            txid: None,
            commit_time,
            changes,
            block: None,
            dead_letters,
            // A file read again (changed, or after a restart) repeats rows.
            inserts_are_new: false,
        };
        tokio::select! {
            sent = ctx.batches.send(batch) => sent.map_err(|_| Error::cancelled()),
            _ = ctx.cancel.cancelled() => Err(Error::cancelled()),
        }
    }

    /// Forgets manifests no acknowledged or pending position refers to.
    fn collect_garbage(&mut self, acked: Option<&Position>) {
        if let Some(p) = acked
            && let Ok(s) = serde_json::from_value::<FilesState>(p.state.clone())
        {
            self.acked_digests = s.digests();
        }
        let mut keep = self.acked_digests.clone();
        keep.extend(self.state.digests());
        self.manifests.retain(&keep);
    }

    /// Starts watching the folder. Called before the first full read, so
    /// that a file written while it runs is seen when following starts,
    /// not only by the next rescan.
    pub(crate) fn watch(&self) -> Result<Watch> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let root = self.src.root.clone();
        let mut debouncer =
            notify_debouncer_full::new_debouncer(self.src.debounce, None, move |res| {
                let _ = tx.send(res);
            })
            .map_err(|e| FilesError::Watch {
                path: root.clone(),
                detail: e.to_string(),
            })?;
        debouncer
            .watch(&self.src.root, notify::RecursiveMode::Recursive)
            .map_err(|e| FilesError::Watch {
                path: self.src.root.clone(),
                detail: e.to_string(),
            })?;
        info!(folder = %self.src.root.display(), "watching for changes");
        Ok(Watch {
            _debouncer: debouncer,
            events: rx,
        })
    }

    /// Follows the folder's changes as `watch` reports them, until
    /// cancelled.
    pub(crate) async fn follow(&mut self, watch: Watch, mut ctx: SourceContext) -> Result<()> {
        let Watch {
            _debouncer,
            events: mut rx,
        } = watch;
        let cdc: Vec<usize> = (0..self.src.tables.len())
            .filter(|&t| self.src.tables[t].cfg.mode == SyncMode::Cdc)
            .collect();
        // A rescan now and then catches anything the watcher missed.
        let mut rescan = tokio::time::interval(Duration::from_secs(30));
        rescan.tick().await;
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return Ok(()),
                changed = ctx.acknowledged.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let acked = ctx.acknowledged.borrow_and_update().clone();
                    self.collect_garbage(acked.as_ref());
                }
                _ = rescan.tick() => {
                    for &t in &cdc {
                        let mut files = self.src.list(&self.src.tables[t])?;
                        if let Some(known) = self.state.tables.get(&self.src.tables[t].cfg.name) {
                            files.extend(known.keys().cloned());
                        }
                        files.sort();
                        files.dedup();
                        for rel in files {
                            self.sync_file(t, &rel, BatchKind::Stream, &ctx).await?;
                        }
                    }
                }
                events = rx.recv() => {
                    let Some(events) = events else { return Ok(()) };
                    let events = match events {
                        Ok(events) => events,
                        Err(errors) => {
                            for e in errors {
                                warn!(error = %e, "file watcher error");
                            }
                            continue;
                        }
                    };
                    let mut touched: Vec<String> = events
                        .iter()
                        .flat_map(|e| e.paths.iter())
                        .filter_map(|p| self.src.relative(p))
                        .collect();
                    touched.sort();
                    touched.dedup();
                    for rel in touched {
                        for &t in &cdc {
                            if self.src.tables[t].matcher.is_match(&rel) {
                                self.sync_file(t, &rel, BatchKind::Stream, &ctx).await?;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Rows the snapshot will read from files not yet done (lines, less headers).
/// The records of `files` not yet done, for the snapshot's progress; a
/// file that cannot be counted counts nothing (reading it reports why).
fn expected_rows(
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
            format::record_count(&path, format).ok()
        })
        .sum()
}

fn key_string(schema: &TableSchema, row: &Row) -> String {
    let key: Vec<&Value> = schema.key_of(row);
    serde_json::to_string(&key).unwrap_or_default()
}

/// A row holding only the key values (others NULL), from a key string.
fn key_row(schema: &TableSchema, key: &str) -> Option<Row> {
    let values: Vec<Value> = serde_json::from_str(key).ok()?;
    let mut row = vec![Value::Null; schema.columns.len()];
    for (&i, v) in schema.key.iter().zip(values) {
        row[i] = v;
    }
    Some(row)
}

/// Reads a file and works out the changes it brings relative to what was
/// applied from it before. `None`: nothing to do.
#[allow(clippy::too_many_arguments)]
fn read_and_diff(
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
) -> Result<Option<Pending>, FilesError> {
    let commit_time = meta.modified().ok().map(DateTime::<Utc>::from);
    let quarantine = |prev: Option<FileState>, reason: String| {
        Ok(Some(quarantined(
            table,
            rel,
            schema,
            prev,
            meta,
            reason,
            commit_time,
        )))
    };
    let bytes = match std::fs::read(abs) {
        Ok(b) => b,
        Err(e) => return quarantine(prev, e.to_string()),
    };
    let digest = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
    if prev
        .as_ref()
        .is_some_and(|p| p.done && !p.quarantined && p.digest == digest)
    {
        return Ok(None);
    }
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
    };

    // Resuming the same content: redo the same diff and skip what was emitted.
    if let Some(p) = prev.as_ref().filter(|p| p.digest == digest) {
        let base = p.base.as_ref().and_then(|b| manifests.read(table_name, b));
        let changes = diff(schema, base.as_ref(), &parsed, &manifest, elsewhere);
        return Ok(Some(Pending {
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
    let (base_digest, base): (Option<String>, Option<Manifest>) = match &prev {
        None => (None, None),
        // Quarantined before any content of it was read: nothing applied.
        Some(p) if p.done && p.digest.is_empty() => (None, None),
        Some(p) if p.done => (
            Some(p.digest.clone()),
            manifests.read(table_name, &p.digest),
        ),
        Some(p) => {
            // Changed while half applied: treat everything it may have written
            // as present (deletes of absent keys are no-ops; rows are upserted).
            let mut merged = Manifest::default();
            for d in [Some(&p.digest), p.base.as_ref()].into_iter().flatten() {
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
    Ok(Some(Pending {
        table,
        rel: rel.to_owned(),
        // A resumed diff must be the same diff: record the base only when it
        // is one whole manifest.
        file_state: new_state(
            prev.as_ref()
                .filter(|p| p.done && base.is_some())
                .map(|p| p.digest.clone()),
        ),
        changes,
        dead_letters,
        skip: 0,
        commit_time,
    }))
}

/// The changes that turn `base` (what was applied) into `parsed`.
fn diff(
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
struct Elsewhere<'a> {
    manifests: &'a ManifestStore,
    table: &'a str,
    digests: &'a [String],
}

impl Elsewhere<'_> {
    /// Every key those contents hold.
    fn keys(&self) -> HashSet<String> {
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
fn quarantined(
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
