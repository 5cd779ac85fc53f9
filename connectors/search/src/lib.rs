//! The search index target (`kind = "search"`): an embedded full-text
//! index (tantivy) in a folder beside the pipeline, one document per row.
//!
//! * **Fields.** Each column becomes a field of its name, indexed by its
//!   type or its settings (see [`config`]); the index's own fields begin
//!   with `_`: `_table`, `_kind`, `_id` (the row's table and key, a unique
//!   term), `_key`, `_row` (every column's value as exact JSON, see
//!   [`syncline_engine::encode`]), and in history and append modes `_op`
//!   and `_seq`.
//! * **Exactly once.** The checkpoint is the payload of the tantivy commit
//!   that holds the batches: both are durable together or not at all.
//!   Batches are grouped into commits (at most `commit_rows` rows and
//!   `commit_ms` milliseconds) and acknowledged only once committed
//!   ([`Sink::holds_uncommitted`]); a crash loses only uncommitted work,
//!   which the source sends again.
//! * **Updates** delete the row's `_id` term and add the new document;
//!   values the source left out come from the row the index keeps.
//! * **Schema changes** (a column added, other field settings) make a new
//!   generation of the index from the rows it keeps; see [`index`].

pub mod config;
mod error;
pub mod index;
mod plan;
pub mod query;
mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use syncline_engine::Result;
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::{Check, DeadLetterRecord, KeptRow, Sink};
use syncline_engine::model::{TableId, TableSchema};
use tantivy::collector::{Count, DocSetCollector};
use tantivy::query::AllQuery;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};
use tracing::info;

pub use config::{
    ColumnConfig, FieldKind, FieldSpec, Language, SearchTableConfig, SearchTargetConfig,
};
pub use error::SearchError;
use index::{DEAD, Fields, Folder, HeldPosition, Payload};
use plan::{Fill, Overlay, StoredDeadLetter, TableState, WriteOp};
use syncline_engine::apply::Withheld;

/// Memory the index writer may use per thread before it writes a segment.
const WRITER_MEMORY_PER_THREAD: usize = 48 << 20;

/// The live index, opened for writing.
struct Open {
    generation: u64,
    fields: Fields,
    writer: IndexWriter<TantivyDocument>,
    /// A reader of the last commit, opened when a row must be read and
    /// dropped at each commit: a reader keeps every segment of its commit
    /// mapped, and with it every page a later merge reads of them.
    reader: Option<IndexReader>,
    /// What the last commit holds.
    committed: Payload,
    /// What the next commit will hold.
    pending: Payload,
    /// Rows applied since the last commit.
    overlay: Overlay,
    /// What each table holds as far as rows promised new go (applied,
    /// committed or not).
    fills: HashMap<String, Fill>,
    /// Changes applied since the last commit, and since when.
    pending_rows: u64,
    since: Option<Instant>,
    /// Rows whose last change here is a dead letter: with what was
    /// applied since the last commit, and as of that commit.
    withheld: Withheld,
    committed_withheld: Withheld,
    /// The writer could not be rolled back after a failed write: it takes
    /// nothing more (a new run reopens the index at its last commit).
    lost: bool,
}

impl std::fmt::Debug for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Open")
            .field("generation", &self.generation)
            .field("committed", &self.committed)
            .field("pending_rows", &self.pending_rows)
            .finish_non_exhaustive()
    }
}

/// The search index sink.
#[derive(Debug)]
pub struct SearchSink {
    config: SearchTargetConfig,
    pipeline: String,
    folder: Folder,
    tables: HashMap<TableId, TableState>,
    open: Option<Open>,
    /// The parts of a source transaction whose last part has not come, per
    /// source (see [`Batch::continues`]).
    unfinished: BTreeMap<String, Vec<Arc<Batch>>>,
}

/// Runs blocking index work without stalling the async runtime's other
/// tasks where the runtime allows it.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn writer_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

