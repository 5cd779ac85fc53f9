//! Following the slot: one batch per source transaction, acknowledgement
//! feedback, heartbeats, reconnects, and columns added at the source.

use std::sync::Arc;
use std::time::Duration;

use pg_walstream::{
    ChangeEvent, ColumnValue, EventType, LogicalReplicationStream, ReplicationSlotOptions,
    ReplicationStreamConfig, RowData, StreamingMode,
};
use sqlx::postgres::PgConnection;
use syncline_engine::batch::BatchKind;
use syncline_engine::connector::SourceContext;
use syncline_engine::model::{Change, Column, Op, Row, Value};
use syncline_engine::status::Phase;
use syncline_engine::{Error, ErrorKind, Result};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::runner::Runner;
use super::{PgState, lsn_text, parse_lsn};
use crate::error::PgError;
use crate::introspect;

/// How long a heartbeat or another query beside the stream may take before
/// its connection is taken for lost.
const SIDE_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

impl Runner {
    /// The stream of the source's slot (created with an exported snapshot).
    pub(super) fn stream_config(&self) -> ReplicationStreamConfig {
        self.slot_config(self.src.slot.clone(), false)
    }

    /// A stream of `slot` over the source's publication; `temporary`: the
    /// slot goes with the connection.
    pub(super) fn slot_config(&self, slot: String, temporary: bool) -> ReplicationStreamConfig {
        ReplicationStreamConfig::builder(slot, self.src.slot.clone())
            .with_protocol_version(1)
            .with_streaming_mode(StreamingMode::Off)
            .with_binary(true)
            .with_messages(true)
            .with_feedback_interval(Duration::from_secs(1))
            .with_slot_options(ReplicationSlotOptions {
                temporary,
                snapshot: Some("export".into()),
                ..ReplicationSlotOptions::default()
            })
    }

