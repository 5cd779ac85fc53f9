//! The blocking DuckDB writer: table creation and evolution, bulk staged
//! merges, dead letters and the checkpoint, one transaction per batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use duckdb::arrow::datatypes::{DataType as ArrowType, Field, TimeUnit};
use duckdb::{Connection, params};
use syncline_engine::apply::sql::{self, Recorded, Tables, lookup_column};
use syncline_engine::apply::{self, Step};
use syncline_engine::batch::{Batch, Position};
use syncline_engine::columnar::InsertBlock;
use syncline_engine::config::WriteMode;
use syncline_engine::connector::KeptRow;
use syncline_engine::model::{
    Change, DataType, DeadLetter, DeadLetterStage, Op, Row, TableId, TableSchema, Value,
};

use crate::dialect::DuckDb;
use crate::error::DuckDbError;
use crate::types::{
    appends_as_staged, arrow_field, arrow_schema, build_column, cast_from_stage, duckdb_type,
    json_is_valid, stage_from_target, stage_type,
};
use syncline_duck::quote;

mod dead_letters;
mod merge;
mod tables;

/// The memory DuckDB may use in one target, in MiB, besides what the
/// deletes since the last checkpoint hold (see
/// [`Writer::make_room_for_deletes`]). A 2 GB CSV (22 million rows) loads
/// in the same time with 40 as with 64 or 96, and peaks 25 MB lower than
/// with 64.
const MEMORY_LIMIT_MB: u64 = 40;

/// What DuckDB holds in memory for a 2,048-row vector of a stored table
/// in which a transaction deletes (or updates: a merge deletes and
/// inserts) a row, until a checkpoint after its commit: a transaction id
/// per row of the vector, 8 bytes each.
const DELETE_VECTOR_BYTES: u64 = 2048 * 8;

/// WAL size at which DuckDB checkpoints (its default is 16 MB).
const CHECKPOINT_THRESHOLD: &str = "64MB";

/// The most memory the deletes since the last checkpoint (see
/// [`DELETE_VECTOR_BYTES`]) are meant to hold; the memory limit grows with
/// them. DuckDB checkpoints by WAL size, which deletes barely grow:
/// updates and deletes spread over a large table (a changed file of 22
/// million rows, a stream of updates) filled the whole limit within ten
/// batches of 10,000 and every later batch failed ("failed to pin block").
const DELETE_ROOM_BYTES: u64 = 32 * 1024 * 1024;

/// Vectors that deletes since the last checkpoint may touch past which a
/// commit is followed by a checkpoint; a transaction could touch at most as
/// many (a group of batches is cut: see [`Writer::write_group`]). Half of
/// [`DELETE_ROOM_BYTES`], so that a transaction's deletes and those before
/// it fit in the room together. Not bounded by it: one batch that touches
/// more (it is not split), a truncate or a prune (every vector of the
/// table), and the parts of one source transaction, which commit together
/// with its last part; the memory limit grows with them.
const CHECKPOINT_VECTORS: u64 = DELETE_ROOM_BYTES / DELETE_VECTOR_BYTES / 2;

/// Table holding one checkpoint row per (pipeline, source).
pub const CHECKPOINT_TABLE: &str = "_syncline_checkpoints";
/// Table holding rejected records with their reason.
pub const DEAD_LETTER_TABLE: &str = "_syncline_dead_letters";

/// Metadata columns of history-mode tables ([`sql::HISTORY`]), before the
/// data columns.
const HISTORY_COLUMNS: &str = "\"_op\" VARCHAR NOT NULL, \"_seq\" UBIGINT NOT NULL, \"_commit_time\" TIMESTAMPTZ, \"_synced_at\" TIMESTAMPTZ NOT NULL";

#[derive(Clone)]
struct Target {
    /// Qualified, quoted target table.
    table: String,
    /// Bare target table name (for the appender).
    table_name: String,
    /// Quoted temp staging table.
    stage: String,
    /// Bare staging table name (for the appender).
    stage_name: String,
    schema: Arc<TableSchema>,
}