impl SearchSink {
    /// A sink of `pipeline` writing as `config` says; `base_dir` is the
    /// pipeline file's folder (a relative `path` is taken from there).
    pub fn new(config: SearchTargetConfig, base_dir: &Path, pipeline: &str) -> SearchSink {
        let root = base_dir.join(&config.path);
        SearchSink {
            config,
            pipeline: pipeline.to_owned(),
            folder: Folder::new(root),
            tables: HashMap::new(),
            open: None,
            unfinished: BTreeMap::new(),
        }
    }

    /// The index folder.
    pub fn path(&self) -> &Path {
        self.folder.path()
    }

    fn table_state(
        &self,
        schema: &Arc<TableSchema>,
    ) -> std::result::Result<TableState, SearchError> {
        if self.config.mode == WriteMode::Upsert && schema.key.is_empty() {
            return Err(SearchError::Config {
                table: schema.id.name.clone(),
                detail: "the table has no primary key, so its rows cannot be found again to update or delete; give it one, or use `mode = \"append\"` or `\"history\"`".into(),
            });
        }
        Ok(TableState {
            schema: schema.clone(),
            plans: self.config.columns(schema)?,
        })
    }

    /// The fields every table of the index needs (`payload` holds those of
    /// tables this sink does not write), by name, and this sink's tables'
    /// own; refuses two tables indexing one name differently.
    #[allow(clippy::type_complexity)]
    fn wanted(
        &self,
        payload: &Payload,
    ) -> std::result::Result<
        (
            BTreeMap<String, FieldSpec>,
            BTreeMap<String, BTreeMap<String, FieldSpec>>,
        ),
        SearchError,
    > {
        let mut per_table = payload.fields.clone();
        for state in self.tables.values() {
            let own: BTreeMap<String, FieldSpec> = state
                .schema
                .columns
                .iter()
                .zip(&state.plans)
                .filter_map(|(c, p)| p.field.clone().map(|f| (c.name.clone(), f)))
                .collect();
            per_table.insert(state.schema.id.name.clone(), own);
        }
        let mut wanted: BTreeMap<String, FieldSpec> = BTreeMap::new();
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (table, columns) in &per_table {
            for (column, spec) in columns {
                if let Some(held) = wanted.get(column)
                    && held != spec
                {
                    let other = owner.get(column.as_str()).copied().unwrap_or_default();
                    return Err(SearchError::Config {
                        table: table.clone(),
                        detail: format!(
                            "column `{column}` would be indexed as {}, but table `{other}` indexes its `{column}` as {}; one index has one field per name: give both the same `index` settings, or send the tables to separate search targets",
                            spec.describe(),
                            held.describe()
                        ),
                    });
                }
                wanted.insert(column.clone(), spec.clone());
                owner.insert(column, table);
            }
        }
        Ok((wanted, per_table))
    }

    /// Whether the index lacks a field `wanted` needs (or has it otherwise).
    fn lacks(existing: &BTreeMap<String, FieldSpec>, wanted: &BTreeMap<String, FieldSpec>) -> bool {
        wanted.iter().any(|(n, s)| existing.get(n) != Some(s))
    }

