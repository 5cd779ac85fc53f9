//! Applying a batch: its changes staged with `COPY` and merged with
//! set-based SQL, following the engine's [`apply::Plan`], with its dead
//! letters and the checkpoint in the same transaction.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;
use syncline_engine::apply::sql::{self, Recorded, Tables};
use syncline_engine::apply::{self, Step};
use syncline_engine::batch::Batch;
use syncline_engine::config::WriteMode;
use syncline_engine::model::{Change, DataType, DeadLetter, Op, Row, TableSchema, Value};

use super::dialect::Postgres;
use super::values::{COPY_NULL, postgres_type, push_copy_field, value_text};
use super::{
    ANALYZE_FROM, CHECKPOINT_TABLE, COPY_CHUNK, DEAD_LETTER_TABLE, OpenTransaction, Staged, State,
    Target, statement_failed,
};
use crate::error::PgError;
use crate::introspect::quote;

impl State {
    /// Applies consecutive batches of `source` and the last one's
    /// checkpoint in one transaction; returns how many were applied (those
    /// already held are skipped). A group whose last batch continues a
    /// source transaction ([`Batch::continues`]) leaves the transaction
    /// open, and every group joins an open one, which commits once no
    /// source transaction is open in it. A failure rolls back the whole
    /// open transaction.
    pub(super) async fn write(
        &mut self,
        conn: &mut PgConnection,
        source: &str,
        batches: &[&Batch],
    ) -> Result<usize, PgError> {
        let held = self.held.get(source).copied();
        let fresh: Vec<&Batch> = batches
            .iter()
            .copied()
            .filter(|b| held.is_none_or(|h| b.position.seq > h))
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        // Tables first seen (or changed) mid-stream are created outside the
        // data transaction, or inside the one a source transaction keeps
        // open (a rollback then ends the run: the sink is closed).
        for change in fresh.iter().flat_map(|b| &b.changes) {
            self.ensure_table(conn, &change.table).await?;
        }
        if self.open.is_none() {
            sqlx::raw_sql("BEGIN")
                .execute(&mut *conn)
                .await
                .map_err(statement_failed("BEGIN"))?;
            self.open = Some(OpenTransaction {
                withheld: self.withheld.clone(),
                ..OpenTransaction::default()
            });
        }
        match self.write_in_open(conn, source, &fresh).await {
            Ok(applied) => {
                let Some(open) = self.open.as_ref() else {
                    return Ok(applied);
                };
                if !open.unfinished.is_empty() {
                    return Ok(applied);
                }
                if open.seqs.is_empty() {
                    // Only batches found held: nothing to commit.
                    self.open = None;
                    sqlx::raw_sql("ROLLBACK")
                        .execute(&mut *conn)
                        .await
                        .map_err(statement_failed("ROLLBACK"))?;
                    return Ok(applied);
                }
                if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut *conn).await {
                    self.roll_back(conn).await;
                    return Err(statement_failed("COMMIT")(e));
                }
                if let Some(open) = self.open.take() {
                    self.held.extend(open.seqs);
                }
                Ok(applied)
            }
            Err(e) => {
                self.roll_back(conn).await;
                Err(e)
            }
        }
    }

    /// Applies batches in the open transaction, with the last one's
    /// checkpoint: how many were applied (none of those another run wrote
    /// meanwhile).
    async fn write_in_open(
        &mut self,
        conn: &mut PgConnection,
        source: &str,
        batches: &[&Batch],
    ) -> Result<usize, PgError> {
        let locked = self
            .open
            .as_ref()
            .is_some_and(|o| o.locked.contains(source));
        let mut fresh = batches;
        // Once the transaction holds the lock, no other run can move the
        // checkpoint: it is read once per transaction.
        if !locked {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock_key(&self.schema_name, &self.pipeline, source))
                .execute(&mut *conn)
                .await
                .map_err(statement_failed("locking the checkpoint"))?;
            if let Some(open) = self.open.as_mut() {
                open.locked.insert(source.to_owned());
            }
            let stored: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT seq FROM {} WHERE pipeline = $1 AND source = $2",
                self.qualified(CHECKPOINT_TABLE)
            )))
            .bind(&self.pipeline)
            .bind(source)
            .fetch_optional(&mut *conn)
            .await
            .map_err(statement_failed("reading the checkpoint"))?;
            if let Some(stored) = stored.and_then(|s| u64::try_from(s).ok()) {
                // Written by another run meanwhile.
                let written = fresh
                    .iter()
                    .take_while(|b| b.position.seq <= stored)
                    .count();
                if written > 0 {
                    self.held.insert(source.to_owned(), stored);
                    fresh = &fresh[written..];
                }
            }
        }
        let Some(last) = fresh.last() else {
            return Ok(0);
        };
        let seq_of = |batch: &Batch| {
            i64::try_from(batch.position.seq).map_err(|_| PgError::Checkpoint {
                source_name: source.to_owned(),
                detail: format!(
                    "sequence number {} does not fit a bigint",
                    batch.position.seq
                ),
            })
        };
        let position =
            serde_json::to_string(&last.position.state).map_err(|e| PgError::Checkpoint {
                source_name: source.to_owned(),
                detail: e.to_string(),
            })?;
        // The staging tables empty at each commit; a transaction left open
        // holds what earlier batches staged in it.
        let mut staged = self
            .open
            .as_ref()
            .map(|o| o.staged.clone())
            .unwrap_or_default();
        for batch in fresh {
            // Changes with values Postgres cannot store become dead letters.
            let mut withheld = std::mem::take(&mut self.withheld);
            let screened = apply::set_aside(batch, super::values::refuses, &mut withheld);
            self.withheld = withheld;
            let applied = self
                .apply(conn, source, &screened, seq_of(batch)?, &mut staged)
                .await;
            if let Some(open) = self.open.as_mut() {
                open.staged.clone_from(&staged);
            }
            applied?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (pipeline, source, seq, position, updated_at)
             VALUES ($1, $2, $3, $4::jsonb, now())
             ON CONFLICT (pipeline, source) DO UPDATE SET
                 seq = excluded.seq, position = excluded.position, updated_at = excluded.updated_at",
            self.qualified(CHECKPOINT_TABLE)
        )))
        .bind(&self.pipeline)
        .bind(source)
        .bind(seq_of(last)?)
        .bind(position)
        .execute(&mut *conn)
        .await
        .map_err(statement_failed("storing the checkpoint"))?;
        if let Some(open) = self.open.as_mut() {
            open.seqs.insert(source.to_owned(), last.position.seq);
            if last.continues {
                open.unfinished.insert(source.to_owned());
            } else {
                open.unfinished.remove(source);
            }
        }
        Ok(fresh.len())
    }

    /// Rolls back the open transaction (best effort: a lost connection
    /// rolled it back already) and forgets what it did.
    pub(super) async fn roll_back(&mut self, conn: &mut PgConnection) {
        if let Some(open) = self.open.take() {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            self.withheld = open.withheld;
        }
    }

    pub(super) async fn apply(
        &self,
        conn: &mut PgConnection,
        source: &str,
        batch: &Batch,
        seq: i64,
        staged: &mut Staged,
    ) -> Result<(), PgError> {
        let targets = &self.targets;
        let plan = apply::Plan::new(
            batch.changes.iter().map(|c| (c, batch)),
            |id| targets.get(id).map(|t| &t.schema),
            self.mode == WriteMode::Upsert,
        );
        let commit_micros = batch.commit_time.map(|t| t.timestamp_micros());
        for (id, steps) in plan.tables() {
            let target = self.targets.get(&id).ok_or_else(|| PgError::Table {
                table: id.to_string(),
                detail: "was not prepared".into(),
            })?;
            for step in steps {
                match step {
                    Step::Rows(rows) => {
                        let changes: Vec<&Change> = rows.iter().map(|(c, _)| *c).collect();
                        self.apply_segment(
                            conn,
                            source,
                            batch,
                            target,
                            &changes,
                            seq,
                            commit_micros,
                            staged,
                        )
                        .await?;
                    }
                    Step::Truncate(_) => self.truncate(conn, target, seq, commit_micros).await?,
                    Step::Prune(change, _) => {
                        self.prune(conn, target, change, seq, commit_micros, staged)
                            .await?;
                    }
                }
            }
        }
        self.write_dead_letters(conn, source, batch, seq).await
    }

    async fn truncate(
        &self,
        conn: &mut PgConnection,
        target: &Target,
        seq: i64,
        commit_micros: Option<i64>,
    ) -> Result<(), PgError> {
        let sql = sql::truncate(
            &Postgres,
            self.mode,
            &target.table,
            seq.unsigned_abs(),
            commit_micros,
        );
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(statement_failed(format!("truncating {}", target.table)))?;
        Ok(())
    }

    /// Removes the rows of a key range the source no longer holds (see
    /// [`Op::Prune`]): deleted in `upsert`, recorded as deletes in
    /// `history`; `append` keeps every row it was given.
    async fn prune(
        &self,
        conn: &mut PgConnection,
        target: &Target,
        change: &Change,
        seq: i64,
        commit_micros: Option<i64>,
        staged: &mut Staged,
    ) -> Result<(), PgError> {
        if self.mode == WriteMode::Append {
            return Ok(());
        }
        let schema = &target.schema;
        let range = change.prune_range().ok_or_else(|| PgError::Value {
            column: "*".into(),
            detail: format!("a key scan of {} arrived without its keys", schema.id),
        })?;
        if schema.key.is_empty() {
            return Err(PgError::Table {
                table: schema.id.to_string(),
                detail: "a key scan needs a key; the table has none".into(),
            });
        }
        let stage = &target.stage;
        clear_stage(conn, stage, staged).await?;
        // Bounds and present keys go through the staging table, tagged in
        // `_syncline_op`: `lo`, `hi` and `k`.
        let mut tags: Vec<&str> = Vec::new();
        let mut keys: Vec<&Vec<Value>> = Vec::new();
        for (tag, key) in range
            .after_key
            .iter()
            .map(|k| ("lo", k))
            .chain(range.up_to.iter().map(|k| ("hi", k)))
            .chain(range.present.iter().map(|k| ("k", k)))
        {
            tags.push(tag);
            keys.push(key);
        }
        let width = schema.columns.len();
        let rows: Vec<Row> = keys
            .iter()
            .map(|key| {
                let mut row = vec![Value::Null; width];
                for (&i, v) in schema.key.iter().zip(key.iter()) {
                    row[i] = v.clone();
                }
                row
            })
            .collect();
        let changes: Vec<Change> = rows
            .iter()
            .map(|row| Change {
                op: Op::Insert,
                table: schema.clone(),
                before: None,
                after: Some(row.clone()),
            })
            .collect();
        let refs: Vec<&Change> = changes.iter().collect();
        let cows: Vec<Cow<'_, Row>> = rows.iter().map(Cow::Borrowed).collect();
        copy_rows(
            conn,
            target,
            &refs,
            &cows,
            &vec![None; refs.len()],
            Some(&tags),
        )
        .await?;

        let tables = Tables {
            table: &target.table,
            stage,
            schema,
        };
        let table = &target.table;
        let Some(sql) = sql::prune(
            &Postgres,
            self.mode,
            tables,
            &range,
            seq.unsigned_abs(),
            commit_micros,
        )
        .map_err(|detail| PgError::Table {
            table: schema.id.to_string(),
            detail,
        })?
        else {
            return Ok(());
        };
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(statement_failed(format!(
                "removing rows of {table} gone at the source"
            )))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_segment(
        &self,
        conn: &mut PgConnection,
        source: &str,
        batch: &Batch,
        target: &Target,
        changes: &[&Change],
        seq: i64,
        commit_micros: Option<i64>,
        staged: &mut Staged,
    ) -> Result<(), PgError> {
        if changes.is_empty() {
            return Ok(());
        }
        let schema = &target.schema;
        let stage = &target.stage;
        // An earlier segment of this batch (before a truncate), or an
        // earlier part of an open source transaction, may have used it.
        clear_stage(conn, stage, staged).await?;
        let (rows, lookups): (Vec<_>, Vec<_>) = apply::resolve(schema, changes)
            .into_iter()
            .map(|r| (r.row, r.lookup))
            .unzip();
        let unchanged_columns = copy_rows(conn, target, changes, &rows, &lookups, None).await?;
        if rows.len() >= ANALYZE_FROM {
            sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE {stage}")))
                .execute(&mut *conn)
                .await
                .map_err(statement_failed("analysing the staging table"))?;
        }

        let keys: Vec<String> = schema
            .key
            .iter()
            .map(|&k| quote(&schema.columns[k].name))
            .collect();
        let table = &target.table;

        // Values the source did not send (unchanged TOAST) come from the row
        // the target holds: the one row of the key in upsert mode, the
        // latest otherwise; for a row moved to another key, of its old key.
        if !unchanged_columns.is_empty() && !keys.is_empty() {
            let lookup = |alias: &str| -> Vec<String> {
                schema
                    .key
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        let c = &schema.columns[k];
                        format!(
                            "({alias}._syncline_from[{n}])::{ty}",
                            n = i + 1,
                            ty = postgres_type(&c.data_type),
                        )
                    })
                    .collect()
            };
            let lookup_join: Vec<String> = keys
                .iter()
                .zip(lookup("s"))
                .map(|(k, e)| format!("t.{k} = {e}"))
                .collect();
            // Rows whose values the target cannot take over: dead letters,
            // not rows with NULLs.
            let holds_values = if self.mode == WriteMode::History {
                "AND t._op IN ('i', 'u')"
            } else {
                ""
            };
            let lost: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT s._syncline_seq FROM {stage} s WHERE s._syncline_unchanged IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {join} {holds_values}) ORDER BY 1",
                join = lookup_join.join(" AND "),
            )))
            .fetch_all(&mut *conn)
            .await
            .map_err(statement_failed(format!(
                "looking up unchanged values of {table}"
            )))?;
            if !lost.is_empty() {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {stage} WHERE _syncline_seq = ANY($1)"
                )))
                .bind(&lost)
                .execute(&mut *conn)
                .await
                .map_err(statement_failed("setting aside rows without their values"))?;
                let dead_letters: Vec<DeadLetter> = lost
                    .iter()
                    .filter_map(|&i| {
                        let i = usize::try_from(i).ok()?;
                        let key = lookups.get(i)?.as_ref()?;
                        Some(apply::unchanged_values_lost(
                            changes.get(i)?,
                            batch,
                            rows.get(i)?,
                            key,
                        ))
                    })
                    .collect();
                self.write_dead_letter_rows(conn, source, seq, &dead_letters)
                    .await?;
            }
            let set: Vec<String> = unchanged_columns
                .iter()
                .map(|&c| {
                    let col = quote(&schema.columns[c].name);
                    format!(
                        "{col} = CASE WHEN {n} = ANY(s._syncline_unchanged) THEN t.{col} ELSE s.{col} END",
                        n = c
                    )
                })
                .collect();
            let from = match self.mode {
                WriteMode::Upsert => format!("{table} t"),
                WriteMode::Append | WriteMode::History => {
                    let order = if self.mode == WriteMode::History {
                        "_seq DESC, ctid DESC"
                    } else {
                        "ctid DESC"
                    };
                    let wanted: Vec<String> = unchanged_columns
                        .iter()
                        .map(|&c| quote(&schema.columns[c].name))
                        .collect();
                    // History: only rows that carry values (not deletes
                    // or truncates).
                    let ops = if self.mode == WriteMode::History {
                        "AND _op IN ('i', 'u')"
                    } else {
                        ""
                    };
                    format!(
                        "(SELECT DISTINCT ON ({k}) {k}, {wanted} FROM {table}
                          WHERE ({k}) IN (SELECT {looked} FROM {stage} x WHERE x._syncline_unchanged IS NOT NULL) {ops}
                          ORDER BY {k}, {order}) t",
                        k = keys.join(", "),
                        wanted = wanted.join(", "),
                        looked = lookup("x").join(", "),
                    )
                }
            };
            let sql = format!(
                "UPDATE {stage} s SET {set} FROM {from} WHERE s._syncline_unchanged IS NOT NULL AND {join}",
                set = set.join(", "),
                join = lookup_join.join(" AND "),
            );
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .map_err(statement_failed(format!(
                    "keeping unchanged values of {table}"
                )))?;
        }

        let tables = Tables {
            table,
            stage,
            schema,
        };
        let recorded = Recorded::Batch {
            seq: seq.unsigned_abs(),
            commit_micros,
        };
        let sql = sql::merge(&Postgres, self.mode, tables, recorded).map_err(|detail| {
            PgError::Table {
                table: schema.id.to_string(),
                detail,
            }
        })?;
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(statement_failed(format!("merging into {table}")))?;
        Ok(())
    }

    async fn write_dead_letters(
        &self,
        conn: &mut PgConnection,
        source: &str,
        batch: &Batch,
        seq: i64,
    ) -> Result<(), PgError> {
        self.write_dead_letter_rows(conn, source, seq, &batch.dead_letters)
            .await
    }

    /// Copies `dead_letters` of `source`'s batch `seq` into the dead-letter
    /// table, in the open transaction.
    async fn write_dead_letter_rows(
        &self,
        conn: &mut PgConnection,
        source: &str,
        seq: i64,
        dead_letters: &[DeadLetter],
    ) -> Result<(), PgError> {
        if dead_letters.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        let seq = seq.to_string();
        for dl in dead_letters {
            // NUL cannot be stored; a rejected record must not be lost for it.
            let clean = |s: &str| s.replace('\0', "\u{fffd}");
            let line = dl.line.map(|l| l.to_string());
            let kept = dl.kept.as_ref().and_then(|k| serde_json::to_string(k).ok());
            let fields: [Option<&str>; 10] = [
                Some(&self.pipeline),
                Some(source),
                Some(&dl.table.name),
                Some(&dl.origin),
                line.as_deref(),
                Some(&dl.raw),
                Some(&dl.reason),
                Some(&seq),
                Some(dl.stage.as_str()),
                kept.as_deref(),
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                match f {
                    Some(text) => push_copy_field(&mut data, &clean(text)),
                    None => data.extend_from_slice(COPY_NULL),
                }
            }
            data.push(b'\n');
        }
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {} (pipeline, source, table_name, origin, line, raw, reason, seq, stage, kept) FROM STDIN",
                self.qualified(DEAD_LETTER_TABLE)
            ))
            .await
            .map_err(statement_failed("writing dead letters"))?;
        if let Err(e) = copy.send(data).await {
            let _ = copy.abort("sending failed").await;
            return Err(statement_failed("writing dead letters")(e));
        }
        copy.finish()
            .await
            .map_err(statement_failed("writing dead letters"))?;
        Ok(())
    }
}

