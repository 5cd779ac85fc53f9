//! PostgreSQL source: logical replication with the `pgoutput` plugin.
//!
//! * **Consistent start.** On the first run the source creates a publication
//!   for its tables and a logical slot that exports a snapshot. Every table is
//!   copied in ctid-range chunks with binary `COPY`, by several connections
//!   that all import that snapshot; streaming then starts at the slot's
//!   consistent point: no gap, no overlap.
//! * **Resumable snapshot.** Each chunk's completion is part of the position.
//!   After a crash the remaining chunks are copied under a fresh snapshot and
//!   the stream replays from the slot's consistent point (catch-up); keyed
//!   upserts make the overlap harmless.
//! * **Streaming.** One source transaction is one batch, in commit order.
//!   Transactions at or before the stored position are skipped, so a restart
//!   never applies one twice. The slot's confirmed flush position moves only
//!   to positions every sink has committed.
//! * **TOAST.** Values pgoutput leaves out of an update because they did not
//!   change arrive as [`Value::Unchanged`]; sinks keep what they hold.
//! * **Slot safety.** A heartbeat (`pg_logical_emit_message`) lets an idle
//!   slot advance; the WAL the slot retains is reported in the status.
//!
//! Values travel in Postgres's binary format in both phases; see [`types`].

pub mod config;
mod error;
pub mod introspect;
mod peek;
pub mod poll;
pub mod sink;
pub mod snapshot;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use pg_walstream::{
    ChangeEvent, ColumnValue, EventType, LogicalReplicationStream, ReplicationSlotOptions,
    ReplicationStreamConfig, RowData, StreamingMode,
};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row as _};
use syncline_engine::columnar::InsertBlock;
use syncline_engine::config::SyncMode;
use syncline_engine::connector::{Check, Source, SourceContext};
use syncline_engine::model::{
    Batch, BatchKind, Change, Column, Op, Position, Row, TableSchema, Value,
};
use syncline_engine::status::Phase;
use syncline_engine::{Error, ErrorKind, Result};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub use config::{PgTableConfig, PostgresSourceConfig, SslMode};
pub use error::PgError;
use introspect::{TableInfo, literal, quote};
pub use sink::{PgSinkError, PostgresSink, PostgresTargetConfig};
use snapshot::{Chunk, Part};

/// The source's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgState {
    /// Replication slot (and publication) name.
    pub slot: String,
    /// Stream from after this LSN: the end of the last applied transaction,
    /// or the slot's consistent point.
    pub lsn: u64,
    /// Snapshot progress, until the snapshot is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotState>,
    /// After a resumed snapshot: the LSN the stream must pass before the
    /// target is consistent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_until: Option<u64>,
}

/// Chunks per table and which are done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotState {
    /// Per table (pipeline name): its chunks and the indexes done.
    pub tables: BTreeMap<String, TableChunks>,
}

/// One table's snapshot chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChunks {
    /// Page ranges.
    pub chunks: Vec<Chunk>,
    /// Indexes of finished chunks.
    pub done: BTreeSet<usize>,
}

/// The Postgres source.
#[derive(Debug)]
pub struct PostgresSource {
    name: String,
    slot: String,
    config: PostgresSourceConfig,
    tables: Vec<TableInfo>,
    /// The connection `discover` used, kept for `run` (saves a connection
    /// set-up, a TLS handshake included, at every start).
    conn: Option<PgConnection>,
}

/// Slot and publication name for a pipeline's source: lowercase, at most 63
/// characters, unique per (pipeline, source).
pub fn slot_name(pipeline: &str, source: &str) -> String {
    let raw = format!("syncline_{pipeline}_{source}").to_ascii_lowercase();
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.len() <= 63 {
        return clean;
    }
    let hash = clean.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    format!("{}_{:012x}", &clean[..50], hash & 0xffff_ffff_ffff)
}

fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl PostgresSource {
    /// A source named `name` of pipeline `pipeline`.
    pub fn new(name: &str, pipeline: &str, config: &PostgresSourceConfig) -> Self {
        PostgresSource {
            name: name.to_owned(),
            slot: slot_name(pipeline, name),
            config: config.clone(),
            tables: Vec::new(),
            conn: None,
        }
    }

    /// The slot (and publication) this source uses.
    pub fn slot(&self) -> &str {
        &self.slot
    }

    fn replication_url(&self) -> Result<String> {
        let c = &self.config;
        let password = match &c.password {
            Some(s) => format!(
                ":{}",
                percent_encode(&s.resolve().map_err(PgError::Precondition)?)
            ),
            None => String::new(),
        };
        Ok(format!(
            "postgresql://{}{password}@{}:{}/{}?replication=database&sslmode={}&application_name=syncline",
            percent_encode(&c.user),
            c.host,
            c.port,
            percent_encode(&c.database),
            c.sslmode.as_str()
        ))
    }

    async fn describe_all(&mut self, conn: &mut PgConnection) -> Result<()> {
        let mut tables = Vec::new();
        for t in &self.config.tables {
            let (info, unsupported) = introspect::describe(conn, &self.name, t).await?;
            if let Some(u) = unsupported.first() {
                return Err(PgError::Table {
                    table: info.wire_name(),
                    detail: format!(
                        "column `{}` has type {}, which Syncline cannot read yet{}",
                        u.column,
                        u.type_name,
                        if unsupported.len() > 1 {
                            format!(" (and {} more)", unsupported.len() - 1)
                        } else {
                            String::new()
                        }
                    ),
                }
                .into());
            }
            tables.push(info);
        }
        self.tables = tables;
        Ok(())
    }

    /// Drops the slot and publication this source created. Returns what was
    /// removed, in words.
    pub async fn release(&self) -> Result<Vec<String>> {
        let mut conn = introspect::connect(&self.config).await?;
        let mut removed = Vec::new();
        let active: Option<Option<i32>> =
            sqlx::query_scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1")
                .bind(&self.slot)
                .fetch_optional(&mut conn)
                .await
                .map_err(PgError::query("reading replication slots"))?;
        match active {
            Some(Some(pid)) => {
                return Err(PgError::Precondition(format!(
                    "replication slot {} is in use by process {pid}: stop the pipeline first",
                    self.slot
                ))
                .into());
            }
            Some(None) => {
                sqlx::query("SELECT pg_drop_replication_slot($1)")
                    .bind(&self.slot)
                    .execute(&mut conn)
                    .await
                    .map_err(PgError::query("dropping the replication slot"))?;
                removed.push(format!("replication slot {}", self.slot));
            }
            None => {}
        }
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
                .bind(&self.slot)
                .fetch_one(&mut conn)
                .await
                .map_err(PgError::query("reading publications"))?;
        if exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP PUBLICATION {}",
                quote(&self.slot)
            )))
            .execute(&mut conn)
            .await
            .map_err(PgError::query("dropping the publication"))?;
            removed.push(format!("publication {}", self.slot));
        }
        Ok(removed)
    }

    async fn ensure_publication(&self, conn: &mut PgConnection) -> Result<()> {
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
        )
        .bind(&self.slot)
        .fetch_all(&mut *conn)
        .await
        .map_err(PgError::query("reading the publication"))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
                .bind(&self.slot)
                .fetch_one(&mut *conn)
                .await
                .map_err(PgError::query("reading publications"))?;
        let wanted: BTreeSet<String> = self.tables.iter().map(TableInfo::wire_name).collect();
        let have: BTreeSet<String> = existing.into_iter().collect();
        let list: Vec<String> = self.tables.iter().map(TableInfo::quoted).collect();
        if !exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert, update, delete, truncate')",
                quote(&self.slot),
                list.join(", ")
            )))
            .execute(&mut *conn)
            .await
            .map_err(PgError::query("creating the publication"))?;
        } else if have != wanted {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER PUBLICATION {} SET TABLE {}",
                quote(&self.slot),
                list.join(", ")
            )))
            .execute(&mut *conn)
            .await
            .map_err(PgError::query("updating the publication"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&mut self) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut conn = match introspect::connect(&self.config).await {
            Ok(c) => {
                checks.push(Check::pass(
                    "connection",
                    format!(
                        "connected to {}:{}/{}",
                        self.config.host, self.config.port, self.config.database
                    ),
                ));
                c
            }
            Err(e) => {
                checks.push(Check::fail(
                    "connection",
                    Error::from(e).chain(),
                    "check host, port, database, user and password, and that the server accepts connections from here (pg_hba.conf)",
                ));
                return checks;
            }
        };
        let setting = async |conn: &mut PgConnection, name: &str| -> Option<String> {
            sqlx::query_scalar::<_, String>("SELECT current_setting($1)")
                .bind(name)
                .fetch_one(conn)
                .await
                .ok()
        };
        if !self.config.polls_only() {
            match setting(&mut conn, "wal_level").await.as_deref() {
            Some("logical") => checks.push(Check::pass("wal_level", "logical")),
            other => checks.push(Check::fail(
                "wal_level",
                format!("wal_level is `{}`, and change data capture needs `logical`", other.unwrap_or("unknown")),
                "run `ALTER SYSTEM SET wal_level = logical;` as a superuser, then restart PostgreSQL",
            )),
        }
            let role = sqlx::query(
                "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            )
            .fetch_one(&mut conn)
            .await
            .map(|r| r.get::<bool, _>(0));
            match role {
                Ok(true) => checks.push(Check::pass(
                    "replication privilege",
                    format!("{} may replicate", self.config.user),
                )),
                _ => checks.push(Check::fail(
                    "replication privilege",
                    format!("user {} lacks the REPLICATION attribute", self.config.user),
                    format!(
                        "run `ALTER ROLE {} REPLICATION;` as a superuser",
                        quote(&self.config.user)
                    ),
                )),
            }
            let slots = sqlx::query(
                "SELECT current_setting('max_replication_slots')::int,
                    (SELECT count(*)::int FROM pg_replication_slots),
                    current_setting('max_wal_senders')::int,
                    (SELECT count(*)::int FROM pg_stat_replication)",
            )
            .fetch_one(&mut conn)
            .await;
            if let Ok(r) = slots {
                let (max_slots, used_slots, max_senders, used_senders): (i32, i32, i32, i32) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                let has_own: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                )
                .bind(&self.slot)
                .fetch_one(&mut conn)
                .await
                .unwrap_or(false);
                if used_slots >= max_slots && !has_own {
                    checks.push(Check::fail(
                    "replication slots",
                    format!("all {max_slots} replication slots are in use"),
                    "raise max_replication_slots (restart needed) or drop unused slots (pg_drop_replication_slot)",
                ));
                } else {
                    checks.push(Check::pass(
                        "replication slots",
                        format!("{used_slots} of {max_slots} in use"),
                    ));
                }
                if used_senders >= max_senders {
                    checks.push(Check::fail(
                        "WAL senders",
                        format!("all {max_senders} WAL senders are busy"),
                        "raise max_wal_senders (restart needed)",
                    ));
                } else {
                    checks.push(Check::pass(
                        "WAL senders",
                        format!("{used_senders} of {max_senders} busy"),
                    ));
                }
            }
            match setting(&mut conn, "max_slot_wal_keep_size").await.as_deref() {
            Some("-1") => checks.push(Check::warn(
                "max_slot_wal_keep_size",
                "unlimited: a stopped pipeline's slot keeps WAL until the disk fills",
                "set a limit, e.g. `ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf();`",
            )),
            Some(v) => checks.push(Check::pass("max_slot_wal_keep_size", v.to_owned())),
            None => {}
        }
        }
        for t in &self.config.tables {
            let name = format!("table {}", t.name);
            match introspect::describe(&mut conn, &self.name, t).await {
                Ok((info, unsupported)) if unsupported.is_empty() => {
                    let key = if info.schema.key.is_empty() {
                        "none (REPLICA IDENTITY FULL)".to_owned()
                    } else {
                        info.schema.key_names().join(", ")
                    };
                    checks.push(Check::pass(
                        name,
                        format!("{} columns; key: {key}", info.schema.columns.len()),
                    ));
                }
                Ok((_, unsupported)) => checks.push(Check::fail(
                    name,
                    format!(
                        "unsupported column types: {}",
                        unsupported
                            .iter()
                            .map(|u| format!("{} ({})", u.column, u.type_name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "leave those tables out for now, or change the column types",
                )),
                Err(e) => checks.push(Check::fail(
                    name,
                    e.to_string(),
                    "fix the table as the message says",
                )),
            }
        }
        let _ = conn.close().await;
        checks
    }

    async fn discover(&mut self) -> Result<Vec<Arc<TableSchema>>> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => introspect::connect(&self.config).await?,
        };
        self.describe_all(&mut conn).await?;
        self.conn = Some(conn);
        Ok(self.tables.iter().map(|t| t.schema.clone()).collect())
    }

    async fn sample(
        &mut self,
        table: &str,
        limit: Option<usize>,
        seed: u64,
    ) -> Result<(Arc<TableSchema>, Vec<Row>)> {
        let mut conn = introspect::connect(&self.config).await?;
        self.describe_all(&mut conn).await?;
        let info = self
            .tables
            .iter()
            .find(|t| t.schema.id.name == table)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("source `{}` has no table `{table}`", self.name),
                )
            })?;
        let rows = snapshot::sample_rows(&mut conn, info, limit, seed).await?;
        let schema = info.schema.clone();
        let _ = conn.close().await;
        Ok((schema, rows))
    }

    async fn recent_changes(&mut self, table: &str, limit: usize) -> Result<Vec<Change>> {
        if self.config.polls_only() {
            return Ok(Vec::new());
        }
        let mut conn = introspect::connect(&self.config).await?;
        self.describe_all(&mut conn).await?;
        let Some(info) = self.tables.iter().find(|t| t.schema.id.name == table) else {
            return Err(Error::new(
                ErrorKind::Config,
                format!("source `{}` has no table `{table}`", self.name),
            ));
        };
        let found = peek::recent_changes(&mut conn, &self.slot, info, limit).await?;
        let _ = conn.close().await;
        Ok(match found {
            Ok(changes) => changes,
            Err(why) => {
                info!(slot = %self.slot, ?why, "no recent changes to show");
                Vec::new()
            }
        })
    }

    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<()> {
        if let Some(t) = self
            .config
            .tables
            .iter()
            .find(|t| t.key_scan_secs.is_some() && t.mode != SyncMode::Incremental)
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "table `{}`: key_scan_secs applies to incremental tables only (cdc sees deletes in the change log; full copies the whole table again)",
                    t.name
                ),
            ));
        }
        let mut runner = Runner::start(*self, &ctx).await?;
        runner.run(ctx).await
    }

    async fn release(&mut self) -> Result<Vec<String>> {
        PostgresSource::release(self).await
    }
}