    /// Follows the slot, one batch per transaction. Heartbeats and the
    /// retained-WAL reading wait at most [`SIDE_QUERY_TIMEOUT`] each.
    pub(super) async fn stream(
        &mut self,
        stop_at: Option<u64>,
        stream: LogicalReplicationStream,
        ctx: &mut SourceContext,
    ) -> Result<()> {
        let reader_cancel = ctx.cancel.child_token();
        // The LSN every sink holds: what the server may forget.
        let mut acked_lsn = self.acked;
        let (mut reader, mut rx, mut feedback) =
            spawn_reader(stream, acked_lsn, reader_cancel.clone());
        let mut backoff = Duration::from_millis(500);
        for t in &self.src.tables {
            let phase = if self.state.catch_up_until.is_some() {
                Phase::CatchUp
            } else {
                Phase::Streaming
            };
            ctx.status.set_phase(&t.schema.id, phase);
        }
        let heartbeat_secs = self.src.config.heartbeat_secs;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(heartbeat_secs.max(1)));
        // After a stall, one heartbeat, not one per missed tick.
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        let mut retained = tokio::time::interval(Duration::from_secs(5));
        retained.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tx_buf: Option<TxBuf> = None;
        let result: Result<()> = loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => {
                    // Graceful stop: let the sinks commit what was passed on
                    // (bounded), so the slot's confirmed position is final.
                    let deadline = tokio::time::sleep(Duration::from_secs(10));
                    tokio::pin!(deadline);
                    while acked_lsn < self.state.lsn {
                        tokio::select! {
                            changed = ctx.acknowledged.changed() => {
                                if changed.is_err() {
                                    break;
                                }
                                let acked = ctx.acknowledged.borrow_and_update().clone();
                                if let Some(p) = acked
                                    && let Ok(s) = serde_json::from_value::<PgState>(p.state)
                                {
                                    acked_lsn = acked_lsn.max(s.lsn);
                                    self.acked = acked_lsn;
                                }
                            }
                            _ = &mut deadline => break,
                        }
                    }
                    feedback.update_flushed_lsn(acked_lsn);
                    feedback.update_applied_lsn(acked_lsn);
                    break Ok(());
                }
                changed = ctx.acknowledged.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                    let acked = ctx.acknowledged.borrow_and_update().clone();
                    if let Some(p) = acked
                        && let Ok(s) = serde_json::from_value::<PgState>(p.state)
                    {
                        acked_lsn = acked_lsn.max(s.lsn);
                        self.acked = acked_lsn;
                        feedback.update_flushed_lsn(acked_lsn);
                        feedback.update_applied_lsn(acked_lsn);
                    }
                }
                _ = heartbeat.tick(), if heartbeat_secs > 0 => {
                    // Bounded: a connection gone silent must not hold up
                    // the stream (or a stop) behind it.
                    let sent = tokio::time::timeout(
                        SIDE_QUERY_TIMEOUT,
                        sqlx::query("SELECT pg_logical_emit_message(true, 'syncline_heartbeat', '')")
                            .execute(&mut self.conn),
                    )
                    .await;
                    if !matches!(sent, Ok(Ok(_))) {
                        let error = match sent {
                            Ok(Err(e)) => e.to_string(),
                            _ => format!("no answer within {SIDE_QUERY_TIMEOUT:?}"),
                        };
                        warn!(error = %error, "heartbeat failed; reconnecting its connection");
                        let reconnected = self.src.config.endpoint().connect().await;
                        ctx.status.record_error(format!(
                            "source `{}`: connection lost ({error}); {}",
                            ctx.name,
                            match &reconnected {
                                Ok(_) => "reconnected".to_owned(),
                                Err(e) => format!("reconnecting failed ({e}), trying again at the next heartbeat"),
                            }
                        ));
                        if let Ok(conn) = reconnected {
                            self.conn = conn;
                        }
                    }
                }
                _ = retained.tick() => {
                    let bytes = tokio::time::timeout(
                        SIDE_QUERY_TIMEOUT,
                        sqlx::query_scalar::<_, Option<i64>>(
                            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1")
                            .bind(&self.src.slot)
                            .fetch_optional(&mut self.conn),
                    )
                    .await;
                    if let Ok(Ok(Some(Some(b)))) = bytes {
                        ctx.status.set_retained_bytes(&ctx.name, b.max(0) as u64);
                    }
                }
                event = rx.recv() => {
                    let Some(event) = event else {
                        // The reader stopped: cancelled, or reached `stop_at`.
                        break Ok(());
                    };
                    let event = match event {
                        Ok(e) => {
                            backoff = Duration::from_millis(500);
                            e
                        }
                        Err(e) if ctx.cancel.is_cancelled() => {
                            debug!(error = %e, "replication ended while stopping");
                            break Ok(());
                        }
                        Err(e) => {
                            // Connection lost: reconnect with backoff and resume
                            // from what every sink holds; transactions already
                            // passed on are skipped by LSN.
                            let message = Error::from(e).chain();
                            warn!(error = %message, retry_in = ?backoff, "replication connection lost; reconnecting");
                            ctx.status.record_error(format!("replication connection lost, reconnecting: {message}"));
                            // A transaction whose first parts went out comes
                            // again whole: those parts are skipped then.
                            if let Some(buf) = tx_buf.take().filter(|b| b.sent > 0) {
                                self.resend = Some((buf.final_lsn, buf.sent));
                            }
                            let _ = (&mut reader).await;
                            match self.reconnect(acked_lsn, &mut backoff, ctx).await {
                                Ok(stream) => {
                                    (reader, rx, feedback) = spawn_reader(stream, acked_lsn, reader_cancel.clone());
                                    info!(lsn = %lsn_text(acked_lsn), "replication resumed");
                                    continue;
                                }
                                Err(e) => break Err(e),
                            }
                        }
                    };
                    if let Err(e) = self.on_event(event, &mut tx_buf, ctx).await {
                        break Err(e);
                    }
                    if self.replayed {
                        // Replayed up to the new copy's point.
                        break Ok(());
                    }
                    if let Some(stop) = stop_at && self.state.lsn >= stop && tx_buf.is_none() {
                        break Ok(());
                    }
                }
            }
        };
        reader_cancel.cancel();
        let _ = reader.await;
        if result.is_ok() && !ctx.follow && !self.replayed {
            for t in &self.src.tables {
                ctx.status.set_phase(&t.schema.id, Phase::Done);
            }
        }
        result
    }

    /// Opens a new replication stream from `lsn`, retrying with exponential
    /// backoff until it works or the pipeline stops.
    async fn reconnect(
        &mut self,
        lsn: u64,
        backoff: &mut Duration,
        ctx: &SourceContext,
    ) -> Result<LogicalReplicationStream> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(*backoff) => {}
                _ = ctx.cancel.cancelled() => return Err(Error::cancelled()),
            }
            *backoff = (*backoff * 2).min(Duration::from_secs(30));
            let attempt = async {
                self.conn = self.src.config.endpoint().connect().await?;
                let mut stream = LogicalReplicationStream::new(
                    &self.src.config.endpoint().replication_url()?,
                    self.stream_config(),
                )
                .await
                .map_err(PgError::replication("reconnecting for replication"))?;
                stream
                    .start(Some(lsn))
                    .await
                    .map_err(PgError::replication("restarting replication"))?;
                Ok::<_, Error>(stream)
            };
            match attempt.await {
                Ok(stream) => return Ok(stream),
                Err(e)
                    if e.kind() == ErrorKind::Connection || e.kind() == ErrorKind::Precondition =>
                {
                    warn!(error = %e.chain(), retry_in = ?backoff, "reconnect failed");
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn on_event(
        &mut self,
        event: ChangeEvent,
        tx_buf: &mut Option<TxBuf>,
        ctx: &mut SourceContext,
    ) -> Result<()> {
        match event.event_type {
            EventType::Begin {
                transaction_id,
                final_lsn,
                commit_timestamp,
            } => {
                let final_lsn = final_lsn.value();
                // Sent again after a lost connection: what its parts held
                // went out already.
                let skip = match self.resend.take() {
                    Some((lsn, sent)) if lsn == final_lsn => sent,
                    other => {
                        self.resend = other;
                        0
                    }
                };
                *tx_buf = Some(TxBuf {
                    xid: transaction_id,
                    final_lsn,
                    commit_time: commit_timestamp,
                    changes: Vec::new(),
                    sent: skip,
                    skip,
                    dropped: false,
                });
            }
            EventType::Commit {
                end_lsn,
                commit_timestamp,
                ..
            } => {
                let Some(buf) = tx_buf.take() else {
                    return Ok(());
                };
                let end = end_lsn.value();
                if end <= self.state.lsn {
                    debug!(lsn = %lsn_text(end), "skipping a transaction the targets already hold");
                    return Ok(());
                }
                if let Some(until) = self.state.catch_up_until
                    && end > until
                {
                    // Committed after the point of the copy that follows
                    // the replay: it comes again after the copy.
                    self.replayed = true;
                    return Ok(());
                }
                if buf.dropped {
                    // Its changes were let go as those of a transaction to
                    // skip, which it turns out not to be.
                    return Err(Error::internal(format!(
                        "transaction {} ending at {} was taken for one to skip",
                        buf.xid,
                        lsn_text(end)
                    )));
                }
                self.state.lsn = end;
                let (kind, changes) = self.kind_of(buf.changes);
                self.emit(
                    changes,
                    kind,
                    Some(end),
                    Some(commit_timestamp),
                    Some(buf.xid.to_string()),
                    ctx,
                )
                .await?;
            }
            EventType::Relation {
                namespace,
                relation_name,
                columns,
                ..
            } => {
                self.on_relation(&format!("{namespace}.{relation_name}"), &columns, ctx)
                    .await?;
            }
            EventType::Insert {
                schema,
                table,
                data,
                ..
            } => {
                let (_, change) = self.change(&schema, &table, Op::Insert, None, Some(&data))?;
                self.push(tx_buf, change, ctx).await?;
            }
            EventType::Update {
                schema,
                table,
                old_data,
                new_data,
                ..
            } => {
                let (_, change) = self.change(
                    &schema,
                    &table,
                    Op::Update,
                    old_data.as_ref(),
                    Some(&new_data),
                )?;
                self.push(tx_buf, change, ctx).await?;
            }
            EventType::Delete {
                schema,
                table,
                old_data,
                ..
            } => {
                let (_, change) =
                    self.change(&schema, &table, Op::Delete, Some(&old_data), None)?;
                self.push(tx_buf, change, ctx).await?;
            }
            EventType::Truncate { tables, .. } => {
                for name in tables.iter() {
                    if let Some(&ti) = self.by_wire.get(name.as_ref()) {
                        let change = Change::truncate(self.src.tables[ti].schema.clone());
                        self.push(tx_buf, change, ctx).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The kind of the batch a transaction's `changes` go out in, and the
    /// changes it holds: during the replay before a resumed snapshot's
    /// copy, less what that copy supersedes.
    fn kind_of(&self, changes: Vec<Change>) -> (BatchKind, Vec<Change>) {
        match &self.state.snapshot {
            Some(plan) if self.state.catch_up_until.is_some() => {
                let recopied: Vec<&str> = plan
                    .tables
                    .iter()
                    .filter(|(_, t)| t.done.len() < t.chunks.len())
                    .map(|(name, _)| name.as_str())
                    .collect();
                (BatchKind::CatchUp, superseded_by_copy(changes, &recopied))
            }
            _ => (BatchKind::Stream, changes),
        }
    }

    /// Adds a change to the transaction being read; once it holds
    /// `transaction_rows` changes, they go out as a part of it.
    async fn push(
        &mut self,
        tx_buf: &mut Option<TxBuf>,
        change: Change,
        ctx: &SourceContext,
    ) -> Result<()> {
        let Some(buf) = tx_buf.as_mut() else {
            return Ok(());
        };
        if buf.skip > 0 {
            buf.skip -= 1;
            return Ok(());
        }
        if buf.dropped {
            return Ok(());
        }
        buf.changes.push(change);
        if buf.changes.len() < self.src.config.transaction_rows.max(1) {
            return Ok(());
        }
        let final_lsn = buf.final_lsn;
        // A transaction the targets hold already, or one committed after
        // the point of the copy that follows a replay, is skipped at its
        // commit: its changes need not be kept. (No record boundary lies
        // inside a commit record, so its start decides as its end does.)
        let held = final_lsn < self.state.lsn;
        let later = self
            .state
            .catch_up_until
            .is_some_and(|until| final_lsn >= until);
        if held || later {
            buf.changes = Vec::new();
            buf.dropped = true;
            return Ok(());
        }
        // Every part before the last is numbered just above the commit's
        // start: above every transaction committed before it, below its own
        // end, and the same each time it is read.
        let seq = final_lsn + 1;
        if seq < self.seq || (seq == self.seq && buf.sent == 0) {
            // A batch before it was numbered at or above that: kept whole.
            return Ok(());
        }
        let (xid, commit_time) = (buf.xid, buf.commit_time);
        buf.sent += buf.changes.len();
        let changes = std::mem::take(&mut buf.changes);
        let (kind, changes) = self.kind_of(changes);
        debug!(
            xid,
            changes = changes.len(),
            "a part of a large transaction"
        );
        self.emit_part(
            changes,
            kind,
            seq,
            Some(commit_time),
            Some(xid.to_string()),
            ctx,
        )
        .await
    }

    fn change(
        &self,
        schema: &str,
        table: &str,
        op: Op,
        before: Option<&RowData>,
        after: Option<&RowData>,
    ) -> Result<(usize, Change)> {
        let wire = format!("{schema}.{table}");
        let ti = *self.by_wire.get(&wire).ok_or_else(|| {
            Error::internal(format!(
                "change for table {wire}, which is not in the pipeline"
            ))
        })?;
        let info = &self.src.tables[ti];
        let decode = |data: &RowData, missing: Value| -> Result<Row> {
            info.schema
                .columns
                .iter()
                .zip(&info.decoders)
                .map(|(c, d)| match data.get(&c.name) {
                    None => Ok(missing.clone()),
                    Some(ColumnValue::Null) => Ok(Value::Null),
                    Some(ColumnValue::Binary(b)) => d.decode(b).map_err(|detail| {
                        Error::from(PgError::Value {
                            column: format!("{wire}.{}", c.name),
                            detail,
                        })
                    }),
                    Some(ColumnValue::Text(b)) => {
                        Ok(Value::Text(String::from_utf8_lossy(b).into_owned()))
                    }
                })
                .collect()
        };
        // A column an update's tuple leaves out is unchanged (TOAST); one an
        // insert's leaves out did not exist yet (a change older than a
        // column added while the pipeline was stopped): NULL, as Postgres
        // shows it for rows of that time.
        let left_out = if op == Op::Insert {
            Value::Null
        } else {
            Value::Unchanged
        };
        let after = after.map(|d| decode(d, left_out)).transpose()?;
        let before = before.map(|d| decode(d, Value::Null)).transpose()?;
        Ok((
            ti,
            Change {
                op,
                table: info.schema.clone(),
                before,
                after,
            },
        ))
    }

    /// A relation message: the table's shape as the stream now sees it.
    async fn on_relation(
        &mut self,
        wire: &str,
        columns: &[pg_walstream::RelationColumn],
        ctx: &SourceContext,
    ) -> Result<()> {
        let Some(&ti) = self.by_wire.get(wire) else {
            return Ok(());
        };
        let known: Vec<String> = self.src.tables[ti]
            .schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let incoming: Vec<String> = columns.iter().map(|c| c.name.to_string()).collect();
        if incoming == known {
            return Ok(());
        }
        // Changes committed before columns were added (while the pipeline was
        // stopped) come in the shape of their time, older than the catalog
        // read at start: their missing columns stay as the target has them.
        let stream_is_behind = incoming.len() < known.len()
            && known[..incoming.len()] == incoming[..]
            && sqlx::query_scalar::<_, String>(
                "SELECT attname::text FROM pg_attribute
                 WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            )
            .bind(i64::from(self.src.tables[ti].oid))
            .fetch_all(&mut self.conn)
            .await
            .map_err(PgError::query("reading columns"))?
                == known;
        if stream_is_behind {
            return Ok(());
        }
        let prefix_kept = incoming.len() > known.len() && incoming[..known.len()] == known[..];
        if !prefix_kept {
            ctx.status
                .set_phase(&self.src.tables[ti].schema.id, Phase::Paused);
            return Err(PgError::Table {
                table: wire.to_owned(),
                detail: format!(
                    "its columns changed from ({}) to ({}); only added columns are applied automatically. Review the change, then re-sync the table (`syncline drop` and run again)",
                    known.join(", "),
                    incoming.join(", ")
                ),
            }
            .into());
        }
        let mut info = self.src.tables[ti].clone();
        let mut schema = (*info.schema).clone();
        for c in &columns[known.len()..] {
            let decoder = introspect::resolve_type(&mut self.conn, c.type_id, c.type_modifier)
                .await?
                .ok_or_else(|| PgError::Table {
                    table: wire.to_owned(),
                    detail: format!(
                        "added column `{}` has a type Syncline cannot read yet",
                        c.name
                    ),
                })?;
            info!(table = wire, column = %c.name, "column added at the source");
            schema.columns.push(Column {
                name: c.name.to_string(),
                data_type: decoder.data_type(),
                nullable: true,
            });
            info.decoders.push(decoder);
        }
        schema.version += 1;
        info.schema = Arc::new(schema);
        self.src.tables[ti] = info;
        Ok(())
    }
}

/// The changes of a transaction replayed before tables `recopied` are
/// copied whole (a resumed snapshot), less what that copy supersedes: an
/// update of such a table that leaves values out (unchanged TOAST), which
/// a target may not hold the row for, is dropped, since the copy brings the
/// row as it is then; if it moved the row, the removal of the old key is
/// kept as a delete (the copy does not remove rows). Every other change is
/// kept: the targets hold the rows of the other tables exactly.
fn superseded_by_copy(changes: Vec<Change>, recopied: &[&str]) -> Vec<Change> {
    changes
        .into_iter()
        .filter_map(|c| {
            let leaves_out = c.op == Op::Update
                && c.after
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|v| matches!(v, Value::Unchanged)));
            if !leaves_out || !recopied.contains(&c.table.id.name.as_str()) {
                return Some(c);
            }
            let moved = match (&c.before, &c.after) {
                (Some(before), Some(after)) => c.table.key_of(before) != c.table.key_of(after),
                _ => false,
            };
            moved.then_some(Change {
                op: Op::Delete,
                after: None,
                ..c
            })
        })
        .collect()
}

/// The transaction being read.
struct TxBuf {
    xid: u32,
    /// Where its commit record begins.
    final_lsn: u64,
    commit_time: chrono::DateTime<chrono::Utc>,
    /// Its changes not yet sent.
    changes: Vec<Change>,
    /// How many of its changes went out in parts (see `Batch::continues`).
    sent: usize,
    /// Changes still to skip: sent in parts before the connection was lost.
    skip: usize,
    /// Let go: a transaction to skip at its commit.
    dropped: bool,
}

type Reader = (
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<std::result::Result<ChangeEvent, PgError>>,
    Arc<pg_walstream::SharedLsnFeedback>,
);

/// Reads the replication stream on its own task (so nothing is lost to a
/// dropped future), passing events through a bounded channel.
fn spawn_reader(
    stream: LogicalReplicationStream,
    acked: u64,
    cancel: tokio_util::sync::CancellationToken,
) -> Reader {
    let feedback = stream.shared_lsn_feedback.clone();
    feedback.update_flushed_lsn(acked);
    feedback.update_applied_lsn(acked);
    let (tx, rx) = mpsc::channel::<std::result::Result<ChangeEvent, PgError>>(4096);
    let handle = tokio::spawn(async move {
        let mut events = stream.into_stream(cancel);
        loop {
            match events.next_event().await {
                Ok(e) => {
                    if tx.send(Ok(e)).await.is_err() {
                        break;
                    }
                }
                Err(pg_walstream::ReplicationError::Cancelled(_)) => break,
                Err(pg_walstream::ReplicationError::StreamStopped { .. }) => break,
                Err(e) => {
                    let _ = tx
                        .send(Err(PgError::Replication {
                            what: "reading the change stream".into(),
                            source: e,
                        }))
                        .await;
                    break;
                }
            }
        }
        let _ = events.shutdown().await;
    });
    (handle, rx, feedback)
}

/// Starts streaming after `lsn`; with `once`, returns the LSN to stop at:
/// that of a marker written now, so every transaction committed before it
/// is delivered and the run then ends even when nothing else happens.
pub(super) async fn stream_start(
    stream: &mut LogicalReplicationStream,
    lsn: u64,
    once: bool,
    conn: &mut PgConnection,
) -> Result<Option<u64>> {
    let stop = if once {
        let text: String = sqlx::query_scalar(
            "SELECT pg_logical_emit_message(true, 'syncline_heartbeat', 'once')::text",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(PgError::query("marking the end of this run in the WAL"))?;
        parse_lsn(&text)
    } else {
        None
    };
    // The slot may still be held by the server for a run that just ended
    // (its walsender exits a moment after the client goes): wait for it.
    let deadline = tokio::time::Instant::now() + SLOT_BUSY_WAIT;
    let mut wait = Duration::from_millis(100);
    loop {
        match stream.start(Some(lsn)).await {
            Ok(()) => break,
            Err(e) if e.to_string().contains("55006") && tokio::time::Instant::now() < deadline => {
                debug!(error = %e, retry_in = ?wait, "the replication slot is still in use");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(PgError::replication("starting replication")(e).into()),
        }
    }
    Ok(stop.filter(|s| *s > lsn))
}

/// How long a start waits for a replication slot that another connection
/// still holds (SQLSTATE 55006) before it gives up and says so.
const SLOT_BUSY_WAIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_engine::model::{DataType, TableId, TableSchema};

    fn table(name: &str) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            id: TableId {
                origin: "pg".into(),
                name: name.into(),
            },
            columns: ["id", "body"]
                .iter()
                .map(|n| Column {
                    name: (*n).into(),
                    data_type: DataType::Int64,
                    nullable: true,
                })
                .collect(),
            key: vec![0],
            version: 1,
        })
    }

    fn update(t: &Arc<TableSchema>, from: Option<i64>, to: i64, body: Value) -> Change {
        Change {
            op: Op::Update,
            table: t.clone(),
            before: from.map(|k| vec![Value::Int(k), Value::Null]),
            after: Some(vec![Value::Int(to), body]),
        }
    }

    #[test]
    fn a_copy_supersedes_only_updates_that_leave_values_out_of_recopied_tables() {
        let (docs, other) = (table("docs"), table("other"));
        let kept = superseded_by_copy(
            vec![
                update(&docs, None, 1, Value::Unchanged),
                update(&docs, Some(2), 3, Value::Unchanged),
                update(&docs, None, 4, Value::Int(4)),
                update(&other, None, 5, Value::Unchanged),
            ],
            &["docs"],
        );
        let shown: Vec<(Op, &str, Option<i64>)> = kept
            .iter()
            .map(|c| {
                let row = c.after.as_ref().or(c.before.as_ref());
                let key = row.and_then(|r| match r[0] {
                    Value::Int(k) => Some(k),
                    _ => None,
                });
                (c.op, c.table.id.name.as_str(), key)
            })
            .collect();
        assert_eq!(
            shown,
            [
                (Op::Delete, "docs", Some(2)),
                (Op::Update, "docs", Some(4)),
                (Op::Update, "other", Some(5)),
            ]
        );
    }
}
