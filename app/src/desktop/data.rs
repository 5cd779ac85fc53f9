//! Browsing DuckDB files (also while a pipeline of this process writes
//! them) and searching search index targets.

use std::path::{Path, PathBuf};

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

/// What a search of a search index target found, as a grid: `score`,
/// `table`, `key`, `matches` (the passages found, the words between `**`),
/// then every column of the rows found.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    /// The grid's columns.
    pub columns: Vec<ColumnInfo>,
    /// Best match first.
    #[ts(type = "Array<Array<unknown>>")]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Documents matching in all (more than `rows` when the limit cut).
    pub total: u64,
    /// Time to run it, in milliseconds.
    pub elapsed_ms: f64,
}

/// Searches the search index target `target` of the pipeline (its file
/// `path` with the text `text` as the studio holds it) for `query`.
pub async fn search_index(
    path: &Path,
    text: String,
    target: String,
    query: String,
    limit: usize,
) -> Result<SearchResult, Failure> {
    let pipeline = crate::parse(path, text).map_err(|e| Failure::from(&e))?;
    blocking(move || {
        let started = std::time::Instant::now();
        let found = crate::search::search(&pipeline, &target, &query, limit)?;
        Ok(search_grid(
            &found,
            started.elapsed().as_secs_f64() * 1000.0,
        ))
    })
    .await
}

fn search_grid(found: &crate::search::Found, elapsed_ms: f64) -> SearchResult {
    let column = |name: &str, data_type: &str| ColumnInfo {
        name: name.to_owned(),
        data_type: data_type.to_owned(),
    };
    let mut columns = vec![
        column("score", "DOUBLE"),
        column("table", "VARCHAR"),
        column("key", "VARCHAR"),
        column("matches", "VARCHAR"),
    ];
    let mut row_columns: Vec<String> = Vec::new();
    for hit in &found.hits {
        for name in hit.row.keys() {
            if !row_columns.contains(name) {
                row_columns.push(name.clone());
            }
        }
    }
    columns.extend(row_columns.iter().map(|n| column(n, "JSON")));
    let rows = found
        .hits
        .iter()
        .map(|hit| {
            let key: Vec<String> = hit.key.iter().map(ToString::to_string).collect();
            let matches: Vec<String> = hit
                .highlights
                .iter()
                .map(|(c, h)| format!("{c}: {}", h.marked("**", "**")))
                .collect();
            let mut cells = vec![
                serde_json::json!((f64::from(hit.score) * 1000.0).round() / 1000.0),
                serde_json::Value::String(hit.table.clone()),
                serde_json::Value::String(key.join(", ")),
                serde_json::Value::String(matches.join(" · ")),
            ];
            cells.extend(
                row_columns
                    .iter()
                    .map(|c| hit.row.get(c).cloned().unwrap_or(serde_json::Value::Null)),
            );
            cells
        })
        .collect();
    SearchResult {
        columns,
        rows,
        total: found.total as u64,
        elapsed_ms,
    }
}

/// One table of a pipeline in a Redis target.
#[derive(Debug, Clone, Serialize, TS)]
pub struct RedisTable {
    /// Table name.
    pub table: String,
    /// Its key template (or stream).
    pub template: String,
    /// Keys it holds.
    pub keys: u64,
}

/// A Redis target's tables, and the keys of one with their values as a
/// grid: `key`, then every field of the values.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct RedisKeys {
    /// The tables the pipeline writes there.
    pub tables: Vec<RedisTable>,
    /// The table shown (the first one unless asked).
    pub table: Option<String>,
    /// The grid's columns.
    pub columns: Vec<ColumnInfo>,
    /// One row per key.
    #[ts(type = "Array<Array<unknown>>")]
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Time to read them, in milliseconds.
    pub elapsed_ms: f64,
}

/// The tables of the Redis target `target` and up to `limit` keys of
/// `table` (the first table when `None`) with their values.
pub async fn redis_keys(
    path: &Path,
    text: String,
    target: String,
    table: Option<String>,
    limit: usize,
) -> Result<RedisKeys, Failure> {
    let pipeline = crate::parse(path, text).map_err(|e| Failure::from(&e))?;
    let Some(crate::TargetConfig::Redis(config)) = pipeline.spec.targets.get(&target) else {
        return Err(Failure::from(syncline_engine::Error::new(
            syncline_engine::ErrorKind::Config,
            format!("the pipeline has no Redis target named `{target}`"),
        )));
    };
    let started = std::time::Instant::now();
    let name = &pipeline.spec.name;
    let tables = syncline_redis::browse::tables(config, name)
        .await
        .map_err(|e| Failure::from(syncline_engine::Error::from(e)))?;
    let table = table.or_else(|| tables.first().map(|t| t.table.clone()));
    let keys = match &table {
        Some(t) => syncline_redis::browse::keys(config, name, t, limit)
            .await
            .map_err(|e| Failure::from(syncline_engine::Error::from(e)))?,
        None => Vec::new(),
    };
    let mut fields: Vec<String> = Vec::new();
    for k in &keys {
        if let serde_json::Value::Object(o) = &k.value {
            for f in o.keys() {
                if !fields.contains(f) {
                    fields.push(f.clone());
                }
            }
        }
    }
    let mut columns = vec![ColumnInfo {
        name: "key".into(),
        data_type: "VARCHAR".into(),
    }];
    columns.extend(fields.iter().map(|f| ColumnInfo {
        name: f.clone(),
        data_type: "JSON".into(),
    }));
    let rows = keys
        .into_iter()
        .map(|k| {
            let mut row = vec![serde_json::Value::String(k.key)];
            match &k.value {
                serde_json::Value::Object(o) => row.extend(
                    fields
                        .iter()
                        .map(|f| o.get(f).cloned().unwrap_or(serde_json::Value::Null)),
                ),
                other => row.push(other.clone()),
            }
            row
        })
        .collect();
    Ok(RedisKeys {
        tables: tables
            .into_iter()
            .map(|t| RedisTable {
                table: t.table,
                template: t.template,
                keys: t.keys,
            })
            .collect(),
        table,
        columns,
        rows,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}
