//! The blocking DuckDB writer: table creation and evolution, bulk staged
//! merges, dead letters and the checkpoint, one transaction per batch.

use std::collections::{BTreeMap, HashMap};
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
    Change, DataType, DeadLetterStage, Op, Row, TableId, TableSchema, Value,
};

use crate::dialect::DuckDb;
use crate::error::DuckDbError;
use crate::types::{
    appends_as_staged, arrow_field, arrow_schema, build_column, cast_from_stage, duckdb_type,
    json_is_valid, stage_from_target, stage_type,
};

/// The most memory DuckDB may use for its cache in one target.
const MEMORY_LIMIT: &str = "96MB";

/// WAL size at which DuckDB checkpoints (its default is 16 MB).
const CHECKPOINT_THRESHOLD: &str = "64MB";

/// Table holding one checkpoint row per (pipeline, source).
pub const CHECKPOINT_TABLE: &str = "_syncline_checkpoints";
/// Table holding rejected records with their reason.
pub const DEAD_LETTER_TABLE: &str = "_syncline_dead_letters";

/// Metadata columns of history-mode tables ([`sql::HISTORY`]), before the
/// data columns.
const HISTORY_COLUMNS: &str = "\"_op\" VARCHAR NOT NULL, \"_seq\" UBIGINT NOT NULL, \"_commit_time\" TIMESTAMPTZ, \"_synced_at\" TIMESTAMPTZ NOT NULL";

/// Quotes an identifier for DuckDB.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

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
    /// Id of the next dead letter of this pipeline.
    next_dead_letter: u64,
    stats: WriteStats,
    /// A transaction left open over appended blocks, to be committed once
    /// it holds a DuckDB row group (see [`Writer::write_group`]).
    open: Option<Open>,
}

/// The transaction [`Writer::write_group`] left open.
#[derive(Debug)]
struct Open {
    /// The source whose batches it holds.
    source: String,
    /// The last batch applied in it.
    seq: u64,
    /// Rows appended in it.
    rows: usize,
    /// What the tables held, and the counts, before it began.
    fills: HashMap<String, Fill>,
    stats: WriteStats,
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
            "SET memory_limit = '{MEMORY_LIMIT}'; SET threads = {threads}; SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'"
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
            next_dead_letter: last_id.unwrap_or(0) + 1,
            stats: WriteStats::default(),
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

