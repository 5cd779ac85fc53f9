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
use syncline_engine::verify::RowReader;
use syncline_engine::{Error, ErrorKind, Result};

use crate::error::MyError;
use crate::introspect::{MyType, TableInfo, quote};
use crate::snapshot::{decode_row, select_all};

pub(crate) struct TableReader {
    conn: Conn,
    select: String,
    info: TableInfo,
    last: Option<Vec<Value>>,
}

impl TableReader {
    pub(crate) fn new(conn: Conn, database: &str, info: TableInfo) -> Self {
        TableReader {
            conn,
            select: select_all(database, &info),
            info,
            last: None,
        }
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

#[async_trait]
impl RowReader for TableReader {
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
