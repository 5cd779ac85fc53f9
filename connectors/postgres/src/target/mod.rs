//! PostgreSQL target: bulk staged merges with the checkpoint in the same
//! transaction.
//!
//! * **One transaction per batch**, or per group of consecutive batches of
//!   one source when they queue up behind the target (one lock, one
//!   checkpoint, one commit). A batch's rows are bulk-loaded with
//!   `COPY ... FROM STDIN` (text format) into a per-table `TEMP` staging
//!   table, merged into the target table with set-based SQL, and committed
//!   together with the batch's dead letters and the pipeline's checkpoint row
//!   (`_syncline_checkpoints`). After a crash a batch is either wholly present
//!   with its checkpoint or wholly absent: exactly-once effect.
//! * **Redelivery.** A batch whose `seq` is at or below the stored checkpoint
//!   is skipped. The stored checkpoint is read again inside the batch's
//!   transaction (once per transaction), under an advisory lock per
//!   (schema, pipeline, source), so a retried batch whose first commit did
//!   reach the server is not applied twice, and two processes running the
//!   same pipeline cannot interleave.
//! * **Modes.** `upsert` deletes the staged keys and inserts the last change
//!   per key (`DISTINCT ON (key)`, latest change first) unless it is a
//!   delete; the table gets a `PRIMARY KEY` on the key columns. `append`
//!   inserts every insert and update. `history` inserts every change with
//!   `_op` (`i`, `u`, `d`, `t`), `_seq` (the batch's sequence number),
//!   `_commit_time` and `_synced_at` in front of the data columns.
//! * **Truncate** is applied in order: the changes of a table are split into
//!   segments at each truncate; `upsert` and `append` empty the table
//!   (`TRUNCATE`), `history` records a `t` row.
//! * **Unchanged values**
//!   ([`Value::Unchanged`](syncline_engine::model::Value::Unchanged), a TOAST
//!   value the source did not send) are taken from an earlier change of the
//!   same key in the batch, else from the row the target holds (in `history`
//!   and `append` mode: the latest row of that key); for an update that moved
//!   the row to another key, from the row under the old key.
//! * **Key-changing updates** (upsert) delete the row under the old key.
//! * **Schema.** Target tables are created in `schema` (created if missing)
//!   and named after the source table; columns the source gains are added.
//!   The bookkeeping tables (`_syncline_checkpoints`,
//!   `_syncline_dead_letters`) live in the same schema.
//! * **Lost connections** while writing are retried with backoff (the
//!   transaction was rolled back, or it committed and the retry skips it).
//!
//! The type map and how values are rendered for `COPY` are in [`values`];
//! `tables` creates and evolves the tables, `merge` applies a batch.

mod config;
mod dialect;
mod merge;
mod tables;
pub mod values;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Row as _};
use syncline_engine::apply;
use syncline_engine::batch::{Batch, Position};
use syncline_engine::config::WriteMode;
use syncline_engine::connector::{Check, KeptRow, Sink};
use syncline_engine::model::{DeadLetterStage, TableId, TableSchema};
use syncline_engine::{Error, ErrorKind, Result};
use tracing::{info, warn};

pub use config::PostgresTargetConfig;

use crate::error::PgError;
use crate::introspect::quote;
use tables::table_exists;

/// Table holding one checkpoint row per (pipeline, source).
pub const CHECKPOINT_TABLE: &str = "_syncline_checkpoints";
/// Table holding rejected records with their reason.
pub const DEAD_LETTER_TABLE: &str = "_syncline_dead_letters";

/// Metadata columns of history-mode tables, before the data columns.
const HISTORY_COLUMNS: &str = "_op text NOT NULL, _seq bigint NOT NULL, _commit_time timestamptz, _synced_at timestamptz NOT NULL";

/// Longest identifier Postgres keeps (longer ones are cut).
const MAX_IDENTIFIER: usize = 63;

/// Attempts at a batch when the connection is lost or the server asks for a
/// retry (serialization failure, deadlock).
const WRITE_ATTEMPTS: u32 = 6;

/// Bytes of COPY data sent per message.
const COPY_CHUNK: usize = 1 << 20;

