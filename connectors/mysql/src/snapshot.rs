//! Reading tables with `SELECT` in the binary result protocol: rows decoded
//! by the column's source type (see [`crate::values`]), bad ones set aside
//! with their reason.

use futures_util::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use syncline_engine::model::{DeadLetter, DeadLetterStage, Row, Value};
use syncline_engine::{Error, Result};

use crate::error::MyError;
use crate::introspect::{ColumnInfo, MyType, TableInfo, quote};
use crate::values::decode;

/// `values`, one row of `columns` as the server sent it, decoded column by
/// column with `decode_one` into an engine row; or, for a value that cannot
/// be one, the reason (naming the column) and the row as read (the columns
/// before it as decoded, the rest as received), made only then.
pub fn decode_values<V: std::fmt::Debug>(
    columns: &[ColumnInfo],
    values: Vec<V>,
    decode_one: impl Fn(&MyType, V) -> std::result::Result<Value, String>,
) -> std::result::Result<Row, (String, String)> {
    if values.len() != columns.len() {
        return Err((
            format!(
                "the row has {} values for {} columns",
                values.len(),
                columns.len()
            ),
            format!("{values:?}"),
        ));
    }
    let mut out = Vec::with_capacity(columns.len());
    let mut rest = values.into_iter();
    for (c, v) in columns.iter().zip(rest.by_ref()) {
        match decode_one(&c.ty, v) {
            Ok(value) => out.push(value),
            Err(why) => {
                let mut fields: Vec<String> = columns
                    .iter()
                    .zip(&out)
                    .map(|(c, value)| format!("{}: {value:?}", c.name))
                    .collect();
                fields.push(format!("{}: (unreadable)", c.name));
                fields.extend(
                    columns[out.len() + 1..]
                        .iter()
                        .zip(rest)
                        .map(|(c, v)| format!("{}: {v:?}", c.name)),
                );
                return Err((
                    format!("column `{}`: {why}", c.name),
                    format!("{{{}}}", fields.join(", ")),
                ));
            }
        }
    }
    Ok(out)
}

/// `values`, one row of `columns` from a `SELECT`, as an engine row (see
/// [`decode_values`]).
pub fn decode_row(
    columns: &[ColumnInfo],
    values: Vec<mysql_async::Value>,
) -> std::result::Result<Row, (String, String)> {
    decode_values(columns, values, decode)
}

/// A row that could not be read, as a dead letter of `info`'s table.
pub fn dead_letter(info: &TableInfo, origin: String, raw: String, reason: String) -> DeadLetter {
    DeadLetter {
        table: info.schema.id.clone(),
        origin,
        line: None,
        raw,
        reason,
        stage: DeadLetterStage::Read,
        kept: None,
    }
}

/// The `SELECT` that reads every row of `info`'s table.
pub fn select_all(database: &str, info: &TableInfo) -> String {
    format!(
        "SELECT {} FROM {}.{}",
        info.select_list(),
        quote(database),
        quote(&info.name)
    )
}

/// A table estimated to hold more than this many times a sample's rows is
/// sampled without reading it whole.
const SEEK_SAMPLE_FROM: u64 = 4;
/// The most rows a sample draws by index seeks (one statement, a seek for
/// each of twice as many points).
const MAX_SEEKS: usize = 1_000;

/// Rows of `info` for a preview: all of them when `limit` is `None`,
/// otherwise `limit` rows picked by `seed`. Rows that cannot be read are
/// left out (a preview shows what can be read; a run sets them aside).
///
/// A large table whose key starts with an integer is sampled by index
/// seeks (the first row at or after random points between the key's
/// lowest and highest value), not read whole; another large table is read
/// until a random share of its rows fills the sample; a small one is
/// shuffled whole.
pub async fn sample_rows(
    conn: &mut Conn,
    info: &TableInfo,
    limit: Option<usize>,
    seed: u64,
) -> Result<Vec<Row>> {
    let database: Option<String> = conn
        .query_first("SELECT DATABASE()")
        .await
        .map_err(MyError::query("reading the database name"))?;
    let database = database.unwrap_or_default();
    let sql = match limit {
        None => select_all(&database, info),
        Some(n) => sample_statement(conn, &database, info, n, seed).await?,
    };
    let mut result = conn
        .exec_iter(sql, ())
        .await
        .map_err(MyError::query(format!("sampling table {}", info.name)))?;
    let mut rows = Vec::new();
    if let Some(mut stream) = result
        .stream::<mysql_async::Row>()
        .await
        .map_err(MyError::query(format!("sampling table {}", info.name)))?
    {
        while let Some(row) = stream.next().await {
            let row = row.map_err(MyError::query(format!("sampling table {}", info.name)))?;
            if let Ok(r) = decode_row(&info.columns, row.unwrap()) {
                rows.push(r);
            }
        }
    }
    Ok(rows)
}

