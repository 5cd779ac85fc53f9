//! Browsing DuckDB files (also while a pipeline of this process writes them).

use std::path::PathBuf;

use serde::Serialize;
use syncline_duckdb::browse;
use ts_rs::TS;

use super::*;

/// A table of a DuckDB database.
#[derive(Debug, Clone, Serialize, TS)]
pub struct TableInfo {
    /// DuckDB schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Rows it holds.
    pub rows: u64,
    /// Its columns.
    pub columns: Vec<ColumnInfo>,
}

/// What an ad-hoc query returned.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    /// Result columns with DuckDB's type names.
    pub columns: Vec<ColumnInfo>,
    /// Rows (decimals, timestamps and other non-numbers as text).
    #[ts(type = "Array<Array<unknown>>")]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows existed than `limit`.
    pub truncated: bool,
    /// Time to run it, in milliseconds.
    pub elapsed_ms: f64,
}

fn columns(columns: Vec<browse::ColumnType>) -> Vec<ColumnInfo> {
    columns
        .into_iter()
        .map(|c| ColumnInfo {
            name: c.name,
            data_type: c.data_type,
        })
        .collect()
}

/// The tables of the DuckDB file `database`, also while a pipeline of this
/// process writes it.
pub async fn list_tables(database: PathBuf) -> Result<Vec<TableInfo>, Failure> {
    blocking(move || {
        Ok(browse::list_tables(&database)?
            .into_iter()
            .map(|t| TableInfo {
                schema: t.schema,
                name: t.name,
                rows: t.rows,
                columns: columns(t.columns),
            })
            .collect())
    })
    .await
}

/// Runs `sql` on the DuckDB file `database`, returning at most `limit` rows.
pub async fn run_query(
    database: PathBuf,
    sql: String,
    limit: usize,
) -> Result<QueryResult, Failure> {
    blocking(move || {
        let q = browse::run_query(&database, &sql, limit)?;
        Ok(QueryResult {
            columns: columns(q.columns),
            rows: q.rows,
            truncated: q.truncated,
            elapsed_ms: q.elapsed_ms,
        })
    })
    .await
}
