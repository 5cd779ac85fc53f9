//! A running source: the start-up (stored position, publication, slot and
//! exported snapshot), the parallel snapshot copy and the hand-over to the
//! stream (see [`super::stream`]) or to polling (see [`super::poll`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pg_walstream::LogicalReplicationStream;
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use syncline_engine::batch::{Batch, BatchKind, Position};
use syncline_engine::columnar::InsertBlock;
use syncline_engine::config::SyncMode;
use syncline_engine::connector::SourceContext;
use syncline_engine::model::{Change, Op, Row};
use syncline_engine::status::Phase;
use syncline_engine::{Error, ErrorKind, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::snapshot::{self, Chunk, Part};
use super::stream::stream_start;
use super::{
    PgState, PostgresSource, PostgresSourceConfig, SnapshotState, TableChunks, parse_lsn, poll,
};
use crate::error::PgError;
use crate::introspect::{TableInfo, literal};

/// A running source.
pub(super) struct Runner {
    pub(super) src: PostgresSource,
    pub(super) conn: PgConnection,
    pub(super) state: PgState,
    seq: u64,
    /// Table index by `schema.table`, as pgoutput names it.
    pub(super) by_wire: HashMap<String, usize>,
}

impl Runner {
    pub(super) async fn start(mut src: PostgresSource, ctx: &SourceContext) -> Result<Self> {
        // The connection discovery used, if it still answers.
        let kept = match src.conn.take() {
            Some(mut conn) => conn.ping().await.is_ok().then_some(conn),
            None => None,
        };
        let conn = match kept {
            Some(conn) => conn,
            None => src.config.endpoint().connect().await?,
        };
        let (state, seq) = match &ctx.resume {
            // Polled sources keep their own position (see `poll`).
            Some(_) if src.config.polls_only() => (
                PgState {
                    slot: src.slot.clone(),
                    lsn: 0,
                    snapshot: None,
                    catch_up_until: None,
                },
                0,
            ),
            Some(p) => {
                let state: PgState = serde_json::from_value(p.state.clone()).map_err(|e| {
                    PgError::State(format!(
                        "the stored position of source `{}` is not a Postgres position: {e}",
                        ctx.name
                    ))
                })?;
                // Resume on the slot the targets' position was read from
                // (its owner is checked before it is read).
                src.slot.clone_from(&state.slot);
                (state, p.seq)
            }
            None => (
                PgState {
                    slot: src.slot.clone(),
                    lsn: 0,
                    snapshot: None,
                    catch_up_until: None,
                },
                0,
            ),
        };
        let by_wire = src
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.wire_name(), i))
            .collect();
        Ok(Runner {
            src,
            conn,
            state,
            seq,
            by_wire,
        })
    }

    pub(super) async fn emit(
        &mut self,
        changes: Vec<Change>,
        kind: BatchKind,
        seq: Option<u64>,
        commit: Option<chrono::DateTime<chrono::Utc>>,
        txid: Option<String>,
        ctx: &SourceContext,
    ) -> Result<()> {
        let batch = self.next_batch(changes, kind, seq, commit, txid)?;
        self.send(batch, ctx).await
    }

    /// The next batch: its position carries the current state.
    fn next_batch(
        &mut self,
        changes: Vec<Change>,
        kind: BatchKind,
        seq: Option<u64>,
        commit: Option<chrono::DateTime<chrono::Utc>>,
        txid: Option<String>,
    ) -> Result<Batch> {
        self.seq = match seq {
            Some(s) if s > self.seq => s,
            _ => self.seq + 1,
        };
        let state =
            serde_json::to_value(&self.state).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Batch {
            position: Position {
                seq: self.seq,
                state,
            },
            kind,
            txid,
            commit_time: commit,
            changes,
            block: None,
            dead_letters: Vec::new(),
            inserts_are_new: false,
        })
    }

    async fn send(&mut self, batch: Batch, ctx: &SourceContext) -> Result<()> {
        tokio::select! {
            sent = ctx.batches.send(batch) => sent.map_err(|_| Error::cancelled()),
            _ = ctx.cancel.cancelled() => Err(Error::cancelled()),
        }
    }

    async fn slot_exists(&mut self) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
        )
        .bind(&self.src.slot)
        .fetch_one(&mut self.conn)
        .await
        .map_err(PgError::query("reading replication slots"))?)
    }

    async fn current_lsn(&mut self) -> Result<u64> {
        let text: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&mut self.conn)
            .await
            .map_err(PgError::query("reading the WAL position"))?;
        parse_lsn(&text).ok_or_else(|| Error::internal(format!("unreadable LSN {text}")))
    }

    pub(super) async fn run(&mut self, ctx: SourceContext) -> Result<()> {
        if self.src.config.polls_only() {
            return self.poll(&ctx).await;
        }
        if let Some(t) = self
            .src
            .config
            .tables
            .iter()
            .find(|t| t.mode != SyncMode::Cdc)
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "source `{}`: table `{}` uses mode `{}` while others use `cdc`; a Postgres source either follows the change log for all its tables or polls all of them, so declare the polled tables in a second source on the same database",
                    ctx.name,
                    t.name,
                    t.mode.as_str()
                ),
            ));
        }
        let fresh = ctx.resume.is_none();
        // The copy workers connect while the publication and the slot are
        // set up.
        let copiers = (fresh || self.state.snapshot.is_some())
            .then(|| connect_copy_workers(&self.src.config));
        self.src.ensure_publication(&mut self.conn).await?;
        let mut stream = LogicalReplicationStream::new(
            &self.src.config.endpoint().replication_url()?,
            self.stream_config(),
        )
        .await
        .map_err(PgError::replication("connecting for replication"))?;
        if fresh {
            self.seq = self.seq.max(ctx.highest_held);
            // A slot of this name without a checkpoint in the targets is left
            // over from an abandoned run: start over.
            if self.slot_exists().await? {
                warn!(slot = %self.src.slot, "dropping a replication slot no target has a checkpoint for");
                self.src.release_slot_only(&mut self.conn).await?;
            }
            stream
                .ensure_replication_slot()
                .await
                .map_err(PgError::replication("creating the replication slot"))?;
            let snapshot_name = stream
                .exported_snapshot_name()
                .map(str::to_owned)
                .ok_or_else(|| {
                    PgError::Precondition("the replication slot exported no snapshot".into())
                })?;
            let consistent: String = sqlx::query_scalar(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            )
            .bind(&self.src.slot)
            .fetch_one(&mut self.conn)
            .await
            .map_err(PgError::query("reading the slot's consistent point"))?;
            self.state.lsn = parse_lsn(&consistent).unwrap_or(0);
            info!(slot = %self.src.slot, lsn = %consistent, "replication slot created");
            self.plan_snapshot().await?;
            self.snapshot(Some(snapshot_name), copiers, &ctx).await?;
        } else if self.state.snapshot.is_some() {
            if !self.slot_exists().await? {
                return Err(self.slot_gone());
            }
            self.ensure_no_gap().await?;
            info!("resuming the snapshot from its last finished chunk");
            // The chunks are read again under a new snapshot: number their
            // batches above what any sink holds, so none is skipped.
            self.seq = self.seq.max(ctx.highest_held);
            self.snapshot(None, copiers, &ctx).await?;
            self.state.catch_up_until = Some(self.current_lsn().await?);
        } else if !self.slot_exists().await? {
            return Err(self.slot_gone());
        } else {
            self.ensure_no_gap().await?;
        }
        if self.state.snapshot.is_some() {
            // Cancelled mid-snapshot.
            return Ok(());
        }
        // Record the finished snapshot (and catch-up target) in the position.
        if fresh || self.state.catch_up_until.is_some() {
            self.emit(Vec::new(), BatchKind::Snapshot, None, None, None, &ctx)
                .await?;
        }
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        let stop_at =
            stream_start(&mut stream, self.state.lsn, !ctx.follow, &mut self.conn).await?;
        self.stream(stop_at, stream, ctx).await
    }

    /// Incremental and full tables: no slot, just queries.
    async fn poll(&mut self, ctx: &SourceContext) -> Result<()> {
        let mut tables = Vec::new();
        for (info, cfg) in self.src.tables.iter().zip(&self.src.config.tables) {
            let order = match (&cfg.mode, &cfg.cursor) {
                (SyncMode::Incremental, Some(cursor)) => {
                    poll::order_columns(&mut self.conn, info, cursor).await?
                }
                (SyncMode::Incremental, None) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("table `{}`: incremental mode needs `cursor`", cfg.name),
                    ));
                }
                _ => Vec::new(),
            };
            tables.push(poll::PolledTable {
                info: info.clone(),
                mode: cfg.mode,
                order,
                key_scan: cfg.key_scan_secs.map(Duration::from_secs),
            });
        }
        let resume = match &ctx.resume {
            Some(p) => {
                let state = p
                    .state
                    .get("poll")
                    .cloned()
                    .map(serde_json::from_value::<poll::PollState>)
                    .transpose()
                    .map_err(|e| PgError::State(format!("the stored position is not a polling position: {e}")))?
                    .ok_or_else(|| {
                        PgError::State(
                            "the stored position comes from change data capture, and this source now polls: run `syncline drop` and run again".into(),
                        )
                    })?;
                Some((p.seq, state))
            }
            None => None,
        };
        let config = self.src.config.clone();
        poll::run(&config, &mut self.conn, &tables, ctx, resume).await
    }

    /// Fails when the slot has confirmed more than the targets hold: the
    /// changes in between were read by something else (a second pipeline
    /// on the slot, or a slot dropped and made again under the same name),
    /// and streaming from it would skip them.
    async fn ensure_no_gap(&mut self) -> Result<()> {
        let confirmed: Option<String> = sqlx::query_scalar(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&self.src.slot)
        .fetch_optional(&mut self.conn)
        .await
        .map_err(PgError::query("reading the slot's confirmed position"))?
        .flatten();
        match confirmed.as_deref().and_then(parse_lsn) {
            Some(c) if c > self.state.lsn => Err(PgError::State(format!(
                "replication slot {} has confirmed changes up to {}, past what the targets hold ({}): the changes in between were read by something else (another pipeline on the slot, or a slot dropped and created again) and are lost to this pipeline; run `syncline drop` on the pipeline and run it again to start from a new snapshot",
                self.src.slot,
                super::lsn_text(c),
                super::lsn_text(self.state.lsn)
            ))
            .into()),
            _ => Ok(()),
        }
    }

    fn slot_gone(&self) -> Error {
        PgError::State(format!(
            "replication slot {} no longer exists, so changes since the last run are lost to this pipeline; run `syncline drop` on the pipeline and run it again to start from a new snapshot",
            self.src.slot
        ))
        .into()
    }

    async fn plan_snapshot(&mut self) -> Result<()> {
        let mut tables = BTreeMap::new();
        for t in self.src.tables.clone() {
            let chunks = snapshot::plan(&mut self.conn, &t, self.src.config.chunk_rows).await?;
            tables.insert(
                t.schema.id.name.clone(),
                TableChunks {
                    chunks,
                    done: BTreeSet::new(),
                },
            );
        }
        self.state.snapshot = Some(SnapshotState { tables });
        Ok(())
    }

    /// Copies every chunk not yet done, in parallel (one worker per
    /// connection of `copiers`), emitting batches.
    async fn snapshot(
        &mut self,
        exported: Option<String>,
        copiers: Option<CopyConnections>,
        ctx: &SourceContext,
    ) -> Result<()> {
        let Some(plan) = self.state.snapshot.clone() else {
            return Ok(());
        };
        let copiers = match copiers {
            Some(copiers) => copiers,
            None => connect_copy_workers(&self.src.config),
        };
        let mut work = VecDeque::new();
        for (ti, t) in self.src.tables.iter().enumerate() {
            let id = &t.schema.id;
            let Some(tc) = plan.tables.get(&id.name) else {
                continue;
            };
            let remaining: Vec<usize> = (0..tc.chunks.len())
                .filter(|i| !tc.done.contains(i))
                .collect();
            if remaining.is_empty() {
                continue;
            }
            ctx.status.set_phase(id, Phase::Snapshot);
            let total = snapshot::estimate_rows(&mut self.conn, t).await;
            let share = total * remaining.len() as u64 / tc.chunks.len().max(1) as u64;
            ctx.status.set_snapshot_total(id, share);
            for ci in remaining {
                work.push_back((ti, ci, tc.chunks[ci]));
            }
        }
        let work = Arc::new(Mutex::new(work));
        // Column blocks are large: one waiting per worker is enough.
        let (tx, mut rx) =
            mpsc::channel::<std::result::Result<Part, PgError>>(if ctx.blocks { 1 } else { 2 });
        let mut workers = tokio::task::JoinSet::new();
        let connections = copiers
            .await
            .map_err(|_| Error::internal("connecting the snapshot workers stopped"))?;
        for conn in connections {
            let conn = conn?;
            let work = work.clone();
            let tx = tx.clone();
            let tables = self.src.tables.clone();
            let config = self.src.config.clone();
            let exported = exported.clone();
            let cancel = ctx.cancel.clone();
            let blocks = ctx.blocks;
            workers.spawn(async move {
                let shape = if blocks {
                    snapshot::Shape::Blocks(config.block_rows)
                } else {
                    snapshot::Shape::Rows(config.batch_rows)
                };
                let result = copy_worker(
                    conn,
                    &tables,
                    exported.as_deref(),
                    shape,
                    &work,
                    &tx,
                    &cancel,
                )
                .await;
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
        drop(tx);
        while let Some(part) = rx.recv().await {
            match part? {
                Part::Rows { table, rows } => {
                    self.send_copied(table, rows, None, exported.is_some(), ctx)
                        .await?;
                }
                Part::Block {
                    table,
                    block,
                    misfits,
                } => {
                    self.send_copied(table, misfits, Some(block), exported.is_some(), ctx)
                        .await?;
                }
                Part::ChunkDone { table, chunk } => {
                    let name = self.src.tables[table].schema.id.name.clone();
                    let mut finished = false;
                    if let Some(s) = self.state.snapshot.as_mut()
                        && let Some(tc) = s.tables.get_mut(&name)
                    {
                        tc.done.insert(chunk);
                        finished = tc.done.len() == tc.chunks.len();
                    }
                    let all_done =
                        self.state.snapshot.as_ref().is_some_and(|s| {
                            s.tables.values().all(|t| t.done.len() == t.chunks.len())
                        });
                    if all_done {
                        self.state.snapshot = None;
                    }
                    self.emit(Vec::new(), BatchKind::Snapshot, None, None, None, ctx)
                        .await?;
                    if finished {
                        // Copied; the stream brings it up to date.
                        ctx.status
                            .set_phase(&self.src.tables[table].schema.id, Phase::CatchUp);
                    }
                }
            }
        }
        while workers.join_next().await.is_some() {}
        Ok(())
    }

    /// Sends copied rows of table `table` (and their block) as one
    /// snapshot batch.
    async fn send_copied(
        &mut self,
        table: usize,
        rows: Vec<Row>,
        block: Option<InsertBlock>,
        under_exported_snapshot: bool,
        ctx: &SourceContext,
    ) -> Result<()> {
        let info = &self.src.tables[table];
        let schema = info.schema.clone();
        // Under the slot's exported snapshot every chunk is read once and
        // the ctid ranges do not overlap, so a unique key appears at most
        // once in the whole copy. A resumed copy (fresh snapshot) may
        // repeat rows: rows updated since the first snapshot moved to
        // other pages.
        let inserts_are_new = under_exported_snapshot && info.key_is_unique;
        let changes = rows
            .into_iter()
            .map(|row| Change {
                op: Op::Insert,
                table: schema.clone(),
                before: None,
                after: Some(row),
            })
            .collect();
        let mut batch = self.next_batch(changes, BatchKind::Snapshot, None, None, None)?;
        batch.block = block;
        batch.inserts_are_new = inserts_are_new;
        self.send(batch, ctx).await
    }
}

/// Connections for the snapshot's copy workers
/// ([`PostgresSourceConfig::copy_workers`] of them), opened in the
/// background.
type CopyConnections = tokio::task::JoinHandle<Vec<std::result::Result<PgConnection, PgError>>>;

/// Starts opening the copy workers' connections.
fn connect_copy_workers(config: &PostgresSourceConfig) -> CopyConnections {
    let config = config.clone();
    tokio::spawn(async move {
        let connect = (0..config.copy_workers()).map(|_| config.endpoint().connect());
        futures_util::future::join_all(connect).await
    })
}

/// One snapshot worker: takes chunks off the queue and copies them.
async fn copy_worker(
    mut conn: PgConnection,
    tables: &[TableInfo],
    exported: Option<&str>,
    shape: snapshot::Shape,
    work: &Mutex<VecDeque<(usize, usize, Chunk)>>,
    tx: &mpsc::Sender<std::result::Result<Part, PgError>>,
    cancel: &tokio_util::sync::CancellationToken,
) -> std::result::Result<(), PgError> {
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut conn)
        .await
        .map_err(PgError::query("starting the snapshot transaction"))?;
    if let Some(name) = exported {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET TRANSACTION SNAPSHOT {}",
            literal(name)
        )))
        .execute(&mut conn)
        .await
        .map_err(PgError::query("importing the slot's snapshot"))?;
    }
    loop {
        if cancel.is_cancelled() {
            break;
        }
        let next = work
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let Some((ti, ci, chunk)) = next else { break };
        let table = &tables[ti];
        snapshot::read_chunk(&mut conn, table, ti, chunk, shape, tx).await?;
        if tx
            .send(Ok(Part::ChunkDone {
                table: ti,
                chunk: ci,
            }))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = sqlx::raw_sql("COMMIT").execute(&mut conn).await;
    let _ = conn.close().await;
    Ok(())
}
