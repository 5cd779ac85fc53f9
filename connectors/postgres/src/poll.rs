//! Sync without logical replication, for databases where it is not allowed:
//!
//! * `incremental`: rows whose `(cursor, key)` is greater than the last one
//!   delivered are read in order, in batches, and upserted. The cursor must
//!   grow with every change (an `updated_at` set by the application or a
//!   trigger, or a sequence). Deletes are not seen.
//! * `full`: the whole table is copied on every run, after a truncate of the
//!   target table.
//!
//! The position holds, per table, the last `(cursor, key)` delivered (as
//! text, compared in SQL with the columns' own types), so a restart goes on
//! from there.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use sqlx::postgres::PgConnection;
use syncline_engine::config::SyncMode;
use syncline_engine::connector::SourceContext;
use syncline_engine::model::{Batch, BatchKind, Change, Op, Position, Row};
use syncline_engine::status::Phase;
use syncline_engine::{Error, Result};
use tokio::sync::mpsc;
use tracing::info;

use crate::config::PostgresSourceConfig;
use crate::error::PgError;
use crate::introspect::{TableInfo, literal, quote};
use crate::snapshot::{self, Chunk, Part};

/// Progress of polled tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollState {
    /// Per incremental table: the last `(cursor, key...)` delivered, as text.
    pub cursors: BTreeMap<String, Vec<Option<String>>>,
    /// Full-refresh tables copied completely in the run that wrote this
    /// position (a restart mid-copy copies again from a truncate).
    pub full_done: Vec<String>,
    /// The run counter the `full_done` list belongs to.
    pub run: u64,
}

/// One polled table with what the queries need.
#[derive(Debug, Clone)]
pub struct PolledTable {
    /// The table.
    pub info: TableInfo,
    /// Sync mode (incremental or full).
    pub mode: SyncMode,
    /// `(cursor, key...)` column names and Postgres types, incremental only.
    pub order: Vec<(String, String)>,
}

/// The `(cursor, key...)` columns of an incremental table with their types.
pub async fn order_columns(
    conn: &mut PgConnection,
    info: &TableInfo,
    cursor: &str,
) -> Result<Vec<(String, String)>> {
    if info.schema.key.is_empty() {
        return Err(PgError::Table {
            table: info.wire_name(),
            detail: "incremental mode needs a key to order rows with equal cursor values; declare key = [...]".into(),
        }
        .into());
    }
    let mut names = vec![cursor.to_owned()];
    names.extend(
        info.schema
            .key_names()
            .into_iter()
            .map(str::to_owned)
            .filter(|k| k != cursor),
    );
    let mut out = Vec::new();
    for n in names {
        let ty: Option<String> = sqlx::query_scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = $1::int8::oid AND attname = $2 AND NOT attisdropped",
        )
        .bind(i64::from(info.oid))
        .bind(&n)
        .fetch_optional(&mut *conn)
        .await
        .map_err(PgError::query("reading the cursor column"))?;
        let ty = ty.ok_or_else(|| PgError::Table {
            table: info.wire_name(),
            detail: format!("cursor column `{n}` does not exist"),
        })?;
        out.push((n, ty));
    }
    Ok(out)
}

/// Runs every polled table of a source; returns when done (`follow` off) or
/// cancelled.
pub async fn run(
    config: &PostgresSourceConfig,
    conn: &mut PgConnection,
    tables: &[PolledTable],
    ctx: &SourceContext,
    resume: Option<(u64, PollState)>,
) -> Result<()> {
    let (mut seq, mut state) = resume.unwrap_or_default();
    // A new run: full tables are copied again.
    state.run += 1;
    state.full_done.clear();
    let mut emitter = Emitter {
        seq: &mut seq,
        state: &mut state,
        ctx,
    };
    for t in tables.iter().filter(|t| t.mode == SyncMode::Full) {
        ctx.status.set_phase(&t.info.schema.id, Phase::Snapshot);
        full_copy(config, conn, t, &mut emitter).await?;
        emitter.state.full_done.push(t.info.schema.id.name.clone());
        emitter.emit(Vec::new(), BatchKind::Snapshot).await?;
        ctx.status.set_phase(&t.info.schema.id, Phase::Done);
    }
    let incremental: Vec<&PolledTable> = tables
        .iter()
        .filter(|t| t.mode == SyncMode::Incremental)
        .collect();
    for t in &incremental {
        ctx.status.set_phase(&t.info.schema.id, Phase::Snapshot);
    }
    let mut first = true;
    loop {
        for t in &incremental {
            poll_table(config, conn, t, &mut emitter).await?;
            if first {
                let phase = if ctx.follow {
                    Phase::Streaming
                } else {
                    Phase::Done
                };
                ctx.status.set_phase(&t.info.schema.id, phase);
            }
        }
        first = false;
        if !ctx.follow || incremental.is_empty() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(config.poll_secs.max(1))) => {}
            _ = ctx.cancel.cancelled() => return Ok(()),
        }
    }
}