/// Staged rows from which the staging table is analysed before the merge.
const ANALYZE_FROM: usize = 1_000;

/// Wraps a failed statement of the target: `what` was being done.
fn statement_failed(what: impl Display) -> impl FnOnce(sqlx::Error) -> PgError {
    PgError::query(format!("Postgres target: {what} failed"))
}

/// One target table and its staging table.
#[derive(Debug)]
struct Target {
    /// `"schema"."table"`.
    table: String,
    /// `pg_temp."_syncline_stage_N"`.
    stage: String,
    /// Bare staging table name.
    stage_name: String,
    /// The schema the staging table has.
    schema: Arc<TableSchema>,
    /// Whether the staging table exists on the current connection.
    staged: bool,
}

/// Everything the sink knows besides its connection.
#[derive(Debug)]
struct State {
    pipeline: String,
    mode: WriteMode,
    schema_name: String,
    targets: HashMap<TableId, Target>,
    /// Highest seq held, per source.
    held: BTreeMap<String, u64>,
    /// Rows whose last change here is a dead letter.
    withheld: apply::Withheld,
    stages: usize,
    /// The target transaction left open while a source transaction is
    /// (see [`Batch::continues`](syncline_engine::batch::Batch::continues)).
    open: Option<OpenTransaction>,
}

/// A target transaction left open across writes.
#[derive(Debug, Default)]
struct OpenTransaction {
    /// The last batch applied in it, per source.
    seqs: BTreeMap<String, u64>,
    /// Sources whose transaction is open in it: it commits once there is
    /// none.
    unfinished: std::collections::BTreeSet<String>,
    /// Sources whose checkpoint it holds the lock of.
    locked: std::collections::BTreeSet<String>,
    /// The rows withheld before it began.
    withheld: apply::Withheld,
    /// The staging tables holding rows (they go at its commit).
    staged: Staged,
}

/// The staging tables (`Target::stage`) a transaction has put rows in.
type Staged = std::collections::BTreeSet<String>;

