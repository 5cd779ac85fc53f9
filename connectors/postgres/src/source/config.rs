//! Settings of a Postgres source.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::config::{Secret, SyncMode, TableDecl};

use crate::connection::{Endpoint, SslMode};

/// A PostgreSQL database read through logical replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// Host name or address.
    #[serde(default = "crate::connection::default_host")]
    pub host: String,
    /// Port.
    #[serde(default = "crate::connection::default_port")]
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User. It needs the REPLICATION attribute and SELECT on the tables.
    #[serde(default = "crate::connection::default_user")]
    pub user: String,
    /// Password, as a reference: `${env:NAME}` or `${keyring:service/account}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// TLS: `disable`, `prefer` or `require`.
    #[serde(default)]
    pub sslmode: SslMode,
    /// The tables to sync.
    #[schemars(length(min = 1))]
    pub tables: Vec<PgTableConfig>,
    /// Rows per batch during the snapshot (one target transaction each).
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
    /// Rows per batch during the snapshot when every target reads column
    /// blocks (DuckDB targets without transforms in between). The DuckDB
    /// target commits blocks a row group (122880 rows) at a time, which it
    /// writes straight to its file; smaller blocks hold less memory in
    /// flight. Best a divisor of 122880 and of `chunk_rows`.
    #[serde(default = "default_block_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub block_rows: usize,
    /// Rows per snapshot chunk: the unit a restarted snapshot resumes from.
    /// The default is four DuckDB row groups (and sixteen default blocks),
    /// so a chunk's blocks fill whole row groups.
    #[serde(default = "default_chunk_rows")]
    #[schemars(range(min = 1))]
    pub chunk_rows: u64,
    /// Connections copying snapshot chunks in parallel. Each keeps a server
    /// process and a decoding thread busy, while a target applies what they
    /// copy on a thread of its own. Default: one on a machine with fewer than
    /// four cores (where a second one takes the core the target needs, above
    /// all with the database on the same machine), two otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub snapshot_workers: Option<usize>,
    /// Changes of one streamed transaction held in memory at most. A larger
    /// transaction goes to the targets in parts of this many changes, which
    /// a target commits only with the last part: it holds all of a source
    /// transaction or none of it, whatever its size.
    #[serde(default = "default_transaction_rows")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub transaction_rows: usize,
    /// Seconds between heartbeats that let an idle slot release WAL (0: none).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
    /// Seconds between polls of `incremental` tables.
    #[serde(default = "default_poll")]
    pub poll_secs: u64,
}

/// One table of the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgTableConfig {
    /// `table` (in schema `public`) or `schema.table`.
    pub name: String,
    /// Key columns, when the table has no primary key (or to use another).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// How the table is kept in sync.
    #[serde(default)]
    pub mode: SyncMode,
    /// Cursor column for incremental mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Incremental mode only: seconds between scans of the table's keys
    /// that remove from the targets rows deleted at the source (a cursor
    /// does not see deletes). Each scan reads every key once, in pages of
    /// `batch_rows`. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub key_scan_secs: Option<u64>,
}

fn default_batch_rows() -> usize {
    10_000
}
fn default_transaction_rows() -> usize {
    10_000
}
fn default_block_rows() -> usize {
    30_720
}
fn default_chunk_rows() -> u64 {
    491_520
}
fn default_heartbeat() -> u64 {
    30
}
fn default_poll() -> u64 {
    5
}

impl PgTableConfig {
    /// `(schema, table)`.
    pub fn qualified(&self) -> (String, String) {
        match self.name.split_once('.') {
            Some((s, t)) => (s.to_owned(), t.to_owned()),
            None => ("public".to_owned(), self.name.clone()),
        }
    }

    /// The table's name in the pipeline (and the target): the table name for
    /// `public`, `schema_table` otherwise.
    pub fn engine_name(&self) -> String {
        match self.qualified() {
            (s, t) if s == "public" => t,
            (s, t) => format!("{s}_{t}"),
        }
    }
}

impl PostgresSourceConfig {
    /// The connection settings.
    pub fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            host: &self.host,
            port: self.port,
            database: &self.database,
            user: &self.user,
            password: self.password.as_ref(),
            sslmode: self.sslmode,
        }
    }

    /// Tables as the engine validates them.
    pub fn table_decls(&self) -> Vec<TableDecl> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| TableDecl {
                name: t.engine_name(),
                key: t.key.clone(),
                key_from_source: t.key.is_empty(),
                mode: t.mode,
                cursor: t.cursor.clone(),
                pointer: format!("/tables/{i}"),
            })
            .collect()
    }

    /// Modes this source implements. One source either follows the change
    /// log (`cdc`) for all its tables or polls all of them.
    pub const MODES: &'static [SyncMode] = &[SyncMode::Cdc, SyncMode::Incremental, SyncMode::Full];

    /// Whether every table is polled (no replication slot is used).
    pub fn polls_only(&self) -> bool {
        self.tables.iter().all(|t| t.mode != SyncMode::Cdc)
    }

    /// How many connections copy the snapshot: `snapshot_workers`, or the
    /// default for this machine's cores.
    pub fn copy_workers(&self) -> usize {
        self.snapshot_workers
            .unwrap_or_else(|| {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                if cores < 4 { 1 } else { 2 }
            })
            .max(1)
    }
}
