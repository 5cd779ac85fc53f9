//! Engine types → DuckDB types, and rows → Arrow columns for the appender.
//!
//! | engine        | DuckDB          | staged as (Arrow)          |
//! |---------------|-----------------|----------------------------|
//! | boolean       | BOOLEAN         | Boolean                    |
//! | int           | INTEGER         | Int32                      |
//! | bigint        | BIGINT          | Int64                      |
//! | double        | DOUBLE          | Float64                    |
//! | decimal(p,s)  | DECIMAL(p,s)    | Decimal128(p,s) (exact)    |
//! | text          | VARCHAR         | Utf8                       |
//! | bytes         | BLOB            | Binary                     |
//! | date          | DATE            | Date32                     |
//! | time          | TIME            | Time64(µs)                 |
//! | timestamp     | TIMESTAMP       | Timestamp(µs)              |
//! | timestamptz   | TIMESTAMPTZ     | Timestamp(µs, UTC)         |
//! | uuid          | UUID            | Utf8, cast on merge        |
//! | json          | JSON            | Utf8, cast on merge        |
//! | interval      | INTERVAL        | Utf8, cast on merge        |
//! | T[]           | T[] (LIST)      | Utf8 (JSON), cast on merge |
//!
//! In staged lists, decimals, JSON values and bytes (as hex) are JSON
//! strings, so they arrive exactly.

use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use duckdb::arrow::datatypes::{Field, Schema};
use syncline_engine::columnar;
pub use syncline_engine::columnar::{format_uuid, json_is_valid, scaled_decimal};
use syncline_engine::model::{DataType, Value};

use crate::DuckError;

/// The DuckDB column type for an engine type.
pub fn duckdb_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        DataType::Text => "VARCHAR".into(),
        DataType::Bytes => "BLOB".into(),
        DataType::Date => "DATE".into(),
        DataType::Time => "TIME".into(),
        DataType::Timestamp => "TIMESTAMP".into(),
        DataType::TimestampTz => "TIMESTAMPTZ".into(),
        DataType::Uuid => "UUID".into(),
        DataType::Json => "JSON".into(),
        DataType::Interval => "INTERVAL".into(),
        DataType::List { item } => format!("{}[]", duckdb_type(item)),
    }
}

/// The SQL that turns a staged column into its target type.
pub fn cast_from_stage(column: &str, t: &DataType) -> String {
    match t {
        DataType::Uuid | DataType::Json | DataType::Interval => {
            format!("CAST({column} AS {})", duckdb_type(t))
        }
        // JSON and bytes items travel as strings (the JSON text, hex).
        DataType::List { item } if matches!(**item, DataType::Json | DataType::Bytes) => format!(
            "list_transform(CAST(CAST({column} AS JSON) AS VARCHAR[]), x -> {})",
            if **item == DataType::Json {
                "CAST(x AS JSON)"
            } else {
                "unhex(x)"
            }
        ),
        DataType::List { .. } => format!("CAST(CAST({column} AS JSON) AS {})", duckdb_type(t)),
        _ => column.to_owned(),
    }
}

/// The SQL that turns a target column back into its staged form (the
/// inverse of [`cast_from_stage`]), for values kept from the target.
pub fn stage_from_target(column: &str, t: &DataType) -> String {
    match t {
        // The JSON that `list_json` would have written.
        DataType::List { item } => {
            let x = match **item {
                DataType::Decimal { .. } | DataType::Json => "CAST(x AS VARCHAR)",
                DataType::Bytes => "hex(x)",
                _ => "x",
            };
            format!("CAST(to_json(list_transform({column}, x -> {x})) AS VARCHAR)")
        }
        other => format!("CAST({column} AS {})", stage_type(other)),
    }
}

/// The type a column has in the staging table (what Arrow can carry).
pub fn stage_type(t: &DataType) -> String {
    match t {
        DataType::Uuid | DataType::Json | DataType::Interval | DataType::List { .. } => {
            "VARCHAR".into()
        }
        other => duckdb_type(other),
    }
}

/// Whether values of a column can be appended to the target table as they
/// are staged, the appender's own conversion giving what
/// [`cast_from_stage`] gives: every type but lists (whose text the
/// appender reads differently) and JSON, whose text the appender does not
/// check (see [`json_is_valid`]).
pub fn appends_as_staged(t: &DataType) -> bool {
    !matches!(t, DataType::List { .. } | DataType::Json)
}

/// An Arrow field for a column.
pub fn arrow_field(name: &str, t: &DataType) -> Field {
    Field::new(name, columnar::arrow_type(t), true)
}

/// Arrow schema helper.
pub fn arrow_schema(fields: Vec<Field>) -> Arc<Schema> {
    Arc::new(Schema::new(fields))
}