/// What a target table is known to hold, since this writer opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fill {
    /// No rows.
    Empty,
    /// Nothing but inserts of batches of this source that promised new rows
    /// ([`Batch::inserts_are_new`]).
    NewRowsOf(String),
    /// Anything.
    Unknown,
}

/// Rows written into target tables by each path, since the writer opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Inserts of new rows (see [`Batch::inserts_are_new`]) into a table
    /// that holds nothing else: added without looking up their keys.
    pub appended: u64,
    /// Every other change: staged, then merged by key (upsert) or copied
    /// (append, history).
    pub merged: u64,
    /// Checkpoints run to free the memory of committed deletes (see
    /// [`CHECKPOINT_VECTORS`]).
    pub checkpoints: u64,
    /// Transactions committed.
    pub commits: u64,
    /// The most memory DuckDB's limit gave the deletes since a checkpoint,
    /// in MiB, beyond [`MEMORY_LIMIT_MB`].
    pub delete_room_mb: u64,
}

/// Writes batches into one DuckDB database.
pub struct Writer {
    conn: crate::shared::SharedConnection,
    pipeline: String,
    mode: WriteMode,
    schema_name: String,
    targets: HashMap<TableId, Target>,
    /// Per target table (qualified name).
    fills: HashMap<String, Fill>,
    held: BTreeMap<String, u64>,
    /// Rows whose last change here is a dead letter.
    withheld: apply::Withheld,
    /// Id of the next dead letter of this pipeline.
    next_dead_letter: u64,
    stats: WriteStats,
    /// A transaction left open over appended blocks, to be committed once
    /// it holds a DuckDB row group (see [`Writer::write_group`]).
    open: Option<Open>,
    /// DuckDB's memory limit now, in MiB.
    memory_limit_mb: u64,
    /// Per table, the vectors deletes may have touched since the last
    /// checkpoint (the open transaction's included), at most the table's.
    pinned: HashMap<String, u64>,
}

/// The transaction [`Writer::write_group`] left open.
#[derive(Debug)]
struct Open {
    /// The source whose blocks of new rows it was left open for.
    source: String,
    /// The last batch applied in it, per source.
    seqs: BTreeMap<String, u64>,
    /// Sources whose transaction is open in it: a part of it came
    /// ([`Batch::continues`]), not yet its end. It commits only once there
    /// is none.
    unfinished: BTreeSet<String>,
    /// Rows appended in it.
    rows: usize,
    /// What the tables held, the rows withheld, the counts and the vectors
    /// deletes touched, before it began.
    fills: HashMap<String, Fill>,
    withheld: apply::Withheld,
    stats: WriteStats,
    pinned: HashMap<String, u64>,
}

/// Rows in a DuckDB row group. A transaction that appends at least this
/// many rows to a table has them written straight to the database file
/// (compressed, without the write-ahead log); smaller ones go through the
/// log and are compressed again at the next checkpoint.
const ROW_GROUP_ROWS: usize = 122_880;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("pipeline", &self.pipeline)
            .field("mode", &self.mode)
            .finish()
    }
}

