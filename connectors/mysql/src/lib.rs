//! MySQL and MariaDB source: a consistent snapshot, then the row-based
//! binary log.
//!
//! * **Consistent start.** One connection opens `START TRANSACTION WITH
//!   CONSISTENT SNAPSHOT` and reads the binary log position of that
//!   snapshot (MariaDB's `binlog_snapshot_file` / `_position`, which the
//!   server keeps in step with the snapshot, so no lock is taken); every
//!   table is copied under it, in key order, a batch at a time; the binary
//!   log is then read from that position: no gap, no overlap.
//! * **Resumed snapshot.** Each batch's position says which tables are
//!   copied. After a crash the unfinished tables are emptied and copied
//!   again under a new snapshot, and the log is read from the first
//!   snapshot's position with each table's changes applied only after the
//!   position its copy was taken at (`MyState::from`).
//! * **Streaming.** One source transaction is one batch, in commit order,
//!   positioned at the end of its commit event. A batch's `seq` is the
//!   position in the log (`seq = coordinate + offset`, see [`MyState`]),
//!   so reading the log again from any position numbers every transaction
//!   as before. Row events are decoded with the table map's row metadata
//!   (`binlog_row_metadata = FULL`): the column names come with every
//!   transaction, so a column added mid-stream arrives as the table's next
//!   schema version at the right point of the log.
//! * **Positions.** File and position; on MariaDB each transaction's GTID
//!   (`domain-server-sequence`, parsed here: the driver does not) is the
//!   batch's transaction id and part of the position, for the status.

mod binlog;
mod config;
mod error;
pub mod introspect;
mod runner;
mod snapshot;
pub mod values;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde::{Deserialize, Serialize};
use syncline_engine::connector::{Check, Source, SourceContext, stopped};
use syncline_engine::model::{Row, TableSchema};
use syncline_engine::{Error, ErrorKind, Result};

pub use config::{MySqlSourceConfig, MySqlTableConfig};
pub use error::MyError;
use introspect::TableInfo;

/// A position in the binary log: a file of the log and a byte offset in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPos {
    /// The binary log file, e.g. `mysql-bin.000003`.
    pub file: String,
    /// Byte offset in it.
    pub pos: u64,
}

impl LogPos {
    /// The position as one number that orders positions across files: the
    /// file's sequence number (its extension) above the offset.
    pub fn coordinate(&self) -> Result<u64> {
        let index = self
            .file
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .ok_or_else(|| {
                Error::from(MyError::Binlog(format!(
                    "binary log file name `{}` has no sequence number",
                    self.file
                )))
            })?;
        if index >= 1 << 30 || self.pos >= 1 << 32 {
            return Err(MyError::Binlog(format!(
                "position {self} is beyond what a position can number"
            ))
            .into());
        }
        Ok((index << 32) | self.pos)
    }
}

impl std::fmt::Display for LogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// The source's position.
///
/// A streamed batch's `seq` is `coordinate + offset`, the coordinate of the
/// end of its commit in the log ([`LogPos::coordinate`]); snapshot batches
/// are numbered one by one, and the offset is chosen when a snapshot ends
/// so that the log's transactions after its position are numbered above
/// its last batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyState {
    /// Read the log from here: the end of the last transaction applied, or
    /// the snapshot's position.
    pub at: LogPos,
    /// `seq - coordinate` of streamed batches.
    pub offset: i64,
    /// The last transaction's GTID (MariaDB: `domain-server-sequence`),
    /// where the server has GTIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Tables copied at a later position than `at`: their changes up to
    /// that position are already in their copy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub from: BTreeMap<String, LogPos>,
    /// Per table, its columns as the log has them at this position: how
    /// a restart tells a column added meanwhile (its rows before the change
    /// are read without it) from one dropped or renamed (which stops).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, Vec<String>>,
    /// Snapshot progress, until every table is copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotState>,
    /// The run's generation (see `syncline_engine::connector::Start`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A snapshot in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotState {
    /// The position the snapshot was taken at.
    pub at: LogPos,
    /// Tables whose copy is complete.
    pub done: Vec<String>,
}

/// The MySQL / MariaDB source.
#[derive(Debug)]
pub struct MySqlSource {
    name: String,
    /// The replica id the log is read as.
    server_id: u32,
    config: MySqlSourceConfig,
    tables: Vec<TableInfo>,
}

/// The replica id of source `source` of pipeline `pipeline`: stable, in the
/// range servers accept, away from the small ids servers usually have.
pub fn server_id(pipeline: &str, source: &str) -> u32 {
    let hash = format!("{pipeline}\0{source}")
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    0x4000_0000 | (hash & 0x3fff_ffff)
}

