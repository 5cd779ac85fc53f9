//! Between engine values and the embedded DuckDB a transform runs in:
//! loading rows as the relation `source`, mapping result types back onto
//! engine types, and reading result rows.
//!
//! | DuckDB result type                       | engine type            |
//! |------------------------------------------|------------------------|
//! | BOOLEAN                                  | boolean                |
//! | TINYINT, SMALLINT, INTEGER, UTINYINT, USMALLINT | int             |
//! | BIGINT, UINTEGER                         | bigint                 |
//! | UBIGINT, HUGEINT, UHUGEINT               | decimal(38,0)          |
//! | FLOAT, DOUBLE                            | double                 |
//! | DECIMAL(p,s)                             | decimal(p,s) (exact)   |
//! | VARCHAR, ENUM                            | text                   |
//! | BLOB                                     | bytes                  |
//! | DATE, TIME                               | date, time             |
//! | TIMESTAMP (and _S, _MS, _NS)             | timestamp (µs)         |
//! | TIMESTAMP WITH TIME ZONE                 | timestamptz (µs)       |
//! | UUID, JSON, INTERVAL                     | uuid, json, interval   |
//! | T[]                                      | T[]                    |
//!
//! Other types (STRUCT, MAP, UNION, BIT, TIME WITH TIME ZONE) are refused
//! when the transform is checked, with the cast to use instead.

use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, params};
use syncline_duck::query::{self, Parsed};
use syncline_duck::quote;
pub(crate) use syncline_duck::read::{read_expr, read_value};
use syncline_duck::types::{arrow_field, arrow_schema, build_column, cast_from_stage, stage_type};
use syncline_engine::model::{Column, DataType, Row, TableSchema, Value};

use crate::error::TransformError;

/// The temp table rows are loaded into; `source` is a view over it.
pub(crate) const INPUT_TABLE: &str = "_syncline_input";

/// Creates (or re-creates) the input table for `schema` and the view
/// `source` over it, on `conn` (temp objects are per connection).
pub(crate) fn create_input(conn: &Connection, schema: &TableSchema) -> Result<(), TransformError> {
    let staged: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), stage_type(&c.data_type)))
        .collect();
    let cast: Vec<String> = schema
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} AS {}",
                cast_from_stage(&quote(&c.name), &c.data_type),
                quote(&c.name)
            )
        })
        .collect();
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE {INPUT_TABLE} ({});
         CREATE OR REPLACE TEMP VIEW source AS SELECT {} FROM temp.main.{INPUT_TABLE};",
        staged.join(", "),
        cast.join(", ")
    ))
    .map_err(|e| TransformError::engine("preparing the relation `source`", e))
}

/// Replaces the rows of the input table with `rows`.
pub(crate) fn load_rows(
    conn: &Connection,
    schema: &TableSchema,
    rows: &[&Row],
) -> Result<(), TransformError> {
    conn.execute_batch(&format!("DELETE FROM temp.main.{INPUT_TABLE}"))
        .map_err(|e| TransformError::engine("clearing the relation `source`", e))?;
    if rows.is_empty() {
        return Ok(());
    }
    let null = Value::Null;
    let mut fields = Vec::with_capacity(schema.columns.len());
    let mut arrays = Vec::with_capacity(schema.columns.len());
    for (i, column) in schema.columns.iter().enumerate() {
        fields.push(arrow_field(&column.name, &column.data_type));
        let values = rows.iter().map(|row| row.get(i).unwrap_or(&null));
        arrays.push(
            build_column(&column.data_type, &column.name, values)
                .map_err(|e| TransformError::Load(e.to_string()))?,
        );
    }
    let record = RecordBatch::try_new(arrow_schema(fields), arrays)
        .map_err(|e| TransformError::Load(e.to_string()))?;
    let mut appender = conn
        .appender_to_catalog_and_db(INPUT_TABLE, "temp", "main")
        .map_err(|e| TransformError::engine("loading the relation `source`", e))?;
    appender
        .append_record_batch(record)
        .map_err(|e| TransformError::engine("loading the relation `source`", e))?;
    appender
        .flush()
        .map_err(|e| TransformError::engine("loading the relation `source`", e))
}

