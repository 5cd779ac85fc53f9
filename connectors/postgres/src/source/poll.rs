//! Sync without logical replication, for databases where it is not allowed:
//!
//! * `incremental`: rows whose `(cursor, key)` is greater than the last one
//!   delivered are read in order, in batches, and upserted. The cursor must
//!   grow with every change (an `updated_at` set by the application or a
//!   trigger, or a sequence). Deletes are not seen, unless the table asks
//!   for a periodic key scan (`key_scan_secs`): every so often its keys are
//!   read in key order, a page at a time, and each page goes out as an
//!   [`Op::Prune`] that removes from the targets the rows of that key range
//!   the source no longer holds.
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
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::config::SyncMode;
use syncline_engine::connector::{GENERATION, SourceContext, Start};
use syncline_engine::model::{Change, Op, Row};
use syncline_engine::status::Phase;
use syncline_engine::{Error, Result};
use tokio::sync::mpsc;
use tracing::info;

use super::config::PostgresSourceConfig;
use super::snapshot::{self, Chunk, Part};
use crate::error::PgError;
use crate::introspect::{TableInfo, literal, quote};

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
    /// Per table with a key scan: when the last complete scan started
    /// (seconds since the Unix epoch). A scan cut short runs again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scanned: BTreeMap<String, i64>,
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
    /// How often to scan the keys for rows deleted at the source.
    pub key_scan: Option<Duration>,
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
    column_types(conn, info, names).await
}

/// `names` with their Postgres types (`format_type`).
async fn column_types(
    conn: &mut PgConnection,
    info: &TableInfo,
    names: Vec<String>,
) -> Result<Vec<(String, String)>> {
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
    let start = ctx.start();
    let (seq, mut state) = match start {
        Start::Resume { .. } => resume.unwrap_or_default(),
        Start::Fresh | Start::Restate { .. } => (0, PollState::default()),
    };
    let generation = match start {
        Start::Resume { generation } | Start::Restate { generation } => generation,
        Start::Fresh => 0,
    };
    // Pages are read as the tables are now, which a sink further ahead may
    // not have seen: number them above everything any sink holds, so every
    // sink applies them (they are upserts, prunes and truncates: applying
    // one a sink already reflects changes nothing).
    let mut seq = seq.max(ctx.highest_held);
    // A new run: full tables are copied again.
    state.run += 1;
    state.full_done.clear();
    let mut emitter = Emitter {
        seq: &mut seq,
        state: &mut state,
        generation,
        ctx,
    };
    if matches!(start, Start::Restate { .. }) {
        // Some sinks hold rows of an earlier run (see `Start::Restate`):
        // every table is read again from the start, so the rows the source
        // deleted meanwhile must go from the sinks that hold them. Full
        // tables begin with a truncate anyway.
        let truncates: Vec<Change> = tables
            .iter()
            .filter(|t| t.mode == SyncMode::Incremental)
            .map(|t| Change::truncate(t.info.schema.clone()))
            .collect();
        if !truncates.is_empty() {
            emitter.emit(truncates, BatchKind::Snapshot).await?;
        }
    }
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
            if let Some(every) = t.key_scan {
                let name = &t.info.schema.id.name;
                let now = chrono::Utc::now().timestamp();
                let due = emitter
                    .state
                    .scanned
                    .get(name)
                    .is_none_or(|&last| now.saturating_sub(last) >= every.as_secs() as i64);
                if due {
                    key_scan(config, conn, t, now, &mut emitter).await?;
                }
            }
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
    /// The run's generation, kept in every position.
    generation: u64,
    ctx: &'a SourceContext,
}