/// The statement that draws a sample of `n` rows of `info` (see
/// [`sample_rows`]).
async fn sample_statement(
    conn: &mut Conn,
    database: &str,
    info: &TableInfo,
    n: usize,
    seed: u64,
) -> Result<String> {
    let all = select_all(database, info);
    let estimate: Option<u64> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, &info.name),
        )
        .await
        .map_err(MyError::query(format!("estimating the rows of table {}", info.name)))?
        .flatten();
    let wanted = u64::try_from(n).unwrap_or(u64::MAX);
    let estimate = estimate.unwrap_or(0);
    if estimate <= wanted.saturating_mul(SEEK_SAMPLE_FROM) {
        return Ok(format!(
            "{all} ORDER BY RAND({}) LIMIT {n}",
            seed % (1 << 31)
        ));
    }
    let key = info
        .schema
        .key
        .first()
        .and_then(|&i| info.columns.get(i))
        .filter(|c| matches!(c.ty, MyType::Int { .. }) && n <= MAX_SEEKS);
    let Some(key) = key else {
        // Rows in storage order, each kept with the share that fills the
        // sample about halfway through the table.
        let share = (2.0 * wanted as f64 / estimate as f64).min(1.0);
        return Ok(format!(
            "{all} WHERE RAND({}) < {share} LIMIT {n}",
            seed % (1 << 31)
        ));
    };
    let column = quote(&key.name);
    let bounds: Option<(Option<String>, Option<String>)> = conn
        .query_first(format!(
            "SELECT CAST(MIN({column}) AS CHAR), CAST(MAX({column}) AS CHAR) FROM {}.{}",
            quote(database),
            quote(&info.name)
        ))
        .await
        .map_err(MyError::query(format!(
            "reading the key range of table {}",
            info.name
        )))?;
    let Some((Some(lo), Some(hi))) = bounds else {
        return Ok(format!("{all} LIMIT 0"));
    };
    let (Ok(lo), Ok(hi)) = (lo.parse::<i128>(), hi.parse::<i128>()) else {
        return Ok(format!(
            "{all} ORDER BY RAND({}) LIMIT {n}",
            seed % (1 << 31)
        ));
    };
    let span = u128::try_from(hi - lo).unwrap_or(0);
    let mut rng = fastrand::Rng::with_seed(seed);
    // Twice the points: two may land in one gap between keys.
    let mut points: Vec<i128> = (0..n.saturating_mul(2))
        .map(|_| lo + i128::try_from(rng.u128(0..=span)).unwrap_or(0))
        .collect();
    points.sort_unstable();
    points.dedup();
    let seeks: Vec<String> = points
        .iter()
        .map(|p| format!("({all} WHERE {column} >= {p} ORDER BY {column} LIMIT 1)"))
        .collect();
    // `n` of the rows found, drawn by the seed (not the lowest keys), in
    // key order.
    Ok(format!(
        "SELECT * FROM (SELECT DISTINCT * FROM ({}) AS seeks ORDER BY RAND({}) LIMIT {n}) AS drawn ORDER BY {column}",
        seeks.join(" UNION ALL "),
        seed % (1 << 31)
    ))
}

/// Whether every key value of `row` is set (a NULL key cannot be applied
/// by key).
pub fn key_is_set(info: &TableInfo, row: &Row) -> bool {
    info.schema.key.iter().all(|&i| row[i] != Value::Null)
}

/// An error reading the snapshot of `table`.
pub fn read_error(table: &str) -> impl FnOnce(mysql_async::Error) -> Error {
    let what = format!("copying table {table}");
    move |e| Error::from(MyError::query(what)(e))
}