/// One output column as DuckDB describes it.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    pub name: String,
    pub duck_type: String,
    pub nullable: bool,
}

/// Describes the result of `sql` (which must be a query) without running it
/// on any data.
pub(crate) fn describe(conn: &Connection, sql: &str) -> Result<Vec<Described>, duckdb::Error> {
    let mut stmt = conn.prepare(&format!("DESCRIBE {sql}"))?;
    let rows = stmt.query_map(params![], |r| {
        Ok(Described {
            name: r.get(0)?,
            duck_type: r.get(1)?,
            nullable: r.get::<_, Option<String>>(2)?.as_deref() != Some("NO"),
        })
    })?;
    rows.collect()
}

/// The engine type of a DuckDB result type, or why there is none.
pub(crate) fn engine_type(duck: &str) -> Result<DataType, String> {
    let t = duck.trim();
    if let Some(item) = t.strip_suffix("[]") {
        return engine_type(item).map(|item| DataType::List {
            item: Box::new(item),
        });
    }
    let upper = t.to_ascii_uppercase();
    if let Some(args) = upper
        .strip_prefix("DECIMAL(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let (p, s) = args.split_once(',').ok_or_else(|| duck.to_owned())?;
        let precision: u8 = p.trim().parse().map_err(|_| duck.to_owned())?;
        let scale: u8 = s.trim().parse().map_err(|_| duck.to_owned())?;
        return Ok(DataType::Decimal { precision, scale });
    }
    if upper.starts_with("ENUM(") {
        return Ok(DataType::Text);
    }
    Ok(match upper.as_str() {
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" | "SMALLINT" | "INTEGER" | "UTINYINT" | "USMALLINT" => DataType::Int32,
        "BIGINT" | "UINTEGER" => DataType::Int64,
        "UBIGINT" | "HUGEINT" | "UHUGEINT" => DataType::Decimal {
            precision: 38,
            scale: 0,
        },
        "FLOAT" | "DOUBLE" => DataType::Float64,
        "VARCHAR" => DataType::Text,
        "BLOB" => DataType::Bytes,
        "DATE" => DataType::Date,
        "TIME" => DataType::Time,
        "TIMESTAMP" | "TIMESTAMP_S" | "TIMESTAMP_MS" | "TIMESTAMP_NS" => DataType::Timestamp,
        "TIMESTAMP WITH TIME ZONE" => DataType::TimestampTz,
        "UUID" => DataType::Uuid,
        "JSON" => DataType::Json,
        "INTERVAL" => DataType::Interval,
        // NULL literals: text, the most forgiving column.
        "\"NULL\"" | "NULL" => DataType::Text,
        _ => return Err(duck.to_owned()),
    })
}

/// Runs `select` (built by the caller from [`read_expr`]s) and reads every
/// row as engine values of `columns`' types.
pub(crate) fn query_rows(
    conn: &Connection,
    select: &str,
    columns: &[Column],
) -> Result<Vec<Row>, TransformError> {
    // Planned anew each time: DuckDB folds filters using the table's
    // statistics when a statement is prepared, so a cached statement can
    // skip a filter the next batch's rows need.
    let mut stmt = conn.prepare(select).map_err(TransformError::Sql)?;
    let mut rows = stmt.query(params![]).map_err(TransformError::Sql)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(TransformError::Sql)? {
        let mut row = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let v = r.get_ref(i).map_err(TransformError::Sql)?;
            row.push(
                read_value(v, &c.data_type).map_err(|detail| TransformError::Read {
                    column: c.name.clone(),
                    detail,
                })?,
            );
        }
        out.push(row);
    }
    Ok(out)
}

