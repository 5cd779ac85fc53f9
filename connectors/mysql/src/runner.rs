//! A run: where it starts (the stored position, a snapshot to take or to
//! finish), the snapshot copy under one consistent snapshot, and the hand
//! over to the binary log ([`crate::binlog`]).

use futures_util::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::columnar::{BlockBuilder, Cell};
use syncline_engine::connector::{GENERATION, SourceContext, Start};
use syncline_engine::model::Change;
use syncline_engine::status::Phase;
use syncline_engine::{Error, ErrorKind, Result};
use tracing::info;

use crate::error::MyError;
use crate::introspect::{self, TableInfo};
use crate::snapshot::{dead_letter, decode_row, key_is_set, read_error, select_all};
use crate::{LogPos, MySqlSource, MyState, SnapshotState, binlog};

/// Sends `batch`, or stops when the pipeline stops.
pub(crate) async fn send(ctx: &SourceContext, batch: Batch) -> Result<()> {
    tokio::select! {
        sent = ctx.batches.send(batch) => sent.map_err(|_| Error::cancelled()),
        () = ctx.cancel.cancelled() => Err(Error::cancelled()),
    }
}

/// The position `state` stands for, numbered `seq`, with the run's
/// generation.
pub(crate) fn position(seq: u64, state: &MyState) -> Result<Position> {
    let mut value = serde_json::to_value(state)
        .map_err(|e| Error::internal(format!("encoding the MySQL position: {e}")))?;
    if state.generation != 0 {
        value[GENERATION] = state.generation.into();
    }
    Ok(Position { seq, state: value })
}

/// The server's current end of the binary log.
pub(crate) async fn log_end(conn: &mut Conn) -> Result<LogPos> {
    let row: Option<mysql_async::Row> =
        conn.query_first("SHOW MASTER STATUS")
            .await
            .map_err(MyError::query(
                "reading the binary log position (SHOW MASTER STATUS)",
            ))?;
    let row = row.ok_or_else(|| {
        MyError::Precondition(
            "the server's binary log is off: add `log_bin = mysql-bin` and a `server_id` to its [mysqld] settings and restart it".into(),
        )
    })?;
    let file: Option<String> = row.get(0);
    let pos: Option<u64> = row.get(1);
    match (file, pos) {
        (Some(file), Some(pos)) => Ok(LogPos { file, pos }),
        _ => Err(MyError::Binlog("SHOW MASTER STATUS gave no file and position".into()).into()),
    }
}

pub(crate) async fn run(mut src: MySqlSource, ctx: SourceContext) -> Result<()> {
    let mut conn = MySqlSource::connect(&src.config).await?;
    src.describe_all(&mut conn).await?;
    if let Some(t) = src.tables.iter().find(|t| t.schema.key.is_empty()) {
        return Err(MyError::Table {
            table: t.name.clone(),
            detail: "has no primary key: add one, or name key columns with `key = [...]`".into(),
        }
        .into());
    }
    let start = ctx.start();
    let generation = match start {
        Start::Resume { generation } | Start::Restate { generation } => generation,
        Start::Fresh => 0,
    };
    let resumed: Option<MyState> = match (&ctx.resume, start) {
        (Some(p), Start::Resume { .. }) => {
            Some(serde_json::from_value(p.state.clone()).map_err(|e| {
                MyError::State(format!(
                    "the stored position of source `{}` is not a MySQL position: {e}",
                    ctx.name
                ))
            })?)
        }
        _ => None,
    };
    let state = match resumed {
        Some(state) if state.snapshot.is_none() => {
            info!(source = %ctx.name, at = %state.at, "resuming the binary log");
            state
        }
        Some(state) => {
            let seq = ctx.highest_held;
            copy(&src, &mut conn, &ctx, Some(state), seq, generation).await?
        }
        None => {
            let seq = ctx
                .highest_held
                .max(ctx.resume.as_ref().map_or(0, |p| p.seq));
            copy(&src, &mut conn, &ctx, None, seq, generation).await?
        }
    };
    let _ = conn.disconnect().await;
    binlog::stream(src, ctx, state).await
}

