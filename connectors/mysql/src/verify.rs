//! A table's rows read in key order for `syncline verify`: keyset pages of
//! `SELECT ... ORDER BY key LIMIT n`, text keys in the byte order of their
//! UTF-8 (as the other systems compare them, without MySQL's padding or
//! case folding). An integer key is read by its index; a text key is
//! compared through a conversion, so each page sorts the rows past the
//! last key.

use async_trait::async_trait;
use futures_util::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use syncline_engine::encode;
use syncline_engine::model::{Row, Value};
use syncline_engine::verify::{Bucket, RowReader, Span, bucket, checksum_key, parse_bounds};
use syncline_engine::{Error, ErrorKind, Result};

use crate::error::MyError;
use crate::introspect::{MyType, TableInfo, quote};
use crate::snapshot::{decode_row, select_all};

pub(crate) struct TableReader {
    conn: Conn,
    select: String,
    /// `database`.`table`.
    from: String,
    info: TableInfo,
    last: Option<Vec<Value>>,
}

impl TableReader {
    pub(crate) fn new(conn: Conn, database: &str, info: TableInfo) -> Self {
        TableReader {
            conn,
            select: select_all(database, &info),
            from: format!("{}.{}", quote(database), quote(&info.name)),
            info,
            last: None,
        }
    }

    fn table(&self) -> &str {
        &self.from
    }

    /// Each key column as compared, and a parameter of its type.
    fn key_terms(&self) -> Vec<(String, String)> {
        self.info
            .schema
            .key
            .iter()
            .map(|&k| {
                let c = &self.info.columns[k];
                let col = quote(&c.name);
                match &c.ty {
                    MyType::Text | MyType::Latin1 | MyType::Enum(_) | MyType::Set(_) => (
                        format!("CAST(CONVERT({col} USING utf8mb4) AS BINARY)"),
                        "CAST(? AS BINARY)".to_owned(),
                    ),
                    MyType::Decimal { .. } => (col, "CAST(? AS DECIMAL(65,30))".to_owned()),
                    MyType::Int { unsigned: true, .. } => (col, "CAST(? AS UNSIGNED)".to_owned()),
                    MyType::Date => (col, "CAST(? AS DATE)".to_owned()),
                    MyType::DateTime | MyType::Timestamp => {
                        (col, "CAST(? AS DATETIME(6))".to_owned())
                    }
                    MyType::Time => (col, "CAST(? AS TIME(6))".to_owned()),
                    _ => (col, "?".to_owned()),
                }
            })
            .collect()
    }

