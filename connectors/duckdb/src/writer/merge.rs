//! Applying a batch's changes, following the engine's [`apply::Plan`]:
//! blocks of new rows appended directly, runs of changes staged and merged
//! with the shared SQL of [`sql`], truncates and prunes.

use super::*;

impl Writer {
    /// Appends the blocks of `batches` straight to their tables, if every
    /// batch is nothing but a block of new rows (or nothing but a position)
    /// ([`Batch::inserts_are_new`]) into an upsert table that holds only
    /// earlier new rows of `source`, in types the appender stores as they
    /// are. Returns whether it did; `false` leaves everything untouched.
    pub(super) fn append_blocks(
        &mut self,
        source: &str,
        batches: &[&Batch],
    ) -> Result<bool, DuckDbError> {
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
    pub(super) fn apply_changes<'c>(
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

    fn truncate(&mut self, id: &TableId, batch: &Batch) -> Result<(), DuckDbError> {
        if self.mode != WriteMode::History {
            let table = self.targets[id].table.clone();
            self.make_room_for_deletes(&table, u64::MAX, None)?;
        }
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
        if self.mode == WriteMode::Upsert {
            let table = self.targets[id].table.clone();
            self.make_room_for_deletes(&table, u64::MAX, None)?;
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
        // Owned: dead letters are written (`&mut self`) while it is in use.
        let target = self.targets[id].clone();
        let target = &target;
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
            // The target row `t` whose key equals a key of the staged row
            // `s`: the one it is looked up under, or its own.
            let key_join = |staged: &dyn Fn(usize, &str) -> String| -> String {
                schema
                    .key
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        let c = &schema.columns[k];
                        let value = cast_from_stage(&staged(i, &c.name), &c.data_type);
                        format!("t.{} = {value}", quote(&c.name))
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ")
            };
            let join = key_join(&|i, _| format!("s.{}", lookup_column(i)));
            let (holds_values, order) = if self.mode == WriteMode::History {
                (
                    "t.\"_op\" IN ('i', 'u')",
                    "ORDER BY t.\"_seq\" DESC, t.rowid DESC",
                )
            } else {
                ("true", "ORDER BY t.rowid DESC")
            };
            // Rows whose values the target cannot take over: dead letters,
            // not rows with NULLs.
            let lost: Vec<i64> = {
                let sql = format!(
                    "SELECT s.\"_syncline_seq\" FROM {stage} s WHERE s.\"_syncline_unchanged\" IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {join} AND {holds_values}) ORDER BY 1",
                    stage = target.stage,
                    table = target.table,
                );
                let what = || format!("looking up unchanged values of {}", target.table);
                let mut stmt = self.conn.prepare(&sql).map_err(DuckDbError::sql(what()))?;
                let seqs = stmt
                    .query_map([], |r| r.get::<_, i64>(0))
                    .map_err(DuckDbError::sql(what()))?;
                seqs.collect::<Result<_, _>>()
                    .map_err(DuckDbError::sql(what()))?
            };
            if !lost.is_empty() {
                let list: Vec<String> = lost.iter().map(i64::to_string).collect();
                self.conn
                    .execute_batch(&format!(
                        "DELETE FROM {} WHERE \"_syncline_seq\" IN ({})",
                        target.stage,
                        list.join(", ")
                    ))
                    .map_err(DuckDbError::sql("setting aside rows without their values"))?;
                for i in lost {
                    let i = usize::try_from(i).unwrap_or(usize::MAX);
                    let (Some((change, batch)), Some(row), Some(Some(key))) =
                        (segment.get(i), rows.get(i), lookups.get(i))
                    else {
                        continue;
                    };
                    let dl = apply::unchanged_values_lost(change, batch, row, key);
                    self.write_dead_letter_rows(source, batch.position.seq, &[dl])?;
                }
            }
            for c in unchanged_columns {
                let col = quote(&schema.columns[c].name);
                let sql = format!(
                    "UPDATE {stage} s SET {col} = (SELECT {value} FROM {table} t WHERE {join} AND {holds_values} {order} LIMIT 1)
                     WHERE s.\"_syncline_unchanged\" LIKE '%,{c},%'",
                    stage = target.stage,
                    table = target.table,
                    value = stage_from_target(&format!("t.{col}"), &schema.columns[c].data_type),
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
        if mode == WriteMode::Upsert {
            // Updates and deletes replace stored rows; inserts are of new
            // keys (bar a few re-read after a restart).
            let replacing = changes.iter().filter(|c| c.op != Op::Insert).count() as u64;
            // The vectors the merge's delete touches.
            let touched = sql::replaced(&DuckDb, tables).map(|(from, join)| {
                format!("SELECT count(DISTINCT t.rowid // 2048) FROM {from} WHERE {join}")
            });
            self.make_room_for_deletes(&target.table, replacing, touched.as_deref())?;
        }
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
    use duckdb::arrow::array::AsArray as _;
    use duckdb::arrow::datatypes::{Date32Type, TimestampMicrosecondType};
    // `-infinity` is encoded differently in DuckDB: such a block goes the
    // way of rows, which translate it.
    let no_minus_infinity = |i: usize| {
        let array = block.columns.column(i);
        if let Some(a) = array.as_primitive_opt::<Date32Type>() {
            return !a.iter().any(|d| d == Some(i32::MIN));
        }
        if let Some(a) = array.as_primitive_opt::<TimestampMicrosecondType>() {
            return !a.iter().any(|t| t == Some(i64::MIN));
        }
        true
    };
    block.table.columns.iter().enumerate().all(|(i, c)| {
        (c.data_type == DataType::Json || appends_as_staged(&c.data_type)) && no_minus_infinity(i)
    })
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