impl Emitter<'_> {
    async fn emit(&mut self, changes: Vec<Change>, kind: BatchKind) -> Result<()> {
        *self.seq += 1;
        let mut state = serde_json::to_value(serde_json::json!({ "poll": &*self.state }))
            .map_err(|e| Error::internal(e.to_string()))?;
        if self.generation > 0 {
            state[GENERATION] = self.generation.into();
        }
        let batch = Batch {
            position: Position {
                seq: *self.seq,
                state,
            },
            kind,
            txid: None,
            commit_time: Some(chrono::Utc::now()),
            changes,
            block: None,
            dead_letters: Vec::new(),
            // Polled pages may repeat rows the target holds.
            inserts_are_new: false,
            continues: false,
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
    out.emit(
        vec![Change::truncate(t.info.schema.clone())],
        BatchKind::Snapshot,
    )
    .await?;
    let (tx, mut rx) = mpsc::channel(2);
    let chunk = Chunk {
        start: 0,
        end: None,
    };
    let read = snapshot::read_chunk(
        conn,
        &t.info,
        0,
        chunk,
        snapshot::Shape::Rows(config.batch_rows),
        &tx,
    );
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
                // Read as rows above; a block still arrives whole.
                Some(Ok(Part::Block { block, misfits, .. })) => {
                    let mut rows = changes(&t.info, Op::Insert, misfits);
                    rows.extend(block.changes());
                    out.emit(rows, BatchKind::Snapshot).await?;
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

/// Reads the table's keys in key order, a page at a time, and sends each
/// page as a prune of its key range; the last prune reaches past the last
/// key. Text keys are ordered byte-wise (`COLLATE "C"`), as targets compare
/// them. Records the scan in the position with its last page.
async fn key_scan(
    config: &PostgresSourceConfig,
    conn: &mut PgConnection,
    t: &PolledTable,
    started: i64,
    out: &mut Emitter<'_>,
) -> Result<()> {
    let schema = &t.info.schema;
    let names: Vec<String> = schema.key_names().into_iter().map(str::to_owned).collect();
    let typed = column_types(conn, &t.info, names).await?;
    // The table seen through its key columns only, for the binary reader.
    let keys_only = {
        let mut info = t.info.clone();
        let mut projected = (**schema).clone();
        projected.columns = schema
            .key
            .iter()
            .map(|&k| schema.columns[k].clone())
            .collect();
        projected.key = (0..schema.key.len()).collect();
        info.decoders = schema
            .key
            .iter()
            .map(|&k| t.info.decoders[k].clone())
            .collect();
        info.schema = std::sync::Arc::new(projected);
        info
    };
    let ordered: Vec<String> = schema
        .key
        .iter()
        .map(|&k| {
            let c = &schema.columns[k];
            if c.data_type == syncline_engine::model::DataType::Text {
                format!("{} COLLATE \"C\"", quote(&c.name))
            } else {
                quote(&c.name)
            }
        })
        .collect();
    let plain: Vec<String> = typed.iter().map(|(c, _)| quote(c)).collect();
    let tuple = format!("({})", ordered.join(", "));
    let order = ordered.join(", ");
    let literals = |values: &[String]| -> String {
        values
            .iter()
            .zip(&typed)
            .map(|(v, (_, ty))| format!("{}::{ty}", literal(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lower: Option<(Vec<String>, Vec<syncline_engine::model::Value>)> = None;
    let mut pages = 0u64;
    let mut keys_seen = 0u64;
    loop {
        let filter = match &lower {
            Some((text, _)) => format!("{tuple} > ({})", literals(text)),
            None => "true".to_owned(),
        };
        let last_sql = format!(
            "SELECT {} FROM (SELECT {} FROM ONLY {} WHERE {filter} ORDER BY {order} LIMIT {}) AS page ORDER BY {} LIMIT 1",
            plain
                .iter()
                .map(|c| format!("{c}::text"))
                .collect::<Vec<_>>()
                .join(", "),
            plain.join(", "),
            t.info.quoted(),
            config.batch_rows,
            ordered
                .iter()
                .map(|c| format!("{c} DESC"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(last_sql))
            .fetch_optional(&mut *conn)
            .await
            .map_err(PgError::query(format!(
                "scanning the keys of {}",
                t.info.wire_name()
            )))?;
        let after_key = lower.as_ref().map(|(_, values)| values.clone());
        let Some(row) = row else {
            // Past the last key: whatever the targets hold there is gone.
            out.state.scanned.insert(schema.id.name.clone(), started);
            out.emit(
                vec![Change::prune(schema.clone(), after_key, Vec::new())],
                BatchKind::Stream,
            )
            .await?;
            break;
        };
        let last: Vec<String> = (0..typed.len()).map(|i| row.get::<String, _>(i)).collect();
        let page = format!("{filter} AND {tuple} <= ({})", literals(&last));
        let rows = snapshot::read_rows(conn, &keys_only, &page, &order).await?;
        if rows.is_empty() {
            // The page's rows were deleted in between: read it again.
            continue;
        }
        pages += 1;
        keys_seen += rows.len() as u64;
        let upper = rows.last().cloned();
        out.emit(
            vec![Change::prune(schema.clone(), after_key, rows)],
            BatchKind::Stream,
        )
        .await?;
        lower = upper.map(|values| (last, values));
    }
    info!(table = %schema.id.name, keys = keys_seen, pages, "key scan done");
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