    async fn query(&mut self, sql: String, params: Vec<mysql_async::Value>) -> Result<Vec<Row>> {
        let what = format!("reading table {}", self.info.name);
        let mut result = self
            .conn
            .exec_iter(sql, params)
            .await
            .map_err(MyError::query(what.clone()))?;
        let mut rows = Vec::new();
        if let Some(mut stream) = result
            .stream::<mysql_async::Row>()
            .await
            .map_err(MyError::query(what.clone()))?
        {
            while let Some(row) = stream.next().await {
                let row = row.map_err(MyError::query(what.clone()))?;
                let row = decode_row(&self.info.columns, row.unwrap()).map_err(|(why, raw)| {
                    Error::new(
                        ErrorKind::Schema,
                        format!(
                            "table {}: a row cannot be read ({why}): {raw}",
                            self.info.name
                        ),
                    )
                })?;
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

/// A key value as a parameter: integers as integers, times as the server's
/// text (the session's zone is UTC), everything else as its text.
fn param(v: &Value) -> Result<mysql_async::Value> {
    let text = |s: String| mysql_async::Value::Bytes(s.into_bytes());
    Ok(match v {
        Value::Int(i) => mysql_async::Value::Int(*i),
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
        Value::Timestamp(us) | Value::TimestampTz(us) => text(
            chrono::DateTime::from_timestamp_micros(*us)
                .ok_or_else(|| Error::internal(format!("timestamp {us} out of range")))?
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string(),
        ),
        // A TIME: hours past 24 and a sign, as MySQL writes it.
        Value::Interval {
            months: 0,
            days,
            micros,
        } => {
            let total = i128::from(*days) * 86_400_000_000 + i128::from(*micros);
            let sign = if total < 0 { "-" } else { "" };
            let abs = total.unsigned_abs();
            let secs = abs / 1_000_000;
            text(format!(
                "{sign}{}:{:02}:{:02}.{:06}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                abs % 1_000_000
            ))
        }
        other => text(encode::text(other).map_err(Error::internal)?),
    })
}

/// The text a column adds to a row's checksum text, as Postgres and
/// DuckDB write it for the column's engine type (see
/// [`syncline_engine::verify::row_text`]); `None` for a type without one
/// (doubles print differently here, times are durations).
fn checksum_text(col: &str, ty: &MyType) -> Option<String> {
    Some(match ty {
        MyType::Int { .. } | MyType::Year | MyType::Decimal { .. } => {
            format!("CAST({col} AS CHAR)")
        }
        MyType::Text | MyType::Latin1 | MyType::Enum(_) | MyType::Set(_) | MyType::Json => {
            let text = format!("CONVERT({col} USING utf8mb4)");
            format!("CONCAT(OCTET_LENGTH({text}), ':', {text})")
        }
        MyType::Bytes | MyType::FixedBytes(_) => format!("LOWER(HEX({col}))"),
        MyType::Bit(1) => {
            format!("CASE WHEN {col} = b'1' THEN 'true' WHEN {col} = b'0' THEN 'false' END")
        }
        MyType::Date => format!("CAST(DATEDIFF({col}, '1970-01-01') AS CHAR)"),
        // The session's zone is UTC, so a TIMESTAMP reads as its instant.
        MyType::DateTime | MyType::Timestamp => {
            format!("CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {col}) AS CHAR)")
        }
        _ => return None,
    })
}

impl TableReader {
    /// The one integer key column, quoted, when the table can be
    /// checksummed.
    fn checksum_key(&self) -> Option<String> {
        let columns = &self.info.columns;
        let k = checksum_key(&self.info.schema, |i| {
            checksum_text(&quote(&columns[i].name), &columns[i].ty).is_some()
        })?;
        Some(quote(&columns[k].name))
    }

    /// The first `width` columns of every row of `sql`, as text.
    async fn texts(&mut self, sql: String) -> Result<Vec<Vec<Option<String>>>> {
        let rows: Vec<mysql_async::Row> = self
            .conn
            .query(sql)
            .await
            .map_err(MyError::query("computing checksums"))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => {
                            Some(String::from_utf8_lossy(&b).into_owned())
                        }
                        mysql_async::Value::Int(i) => Some(i.to_string()),
                        mysql_async::Value::UInt(u) => Some(u.to_string()),
                        other => Some(other.as_sql(true).trim_matches('\'').to_owned()),
                    })
                    .collect()
            })
            .collect())
    }
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
            "SELECT CAST(MIN({k}) AS SIGNED), CAST(MAX({k}) AS SIGNED) FROM {}",
            self.table()
        );
        let rows = self.texts(sql).await?;
        parse_bounds(rows.first().map_or(&[][..], Vec::as_slice))
    }

    async fn checksums(&mut self, span: Span, step: i128) -> Result<Vec<Bucket>> {
        let Some(k) = self.checksum_key() else {
            return Ok(Vec::new());
        };
        let parts: Vec<String> = self
            .info
            .columns
            .iter()
            .filter_map(|c| checksum_text(&quote(&c.name), &c.ty))
            .map(|t| format!("COALESCE({t}, CHAR(1 USING utf8mb4))"))
            .collect();
        let text = format!("CONCAT_WS(CHAR(30 USING utf8mb4), {})", parts.join(", "));
        let sql = format!(
            "SELECT CAST({} AS CHAR), CAST(COUNT(*) AS CHAR),
                    CAST(COALESCE(SUM(CAST(CONV(SUBSTRING(MD5({text}), 1, 15), 16, 10) AS UNSIGNED)), 0) AS CHAR)
             FROM {} WHERE {} GROUP BY 1",
            bucket(
                &k,
                span,
                step,
                "SIGNED",
                "DIV",
                "CAST((CAST({k} AS DECIMAL(40,0)) - {lo}) DIV {step} AS SIGNED)"
            ),
            self.table(),
            span.condition(&k),
        );
        self.texts(sql)
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
        self.query(sql, Vec::new()).await
    }

    async fn page(&mut self, limit: usize) -> Result<Vec<Row>> {
        let terms = self.key_terms();
        let mut params = Vec::new();
        let filter = match &self.last {
            None => "TRUE".to_owned(),
            Some(last) => {
                let mut alternatives = Vec::new();
                for i in 0..terms.len() {
                    let mut term = Vec::new();
                    for (j, (col, p)) in terms.iter().enumerate().take(i + 1) {
                        let op = if j == i { ">" } else { "=" };
                        term.push(format!("{col} {op} {p}"));
                        params.push(param(&last[j])?);
                    }
                    alternatives.push(format!("({})", term.join(" AND ")));
                }
                alternatives.join(" OR ")
            }
        };
        let order: Vec<&str> = terms.iter().map(|(c, _)| c.as_str()).collect();
        let sql = format!(
            "{} WHERE {filter} ORDER BY {} LIMIT {limit}",
            self.select,
            order.join(", ")
        );
        let rows = self.query(sql, params).await?;
        if let Some(row) = rows.last() {
            self.last = Some(
                self.info
                    .schema
                    .key
                    .iter()
                    .map(|&i| row[i].clone())
                    .collect(),
            );
        }
        Ok(rows)
    }

    async fn rows(&mut self, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let terms = self.key_terms();
        let mut params = Vec::new();
        let mut alternatives = Vec::new();
        for key in keys {
            let term: Vec<String> = terms.iter().map(|(c, p)| format!("{c} = {p}")).collect();
            alternatives.push(format!("({})", term.join(" AND ")));
            for v in key {
                params.push(param(v)?);
            }
        }
        let sql = format!("{} WHERE {}", self.select, alternatives.join(" OR "));
        self.query(sql, params).await
    }
}
