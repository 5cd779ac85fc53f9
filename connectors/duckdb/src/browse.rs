//! Reading a DuckDB database for people: its tables with row counts and
//! columns, and ad-hoc SQL with rows as JSON. Works while a pipeline of this
//! process writes the same file (the connection shares its instance, see
//! [`crate::shared`]); DuckDB's transactions give each query a consistent
//! view.

use std::path::Path;
use std::time::Instant;

use duckdb::arrow::array::{Array, AsArray, RecordBatch};
use duckdb::arrow::datatypes::{
    DataType as ArrowType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Serialize;

use crate::error::DuckDbError;
use crate::shared::{self, SharedConnection};
use syncline_duck::quote;

/// A column and its DuckDB type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnType {
    /// Column name.
    pub name: String,
    /// DuckDB type name, e.g. `DECIMAL(12,2)`.
    pub data_type: String,
}

/// A table of the database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableSummary {
    /// DuckDB schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Rows it holds now.
    pub rows: u64,
    /// Its columns, in order.
    pub columns: Vec<ColumnType>,
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryRows {
    /// Result columns.
    pub columns: Vec<ColumnType>,
    /// Rows as JSON values: numbers and booleans as such, everything else
    /// (decimals, timestamps, dates, nested values) as its text.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows existed than were returned.
    pub truncated: bool,
    /// Time to run the query and collect the rows, in milliseconds.
    pub elapsed_ms: f64,
}

fn open(path: &Path) -> Result<SharedConnection, DuckDbError> {
    if !path.is_file() {
        return Err(DuckDbError::NotFound {
            path: path.display().to_string(),
        });
    }
    shared::connect(path).map_err(|source| DuckDbError::Open {
        path: path.display().to_string(),
        source,
    })
}

fn sql_error(e: duckdb::Error) -> DuckDbError {
    DuckDbError::Query(e)
}

/// Every table (and view) of the database, with its row count and columns,
/// by schema and name. Syncline's own bookkeeping tables are included.
pub fn list_tables(path: &Path) -> Result<Vec<TableSummary>, DuckDbError> {
    let conn = open(path)?;
    let mut stmt = conn
        .prepare(
            "SELECT table_schema, table_name, column_name, data_type
             FROM information_schema.columns
             WHERE table_catalog = current_database()
             ORDER BY table_schema, table_name, ordinal_position",
        )
        .map_err(sql_error)?;
    let mut tables: Vec<TableSummary> = Vec::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(sql_error)?;
    for row in rows {
        let (schema, name, column, data_type) = row.map_err(sql_error)?;
        let column = ColumnType {
            name: column,
            data_type,
        };
        match tables.last_mut() {
            Some(t) if t.schema == schema && t.name == name => t.columns.push(column),
            _ => tables.push(TableSummary {
                schema,
                name,
                rows: 0,
                columns: vec![column],
            }),
        }
    }
    for t in &mut tables {
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote(&t.schema),
            quote(&t.name)
        );
        let n: i64 = conn.query_row(&sql, [], |r| r.get(0)).map_err(sql_error)?;
        t.rows = u64::try_from(n).unwrap_or_default();
    }
    Ok(tables)
}