impl MySqlSource {
    /// Source `name` of the pipeline named `pipeline`.
    pub fn new(name: &str, pipeline: &str, config: &MySqlSourceConfig) -> Self {
        MySqlSource {
            name: name.to_owned(),
            server_id: config
                .server_id
                .unwrap_or_else(|| server_id(pipeline, name)),
            config: config.clone(),
            tables: Vec::new(),
        }
    }

    /// A connection to the source's database, in UTC (so `timestamp`
    /// values come as UTC).
    pub(crate) async fn connect(config: &MySqlSourceConfig) -> Result<Conn> {
        Self::connect_with(config, |opts| {
            opts.db_name(Some(config.database.clone()))
                .init(vec!["SET SESSION time_zone = '+00:00'".to_owned()])
        })
        .await
    }

    /// A connection to the source's server with the settings `tweak`
    /// adds, given up after 15 s without an answer.
    pub(crate) async fn connect_with(
        config: &MySqlSourceConfig,
        tweak: impl FnOnce(OptsBuilder) -> OptsBuilder,
    ) -> Result<Conn> {
        let password = match &config.password {
            Some(secret) => Some(secret.resolve().map_err(MyError::Secret)?),
            None => None,
        };
        let opts = tweak(
            OptsBuilder::default()
                .ip_or_hostname(config.host.clone())
                .tcp_port(config.port)
                .user(Some(config.user.clone()))
                .pass(password)
                .prefer_socket(false),
        );
        let connecting = Conn::new(opts);
        let conn = tokio::time::timeout(std::time::Duration::from_secs(15), connecting)
            .await
            .map_err(|_| MyError::Connect {
                target: config.target(),
                source: mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer in 15 s",
                ))),
            })?
            .map_err(|source| MyError::Connect {
                target: config.target(),
                source,
            })?;
        Ok(conn)
    }

    /// The described table named `table`.
    fn described(&self, table: &str) -> Result<&TableInfo> {
        self.tables.iter().find(|t| t.name == table).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!("source `{}` has no table `{table}`", self.name),
            )
        })
    }

    async fn describe_all(&mut self, conn: &mut Conn) -> Result<()> {
        let mut tables = Vec::new();
        for t in &self.config.tables {
            let (info, unsupported) =
                introspect::describe(conn, &self.name, &self.config.database, t).await?;
            if let Some(u) = unsupported.first() {
                return Err(MyError::Table {
                    table: info.name.clone(),
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
}

/// A server variable's value, if the server has it.
pub(crate) async fn variable(conn: &mut Conn, name: &str) -> Option<String> {
    let row: Option<(String, String)> = conn
        .query_first(format!(
            "SHOW GLOBAL VARIABLES LIKE {}",
            introspect::literal(name)
        ))
        .await
        .ok()
        .flatten();
    row.map(|(_, v)| v)
}

#[async_trait]
impl Source for MySqlSource {
    async fn check(&mut self) -> Vec<Check> {
        let mut checks = Vec::new();
        let mut conn = match Self::connect(&self.config).await {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check::fail(
                    "connection",
                    e.chain(),
                    "check host, port, database, user and password, and that the server accepts connections from here",
                ));
                return checks;
            }
        };
        let version = variable(&mut conn, "version").await.unwrap_or_default();
        checks.push(Check::pass(
            "connection",
            format!(
                "connected to {} {} at {}:{}/{}",
                if version.to_ascii_lowercase().contains("mariadb") {
                    "MariaDB"
                } else {
                    "MySQL"
                },
                version,
                self.config.host,
                self.config.port,
                self.config.database
            ),
        ));
        if !version.to_ascii_lowercase().contains("mariadb") {
            checks.push(Check::fail(
                "server",
                format!("{version} is MySQL, whose consistent snapshot has no binary log position to start the log from"),
                "MySQL sources are not supported yet: use MariaDB 10.5 or later",
            ));
        }
        let settings = [
            (
                "log_bin",
                "ON",
                "the binary log is off",
                "add `log_bin = mysql-bin` and a `server_id` to the server's [mysqld] settings and restart it",
            ),
            (
                "binlog_format",
                "ROW",
                "change data capture needs row-based logging",
                "run `SET GLOBAL binlog_format = 'ROW'` and add `binlog_format = ROW` to the server's settings",
            ),
            (
                "binlog_row_image",
                "FULL",
                "updates and deletes must log every column",
                "run `SET GLOBAL binlog_row_image = 'FULL'` and add it to the server's settings",
            ),
            (
                "binlog_row_metadata",
                "FULL",
                "row events must name their columns, so schema changes are followed at the right point",
                "run `SET GLOBAL binlog_row_metadata = 'FULL'` and add it to the server's settings",
            ),
        ];
        for (name, want, why, fix) in settings {
            match variable(&mut conn, name).await {
                Some(v) if v.eq_ignore_ascii_case(want) => checks.push(Check::pass(name, v)),
                Some(v) => checks.push(Check::fail(name, format!("{name} is `{v}`: {why}"), fix)),
                None => checks.push(Check::fail(
                    name,
                    format!("the server has no {name} setting: {why}"),
                    "use MySQL 8.0.14+ or MariaDB 10.5+",
                )),
            }
        }
        let grants: Vec<String> = conn.query("SHOW GRANTS").await.unwrap_or_default();
        let all = grants.iter().any(|g| g.contains("ALL PRIVILEGES ON *.*"));
        for (privilege, needed) in [
            ("REPLICATION SLAVE", "read the binary log"),
            ("REPLICATION CLIENT", "read the binary log's position"),
        ] {
            let has = all
                || grants.iter().any(|g| {
                    g.contains(privilege)
                        || (privilege == "REPLICATION SLAVE" && g.contains("REPLICATION REPLICA"))
                        || (privilege == "REPLICATION CLIENT" && g.contains("BINLOG MONITOR"))
                });
            if has {
                checks.push(Check::pass(
                    privilege,
                    format!("{} may {needed}", self.config.user),
                ));
            } else {
                checks.push(Check::fail(
                    privilege,
                    format!(
                        "user {} lacks {privilege}, needed to {needed}",
                        self.config.user
                    ),
                    format!(
                        "run `GRANT {privilege} ON *.* TO '{}';` as an administrator",
                        self.config.user
                    ),
                ));
            }
        }
        let expire = variable(&mut conn, "binlog_expire_logs_seconds")
            .await
            .and_then(|v| v.parse::<u64>().ok());
        match expire {
            Some(0) | None => checks.push(Check::pass(
                "binary log retention",
                "the server keeps its binary logs until they are purged by hand",
            )),
            Some(secs) if secs < 86_400 => checks.push(Check::warn(
                "binary log retention",
                format!("the server purges binary logs after {secs} s: a pipeline stopped for longer must copy its tables again"),
                "raise binlog_expire_logs_seconds (a week: 604800)",
            )),
            Some(secs) => checks.push(Check::pass(
                "binary log retention",
                format!("binary logs are kept {} h", secs / 3600),
            )),
        }
        match self.describe_all(&mut conn).await {
            Ok(()) => {
                for t in &self.tables {
                    if t.schema.key.is_empty() {
                        checks.push(Check::fail(
                            format!("table {}", t.name),
                            "has no primary key, so its changes cannot be applied by key",
                            format!("add a primary key to {}, or name key columns with `key = [...]` in the table's settings", t.name),
                        ));
                    } else {
                        checks.push(Check::pass(
                            format!("table {}", t.name),
                            format!(
                                "{} columns, key {}",
                                t.columns.len(),
                                t.schema.key_names().join(", ")
                            ),
                        ));
                    }
                }
            }
            Err(e) => checks.push(Check::fail(
                "tables",
                e.chain(),
                "name tables that exist in the database, with columns of supported types",
            )),
        }
        let _ = conn.disconnect().await;
        checks
    }

    async fn discover(&mut self) -> Result<Vec<Arc<TableSchema>>> {
        let mut conn = Self::connect(&self.config).await?;
        let described = self.describe_all(&mut conn).await;
        let _ = conn.disconnect().await;
        described?;
        Ok(self.tables.iter().map(|t| t.schema.clone()).collect())
    }

    async fn sample(
        &mut self,
        table: &str,
        limit: Option<usize>,
        seed: u64,
    ) -> Result<(Arc<TableSchema>, Vec<Row>)> {
        let mut conn = Self::connect(&self.config).await?;
        self.describe_all(&mut conn).await?;
        let info = self.described(table)?;
        let rows = snapshot::sample_rows(&mut conn, info, limit, seed).await?;
        let schema = info.schema.clone();
        let _ = conn.disconnect().await;
        Ok((schema, rows))
    }

    async fn reader(
        &mut self,
        table: &str,
    ) -> Result<(
        Arc<TableSchema>,
        Box<dyn syncline_engine::verify::RowReader>,
    )> {
        let mut conn = Self::connect(&self.config).await?;
        self.describe_all(&mut conn).await?;
        let info = self.described(table)?.clone();
        let schema = info.schema.clone();
        let reader = verify::TableReader::new(conn, &self.config.database, info);
        Ok((schema, Box::new(reader)))
    }

    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<()> {
        let cancel = ctx.cancel.clone();
        stopped(runner::run(*self, ctx).await, &cancel)
    }
}