/// The Postgres sink.
pub struct PostgresSink {
    config: PostgresTargetConfig,
    conn: Option<PgConnection>,
    opened: bool,
    state: State,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("target", &self.config.endpoint().describe())
            .field("schema", &self.config.schema)
            .field("pipeline", &self.state.pipeline)
            .field("mode", &self.state.mode)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl PostgresSink {
    /// A sink for `config`, writing for pipeline `pipeline`.
    pub fn new(config: PostgresTargetConfig, pipeline: &str) -> Self {
        let state = State {
            pipeline: pipeline.to_owned(),
            mode: config.mode,
            schema_name: config.schema.clone(),
            targets: HashMap::new(),
            held: BTreeMap::new(),
            withheld: syncline_engine::apply::Withheld::default(),
            stages: 0,
            open: None,
        };
        PostgresSink {
            config,
            conn: None,
            opened: false,
            state,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PostgresTargetConfig {
        &self.config
    }

    /// The connection (opened if there is none) and the state.
    async fn connection(&mut self) -> Result<(&mut PgConnection, &mut State), PgError> {
        if self.conn.is_none() {
            let conn = self.config.endpoint().connect().await?;
            // Temp staging tables died with the previous connection.
            for t in self.state.targets.values_mut() {
                t.staged = false;
            }
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok((conn, &mut self.state)),
            None => Err(PgError::NotOpen),
        }
    }

    async fn try_write(&mut self, source: &str, batches: &[Arc<Batch>]) -> Result<(), PgError> {
        let (conn, state) = self.connection().await?;
        let batches: Vec<&Batch> = batches.iter().map(|b| &**b).collect();
        state.write(conn, source, &batches).await.map(|_| ())
    }
}

#[async_trait]
impl Sink for PostgresSink {
    async fn check(&mut self) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut conn = match self.config.endpoint().connect().await {
            Ok(c) => c,
            Err(e) => {
                let fix = match &e {
                    PgError::Secret(_) => {
                        "set the environment variable the password refers to".to_owned()
                    }
                    _ => "check host, port, database, user and password, and that the server accepts connections from here (pg_hba.conf)".to_owned(),
                };
                checks.push(Check::fail("connection", Error::from(e).chain(), fix));
                return checks;
            }
        };
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|_| "unknown".into());
        checks.push(Check::pass(
            "connection",
            format!(
                "connected to {}:{}/{} (PostgreSQL {version})",
                self.config.host, self.config.port, self.config.database
            ),
        ));
        let name = format!("can create tables in schema {}", self.config.schema);
        match probe_create(&mut conn, &self.config.schema).await {
            Ok(created_schema) => checks.push(Check::pass(
                name,
                if created_schema {
                    format!(
                        "schema {} does not exist yet and will be created",
                        self.config.schema
                    )
                } else {
                    format!("{} may create tables there", self.config.user)
                },
            )),
            Err((detail, fix)) => checks.push(Check::fail(name, detail, fix)),
        }
        let _ = conn.close().await;
        checks
    }

    async fn open(&mut self, tables: &[Arc<TableSchema>]) -> Result<BTreeMap<String, Position>> {
        let (conn, state) = self.connection().await?;
        let held = state.prepare(conn, tables).await?;
        self.state.withheld = apply::Withheld::of(&self.dead_letters().await?);
        self.opened = true;
        Ok(held)
    }

    async fn write(&mut self, source: &str, batch: Arc<Batch>) -> Result<()> {
        self.write_group(source, vec![batch]).await
    }

    /// One target transaction for the group: one lock, one checkpoint read
    /// and write, one commit; each batch is merged as a `write` would.
    async fn write_group(&mut self, source: &str, batches: Vec<Arc<Batch>>) -> Result<()> {
        if !self.opened {
            return Err(PgError::NotOpen.into());
        }
        let mut attempt = 1;
        loop {
            // Earlier parts of an open transaction are lost with it: such a
            // write is not tried again alone.
            let joins_open = self.state.open.is_some();
            match self.try_write(source, &batches).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.kind() == ErrorKind::Connection
                        && attempt < WRITE_ATTEMPTS
                        && !joins_open =>
                {
                    let wait = Duration::from_millis(250 << attempt.min(6));
                    warn!(
                        target_db = %self.config.endpoint().describe(),
                        attempt,
                        error = %e.chain(),
                        "writing a batch failed; retrying in {wait:?}"
                    );
                    if (e.connection_lost() || matches!(e, PgError::Connect { .. }))
                        && let Some(conn) = self.conn.take()
                    {
                        let _ = conn.close_hard().await;
                    }
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn dead_letters(&mut self) -> Result<Vec<KeptRow>> {
        let (conn, state) = self.connection().await?;
        let table = state.qualified(DEAD_LETTER_TABLE);
        let exists = table_exists(conn, &table).await?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, source, table_name, coalesce(stage, 'read'), origin, line, raw, reason, seq,
                    (extract(epoch FROM recorded_at) * 1000000)::bigint, kept::text
             FROM {table} WHERE pipeline = $1 ORDER BY id"
        )))
        .bind(&state.pipeline)
        .fetch_all(&mut *conn)
        .await
        .map_err(statement_failed("reading dead letters"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let read = statement_failed("reading dead letters");
            let get = |row: &sqlx::postgres::PgRow| -> Result<KeptRow, sqlx::Error> {
                let stage: String = row.try_get(3)?;
                let kept: Option<String> = row.try_get(10)?;
                Ok(KeptRow {
                    id: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
                    source: row.try_get(1)?,
                    table: row.try_get(2)?,
                    stage: DeadLetterStage::parse(&stage).unwrap_or_default(),
                    origin: row.try_get(4)?,
                    line: row
                        .try_get::<Option<i64>, _>(5)?
                        .and_then(|l| u64::try_from(l).ok()),
                    raw: row.try_get(6)?,
                    reason: row.try_get(7)?,
                    seq: u64::try_from(row.try_get::<i64, _>(8)?).unwrap_or(0),
                    recorded_at: chrono::DateTime::from_timestamp_micros(row.try_get(9)?)
                        .unwrap_or_default(),
                    kept: kept.and_then(|k| serde_json::from_str(&k).ok()),
                })
            };
            out.push(get(&row).map_err(read)?);
        }
        Ok(out)
    }

    async fn replay(&mut self, batches: Vec<Batch>, resolved: Vec<u64>) -> Result<()> {
        if !self.opened {
            return Err(PgError::NotOpen.into());
        }
        let (conn, state) = self.connection().await?;
        for change in batches.iter().flat_map(|b| &b.changes) {
            state.ensure_table(conn, &change.table).await?;
        }
        let mut tx = conn.begin().await.map_err(statement_failed("BEGIN"))?;
        // One staging table may serve several batches here.
        let mut staged = Staged::new();
        for batch in &batches {
            let seq = i64::try_from(batch.position.seq).unwrap_or(i64::MAX);
            let screened =
                apply::set_aside(batch, values::refuses, &mut apply::Withheld::default());
            state
                .apply(&mut tx, "", &screened, seq, &mut staged)
                .await?;
        }
        let ids: Vec<i64> = resolved
            .iter()
            .filter_map(|&i| i64::try_from(i).ok())
            .collect();
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {} WHERE pipeline = $1 AND id = ANY($2)",
            state.qualified(DEAD_LETTER_TABLE)
        )))
        .bind(&state.pipeline)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(statement_failed("removing replayed dead letters"))?;
        tx.commit().await.map_err(statement_failed("COMMIT"))?;
        Ok(())
    }

    async fn discard(&mut self, ids: &[u64]) -> Result<u64> {
        let (conn, state) = self.connection().await?;
        let table = state.qualified(DEAD_LETTER_TABLE);
        let exists = table_exists(conn, &table).await?;
        if !exists {
            return Ok(0);
        }
        let ids: Vec<i64> = ids.iter().filter_map(|&i| i64::try_from(i).ok()).collect();
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE pipeline = $1 AND id = ANY($2)"
        )))
        .bind(&state.pipeline)
        .bind(&ids)
        .execute(&mut *conn)
        .await
        .map_err(statement_failed("discarding dead letters"))?;
        Ok(done.rows_affected())
    }

    async fn reader(
        &mut self,
        table: &Arc<TableSchema>,
    ) -> Result<Box<dyn syncline_engine::verify::RowReader>> {
        let conn = self.config.endpoint().connect().await?;
        let reader =
            crate::verify::TableReader::target(conn, &self.config.schema, table.clone()).await?;
        Ok(Box::new(reader))
    }

    async fn forget(&mut self) -> Result<()> {
        let (conn, state) = self.connection().await?;
        let table = state.qualified(CHECKPOINT_TABLE);
        let exists = table_exists(conn, &table).await?;
        if exists {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE pipeline = $1"
            )))
            .bind(&state.pipeline)
            .execute(&mut *conn)
            .await
            .map_err(statement_failed("forgetting checkpoints"))?;
        }
        state.held.clear();
        Ok(())
    }

    fn holds_uncommitted(&self) -> bool {
        self.state.open.is_some()
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(mut conn) = self.conn.take() {
            if self.state.open.is_some() {
                info!("rolling back a source transaction whose last part did not come");
                self.state.roll_back(&mut conn).await;
            }
            let _ = conn.close().await;
        }
        self.state.open = None;
        Ok(())
    }
}

/// Whether a table can be created in `schema`: creates the schema (when
/// missing) and a probe table in a transaction that is rolled back. Returns
/// whether the schema is missing; on failure, what failed and the fix.
async fn probe_create(conn: &mut PgConnection, schema: &str) -> Result<bool, (String, String)> {
    let failed = |e: sqlx::Error| e.to_string();
    let run = async {
        let mut tx = conn.begin().await.map_err(failed)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed)?;
        if !exists {
            sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {}", quote(schema))))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {}.\"_syncline_probe\" (x int)",
            quote(schema)
        )))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
        tx.rollback().await.map_err(failed)?;
        Ok::<bool, String>(!exists)
    };
    run.await.map_err(|detail| {
        (
            detail,
            format!(
                "as the schema's owner or a superuser: `GRANT CREATE ON SCHEMA {s} TO <user>;` (or, when the schema does not exist yet, `GRANT CREATE ON DATABASE <database> TO <user>;`)",
                s = quote(schema)
            ),
        )
    })
}

impl State {
    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote(&self.schema_name), quote(table))
    }
}