/// A running source.
struct Runner {
    src: PostgresSource,
    conn: PgConnection,
    state: PgState,
    seq: u64,
    by_wire: HashMap<String, usize>,
}

impl Runner {
    async fn start(mut src: PostgresSource, ctx: &SourceContext) -> Result<Self> {
        // The connection discovery used, if it still answers.
        let kept = match src.conn.take() {
            Some(mut conn) => conn.ping().await.is_ok().then_some(conn),
            None => None,
        };
        let conn = match kept {
            Some(conn) => conn,
            None => introspect::connect(&src.config).await?,
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
                if state.slot != src.slot {
                    return Err(PgError::State(format!(
                        "the stored position belongs to slot {}, this source uses {}",
                        state.slot, src.slot
                    ))
                    .into());
                }
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

    fn stream_config(&self) -> ReplicationStreamConfig {
        ReplicationStreamConfig::builder(self.src.slot.clone(), self.src.slot.clone())
            .with_protocol_version(1)
            .with_streaming_mode(StreamingMode::Off)
            .with_binary(true)
            .with_messages(true)
            .with_feedback_interval(Duration::from_secs(1))
            .with_slot_options(ReplicationSlotOptions {
                snapshot: Some("export".into()),
                ..ReplicationSlotOptions::default()
            })
    }

    async fn emit(
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

    async fn run(&mut self, ctx: SourceContext) -> Result<()> {
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
        let mut stream =
            LogicalReplicationStream::new(&self.src.replication_url()?, self.stream_config())
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
            info!("resuming the snapshot from its last finished chunk");
            // The chunks are read again under a new snapshot: number their
            // batches above what any sink holds, so none is skipped.
            self.seq = self.seq.max(ctx.highest_held);
            self.snapshot(None, copiers, &ctx).await?;
            self.state.catch_up_until = Some(self.current_lsn().await?);
        } else if !self.slot_exists().await? {
            return Err(self.slot_gone());
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

    /// Follows the slot, one batch per transaction.
    async fn stream(
        &mut self,
        stop_at: Option<u64>,
        stream: LogicalReplicationStream,
        ctx: SourceContext,
    ) -> Result<()> {
        let mut ctx = ctx;
        let reader_cancel = ctx.cancel.child_token();
        // The LSN every sink holds: what the server may forget.
        let mut acked_lsn = self.state.lsn;
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
        heartbeat.tick().await;
        let mut retained = tokio::time::interval(Duration::from_secs(5));
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
                        feedback.update_flushed_lsn(acked_lsn);
                        feedback.update_applied_lsn(acked_lsn);
                    }
                }
                _ = heartbeat.tick(), if heartbeat_secs > 0 => {
                    if let Err(e) = sqlx::query("SELECT pg_logical_emit_message(true, 'syncline_heartbeat', '')")
                        .execute(&mut self.conn).await {
                        warn!(error = %e, "heartbeat failed; reconnecting its connection");
                        if let Ok(conn) = introspect::connect(&self.src.config).await {
                            self.conn = conn;
                        }
                    }
                }
                _ = retained.tick() => {
                    let bytes: std::result::Result<Option<i64>, _> = sqlx::query_scalar(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1")
                        .bind(&self.src.slot).fetch_optional(&mut self.conn).await.map(Option::flatten);
                    if let Ok(Some(b)) = bytes {
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
                            tx_buf = None;
                            let _ = (&mut reader).await;
                            match self.reconnect(acked_lsn, &mut backoff, &ctx).await {
                                Ok(stream) => {
                                    (reader, rx, feedback) = spawn_reader(stream, acked_lsn, reader_cancel.clone());
                                    info!(lsn = %lsn_text(acked_lsn), "replication resumed");
                                    continue;
                                }
                                Err(e) => break Err(e),
                            }
                        }
                    };
                    if let Err(e) = self.on_event(event, &mut tx_buf, &mut ctx).await {
                        break Err(e);
                    }
                    if let Some(stop) = stop_at && self.state.lsn >= stop && tx_buf.is_none() {
                        break Ok(());
                    }
                }
            }
        };
        reader_cancel.cancel();
        let _ = reader.await;
        if result.is_ok() && !ctx.follow {
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
                self.conn = introspect::connect(&self.src.config).await?;
                let mut stream = LogicalReplicationStream::new(
                    &self.src.replication_url()?,
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
            EventType::Begin { transaction_id, .. } => {
                *tx_buf = Some(TxBuf {
                    xid: transaction_id,
                    changes: Vec::new(),
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
                self.state.lsn = end;
                if let Some(until) = self.state.catch_up_until
                    && end >= until
                {
                    self.state.catch_up_until = None;
                    for t in &self.src.tables {
                        ctx.status.set_phase(&t.schema.id, Phase::Streaming);
                    }
                }
                self.emit(
                    buf.changes,
                    BatchKind::Stream,
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
                let (ti, change) = self.change(&schema, &table, Op::Insert, None, Some(&data))?;
                push(tx_buf, ti, change);
            }
            EventType::Update {
                schema,
                table,
                old_data,
                new_data,
                ..
            } => {
                let (ti, change) = self.change(
                    &schema,
                    &table,
                    Op::Update,
                    old_data.as_ref(),
                    Some(&new_data),
                )?;
                push(tx_buf, ti, change);
            }
            EventType::Delete {
                schema,
                table,
                old_data,
                ..
            } => {
                let (ti, change) =
                    self.change(&schema, &table, Op::Delete, Some(&old_data), None)?;
                push(tx_buf, ti, change);
            }
            EventType::Truncate { tables, .. } => {
                for name in tables.iter() {
                    if let Some(&ti) = self.by_wire.get(name.as_ref()) {
                        let change = Change {
                            op: Op::Truncate,
                            table: self.src.tables[ti].schema.clone(),
                            before: None,
                            after: None,
                        };
                        push(tx_buf, ti, change);
                    }
                }
            }
            _ => {}
        }
        Ok(())
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
                        Error::from(PgError::Decode {
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
        let after = after.map(|d| decode(d, Value::Unchanged)).transpose()?;
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

struct TxBuf {
    xid: u32,
    changes: Vec<Change>,
}

fn push(buf: &mut Option<TxBuf>, _table: usize, change: Change) {
    if let Some(b) = buf.as_mut() {
        b.changes.push(change);
    }
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
async fn stream_start(
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
    stream
        .start(Some(lsn))
        .await
        .map_err(PgError::replication("starting replication"))?;
    Ok(stop.filter(|s| *s > lsn))
}

/// Connections for the snapshot's copy workers
/// ([`PostgresSourceConfig::copy_workers`] of them), opened in the
/// background.
type CopyConnections = tokio::task::JoinHandle<Vec<std::result::Result<PgConnection, PgError>>>;

/// Starts opening the copy workers' connections.
fn connect_copy_workers(config: &PostgresSourceConfig) -> CopyConnections {
    let config = config.clone();
    tokio::spawn(async move {
        let connect = (0..config.copy_workers()).map(|_| introspect::connect(&config));
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

impl PostgresSource {
    async fn release_slot_only(&self, conn: &mut PgConnection) -> Result<()> {
        sqlx::query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active")
            .bind(&self.slot)
            .execute(conn)
            .await
            .map_err(PgError::query("dropping the stale replication slot"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_are_valid_and_distinct() {
        assert_eq!(slot_name("Shop-Sync", "pg"), "syncline_shop_sync_pg");
        let long = slot_name(&"x".repeat(80), "a");
        assert!(long.len() <= 63, "{long}");
        assert_ne!(long, slot_name(&"x".repeat(80), "b"));
    }

    #[test]
    fn lsn_text_round_trips() {
        let lsn = parse_lsn("16/B374D848").expect("lsn");
        assert_eq!(lsn_text(lsn), "16/B374D848");
    }
}
