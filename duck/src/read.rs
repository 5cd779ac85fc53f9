//! DuckDB values back to engine values: what the transforms read from
//! their results and what the DuckDB target reads back for verify.

use duckdb::types::{TimeUnit, ValueRef};
use syncline_engine::columnar::parse_uuid;
use syncline_engine::model::{DataType, Value};

use crate::quote;

/// The expression that reads output column `name` of type `t` in a form
/// [`read_value`] turns into an engine value exactly.
pub fn read_expr(name: &str, t: &DataType) -> String {
    let col = quote(name);
    match t {
        DataType::Decimal { .. } | DataType::Uuid | DataType::Json => {
            format!("CAST({col} AS VARCHAR)")
        }
        DataType::List { .. } => format!("CAST(to_json({col}) AS VARCHAR)"),
        DataType::Timestamp => format!("CAST({col} AS TIMESTAMP)"),
        _ => col,
    }
}

/// Reads one value of a row read through [`read_expr`].
pub fn read_value(v: ValueRef<'_>, t: &DataType) -> Result<Value, String> {
    let micros = |unit: TimeUnit, x: i64| match unit {
        TimeUnit::Second => x.saturating_mul(1_000_000),
        TimeUnit::Millisecond => x.saturating_mul(1_000),
        TimeUnit::Microsecond => x,
        TimeUnit::Nanosecond => x / 1_000,
    };
    let text = |v: ValueRef<'_>| -> Result<String, String> {
        match v {
            ValueRef::Text(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => Err(format!("expected text, got {other:?}")),
        }
    };
    if matches!(v, ValueRef::Null) {
        return Ok(Value::Null);
    }
    Ok(match t {
        DataType::Boolean => match v {
            ValueRef::Boolean(b) => Value::Bool(b),
            other => return Err(format!("{other:?} is not a boolean")),
        },
        DataType::Int32 | DataType::Int64 => Value::Int(match v {
            ValueRef::TinyInt(x) => i64::from(x),
            ValueRef::SmallInt(x) => i64::from(x),
            ValueRef::Int(x) => i64::from(x),
            ValueRef::BigInt(x) => x,
            ValueRef::UTinyInt(x) => i64::from(x),
            ValueRef::USmallInt(x) => i64::from(x),
            ValueRef::UInt(x) => i64::from(x),
            other => return Err(format!("{other:?} is not an integer")),
        }),
        DataType::Float64 => Value::Float(match v {
            ValueRef::Float(x) => f64::from(x),
            ValueRef::Double(x) => x,
            other => return Err(format!("{other:?} is not a number")),
        }),
        DataType::Decimal { .. } => Value::Decimal(text(v)?),
        DataType::Text => Value::Text(text(v)?),
        DataType::Json => Value::Json(text(v)?),
        DataType::Uuid => {
            let s = text(v)?;
            Value::Uuid(parse_uuid(&s).ok_or_else(|| format!("{s} is not a UUID"))?)
        }
        DataType::Bytes => match v {
            ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
            other => return Err(format!("{other:?} is not bytes")),
        },
        DataType::Date => match v {
            ValueRef::Date32(d) => Value::Date(d),
            other => return Err(format!("{other:?} is not a date")),
        },
        DataType::Time => match v {
            ValueRef::Time64(unit, x) => Value::Time(micros(unit, x)),
            other => return Err(format!("{other:?} is not a time")),
        },
        DataType::Timestamp => match v {
            ValueRef::Timestamp(unit, x) => Value::Timestamp(micros(unit, x)),
            other => return Err(format!("{other:?} is not a timestamp")),
        },
        DataType::TimestampTz => match v {
            ValueRef::Timestamp(unit, x) => Value::TimestampTz(micros(unit, x)),
            other => return Err(format!("{other:?} is not a timestamp")),
        },
        DataType::Interval => match v {
            ValueRef::Interval {
                months,
                days,
                nanos,
            } => Value::Interval {
                months,
                days,
                micros: nanos / 1_000,
            },
            other => return Err(format!("{other:?} is not an interval")),
        },
        DataType::List { item } => {
            let s = text(v)?;
            let json: serde_json::Value =
                serde_json::from_str(&s).map_err(|e| format!("list {s}: {e}"))?;
            json_value(&json, &DataType::List { item: item.clone() })?
        }
    })
}

/// A value of type `t` from its JSON form (list items).
fn json_value(json: &serde_json::Value, t: &DataType) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match (t, json) {
        (_, J::Null) => Value::Null,
        (DataType::List { item }, J::Array(items)) => Value::List(
            items
                .iter()
                .map(|i| json_value(i, item))
                .collect::<Result<_, _>>()?,
        ),
        (DataType::Boolean, J::Bool(b)) => Value::Bool(*b),
        (DataType::Int32 | DataType::Int64, J::Number(n)) => {
            Value::Int(n.as_i64().ok_or_else(|| format!("{n} is not an integer"))?)
        }
        (DataType::Float64, J::Number(n)) => {
            Value::Float(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?)
        }
        (DataType::Decimal { .. }, J::Number(n)) => Value::Decimal(n.to_string()),
        (DataType::Decimal { .. }, J::String(s)) => Value::Decimal(s.clone()),
        (DataType::Json, other) => Value::Json(other.to_string()),
        (DataType::Uuid, J::String(s)) => {
            Value::Uuid(parse_uuid(s).ok_or_else(|| format!("{s} is not a UUID"))?)
        }
        (_, J::String(s)) => Value::Text(s.clone()),
        (_, other) => Value::Text(other.to_string()),
    })
}