/// Copies every table not yet copied under one consistent snapshot and
/// returns the position streaming starts from. `resumed`: a snapshot that
/// stopped midway (its unfinished tables are emptied and copied again);
/// `None`: a first copy of every table (emptied first when the sinks hold
/// an earlier run's rows). Batches are numbered from `seq + 1`.
async fn copy(
    src: &MySqlSource,
    conn: &mut Conn,
    ctx: &SourceContext,
    resumed: Option<MyState>,
    mut seq: u64,
    generation: u64,
) -> Result<MyState> {
    let fresh = resumed.is_none() && matches!(ctx.start(), Start::Fresh);
    // Long pauses while the sinks are behind must not end the query.
    conn.query_drop("SET SESSION net_write_timeout = 86400, SESSION net_read_timeout = 86400")
        .await
        .map_err(MyError::query("setting the snapshot session's timeouts"))?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(MyError::query("setting the snapshot's isolation level"))?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .map_err(MyError::query("starting the consistent snapshot"))?;
    let point = snapshot_point(conn).await?;
    // The tables as the snapshot sees them: a column added since they were
    // described would not be copied.
    for t in &src.tables {
        let decl = src
            .config
            .tables
            .iter()
            .find(|d| d.name == t.name)
            .ok_or_else(|| Error::internal(format!("table {} is not configured", t.name)))?;
        let (now, _) = introspect::describe(conn, &ctx.name, &src.config.database, decl).await?;
        if now.columns != t.columns {
            return Err(MyError::Table {
                table: t.name.clone(),
                detail: "changed while the copy was starting: run again".into(),
            }
            .into());
        }
    }
    let (mut state, mut done) = match resumed {
        Some(s) => {
            let snap = s.snapshot.clone().unwrap_or(SnapshotState {
                at: s.at.clone(),
                done: Vec::new(),
            });
            info!(source = %ctx.name, first = %snap.at, again = %point, copied = ?snap.done, "resuming the snapshot: copying the unfinished tables again");
            (s, snap.done)
        }
        None => (
            MyState {
                at: point.clone(),
                offset: 0,
                gtid: None,
                from: Default::default(),
                columns: Default::default(),
                snapshot: None,
                generation,
            },
            Vec::new(),
        ),
    };
    state.generation = generation;
    let first = state
        .snapshot
        .as_ref()
        .map_or_else(|| state.at.clone(), |s| s.at.clone());
    state.at = first.clone();
    for t in &src.tables {
        if !done.contains(&t.name) {
            ctx.status.set_phase(&t.schema.id, Phase::Snapshot);
        }
    }
    for t in &src.tables {
        if done.contains(&t.name) {
            continue;
        }
        let estimate: Option<u64> = conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&src.config.database, &t.name),
            )
            .await
            .ok()
            .flatten();
        if let Some(rows) = estimate {
            ctx.status.set_snapshot_total(&t.schema.id, rows);
        }
        if point != first {
            state.from.insert(t.name.clone(), point.clone());
        }
        state.columns.insert(
            t.name.clone(),
            t.columns.iter().map(|c| c.name.clone()).collect(),
        );
        state.snapshot = Some(SnapshotState {
            at: first.clone(),
            done: done.clone(),
        });
        seq = copy_table(src, conn, ctx, t, &state, seq, !fresh, fresh, &point).await?;
        done.push(t.name.clone());
    }
    conn.query_drop("COMMIT")
        .await
        .map_err(MyError::query("ending the consistent snapshot"))?;
    // The snapshot is complete: a batch that says so, then the log from
    // the snapshot's point, numbered above it.
    seq += 1;
    state.snapshot = None;
    state.offset = i64::try_from(seq).unwrap_or(i64::MAX) - coordinate_i64(&first)?;
    let mut batch = Batch::stream(position(seq, &state)?, Vec::new());
    batch.kind = BatchKind::Snapshot;
    send(ctx, batch).await?;
    Ok(state)
}

pub(crate) fn coordinate_i64(at: &LogPos) -> Result<i64> {
    i64::try_from(at.coordinate()?)
        .map_err(|_| Error::internal("binary log coordinate out of range"))
}