struct Emitter<'a> {
    seq: &'a mut u64,
    state: &'a mut PollState,
    ctx: &'a SourceContext,
}

impl Emitter<'_> {
    async fn emit(&mut self, changes: Vec<Change>, kind: BatchKind) -> Result<()> {
        *self.seq += 1;
        let state = serde_json::to_value(serde_json::json!({ "poll": &*self.state }))
            .map_err(|e| Error::internal(e.to_string()))?;
        let batch = Batch {
            position: Position {
                seq: *self.seq,
                state,
            },
            kind,
            txid: None,
            commit_time: Some(chrono::Utc::now()),
            changes,
            dead_letters: Vec::new(),
            // Polled pages may repeat rows the target holds.
            inserts_are_new: false,
        };
        tokio::select! {
            sent = self.ctx.batches.send(batch) => sent.map_err(|_| Error::cancelled()),
            _ = self.ctx.cancel.cancelled() => Err(Error::cancelled()),
        }
    }
}

fn changes(table: &TableInfo, op: Op, rows: Vec<Row>) -> Vec<Change> {
    rows.into_iter()
        .map(|row| Change {
            op,
            table: table.schema.clone(),
            before: None,
            after: Some(row),
        })
        .collect()
}

async fn full_copy(
    config: &PostgresSourceConfig,
    conn: &mut PgConnection,
    t: &PolledTable,
    out: &mut Emitter<'_>,
) -> Result<()> {
    let truncate = Change {
        op: Op::Truncate,
        table: t.info.schema.clone(),
        before: None,
        after: None,
    };
    out.emit(vec![truncate], BatchKind::Snapshot).await?;
    let (tx, mut rx) = mpsc::channel(2);
    let chunk = Chunk {
        start: 0,
        end: None,
    };
    let read = snapshot::read_chunk(conn, &t.info, 0, chunk, config.batch_rows, &tx);
    tokio::pin!(read);
    let mut done = false;
    loop {
        tokio::select! {
            result = &mut read, if !done => {
                result?;
                done = true;
            }
            part = rx.recv() => match part {
                Some(Ok(Part::Rows { rows, .. })) => {
                    out.emit(changes(&t.info, Op::Insert, rows), BatchKind::Snapshot).await?;
                }
                Some(Ok(Part::ChunkDone { .. })) => {}
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
        }
        if done && rx.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Reads everything past the table's cursor, in batches.
async fn poll_table(
    config: &PostgresSourceConfig,
    conn: &mut PgConnection,
    t: &PolledTable,
    out: &mut Emitter<'_>,
) -> Result<()> {
    let name = t.info.schema.id.name.clone();
    let cols: Vec<String> = t.order.iter().map(|(c, _)| quote(c)).collect();
    let tuple = format!("({})", cols.join(", "));
    let order = cols.join(", ");
    let literals = |values: &[Option<String>]| -> String {
        values
            .iter()
            .zip(&t.order)
            .map(|(v, (_, ty))| match v {
                Some(v) => format!("{}::{ty}", literal(v)),
                None => format!("NULL::{ty}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Rows without a cursor value cannot be ordered and are not read.
    let base = format!("{} IS NOT NULL", cols[0]);
    let mut total = 0u64;
    loop {
        let mut filter = base.clone();
        if let Some(values) = out.state.cursors.get(&name) {
            filter.push_str(&format!(" AND {tuple} > ({})", literals(values)));
        }
        // The last row of the next page, as text, for the position.
        let last_sql = format!(
            "SELECT {} FROM (SELECT {order} FROM ONLY {} WHERE {filter} ORDER BY {order} LIMIT {}) AS page ORDER BY {} LIMIT 1",
            cols.iter()
                .map(|c| format!("{c}::text"))
                .collect::<Vec<_>>()
                .join(", "),
            t.info.quoted(),
            config.batch_rows,
            cols.iter()
                .map(|c| format!("{c} DESC"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(last_sql))
            .fetch_optional(&mut *conn)
            .await
            .map_err(PgError::query(format!(
                "reading new rows of {}",
                t.info.wire_name()
            )))?;
        let Some(row) = row else { break };
        let next: Vec<Option<String>> = (0..t.order.len())
            .map(|i| row.get::<Option<String>, _>(i))
            .collect();
        // The rows themselves, in binary, through the same decoder as CDC.
        let page = format!("{filter} AND {tuple} <= ({})", literals(&next));
        let rows = snapshot::read_rows(conn, &t.info, &page, &order).await?;
        let n = rows.len() as u64;
        total += n;
        out.state.cursors.insert(name.clone(), next);
        out.emit(changes(&t.info, Op::Update, rows), BatchKind::Stream)
            .await?;
        if n < config.batch_rows as u64 {
            break;
        }
    }
    if total > 0 {
        info!(table = %name, rows = total, "new rows read by cursor");
    }
    Ok(())
}
