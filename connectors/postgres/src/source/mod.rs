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
//!   change arrive as
//!   [`Value::Unchanged`](syncline_engine::model::Value::Unchanged); sinks
//!   keep what they hold.
//! * **Slot safety.** A heartbeat (`pg_logical_emit_message`) lets an idle
//!   slot advance; the WAL the slot retains is reported in the status.
//!
//! Values travel in Postgres's binary format in both phases; see
//! [`types`](crate::types).
//!
//! Here: the position, publication and slot, `check` and `discover`.
//! `runner` starts a run (stored position, exported-snapshot handoff, the
//! parallel [`snapshot`] copy), `stream` follows the slot (heartbeats,
//! acknowledgement feedback, reconnects), [`poll`] syncs without replication
//! and `peek` previews recent changes.

mod config;
mod owner;
mod peek;
pub mod poll;
mod runner;
pub mod snapshot;
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row as _};
use syncline_engine::config::SyncMode;
use syncline_engine::connector::{Check, Source, SourceContext, stopped};
use syncline_engine::model::{Change, Row, TableSchema};
use syncline_engine::{Error, ErrorKind, Result};
use tracing::info;

pub use config::{PgTableConfig, PostgresSourceConfig};
use owner::Claim;
pub use owner::Owner;
use runner::Runner;
use snapshot::Chunk;

use crate::error::PgError;
use crate::introspect::{self, TableInfo, quote};

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
    /// The run's generation (see `syncline_engine::connector::Start`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// The slot (and publication) this source uses: named from its owner,
    /// or, on a resume, the one the stored position names.
    slot: String,
    /// The pipeline this source belongs to; `None` before its first run
    /// (it has no identity yet, so it owns no slot).
    owner: Option<Owner>,
    config: PostgresSourceConfig,
    tables: Vec<TableInfo>,
    /// The connection `discover` used, kept for `run` (saves a connection
    /// set-up, a TLS handshake included, at every start).
    conn: Option<PgConnection>,
}

/// Slot and publication name for source `source` of the pipeline named
/// `pipeline` whose identity is `id`: lowercase, at most 63 characters,
/// readable, and unique per (pipeline identity, source), so pipelines named
/// alike never share a slot. Without an identity: the name a pipeline used
/// before identities existed, `syncline_<pipeline>_<source>`.
pub fn slot_name(pipeline: &str, source: &str, id: Option<&str>) -> String {
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
    let fnv = |bytes: &[u8]| {
        bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        })
    };
    match id {
        Some(id) => {
            // The raw names, not the cleaned ones: `a-b` and `a_b` differ.
            let hash = fnv(format!("{pipeline}\0{source}\0{id}").as_bytes());
            let keep = clean.len().min(50);
            format!("{}_{:012x}", &clean[..keep], hash & 0xffff_ffff_ffff)
        }
        None if clean.len() <= 63 => clean,
        None => {
            let hash = fnv(clean.as_bytes());
            format!("{}_{:012x}", &clean[..50], hash & 0xffff_ffff_ffff)
        }
    }
}

fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl PostgresSource {
    /// A source named `name` of the pipeline named `pipeline` whose
    /// identity is `id` (`None` before the pipeline first ran: such a source
    /// can be checked and discovered but not run).
    pub fn new(
        name: &str,
        pipeline: &str,
        id: Option<&str>,
        config: &PostgresSourceConfig,
    ) -> Self {
        PostgresSource {
            name: name.to_owned(),
            slot: slot_name(pipeline, name, id),
            owner: id.map(|id| Owner {
                syncline_pipeline: id.to_owned(),
                pipeline: pipeline.to_owned(),
                source: name.to_owned(),
            }),
            config: config.clone(),
            tables: Vec::new(),
            conn: None,
        }
    }

    /// The slot (and publication) this source uses.
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// The described table the pipeline calls `table`.
    fn described(&self, table: &str) -> Result<&TableInfo> {
        self.tables
            .iter()
            .find(|t| t.schema.id.name == table)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("source `{}` has no table `{table}`", self.name),
                )
            })
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

    /// Drops the slot and publication this source owns: the one named from
    /// its identity, and one of the old name (`syncline_<pipeline>_<source>`)
    /// it adopted. Returns what it did, in words; slots of its names that
    /// another pipeline owns, or that nobody claims, are left alone and said
    /// so.
    pub async fn release(&self) -> Result<Vec<String>> {
        let mut conn = self.config.endpoint().connect().await?;
        let mut said = Vec::new();
        let Some(owner) = &self.owner else {
            said.push(format!(
                "nothing removed: this pipeline has no identity here (it never ran, or its state folder is gone), so it owns no slot{}",
                match self.slot_exists(&mut conn, &self.slot).await? {
                    true => format!(
                        "; replication slot {} has this pipeline's old-style name: drop it by hand if it is this pipeline's",
                        self.slot
                    ),
                    false => String::new(),
                }
            ));
            return Ok(said);
        };
        let legacy = slot_name(&owner.pipeline, &owner.source, None);
        for name in [&self.slot, &legacy] {
            match owner.claim_of(&mut conn, name).await? {
                Claim::Ours => {
                    self.drop_slot_and_publication(&mut conn, name, &mut said)
                        .await?;
                }
                Claim::Free if name == &self.slot => {
                    if self.slot_exists(&mut conn, name).await? {
                        // Created, but the run stopped before its
                        // publication was: the name is this pipeline's own.
                        self.drop_slot_and_publication(&mut conn, name, &mut said)
                            .await?;
                    }
                }
                Claim::Free => {}
                Claim::Unclaimed => said.push(format!(
                    "left alone: publication {name} has no owner record; drop it (and its slot) by hand if it is this pipeline's"
                )),
                Claim::Theirs(who) => said.push(format!(
                    "left alone: publication and replication slot {name} belong to {who}"
                )),
            }
        }
        Ok(said)
    }

    async fn slot_exists(&self, conn: &mut PgConnection, slot: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
        )
        .bind(slot)
        .fetch_one(conn)
        .await
        .map_err(PgError::query("reading replication slots"))?)
    }

    async fn drop_slot_and_publication(
        &self,
        conn: &mut PgConnection,
        name: &str,
        said: &mut Vec<String>,
    ) -> Result<()> {
        let active: Option<Option<i32>> =
            sqlx::query_scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await
                .map_err(PgError::query("reading replication slots"))?;
        match active {
            Some(Some(pid)) => {
                return Err(PgError::Precondition(format!(
                    "replication slot {name} is in use by process {pid}: stop the pipeline first"
                ))
                .into());
            }
            Some(None) => {
                sqlx::query("SELECT pg_drop_replication_slot($1)")
                    .bind(name)
                    .execute(&mut *conn)
                    .await
                    .map_err(PgError::query("dropping the replication slot"))?;
                said.push(format!("removed replication slot {name}"));
            }
            None => {}
        }
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .map_err(PgError::query("reading publications"))?;
        if exists {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP PUBLICATION {}",
                quote(name)
            )))
            .execute(&mut *conn)
            .await
            .map_err(PgError::query("dropping the publication"))?;
            said.push(format!("removed publication {name}"));
        }
        Ok(())
    }

    /// This source's owner; an error before the pipeline has an identity.
    fn owner(&self) -> Result<&Owner> {
        self.owner.as_ref().ok_or_else(|| {
            Error::internal(format!(
                "source `{}` runs without a pipeline identity",
                self.name
            ))
        })
    }

    /// Creates or updates this source's publication, refusing one another
    /// pipeline owns and recording this pipeline as the owner.
    async fn ensure_publication(&self, conn: &mut PgConnection) -> Result<()> {
        let owner = self.owner()?;
        let claim = owner.ensure_not_theirs(conn, &self.slot).await?;
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
        if claim != Claim::Ours {
            owner.record(conn, &self.slot).await?;
        }
        Ok(())
    }

    /// Drops this source's slot if no process is using it.
    /// Drops the slot, waiting (up to 30 s) for a reader that still holds
    /// it to let go: the server ends a stopped run's replication connection
    /// a moment after the client goes.
    async fn release_slot_only(&self, conn: &mut PgConnection) -> Result<()> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let holder: Option<Option<i32>> = sqlx::query_scalar(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
            )
            .bind(&self.slot)
            .fetch_optional(&mut *conn)
            .await
            .map_err(PgError::query("reading the replication slot"))?;
            match holder {
                None => return Ok(()),
                Some(None) => {
                    sqlx::query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active")
                        .bind(&self.slot)
                        .execute(&mut *conn)
                        .await
                        .map_err(PgError::query("dropping the stale replication slot"))?;
                }
                Some(Some(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Some(Some(pid)) => {
                    return Err(PgError::Precondition(format!(
                        "replication slot {} is in use by server process {pid}: another reader holds it; stop that reader (or end it with pg_terminate_backend({pid})) and run again",
                        self.slot
                    ))
                    .into());
                }
            }
        }
    }
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&mut self) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut conn = match self.config.endpoint().connect().await {
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
            None => self.config.endpoint().connect().await?,
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
        let mut conn = self.config.endpoint().connect().await?;
        self.describe_all(&mut conn).await?;
        let info = self.described(table)?;
        let rows = snapshot::sample_rows(&mut conn, info, limit, seed).await?;
        let schema = info.schema.clone();
        let _ = conn.close().await;
        Ok((schema, rows))
    }

    async fn recent_changes(&mut self, table: &str, limit: usize) -> Result<Vec<Change>> {
        if self.config.polls_only() {
            return Ok(Vec::new());
        }
        let mut conn = self.config.endpoint().connect().await?;
        self.describe_all(&mut conn).await?;
        let info = self.described(table)?;
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
        let cancel = ctx.cancel.clone();
        let run = async {
            let mut runner = Runner::start(*self, &ctx).await?;
            runner.run(ctx).await
        };
        stopped(run.await, &cancel)
    }

    async fn reader(
        &mut self,
        table: &str,
    ) -> Result<(
        Arc<TableSchema>,
        Box<dyn syncline_engine::verify::RowReader>,
    )> {
        let mut conn = self.config.endpoint().connect().await?;
        self.describe_all(&mut conn).await?;
        let info = self.described(table)?.clone();
        let schema = info.schema.clone();
        let reader = crate::verify::TableReader::new(conn, info).await?;
        Ok((schema, Box::new(reader)))
    }

    async fn release(&mut self) -> Result<Vec<String>> {
        PostgresSource::release(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_are_valid_and_distinct() {
        assert_eq!(slot_name("Shop-Sync", "pg", None), "syncline_shop_sync_pg");
        let long = slot_name(&"x".repeat(80), "a", None);
        assert!(long.len() <= 63, "{long}");
        assert_ne!(long, slot_name(&"x".repeat(80), "b", None));

        let id = Some("0f3a9c2e41d7");
        let named = slot_name("Shop-Sync", "pg", id);
        assert!(named.starts_with("syncline_shop_sync_pg_"), "{named}");
        let valid = |s: &str| {
            s.len() <= 63
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        // Pipelines named alike, sources whose names clean alike, long
        // names that differ only past the cut: all apart.
        let names = [
            named.clone(),
            slot_name("Shop-Sync", "pg", Some("77aa01bc93de")),
            slot_name("shop_sync", "pg", id),
            slot_name("Shop-Sync", "PG", id),
            slot_name(&"x".repeat(80), "a", id),
            slot_name(&"x".repeat(80), "b", id),
        ];
        for (i, a) in names.iter().enumerate() {
            assert!(valid(a), "{a}");
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(named, slot_name("Shop-Sync", "pg", id), "stable");
    }

    #[test]
    fn lsn_text_round_trips() {
        let lsn = parse_lsn("16/B374D848").expect("lsn");
        assert_eq!(lsn_text(lsn), "16/B374D848");
    }
}