/// An in-memory DuckDB for transforms: little memory, one thread per query
/// (batches are small; the pipeline runs its own parallelism) unless
/// `all_cores`, and locked down: no extension is installed or loaded, and
/// files are readable only inside `base_dir` (by absolute path, or by a
/// path relative to it naming a file that exists when the engine starts).
/// The settings are locked, so the SQL cannot undo them.
pub(crate) fn open_engine(
    base_dir: &std::path::Path,
    all_cores: bool,
) -> Result<Connection, TransformError> {
    let conn = Connection::open_in_memory()
        .map_err(|e| TransformError::engine("starting the embedded DuckDB", e))?;
    let base = std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
    let dir = base.display().to_string();
    let relative: Vec<String> = files_within(&base)
        .into_iter()
        .flat_map(|f| {
            [
                format!("'{}'", sql_text(&f)),
                format!("'./{}'", sql_text(&f)),
            ]
        })
        .collect();
    let allowed_paths = if relative.is_empty() {
        String::new()
    } else {
        format!("SET allowed_paths = [{}];", relative.join(", "))
    };
    let threads = if all_cores { "" } else { "SET threads = 1;" };
    conn.execute_batch(&format!(
        "SET memory_limit = '256MB'; {threads}
         SET GLOBAL file_search_path = '{d}';
         SET autoinstall_known_extensions = false;
         SET autoload_known_extensions = false;
         SET allowed_directories = ['{d}/'];
         {allowed_paths}
         SET enable_external_access = false;
         SET lock_configuration = true;",
        d = sql_text(&dir),
    ))
    .map_err(|e| TransformError::engine("configuring the embedded DuckDB", e))?;
    Ok(conn)
}

/// `s` inside a single-quoted SQL literal.
fn sql_text(s: &str) -> String {
    s.replace('\'', "''")
}

/// The most files [`files_within`] lists: a pipeline folder is a project
/// folder, not a disk.
const MAX_LISTED_FILES: usize = 10_000;

/// Paths (relative, `/`-separated) of the files under `dir`, three levels
/// deep at most, skipping hidden entries: what transform SQL may name
/// relative to the pipeline's folder. DuckDB resolves such a path through
/// `file_search_path` only when the relative spelling itself is allowed.
fn files_within(dir: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if out.len() >= MAX_LISTED_FILES {
                return;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let path = format!("{prefix}{name}");
            match entry.file_type() {
                Ok(t) if t.is_dir() && depth > 1 => {
                    walk(&entry.path(), &format!("{path}/"), depth - 1, out);
                }
                Ok(t) if t.is_file() || t.is_symlink() => out.push(path),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", 3, &mut out);
    out
}

/// Refuses SQL that is not exactly one query (`SELECT`, `WITH … SELECT`,
/// `FROM …`, `VALUES …`), by DuckDB's own parser and without running
/// anything: a transform computes rows from `source`, and preparing more
/// than one statement would run all but the last.
pub(crate) fn check_query(conn: &Connection, sql: &str) -> Result<(), TransformError> {
    let engine = |e| TransformError::engine("parsing the transform's SQL", e);
    let next = |conn: &Connection| query::next_statement(conn, sql).map_err(engine);
    match query::parse(conn, sql).map_err(engine)? {
        Parsed::Queries(1) => Ok(()),
        Parsed::Queries(0) => Err(TransformError::Statement {
            message: "the transform's SQL is empty".into(),
            help: "write one SELECT over `source`".into(),
            offset: 0,
        }),
        Parsed::Queries(_) => Err(TransformError::Statement {
            message: "the transform's SQL holds more than one statement".into(),
            help: "a transform is one SELECT (or WITH ... SELECT): remove the statements after the first".into(),
            offset: next(conn)?,
        }),
        Parsed::SyntaxError { message, offset } => Err(TransformError::Statement {
            message: format!("Parser Error: {message}"),
            help: "fix the SQL at the position shown".into(),
            offset,
        }),
        Parsed::NotQuery(message) => Err(TransformError::Statement {
            message: format!(
                "the transform's SQL must be one SELECT (or WITH ... SELECT); DuckDB reads another kind of statement here ({message})"
            ),
            help: "a transform only computes rows from `source`: it cannot change tables, files or settings".into(),
            offset: next(conn)?,
        }),
    }
}