/// Runs `sql` and returns at most `limit` rows.
pub fn run_query(path: &Path, sql: &str, limit: usize) -> Result<QueryRows, DuckDbError> {
    let conn = open(path)?;
    // Read-only: one query, checked before anything is prepared (preparing
    // several statements runs all but the last).
    let trimmed = sql.trim().trim_end_matches(';');
    if let Err((message, offset)) =
        syncline_duck::query::one_query(&conn, trimmed).map_err(sql_error)?
    {
        return Err(DuckDbError::Refused { message, offset });
    }
    let started = Instant::now();
    let mut stmt = conn.prepare(sql).map_err(sql_error)?;
    let arrow = stmt.query_arrow([]).map_err(sql_error)?;
    let schema = arrow.get_schema();
    let mut rows = Vec::new();
    let mut truncated = false;
    for batch in arrow {
        if rows.len() >= limit && batch.num_rows() > 0 {
            truncated = true;
            break;
        }
        append_rows(&batch, limit, &mut rows, &mut truncated);
    }
    let declared = declared_types(&conn, sql);
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| ColumnType {
            name: f.name().clone(),
            data_type: declared
                .as_ref()
                .and_then(|d| d.get(i).cloned())
                .unwrap_or_else(|| f.data_type().to_string()),
        })
        .collect();
    Ok(QueryRows {
        columns,
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// DuckDB's own names of the result's column types, where the SQL is one
/// query `DESCRIBE` accepts.
fn declared_types(conn: &SharedConnection, sql: &str) -> Option<Vec<String>> {
    let sql = sql.trim().trim_end_matches(';');
    let mut stmt = conn.prepare(&format!("DESCRIBE {sql}")).ok()?;
    let types = stmt
        .query_map([], |r| r.get::<_, String>(1))
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(types)
}

/// At most `limit` rows of `batches` as JSON values (see
/// [`QueryRows::rows`]), and whether there were more.
pub fn batch_rows(batches: &[RecordBatch], limit: usize) -> (Vec<Vec<serde_json::Value>>, bool) {
    let mut rows = Vec::new();
    let mut truncated = false;
    for batch in batches {
        if rows.len() >= limit && batch.num_rows() > 0 {
            truncated = true;
            break;
        }
        append_rows(batch, limit, &mut rows, &mut truncated);
    }
    (rows, truncated)
}

fn append_rows(
    batch: &RecordBatch,
    limit: usize,
    rows: &mut Vec<Vec<serde_json::Value>>,
    truncated: &mut bool,
) {
    let options = FormatOptions::default();
    let formatters: Vec<Option<ArrayFormatter<'_>>> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
        .collect();
    for i in 0..batch.num_rows() {
        if rows.len() >= limit {
            *truncated = true;
            return;
        }
        let row = batch
            .columns()
            .iter()
            .zip(&formatters)
            .map(|(column, formatter)| json_value(column.as_ref(), formatter.as_ref(), i))
            .collect();
        rows.push(row);
    }
}

/// Integers beyond this lose precision as JavaScript numbers: sent as text.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

fn json_value(
    column: &dyn Array,
    formatter: Option<&ArrayFormatter<'_>>,
    i: usize,
) -> serde_json::Value {
    use serde_json::Value as J;
    if column.is_null(i) {
        return J::Null;
    }
    let int = |v: i64| {
        if v.abs() <= MAX_SAFE_INTEGER {
            J::from(v)
        } else {
            J::String(v.to_string())
        }
    };
    match column.data_type() {
        ArrowType::Boolean => J::Bool(column.as_boolean().value(i)),
        ArrowType::Int8 => J::from(column.as_primitive::<Int8Type>().value(i)),
        ArrowType::Int16 => J::from(column.as_primitive::<Int16Type>().value(i)),
        ArrowType::Int32 => J::from(column.as_primitive::<Int32Type>().value(i)),
        ArrowType::Int64 => int(column.as_primitive::<Int64Type>().value(i)),
        ArrowType::UInt8 => J::from(column.as_primitive::<UInt8Type>().value(i)),
        ArrowType::UInt16 => J::from(column.as_primitive::<UInt16Type>().value(i)),
        ArrowType::UInt32 => J::from(column.as_primitive::<UInt32Type>().value(i)),
        ArrowType::UInt64 => {
            let v = column.as_primitive::<UInt64Type>().value(i);
            i64::try_from(v).map_or_else(|_| J::String(v.to_string()), int)
        }
        ArrowType::Float32 => {
            serde_json::Number::from_f64(f64::from(column.as_primitive::<Float32Type>().value(i)))
                .map_or(J::Null, J::Number)
        }
        ArrowType::Float64 => {
            serde_json::Number::from_f64(column.as_primitive::<Float64Type>().value(i))
                .map_or(J::Null, J::Number)
        }
        _ => formatter.map_or(J::Null, |f| J::String(f.value(i).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_query_rows_as_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.duckdb");
        assert!(matches!(
            list_tables(&path),
            Err(DuckDbError::NotFound { .. })
        ));
        {
            let conn = shared::connect(&path).expect("opens");
            conn.execute_batch(
                "CREATE TABLE t (id BIGINT PRIMARY KEY, amount DECIMAL(12,2), ordered_at TIMESTAMP, ok BOOLEAN, name VARCHAR);
                 INSERT INTO t VALUES (1, 12.50, '2025-01-02 03:04:05', true, 'a'), (2, NULL, NULL, false, 'b'), (3, 1.00, NULL, NULL, NULL);",
            )
            .expect("writes");
        }
        let tables = list_tables(&path).expect("lists");
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].name, "t");
        assert_eq!(tables[0].rows, 3);
        assert_eq!(tables[0].columns[1].data_type, "DECIMAL(12,2)");

        let q = run_query(&path, "SELECT * FROM t ORDER BY id", 2).expect("runs");
        assert!(q.truncated);
        assert_eq!(q.rows.len(), 2);
        assert_eq!(q.columns[1].data_type, "DECIMAL(12,2)");
        assert_eq!(
            q.rows[0],
            vec![
                serde_json::json!(1),
                serde_json::json!("12.50"),
                serde_json::json!("2025-01-02T03:04:05"),
                serde_json::json!(true),
                serde_json::json!("a"),
            ]
        );
        assert_eq!(q.rows[1][1], serde_json::Value::Null);

        let all = run_query(&path, "SELECT count(*) AS n FROM t", 10).expect("runs");
        assert!(!all.truncated);
        assert_eq!(all.rows, vec![vec![serde_json::json!(3)]]);

        match run_query(&path, "SELECT nope FROM t", 10) {
            Err(DuckDbError::Query(e)) => assert!(e.to_string().contains("nope"), "{e}"),
            other => panic!("expected a SQL error, got {other:?}"),
        }

        // Read-only: only one query runs, and nothing before it.
        for (sql, at) in [
            ("DELETE FROM t", "DELETE"),
            ("SELECT 1; DROP TABLE t", "DROP"),
            ("CREATE TABLE u AS SELECT 1; SELECT 1", "CREATE"),
            ("COPY t TO 'out.csv'", "COPY"),
            ("ATTACH 'other.duckdb'", "ATTACH"),
        ] {
            match run_query(&path, sql, 10) {
                Err(DuckDbError::Refused { offset, .. }) => {
                    assert!(sql[offset..].starts_with(at), "{sql}: at {offset}");
                }
                other => panic!("{sql}: expected a refusal, got {other:?}"),
            }
        }
        let still = run_query(&path, "SELECT count(*) FROM t", 10).expect("runs");
        assert_eq!(still.rows, vec![vec![serde_json::json!(3)]]);
        let tables = run_query(
            &path,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'u'",
            10,
        )
        .expect("runs");
        assert_eq!(tables.rows, vec![vec![serde_json::json!(0)]]);
    }
}
