//! The target's rows read back in key order, for `syncline verify`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use duckdb::ToSql;
use syncline_duck::read::{read_expr, read_value};
use syncline_duck::types::duckdb_type;
use syncline_engine::encode;
use syncline_engine::model::{DataType, Row, TableSchema, Value};
use syncline_engine::verify::RowReader;
use syncline_engine::{Error, Result};

use crate::error::DuckDbError;
use crate::quote;
use crate::shared::{self, SharedConnection};

/// Reads one target table: `None` when the file or the table is not
/// there (it holds no rows).
pub(crate) struct TableReader {
    conn: Option<SharedConnection>,
    schema: Arc<TableSchema>,
    select: String,
    table: String,
    /// Pages of the sorted query, once started.
    pages: Option<tokio::sync::mpsc::Receiver<Result<Vec<Row>, DuckDbError>>>,
}

impl TableReader {
    /// Opens `db`'s table `schema.id.name` in DuckDB schema `db_schema`,
    /// without creating the file.
    pub(crate) fn open(
        path: &Path,
        db_schema: &str,
        schema: Arc<TableSchema>,
    ) -> Result<Self, DuckDbError> {
        let mut reader = TableReader {
            conn: None,
            select: String::new(),
            table: format!("{}.{}", quote(db_schema), quote(&schema.id.name)),
            schema,
            pages: None,
        };
        if !path.exists() {
            return Ok(reader);
        }
        let conn = shared::connect(path).map_err(|source| DuckDbError::Open {
            path: format!(
                "{} (a pipeline running in another process holds it: stop it, or verify from the studio)",
                path.display()
            ),
            source,
        })?;
        let mut stmt = conn
            .prepare(
                "SELECT column_name FROM information_schema.columns
                 WHERE table_schema = ? AND table_name = ?",
            )
            .map_err(DuckDbError::sql("reading the target table's columns"))?;
        let held: Vec<String> = stmt
            .query_map([db_schema, reader.schema.id.name.as_str()], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(DuckDbError::sql("reading the target table's columns"))?;
        drop(stmt);
        if held.is_empty() {
            return Ok(reader);
        }
        if let Some(c) = reader
            .schema
            .columns
            .iter()
            .find(|c| !held.contains(&c.name))
        {
            return Err(DuckDbError::Schema {
                table: reader.schema.id.name.clone(),
                detail: format!(
                    "the target has no column `{}` (the pipeline has not applied it yet)",
                    c.name
                ),
            });
        }
        let columns: Vec<String> = reader
            .schema
            .columns
            .iter()
            .map(|c| match &c.data_type {
                DataType::List { item } => list_expr(&quote(&c.name), item),
                other => read_expr(&c.name, other),
            })
            .collect();
        reader.select = format!("SELECT {} FROM {}", columns.join(", "), reader.table);
        reader.conn = Some(conn);
        Ok(reader)
    }

    fn key_columns(&self) -> Vec<(String, DataType)> {
        self.schema
            .key
            .iter()
            .map(|&i| {
                let c = &self.schema.columns[i];
                (quote(&c.name), c.data_type.clone())
            })
            .collect()
    }

    /// Runs `sql` off the async threads, binding `values` as text.
    async fn run(&mut self, sql: String, values: Vec<String>) -> Result<Vec<Row>> {
        let Some(conn) = self.conn.take() else {
            return Ok(Vec::new());
        };
        let schema = self.schema.clone();
        let (conn, rows) = tokio::task::spawn_blocking(move || {
            let rows = TableReader::query(&conn, &schema, &sql, &values);
            (conn, rows)
        })
        .await
        .map_err(|_| Error::from(DuckDbError::Worker))?;
        self.conn = Some(conn);
        Ok(rows?)
    }

    /// Runs a select, binding `values` as text.
    fn query(
        conn: &SharedConnection,
        schema: &TableSchema,
        sql: &str,
        values: &[String],
    ) -> Result<Vec<Row>, DuckDbError> {
        let mut stmt = conn
            .prepare(sql)
            .map_err(DuckDbError::sql("reading the target table"))?;
        let params: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
        let mut rows = stmt
            .query(params.as_slice())
            .map_err(DuckDbError::sql("reading the target table"))?;
        let mut out = Vec::new();
        while let Some(r) = rows
            .next()
            .map_err(DuckDbError::sql("reading the target table"))?
        {
            out.push(TableReader::row(r, schema)?);
        }
        Ok(out)
    }

    /// One result row as a row of `schema`.
    fn row(r: &duckdb::Row<'_>, schema: &TableSchema) -> Result<Row, DuckDbError> {
        let mut row = Vec::with_capacity(schema.columns.len());
        for (i, c) in schema.columns.iter().enumerate() {
            let v = r
                .get_ref(i)
                .map_err(DuckDbError::sql("reading the target table"))?;
            let value = match (&c.data_type, v) {
                (_, duckdb::types::ValueRef::Null) => Ok(Value::Null),
                (DataType::List { item }, duckdb::types::ValueRef::Text(text)) => {
                    parse_list(&String::from_utf8_lossy(text), item)
                }
                (t, v) => read_value(v, t),
            };
            row.push(value.map_err(|detail| DuckDbError::Value {
                column: c.name.clone(),
                detail,
            })?);
        }
        Ok(row)
    }
}

/// Runs `sql` and sends its rows on `tx`, `page` at a time, until done or
/// the reader is gone.
fn stream_rows(
    conn: &duckdb::Connection,
    schema: &TableSchema,
    sql: &str,
    page: usize,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<Row>, DuckDbError>>,
) {
    let read = || -> Result<(), DuckDbError> {
        let mut stmt = conn
            .prepare(sql)
            .map_err(DuckDbError::sql("reading the target table"))?;
        let mut rows = stmt
            .query([])
            .map_err(DuckDbError::sql("reading the target table"))?;
        let mut out = Vec::with_capacity(page);
        while let Some(r) = rows
            .next()
            .map_err(DuckDbError::sql("reading the target table"))?
        {
            out.push(TableReader::row(r, schema)?);
            if out.len() == page {
                let full = std::mem::replace(&mut out, Vec::with_capacity(page));
                if tx.blocking_send(Ok(full)).is_err() {
                    return Ok(());
                }
            }
        }
        if !out.is_empty() {
            let _ = tx.blocking_send(Ok(out));
        }
        Ok(())
    };
    if let Err(e) = read() {
        let _ = tx.blocking_send(Err(e));
    }
}

/// A list column as JSON whose items read back exactly: instants as
/// microseconds, bytes as hex, decimals and the like as their text.
fn list_expr(col: &str, item: &DataType) -> String {
    let x = match item {
        DataType::Timestamp | DataType::TimestampTz => "epoch_us(x)",
        DataType::Bytes => "hex(x)",
        DataType::Decimal { .. }
        | DataType::Uuid
        | DataType::Date
        | DataType::Time
        | DataType::Json
        | DataType::Interval => "CAST(x AS VARCHAR)",
        _ => "x",
    };
    format!("CAST(to_json(list_transform({col}, x -> {x})) AS VARCHAR)")
}

/// A list read through [`list_expr`].
fn parse_list(text: &str, item: &DataType) -> Result<Value, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("list {text}: {e}"))?;
    let serde_json::Value::Array(items) = doc else {
        return Err(format!("{text} is not a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    for i in &items {
        out.push(match (item, i) {
            (_, serde_json::Value::Null) => Value::Null,
            (DataType::Timestamp, serde_json::Value::Number(n)) => {
                Value::Timestamp(n.as_i64().ok_or_else(|| format!("{n} is not an instant"))?)
            }
            (DataType::TimestampTz, serde_json::Value::Number(n)) => {
                Value::TimestampTz(n.as_i64().ok_or_else(|| format!("{n} is not an instant"))?)
            }
            (t, serde_json::Value::String(s)) => encode::parse_text(t, s)?,
            (t, other) => encode::parse_json(t, other)?,
        });
    }
    Ok(Value::List(out))
}

/// A parameter standing for a key value of type `t`, bound as its text.
fn param(t: &DataType) -> String {
    match t {
        DataType::Bytes => "unhex(?)".into(),
        other => format!("CAST(? AS {})", duckdb_type(other)),
    }
}

fn texts(key: &[Value]) -> Result<Vec<String>, DuckDbError> {
    key.iter()
        .map(|v| {
            encode::text(v).map_err(|detail| DuckDbError::Value {
                column: "key".into(),
                detail,
            })
        })
        .collect()
}

#[async_trait]
impl RowReader for TableReader {
    /// The first call starts one sorted query on a thread of its own (a
    /// cloned connection), which sends the rows on a page at a time: one
    /// sort of the table, not one per page.
    async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
        if self.pages.is_none() {
            let Some(conn) = &self.conn else {
                return Ok(Vec::new());
            };
            let conn = conn
                .try_clone()
                .map_err(DuckDbError::sql("opening a reading connection"))?;
            let order: Vec<String> = self.key_columns().into_iter().map(|(c, _)| c).collect();
            let sql = format!("{} ORDER BY {}", self.select, order.join(", "));
            let schema = self.schema.clone();
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            std::thread::Builder::new()
                .name("verify-duckdb".into())
                .spawn(move || stream_rows(&conn, &schema, &sql, limit.max(1), &tx))
                .map_err(|e| Error::internal(format!("starting a reader thread: {e}")))?;
            self.pages = Some(rx);
        }
        let Some(pages) = &mut self.pages else {
            return Ok(Vec::new());
        };
        match pages.recv().await {
            Some(page) => Ok(page?),
            None => Ok(Vec::new()),
        }
    }

    async fn rows(&mut self, wanted: &[Vec<Value>]) -> Result<Vec<Row>> {
        if self.conn.is_none() || wanted.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.key_columns();
        let mut terms = Vec::new();
        let mut values = Vec::new();
        for key in wanted {
            let text = texts(key)?;
            let term: Vec<String> = keys
                .iter()
                .map(|(col, t)| format!("{col} = {}", param(t)))
                .collect();
            terms.push(format!("({})", term.join(" AND ")));
            values.extend(text);
        }
        let sql = format!("{} WHERE {}", self.select, terms.join(" OR "));
        self.run(sql, values).await
    }
}
