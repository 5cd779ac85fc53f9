//! Tables read in key order for `syncline verify`: a source's tables and a
//! target's, through one reader (binary `COPY` of a keyset page, text keys
//! in byte order, `COLLATE "C"`).

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgConnection;
use syncline_engine::Result;
use syncline_engine::encode;
use syncline_engine::model::{DataType, Row, TableSchema, Value};
use syncline_engine::verify::{Bucket, RowReader, Span, bucket, checksum_key, row_text};

use crate::error::PgError;
use crate::introspect::{self, TableInfo, literal, quote};
use crate::source::{PgTableConfig, snapshot};

/// One table's reader: `info` describes the columns of `info.schema`, in
/// its order.
pub(crate) struct TableReader {
    conn: PgConnection,
    /// `None`: the table is not there (a target that holds nothing yet).
    info: Option<TableInfo>,
    /// Each key column's Postgres type (`format_type`).
    key_types: Vec<String>,
    last: Option<Vec<Value>>,
    /// Postgres 14 or later: `extract(epoch ...)` is exact (earlier, a
    /// double), so rows can be checksummed.
    exact_epoch: bool,
}

impl TableReader {
    /// A reader of a source table described by `info`.
    pub(crate) async fn new(mut conn: PgConnection, info: TableInfo) -> Result<Self, PgError> {
        let key_types = key_types(&mut conn, &info).await?;
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
            .fetch_one(&mut conn)
            .await
            .map_err(PgError::query("reading the server version"))?;
        Ok(TableReader {
            conn,
            info: Some(info),
            key_types,
            last: None,
            exact_epoch: version >= 140_000,
        })
    }

    /// A reader of target table `pg_schema.(schema.id.name)` as `schema`
    /// describes the table: its columns found by name.
    pub(crate) async fn target(
        mut conn: PgConnection,
        pg_schema: &str,
        schema: Arc<TableSchema>,
    ) -> Result<Self, PgError> {
        let name = &schema.id.name;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))",
        )
        .bind(pg_schema)
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(PgError::query("looking up the target table"))?;
        if !exists {
            return Ok(TableReader {
                conn,
                info: None,
                key_types: Vec::new(),
                last: None,
                exact_epoch: false,
            });
        }
        let config = PgTableConfig {
            name: format!("{pg_schema}.{name}"),
            key: schema.key_names().into_iter().map(str::to_owned).collect(),
            mode: Default::default(),
            cursor: None,
            key_scan_secs: None,
        };
        let (held, unsupported) = introspect::describe(&mut conn, "target", &config).await?;
        let mut decoders = Vec::new();
        for c in &schema.columns {
            if let Some(u) = unsupported.iter().find(|u| u.column == c.name) {
                return Err(PgError::Table {
                    table: held.wire_name(),
                    detail: format!(
                        "column `{}` has type {}, which Syncline cannot read",
                        c.name, u.type_name
                    ),
                });
            }
            let Some(i) = held.schema.column_index(&c.name) else {
                return Err(PgError::Table {
                    table: held.wire_name(),
                    detail: format!(
                        "the target has no column `{}` (the pipeline has not applied it yet)",
                        c.name
                    ),
                });
            };
            decoders.push(held.decoders[i].clone());
        }
        let info = TableInfo {
            schema,
            decoders,
            ..held
        };
        TableReader::new(conn, info).await
    }
}

/// The Postgres types of `info`'s key columns.
async fn key_types(conn: &mut PgConnection, info: &TableInfo) -> Result<Vec<String>, PgError> {
    let mut out = Vec::new();
    for name in info.schema.key_names() {
        let ty: Option<String> = sqlx::query_scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = $1::int8::oid AND attname = $2 AND NOT attisdropped",
        )
        .bind(i64::from(info.oid))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(PgError::query("reading the key's types"))?;
        out.push(ty.ok_or_else(|| PgError::Table {
            table: info.wire_name(),
            detail: format!("key column `{name}` is gone"),
        })?);
    }
    Ok(out)
}

/// The key columns as compared: a key the engine reads as text (text, and
/// also enums, `numeric` without a precision the engine holds, `timetz`)
/// as its text in byte order.
fn ordered(info: &TableInfo) -> Vec<String> {
    info.schema
        .key
        .iter()
        .map(|&k| {
            let c = &info.schema.columns[k];
            if c.data_type == DataType::Text {
                format!("CAST({} AS text) COLLATE \"C\"", quote(&c.name))
            } else {
                quote(&c.name)
            }
        })
        .collect()
}

/// `key` as a row of SQL literals: of the key columns' types, or, with
/// `as_ordered`, as [`ordered`] compares them.
fn literals(
    info: &TableInfo,
    types: &[String],
    key: &[Value],
    as_ordered: bool,
) -> Result<String, PgError> {
    let mut out = Vec::new();
    for ((&k, ty), v) in info.schema.key.iter().zip(types).zip(key) {
        let c = &info.schema.columns[k];
        let text = encode::text(v).map_err(|detail| PgError::Value {
            column: c.name.clone(),
            detail,
        })?;
        out.push(match v {
            Value::Bytes(_) => format!("decode({}, 'hex')", literal(&text)),
            _ if as_ordered && c.data_type == DataType::Text => {
                format!("{}::text COLLATE \"C\"", literal(&text))
            }
            _ => format!("{}::{ty}", literal(&text)),
        });
    }
    Ok(format!("({})", out.join(", ")))
}

