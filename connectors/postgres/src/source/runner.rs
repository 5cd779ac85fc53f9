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
use syncline_engine::connector::{SourceContext, Start};
use syncline_engine::model::{Change, Row};
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
    /// The LSN every sink holds (acknowledged): what the server may forget.
    /// The slot's feedback and the start of streaming never go past it,
    /// even where `state.lsn` is ahead (a resumed snapshot's point, whose
    /// copy the sinks have not committed yet).
    pub(super) acked: u64,
    pub(super) seq: u64,
    /// Table index by `schema.table`, as pgoutput names it.
    pub(super) by_wire: HashMap<String, usize>,
    /// Set by the stream when the replay before a resumed snapshot's copy
    /// reached the copy's point.
    pub(super) replayed: bool,
    /// A transaction whose first parts went out before the replication
    /// connection was lost: its commit LSN and how many of its changes the
    /// parts held, skipped when the server sends it again.
    pub(super) resend: Option<(u64, usize)>,
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
        let fresh_state = |generation| PgState {
            slot: src.slot.clone(),
            lsn: 0,
            snapshot: None,
            catch_up_until: None,
            generation,
        };
        let (state, seq) = match (&ctx.resume, ctx.start()) {
            // Polled sources keep their own position (see `poll`).
            (Some(_), _) if src.config.polls_only() => (fresh_state(0), 0),
            // Positions of different generations: start afresh.
            (_, Start::Restate { generation }) => (fresh_state(generation), 0),
            (Some(p), _) => {
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
            (None, _) => (fresh_state(0), 0),
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
            acked: state.lsn,
            state,
            seq,
            by_wire,
            replayed: false,
            resend: None,
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

    /// Emits a part of a transaction too large to hold whole: its seq
    /// (`seq`) is the same for every part but the last, which
    /// [`Runner::emit`] sends with the transaction's end.
    pub(super) async fn emit_part(
        &mut self,
        changes: Vec<Change>,
        kind: BatchKind,
        seq: u64,
        commit: Option<chrono::DateTime<chrono::Utc>>,
        txid: Option<String>,
        ctx: &SourceContext,
    ) -> Result<()> {
        let mut batch = self.next_batch(changes, kind, Some(seq), commit, txid)?;
        batch.position.seq = seq;
        batch.continues = true;
        self.seq = seq;
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
            continues: false,
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

    pub(super) async fn run(&mut self, mut ctx: SourceContext) -> Result<()> {
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
        let start = ctx.start();
        let fresh = !matches!(start, Start::Resume { .. });
        let mut resumed = false;
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
            let slot = self.src.slot.clone();
            let (snapshot_name, consistent) = self.export_snapshot(&mut stream, &slot).await?;
            self.state.lsn = consistent;
            self.acked = consistent;
            info!(slot = %self.src.slot, lsn = %super::lsn_text(consistent), "replication slot created");
            self.plan_snapshot().await?;
            if matches!(start, Start::Restate { .. }) {
                // Some sinks hold rows of an earlier run (see
                // `Start::Restate`): every table is copied again, so rows
                // deleted meanwhile must go from the sinks that hold them.
                // The position is the snapshot's start.
                let truncates = self
                    .src
                    .tables
                    .iter()
                    .map(|t| Change::truncate(t.schema.clone()))
                    .collect();
                self.emit(truncates, BatchKind::Snapshot, None, None, None, &ctx)
                    .await?;
            }
            self.snapshot(Some(snapshot_name), copiers, &ctx).await?;
        } else if self.state.snapshot.is_some() {
            if !self.slot_exists().await? {
                return Err(self.slot_gone());
            }
            self.ensure_no_gap().await?;
            // Numbered above the position of every sink still in the
            // snapshot, so none of those skips what follows. A sink that
            // finished the snapshot holds a higher position (streamed
            // batches are numbered by commit LSN): it skips the replay up to
            // where it is and the copy (at or below its position too, or an
            // upsert of what it holds), never replaying history onto a
            // later state.
            let in_snapshot = ctx
                .held
                .iter()
                .filter(|p| {
                    serde_json::from_value::<PgState>(p.state.clone())
                        .is_ok_and(|s| s.snapshot.is_some())
                })
                .map(|p| p.seq)
                .max()
                .unwrap_or(0);
            self.seq = self.seq.max(in_snapshot);
            drop(stream);
            stream = self.resume_snapshot(copiers, &mut ctx).await?;
            resumed = true;
        } else if !self.slot_exists().await? {
            return Err(self.slot_gone());
        } else {
            self.ensure_no_gap().await?;
        }
        if self.state.snapshot.is_some() {
            // Cancelled mid-snapshot.
            return Ok(());
        }
        // Record the finished snapshot in the position.
        if fresh || resumed {
            self.emit(Vec::new(), BatchKind::Snapshot, None, None, None, &ctx)
                .await?;
        }
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        // Past any replay (a position stored while replaying before a
        // copy names the copy's point; streaming goes on beyond it).
        self.state.catch_up_until = None;
        // From what every sink holds: after a resumed snapshot `state.lsn`
        // is the copy's point, which the sinks may not have committed yet
        // (the transactions up to it come again and are skipped).
        let stop_at = stream_start(&mut stream, self.acked, !ctx.follow, &mut self.conn).await?;
        self.stream(stop_at, stream, &mut ctx).await
    }

    /// Finishes a snapshot a crash interrupted. The targets hold the chunks
    /// copied before, each exactly as of the position they hold (the
    /// snapshot's point, or an earlier resume's), and nothing of the rest.
    /// A temporary slot exports a new snapshot at point `P`; the copy
    /// workers take it up at once. The change log is replayed from the
    /// stored position up to `P` ([`BatchKind::CatchUp`], less the updates
    /// of unfinished tables the copy supersedes: see `superseded_by_copy`),
    /// then every unfinished table is copied
    /// whole at `P` (a row may have moved into a chunk that was done, so
    /// the chunks left are not enough), and the stream goes on after `P`.
    /// Every target then equals the source at `P`; no change is applied to
    /// a row in a later state than the change's.
    async fn resume_snapshot(
        &mut self,
        copiers: Option<CopyConnections>,
        ctx: &mut SourceContext,
    ) -> Result<LogicalReplicationStream> {
        info!(
            "resuming the snapshot: replaying the change log up to a new snapshot, then copying the unfinished tables at it"
        );
        let url = self.src.config.endpoint().replication_url()?;
        let marker_slot = self.resume_marker_slot();
        let mut marker =
            LogicalReplicationStream::new(&url, self.slot_config(marker_slot.clone(), true))
                .await
                .map_err(PgError::replication("connecting for a new snapshot"))?;
        let (snapshot_name, point) = self.export_snapshot(&mut marker, &marker_slot).await?;
        let copiers = match copiers {
            Some(copiers) => copiers,
            None => connect_copy_workers(&self.src.config),
        };
        let mut workers = Vec::new();
        for conn in copiers
            .await
            .map_err(|_| Error::internal("connecting the snapshot workers stopped"))?
        {
            workers.push(begin_snapshot(conn?, Some(&snapshot_name)).await?);
        }
        // Imported: the temporary slot may go.
        drop(marker);
        // A commit after the point, so the replay sees the point passed even
        // when nothing else is written.
        sqlx::query("SELECT pg_logical_emit_message(true, 'syncline_heartbeat', 'resume')")
            .execute(&mut self.conn)
            .await
            .map_err(PgError::query(
                "marking the new snapshot's point in the WAL",
            ))?;

        // Replay up to the point.
        self.state.catch_up_until = Some(point);
        self.replayed = false;
        let mut stream = LogicalReplicationStream::new(&url, self.stream_config())
            .await
            .map_err(PgError::replication("connecting for replication"))?;
        stream_start(&mut stream, self.state.lsn, false, &mut self.conn).await?;
        self.stream(None, stream, ctx).await?;
        if !self.replayed {
            // Stopped first.
            return Err(Error::cancelled());
        }
        self.replayed = false;
        self.state.catch_up_until = None;
        self.state.lsn = self.state.lsn.max(point);

        // Copy the unfinished tables whole at the point.
        if let Some(plan) = self.state.snapshot.as_mut() {
            for tc in plan.tables.values_mut() {
                if tc.done.len() < tc.chunks.len() {
                    tc.done.clear();
                }
            }
        }
        self.snapshot_with(None, Workers::InSnapshot(workers), ctx)
            .await?;
        Ok(LogicalReplicationStream::new(&url, self.stream_config())
            .await
            .map_err(PgError::replication("connecting for replication"))?)
    }

    /// Creates `slot` through `stream` with an exported snapshot: the
    /// snapshot's name and the slot's consistent point (the LSN the
    /// snapshot sees everything before).
    async fn export_snapshot(
        &mut self,
        stream: &mut LogicalReplicationStream,
        slot: &str,
    ) -> Result<(String, u64)> {
        stream
            .ensure_replication_slot()
            .await
            .map_err(PgError::replication("creating a replication slot"))?;
        let name = stream
            .exported_snapshot_name()
            .map(str::to_owned)
            .ok_or_else(|| {
                PgError::Precondition(format!("replication slot {slot} exported no snapshot"))
            })?;
        let point: String = sqlx::query_scalar(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(slot)
        .fetch_one(&mut self.conn)
        .await
        .map_err(PgError::query("reading the slot's consistent point"))?;
        let point =
            parse_lsn(&point).ok_or_else(|| Error::internal(format!("unreadable LSN {point}")))?;
        Ok((name, point))
    }

    /// The temporary slot that exports a resumed snapshot's new snapshot.
    fn resume_marker_slot(&self) -> String {
        let base: String = self.src.slot.chars().take(56).collect();
        format!("{base}_resume")
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
        let resume = match (&ctx.resume, ctx.start()) {
            (Some(p), Start::Resume { .. }) => {
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
            _ => None,
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
        let copiers = match copiers {
            Some(copiers) => copiers,
            None => connect_copy_workers(&self.src.config),
        };
        self.snapshot_with(exported, Workers::Connecting(copiers), ctx)
            .await
    }

    /// The copy of the chunks not done, by workers that take up the
    /// snapshot `exported` (or, `InSnapshot`, already hold theirs).
    async fn snapshot_with(
        &mut self,
        exported: Option<String>,
        start: Workers,
        ctx: &SourceContext,
    ) -> Result<()> {
        let Some(plan) = self.state.snapshot.clone() else {
            return Ok(());
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
        let connections: Vec<PgConnection> = match start {
            Workers::Connecting(copiers) => {
                let mut begun = Vec::new();
                for conn in copiers
                    .await
                    .map_err(|_| Error::internal("connecting the snapshot workers stopped"))?
                {
                    begun.push(begin_snapshot(conn?, exported.as_deref()).await?);
                }
                begun
            }
            Workers::InSnapshot(conns) => conns,
        };
        for conn in connections {
            let work = work.clone();
            let tx = tx.clone();
            let tables = self.src.tables.clone();
            let config = self.src.config.clone();
            let cancel = ctx.cancel.clone();
            let blocks = ctx.blocks;
            workers.spawn(async move {
                let shape = if blocks {
                    snapshot::Shape::Blocks(config.block_rows)
                } else {
                    snapshot::Shape::Rows(config.batch_rows)
                };
                let result = copy_worker(conn, &tables, shape, &work, &tx, &cancel).await;
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
            .map(|row| Change::insert(schema.clone(), row))
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

/// How the copy workers get their connections.
enum Workers {
    /// Being opened; each then takes up the exported snapshot.
    Connecting(CopyConnections),
    /// Open, each inside a transaction that holds the snapshot.
    InSnapshot(Vec<PgConnection>),
}

/// Opens the read-only snapshot transaction of a copy worker on `conn`,
/// taking up the snapshot `exported` (a slot's) where there is one.
async fn begin_snapshot(
    mut conn: PgConnection,
    exported: Option<&str>,
) -> std::result::Result<PgConnection, PgError> {
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
    Ok(conn)
}

/// One snapshot worker: takes chunks off the queue and copies them.
async fn copy_worker(
    mut conn: PgConnection,
    tables: &[TableInfo],
    shape: snapshot::Shape,
    work: &Mutex<VecDeque<(usize, usize, Chunk)>>,
    tx: &mpsc::Sender<std::result::Result<Part, PgError>>,
    cancel: &tokio_util::sync::CancellationToken,
) -> std::result::Result<(), PgError> {
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