/// Readies `stage` for a segment: empty unless an earlier segment of this
/// transaction filled it (the stages empty at each commit), and then
/// emptied with `TRUNCATE`, not `DELETE`: deleted rows stay in the table
/// until the transaction ends, and every later merge would scan them again
/// (the parts of one 5-million-row source transaction took twice as long
/// with parts of 10,000 rows as with 50,000). A rollback undoes it.
async fn clear_stage(
    conn: &mut PgConnection,
    stage: &str,
    staged: &mut Staged,
) -> Result<(), PgError> {
    if staged.insert(stage.to_owned()) {
        return Ok(());
    }
    sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE {stage}")))
        .execute(&mut *conn)
        .await
        .map_err(statement_failed("clearing the staging table"))?;
    Ok(())
}

/// Bulk-loads one segment into its staging table with `COPY ... FROM STDIN`,
/// each row tagged with its change's op code or, where given, `tags[i]`,
/// and with the key its unchanged values are found under (`lookups[i]`,
/// see [`apply::StagedRow::lookup`]). Returns the columns that have values
/// the source did not send.
async fn copy_rows(
    conn: &mut PgConnection,
    target: &Target,
    changes: &[&Change],
    rows: &[Cow<'_, Row>],
    lookups: &[Option<Vec<Value>>],
    tags: Option<&[&str]>,
) -> Result<BTreeSet<usize>, PgError> {
    let schema = &target.schema;
    let mut columns = vec![
        "_syncline_seq".to_owned(),
        "_syncline_op".to_owned(),
        "_syncline_unchanged".to_owned(),
        "_syncline_from".to_owned(),
    ];
    columns.extend(schema.columns.iter().map(|c| quote(&c.name)));
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {} ({}) FROM STDIN",
            target.stage,
            columns.join(", ")
        ))
        .await
        .map_err(statement_failed(format!(
            "staging rows for {}",
            target.table
        )))?;
    let mut unchanged_columns = BTreeSet::new();
    let mut data: Vec<u8> = Vec::with_capacity(COPY_CHUNK + 64 * 1024);
    let mut text = String::new();
    let null = Value::Null;
    let mut failure: Option<PgError> = None;
    'rows: for (i, (change, row)) in changes.iter().zip(rows).enumerate() {
        let _ = write!(text, "{i}");
        data.extend_from_slice(text.as_bytes());
        text.clear();
        data.push(b'\t');
        let tag = tags.and_then(|t| t.get(i).copied());
        data.extend_from_slice(tag.unwrap_or(change.op.code()).as_bytes());
        data.push(b'\t');
        let unchanged: Vec<String> = row
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v, Value::Unchanged))
            .map(|(c, _)| c.to_string())
            .collect();
        if unchanged.is_empty() {
            data.extend_from_slice(COPY_NULL);
        } else {
            data.push(b'{');
            data.extend_from_slice(unchanged.join(",").as_bytes());
            data.push(b'}');
            for (c, v) in row.iter().enumerate() {
                if matches!(v, Value::Unchanged) {
                    unchanged_columns.insert(c);
                }
            }
        }
        // Where values left out are found: the key the plan traced the row to.
        data.push(b'\t');
        match lookups.get(i).and_then(Option::as_ref) {
            Some(key) => match old_key_literal(schema, key) {
                Ok(literal) => push_copy_field(&mut data, &literal),
                Err(e) => {
                    failure = Some(e);
                    break 'rows;
                }
            },
            None => data.extend_from_slice(COPY_NULL),
        }
        for (c, column) in schema.columns.iter().enumerate() {
            data.push(b'\t');
            let v = row.get(c).unwrap_or(&null);
            match value_text(&column.data_type, v, &mut text) {
                Ok(true) => push_copy_field(&mut data, &text),
                Ok(false) => data.extend_from_slice(COPY_NULL),
                Err(detail) => {
                    failure = Some(PgError::Value {
                        column: column.name.clone(),
                        detail,
                    });
                    break 'rows;
                }
            }
            text.clear();
        }
        data.push(b'\n');
        if data.len() >= COPY_CHUNK {
            if let Err(e) = copy.send(std::mem::take(&mut data)).await {
                failure = Some(statement_failed(format!(
                    "staging rows for {}",
                    target.table
                ))(e));
                break;
            }
            data.reserve(COPY_CHUNK + 64 * 1024);
        }
    }
    if let Some(e) = failure {
        let _ = copy.abort("the batch was refused").await;
        return Err(e);
    }
    let what = || format!("staging rows for {}", target.table);
    if !data.is_empty()
        && let Err(e) = copy.send(data).await
    {
        let _ = copy.abort("sending failed").await;
        return Err(statement_failed(what())(e));
    }
    copy.finish().await.map_err(statement_failed(what()))?;
    Ok(unchanged_columns)
}