impl Writer {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(
        path: &Path,
        pipeline: &str,
        mode: WriteMode,
        schema_name: &str,
    ) -> Result<Self, DuckDbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DuckDbError::Open {
                path: path.display().to_string(),
                source: duckdb::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        }
        let conn = crate::shared::connect(path).map_err(|source| DuckDbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // DuckDB's default cache is most of the machine's memory; a sync
        // target needs little of it (pages are written out, not re-read).
        // Half the cores: the source and the rest of the pipeline need the
        // others (on 2 cores, one DuckDB thread cut a 2M-row snapshot's CPU
        // time by a tenth). Checkpoints every 64 MB of WAL rather than 16 MB
        // compress a growing row group a quarter as often: DuckDB's own cost
        // of 2M rows in 10,000-row transactions fell from 6.8 s to 3.3 s.
        let threads = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
        conn.execute_batch(&format!(
            "SET memory_limit = '{MEMORY_LIMIT_MB}MiB'; SET threads = {threads}; SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'"
        ))
        .map_err(DuckDbError::sql("configuring DuckDB"))?;

        conn.execute_batch(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS main.{CHECKPOINT_TABLE} (
                 pipeline VARCHAR NOT NULL,
                 source VARCHAR NOT NULL,
                 seq UBIGINT NOT NULL,
                 position JSON NOT NULL,
                 updated_at TIMESTAMPTZ NOT NULL,
                 PRIMARY KEY (pipeline, source));
             CREATE TABLE IF NOT EXISTS main.{DEAD_LETTER_TABLE} (
                 pipeline VARCHAR NOT NULL,
                 source VARCHAR NOT NULL,
                 table_name VARCHAR NOT NULL,
                 origin VARCHAR NOT NULL,
                 line UBIGINT,
                 raw VARCHAR NOT NULL,
                 reason VARCHAR NOT NULL,
                 seq UBIGINT NOT NULL,
                 recorded_at TIMESTAMPTZ NOT NULL);
             ALTER TABLE main.{DEAD_LETTER_TABLE} ADD COLUMN IF NOT EXISTS id UBIGINT;
             ALTER TABLE main.{DEAD_LETTER_TABLE} ADD COLUMN IF NOT EXISTS stage VARCHAR;
             ALTER TABLE main.{DEAD_LETTER_TABLE} ADD COLUMN IF NOT EXISTS kept JSON;",
            schema = quote(schema_name)
        ))
        .map_err(DuckDbError::sql("creating Syncline's bookkeeping tables"))?;
        let last_id: Option<u64> = conn
            .query_row(
                &format!("SELECT max(id) FROM main.{DEAD_LETTER_TABLE} WHERE pipeline = ?"),
                params![pipeline],
                |r| r.get(0),
            )
            .map_err(DuckDbError::sql("reading dead letters"))?;
        // Known from the start, so a redelivered batch is skipped even if
        // `write` comes before `prepare`.
        let held = read_checkpoints(&conn, pipeline)?
            .into_iter()
            .map(|(k, p)| (k, p.seq))
            .collect();
        Ok(Writer {
            conn,
            pipeline: pipeline.to_owned(),
            mode,
            schema_name: schema_name.to_owned(),
            targets: HashMap::new(),
            fills: HashMap::new(),
            held,
            withheld: apply::Withheld::default(),
            next_dead_letter: last_id.unwrap_or(0) + 1,
            stats: WriteStats::default(),
            memory_limit_mb: MEMORY_LIMIT_MB,
            pinned: HashMap::new(),
            open: None,
        })
    }

    /// Creates or evolves the target tables and returns the stored
    /// checkpoints of this pipeline, per source.
    pub fn prepare(
        &mut self,
        tables: &[Arc<TableSchema>],
    ) -> Result<BTreeMap<String, Position>, DuckDbError> {
        for t in tables {
            self.ensure_table(t)?;
        }
        let held = read_checkpoints(&self.conn, &self.pipeline)?;
        self.held = held.iter().map(|(k, p)| (k.clone(), p.seq)).collect();
        self.withheld = apply::Withheld::of(&self.dead_letters()?);
        Ok(held)
    }

    /// Rows written by each path so far.
    pub fn stats(&self) -> WriteStats {
        self.stats
    }

    /// Whether `schema`'s table exists in the target as of that schema
    /// (nothing for [`Writer::ensure_table`] to do).
    fn is_current(&self, schema: &TableSchema) -> bool {
        self.targets.get(&schema.id).is_some_and(|t| {
            t.schema.version == schema.version && t.schema.columns == schema.columns
        })
    }

    /// Whether target table `table` holds nothing but new rows
    /// ([`Batch::inserts_are_new`]) of `source`, if anything.
    fn holds_only_new_rows_of(&self, table: &str, source: &str) -> bool {
        match self.fills.get(table) {
            Some(Fill::Empty) => true,
            Some(Fill::NewRowsOf(s)) => s == source,
            Some(Fill::Unknown) | None => false,
        }
    }

    /// Applies a batch and its checkpoint in one transaction. A batch at or
    /// below the stored checkpoint is skipped.
    pub fn write(&mut self, source: &str, batch: &Batch) -> Result<bool, DuckDbError> {
        Ok(self.write_group(source, &[batch])? > 0)
    }

    /// Applies consecutive batches of one source in one transaction, with
    /// the last one's checkpoint; batches at or below the stored checkpoint
    /// are skipped. In upsert and append mode their changes are staged and
    /// merged together (one staging pass per table); every staged row keeps
    /// its own batch's position and commit time for history mode. Returns how
    /// many batches were applied.
    ///
    /// A group whose updates and deletes could touch more than
    /// [`CHECKPOINT_VECTORS`] vectors of stored rows goes in several
    /// transactions, each with its last batch's checkpoint, so that the
    /// memory DuckDB keeps for deletes until a checkpoint stays within
    /// [`DELETE_ROOM_BYTES`] (a source transaction in parts still commits
    /// whole).
    pub fn write_group(&mut self, source: &str, batches: &[&Batch]) -> Result<usize, DuckDbError> {
        let mut applied = 0;
        for run in self.runs_within_room(batches)? {
            applied += self.write_run(source, run)?;
        }
        Ok(applied)
    }

    /// `batches` cut, in order, into runs whose updates and deletes could
    /// touch at most [`CHECKPOINT_VECTORS`] vectors of stored rows: each
    /// update or delete counted as a vector of its own, a truncate or a
    /// prune as all of them, and no table as more vectors than it holds (a
    /// batch that could touch more is a run of its own). Only upsert mode
    /// deletes stored rows; in the others a group goes whole.
    fn runs_within_room<'b, 'a>(
        &self,
        batches: &'b [&'a Batch],
    ) -> Result<Vec<&'b [&'a Batch]>, DuckDbError> {
        if self.mode != WriteMode::Upsert || batches.len() < 2 {
            return Ok(vec![batches]);
        }
        let mut vectors: HashMap<&TableId, u64> = HashMap::new();
        let mut touched: HashMap<&TableId, u64> = HashMap::new();
        let mut runs = Vec::new();
        let mut start = 0;
        for (i, batch) in batches.iter().enumerate() {
            let mut more: HashMap<&TableId, u64> = HashMap::new();
            for c in &batch.changes {
                let n = match c.op {
                    Op::Insert => continue,
                    Op::Update | Op::Delete => 1,
                    Op::Truncate | Op::Prune => u64::MAX,
                };
                let m = more.entry(&c.table.id).or_default();
                *m = m.saturating_add(n);
            }
            for id in more.keys() {
                if !vectors.contains_key(id) {
                    vectors.insert(id, self.stored_vectors(id)?);
                }
            }
            let within = |t: &HashMap<&TableId, u64>, extra: &HashMap<&TableId, u64>| {
                vectors.iter().fold(0u64, |sum, (id, v)| {
                    let n = t
                        .get(id)
                        .copied()
                        .unwrap_or(0)
                        .saturating_add(extra.get(id).copied().unwrap_or(0));
                    sum.saturating_add(n.min(*v))
                })
            };
            if i > start && within(&touched, &more) > CHECKPOINT_VECTORS {
                runs.push(&batches[start..i]);
                start = i;
                touched.clear();
            }
            for (id, n) in more {
                let t = touched.entry(id).or_default();
                *t = t.saturating_add(n);
            }
        }
        runs.push(&batches[start..]);
        Ok(runs)
    }

    /// Vectors of 2,048 rows the target table of `id` holds (none before it
    /// exists).
    fn stored_vectors(&self, id: &TableId) -> Result<u64, DuckDbError> {
        match self.targets.get(id) {
            Some(target) => self.vectors_of(&target.table),
            None => Ok(0),
        }
    }

    /// Vectors of 2,048 rows target table `table` (qualified) holds.
    fn vectors_of(&self, table: &str) -> Result<u64, DuckDbError> {
        let stored: i64 = self
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .map_err(DuckDbError::sql(format!(
                "sizing DuckDB's memory for deletes from {table}"
            )))?;
        Ok(u64::try_from(stored).unwrap_or(0).div_ceil(2048))
    }

    /// [`Writer::write_group`] for batches whose deletes fit the room.
    fn write_run(&mut self, source: &str, batches: &[&Batch]) -> Result<usize, DuckDbError> {
        let held = self.held.get(source).copied();
        // Changes with values DuckDB cannot store become dead letters.
        let before = self.withheld.clone();
        let withheld = &mut self.withheld;
        let screened: Vec<std::borrow::Cow<'_, Batch>> = batches
            .iter()
            .copied()
            .filter(|b| held.is_none_or(|h| b.position.seq > h))
            .map(|b| apply::set_aside(b, crate::types::refuses, withheld))
            .collect();
        let fresh: Vec<&Batch> = screened.iter().map(|b| &**b).collect();
        let Some(last) = fresh.last().copied() else {
            return Ok(0);
        };
        // Anything joins a transaction a source transaction is open in;
        // blocks of new rows may join one left open by earlier ones of the
        // same source; anything else commits it first.
        let joins_open = self.open.as_ref().is_some_and(|o| {
            !o.unfinished.is_empty()
                || (o.source == source
                    && fresh.iter().all(|b| {
                        b.changes.is_empty()
                            && b.dead_letters.is_empty()
                            && b.block.as_ref().is_none_or(|k| self.is_current(&k.table))
                    }))
        });
        if !joins_open {
            self.commit_open()?;
        }
        // Tables first seen (or changed) mid-stream are created outside the
        // data transaction (DDL is idempotent), or inside one left open (a
        // rollback of it ends the run: the sink is closed).
        for change in fresh.iter().flat_map(|b| &b.changes) {
            self.ensure_table(&change.table)?;
        }
        for block in fresh.iter().filter_map(|b| b.block.as_ref()) {
            self.ensure_table(&block.table)?;
        }
        if self.open.is_none() {
            self.conn
                .execute_batch("BEGIN TRANSACTION")
                .map_err(DuckDbError::sql("BEGIN"))?;
            // What the tables hold, and the counts, are as before if this
            // rolls back.
            self.open = Some(Open {
                source: source.to_owned(),
                seqs: BTreeMap::new(),
                unfinished: BTreeSet::new(),
                rows: 0,
                fills: self.fills.clone(),
                withheld: before,
                stats: self.stats,
                pinned: self.pinned.clone(),
            });
        }
        let appended_before = self.stats.appended;
        let result = (|| {
            let appended = self.append_blocks(source, &fresh)?;
            if !appended {
                // Blocks as the inserts they stand for, after their batch's
                // changes.
                let inserts: Vec<Vec<Change>> = fresh
                    .iter()
                    .map(|b| {
                        b.block
                            .as_ref()
                            .map(InsertBlock::changes)
                            .unwrap_or_default()
                    })
                    .collect();
                self.apply_changes(
                    source,
                    fresh.iter().zip(&inserts).flat_map(|(b, inserts)| {
                        b.changes.iter().chain(inserts).map(move |c| (c, *b))
                    }),
                )?;
            }
            for b in &fresh {
                self.write_dead_letters(source, b)?;
            }
            self.store_checkpoint(source, last)?;
            Ok(appended)
        })();
        match result {
            Ok(appended) => {
                let rows = (self.stats.appended - appended_before) as usize;
                if let Some(open) = self.open.as_mut() {
                    open.seqs.insert(source.to_owned(), last.position.seq);
                    if last.continues {
                        open.unfinished.insert(source.to_owned());
                    } else {
                        open.unfinished.remove(source);
                    }
                    open.rows += rows;
                    if !open.unfinished.is_empty() {
                        return Ok(fresh.len());
                    }
                    // Appended blocks wait for a row group's worth.
                    let blocks = joins_open || fresh.iter().any(|b| b.block.is_some());
                    if appended && blocks && open.rows < ROW_GROUP_ROWS {
                        return Ok(fresh.len());
                    }
                }
                self.commit_open()?;
                Ok(fresh.len())
            }
            Err(e) => {
                self.roll_back_open();
                Err(e)
            }
        }
    }

    /// Whether applied batches wait in an open transaction (see
    /// [`Writer::write_group`]); [`Writer::commit_open`] commits them.
    pub fn holds_uncommitted(&self) -> bool {
        self.open.is_some()
    }

    /// Commits the transaction [`Writer::write_group`] left open, if any,
    /// unless a source transaction is open in it (it commits with that
    /// transaction's end).
    pub fn commit_open(&mut self) -> Result<(), DuckDbError> {
        let Some(open) = self.open.as_ref().filter(|o| o.unfinished.is_empty()) else {
            return Ok(());
        };
        let seqs = open.seqs.clone();
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            self.roll_back_open();
            return Err(DuckDbError::sql("COMMIT")(e));
        }
        self.open = None;
        self.held.extend(seqs);
        self.stats.commits += 1;
        self.checkpoint_when_deletes_pile_up();
        Ok(())
    }

    /// Makes room in DuckDB's memory limit, if it must, for the open
    /// transaction to delete (or replace) up to `rows` more stored rows of
    /// `table`: DuckDB keeps [`DELETE_VECTOR_BYTES`] for each vector a
    /// delete touches until a checkpoint, cannot write them out, and fails
    /// the statement once they fill its limit ("failed to pin block"). A
    /// batch of 10,000 updates spread over a 22-million-row table needs
    /// about 190 MB of them. A table counts no more than its vectors; the
    /// room is given back at the first checkpoint (see
    /// [`Writer::checkpoint_when_deletes_pile_up`]) or with a rollback.
    ///
    /// Each row is taken to be in a vector of its own, unless that would
    /// pass [`DELETE_ROOM_BYTES`] and `touched` is given: a query of
    /// how many vectors the statement's rows really are in (updates of a
    /// changed file come in the file's order, a few hundred vectors for
    /// 10,000 rows), which costs a scan of the table's keys.
    pub(super) fn make_room_for_deletes(
        &mut self,
        table: &str,
        rows: u64,
        touched: Option<&str>,
    ) -> Result<(), DuckDbError> {
        if rows == 0 {
            return Ok(());
        }
        let what = || format!("sizing DuckDB's memory for deletes from {table}");
        let vectors = self.vectors_of(table)?;
        let mut rows = rows.min(vectors);
        let others = self.pinned_vectors();
        if let Some(sql) = touched
            && others
                .saturating_add(rows)
                .saturating_mul(DELETE_VECTOR_BYTES)
                > DELETE_ROOM_BYTES
        {
            let counted: i64 = self
                .conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(DuckDbError::sql(what()))?;
            rows = u64::try_from(counted).unwrap_or(rows).min(vectors);
        }
        let pinned = self.pinned.entry(table.to_owned()).or_default();
        *pinned = pinned.saturating_add(rows).min(vectors);
        let room_mb = self.pinned_bytes().div_ceil(1 << 20);
        let need_mb = MEMORY_LIMIT_MB + room_mb;
        if need_mb > self.memory_limit_mb {
            self.conn
                .execute_batch(&format!("SET memory_limit = '{need_mb}MiB'"))
                .map_err(DuckDbError::sql(what()))?;
            self.memory_limit_mb = need_mb;
            self.stats.delete_room_mb = self.stats.delete_room_mb.max(room_mb);
        }
        Ok(())
    }

    /// What the deletes since the last checkpoint may hold in memory.
    fn pinned_bytes(&self) -> u64 {
        self.pinned_vectors().saturating_mul(DELETE_VECTOR_BYTES)
    }

    /// Vectors the deletes since the last checkpoint may have touched.
    fn pinned_vectors(&self) -> u64 {
        self.pinned
            .values()
            .fold(0u64, |sum, v| sum.saturating_add(*v))
    }

    /// Checkpoints once the deletes since the last one may have touched
    /// more than [`CHECKPOINT_VECTORS`], and sets the limit back. It runs
    /// after a commit, which stands whatever happens here: a failure is
    /// logged and left to the next commit, never reported as the batch's.
    fn checkpoint_when_deletes_pile_up(&mut self) {
        if self.pinned_vectors() <= CHECKPOINT_VECTORS {
            return;
        }
        if let Err(e) = self.conn.execute_batch("CHECKPOINT") {
            tracing::warn!(error = %e, "DuckDB checkpoint failed; the next commit tries again");
            return;
        }
        self.stats.checkpoints += 1;
        self.pinned.clear();
        if self.memory_limit_mb > MEMORY_LIMIT_MB {
            match self
                .conn
                .execute_batch(&format!("SET memory_limit = '{MEMORY_LIMIT_MB}MiB'"))
            {
                Ok(()) => self.memory_limit_mb = MEMORY_LIMIT_MB,
                Err(e) => tracing::warn!(error = %e, "setting DuckDB's memory limit back failed"),
            }
        }
    }

    /// Rolls back a source transaction left open (the pipeline stopped
    /// between its parts): a target holds all of one or none of it.
    pub fn abandon_unfinished(&mut self) {
        if self.open.as_ref().is_some_and(|o| !o.unfinished.is_empty()) {
            tracing::info!("rolling back a source transaction whose last part did not come");
            self.roll_back_open();
        }
    }

    /// Rolls back the open transaction and forgets what it did.
    fn roll_back_open(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.pinned = open.pinned;
            self.fills = open.fills;
            self.withheld = open.withheld;
            let room = self.stats.delete_room_mb;
            self.stats = open.stats;
            self.stats.delete_room_mb = room;
            self.fit_limit_to_room();
        }
    }

    /// Sets the memory limit back to what the deletes since the last
    /// checkpoint hold, after a rollback took some of them back.
    pub(super) fn fit_limit_to_room(&mut self) {
        let need_mb = MEMORY_LIMIT_MB + self.pinned_bytes().div_ceil(1 << 20);
        if need_mb < self.memory_limit_mb
            && self
                .conn
                .execute_batch(&format!("SET memory_limit = '{need_mb}MiB'"))
                .is_ok()
        {
            self.memory_limit_mb = need_mb;
        }
    }

    fn store_checkpoint(&mut self, source: &str, batch: &Batch) -> Result<(), DuckDbError> {
        let position =
            serde_json::to_string(&batch.position.state).map_err(|e| DuckDbError::Checkpoint {
                source_name: source.to_owned(),
                detail: e.to_string(),
            })?;
        self.conn
            .execute(
                &format!(
                    "INSERT INTO main.{CHECKPOINT_TABLE} VALUES (?, ?, ?, ?, now())
                     ON CONFLICT (pipeline, source) DO UPDATE SET
                        seq = excluded.seq, position = excluded.position, updated_at = excluded.updated_at"
                ),
                params![self.pipeline, source, batch.position.seq, position],
            )
            .map_err(DuckDbError::sql("storing the checkpoint"))?;
        Ok(())
    }
}

/// Reads the stored checkpoints of `pipeline`, per source.
pub fn read_checkpoints(
    conn: &Connection,
    pipeline: &str,
) -> Result<BTreeMap<String, Position>, DuckDbError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT source, seq, CAST(position AS VARCHAR) FROM main.{CHECKPOINT_TABLE} WHERE pipeline = ?"
        ))
        .map_err(DuckDbError::sql("reading checkpoints"))?;
    let rows = stmt
        .query_map(params![pipeline], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(DuckDbError::sql("reading checkpoints"))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (source, seq, text) = row.map_err(DuckDbError::sql("reading checkpoints"))?;
        let state = serde_json::from_str(&text).map_err(|e| DuckDbError::Checkpoint {
            source_name: source.clone(),
            detail: e.to_string(),
        })?;
        out.insert(source, Position { seq, state });
    }
    Ok(out)
}