    fn ensure_table(&mut self, schema: &Arc<TableSchema>) -> Result<(), DuckDbError> {
        if self.is_current(schema) {
            return Ok(());
        }
        if self.mode == WriteMode::Upsert && schema.key.is_empty() {
            return Err(DuckDbError::Schema {
                table: schema.id.to_string(),
                detail: "has no key, and upsert mode needs one: declare key = [...] for the table, or set mode = \"append\" or \"history\" on the target".into(),
            });
        }
        let table = format!("{}.{}", quote(&self.schema_name), quote(&schema.id.name));
        let columns: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), duckdb_type(&c.data_type)))
            .collect();
        let meta = if self.mode == WriteMode::History {
            format!("{HISTORY_COLUMNS}, ")
        } else {
            String::new()
        };
        self.conn
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} ({meta}{})",
                columns.join(", ")
            ))
            .map_err(DuckDbError::sql(format!("creating {table}")))?;

        // Columns the source gained since the table was created.
        let existing: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?")
                .map_err(DuckDbError::sql("reading target columns"))?;
            let rows = stmt
                .query_map(params![self.schema_name, schema.id.name], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(DuckDbError::sql("reading target columns"))?;
            rows.collect::<Result<_, _>>()
                .map_err(DuckDbError::sql("reading target columns"))?
        };
        for c in schema
            .columns
            .iter()
            .filter(|c| !existing.contains(&c.name))
        {
            tracing::info!(table = %schema.id, column = %c.name, "adding column to target");
            self.conn
                .execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {} {}",
                    quote(&c.name),
                    duckdb_type(&c.data_type)
                ))
                .map_err(DuckDbError::sql(format!(
                    "adding column {} to {table}",
                    c.name
                )))?;
        }
        if !self.fills.contains_key(&table) {
            let empty: bool = self
                .conn
                .query_row(
                    &format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"),
                    [],
                    |r| r.get(0),
                )
                .map_err(DuckDbError::sql(format!(
                    "reading whether {table} is empty"
                )))?;
            self.fills.insert(
                table.clone(),
                if empty { Fill::Empty } else { Fill::Unknown },
            );
        }

        // The origin's length keeps `a_b`.`c` and `a`.`b_c` apart.
        let stage_name = format!(
            "_syncline_stage_{}_{}_{}",
            schema.id.origin.len(),
            schema.id.origin,
            schema.id.name
        );
        let mut stage_columns: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), stage_type(&c.data_type)))
            .collect();
        stage_columns.extend(schema.key.iter().enumerate().map(|(i, &k)| {
            format!(
                "{} {}",
                lookup_column(i),
                stage_type(&schema.columns[k].data_type)
            )
        }));
        self.conn
            .execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE {} (\"_syncline_seq\" BIGINT, \"_syncline_op\" VARCHAR, \"_syncline_unchanged\" VARCHAR, \"_syncline_bseq\" BIGINT, \"_syncline_commit\" TIMESTAMPTZ, {})",
                quote(&stage_name),
                stage_columns.join(", ")
            ))
            .map_err(DuckDbError::sql("creating the staging table"))?;
        self.targets.insert(
            schema.id.clone(),
            Target {
                table,
                table_name: schema.id.name.clone(),
                stage: format!("temp.main.{}", quote(&stage_name)),
                stage_name,
                schema: schema.clone(),
            },
        );
        Ok(())
    }

    /// This pipeline's dead letters, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<KeptRow>, DuckDbError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT coalesce(id, 0), source, table_name, coalesce(stage, 'read'), origin, line, raw, reason, seq,
                        epoch_us(recorded_at), CAST(kept AS VARCHAR)
                 FROM main.{DEAD_LETTER_TABLE} WHERE pipeline = ? ORDER BY id, seq"
            ))
            .map_err(DuckDbError::sql("reading dead letters"))?;
        let rows = stmt
            .query_map(params![self.pipeline], |r| {
                Ok((
                    r.get::<_, u64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<u64>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, u64>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, Option<String>>(10)?,
                ))
            })
            .map_err(DuckDbError::sql("reading dead letters"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, source, table, stage, origin, line, raw, reason, seq, at, kept) =
                row.map_err(DuckDbError::sql("reading dead letters"))?;
            out.push(KeptRow {
                id,
                source,
                table,
                stage: DeadLetterStage::parse(&stage).unwrap_or_default(),
                origin,
                line,
                raw,
                reason,
                seq,
                recorded_at: chrono::DateTime::from_timestamp_micros(at).unwrap_or_default(),
                kept: kept.and_then(|k| serde_json::from_str(&k).ok()),
            });
        }
        Ok(out)
    }

    /// Removes dead letters `ids` of this pipeline; returns how many.
    pub fn discard(&mut self, ids: &[u64]) -> Result<u64, DuckDbError> {
        self.commit_open()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        let n = self
            .conn
            .execute(
                &format!(
                    "DELETE FROM main.{DEAD_LETTER_TABLE} WHERE pipeline = ? AND id IN ({})",
                    list.join(", ")
                ),
                params![self.pipeline],
            )
            .map_err(DuckDbError::sql("discarding dead letters"))?;
        Ok(n as u64)
    }

    /// Applies replayed batches and removes the dead letters `resolved`, in
    /// one transaction; checkpoints stay as they are.
    pub fn replay(&mut self, batches: &[Batch], resolved: &[u64]) -> Result<(), DuckDbError> {
        self.commit_open()?;
        for change in batches.iter().flat_map(|b| &b.changes) {
            self.ensure_table(&change.table)?;
        }
        self.conn
            .execute_batch("BEGIN TRANSACTION")
            .map_err(DuckDbError::sql("BEGIN"))?;
        let result = (|| {
            // Replayed rows promise nothing new: the table is no longer
            // one that only a first snapshot filled.
            self.apply_changes(
                "(replay)",
                batches
                    .iter()
                    .flat_map(|b| b.changes.iter().map(move |c| (c, b))),
            )?;
            self.discard(resolved).map(|_| ())
        })();
        match result {
            Ok(()) => self
                .conn
                .execute_batch("COMMIT")
                .map_err(DuckDbError::sql("COMMIT")),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Deletes this pipeline's checkpoints.
    pub fn forget(&mut self) -> Result<(), DuckDbError> {
        self.commit_open()?;
        self.conn
            .execute(
                &format!("DELETE FROM main.{CHECKPOINT_TABLE} WHERE pipeline = ?"),
                params![self.pipeline],
            )
            .map_err(DuckDbError::sql("forgetting checkpoints"))?;
        self.held.clear();
        Ok(())
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
    pub fn write_group(&mut self, source: &str, batches: &[&Batch]) -> Result<usize, DuckDbError> {
        let held = self.held.get(source).copied();
        let fresh: Vec<&Batch> = batches
            .iter()
            .copied()
            .filter(|b| held.is_none_or(|h| b.position.seq > h))
            .collect();
        let Some(last) = fresh.last().copied() else {
            return Ok(0);
        };
        // Blocks of new rows may join a transaction left open by earlier
        // ones of the same source; anything else commits it first.
        let joins_open = self.open.as_ref().is_some_and(|o| o.source == source)
            && fresh.iter().all(|b| {
                b.changes.is_empty()
                    && b.dead_letters.is_empty()
                    && b.block.as_ref().is_none_or(|k| self.is_current(&k.table))
            });
        if !joins_open {
            self.commit_open()?;
        }
        // Tables first seen (or changed) mid-stream are created outside the
        // data transaction: DDL is idempotent.
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
                seq: 0,
                rows: 0,
                fills: self.fills.clone(),
                stats: self.stats,
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
                    open.seq = last.position.seq;
                    open.rows += rows;
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

    /// Commits the transaction [`Writer::write_group`] left open, if any.
    pub fn commit_open(&mut self) -> Result<(), DuckDbError> {
        let Some(open) = self.open.as_ref() else {
            return Ok(());
        };
        let (source, seq) = (open.source.clone(), open.seq);
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            self.roll_back_open();
            return Err(DuckDbError::sql("COMMIT")(e));
        }
        self.open = None;
        if seq > 0 {
            self.held.insert(source, seq);
        }
        Ok(())
    }

    /// Rolls back the open transaction and forgets what it did.
    fn roll_back_open(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.fills = open.fills;
            self.stats = open.stats;
        }
    }

    /// Appends the blocks of `batches` straight to their tables, if every
    /// batch is nothing but a block of new rows (or nothing but a position)
    /// ([`Batch::inserts_are_new`]) into an upsert table that holds only
    /// earlier new rows of `source`, in types the appender stores as they
    /// are. Returns whether it did; `false` leaves everything untouched.
    fn append_blocks(&mut self, source: &str, batches: &[&Batch]) -> Result<bool, DuckDbError> {
        let direct = self.mode == WriteMode::Upsert
            && batches.iter().all(|b| {
                if !b.changes.is_empty() {
                    return false;
                }
                // A batch with nothing but its position changes nothing.
                let Some(block) = b.block.as_ref() else {
                    return true;
                };
                let fill_ok = self.is_current(&block.table)
                    && self
                        .targets
                        .get(&block.table.id)
                        .is_some_and(|target| self.holds_only_new_rows_of(&target.table, source));
                b.inserts_are_new && fill_ok && block_appends_directly(block)
            });
        if !direct {
            return Ok(false);
        }
        for block in batches.iter().filter_map(|b| b.block.as_ref()) {
            let target = &self.targets[&block.table.id];
            let names: Vec<&str> = block
                .table
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            let mut appender = self
                .conn
                .appender_with_columns_to_db(&target.table_name, &self.schema_name, &names)
                .map_err(DuckDbError::sql(format!(
                    "opening the appender of {}",
                    target.table
                )))?;
            appender
                .append_record_batch(block.columns.clone())
                .and_then(|()| appender.flush())
                .map_err(DuckDbError::sql(format!("appending to {}", target.table)))?;
            self.fills
                .insert(target.table.clone(), Fill::NewRowsOf(source.to_owned()));
            self.stats.appended += block.len() as u64;
        }
        Ok(true)
    }

    /// Stages and merges `changes`, each with the batch it came in (history
    /// mode records that batch's position and commit time), as the shared
    /// plan ([`apply::Plan`]) cuts them.
    fn apply_changes<'c>(
        &mut self,
        source: &str,
        changes: impl Iterator<Item = (&'c Change, &'c Batch)>,
    ) -> Result<(), DuckDbError> {
        let targets = &self.targets;
        let plan = apply::Plan::new(
            changes,
            |id| targets.get(id).map(|t| &t.schema),
            self.mode == WriteMode::Upsert,
        );
        for (id, steps) in plan.tables() {
            for step in steps {
                match step {
                    Step::Rows(rows) => self.apply_segment(source, &id, &rows)?,
                    Step::Truncate(batch) => self.truncate(&id, batch)?,
                    Step::Prune(change, batch) => self.prune(&id, change, batch)?,
                }
            }
        }
        Ok(())
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

    fn truncate(&mut self, id: &TableId, batch: &Batch) -> Result<(), DuckDbError> {
        let target = &self.targets[id];
        let sql = sql::truncate(
            &DuckDb,
            self.mode,
            &target.table,
            batch.position.seq,
            batch.commit_time.map(|t| t.timestamp_micros()),
        );
        self.conn
            .execute_batch(&sql)
            .map_err(DuckDbError::sql(format!("truncating {}", target.table)))?;
        let fill = match self.mode {
            WriteMode::Upsert | WriteMode::Append => Fill::Empty,
            WriteMode::History => Fill::Unknown,
        };
        self.fills.insert(target.table.clone(), fill);
        Ok(())
    }

    /// Removes the rows of a key range the source no longer holds (see
    /// [`Op::Prune`]): deleted in `upsert`, recorded as deletes in
    /// `history`; `append` keeps every row it was given.
    fn prune(&mut self, id: &TableId, change: &Change, batch: &Batch) -> Result<(), DuckDbError> {
        if self.mode == WriteMode::Append {
            return Ok(());
        }
        let target = &self.targets[id];
        let schema = &target.schema;
        let range = change.prune_range().ok_or_else(|| DuckDbError::Value {
            column: "*".into(),
            detail: format!("a key scan of {id} arrived without its keys"),
        })?;
        if schema.key.is_empty() {
            return Err(DuckDbError::Schema {
                table: id.to_string(),
                detail: "a key scan needs a key; the table has none".into(),
            });
        }
        // Bounds and present keys go through the staging table, tagged in
        // its op column: `lo`, `hi` and `k`.
        let mut tagged: Vec<(&str, &Vec<Value>)> = Vec::new();
        tagged.extend(range.after_key.iter().map(|k| ("lo", k)));
        tagged.extend(range.up_to.iter().map(|k| ("hi", k)));
        tagged.extend(range.present.iter().map(|k| ("k", k)));
        let mut fields = stage_fields();
        let n = tagged.len();
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(StringArray::from_iter_values(
                tagged.iter().map(|(t, _)| *t),
            )),
            Arc::new(StringArray::from(vec![None::<String>; n])),
            Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(
                batch.position.seq as i64,
                n,
            ))),
            Arc::new(TimestampMicrosecondArray::from(vec![None; n]).with_timezone("UTC")),
        ];
        let null = Value::Null;
        for (i, column) in schema.columns.iter().enumerate() {
            fields.push(arrow_field(&column.name, &column.data_type));
            let at = schema.key.iter().position(|&k| k == i);
            let values = tagged
                .iter()
                .map(|(_, key)| at.and_then(|a| key.get(a)).unwrap_or(&null));
            arrays.push(build_column(&column.data_type, &column.name, values)?);
        }
        lookup_columns(schema, &vec![None; n], &mut fields, &mut arrays)?;
        stage_append(&self.conn, target, fields, arrays, "staging a key scan")?;
        let tables = Tables {
            table: &target.table,
            stage: &target.stage,
            schema,
        };
        let commit = batch.commit_time.map(|t| t.timestamp_micros());
        let statement = sql::prune(
            &DuckDb,
            self.mode,
            tables,
            &range,
            batch.position.seq,
            commit,
        )
        .map_err(|detail| DuckDbError::Schema {
            table: id.to_string(),
            detail,
        })?;
        let Some(statement) = statement else {
            return Ok(());
        };
        self.conn
            .execute_batch(&format!("{statement}; DELETE FROM {};", target.stage))
            .map_err(DuckDbError::sql(format!(
                "removing rows of {} gone at the source",
                target.table
            )))?;
        Ok(())
    }

    /// Writes one run of changes of one table (no truncate inside) from
    /// `source`.
    fn apply_segment(
        &mut self,
        source: &str,
        id: &TableId,
        segment: &[(&Change, &Batch)],
    ) -> Result<(), DuckDbError> {
        if segment.is_empty() {
            return Ok(());
        }
        let changes: Vec<&Change> = segment.iter().map(|(c, _)| *c).collect();
        let changes = changes.as_slice();
        let target = &self.targets[id];
        let schema = &target.schema;
        let (rows, lookups): (Vec<_>, Vec<_>) = apply::resolve(schema, changes)
            .into_iter()
            .map(|r| (r.row, r.lookup))
            .unzip();
        let count = rows.len() as u64;
        // New rows into a table that holds nothing but earlier new rows of
        // the same source: no key of the segment is in the table, so the
        // merge would only insert them.
        let new_rows = self.mode == WriteMode::Upsert
            && self.holds_only_new_rows_of(&target.table, source)
            && segment
                .iter()
                .all(|(c, b)| c.op == Op::Insert && b.inserts_are_new)
            && lookups.iter().all(Option::is_none);
        let fill = if new_rows {
            Fill::NewRowsOf(source.to_owned())
        } else {
            Fill::Unknown
        };
        if new_rows && appends_directly(schema, &rows) {
            append_rows(&self.conn, &self.schema_name, target, &rows)?;
            self.fills.insert(target.table.clone(), fill);
            self.stats.appended += count;
            return Ok(());
        }
        // Stage the segment in bulk through Arrow.
        let mut fields = stage_fields();
        let unchanged: Vec<Option<String>> = rows
            .iter()
            .map(|row| {
                let idx: Vec<String> = row
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| matches!(v, Value::Unchanged))
                    .map(|(i, _)| i.to_string())
                    .collect();
                (!idx.is_empty()).then(|| format!(",{},", idx.join(",")))
            })
            .collect();
        let unchanged_columns: Vec<usize> = {
            let mut set = std::collections::BTreeSet::new();
            for row in &rows {
                for (i, v) in row.iter().enumerate() {
                    if matches!(v, Value::Unchanged) {
                        set.insert(i);
                    }
                }
            }
            set.into_iter().collect()
        };
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..changes.len() as i64)),
            Arc::new(StringArray::from_iter_values(
                changes.iter().map(|c| c.op.code()),
            )),
            Arc::new(StringArray::from(unchanged)),
            Arc::new(Int64Array::from_iter_values(
                segment.iter().map(|(_, b)| b.position.seq as i64),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    segment
                        .iter()
                        .map(|(_, b)| b.commit_time.map(|t| t.timestamp_micros())),
                )
                .with_timezone("UTC"),
            ),
        ];
        let null = Value::Null;
        for (i, column) in schema.columns.iter().enumerate() {
            fields.push(arrow_field(&column.name, &column.data_type));
            let values = rows.iter().map(|row| row.get(i).unwrap_or(&null));
            arrays.push(build_column(&column.data_type, &column.name, values)?);
        }
        lookup_columns(schema, &lookups, &mut fields, &mut arrays)?;
        stage_append(&self.conn, target, fields, arrays, "staging rows")?;
        // Values the source did not send (unchanged TOAST) come from the row
        // the target holds under the key the plan traced them to: the one
        // row of that key in upsert mode, the latest that carries values
        // otherwise.
        if !unchanged_columns.is_empty() && !schema.key.is_empty() {
            let join: Vec<String> = schema
                .key
                .iter()
                .enumerate()
                .map(|(i, &k)| {
                    let c = &schema.columns[k];
                    let looked = cast_from_stage(&format!("s.{}", lookup_column(i)), &c.data_type);
                    format!("t.{} = {looked}", quote(&c.name))
                })
                .collect();
            let order = if self.mode == WriteMode::History {
                "t.\"_op\" IN ('i', 'u') ORDER BY t.\"_seq\" DESC, t.rowid DESC"
            } else {
                "true ORDER BY t.rowid DESC"
            };
            for c in unchanged_columns {
                let col = quote(&schema.columns[c].name);
                let sql = format!(
                    "UPDATE {stage} s SET {col} = (SELECT {value} FROM {table} t WHERE {join} AND {order} LIMIT 1)
                     WHERE s.\"_syncline_unchanged\" LIKE '%,{c},%'",
                    stage = target.stage,
                    table = target.table,
                    value = stage_from_target(&format!("t.{col}"), &schema.columns[c].data_type),
                    join = join.join(" AND "),
                );
                self.conn
                    .execute_batch(&sql)
                    .map_err(DuckDbError::sql(format!(
                        "keeping unchanged values of {}",
                        target.table
                    )))?;
            }
        }

        let tables = Tables {
            table: &target.table,
            stage: &target.stage,
            schema,
        };
        // New rows: staged only for the casts some types need on the way in.
        let mode = if new_rows {
            WriteMode::Append
        } else {
            self.mode
        };
        let merge = sql::merge(&DuckDb, mode, tables, Recorded::Staged).map_err(|detail| {
            DuckDbError::Schema {
                table: id.to_string(),
                detail,
            }
        })?;
        let (table, stage) = (&target.table, &target.stage);
        let sql = format!("{merge}; DELETE FROM {stage};");
        self.conn
            .execute_batch(&sql)
            .map_err(DuckDbError::sql(format!("merging into {table}")))?;
        self.fills.insert(table.clone(), fill);
        if new_rows {
            self.stats.appended += count;
        } else {
            self.stats.merged += count;
        }
        Ok(())
    }

    fn write_dead_letters(&mut self, source: &str, batch: &Batch) -> Result<(), DuckDbError> {
        if batch.dead_letters.is_empty() {
            return Ok(());
        }
        let mut appender = self
            .conn
            .appender(DEAD_LETTER_TABLE)
            .map_err(DuckDbError::sql("opening the dead-letter appender"))?;
        let now = chrono::Utc::now().timestamp_micros();
        for dl in &batch.dead_letters {
            let kept = dl.kept.as_ref().and_then(|k| serde_json::to_string(k).ok());
            appender
                .append_row(params![
                    self.pipeline,
                    source,
                    dl.table.name,
                    dl.origin,
                    dl.line,
                    dl.raw,
                    dl.reason,
                    batch.position.seq,
                    duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, now),
                    self.next_dead_letter,
                    dl.stage.as_str(),
                    kept,
                ])
                .map_err(DuckDbError::sql("writing dead letters"))?;
            self.next_dead_letter += 1;
        }
        appender
            .flush()
            .map_err(DuckDbError::sql("writing dead letters"))
    }
}

