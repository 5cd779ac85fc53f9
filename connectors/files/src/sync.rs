//! The running source: the first full read of the folder, then following
//! it (new, changed and removed files), each file's changes emitted with
//! their position.

use super::*;
use crate::diff::{Content, Diff, Differ, Prepared, delete_of, key_id};
use crate::format::Record;
use crate::read::{
    Elsewhere, Reading, Streaming, duplicate_key, expected_rows, key_row, key_string, read_and_diff,
};

/// The most deletes of keys a changed file no longer has per batch. They
/// hit rows spread over the whole table (in the order of their keys'
/// hashes), and a target may hold memory for every stretch of stored rows
/// a transaction deletes from until it commits (DuckDB keeps 16 KB per
/// 2,048 rows until a checkpoint): 10,000 such deletes held over 100 MB
/// of it in a 22-million-row table, 1,024 hold at most 16 MB.
const DELETE_BATCH_ROWS: usize = 1_024;

/// The running source: its state and the next sequence number.
pub(crate) struct FolderSync {
    src: FilesSource,
    state: FilesState,
    seq: u64,
    manifests: ManifestStore,
    acked_digests: std::collections::BTreeSet<(String, String)>,
    /// This run restates every table (see [`Start::Restate`]): each is
    /// truncated before its files are read.
    restate: bool,
    /// Changes sent in snapshot batches of the table being read first: its
    /// snapshot's size once read (the estimate before).
    snapshot_changes: u64,
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
pub(crate) struct Pending {
    pub(crate) table: usize,
    pub(crate) rel: String,
    pub(crate) file_state: FileState,
    pub(crate) changes: Vec<(Op, Row)>,
    pub(crate) dead_letters: Vec<DeadLetter>,
    pub(crate) skip: u64,
    pub(crate) commit_time: Option<DateTime<Utc>>,
}

impl FolderSync {
    pub(crate) fn new(src: FilesSource, ctx: &SourceContext) -> Result<Self> {
        let start = ctx.start();
        let (state, seq) = match (&ctx.resume, start) {
            (Some(p), Start::Resume { .. }) => {
                let mut state: FilesState =
                    serde_json::from_value(p.state.clone()).map_err(|e| {
                        Error::new(
                            ErrorKind::State,
                            format!(
                                "the stored position of source `{}` is not a files position: {e}",
                                ctx.name
                            ),
                        )
                    })?;
                // A sink further ahead may hold other contents of some
                // files: those are read again against every content any
                // sink holds.
                for ahead in ctx.held.iter().filter(|h| h.seq > p.seq) {
                    if let Ok(theirs) = serde_json::from_value::<FilesState>(ahead.state.clone()) {
                        state.hold_also(&theirs);
                    }
                }
                // Batches are rebuilt from the files as they are now, which
                // a sink further ahead may not have seen: number them above
                // everything any sink holds.
                (state, p.seq.max(ctx.highest_held))
            }
            (_, Start::Restate { generation }) => (
                FilesState {
                    generation,
                    ..FilesState::default()
                },
                ctx.highest_held,
            ),
            _ => (FilesState::default(), ctx.highest_held),
        };
        let manifests = ManifestStore::open(&src.state_dir)?;
        let acked_digests = state.digests();
        Ok(FolderSync {
            src,
            state,
            seq,
            manifests,
            acked_digests,
            restate: matches!(start, Start::Restate { .. }),
            snapshot_changes: 0,
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
                if self.restate {
                    // Some sinks hold rows of an earlier run (see
                    // `Start::Restate`): every file is read again as new,
                    // so rows of files removed or changed meanwhile must go
                    // from the sinks that hold them.
                    self.truncate(t, ctx).await?;
                }
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
            // Read: the estimate gives way to what was sent.
            ctx.status
                .set_snapshot_total(&id, std::mem::take(&mut self.snapshot_changes));
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
        // A restated table is emptied and loaded again even when its files
        // look as applied (after a drop, none is recorded).
        let mut unchanged =
            !self.restate && applied.len() == files.len() && applied.values().all(|f| f.done);
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
        self.state.tables.insert(name.clone(), BTreeMap::new());
        self.truncate(t, ctx).await?;
        for rel in files {
            self.sync_file(t, rel, BatchKind::Snapshot, ctx).await?;
        }
        Ok(())
    }

    /// What the state says of file `rel` of `table`.
    fn file_state(&self, table: &str, rel: &str) -> Option<FileState> {
        self.state
            .tables
            .get(table)
            .and_then(|m| m.get(rel))
            .cloned()
    }

    /// Empties table `t` in every sink, as one batch.
    async fn truncate(&mut self, t: usize, ctx: &SourceContext) -> Result<()> {
        let schema = self.schema(t)?;
        self.emit(
            vec![Change::truncate(schema)],
            Vec::new(),
            BatchKind::Snapshot,
            None,
            ctx,
        )
        .await
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
        let prev = self.file_state(&table_name, rel);
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
        let (reading, schema) = {
            let table = &self.src.tables[t];
            let schema = self.schema(t)?;
            let format = table.format_of(&abs).ok_or_else(|| FilesError::Table {
                table: table_name.clone(),
                detail: format!("cannot tell the format of {rel}"),
            })?;
            let dialect = table.dialect();
            let overrides = table.overrides()?;
            let manifests = self.manifests.clone();
            let rel_owned = rel.to_owned();
            let prev = prev.clone();
            let meta = meta.clone();
            let others = self.other_digests(&table_name, rel);
            let table_owned = table_name.clone();
            tokio::task::spawn_blocking(move || {
                // A column the file brings (added where the files are
                // exported) becomes the table's next schema version, so its
                // values reach the targets; other rows hold NULL there.
                let schema = match added_columns(&abs, format, dialect, &overrides, &schema) {
                    added if added.is_empty() => schema,
                    added => {
                        let names: Vec<&str> = added.iter().map(|c| c.name.as_str()).collect();
                        info!(table = %schema.id, columns = %names.join(", "), "columns added");
                        evolved(&schema, added)
                    }
                };
                let elsewhere = Elsewhere {
                    manifests: &manifests,
                    table: &table_owned,
                    digests: &others,
                };
                read_and_diff(
                    t, &abs, &rel_owned, &schema, prev, &meta, &manifests, &elsewhere,
                )
                .map(|reading| (reading, schema))
            })
            .await
            .map_err(|_| Error::internal("file reader stopped"))??
        };
        self.src.tables[t].schema = Some(schema.clone());
        match reading {
            Reading::Unchanged => {
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
                Ok(())
            }
            Reading::Whole(pending) => {
                debug!(table = %table_name, file = rel, changes = pending.changes.len(), "file read");
                self.emit_file(pending, kind, ctx).await
            }
            Reading::Stream(plan) => {
                let changed = self
                    .stream_file(t, rel, &schema, plan, &meta, kind, ctx)
                    .await?;
                if changed {
                    // The file changed while it was read: what was read is
                    // in the targets and in the manifest of the content
                    // first seen; read it again, as a change of that.
                    info!(table = %table_name, file = rel, "the file changed while it was read; reading it again");
                    Box::pin(self.sync_file_in_span(t, rel, kind, ctx)).await
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Emits a file's changes as it is read: a blocking reader parses it
    /// record by record, works out each record's change (every row an
    /// insert, or the diff by key against what the file put in the targets,
    /// its deletes once the content is all read) and hands over one batch
    /// at a time (at most two wait), writing each row's key to the
    /// content's manifest before the batch that holds it goes out. Memory
    /// holds a few batches and, for a diff, a byte per row of the content
    /// (see [`Differ`]), whatever the file's size. Returns `true` when the
    /// bytes read were not the content first digested (the file changed
    /// meanwhile; it is read again).
    #[allow(clippy::too_many_arguments)]
    async fn stream_file(
        &mut self,
        t: usize,
        rel: &str,
        schema: &Arc<TableSchema>,
        plan: Streaming,
        meta: &std::fs::Metadata,
        kind: BatchKind,
        ctx: &SourceContext,
    ) -> Result<bool> {
        struct Piece {
            changes: Vec<(Op, Row)>,
            dead_letters: Vec<DeadLetter>,
            /// Changes of the content worked out so far.
            through: u64,
            /// The last piece: whether the bytes read were the content
            /// first digested.
            last: Option<bool>,
            /// The content changed before anything of it went out: the
            /// file's state stays as it was.
            unread: bool,
        }
        let table = &self.src.tables[t];
        let table_name = schema.id.name.clone();
        let abs = self.src.root.join(rel);
        let format = table.format_of(&abs).ok_or_else(|| FilesError::Table {
            table: table_name.clone(),
            detail: format!("cannot tell the format of {rel}"),
        })?;
        let dialect = table.dialect();
        let batch_rows = self.src.batch_rows;
        let delete_rows = batch_rows.min(DELETE_BATCH_ROWS);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(2);
        let reader = {
            let (schema, manifests, rel) = (schema.clone(), self.manifests.clone(), rel.to_owned());
            let (digest, skip, diff, others) =
                (plan.digest.clone(), plan.skip, plan.diff, plan.others);
            tokio::task::spawn_blocking(move || -> std::result::Result<(), FilesError> {
                // The diff is settled first (a pass over the content and
                // the base), before anything of this read goes out.
                let keep_going = || !tx.is_closed();
                let prepared = Differ::prepare(
                    diff.as_ref(),
                    &schema,
                    &manifests,
                    &Content {
                        abs: &abs,
                        rel: &rel,
                        format,
                        dialect,
                        digest: &digest,
                    },
                    &keep_going,
                )?;
                let mut differ = match prepared {
                    Prepared::Ready(differ) => differ,
                    Prepared::Stopped => return Ok(()),
                    Prepared::Changed => {
                        // Read again, as a change of what the targets hold;
                        // nothing went out.
                        let _ = tx.blocking_send(Piece {
                            changes: Vec::new(),
                            dead_letters: Vec::new(),
                            through: skip,
                            last: Some(false),
                            unread: true,
                        });
                        return Ok(());
                    }
                };
                let file =
                    std::fs::File::open(&abs).map_err(|e| FilesError::read(&abs, e.to_string()))?;
                // Beside what earlier reads of this content that were cut
                // short wrote (a sink may hold those keys), until it is whole.
                let mut manifest =
                    manifests.writer(&schema.id.name, &digest, !schema.key.is_empty())?;
                let (mut changes, mut dead_letters) = (Vec::new(), Vec::new());
                let mut counted = 0u64;
                let mut failed = None;
                let read =
                    format::stream_records(&abs, &rel, file, format, dialect, &schema, |record| {
                        let entry = match record {
                            Record::Row(r) => {
                                let key = key_string(&schema, &r.row);
                                let entry = manifest.row(&key, r.hash);
                                if let Some(op) = differ.row() {
                                    counted += 1;
                                    if counted > skip {
                                        changes.push((op, r.row));
                                    }
                                }
                                entry
                            }
                            Record::Dead(d) => {
                                let hash = xxhash_rust::xxh3::xxh3_64(d.raw.as_bytes());
                                let entry = manifest.rejected(hash);
                                // One read before the last emitted change went
                                // out with it; one the earlier content had was
                                // reported then.
                                if counted >= skip && !differ.known_reject(hash) {
                                    dead_letters.push(*d);
                                }
                                entry
                            }
                        };
                        if let Err(e) = entry {
                            failed = Some(e);
                            return false;
                        }
                        if changes.len() < batch_rows {
                            return true;
                        }
                        if let Err(e) = manifest.flush() {
                            failed = Some(e);
                            return false;
                        }
                        let piece = Piece {
                            changes: std::mem::take(&mut changes),
                            dead_letters: std::mem::take(&mut dead_letters),
                            through: counted,
                            last: None,
                            unread: false,
                        };
                        tx.blocking_send(piece).is_ok()
                    });
                if let Some(e) = failed {
                    return Err(e);
                }
                let Some(read) = read? else {
                    // Stopped: the source is stopping.
                    return Ok(());
                };
                let same = read == digest;
                if same {
                    // Keys the content holds more than once: none of their
                    // rows is kept (which one the file means cannot be told).
                    // Rows without a key are told apart by place.
                    let duplicates = if schema.key.is_empty() {
                        Vec::new()
                    } else {
                        manifest.duplicate_keys()?
                    };
                    for (key, _) in &duplicates {
                        manifest.refused(key)?;
                    }
                    manifest.finish()?;
                    let send = |changes: &mut Vec<(Op, Row)>,
                                dead_letters: &mut Vec<DeadLetter>,
                                through: u64| {
                        tx.blocking_send(Piece {
                            changes: std::mem::take(changes),
                            dead_letters: std::mem::take(dead_letters),
                            through,
                            last: None,
                            unread: false,
                        })
                        .is_ok()
                    };
                    // The keys the content no longer has: only once it was
                    // all read as it was digested.
                    let Some(deletes) = differ.deletes(&schema, &manifests, &keep_going)? else {
                        return Ok(());
                    };
                    for delete in deletes {
                        let delete = delete?;
                        counted += 1;
                        if counted <= skip {
                            continue;
                        }
                        changes.push(delete);
                        if changes.len() >= delete_rows
                            && !send(&mut changes, &mut dead_letters, counted)
                        {
                            return Ok(());
                        }
                    }
                    // The rows written of a key held more than once are
                    // deleted, unless another file of the table holds the
                    // key; each such key is a dead letter.
                    let held = Elsewhere {
                        manifests: &manifests,
                        table: &schema.id.name,
                        digests: &others,
                    }
                    .holding(
                        &duplicates.iter().map(|(k, _)| key_id(k)).collect(),
                        &keep_going,
                    );
                    let Some(held) = held else {
                        return Ok(());
                    };
                    for (key, times) in duplicates {
                        let elsewhere = held.contains(&key_id(&key));
                        let dead_letter = duplicate_key(&schema, &rel, &key, times, elsewhere);
                        if elsewhere {
                            if counted >= skip {
                                dead_letters.push(dead_letter);
                            }
                            continue;
                        }
                        counted += 1;
                        if counted <= skip {
                            continue;
                        }
                        dead_letters.push(dead_letter);
                        changes.push(delete_of(&manifests, &key, key_row(&schema, &key))?);
                        if changes.len() >= delete_rows
                            && !send(&mut changes, &mut dead_letters, counted)
                        {
                            return Ok(());
                        }
                    }
                } else {
                    // Left unfinished: the keys the reads put in the
                    // targets, for the diff of the next read.
                    manifest.flush()?;
                }
                let _ = tx.blocking_send(Piece {
                    changes,
                    dead_letters,
                    through: counted,
                    last: Some(same),
                    unread: false,
                });
                Ok(())
            })
        };
        let mut state = plan.file_state;
        let mut changed = None;
        while let Some(piece) = rx.recv().await {
            if piece.unread {
                changed = Some(true);
                continue;
            }
            state.emitted = piece.through;
            state.done = piece.last == Some(true);
            if state.done {
                // Every content merged into the diff is behind it now.
                state.also.clear();
            }
            changed = piece.last.map(|same| !same);
            self.state
                .tables
                .entry(table_name.clone())
                .or_default()
                .insert(rel.to_owned(), state.clone());
            let changes = piece
                .changes
                .into_iter()
                .map(|(op, row)| change_of(schema, op, row))
                .collect();
            self.emit(changes, piece.dead_letters, kind, plan.commit_time, ctx)
                .await?;
        }
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(FilesError::Read { detail, .. })) => {
                // Unreadable (its header, or the disk under it): quarantined,
                // keeping what went out (it is read again when it changes).
                let prev = self.file_state(&table_name, rel);
                let pending =
                    read::quarantined(t, rel, schema, prev, meta, detail, plan.commit_time);
                self.emit_file(pending, kind, ctx).await?;
                return Ok(false);
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(Error::internal("file reader stopped")),
        }
        match changed {
            Some(changed) => Ok(changed),
            // The reader stopped before its end: the source is stopping.
            None => Err(Error::cancelled()),
        }
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
        if schema.key.is_empty() {
            warn!(table = %table_name, file = rel, "file removed; without a key its rows cannot be deleted");
        }
        // Every key the file's contents listed goes, unless another file
        // of the table holds it: worked out on disk (a removed file may
        // hold tens of millions of keys) and sent a batch at a time.
        let diff = Diff {
            base: prev.contents().map(str::to_owned).collect(),
            merged: true,
            others: self.other_digests(&table_name, rel),
        };
        let batch_rows = self.src.batch_rows;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Change>>(2);
        let finder = {
            let (schema, manifests) = (schema.clone(), self.manifests.clone());
            tokio::task::spawn_blocking(move || -> std::result::Result<(), FilesError> {
                let keep_going = || !tx.is_closed();
                let mut differ = match Differ::removal(&diff, &schema, &manifests, &keep_going)? {
                    Prepared::Ready(differ) => differ,
                    Prepared::Stopped | Prepared::Changed => return Ok(()),
                };
                let mut chunk = Vec::new();
                let Some(deletes) = differ.deletes(&schema, &manifests, &keep_going)? else {
                    return Ok(());
                };
                for delete in deletes {
                    let (op, row) = delete?;
                    chunk.push(change_of(&schema, op, row));
                    if chunk.len() >= batch_rows
                        && tx.blocking_send(std::mem::take(&mut chunk)).is_err()
                    {
                        return Ok(());
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.blocking_send(chunk);
                }
                Ok(())
            })
        };
        // The removal enters the position with the last batch (one is held
        // back until the next comes); deletes re-emitted after a crash are
        // harmless.
        let mut held: Option<Vec<Change>> = None;
        let mut deletes = 0usize;
        loop {
            let chunk = tokio::select! {
                chunk = rx.recv() => chunk,
                () = ctx.cancel.cancelled() => return Err(Error::cancelled()),
            };
            let Some(chunk) = chunk else { break };
            deletes += chunk.len();
            if let Some(earlier) = held.replace(chunk) {
                self.emit(
                    earlier,
                    Vec::new(),
                    BatchKind::Stream,
                    Some(Utc::now()),
                    ctx,
                )
                .await?;
            }
        }
        finder
            .await
            .map_err(|_| Error::internal("finding a removed file's deletes stopped"))??;
        info!(table = %table_name, file = rel, deletes, "file removed");
        if let Some(files) = self.state.tables.get_mut(&table_name) {
            files.remove(rel);
        }
        self.emit(
            held.unwrap_or_default(),
            Vec::new(),
            BatchKind::Stream,
            Some(Utc::now()),
            ctx,
        )
        .await?;
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
            .flat_map(|(_, f)| f.contents().map(str::to_owned))
            .collect()
    }

    /// Emits a file's changes in batches, recording progress in the state.
    async fn emit_file(&mut self, p: Pending, kind: BatchKind, ctx: &SourceContext) -> Result<()> {
        let schema = self.schema(p.table)?;
        let table_name = schema.id.name.clone();
        let total = p.changes.len() as u64;
        let mut state = p.file_state;
        // A quarantine changes nothing of how far the file's content went.
        let keeps = state.quarantined;
        let mut dead_letters = p.dead_letters;
        let mut offset = p.skip.min(total);
        let mut first = true;
        loop {
            let end = (offset + self.src.batch_rows as u64).min(total);
            let changes: Vec<Change> = p.changes[offset as usize..end as usize]
                .iter()
                .map(|(op, row)| change_of(&schema, *op, row.clone()))
                .collect();
            if !keeps {
                state.emitted = end;
                state.done = end == total;
                if state.done {
                    // Every content merged into the diff is behind it now.
                    state.also.clear();
                }
            }
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
        if kind == BatchKind::Snapshot {
            self.snapshot_changes += changes.len() as u64;
        }
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
            continues: false,
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

/// The change a file's row brings: a delete holds the key as its before
/// image, any other the row as its after image.
fn change_of(schema: &Arc<TableSchema>, op: Op, row: Row) -> Change {
    match op {
        Op::Delete => Change {
            op,
            table: schema.clone(),
            before: Some(row),
            after: None,
        },
        op => Change {
            op,
            table: schema.clone(),
            before: None,
            after: Some(row),
        },
    }
}

pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}