/// The binary log position of the consistent snapshot just started on
/// `conn`.
async fn snapshot_point(conn: &mut Conn) -> Result<LogPos> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(MyError::query("reading the snapshot's binary log position"))?;
    let file = rows
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("binlog_snapshot_file"));
    let pos = rows
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("binlog_snapshot_position"));
    match (file, pos) {
        (Some((_, file)), Some((_, pos))) if !file.is_empty() => Ok(LogPos {
            file: file.clone(),
            pos: pos.parse().map_err(|_| MyError::Binlog(format!("snapshot position `{pos}`")))?,
        }),
        _ => Err(MyError::Precondition(
            "the server does not report the binary log position of a consistent snapshot (binlog_snapshot_file): Syncline needs MariaDB 10.x with the binary log on; MySQL sources are not supported yet".into(),
        )
        .into()),
    }
}

/// Copies table `t` in batches of `batch_rows`, numbered from `seq + 1`
/// (returns the last number used); the first batch empties the table first
/// when `truncate`.
#[allow(clippy::too_many_arguments)]
async fn copy_table(
    src: &MySqlSource,
    conn: &mut Conn,
    ctx: &SourceContext,
    t: &TableInfo,
    state: &MyState,
    mut seq: u64,
    truncate: bool,
    new_rows: bool,
    point: &LogPos,
) -> Result<u64> {
    let origin = format!("{} (snapshot at {point})", t.name);
    let mut result = conn
        .exec_iter(select_all(&src.config.database, t), ())
        .await
        .map_err(read_error(&t.name))?;
    let mut changes: Vec<Change> = Vec::new();
    if truncate {
        changes.push(Change::truncate(t.schema.clone()));
    }
    let mut dead = Vec::new();
    let mut rows_in_batch = 0usize;
    // Rows go column by column where every consumer reads blocks.
    let mut block = if ctx.blocks {
        BlockBuilder::new(t.schema.clone(), src.config.block_rows)
    } else {
        None
    };
    let batch_rows = if block.is_some() {
        src.config.block_rows
    } else {
        src.config.batch_rows
    };
    let mut stream = result
        .stream::<mysql_async::Row>()
        .await
        .map_err(read_error(&t.name))?;
    let mut sent_any = false;
    loop {
        let next = match stream.as_mut() {
            Some(s) => s.next().await,
            None => None,
        };
        let end = next.is_none();
        if let Some(row) = next {
            let values = row.map_err(read_error(&t.name))?.unwrap();
            match decode_row(&t.columns, values) {
                Ok(row) if key_is_set(t, &row) => {
                    // Into the column block where every value fits it,
                    // else as an insert (the engine checks it).
                    let in_block = block.as_mut().is_some_and(|b| {
                        let cells: Option<Vec<Cell<'_>>> = row
                            .iter()
                            .zip(&t.schema.columns)
                            .map(|(v, c)| Cell::of(v, &c.data_type))
                            .collect();
                        cells.is_some_and(|cells| b.push_row(&cells))
                    });
                    if !in_block {
                        changes.push(Change::insert(t.schema.clone(), row));
                    }
                }
                Ok(row) => dead.push(dead_letter(
                    t,
                    origin.clone(),
                    format!("{row:?}"),
                    "a key column is NULL".into(),
                )),
                Err((why, raw)) => dead.push(dead_letter(t, origin.clone(), raw, why)),
            }
            rows_in_batch += 1;
        }
        let blocked = block.as_ref().map_or(0, BlockBuilder::len);
        let pending = changes.len() + dead.len() + blocked;
        if rows_in_batch >= batch_rows || (end && (pending > 0 || !sent_any)) {
            if end && pending == 0 {
                break;
            }
            seq += 1;
            let mut batch = Batch::stream(position(seq, state)?, std::mem::take(&mut changes));
            batch.kind = BatchKind::Snapshot;
            batch.dead_letters = std::mem::take(&mut dead);
            if blocked > 0
                && let Some(b) = block.as_mut()
            {
                batch.block = Some(b.finish().map_err(Error::internal)?);
            }
            batch.inserts_are_new = new_rows;
            send(ctx, batch).await?;
            sent_any = true;
            rows_in_batch = 0;
        }
        if end {
            break;
        }
    }
    drop(stream);
    drop(result);
    info!(table = %t.name, "copied");
    Ok(seq)
}

/// An error for a source that cannot go on.
pub(crate) fn stop(message: String) -> Error {
    Error::new(ErrorKind::Schema, message)
}