/// Whether `rows` can go to the target table through the appender, with
/// no staging table for casts (see [`appends_as_staged`]).
fn appends_directly(schema: &TableSchema, rows: &[std::borrow::Cow<'_, Row>]) -> bool {
    schema
        .columns
        .iter()
        .enumerate()
        .all(|(i, c)| match c.data_type {
            DataType::Json => rows.iter().all(|row| match row.get(i) {
                Some(Value::Json(text) | Value::Text(text)) => json_is_valid(text),
                _ => true,
            }),
            ref t => appends_as_staged(t),
        })
}

/// Whether a block can go to its table through the appender as it is:
/// every column of a type the appender stores as staged, or JSON (which a
/// block holds only valid, see [`InsertBlock`]).
fn block_appends_directly(block: &InsertBlock) -> bool {
    block
        .table
        .columns
        .iter()
        .all(|c| c.data_type == DataType::Json || appends_as_staged(&c.data_type))
}

/// The staging table's leading columns: order in the segment, op code,
/// columns left unchanged, the batch's position and commit time.
fn stage_fields() -> Vec<Field> {
    let [seq, op, unchanged, bseq, commit] = sql::STAGE;
    vec![
        Field::new(seq, ArrowType::Int64, false),
        Field::new(op, ArrowType::Utf8, false),
        Field::new(unchanged, ArrowType::Utf8, true),
        Field::new(bseq, ArrowType::Int64, false),
        Field::new(
            commit,
            ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]
}

/// Adds the staging table's trailing columns: each row's lookup key, or
/// NULLs where it has none.
fn lookup_columns(
    schema: &TableSchema,
    lookups: &[Option<Vec<Value>>],
    fields: &mut Vec<Field>,
    arrays: &mut Vec<ArrayRef>,
) -> Result<(), DuckDbError> {
    let null = Value::Null;
    for (i, &k) in schema.key.iter().enumerate() {
        let column = &schema.columns[k];
        let name = lookup_column(i);
        fields.push(arrow_field(&name, &column.data_type));
        let values = lookups
            .iter()
            .map(|l| l.as_ref().and_then(|key| key.get(i)).unwrap_or(&null));
        arrays.push(build_column(&column.data_type, &name, values)?);
    }
    Ok(())
}

/// Appends `arrays` (the staging table's columns, in order) to `target`'s
/// staging table.
fn stage_append(
    conn: &Connection,
    target: &Target,
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
    what: &str,
) -> Result<(), DuckDbError> {
    let record =
        RecordBatch::try_new(arrow_schema(fields), arrays).map_err(|e| DuckDbError::Value {
            column: "*".into(),
            detail: e.to_string(),
        })?;
    let mut appender = conn
        .appender_to_catalog_and_db(&target.stage_name, "temp", "main")
        .map_err(DuckDbError::sql("opening the staging appender"))?;
    appender
        .append_record_batch(record)
        .map_err(DuckDbError::sql(what.to_owned()))?;
    appender.flush().map_err(DuckDbError::sql(what.to_owned()))
}

/// Appends `rows` to the target table through Arrow, in order.
fn append_rows(
    conn: &Connection,
    schema_name: &str,
    target: &Target,
    rows: &[std::borrow::Cow<'_, Row>],
) -> Result<(), DuckDbError> {
    let schema = &target.schema;
    let null = Value::Null;
    let mut fields = Vec::with_capacity(schema.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.columns.len());
    for (i, column) in schema.columns.iter().enumerate() {
        fields.push(arrow_field(&column.name, &column.data_type));
        let values = rows.iter().map(|row| row.get(i).unwrap_or(&null));
        arrays.push(build_column(&column.data_type, &column.name, values)?);
    }
    let record =
        RecordBatch::try_new(arrow_schema(fields), arrays).map_err(|e| DuckDbError::Value {
            column: "*".into(),
            detail: e.to_string(),
        })?;
    // By name: the table may have columns the source no longer sends.
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    let mut appender = conn
        .appender_with_columns_to_db(&target.table_name, schema_name, &names)
        .map_err(DuckDbError::sql(format!(
            "opening the appender of {}",
            target.table
        )))?;
    appender
        .append_record_batch(record)
        .map_err(DuckDbError::sql(format!("appending to {}", target.table)))?;
    appender
        .flush()
        .map_err(DuckDbError::sql(format!("appending to {}", target.table)))
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
