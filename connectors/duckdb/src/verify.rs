//! The target's rows read back in key order, for `syncline verify`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use duckdb::ToSql;
use syncline_duck::read::{read_expr, read_value};
use syncline_duck::types::duckdb_type;
use syncline_engine::encode;
use syncline_engine::model::{DataType, Row, TableSchema, Value};
use syncline_engine::verify::{
    Bucket, RowReader, Span, bucket, checksum_key, parse_bounds, row_text,
};
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

    /// The one integer key column, quoted, when the table can be
    /// checksummed (it is there, and every column has a checksum text).
    fn checksum_key(&self) -> Option<String> {
        self.conn.as_ref()?;
        let columns = &self.schema.columns;
        let k = checksum_key(&self.schema, |i| {
            checksum_text(&quote(&columns[i].name), &columns[i].data_type).is_some()
        })?;
        Some(quote(&columns[k].name))
    }

    /// The rows of `sql` (`width` columns, each cast to VARCHAR in the
    /// SQL), off the async threads.
    async fn all_texts(&mut self, sql: String, width: usize) -> Result<Vec<Vec<Option<String>>>> {
        let Some(conn) = self.conn.take() else {
            return Ok(Vec::new());
        };
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let read = || -> Result<Vec<Vec<Option<String>>>, DuckDbError> {
                let what = DuckDbError::sql;
                let mut stmt = conn.prepare(&sql).map_err(what("computing checksums"))?;
                let mut rows = stmt.query([]).map_err(what("computing checksums"))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(what("computing checksums"))? {
                    out.push(
                        (0..width)
                            .map(|i| row.get::<_, Option<String>>(i))
                            .collect::<Result<_, _>>()
                            .map_err(what("computing checksums"))?,
                    );
                }
                Ok(out)
            };
            let out = read();
            (conn, out)
        })
        .await
        .map_err(|_| Error::from(DuckDbError::Worker))?;
        self.conn = Some(conn);
        Ok(out?)
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

/// The text a column adds to a row's checksum text
/// ([`syncline_engine::verify::row_text`]), as Postgres writes it too;
/// `None` for a type without one.
fn checksum_text(col: &str, t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Boolean
        | DataType::Int32
        | DataType::Int64
        | DataType::Decimal { .. }
        | DataType::Uuid => format!("CAST({col} AS VARCHAR)"),
        // Text may hold the separators: its length in bytes goes first.
        DataType::Text | DataType::Json => format!(
            "CAST(strlen(CAST({col} AS VARCHAR)) AS VARCHAR) || ':' || CAST({col} AS VARCHAR)"
        ),
        // Integral doubles as Postgres writes them: without a fraction.
        DataType::Float64 => format!(
            "CASE WHEN {col} = trunc({col}) AND abs({col}) < 1e15 THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END"
        ),
        DataType::Bytes => format!("lower(hex({col}))"),
        DataType::Date => format!(
            "CASE WHEN isfinite({col}) THEN CAST({col} - DATE '1970-01-01' AS VARCHAR) ELSE CAST({col} AS VARCHAR) END"
        ),
        DataType::Timestamp | DataType::TimestampTz => format!(
            "CASE WHEN isfinite({col}) THEN CAST(epoch_us({col}) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END"
        ),
        _ => return None,
    })
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
    fn sums(&self) -> bool {
        self.checksum_key().is_some()
    }

    async fn key_bounds(&mut self) -> Result<Option<(i64, i64)>> {
        let Some(k) = self.checksum_key() else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT CAST(CAST(min({k}) AS BIGINT) AS VARCHAR), CAST(CAST(max({k}) AS BIGINT) AS VARCHAR) FROM {}",
            self.table
        );
        let got = self.all_texts(sql, 2).await?;
        parse_bounds(got.first().map_or(&[][..], Vec::as_slice))
    }

    async fn checksums(&mut self, span: Span, step: i128) -> Result<Vec<Bucket>> {
        let Some(k) = self.checksum_key() else {
            return Ok(Vec::new());
        };
        let texts: Vec<String> = self
            .schema
            .columns
            .iter()
            .filter_map(|c| checksum_text(&quote(&c.name), &c.data_type))
            .collect();
        let sql = format!(
            "SELECT CAST({} AS VARCHAR), CAST(count(*) AS VARCHAR),
                    CAST(coalesce(sum(CAST('0x' || substr(md5({}), 1, 15) AS BIGINT)), 0) AS VARCHAR)
             FROM {} WHERE {} GROUP BY 1",
            bucket(
                &k,
                span,
                step,
                "BIGINT",
                "//",
                "(CAST({k} AS HUGEINT) - {lo}) // {step}"
            ),
            row_text(&texts),
            self.table,
            span.condition(&k),
        );
        self.all_texts(sql, 3)
            .await?
            .iter()
            .map(|row| Bucket::parse(row))
            .collect()
    }

    async fn span_rows(&mut self, span: Span) -> Result<Vec<Row>> {
        let Some(k) = self.checksum_key() else {
            return Ok(Vec::new());
        };
        let sql = format!("{} WHERE {} ORDER BY {k}", self.select, span.condition(&k));
        self.run(sql, Vec::new()).await
    }

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
