//! Settings of a MySQL / MariaDB source.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use syncline_engine::config::{Secret, SyncMode, TableDecl};

/// A MySQL or MariaDB database read from its row-based binary log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MySqlSourceConfig {
    /// Host name or address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// User. It needs REPLICATION SLAVE, REPLICATION CLIENT and SELECT on
    /// the tables.
    #[serde(default = "default_user")]
    pub user: String,
    /// Password, as a reference: `${env:NAME}` or `${keyring:service/account}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The database (schema) the tables are in.
    pub database: String,
    /// The tables to sync, named as in that database.
    #[schemars(length(min = 1))]
    pub tables: Vec<MySqlTableConfig>,
    /// Rows per batch during the snapshot (one target transaction each).
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub batch_rows: usize,
    /// Rows per batch during the snapshot when every target reads column
    /// blocks (DuckDB targets without transforms in between), which the
    /// DuckDB target commits a row group (122880 rows) at a time. Best a
    /// divisor of 122880.
    #[serde(default = "default_block_rows")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub block_rows: usize,
    /// Changes of one streamed transaction held in memory at most. A larger
    /// transaction goes to the targets in parts of this many changes, which
    /// a target commits only with the last part.
    #[serde(default = "default_transaction_rows")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub transaction_rows: usize,
    /// The replica id the source reads the binary log as: unique among the
    /// server's replicas. Default: one derived from the pipeline and source
    /// names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 4_294_967_295_u32))]
    pub server_id: Option<u32>,
    /// Seconds between the server's heartbeats while the binary log is
    /// idle, so the source's position stays current (0: none).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_secs: u64,
}

/// One table of the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MySqlTableConfig {
    /// Table name in the source's database.
    pub name: String,
    /// Key columns, when the table has no primary key (or to use another).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// How the table is kept in sync: `cdc` (the binary log) only, so far.
    #[serde(default)]
    pub mode: SyncMode,
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}
fn default_port() -> u16 {
    3306
}
fn default_user() -> String {
    "root".to_owned()
}
fn default_batch_rows() -> usize {
    10_000
}
fn default_block_rows() -> usize {
    30_720
}
fn default_transaction_rows() -> usize {
    10_000
}
fn default_heartbeat() -> u64 {
    30
}

impl MySqlSourceConfig {
    /// Modes this source implements.
    pub const MODES: &'static [SyncMode] = &[SyncMode::Cdc];

    /// Tables as the engine validates them.
    pub fn table_decls(&self) -> Vec<TableDecl> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| TableDecl {
                name: t.name.clone(),
                key: t.key.clone(),
                key_from_source: t.key.is_empty(),
                mode: t.mode,
                cursor: None,
                pointer: format!("/tables/{i}"),
            })
            .collect()
    }

    /// `mysql://user@host:port/database`, for messages.
    pub fn target(&self) -> String {
        format!(
            "mysql://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}