/// Builds one Arrow column from values of one engine type.
pub fn build_column<'a>(
    t: &DataType,
    column: &str,
    values: impl ExactSizeIterator<Item = &'a Value>,
) -> Result<ArrayRef, DuckError> {
    let n = values.len();
    let bad = |v: &Value| DuckError::Value {
        column: column.to_owned(),
        detail: format!("{v:?} is not a {t}"),
    };
    Ok(match t {
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Bool(x) => b.append_value(*x),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Int32 => {
            let mut b = Int32Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Int(x) => b.append_value(i32::try_from(*x).map_err(|_| bad(v))?),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Int(x) => b.append_value(*x),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Float(x) => b.append_value(*x),
                    Value::Int(x) => b.append_value(*x as f64),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Decimal { precision, scale } => {
            let mut b = Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(*precision, *scale as i8)
                .map_err(|e| DuckError::Value {
                    column: column.to_owned(),
                    detail: e.to_string(),
                })?;
            // Values must fit `precision` digits: refused here, naming the
            // column, rather than by DuckDB (or an overflow) later.
            let limit = 10u128
                .checked_pow(u32::from(*precision))
                .unwrap_or(u128::MAX);
            let fits = |x: &i128| x.unsigned_abs() < limit;
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Decimal(text) => b.append_value(
                        scaled_decimal(text, *scale)
                            .filter(fits)
                            .ok_or_else(|| bad(v))?,
                    ),
                    Value::Int(x) => b.append_value(
                        i128::from(*x)
                            .checked_mul(10i128.pow(u32::from(*scale)))
                            .filter(fits)
                            .ok_or_else(|| bad(v))?,
                    ),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Text
        | DataType::Uuid
        | DataType::Json
        | DataType::Interval
        | DataType::List { .. } => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Text(s) | Value::Json(s) => b.append_value(s),
                    Value::Uuid(u) => b.append_value(format_uuid(u)),
                    Value::Interval { .. } => b.append_value(interval_text(v)),
                    Value::List(items) => b.append_value(list_json(items)),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Bytes => {
            let mut b = BinaryBuilder::with_capacity(n, n * 16);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Bytes(x) => b.append_value(x),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Date => {
            let mut b = Date32Builder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Date(d) => b.append_value(duckdb_days(*d)),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Time => {
            let mut b = Time64MicrosecondBuilder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Time(t) => b.append_value(*t),
                    other => return Err(bad(other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp | DataType::TimestampTz => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(n);
            for v in values {
                match v {
                    Value::Null | Value::Unchanged => b.append_null(),
                    Value::Timestamp(t) | Value::TimestampTz(t) => {
                        b.append_value(duckdb_micros(*t))
                    }
                    other => return Err(bad(other)),
                }
            }
            let array = b.finish();
            if *t == DataType::TimestampTz {
                Arc::new(array.with_timezone("UTC"))
            } else {
                Arc::new(array)
            }
        }
    })
}

/// Why DuckDB cannot store `value` in a column of type `t`, or `None`:
/// its DECIMAL has no NaN or infinity.
pub fn refuses(t: &DataType, value: &Value) -> Option<String> {
    match (t, value) {
        (DataType::Decimal { precision, scale }, Value::Decimal(d))
            if syncline_engine::model::is_decimal_special(d) =>
        {
            Some(format!(
                "DuckDB's DECIMAL({precision},{scale}) has no {d}; a DOUBLE or VARCHAR column could hold it"
            ))
        }
        (DataType::List { item }, Value::List(items)) => {
            items.iter().find_map(|v| refuses(item, v))
        }
        _ => None,
    }
}

/// A day count in DuckDB's encoding: its `-infinity` is `-i32::MAX`, not
/// the engine's `i32::MIN` (which DuckDB reads as a date in 5877642 BC).
pub fn duckdb_days(days: i32) -> i32 {
    if days == i32::MIN { -i32::MAX } else { days }
}

/// Microseconds in DuckDB's encoding: its `-infinity` is `-i64::MAX`; the
/// engine's `i64::MIN` would be a timestamp DuckDB cannot read back.
pub fn duckdb_micros(micros: i64) -> i64 {
    if micros == i64::MIN {
        -i64::MAX
    } else {
        micros
    }
}

/// An interval as DuckDB parses it.
fn interval_text(v: &Value) -> String {
    match v {
        Value::Interval {
            months,
            days,
            micros,
        } => {
            format!("{months} months {days} days {micros} microseconds")
        }
        _ => String::new(),
    }
}

/// A list as JSON text that DuckDB casts to a typed list.
fn list_json(items: &[Value]) -> String {
    let parts: Vec<String> = items.iter().map(json_item).collect();
    format!("[{}]", parts.join(","))
}

fn json_item(v: &Value) -> String {
    let text = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    match v {
        Value::Null | Value::Unchanged => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => f.to_string(),
        Value::Float(f) => text(&f.to_string()),
        // As a string: DuckDB reads JSON numbers as doubles, which would
        // round wide decimals.
        Value::Decimal(d) => text(d),
        Value::Text(s) => text(s),
        Value::Json(s) => text(s),
        Value::Bytes(b) => text(&b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        Value::Date(i32::MAX) => text("infinity"),
        Value::Date(i32::MIN) => text("-infinity"),
        Value::Date(d) => text(
            &chrono::DateTime::from_timestamp(i64::from(*d) * 86_400, 0)
                .map(|t| t.date_naive().to_string())
                .unwrap_or_default(),
        ),
        Value::Time(t) => text(
            &chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (t / 1_000_000) as u32,
                ((t % 1_000_000) * 1000) as u32,
            )
            .map(|t| t.format("%H:%M:%S%.6f").to_string())
            .unwrap_or_default(),
        ),
        Value::Timestamp(i64::MAX) | Value::TimestampTz(i64::MAX) => text("infinity"),
        Value::Timestamp(i64::MIN) | Value::TimestampTz(i64::MIN) => text("-infinity"),
        // An explicit offset: without one DuckDB would read the text in the
        // session's time zone.
        Value::Timestamp(t) | Value::TimestampTz(t) => text(&format!(
            "{}{}",
            chrono::DateTime::from_timestamp_micros(*t)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                .unwrap_or_default(),
            if matches!(v, Value::TimestampTz(_)) {
                "+00"
            } else {
                ""
            }
        )),
        Value::Uuid(u) => text(&format_uuid(u)),
        Value::Interval { .. } => text(&interval_text(v)),
        Value::List(items) => list_json(items),
    }
}
