//! The dead-letter table: written with each batch, listed, discarded and
//! replayed.

use super::*;

impl Writer {
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
        let pinned = self.pinned.clone();
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
        let result = result.and_then(|()| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(DuckDbError::sql("COMMIT"))
        });
        match result {
            Ok(()) => {
                self.stats.commits += 1;
                self.checkpoint_when_deletes_pile_up();
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.pinned = pinned;
                self.fit_limit_to_room();
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

    pub(super) fn write_dead_letters(
        &mut self,
        source: &str,
        batch: &Batch,
    ) -> Result<(), DuckDbError> {
        self.write_dead_letter_rows(source, batch.position.seq, &batch.dead_letters)
    }

    /// Appends `dead_letters` of `source`'s batch `seq` to the dead-letter
    /// table, in the open transaction.
    pub(super) fn write_dead_letter_rows(
        &mut self,
        source: &str,
        seq: u64,
        dead_letters: &[DeadLetter],
    ) -> Result<(), DuckDbError> {
        if dead_letters.is_empty() {
            return Ok(());
        }
        let mut appender = self
            .conn
            .appender(DEAD_LETTER_TABLE)
            .map_err(DuckDbError::sql("opening the dead-letter appender"))?;
        let now = chrono::Utc::now().timestamp_micros();
        for dl in dead_letters {
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
                    seq,
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