    fn writer(
        &self,
        index: &Index,
    ) -> std::result::Result<IndexWriter<TantivyDocument>, SearchError> {
        let threads = writer_threads();
        index
            .writer_with_num_threads(threads, threads * WRITER_MEMORY_PER_THREAD)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => SearchError::Refused {
                    path: self.folder.path().display().to_string(),
                    detail: "another process is writing this index (a pipeline running with this target, or its dead-letter command); stop it first".into(),
                },
                other => SearchError::Index {
                    path: self.folder.path().display().to_string(),
                    what: "opening the index for writing".into(),
                    source: other,
                },
            })
    }

    /// Opens the live generation for writing (creating the index where
    /// there is none), rebuilt with the fields the tables need.
    fn open_index(&mut self) -> std::result::Result<Open, SearchError> {
        std::fs::create_dir_all(self.folder.path()).map_err(|source| SearchError::Io {
            path: self.folder.path().display().to_string(),
            what: "creating the index folder".into(),
            source,
        })?;
        self.folder.ensure_ours()?;
        let (index, generation) = match (self.folder.current()?, self.folder.open_current()?) {
            (Some(generation), Some(index)) => {
                self.folder.remove_others(generation);
                (index, generation)
            }
            _ => {
                let (wanted, _) = self.wanted(&Payload::default())?;
                let index = self.folder.create(1, Fields::schema(&wanted))?;
                let mut writer = self.writer(&index)?;
                let mut prepared = writer
                    .prepare_commit()
                    .map_err(self.folder.index_error("creating the index"))?;
                prepared.set_payload(&payload_text(&Payload::default())?);
                prepared
                    .commit()
                    .map_err(self.folder.index_error("creating the index"))?;
                drop(writer);
                self.folder.make_current(1)?;
                (index, 1)
            }
        };
        let fields = Fields::of(&index.schema())?;
        let committed = index::payload(&index, &self.folder)?;
        let mut pending = committed.clone();
        let mut names: Vec<&str> = self
            .tables
            .values()
            .map(|t| t.schema.id.name.as_str())
            .collect();
        names.sort_unstable();
        for name in names {
            match committed.tables.get(name) {
                Some(owner) if *owner != self.pipeline => {
                    return Err(SearchError::Refused {
                        path: self.folder.path().display().to_string(),
                        detail: format!(
                            "table `{name}` of this index is written by pipeline `{owner}`; two pipelines writing one table would overwrite each other's rows. Give this target another `path`, or drop that pipeline"
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    pending
                        .tables
                        .insert(name.to_owned(), self.pipeline.clone());
                }
            }
        }
        let writer = self.writer(&index)?;
        let mut open = Open {
            generation,
            fields,
            writer,
            reader: None,
            pending,
            committed,
            overlay: Overlay::default(),
            fills: HashMap::new(),
            pending_rows: 0,
            since: None,
            withheld: Withheld::default(),
            committed_withheld: Withheld::default(),
            lost: false,
        };
        // The tables claimed (and their fields) are committed at once, for
        // the next pipeline to find.
        let existing = open.fields.specs();
        let (wanted, per_table) = self.wanted(&open.committed)?;
        open.pending.fields = per_table;
        if open.pending != open.committed {
            commit(&mut open, &self.folder)?;
        }
        if Self::lacks(&existing, &wanted) {
            // Fields no table needs any more stay: their documents keep them.
            let mut all = existing;
            all.extend(wanted);
            open = self.rebuild(open, &all)?;
        }
        open.fills = self.fills(&mut open)?;
        Ok(open)
    }

    /// Each upsert table's fill as committed: empty, or holding documents
    /// from before this run.
    fn fills(&self, open: &mut Open) -> std::result::Result<HashMap<String, Fill>, SearchError> {
        let mut fills = HashMap::new();
        if self.config.mode != WriteMode::Upsert {
            return Ok(fills);
        }
        let searcher = open.searcher(&self.folder)?;
        for t in self.tables.values() {
            let name = t.schema.id.name.as_str();
            let held = searcher
                .search(&open.fields.of_table(name, index::DOC), &Count)
                .map_err(self.folder.index_error("counting a table's documents"))?;
            fills.insert(
                name.to_owned(),
                if held == 0 {
                    Fill::Empty
                } else {
                    Fill::Unknown
                },
            );
        }
        Ok(fills)
    }

    /// A new generation of the index with `wanted` fields, holding every
    /// document of `open` (committed first), made live.
    fn rebuild(
        &self,
        mut open: Open,
        wanted: &BTreeMap<String, FieldSpec>,
    ) -> std::result::Result<Open, SearchError> {
        commit(&mut open, &self.folder)?;
        let started = Instant::now();
        let searcher = open.searcher(&self.folder)?;
        let Open {
            writer,
            generation,
            fields: old_fields,
            committed,
            fills: open_fills,
            withheld,
            ..
        } = open;
        writer
            .wait_merging_threads()
            .map_err(self.folder.index_error("finishing the index's merges"))?;
        let generation = generation + 1;
        let index = self.folder.create(generation, Fields::schema(wanted))?;
        let fields = Fields::of(&index.schema())?;
        let mut writer = self.writer(&index)?;
        let found = searcher
            .search(&AllQuery, &DocSetCollector)
            .map_err(self.folder.index_error("reading the index"))?;
        let mut addresses: Vec<_> = found.into_iter().collect();
        addresses.sort();
        let count = addresses.len();
        for address in addresses {
            let doc: TantivyDocument = searcher
                .doc(address)
                .map_err(self.folder.index_error("reading a document"))?;
            let kept = index::kept(&doc, &old_fields);
            let mut copy = TantivyDocument::default();
            copy.add_text(fields.table, &kept.table);
            copy.add_text(fields.kind, &kept.kind);
            if !kept.id.is_empty() {
                copy.add_text(fields.id, &kept.id);
            }
            if let Some(key) = &kept.key {
                copy.add_text(fields.key, key);
            }
            copy.add_text(fields.row, &kept.row);
            if let Some(op) = &kept.op {
                copy.add_text(fields.op, op);
            }
            if let Some(seq) = kept.seq {
                copy.add_u64(fields.seq, seq);
            }
            if kept.kind == index::DOC {
                fields.index_row(&mut copy, &index::parse_row(&kept.row)?);
            }
            writer
                .add_document(copy)
                .map_err(self.folder.index_error("copying a document"))?;
        }
        let mut prepared = writer
            .prepare_commit()
            .map_err(self.folder.index_error("committing the new generation"))?;
        prepared.set_payload(&payload_text(&committed)?);
        prepared
            .commit()
            .map_err(self.folder.index_error("committing the new generation"))?;
        drop(searcher);
        self.folder.make_current(generation)?;
        info!(
            path = %self.folder.path().display(),
            generation,
            documents = count,
            secs = started.elapsed().as_secs_f64(),
            "search index rebuilt with new fields"
        );
        Ok(Open {
            generation,
            fields,
            writer,
            reader: None,
            pending: committed.clone(),
            committed,
            overlay: Overlay::default(),
            // The same documents as before.
            fills: open_fills,
            pending_rows: 0,
            since: None,
            committed_withheld: withheld.clone(),
            withheld,
            lost: false,
        })
    }

    /// Takes up newer schema versions the batches carry (a column added at
    /// the source): committed first, the index gets its new fields.
    fn evolve(&mut self, batches: &[Arc<Batch>]) -> std::result::Result<(), SearchError> {
        let mut changed = false;
        for change in batches.iter().flat_map(|b| b.changes.iter()) {
            let Some(state) = self.tables.get(&change.table.id) else {
                continue;
            };
            if change.table.version > state.schema.version
                && change.table.columns != state.schema.columns
            {
                let evolved = self.table_state(&change.table)?;
                self.tables.insert(change.table.id.clone(), evolved);
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let existing = open.fields.specs();
        let (wanted, per_table) = match self.wanted(&open.pending) {
            Ok(w) => w,
            Err(e) => {
                self.open = Some(open);
                return Err(e);
            }
        };
        let mut open = open;
        open.pending.fields = per_table;
        self.open = Some(if Self::lacks(&existing, &wanted) {
            let mut all = existing;
            all.extend(wanted);
            self.rebuild(open, &all)?
        } else {
            open
        });
        Ok(())
    }

    fn opened(&mut self) -> std::result::Result<&mut Open, SearchError> {
        self.open
            .as_mut()
            .ok_or_else(|| SearchError::State("the sink was used before it was opened".into()))
    }

    /// Plans and applies `batches` (uncommitted); `source`'s position moves
    /// to the last one's unless `replay`.
    fn apply(
        &mut self,
        source: &str,
        batches: &[Arc<Batch>],
        replay: bool,
    ) -> std::result::Result<(), SearchError> {
        let mode = self.config.mode;
        let pipeline = self.pipeline.clone();
        let tables = &self.tables;
        let folder = &self.folder;
        // Replayed dead letters are screened on their own.
        let none = Withheld::default();
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| SearchError::State("the sink was used before it was opened".into()))?;
        if open.lost {
            return Err(lost_writer());
        }
        let planned = loop {
            let Open {
                writer,
                reader,
                fields,
                overlay,
                fills,
                withheld,
                ..
            } = &mut *open;
            let withheld = if replay { &none } else { &*withheld };
            let mut searcher = || searcher_of(reader, writer.index(), folder);
            match plan::build(
                &mut searcher,
                fields,
                overlay,
                fills,
                tables,
                mode,
                source,
                batches,
                withheld,
            )? {
                Some(planned) => break planned,
                // A row written since the last commit is needed: commit
                // (the overlay is then empty), and plan again.
                None => commit(open, folder)?,
            }
        };
        let now = Utc::now();
        let mut ops = planned.ops;
        for (d, seq) in planned.dead {
            let id = open.pending.next_dead_letter.max(1);
            open.pending.next_dead_letter = id + 1;
            let record = StoredDeadLetter {
                id,
                pipeline: pipeline.clone(),
                record: DeadLetterRecord::new(source, d, seq, now),
            };
            let mut doc = TantivyDocument::default();
            doc.add_text(open.fields.table, &record.record.table);
            doc.add_text(open.fields.kind, DEAD);
            doc.add_text(open.fields.id, plan::dead_letter_id(id));
            doc.add_text(
                open.fields.row,
                serde_json::to_string(&record).map_err(|e| SearchError::State(e.to_string()))?,
            );
            ops.push(WriteOp::Add(doc));
        }
        let applied = plan::apply_ops(&open.writer, open.fields.id, ops);
        if let Err(e) = applied {
            discard_uncommitted(open);
            return Err(folder.index_error("writing documents")(e));
        }
        open.overlay.merge(planned.overlay);
        open.fills = planned.fills;
        open.pending_rows += planned.rows.max(1);
        // Searches should see changes within `commit_ms`; a snapshot is
        // committed by rows alone (a half-copied table is no one's answer).
        if batches.iter().any(|b| b.kind != BatchKind::Snapshot) {
            open.since.get_or_insert_with(Instant::now);
        }
        if !replay && let Some(last) = batches.last() {
            open.pending.pipelines.entry(pipeline).or_default().insert(
                source.to_owned(),
                HeldPosition {
                    seq: last.position.seq,
                    state: last.position.state.clone(),
                },
            );
        }
        if !replay {
            open.withheld = planned.withheld;
        }
        Ok(())
    }

    /// Runs `f` on the open index, or on one opened for it alone (for the
    /// dead-letter commands, which run without [`Sink::open`]).
    fn with_open<T>(
        &mut self,
        f: impl FnOnce(&mut Open, &Folder) -> std::result::Result<T, SearchError>,
    ) -> std::result::Result<T, SearchError> {
        if let Some(open) = self.open.as_mut() {
            return f(open, &self.folder);
        }
        let mut open = self.open_index()?;
        let out = f(&mut open, &self.folder);
        let _ = open.writer.wait_merging_threads();
        out
    }
}

fn payload_text(payload: &Payload) -> std::result::Result<String, SearchError> {
    serde_json::to_string(payload).map_err(|e| SearchError::State(e.to_string()))
}

/// Commits what was applied, with the pending checkpoint as its payload.
fn commit(open: &mut Open, folder: &Folder) -> std::result::Result<(), SearchError> {
    if open.lost {
        return Err(lost_writer());
    }
    if open.pending_rows == 0 && open.pending == open.committed {
        return Ok(());
    }
    let text = payload_text(&open.pending)?;
    let committed = match open.writer.prepare_commit() {
        Ok(mut prepared) => {
            prepared.set_payload(&text);
            prepared.commit()
        }
        Err(e) => Err(e),
    };
    if let Err(e) = committed {
        // A commit that failed (no room for its files, say) must not
        // leave its documents for the next one to commit.
        discard_uncommitted(open);
        return Err(folder.index_error("committing")(e));
    }
    open.committed = open.pending.clone();
    open.committed_withheld = open.withheld.clone();
    open.overlay = Overlay::default();
    open.pending_rows = 0;
    open.since = None;
    open.reader = None;
    Ok(())
}

/// The error of a writer that could not be rolled back.
fn lost_writer() -> SearchError {
    SearchError::State(
        "the index writer could not go back to the last commit after a failed write; run the pipeline again (it resumes from that commit)".into(),
    )
}

/// Drops everything since the last commit: the writer goes back to it and
/// what the tables hold is known again only from a new run.
fn discard_uncommitted(open: &mut Open) {
    if open.lost {
        return;
    }
    if let Err(e) = open.writer.rollback() {
        tracing::warn!(error = %e, "rolling the index writer back failed");
        open.lost = true;
    }
    open.withheld = open.committed_withheld.clone();
    open.pending = open.committed.clone();
    open.overlay = Overlay::default();
    for fill in open.fills.values_mut() {
        *fill = Fill::Unknown;
    }
    open.pending_rows = 0;
    open.since = None;
    open.reader = None;
}

/// A searcher of the last commit, through `reader` (opened where it is not).
fn searcher_of(
    reader: &mut Option<IndexReader>,
    index: &Index,
    folder: &Folder,
) -> std::result::Result<tantivy::Searcher, SearchError> {
    if let Some(r) = reader {
        return Ok(r.searcher());
    }
    let opened: IndexReader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()
        .map_err(folder.index_error("reading the index"))?;
    let searcher = opened.searcher();
    *reader = Some(opened);
    Ok(searcher)
}

impl Open {
    fn searcher(&mut self, folder: &Folder) -> std::result::Result<tantivy::Searcher, SearchError> {
        searcher_of(&mut self.reader, self.writer.index(), folder)
    }
}

#[async_trait]
impl Sink for SearchSink {
    async fn check(&mut self) -> Vec<Check> {
        let path = self.folder.path().to_path_buf();
        let shown = path.display().to_string();
        blocking(|| {
            let mut checks = Vec::new();
            if let Err(e) = std::fs::create_dir_all(&path) {
                checks.push(Check::fail(
                    "index folder",
                    format!("cannot create `{shown}`: {e}"),
                    "set `path` to a folder Syncline may create and write (relative paths start at the pipeline file)",
                ));
                return checks;
            }
            let probe = path.join(".syncline-write-check");
            match std::fs::write(&probe, b"ok") {
                Ok(()) => {
                    let _ = std::fs::remove_file(&probe);
                }
                Err(e) => {
                    checks.push(Check::fail(
                        "index folder",
                        format!("cannot write in `{shown}`: {e}"),
                        "give Syncline write access to the folder, or set `path` to another one",
                    ));
                    return checks;
                }
            }
            if let Err(e) = self.folder.ensure_ours() {
                checks.push(Check::fail(
                    "index folder",
                    e.to_string(),
                    "set `path` to an empty or new folder",
                ));
                return checks;
            }
            match self.folder.open_current() {
                Ok(None) => checks.push(Check::pass(
                    "index folder",
                    format!("`{shown}` is writable; the index is created on the first run"),
                )),
                Ok(Some(index)) => {
                    let payload = index::payload(&index, &self.folder).unwrap_or_default();
                    let docs = index
                        .reader()
                        .map(|r| r.searcher().num_docs())
                        .unwrap_or_default();
                    let writers: Vec<&str> = payload.pipelines.keys().map(String::as_str).collect();
                    checks.push(Check::pass(
                        "index folder",
                        format!(
                            "`{shown}` holds an index of {docs} documents (written by pipelines: {})",
                            if writers.is_empty() { "none".to_owned() } else { writers.join(", ") }
                        ),
                    ));
                }
                Err(e) => checks.push(Check::fail(
                    "index folder",
                    e.to_string(),
                    "remove the folder to start the index over (the pipeline then copies every table again), or set `path` to another folder",
                )),
            }
            checks
        })
    }

    async fn open(&mut self, tables: &[Arc<TableSchema>]) -> Result<BTreeMap<String, Position>> {
        if let Some((table, detail)) =
            syncline_engine::apply::unknown_table_setting(self.config.tables.keys(), tables)
        {
            return Err(SearchError::Config { table, detail }.into());
        }
        if let Some(open) = self.open.take() {
            let _ = blocking(|| open.writer.wait_merging_threads());
        }
        self.tables.clear();
        for schema in tables {
            let state = self.table_state(schema)?;
            self.tables.insert(schema.id.clone(), state);
        }
        let open = blocking(|| self.open_index())?;
        let held = open
            .committed
            .pipelines
            .get(&self.pipeline)
            .into_iter()
            .flatten()
            .map(|(source, p)| {
                (
                    source.clone(),
                    Position {
                        seq: p.seq,
                        state: p.state.clone(),
                    },
                )
            })
            .collect();
        self.open = Some(open);
        let withheld = Withheld::of(&self.dead_letters().await?);
        if let Some(open) = self.open.as_mut() {
            open.committed_withheld = withheld.clone();
            open.withheld = withheld;
        }
        Ok(held)
    }

    async fn write(&mut self, source: &str, batch: Arc<Batch>) -> Result<()> {
        self.write_group(source, vec![batch]).await?;
        self.flush().await
    }

    async fn write_group(&mut self, source: &str, batches: Vec<Arc<Batch>>) -> Result<()> {
        let pipeline = self.pipeline.clone();
        let held = self
            .opened()?
            .pending
            .pipelines
            .get(&pipeline)
            .and_then(|p| p.get(source))
            .map(|p| p.seq);
        let batches: Vec<Arc<Batch>> = batches
            .into_iter()
            .filter(|b| held.is_none_or(|h| b.position.seq > h))
            .collect();
        let Some(last) = batches.last() else {
            return Ok(());
        };
        if last.continues {
            // A part of a source transaction: kept until its last part, so
            // the index applies and commits the transaction whole (a row
            // one part needs from an earlier one is there to read).
            self.unfinished
                .entry(source.to_owned())
                .or_default()
                .extend(batches);
            return Ok(());
        }
        let batches: Vec<Arc<Batch>> = self
            .unfinished
            .remove(source)
            .unwrap_or_default()
            .into_iter()
            .chain(batches)
            .collect();
        let rows = self.config.commit_rows.max(1);
        let wait = Duration::from_millis(self.config.commit_ms);
        blocking(|| -> std::result::Result<(), SearchError> {
            self.evolve(&batches)?;
            self.apply(source, &batches, false)?;
            let folder = self.folder.clone();
            let open = self.opened()?;
            if open.pending_rows >= rows || open.since.is_some_and(|s| s.elapsed() >= wait) {
                commit(open, &folder)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn holds_uncommitted(&self) -> bool {
        !self.unfinished.is_empty()
            || self
                .open
                .as_ref()
                .is_some_and(|o| o.pending_rows > 0 || o.pending != o.committed)
    }

    async fn flush(&mut self) -> Result<()> {
        let folder = self.folder.clone();
        if let Some(open) = self.open.as_mut() {
            blocking(|| commit(open, &folder))?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if !self.unfinished.is_empty() {
            tracing::info!(
                "dropping the parts of a source transaction whose last part did not come"
            );
            self.unfinished.clear();
        }
        self.flush().await?;
        if let Some(open) = self.open.take() {
            blocking(|| open.writer.wait_merging_threads())
                .map_err(self.folder.index_error("finishing the index's merges"))?;
        }
        Ok(())
    }

    async fn dead_letters(&mut self) -> Result<Vec<KeptRow>> {
        let folder = self.folder.clone();
        let pipeline = self.pipeline.clone();
        let rows = blocking(|| -> std::result::Result<Vec<KeptRow>, SearchError> {
            let Some((_, fields, reader)) = index::read_current(&folder)? else {
                return Ok(Vec::new());
            };
            let searcher = reader.searcher();
            let mut rows = Vec::new();
            for kept in index::matching(&searcher, &fields, &fields.of_kind(DEAD))? {
                let d: StoredDeadLetter = serde_json::from_str(&kept.row)
                    .map_err(|e| SearchError::State(format!("a dead letter is unreadable: {e}")))?;
                if d.pipeline != pipeline {
                    continue;
                }
                rows.push(d.record.into_kept(d.id));
            }
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        })?;
        Ok(rows)
    }

    async fn replay(&mut self, batches: Vec<Batch>, resolved: Vec<u64>) -> Result<()> {
        let batches: Vec<Arc<Batch>> = batches.into_iter().map(Arc::new).collect();
        blocking(|| -> std::result::Result<(), SearchError> {
            self.evolve(&batches)?;
            self.apply("", &batches, true)?;
            let folder = self.folder.clone();
            let open = self.opened()?;
            for id in resolved {
                open.writer.delete_term(tantivy::Term::from_field_text(
                    open.fields.id,
                    &plan::dead_letter_id(id),
                ));
            }
            open.pending_rows += 1;
            commit(open, &folder)
        })?;
        Ok(())
    }

    async fn discard(&mut self, ids: &[u64]) -> Result<u64> {
        let present: Vec<u64> = self.dead_letters().await?.iter().map(|d| d.id).collect();
        let removed: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|i| present.contains(i))
            .collect();
        if removed.is_empty() {
            return Ok(0);
        }
        blocking(|| {
            self.with_open(|open, folder| {
                for id in &removed {
                    open.writer.delete_term(tantivy::Term::from_field_text(
                        open.fields.id,
                        &plan::dead_letter_id(*id),
                    ));
                }
                open.pending_rows += 1;
                commit(open, folder)
            })
        })?;
        Ok(removed.len() as u64)
    }

    async fn reader(
        &mut self,
        table: &Arc<TableSchema>,
    ) -> Result<Box<dyn syncline_engine::verify::RowReader>> {
        if self.config.mode != WriteMode::Upsert {
            return Err(syncline_engine::Error::new(
                syncline_engine::ErrorKind::Precondition,
                format!(
                    "this index keeps every change ({} mode), not the source's rows",
                    self.config.mode.as_str()
                ),
            ));
        }
        let folder = self.folder.path().to_path_buf();
        let table = table.clone();
        let reader = tokio::task::spawn_blocking(move || verify::TableReader::open(folder, table))
            .await
            .map_err(|_| syncline_engine::Error::internal("the index reader stopped"))??;
        Ok(Box::new(reader))
    }

    async fn forget(&mut self) -> Result<()> {
        if blocking(|| self.folder.current())?.is_none() {
            return Ok(());
        }
        let pipeline = self.pipeline.clone();
        blocking(|| {
            self.with_open(|open, folder| {
                open.pending.pipelines.remove(&pipeline);
                let released: Vec<String> = open
                    .pending
                    .tables
                    .iter()
                    .filter(|(_, owner)| **owner == pipeline)
                    .map(|(t, _)| t.clone())
                    .collect();
                for table in &released {
                    open.pending.tables.remove(table);
                    open.pending.fields.remove(table);
                }
                open.pending_rows += 1;
                commit(open, folder)
            })
        })?;
        Ok(())
    }
}

/// The index folder a search target of a pipeline in `base_dir` writes.
pub fn index_path(config: &SearchTargetConfig, base_dir: &Path) -> PathBuf {
    base_dir.join(&config.path)
}