/// A lookup key (values in key-column order) as a `text[]` literal of its
/// values' input text (cast back to the key types when the target is
/// searched).
fn old_key_literal(schema: &TableSchema, key: &[Value]) -> Result<String, PgError> {
    let mut items = Vec::with_capacity(schema.key.len());
    for (i, &k) in schema.key.iter().enumerate() {
        let column = &schema.columns[k];
        let mut one = String::new();
        let v = key.get(i).unwrap_or(&Value::Null);
        value_text(&column.data_type, v, &mut one).map_err(|detail| PgError::Value {
            column: column.name.clone(),
            detail,
        })?;
        items.push(Value::Text(one));
    }
    let mut literal = String::new();
    let list = DataType::List {
        item: Box::new(DataType::Text),
    };
    value_text(&list, &Value::List(items), &mut literal).map_err(|detail| PgError::Value {
        column: "(key)".into(),
        detail,
    })?;
    Ok(literal)
}

/// The advisory lock serialising writes of one (schema, pipeline, source).
fn lock_key(schema: &str, pipeline: &str, source: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in ["syncline", schema, pipeline, source] {
        for b in part.bytes().chain([0u8]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_differ_by_every_part() {
        let a = lock_key("public", "p", "src");
        assert_ne!(a, lock_key("public", "p", "src2"));
        assert_ne!(a, lock_key("other", "p", "src"));
        assert_ne!(lock_key("a", "bc", "d"), lock_key("ab", "c", "d"));
    }
}