/// Rows as the schema's types: a decimal the target holds in a column the
/// engine reads as text (`numeric` wider than 38 digits) is that decimal.
fn conform(info: &TableInfo, mut rows: Vec<Row>) -> Vec<Row> {
    for row in &mut rows {
        for (c, v) in info.schema.columns.iter().zip(row.iter_mut()) {
            if matches!(c.data_type, DataType::Decimal { .. })
                && let Value::Text(t) = v
            {
                *v = Value::Decimal(std::mem::take(t));
            }
        }
    }
    rows
}

/// The text a column adds to a row's checksum text
/// ([`syncline_engine::verify::row_text`]); `None` for a type without one.
fn checksum_text(col: &str, t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Boolean
        | DataType::Int32
        | DataType::Int64
        | DataType::Float64
        | DataType::Decimal { .. }
        | DataType::Uuid => format!("{col}::text"),
        // Text may hold the separators: its length in bytes goes first.
        DataType::Text | DataType::Json => {
            format!("octet_length({col}::text)::text || ':' || {col}::text")
        }
        DataType::Bytes => format!("encode({col}, 'hex')"),
        DataType::Date => format!(
            "CASE WHEN isfinite({col}) THEN ({col} - date '1970-01-01')::text ELSE {col}::text END"
        ),
        DataType::Timestamp | DataType::TimestampTz => format!(
            "CASE WHEN isfinite({col}) THEN (extract(epoch FROM {col}) * 1000000)::bigint::text ELSE {col}::text END"
        ),
        _ => return None,
    })
}

impl TableReader {
    /// The one integer key column, quoted, when the table can be
    /// checksummed.
    fn checksum_key(&self) -> Option<String> {
        let info = self.info.as_ref().filter(|_| self.exact_epoch)?;
        let columns = &info.schema.columns;
        let k = checksum_key(&info.schema, |i| {
            checksum_text(&quote(&columns[i].name), &columns[i].data_type).is_some()
        })?;
        Some(quote(&columns[k].name))
    }
}

#[async_trait]
impl RowReader for TableReader {
    fn sums(&self) -> bool {
        self.checksum_key().is_some()
    }

    async fn key_bounds(&mut self) -> Result<Option<(i64, i64)>> {
        let (Some(k), Some(info)) = (self.checksum_key(), &self.info) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT min({k})::int8, max({k})::int8 FROM ONLY {}",
            info.quoted()
        );
        let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut self.conn)
            .await
            .map_err(PgError::query("reading the key's range"))?;
        Ok(lo.zip(hi))
    }

    async fn checksums(&mut self, span: Span, step: i128) -> Result<Vec<Bucket>> {
        let (Some(k), Some(info)) = (self.checksum_key(), &self.info) else {
            return Ok(Vec::new());
        };
        let texts: Vec<String> = info
            .schema
            .columns
            .iter()
            .filter_map(|c| checksum_text(&quote(&c.name), &c.data_type))
            .collect();
        let hash = format!(
            "count(*), coalesce(sum(('x' || substr(md5({}), 1, 15))::bit(60)::bigint), 0)::text",
            row_text(&texts)
        );
        let within = span.condition(&k);
        let runs = (span.hi - i128::from(span.lo) + step - 1) / step.max(1);
        let sql = if runs <= 1 {
            format!(
                "SELECT 0::int8, {hash} FROM ONLY {} WHERE {within}",
                info.quoted()
            )
        } else {
            // Grouped through a join with the runs' numbers, so the planner
            // knows how few groups there are and aggregates in parallel.
            let bucket = bucket(
                &k,
                span,
                step,
                "int8",
                "/",
                "div({k}::numeric - {lo}, {step})::int8",
            );
            format!(
                "SELECT _syncline_runs._syncline_run::int8, {hash} FROM ONLY {}
                 JOIN generate_series(0, {}) AS _syncline_runs(_syncline_run) ON {bucket} = _syncline_runs._syncline_run
                 WHERE {within} GROUP BY _syncline_runs._syncline_run",
                info.quoted(),
                runs - 1
            )
        };
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut self.conn)
            .await
            .map_err(PgError::query("computing checksums"))?;
        rows.into_iter()
            .map(|(index, rows, sum)| {
                Bucket::parse(&[Some(index.to_string()), Some(rows.to_string()), Some(sum)])
            })
            .collect()
    }

    async fn span_rows(&mut self, span: Span) -> Result<Vec<Row>> {
        let (Some(k), Some(info)) = (self.checksum_key(), &self.info) else {
            return Ok(Vec::new());
        };
        let filter = span.condition(&k);
        let rows = snapshot::read_rows(&mut self.conn, info, &filter, &k).await?;
        Ok(conform(info, rows))
    }

    async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
        let Some(info) = &self.info else {
            return Ok(Vec::new());
        };
        let ordered = ordered(info);
        let filter = match &self.last {
            None => "true".to_owned(),
            Some(last) => format!(
                "({}) > {}",
                ordered.join(", "),
                literals(info, &self.key_types, last, true)?
            ),
        };
        let rows =
            snapshot::read_page(&mut self.conn, info, &filter, &ordered.join(", "), limit).await?;
        let rows = conform(info, rows);
        if let Some(row) = rows.last() {
            self.last = Some(info.schema.key.iter().map(|&i| row[i].clone()).collect());
        }
        Ok(rows)
    }

    async fn rows(&mut self, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let Some(info) = &self.info else {
            return Ok(Vec::new());
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let plain: Vec<String> = info.schema.key_names().into_iter().map(quote).collect();
        let mut wanted = Vec::new();
        for k in keys {
            wanted.push(literals(info, &self.key_types, k, false)?);
        }
        let filter = format!("({}) IN ({})", plain.join(", "), wanted.join(", "));
        let rows =
            snapshot::read_rows(&mut self.conn, info, &filter, &ordered(info).join(", ")).await?;
        Ok(conform(info, rows))
    }
}
